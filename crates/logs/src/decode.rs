//! Decoders from container runtime log files to messages, and multi-line joining. All pure and
//! bounded: they take bytes, return messages, and never hold more than `max_message_bytes` of a
//! message in progress per stream.

mod cri;
mod docker;
mod multiline;

pub use cri::CriDecoder;
pub use docker::DockerJsonDecoder;
pub use multiline::MultilineJoiner;

/// Which output stream a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Stdout,
    Stderr,
    /// Plain files and journald have no stream.
    Unknown,
}

impl Stream {
    fn parse(s: &[u8]) -> Option<Stream> {
        match s {
            b"stdout" => Some(Stream::Stdout),
            b"stderr" => Some(Stream::Stderr),
            _ => None,
        }
    }

    fn index(self) -> usize {
        match self {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
            Stream::Unknown => 2,
        }
    }
}

/// One complete log message out of a decoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub stream: Stream,
    /// The runtime's timestamp as written (RFC 3339), when the format has one.
    pub time: Option<String>,
    /// The message, without its trailing newline; at most the decoder's `max_message_bytes`.
    pub message: String,
    /// Bytes dropped from this message because it exceeded the decoder's bound.
    pub truncated: usize,
}

/// Errors of the decoders: a line that is not in the expected format. Callers count and skip.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("invalid docker json-file line ({len} bytes)")]
    DockerJson {
        len: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("invalid CRI log line ({len} bytes): {reason}")]
    Cri { len: usize, reason: &'static str },
}

/// A plain-text line as a message: trailing newline removed, invalid UTF-8 replaced.
pub fn decode_plain(line: &[u8]) -> String {
    String::from_utf8_lossy(trim_newline(line)).into_owned()
}

fn trim_newline(mut line: &[u8]) -> &[u8] {
    while let [rest @ .., b'\n' | b'\r'] = line {
        line = rest;
    }
    line
}

/// Messages in progress, one per stream: runtimes split long lines into pieces (Docker at
/// 16 KiB, CRI `P` lines) and interleave stdout and stderr, so pieces are joined per stream.
#[derive(Debug)]
struct StreamJoiner {
    max_message_bytes: usize,
    partial: [Partial; 3],
}

#[derive(Debug, Default)]
struct Partial {
    message: String,
    truncated: usize,
    time: Option<String>,
}

impl StreamJoiner {
    fn new(max_message_bytes: usize) -> Self {
        StreamJoiner {
            max_message_bytes,
            partial: Default::default(),
        }
    }

    /// Adds a piece of `stream`'s message (`time` is kept from the first piece); returns the
    /// whole message once `complete`.
    fn push(
        &mut self,
        stream: Stream,
        time: impl FnOnce() -> Option<String>,
        piece: &str,
        complete: bool,
    ) -> Option<Record> {
        let p = &mut self.partial[stream.index()];
        if p.time.is_none() {
            p.time = time();
        }
        p.truncated += append_bounded(&mut p.message, piece, self.max_message_bytes);
        if !complete {
            return None;
        }
        let p = std::mem::take(p);
        Some(Record {
            stream,
            time: p.time,
            message: p.message,
            truncated: p.truncated,
        })
    }

    /// Messages whose last piece never came (file rotated, container stopped).
    fn flush(&mut self) -> Vec<Record> {
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

/// Appends `piece` to a message in progress, keeping at most `max` bytes (on a char boundary);
/// returns the number of bytes dropped.
fn append_bounded(buf: &mut String, piece: &str, max: usize) -> usize {
    let room = max.saturating_sub(buf.len());
    let kept = crate::counter::truncate(piece, room);
    buf.push_str(kept);
    piece.len() - kept.len()
}
