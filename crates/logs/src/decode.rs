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

/// Appends `piece` to a message in progress, keeping at most `max` bytes (on a char boundary);
/// returns the number of bytes dropped.
fn append_bounded(buf: &mut String, piece: &str, max: usize) -> usize {
    let room = max.saturating_sub(buf.len());
    let kept = crate::counter::truncate(piece, room);
    buf.push_str(kept);
    piece.len() - kept.len()
}
