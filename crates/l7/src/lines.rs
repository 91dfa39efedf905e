//! Line framing for the text protocols of issue 16 (Memcached text, NATS):
//! `\r\n`-terminated command lines, some followed by a data block whose
//! length the line gives. The scanner hands each line to the protocol, which
//! answers how many data bytes follow; those are skipped by count, seen or
//! not. A line that falls in bytes the kernel did not copy loses the place
//! (resynchronised on the next chunk, assumed to start a line).

use crate::Chunk;
use crate::framer::FrameError;

/// Longest line prefix kept: a Memcached storage line with a 250-byte key
/// and its numbers fits; longer lines (a many-key get, a NATS INFO) are
/// handed over cut to this length, which is all the protocols need.
pub(crate) const LINE_MAX: usize = 320;

/// What the protocol makes of a line.
pub(crate) enum LineVerdict {
    /// A valid line followed by this many data bytes (its block and `\r\n`).
    Data(u64),
    /// Not this protocol.
    Garbage,
}

#[derive(Debug)]
pub(crate) struct Lines {
    buf: [u8; LINE_MAX],
    len: usize,
    /// Data bytes still to skip before the next line.
    skip: u64,
    synced: bool,
    /// Time of the chunk the current line began in.
    start_ns: u64,
}

impl Default for Lines {
    fn default() -> Self {
        Lines {
            buf: [0; LINE_MAX],
            len: 0,
            skip: 0,
            synced: true,
            start_ns: 0,
        }
    }
}

impl Lines {
    /// Feeds one chunk; `on_line` gets each complete line without its
    /// `\r\n` (cut to LINE_MAX) and the time of the chunk it began in.
    pub(crate) fn feed(
        &mut self,
        chunk: &Chunk,
        mut on_line: impl FnMut(&[u8], u64) -> LineVerdict,
    ) -> Result<(), FrameError> {
        if !self.synced {
            self.len = 0;
            self.skip = 0;
            self.synced = true;
        }
        let size = u64::from(chunk.size).max(chunk.payload.len() as u64);
        let p = chunk.payload;
        let mut pos: u64 = 0;
        // `len` counts every byte of the current line, kept or not.
        while pos < size {
            if self.skip > 0 {
                let n = self.skip.min(size - pos);
                self.skip -= n;
                pos += n;
                continue;
            }
            if pos >= p.len() as u64 {
                self.synced = false;
                return Err(FrameError::Unseen);
            }
            let rest = &p[pos as usize..];
            if self.len == 0 {
                self.start_ns = chunk.ts_ns;
            }
            match rest.iter().position(|&b| b == b'\n') {
                None => {
                    self.keep(rest);
                    pos += rest.len() as u64;
                }
                Some(i) => {
                    self.keep(&rest[..i]);
                    pos += i as u64 + 1;
                    let kept = self.len.min(LINE_MAX);
                    let mut line = &self.buf[..kept];
                    if self.len <= LINE_MAX && line.last() == Some(&b'\r') {
                        line = &line[..line.len() - 1];
                    }
                    let verdict = on_line(line, self.start_ns);
                    self.len = 0;
                    match verdict {
                        LineVerdict::Data(n) => self.skip = n,
                        LineVerdict::Garbage => {
                            self.synced = false;
                            return Err(FrameError::Garbage);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn keep(&mut self, b: &[u8]) {
        let room = LINE_MAX.saturating_sub(self.len);
        let n = room.min(b.len());
        if n > 0 {
            self.buf[self.len..self.len + n].copy_from_slice(&b[..n]);
        }
        self.len = self.len.saturating_add(b.len());
    }
}

/// Parses a decimal length token; None for anything else (or absurd sizes).
pub(crate) fn dec(tok: &[u8]) -> Option<u64> {
    if tok.is_empty() || tok.len() > 12 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in tok {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(b - b'0');
    }
    Some(v)
}

/// Space/tab separated tokens of a line, at most `N` (the rest ignored);
/// returns the tokens and how many there were in all.
pub(crate) fn tokens<const N: usize>(line: &[u8]) -> ([&[u8]; N], usize) {
    let mut t: [&[u8]; N] = [&[]; N];
    let mut n = 0;
    for tok in line
        .split(|&b| b == b' ' || b == b'\t')
        .filter(|t| !t.is_empty())
    {
        if n < N {
            t[n] = tok;
        }
        n += 1;
    }
    (t, n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Direction;

    #[test]
    fn lines_blocks_and_unseen() {
        let mut l = Lines::default();
        let seen = std::cell::RefCell::new(Vec::<Vec<u8>>::new());
        let b = b"set k 0 0 5\r\nhel";
        let c = Chunk {
            ts_ns: 1,
            direction: Direction::Egress,
            size: b.len() as u32,
            payload: b,
        };
        let mut f = |line: &[u8], _| {
            seen.borrow_mut().push(line.to_vec());
            if line.starts_with(b"set") {
                LineVerdict::Data(7)
            } else {
                LineVerdict::Data(0)
            }
        };
        l.feed(&c, &mut f).unwrap();
        let b = b"lo\r\nget k\r";
        let c = Chunk {
            ts_ns: 2,
            direction: Direction::Egress,
            size: b.len() as u32,
            payload: b,
        };
        l.feed(&c, &mut f).unwrap();
        let b = b"\n";
        let c = Chunk {
            ts_ns: 3,
            direction: Direction::Egress,
            size: 1,
            payload: b,
        };
        l.feed(&c, &mut f).unwrap();
        assert_eq!(
            *seen.borrow(),
            vec![b"set k 0 0 5".to_vec(), b"get k".to_vec()]
        );
        let c = Chunk {
            ts_ns: 4,
            direction: Direction::Egress,
            size: 100,
            payload: b"get",
        };
        assert_eq!(l.feed(&c, &mut f), Err(FrameError::Unseen));
    }
}
