//! The CRI log format (containerd, CRI-O): `<RFC3339 time> <stream> <tags> <message>`, tags `F`
//! (full) or `P` (partial: the message continues on the next line of the same stream).

use super::{DecodeError, Record, Stream, StreamJoiner, trim_newline};

/// Decoder for one container's CRI log.
#[derive(Debug)]
pub struct CriDecoder {
    joiner: StreamJoiner,
}

impl CriDecoder {
    /// A decoder joining partial lines into messages of at most `max_message_bytes` bytes.
    pub fn new(max_message_bytes: usize) -> Self {
        CriDecoder {
            joiner: StreamJoiner::new(max_message_bytes),
        }
    }

    /// Decodes one line. `Ok(None)` while a partial message is incomplete.
    pub fn decode(&mut self, line: &[u8]) -> Result<Option<Record>, DecodeError> {
        let line = trim_newline(line);
        let err = |reason| DecodeError::Cri {
            len: line.len(),
            reason,
        };
        let mut parts = line.splitn(4, |&b| b == b' ');
        let time = parts
            .next()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| err("no time"))?;
        let stream = parts.next().ok_or_else(|| err("no stream"))?;
        let stream = Stream::parse(stream).ok_or_else(|| err("unknown stream"))?;
        let tags = parts.next().ok_or_else(|| err("no tags"))?;
        // An empty message may come without the separating space.
        let msg = parts.next().unwrap_or(b"");
        let partial = match tags.split(|&b| b == b':').next() {
            Some(b"P") => true,
            Some(b"F") => false,
            _ => return Err(err("unknown tag")),
        };
        let text = String::from_utf8_lossy(msg);
        Ok(self.joiner.push(
            stream,
            || Some(String::from_utf8_lossy(time).into_owned()),
            &text,
            !partial,
        ))
    }

    /// Returns partial messages whose final line never came.
    pub fn flush(&mut self) -> Vec<Record> {
        self.joiner.flush()
    }
}
