//! Message framing for the length-prefixed protocols of issue 16 (MySQL,
//! Mongo, Kafka, Cassandra, Zookeeper, Dubbo2, AMQP, FoundationDB), and the
//! bounded in-flight queue their sessions match responses with.
//!
//! The kernel ships each read and write as a [`Chunk`]: the syscall's byte
//! count and at most [`crate::PAYLOAD_MAX`] of its bytes. A message may span
//! several chunks (a client reading a 4-byte length, then the body), a chunk
//! may hold several messages (pipelining), and bytes past the copied prefix
//! are counted but unseen. [`Framer`] walks the byte stream of one direction
//! by message lengths: it collects the first `N` bytes of every message (the
//! head a protocol decides on), skips the rest by count, seen or not, and
//! only loses its place when a head falls in bytes it was not shown. It then
//! resynchronises on the next chunk, assuming a syscall starts a message (as
//! coroot-node-agent assumes for every chunk).

use crate::Chunk;
use std::collections::VecDeque;

/// Why a direction's stream could not be followed; the session counts it as
/// a parse error and the framer resynchronises on the next chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// A head did not parse as the protocol (garbage, or a message boundary
    /// guessed wrong after a loss).
    Garbage,
    /// A head lay in bytes the kernel did not copy (past PAYLOAD_MAX).
    Unseen,
}

/// Counts a framing error (garbage is a parse error; bytes the kernel did
/// not copy are expected, not counted) and says whether the stream lost its
/// place, in which case the caller forgets what it was waiting for: a
/// response matched after a loss could be another request's.
pub(crate) fn lost_place(r: Result<(), FrameError>, stats: &mut crate::SessionStats) -> bool {
    match r {
        Ok(()) => false,
        Err(FrameError::Garbage) => {
            stats.parse_errors += 1;
            true
        }
        Err(FrameError::Unseen) => true,
    }
}

/// What a protocol says about a message head.
pub(crate) enum Len {
    /// The message's total length in bytes, head included.
    Total(u64),
    /// Not this protocol's message.
    Garbage,
}

/// Follows one direction of a connection message by message.
///
/// `N` is the most head bytes a protocol looks at; `len_bytes` (given to
/// [`Framer::feed`]) how many it needs to know a message's length.
#[derive(Debug)]
pub(crate) struct Framer<const N: usize> {
    head: [u8; N],
    /// Head bytes collected of the current message.
    have: usize,
    /// Its total length once known, 0 before.
    total: u64,
    /// Bytes of it consumed so far (head included).
    consumed: u64,
    /// The head was handed to the protocol already.
    delivered: bool,
    /// False after a loss: the next chunk is taken to start a message.
    synced: bool,
    /// Time of the chunk the current message began in.
    start_ns: u64,
}

impl<const N: usize> Default for Framer<N> {
    fn default() -> Self {
        Framer {
            head: [0; N],
            have: 0,
            total: 0,
            consumed: 0,
            delivered: false,
            synced: true,
            start_ns: 0,
        }
    }
}

impl<const N: usize> Framer<N> {
    fn reset_msg(&mut self) {
        self.have = 0;
        self.total = 0;
        self.consumed = 0;
        self.delivered = false;
    }

    /// True when no message is part-way through (the next byte starts one).
    #[cfg(test)]
    pub(crate) fn at_boundary(&self) -> bool {
        self.consumed == 0
    }

