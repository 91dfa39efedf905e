//! Kafka wire protocol.
//!
//! Every message is `[size: i32 BE][...]`. Requests start `[api_key: i16]
//! [api_version: i16][correlation_id: i32][client_id: nullable string]`,
//! responses `[correlation_id: i32]`; a broker answers a connection's
//! requests in order, so a response is matched by correlation id (requests
//! before it that got none are dropped). Counted: every request (coroot
//! counts every API key), except a Produce with acks=0, which the broker
//! never answers. Status: `ok` (as coroot: per-partition error codes sit
//! deep in the response body). The request's method is Produce for API key
//! 0 and Consume for Fetch (1), Unknown for the rest; coroot exports no
//! method label for Kafka, so it is information for the registry only.

use crate::framer::{Framer, Inflight, Len, be_u16, be_u32, completed, is_request, lost_place};
use crate::{Chunk, Method, Protocol, Request, Role, SessionStats, Status};

const API_PRODUCE: u16 = 0;
const API_FETCH: u16 = 1;
/// Highest API key accepted (Kafka 3.x/4.x define fewer than 80).
const API_KEY_MAX: u16 = 100;
/// Kafka's socket.request.max.bytes defaults to 100 MiB.
const MESSAGE_MAX: u64 = 128 << 20;
/// Head bytes looked at: a Produce request's header, client id and
/// transactional id, to find `acks`.
const HEAD: usize = 160;

fn message_len(h: &[u8]) -> Len {
    let n = u64::from(be_u32(h, 0));
    if !(4..=MESSAGE_MAX).contains(&n) {
        Len::Garbage
    } else {
        Len::Total(4 + n)
    }
}

