//! Apache Dubbo 2 protocol (dubbo://).
//!
//! Every message has a 16-byte header: `[magic: 0xdabb][flags: u8][status:
//! u8][request id: u64 BE][body length: u32 BE]`; flags carry request
//! (0x80), two-way (0x40), event (0x20, heartbeats) and the serialization id
//! (low 5 bits). Two-way requests are answered by the response of the same
//! id, in any order. Counted (as coroot-node-agent): two-way requests that
//! are not events; one-way requests get no answer, heartbeats are skipped.
//! Status: 20 (OK) is `ok`; any other (client/server timeout, bad request,
//! bad response, service not found, service error, server error, client
//! error, thread pool exhausted, or an undefined code) `failed`.

use crate::framer::{Framer, Inflight, Len, be_u32, be_u64, completed, is_request, lost_place};
use crate::{Chunk, Method, Protocol, Request, Role, SessionStats, Status};

const FLAG_REQUEST: u8 = 0x80;
const FLAG_TWO_WAY: u8 = 0x40;
const FLAG_EVENT: u8 = 0x20;
const SERIALIZATION_MASK: u8 = 0x1f;
const STATUS_OK: u8 = 20;
/// Dubbo's default payload limit is 8 MiB.
const BODY_MAX: u64 = 64 << 20;

fn message_len(h: &[u8]) -> Len {
    let n = u64::from(be_u32(h, 12));
    if h[0] != 0xda || h[1] != 0xbb || h[2] & SERIALIZATION_MASK == 0 || n > BODY_MAX {
        return Len::Garbage;
    }
    Len::Total(16 + n)
}

#[derive(Debug, Clone, Copy)]
struct Waiting {
    ts_ns: u64,
    id: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Dubbo2State {
    requests: Framer<16>,
    responses: Framer<16>,
    inflight: Inflight<Waiting>,
}

impl Dubbo2State {
    pub(crate) fn feed(
        &mut self,
        role: Role,
        chunk: &Chunk,
        out: &mut Vec<Request>,
        stats: &mut SessionStats,
    ) {
        if is_request(role, chunk) {
            let inflight = &mut self.inflight;
            let r = self.requests.feed(chunk, 16, message_len, |h, _, ts| {
                let flags = h[2];
                if flags & FLAG_REQUEST == 0 {
                    // A response in the request direction: the other end
                    // answering a heartbeat.
                    return;
                }
                if flags & FLAG_TWO_WAY == 0 || flags & FLAG_EVENT != 0 {
                    return;
                }
                if inflight.push(Waiting {
                    ts_ns: ts,
                    id: be_u64(h, 4),
                }) {
                    stats.pending_overflow += 1;
                }
            });
            // Matched by id: a request lost with the place is never
            // answered by another's response, so what waits stays.
            lost_place(r, stats);
        } else {
            let inflight = &mut self.inflight;
            let r = self.responses.feed(chunk, 16, message_len, |h, _, ts| {
                let flags = h[2];
                if flags & (FLAG_REQUEST | FLAG_EVENT) != 0 {
                    return;
                }
                let id = be_u64(h, 4);
                match inflight.take(|w| w.id == id) {
                    Some(w) => {
                        let status = if h[3] == STATUS_OK {
                            Status::Ok
                        } else {
                            Status::Failed
                        };
                        out.push(completed(
                            Protocol::Dubbo2,
                            status,
                            w.ts_ns,
                            ts,
                            Method::Unknown,
                        ));
                    }
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

    /// A message built from the Dubbo 2 protocol spec (hessian2 = serialization 2).
    pub(crate) fn message(flags: u8, status: u8, id: u64, body: &[u8]) -> Vec<u8> {
        let mut m = vec![0xda, 0xbb, flags | 2, status];
        m.extend_from_slice(&id.to_be_bytes());
        m.extend_from_slice(&(body.len() as u32).to_be_bytes());
        m.extend_from_slice(body);
        m
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
    fn requests_heartbeats_and_out_of_order() {
        for role in [Role::Client, Role::Server] {
            let (req_dir, resp_dir) = match role {
                Role::Client => (Direction::Egress, Direction::Ingress),
                Role::Server => (Direction::Ingress, Direction::Egress),
            };
            let mut s = Dubbo2State::default();
            let (mut out, mut st) = (Vec::new(), SessionStats::default());
            let mut w = message(
                0xc0,
                0,
                1,
                b"\x052.0.2\x30\x1eorg.apache.dubbo.demo.DemoService",
            );
            w.extend(message(0xc0, 0, 2, &[0x4e; 700]));
            w.extend(message(0xe0, 0, 3, b"N")); // heartbeat
            w.extend(message(0x80, 0, 4, b"oneway"));
            s.feed(role, &c(req_dir, 100, &w), &mut out, &mut st);
            s.feed(
                role,
                &c(resp_dir, 105, &message(0x20, 20, 3, b"N")),
                &mut out,
                &mut st,
            );
            s.feed(
                role,
                &c(resp_dir, 110, &message(0, 70, 2, b"\x91")),
                &mut out,
                &mut st,
            );
            s.feed(
                role,
                &c(resp_dir, 120, &message(0, 20, 1, b"\x91\x05hello")),
                &mut out,
                &mut st,
            );
            assert_eq!(st, SessionStats::default());
            let got: Vec<_> = out.iter().map(|r| (r.status, r.duration_ns)).collect();
            assert_eq!(
                got,
                vec![(Status::Failed, 10), (Status::Ok, 20)],
                "{role:?}"
            );
        }
    }
}