    /// Feeds one chunk of this direction. `len_of` gets the first
    /// `len_bytes` of each message; `on_msg` gets each message's head (its
    /// first `min(N, total)` bytes, fewer only if the message is shorter)
    /// total length and the time of the chunk it began in, in stream order. On an error the rest of the
    /// chunk is dropped and the next chunk starts afresh.
    pub(crate) fn feed(
        &mut self,
        chunk: &Chunk,
        len_bytes: usize,
        len_of: impl Fn(&[u8]) -> Len,
        mut on_msg: impl FnMut(&[u8], u64, u64),
    ) -> Result<(), FrameError> {
        debug_assert!(len_bytes > 0 && len_bytes <= N);
        if !self.synced {
            self.reset_msg();
            self.synced = true;
        }
        let size = u64::from(chunk.size).max(chunk.payload.len() as u64);
        let visible = chunk.payload.len() as u64;
        let mut pos: u64 = 0;
        while pos < size {
            if self.delivered {
                // Head handed over: skip the body by count.
                let skip = (self.total - self.consumed).min(size - pos);
                pos += skip;
                self.consumed += skip;
                if self.consumed == self.total {
                    self.reset_msg();
                }
                continue;
            }
            if pos >= visible {
                self.synced = false;
                return Err(FrameError::Unseen);
            }
            let want = if self.total == 0 {
                len_bytes
            } else {
                (self.total.min(N as u64)) as usize
            };
            let take = ((want - self.have) as u64).min(visible - pos) as usize;
            if self.consumed == 0 {
                self.start_ns = chunk.ts_ns;
            }
            let start = pos as usize;
            self.head[self.have..self.have + take]
                .copy_from_slice(&chunk.payload[start..start + take]);
            self.have += take;
            self.consumed += take as u64;
            pos += take as u64;
            if self.total == 0 && self.have == len_bytes {
                match len_of(&self.head[..len_bytes]) {
                    Len::Total(t) if t >= len_bytes as u64 => self.total = t,
                    _ => {
                        self.synced = false;
                        return Err(FrameError::Garbage);
                    }
                }
            }
            if self.total != 0 && self.have as u64 == self.total.min(N as u64) {
                on_msg(&self.head[..self.have], self.total, self.start_ns);
                self.delivered = true;
                if self.consumed == self.total {
                    self.reset_msg();
                }
            }
        }
        Ok(())
    }
}

/// Requests waiting for their response on one connection, oldest first.
/// Bounded: a request pushed past the bound evicts the oldest, which the
/// session counts in `pending_overflow`.
#[derive(Debug)]
pub(crate) struct Inflight<T> {
    q: VecDeque<T>,
}

/// Requests a connection may have in flight before the oldest is dropped.
/// Pipelining clients rarely exceed a few dozen; a bound stops a response
/// direction the parser cannot follow from growing memory.
pub(crate) const INFLIGHT_MAX: usize = 128;

impl<T> Default for Inflight<T> {
    fn default() -> Self {
        Inflight { q: VecDeque::new() }
    }
}

impl<T> Inflight<T> {
    /// Queues a request; true if the oldest had to be dropped for it.
    pub(crate) fn push(&mut self, v: T) -> bool {
        let overflow = self.q.len() >= INFLIGHT_MAX;
        if overflow {
            self.q.pop_front();
        }
        self.q.push_back(v);
        overflow
    }

    pub(crate) fn pop_front(&mut self) -> Option<T> {
        self.q.pop_front()
    }

    /// Takes the first request `matches` accepts. Requests queued before it
    /// stay (responses of multiplexed protocols come in any order).
    pub(crate) fn take(&mut self, matches: impl Fn(&T) -> bool) -> Option<T> {
        let i = self.q.iter().position(matches)?;
        self.q.remove(i)
    }

    /// Takes the first request `matches` accepts and drops those queued
    /// before it (in-order protocols: they will never be answered); returns
    /// it and how many were dropped.
    pub(crate) fn take_in_order(&mut self, matches: impl Fn(&T) -> bool) -> Option<(T, usize)> {
        let i = self.q.iter().position(matches)?;
        self.q.drain(..i);
        self.q.pop_front().map(|v| (v, i))
    }

    /// Index (0 = oldest) of the first request `matches` accepts.
    pub(crate) fn position(&self, matches: impl Fn(&T) -> bool) -> Option<usize> {
        self.q.iter().position(matches)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.q.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.q.is_empty()
    }

    pub(crate) fn clear(&mut self) {
        self.q.clear();
    }
}

/// Big-endian and little-endian integer reads that never panic: callers
/// pass heads the framer guaranteed long enough, but garbage must not crash.
pub(crate) fn be_u16(b: &[u8], at: usize) -> u16 {
    match b.get(at..at + 2) {
        Some(s) => u16::from_be_bytes([s[0], s[1]]),
        None => 0,
    }
}

