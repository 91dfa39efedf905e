//! Raw lines of one source to messages: the format's decoder (Docker json-file, CRI, plain),
//! then multi-line joining per stream. Pure; the caller detects levels and counts.

use crate::decode::{
    CriDecoder, DecodeError, DockerJsonDecoder, MultilineJoiner, Record, Stream, decode_plain,
};
use std::time::{Duration, Instant};

/// The on-disk format of a log file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    DockerJson,
    Cri,
    Plain,
}

#[derive(Debug)]
enum Decoder {
    DockerJson(DockerJsonDecoder),
    Cri(CriDecoder),
    Plain,
}

/// Decoder + one multi-line joiner per stream (stdout and stderr are joined separately, so
/// interleaved writes of the two do not merge).
#[derive(Debug)]
pub struct Pipeline {
    decoder: Decoder,
    joiners: [MultilineJoiner; 3],
    last_push: Option<Instant>,
    /// Bytes of the message in progress per joiner (an estimate of what it holds).
    pending: [usize; 3],
    max_message_bytes: usize,
    /// Bytes dropped from messages longer than the bound (decoder or joiner).
    pub truncated_bytes: u64,
}

impl Pipeline {
    /// A pipeline for `format` producing messages of at most `max_message_bytes` bytes and
    /// `max_message_lines` lines.
    pub fn new(format: Format, max_message_bytes: usize, max_message_lines: usize) -> Self {
        let decoder = match format {
            Format::DockerJson => Decoder::DockerJson(DockerJsonDecoder::new(max_message_bytes)),
            Format::Cri => Decoder::Cri(CriDecoder::new(max_message_bytes)),
            Format::Plain => Decoder::Plain,
        };
        let j = || MultilineJoiner::new(max_message_bytes, max_message_lines);
        Pipeline {
            decoder,
            joiners: [j(), j(), j()],
            last_push: None,
            pending: [0; 3],
            max_message_bytes,
            truncated_bytes: 0,
        }
    }

    /// Feeds one raw line (without its newline); completed messages are appended to `out`.
    /// A line the decoder rejects is an error (count it and go on).
    pub fn push_line(
        &mut self,
        line: &[u8],
        now: Instant,
        out: &mut Vec<String>,
    ) -> Result<(), DecodeError> {
        let record = match &mut self.decoder {
            Decoder::Plain => Record {
                stream: Stream::Unknown,
                time: None,
                message: decode_plain(line),
                truncated: 0,
            },
            Decoder::DockerJson(d) => match d.decode(line)? {
                Some(r) => r,
                None => return Ok(()),
            },
            Decoder::Cri(d) => match d.decode(line)? {
                Some(r) => r,
                None => return Ok(()),
            },
        };
        self.join(record, out);
        self.last_push = Some(now);
        Ok(())
    }

    /// Hands out messages held by the joiners when no line came for `idle` (so the last message
    /// of a burst is not held back until the next one starts).
    pub fn flush_idle(&mut self, now: Instant, idle: Duration, out: &mut Vec<String>) {
        if let Some(t) = self.last_push
            && now.saturating_duration_since(t) >= idle
        {
            self.flush_joiners(out);
        }
    }

    /// Hands out everything held: split messages whose end never came, then the joiners'.
    pub fn flush(&mut self, out: &mut Vec<String>) {
        let records = match &mut self.decoder {
            Decoder::DockerJson(d) => d.flush(),
            Decoder::Cri(d) => d.flush(),
            Decoder::Plain => Vec::new(),
        };
        for r in records {
            self.join(r, out);
        }
        self.flush_joiners(out);
    }

    /// Approximate heap bytes held: the structure and the multi-line messages in progress
    /// (tracked from what was pushed). Split Docker/CRI lines waiting for their end are not
    /// counted (at most 2 x `max_message_bytes`, and only while a split line is incomplete).
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.pending.iter().sum::<usize>()
    }

    fn join(&mut self, r: Record, out: &mut Vec<String>) {
        self.truncated_bytes += r.truncated as u64;
        let i = match r.stream {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
            Stream::Unknown => 2,
        };
        let was_pending = self.joiners[i].is_pending();
        let done = self.joiners[i].push(&r.message);
        let len = r.message.len().min(self.max_message_bytes);
        if done.is_some() || !was_pending {
            self.pending[i] = len;
        } else {
            self.pending[i] = (self.pending[i] + len + 1).min(self.max_message_bytes);
        }
        if let Some(m) = done {
            out.push(m);
        }
    }

    fn flush_joiners(&mut self, out: &mut Vec<String>) {
        for j in &mut self.joiners {
            if let Some(m) = j.flush() {
                out.push(m);
            }
        }
        self.pending = [0; 3];
        self.last_push = None;
    }
}
