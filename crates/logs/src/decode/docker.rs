//! Docker's json-file driver: `{"log":"text\n","stream":"stdout","time":"2024-..."}` per line.
//! Docker splits lines longer than 16 KiB into several entries, only the last ending in "\n";
//! the decoder joins them (per stream) up to its bound.

use super::{DecodeError, Record, Stream, StreamJoiner};

#[derive(serde::Deserialize)]
struct Line {
    log: String,
    #[serde(default)]
    stream: Option<String>,
    #[serde(default)]
    time: Option<String>,
}

/// Decoder for one container's json-file log.
#[derive(Debug)]
pub struct DockerJsonDecoder {
    joiner: StreamJoiner,
}

impl DockerJsonDecoder {
    /// A decoder joining split lines into messages of at most `max_message_bytes` bytes.
    pub fn new(max_message_bytes: usize) -> Self {
        DockerJsonDecoder {
            joiner: StreamJoiner::new(max_message_bytes),
        }
    }

    /// Decodes one line of the file. `Ok(None)` while a split message is incomplete.
    pub fn decode(&mut self, line: &[u8]) -> Result<Option<Record>, DecodeError> {
        let parsed: Line = match serde_json::from_slice(line) {
            Ok(l) => l,
            // Docker escapes what it writes, but a file may have been cut or corrupted: retry
            // with invalid UTF-8 replaced before giving up.
            Err(e) if std::str::from_utf8(line).is_err() => {
                let lossy = String::from_utf8_lossy(line);
                serde_json::from_str(&lossy).map_err(|_| DecodeError::DockerJson {
                    len: line.len(),
                    source: e,
                })?
            }
            Err(e) => {
                return Err(DecodeError::DockerJson {
                    len: line.len(),
                    source: e,
                });
            }
        };
        let stream = parsed
            .stream
            .as_deref()
            .and_then(|s| Stream::parse(s.as_bytes()));
        let stream = stream.unwrap_or(Stream::Unknown);
        let complete = parsed.log.ends_with('\n');
        let text = parsed.log.trim_end_matches(['\n', '\r']);
        Ok(self.joiner.push(stream, || parsed.time, text, complete))
    }

    /// Returns a split message whose last part never came (file rotated, container stopped).
    pub fn flush(&mut self) -> Vec<Record> {
        self.joiner.flush()
    }
}
