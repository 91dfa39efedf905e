//! Cassandra CQL native protocol, versions 3 to 5 (envelopes).
//!
//! Every envelope is `[version: u8][flags: u8][stream: i16][opcode: u8]
//! [length: u32][body]` (BE); the version's top bit says response. Requests
//! are multiplexed by stream id, so a response is matched with the request
//! of its stream, in any order. Counted (coroot-node-agent's choice): QUERY,
//! PREPARE, EXECUTE and BATCH. STARTUP, OPTIONS, REGISTER and AUTH_RESPONSE
//! are matched, not counted; server-pushed EVENTs (stream -1) answer none.
//! Status: an ERROR response is `failed`, any other (RESULT) `ok`.
//!
//! Protocol v5 (Cassandra 4.0+) wraps envelopes in CRC-checked segments
//! once STARTUP is answered: the segments are unwrapped and their payloads
//! followed as the envelope stream. Not followed: LZ4-compressed segments
//! (STARTUP with a COMPRESSION option), which the parser then leaves alone
//! for the rest of the connection; v3/v4 compression only compresses bodies
//! and is no obstacle.

use crate::framer::{
    FrameError, Framer, Inflight, Len, be_u16, be_u32, completed, is_request, lost_place,
};
use crate::{Chunk, Method, Protocol, Request, Role, SessionStats, Status};

const OP_ERROR: u8 = 0x00;
const OP_QUERY: u8 = 0x07;
const OP_PREPARE: u8 = 0x09;
const OP_EXECUTE: u8 = 0x0a;
const OP_EVENT: u8 = 0x0c;
const OP_BATCH: u8 = 0x0d;
/// The native protocol's frame size limit is 256 MB.
const ENVELOPE_MAX: u64 = 256 << 20;