pub(crate) fn be_u32(b: &[u8], at: usize) -> u32 {
    match b.get(at..at + 4) {
        Some(s) => u32::from_be_bytes([s[0], s[1], s[2], s[3]]),
        None => 0,
    }
}

pub(crate) fn le_u32(b: &[u8], at: usize) -> u32 {
    match b.get(at..at + 4) {
        Some(s) => u32::from_le_bytes([s[0], s[1], s[2], s[3]]),
        None => 0,
    }
}

pub(crate) fn be_u64(b: &[u8], at: usize) -> u64 {
    match b.get(at..at + 8) {
        Some(s) => u64::from_be_bytes([s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]]),
        None => 0,
    }
}

/// A completed request: latency is the response's time minus the
/// request's, 0 if the clocks disagree (counted, kept out of histograms).
pub(crate) fn completed(
    protocol: crate::Protocol,
    status: crate::Status,
    start_ns: u64,
    end_ns: u64,
    method: crate::Method,
) -> crate::Request {
    crate::Request {
        protocol,
        status,
        duration_ns: end_ns.saturating_sub(start_ns),
        start_ns,
        method,
        dns: None,
        detail: None,
    }
}

/// Which way a chunk goes for the parser: request or response bytes.
pub(crate) fn is_request(role: crate::Role, chunk: &Chunk) -> bool {
    matches!(
        (role, chunk.direction),
        (crate::Role::Client, crate::Direction::Egress)
            | (crate::Role::Server, crate::Direction::Ingress)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Direction;

    fn chunk(b: &[u8], size: u32) -> Chunk<'_> {
        Chunk {
            ts_ns: 1,
            direction: Direction::Egress,
            size,
            payload: b,
        }
    }

    // 2-byte big-endian length of the body that follows.
    fn len2(h: &[u8]) -> Len {
        Len::Total(2 + u64::from(be_u16(h, 0)))
    }

    #[test]
    fn splits_joins_and_skips() {
        let mut f = Framer::<4>::default();
        let mut seen = Vec::new();
        // Two messages in one chunk, the second split across chunks.
        let a = [0, 3, b'a', b'b', b'c', 0, 5, b'x'];
        f.feed(&chunk(&a, a.len() as u32), 2, len2, |h, t, _| {
            seen.push((h.to_vec(), t))
        })
        .unwrap();
        assert_eq!(seen, vec![(vec![0, 3, b'a', b'b'], 5)]);
        let b = [b'y', b'z', b'w', b'v'];
        f.feed(&chunk(&b, 4), 2, len2, |h, t, _| seen.push((h.to_vec(), t)))
            .unwrap();
        assert_eq!(seen[1], (vec![0, 5, b'x', b'y'], 7));
        assert!(f.at_boundary());
        // A message whose body is mostly unseen: skipped by count.
        let c = [0, 200, 1, 2];
        f.feed(&chunk(&c, 202), 2, len2, |h, t, _| {
            seen.push((h.to_vec(), t))
        })
        .unwrap();
        assert_eq!(seen[2].1, 202);
        assert!(f.at_boundary());
        // A head in unseen bytes: lost, then resynchronised.
        let d = [0, 1, 9];
        assert_eq!(
            f.feed(&chunk(&d, 10), 2, len2, |_, _, _| {}),
            Err(FrameError::Unseen)
        );
        let e = [0, 0];
        f.feed(&chunk(&e, 2), 2, len2, |h, t, _| seen.push((h.to_vec(), t)))
            .unwrap();
        assert_eq!(seen[3], (vec![0, 0], 2));
    }

    #[test]
    fn inflight_is_bounded() {
        let mut q = Inflight::default();
        let mut overflow = 0;
        for i in 0..INFLIGHT_MAX + 5 {
            overflow += usize::from(q.push(i));
        }
        assert_eq!(overflow, 5);
        assert_eq!(q.len(), INFLIGHT_MAX);
        assert_eq!(q.take_in_order(|v| *v == 10), Some((10, 5)));
    }
}