/// An unsigned varint (flexible versions' compact lengths and tag counts).
fn uvarint(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..35).step_by(7) {
        let byte = *b.get(*at)?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// `acks` of a Produce request if its head shows it.
fn produce_acks(h: &[u8], version: u16) -> Option<i16> {
    let mut at = 12;
    // client_id: nullable string, i16 length (-1 null), in every header version.
    let n = be_u16(h, at) as i16;
    at += 2 + n.max(0) as usize;
    if version >= 9 {
        // Request header v2: tagged fields (count, then tag/size/data each).
        let count = uvarint(h, &mut at)?;
        for _ in 0..count.min(8) {
            uvarint(h, &mut at)?;
            let size = uvarint(h, &mut at)?;
            at += size as usize;
        }
    }
    if version >= 3 {
        // transactional_id: compact nullable string (v9+) or i16 length.
        if version >= 9 {
            let n = uvarint(h, &mut at)?;
            at += n.saturating_sub(1) as usize;
        } else {
            let n = be_u16(h, at) as i16;
            at += 2 + n.max(0) as usize;
        }
    }
    let b = h.get(at..at + 2)?;
    Some(i16::from_be_bytes([b[0], b[1]]))
}

#[derive(Debug, Clone, Copy)]
struct Waiting {
    ts_ns: u64,
    correlation_id: u32,
    method: Method,
}

#[derive(Debug, Default)]
pub(crate) struct KafkaState {
    requests: Framer<HEAD>,
    responses: Framer<8>,
    inflight: Inflight<Waiting>,
}

impl KafkaState {
    pub(crate) fn feed(
        &mut self,
        role: Role,
        chunk: &Chunk,
        out: &mut Vec<Request>,
        stats: &mut SessionStats,
    ) {
        if is_request(role, chunk) {
            let inflight = &mut self.inflight;
            let r = self.requests.feed(chunk, 4, message_len, |h, _, ts| {
                let (key, version, corr) = (be_u16(h, 4), be_u16(h, 6), be_u32(h, 8));
                if h.len() < 12 || key > API_KEY_MAX || version > 30 || corr > i32::MAX as u32 {
                    stats.parse_errors += 1;
                    return;
                }
                let method = match key {
                    API_PRODUCE => Method::Produce,
                    API_FETCH => Method::Consume,
                    _ => Method::Unknown,
                };
                if key == API_PRODUCE && produce_acks(h, version) == Some(0) {
                    return;
                }
                if inflight.push(Waiting {
                    ts_ns: ts,
                    correlation_id: corr,
                    method,
                }) {
                    stats.pending_overflow += 1;
                }
            });
            // Matched by id: a request lost with the place is never
            // answered by another's response, so what waits stays.
            lost_place(r, stats);
        } else {
            let inflight = &mut self.inflight;
            let r = self.responses.feed(chunk, 4, message_len, |h, _, ts| {
                let corr = be_u32(h, 4);
                match inflight.take_in_order(|w| w.correlation_id == corr) {
                    Some((w, _)) => out.push(completed(
                        Protocol::Kafka,
                        Status::Ok,
                        w.ts_ns,
                        ts,
                        w.method,
                    )),
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

    /// A request frame built from the protocol spec (kafka.apache.org/protocol).
    pub(crate) fn request(key: u16, version: u16, corr: u32, body: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&key.to_be_bytes());
        m.extend_from_slice(&version.to_be_bytes());
        m.extend_from_slice(&corr.to_be_bytes());
        m.extend_from_slice(&7u16.to_be_bytes());
        m.extend_from_slice(b"rdkafka");
        if version >= 9 {
            m.push(0); // no tagged fields
        }
        m.extend_from_slice(body);
        let mut f = (m.len() as u32).to_be_bytes().to_vec();
        f.extend(m);
        f
    }

    pub(crate) fn response(corr: u32, body: &[u8]) -> Vec<u8> {
        let mut f = ((4 + body.len()) as u32).to_be_bytes().to_vec();
        f.extend_from_slice(&corr.to_be_bytes());
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
    fn produce_fetch_metadata_and_acks0() {
        let mut s = KafkaState::default();
        let (mut out, mut st) = (Vec::new(), SessionStats::default());
        // Produce v3 (null transactional id, acks=1), v9 (compact, acks=-1),
        // v7 with acks=0 (never answered), Fetch v11, Metadata v9.
        let p3 = request(0, 3, 1, &[0xff, 0xff, 0, 1, 0, 0, 0x75, 0x30]);
        let p9 = request(0, 9, 2, &[0, 0xff, 0xff, 0, 0, 0x75, 0x30]);
        let p0 = request(0, 7, 3, &[0xff, 0xff, 0, 0, 0, 0, 0x75, 0x30]);
        let f = request(1, 11, 4, &[0xff, 0xff, 0xff, 0xff, 0, 0, 1, 0xf4]);
        let m = request(3, 9, 5, &[0]);
        let mut all = p3.clone();
        all.extend(&p9);
        all.extend(&p0);
        s.feed(
            Role::Client,
            &c(Direction::Egress, 10, &all),
            &mut out,
            &mut st,
        );
        s.feed(
            Role::Client,
            &c(Direction::Egress, 11, &f),
            &mut out,
            &mut st,
        );
        s.feed(
            Role::Client,
            &c(Direction::Egress, 12, &m),
            &mut out,
            &mut st,
        );
        // A consumer reads the 4-byte size first, then the rest.
        for (corr, ts) in [(1u32, 20u64), (2, 21), (4, 22), (5, 23)] {
            let r = response(corr, &[0; 40]);
            s.feed(
                Role::Client,
                &c(Direction::Ingress, ts, &r[..4]),
                &mut out,
                &mut st,
            );
            s.feed(
                Role::Client,
                &c(Direction::Ingress, ts, &r[4..]),
                &mut out,
                &mut st,
            );
        }
        assert_eq!(st, SessionStats::default());
        let got: Vec<_> = out.iter().map(|r| (r.method, r.duration_ns)).collect();
        assert_eq!(
            got,
            vec![
                (Method::Produce, 10),
                (Method::Produce, 11),
                (Method::Consume, 11),
                (Method::Unknown, 11)
            ]
        );
    }

    #[test]
    fn garbage_and_unmatched() {
        let mut s = KafkaState::default();
        let (mut out, mut st) = (Vec::new(), SessionStats::default());
        s.feed(
            Role::Client,
            &c(Direction::Egress, 1, b"GET / HTTP/1.1\r\n\r\n"),
            &mut out,
            &mut st,
        );
        s.feed(
            Role::Client,
            &c(Direction::Ingress, 2, &response(9, &[1, 2])),
            &mut out,
            &mut st,
        );
        assert_eq!(out.len(), 0);
        assert_eq!((st.parse_errors, st.unmatched_responses), (1, 1));
    }
}
