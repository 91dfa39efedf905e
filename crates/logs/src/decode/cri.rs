//! The CRI log format (containerd, CRI-O): `<RFC3339 time> <stream> <tags> <message>`, tags `F`
//! (full) or `P` (partial: the message continues on the next line of the same stream).

use super::{DecodeError, Record, Stream, append_bounded, trim_newline};

#[derive(Debug, Default)]
struct Partial {
    message: String,
    truncated: usize,
    time: Option<String>,
}

/// Decoder for one container's CRI log.
#[derive(Debug)]
pub struct CriDecoder {
    max_message_bytes: usize,
    partial: [Partial; 3],
}

impl CriDecoder {
    /// A decoder joining partial lines into messages of at most `max_message_bytes` bytes.
    pub fn new(max_message_bytes: usize) -> Self {
        CriDecoder {
            max_message_bytes,
            partial: Default::default(),
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
        let p = &mut self.partial[stream.index()];
        if p.time.is_none() {
            p.time = Some(String::from_utf8_lossy(time).into_owned());
        }
        let text = String::from_utf8_lossy(msg);
        p.truncated += append_bounded(&mut p.message, &text, self.max_message_bytes);
        if partial {
            return Ok(None);
        }
        let p = std::mem::take(p);
        Ok(Some(Record {
            stream,
            time: p.time,
            message: p.message,
            truncated: p.truncated,
        }))
    }

    /// Returns partial messages whose final line never came.
    pub fn flush(&mut self) -> Vec<Record> {
        let mut out = Vec::new();
        for (i, stream) in [Stream::Stdout, Stream::Stderr, Stream::Unknown]
            .into_iter()
            .enumerate()
        {
            let p = std::mem::take(&mut self.partial[i]);
            if !p.message.is_empty() || p.truncated > 0 {
                out.push(Record {
                    stream,
                    time: p.time,
                    message: p.message,
                    truncated: p.truncated,
                });
            }
        }
        out
    }
}
