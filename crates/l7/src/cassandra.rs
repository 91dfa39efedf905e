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
//! Not followed: protocol v5's framing layer, which wraps envelopes in
//! CRC-checked (and possibly LZ4-compressed) segments once STARTUP is
//! answered; those segments count as parse errors. Drivers negotiate v5
//! only with Cassandra 4.0+ and fall back to v4 otherwise.

use crate::framer::{Framer, Inflight, Len, be_u16, be_u32, completed, is_request, lost_place};
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
}

impl CassandraState {
    pub(crate) fn feed(
        &mut self,
        role: Role,
        chunk: &Chunk,
        out: &mut Vec<Request>,
        stats: &mut SessionStats,
    ) {
        if is_request(role, chunk) {
            let inflight = &mut self.inflight;
            let r = self
                .requests
                .feed(chunk, 9, envelope_len(false), |h, _, ts| {
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
                });
            // Matched by id: a request lost with the place is never
            // answered by another's response, so what waits stays.
            lost_place(r, stats);
        } else {
            let inflight = &mut self.inflight;
            let r = self
                .responses
                .feed(chunk, 9, envelope_len(true), |h, _, ts| {
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
                });
            // Matched by id: a request lost with the place is never
            // answered by another's response, so what waits stays.
            lost_place(r, stats);
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
                    &envelope(v | 0x80, 1, 0x08, b"\x00\x00\x00\x01"),
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
