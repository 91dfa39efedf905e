//! ZooKeeper client protocol (jute over TCP).
//!
//! Every packet is `[length: u32 BE][body]`. The session opens with a
//! ConnectRequest / ConnectResponse pair (no xid), skipped. Then requests
//! are `[xid: i32][op: i32]...` and responses `[xid: i32][zxid: i64][err:
//! i32]...`, answered in order; a response is matched by xid (requests
//! before it that never got one are dropped). Watch notifications (xid -1)
//! answer no request. Counted: every request with a known op, pings (xid
//! -2) and auth/setWatches included, as coroot-node-agent counts them.
//! Status (coroot's): err 0 is `ok`, any other error code (NoNode,
//! NodeExists, ...) `failed`.

use crate::framer::{Framer, Inflight, Len, be_u32, completed, is_request, lost_place};
use crate::{Chunk, Method, Protocol, Request, Role, SessionStats, Status};

const XID_WATCH: i32 = -1;
/// Larger than ZooKeeper's default jute.maxbuffer (1 MiB) by far: a length
/// beyond it is not ZooKeeper.
const PACKET_MAX: u64 = 64 << 20;

fn packet_len(h: &[u8]) -> Len {
    let n = u64::from(be_u32(h, 0));
    if n > PACKET_MAX {
        Len::Garbage
    } else {
        Len::Total(4 + n)
    }
}

fn known_op(op: i32) -> bool {
    matches!(op, 0..=21 | -11 | 100..=106)
}

#[derive(Debug, Clone, Copy)]
struct Waiting {
    ts_ns: u64,
    xid: i32,
}

#[derive(Debug, Default)]
pub(crate) struct ZookeeperState {
    requests: Framer<12>,
    responses: Framer<20>,
    inflight: Inflight<Waiting>,
    /// The first request was a ConnectRequest: the first response is its
    /// ConnectResponse.
    connecting: bool,
    seen_request: bool,
    seen_response: bool,
}

impl ZookeeperState {
    pub(crate) fn feed(
        &mut self,
        role: Role,
        chunk: &Chunk,
        out: &mut Vec<Request>,
        stats: &mut SessionStats,
    ) {
        if is_request(role, chunk) {
            let (inflight, seen, connecting) = (
                &mut self.inflight,
                &mut self.seen_request,
                &mut self.connecting,
            );
            let r = self.requests.feed(chunk, 4, packet_len, |h, total, ts| {
                let first = !*seen;
                *seen = true;
                // ConnectRequest: protocolVersion 0, 44 or 45 bytes.
                if first && (total == 48 || total == 49) && be_u32(h, 4) == 0 {
                    *connecting = true;
                    return;
                }
                if h.len() < 12 || !known_op(be_u32(h, 8) as i32) {
                    stats.parse_errors += 1;
                    return;
                }
                if inflight.push(Waiting {
                    ts_ns: ts,
                    xid: be_u32(h, 4) as i32,
                }) {
                    stats.pending_overflow += 1;
                }
            });
            // Matched by id: a request lost with the place is never
            // answered by another's response, so what waits stays.
            lost_place(r, stats);
        } else {
            let (inflight, seen, connecting) = (
                &mut self.inflight,
                &mut self.seen_response,
                &mut self.connecting,
            );
            let r = self.responses.feed(chunk, 4, packet_len, |h, _, ts| {
                let first = !*seen;
                *seen = true;
                if first && *connecting {
                    *connecting = false;
                    return;
                }
                if h.len() < 20 {
                    stats.parse_errors += 1;
                    return;
                }
                let xid = be_u32(h, 4) as i32;
                if xid == XID_WATCH {
                    return;
                }
                match inflight.take_in_order(|w| w.xid == xid) {
                    Some((w, _)) => {
                        let status = if be_u32(h, 16) == 0 {
                            Status::Ok
                        } else {
                            Status::Failed
                        };
                        out.push(completed(
                            Protocol::Zookeeper,
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
mod tests {
    use super::*;
    use crate::Direction;
    use crate::testutil16::{run, tally};

    #[test]
    fn recorded_kazoo_session() {
        for role in [Role::Client, Role::Server] {
            let (out, stats) = run(
                include_str!("../fixtures/zookeeper.txt"),
                role,
                ZookeeperState::feed,
            );
            assert_eq!(tally(&out), (8, 5), "{role:?}");
            assert_eq!(stats, SessionStats::default());
            assert!(out.iter().all(|r| r.duration_ns == 1000));
        }
    }

    #[test]
    fn watch_events_and_pings() {
        let mut s = ZookeeperState::default();
        let (mut out, mut st) = (Vec::new(), SessionStats::default());
        let ping = [0, 0, 0, 8, 0xff, 0xff, 0xff, 0xfe, 0, 0, 0, 11];
        let c = Chunk {
            ts_ns: 10,
            direction: Direction::Egress,
            size: 12,
            payload: &ping,
        };
        s.feed(Role::Client, &c, &mut out, &mut st);
        // A watch event arrives first, then the ping's answer.
        let mut r = vec![
            0, 0, 0, 16, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0,
        ];
        r.extend_from_slice(&[
            0, 0, 0, 16, 0xff, 0xff, 0xff, 0xfe, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0,
        ]);
        let c = Chunk {
            ts_ns: 15,
            direction: Direction::Ingress,
            size: r.len() as u32,
            payload: &r,
        };
        s.feed(Role::Client, &c, &mut out, &mut st);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].duration_ns, 5);
        assert_eq!(st, SessionStats::default());
    }
}