fn envelope_len(response: bool) -> impl Fn(&[u8]) -> Len {
    move |h: &[u8]| {
        let version = h[0] & 0x7f;
        if !(3..=5).contains(&version) || (h[0] & 0x80 != 0) != response || h[4] > 0x10 {
            return Len::Garbage;
        }
        let n = u64::from(be_u32(h, 5));
        if n > ENVELOPE_MAX {
            Len::Garbage
        } else {
            Len::Total(9 + n)
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Waiting {
    ts_ns: u64,
    stream: u16,
    counted: bool,
}

#[derive(Debug, Default)]
pub(crate) struct CassandraState {
    requests: Framer<9>,
    responses: Framer<9>,
    inflight: Inflight<Waiting>,
    /// v5: the client sent STARTUP at version 5 (uncompressed): its next
    /// bytes, and the server's after READY/AUTHENTICATE, are segments.
    v5_startup: bool,
    /// v5 segments of each direction, once framing is on.
    request_segments: Option<Segments>,
    response_segments: Option<Segments>,
    /// STARTUP asked for compressed v5 segments (LZ4): not parseable.
    compressed: bool,
}

const OP_STARTUP: u8 = 0x01;
const OP_READY: u8 = 0x02;
const OP_AUTHENTICATE: u8 = 0x03;

/// Protocol v5's framing layer (native_protocol_v5.spec, section 2): after
/// STARTUP is answered, each direction is a sequence of segments `[header:
/// 3 bytes LE, payload length in the low 17 bits, then the self-contained
/// flag][CRC24: 3 bytes][payload][CRC32: 4 bytes]`, whose payloads,
/// concatenated, are the envelope stream (a large envelope spans several
/// segments, a self-contained segment holds whole envelopes). The CRCs are
/// not checked: the envelopes inside are.
#[derive(Debug, Default)]
struct Segments {
    header: [u8; 6],
    have: usize,
    payload_left: u64,
    trailer_left: u64,
}

impl Segments {
    /// Hands the payload pieces of `chunk` to `sub` as chunks of their own.
    fn feed(&mut self, chunk: &Chunk, mut sub: impl FnMut(&Chunk)) -> Result<(), FrameError> {
        let size = u64::from(chunk.size).max(chunk.payload.len() as u64);
        let visible = chunk.payload.len() as u64;
        let mut pos = 0u64;
        while pos < size {
            if self.payload_left > 0 {
                let n = self.payload_left.min(size - pos);
                let seen =
                    &chunk.payload[pos.min(visible) as usize..(pos + n).min(visible) as usize];
                sub(&Chunk {
                    ts_ns: chunk.ts_ns,
                    direction: chunk.direction,
                    size: n as u32,
                    payload: seen,
                });
                pos += n;
                self.payload_left -= n;
                if self.payload_left == 0 {
                    self.trailer_left = 4;
                }
                continue;
            }
            if self.trailer_left > 0 {
                let n = self.trailer_left.min(size - pos);
                pos += n;
                self.trailer_left -= n;
                continue;
            }
            if pos >= visible {
                *self = Segments::default();
                return Err(FrameError::Unseen);
            }
            let take = (6 - self.have).min((visible - pos) as usize);
            let at = pos as usize;
            self.header[self.have..self.have + take].copy_from_slice(&chunk.payload[at..at + take]);
            self.have += take;
            pos += take as u64;
            if self.have == 6 {
                let h = &self.header;
                let len =
                    (u64::from(h[0]) | u64::from(h[1]) << 8 | u64::from(h[2]) << 16) & 0x1_ffff;
                self.have = 0;
                self.payload_left = len;
                if len == 0 {
                    self.trailer_left = 4;
                }
            }
        }
        Ok(())
    }
}

impl CassandraState {
    pub(crate) fn feed(
        &mut self,
        role: Role,
        chunk: &Chunk,
        out: &mut Vec<Request>,
        stats: &mut SessionStats,
    ) {
        if self.compressed {
            return;
        }
        let request = is_request(role, chunk);
        let segments = if request {
            self.request_segments.take()
        } else {
            self.response_segments.take()
        };
        match segments {
            None => self.envelopes(request, chunk, out, stats),
            Some(mut seg) => {
                let r = seg.feed(chunk, |sub| self.envelopes(request, sub, out, stats));
                lost_place(r, stats);
                if request {
                    self.request_segments = Some(seg);
                } else {
                    self.response_segments = Some(seg);
                }
            }
        }
    }

    /// Envelopes of one direction (`chunk` is a segment's payload piece
    /// under v5 framing).
    fn envelopes(
        &mut self,
        request: bool,
        chunk: &Chunk,
        out: &mut Vec<Request>,
        stats: &mut SessionStats,
    ) {
        let inflight = &mut self.inflight;
        let (mut startup_v5, mut ready_v5) = (false, false);
        let r = if request {
            self.requests
                .feed(chunk, 9, envelope_len(false), |h, _, ts| {
                    if h[4] == OP_STARTUP {
                        startup_v5 = h[0] == 5;
                    }
                    let counted = matches!(h[4], OP_QUERY | OP_PREPARE | OP_EXECUTE | OP_BATCH);
                    // A stream id reused before its answer: the old request is lost.
                    let stream = be_u16(h, 2);
                    let _ = inflight.take(|w| w.stream == stream);
                    if inflight.push(Waiting {
                        ts_ns: ts,
                        stream,
                        counted,
                    }) {
                        stats.pending_overflow += 1;
                    }
                })
        } else {
            self.responses
                .feed(chunk, 9, envelope_len(true), |h, _, ts| {
                    ready_v5 = h[0] == 0x85 && matches!(h[4], OP_READY | OP_AUTHENTICATE);
                    let stream = be_u16(h, 2);
                    if h[4] == OP_EVENT {
                        return;
                    }
                    match inflight.take(|w| w.stream == stream) {
                        Some(w) if w.counted => {
                            let status = if h[4] == OP_ERROR {
                                Status::Failed
                            } else {
                                Status::Ok
                            };
                            out.push(completed(
                                Protocol::Cassandra,
                                status,
                                w.ts_ns,
                                ts,
                                Method::Unknown,
                            ));
                        }
                        Some(_) => {}
                        None => stats.unmatched_responses += 1,
                    }
                })
        };
        // Matched by id: a request lost with the place is never answered by
        // another's response, so what waits stays.
        lost_place(r, stats);
        if startup_v5 && self.request_segments.is_none() {
            // The STARTUP options map names the compression, if any.
            self.compressed = chunk.payload.windows(11).any(|w| w == b"COMPRESSION");
            self.v5_startup = true;
            self.request_segments = Some(Segments::default());
        }
        if ready_v5 && self.v5_startup && self.response_segments.is_none() {
            self.response_segments = Some(Segments::default());
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::Direction;

    /// An envelope built from native_protocol_v4.spec section 2.
    pub(crate) fn envelope(version: u8, stream: i16, opcode: u8, body: &[u8]) -> Vec<u8> {
        let mut f = vec![version, 0];
        f.extend_from_slice(&stream.to_be_bytes());
        f.push(opcode);
        f.extend_from_slice(&(body.len() as u32).to_be_bytes());
        f.extend_from_slice(body);
        f
    }

    /// A v5 segment (native_protocol_v5.spec 2.1), self-contained unless
    /// `part`; CRCs zero (not checked).
    pub(crate) fn segment(payload: &[u8], part: bool) -> Vec<u8> {
        let h = payload.len() as u32 | if part { 0 } else { 1 << 17 };
        let mut f = h.to_le_bytes()[..3].to_vec();
        f.extend_from_slice(&[0; 3]);
        f.extend_from_slice(payload);
        f.extend_from_slice(&[0; 4]);
        f
    }

    /// Envelopes as a v`v` connection carries them after STARTUP.
    fn wrap(v: u8, b: Vec<u8>) -> Vec<u8> {
        if v == 5 { segment(&b, false) } else { b }
    }

    fn c(dir: Direction, ts: u64, b: &[u8]) -> Chunk<'_> {
        Chunk {
            ts_ns: ts,
            direction: dir,
            size: b.len() as u32,
            payload: &b[..b.len().min(512)],
        }
    }

    #[test]
    fn multiplexed_streams_v3_v4_v5() {
        for v in [3u8, 4, 5] {
            let mut s = CassandraState::default();
            let (mut out, mut st) = (Vec::new(), SessionStats::default());
            let startup = envelope(v, 0, 0x01, b"\x00\x01\x00\x0bCQL_VERSION\x00\x053.0.0");
            s.feed(
                Role::Client,
                &c(Direction::Egress, 1, &startup),
                &mut out,
                &mut st,
            );
            s.feed(
                Role::Client,
                &c(Direction::Ingress, 2, &envelope(v | 0x80, 0, 0x02, b"")),
                &mut out,
                &mut st,
            );
            let mut q = envelope(v, 1, OP_QUERY, b"\x00\x00\x00\x08SELECT 1\x00\x01\x00");
            q.extend(envelope(
                v,
                2,
                OP_QUERY,
                b"\x00\x00\x00\x06SELEC 1\x00\x01\x00",
            ));
            q.extend(envelope(
                v,
                3,
                OP_PREPARE,
                b"\x00\x00\x00\x0fSELECT * FROM t",
            ));
            let q = wrap(v, q);
            s.feed(
                Role::Client,
                &c(Direction::Egress, 10, &q),
                &mut out,
                &mut st,
            );
            // Answers out of order, with a schema-change event in between.
            let mut r = envelope(
                v | 0x80,
                2,
                OP_ERROR,
                b"\x00\x00\x20\x00\x00\x0bsyntax err!",
            );
            r.extend(envelope(v | 0x80, -1, OP_EVENT, b"\x00\x0dSCHEMA_CHANGE"));
            r.extend(envelope(v | 0x80, 3, 0x08, b"\x00\x00\x00\x04\x00\x02ab"));
            let r = wrap(v, r);
            s.feed(
                Role::Client,
                &c(Direction::Ingress, 15, &r),
                &mut out,
                &mut st,
            );
            s.feed(
                Role::Client,
                &c(
                    Direction::Ingress,
                    18,
                    &wrap(v, envelope(v | 0x80, 1, 0x08, b"\x00\x00\x00\x01")),
                ),
                &mut out,
                &mut st,
            );
            assert_eq!(st, SessionStats::default());
            let got: Vec<_> = out.iter().map(|r| (r.status, r.duration_ns)).collect();
            assert_eq!(
                got,
                vec![(Status::Failed, 5), (Status::Ok, 5), (Status::Ok, 8)],
                "v{v}"
            );
        }
    }

    #[test]
    fn v5_segments_split_and_compressed() {
        let mut s = CassandraState::default();
        let (mut out, mut st) = (Vec::new(), SessionStats::default());
        let startup = envelope(
            5,
            0,
            OP_STARTUP,
            b"\x00\x01\x00\x0bCQL_VERSION\x00\x053.0.0",
        );
        s.feed(
            Role::Client,
            &c(Direction::Egress, 1, &startup),
            &mut out,
            &mut st,
        );
        s.feed(
            Role::Client,
            &c(Direction::Ingress, 2, &envelope(0x85, 0, OP_READY, b"")),
            &mut out,
            &mut st,
        );
        // A 700-byte QUERY in two segments, the second in a write of its own;
        // then two small ones in one self-contained segment.
        let big = envelope(5, 1, OP_QUERY, &[b'x'; 691]);
        let mut w = segment(&big[..400], true);
        s.feed(
            Role::Client,
            &c(Direction::Egress, 10, &w),
            &mut out,
            &mut st,
        );
        w = segment(&big[400..], true);
        s.feed(
            Role::Client,
            &c(Direction::Egress, 11, &w),
            &mut out,
            &mut st,
        );
        let mut two = envelope(5, 2, OP_EXECUTE, b"\x00\x02id");
        two.extend(envelope(5, 3, OP_BATCH, b"\x00"));
        s.feed(
            Role::Client,
            &c(Direction::Egress, 12, &segment(&two, false)),
            &mut out,
            &mut st,
        );
        let mut r = envelope(0x85, 3, 0x08, b"\x00\x00\x00\x01");
        r.extend(envelope(0x85, 1, 0x08, b"\x00\x00\x00\x01"));
        r.extend(envelope(0x85, 2, OP_ERROR, b"\x00\x00\x25\x00\x00\x00"));
        s.feed(
            Role::Client,
            &c(Direction::Ingress, 20, &segment(&r, false)),
            &mut out,
            &mut st,
        );
        assert_eq!(st, SessionStats::default());
        let got: Vec<_> = out.iter().map(|r| (r.status, r.duration_ns)).collect();
        assert_eq!(
            got,
            vec![(Status::Ok, 8), (Status::Ok, 10), (Status::Failed, 8)]
        );
        // LZ4 segments: left alone, nothing counted, no errors.
        let mut s = CassandraState::default();
        let startup = envelope(
            5,
            0,
            OP_STARTUP,
            b"\x00\x02\x00\x0bCQL_VERSION\x00\x053.0.0\x00\x0bCOMPRESSION\x00\x03lz4",
        );
        s.feed(
            Role::Client,
            &c(Direction::Egress, 1, &startup),
            &mut out,
            &mut st,
        );
        s.feed(
            Role::Client,
            &c(Direction::Egress, 2, b"\x12\x34\x56\x78\x9a\xbc\xde"),
            &mut out,
            &mut st,
        );
        assert_eq!(out.len(), 3);
        assert_eq!(st, SessionStats::default());
    }

    #[test]
    fn garbage_counts() {
        let mut s = CassandraState::default();
        let (mut out, mut st) = (Vec::new(), SessionStats::default());
        s.feed(
            Role::Client,
            &c(
                Direction::Egress,
                1,
                b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
            ),
            &mut out,
            &mut st,
        );
        assert_eq!((out.len(), st.parse_errors), (0, 1));
    }
}
