//! FoundationDB's FlowTransport.
//!
//! A connection opens with a ConnectPacket each way (`[length: u32 LE]
//! [protocol version: u64 LE]...`; the version's top 4 bits are flags, the
//! object-serializer flag set by every current release, so bytes 6-7 read
//! 0x1FDB). Then every packet is `[length: u32 LE][checksum: XXH3-64, only
//! without TLS][endpoint token: 16 bytes][message]` (FoundationDB 7.x; 6.3
//! had a 4-byte CRC32 there, a layout not followed)
//! with `length` counting token and message; a message is flatbuffers-
//! serialized `[root offset: u32][file identifier: u32]...`. The file
//! identifier names the type: a request (GetValueRequest, CommitTransaction-
//! Request, ...) or a reply (ErrorOr-wrapped: the type is its low 24 bits).
//!
//! A reply is addressed to the reply-promise token carried inside its
//! request, which only full deserialization finds; coroot-node-agent
//! matches replies to requests first-come first-served, and so does this
//! parser: a known request waits, the next known reply in the other
//! direction completes the oldest waiting request. Counts are exact when
//! every request is answered; with many requests in flight the latency of
//! each is approximate. Status: `ok` (as coroot's). The identifiers are
//! coroot-node-agent's list (FoundationDB 7.x's file identifiers).
//!
//! Only plain TCP is followed: under TLS the packets lack the checksum, a
//! layout not followed here (the agent sees that plaintext only if
//! FoundationDB's TLS library is one its uprobes cover).

use crate::framer::{Framer, Inflight, Len, completed, is_request, le_u32, lost_place};
use crate::{Chunk, Method, Protocol, Request, Role, SessionStats, Status};

/// Request file identifiers.
const REQUESTS: &[u32] = &[
    8454530, 6795746, 6795747, 93948, 838566, 7554186, 8500026, 10457870, 14747733, 214728,
    2828131, 9144680, 9467439, 9467438, 14332605, 1254174, 905920, 16665642, 8265613, 10344153,
    15604392, 6416816, 4022206, 11001131, 10072821, 13290999, 14419140, 4707015, 10624019, 4146513,
    72435, 5838547, 2567474, 1985879, 4149140, 4150141, 2508597, 905381, 4844288, 7932681, 4980139,
    4180191, 2378138, 923040, 103841, 178935, 601281, 3104275, 2323417,
    // Interfaces (server roles) sent as requests.
    15302073, 8743216, 8954922, 5979145, 5983305, 12383874, 16308510, 1755944, 8358753, 369169,
    1303419, 4983265, 14712718, 15888863, 985636,
];

/// Reply file identifiers (low 24 bits).
const REPLIES: &[u32] = &[
    1378929, 1783066, 1783067, 11226513, 15709388, 1389929, 3, 11, 11365689, 10072848, 15491478,
    10390645, 15877089, 3568822, 9467439, 9980504, 9956350, 16475696, 14465374, 3152015, 9908409,
    6095215, 6858612, 2923309, 6857512, 12680327, 10636023, 2034110, 2934851, 234859, 4014928,
    11544290, 11530792, 7784298, 7784299, 14254927, 3985192, 5355080, 13838807, 16684234, 2010442,
];

/// FoundationDB's packet size limit (FLOW_KNOBS->PACKET_LIMIT) is 100 MB.
const PACKET_MAX: u64 = 128 << 20;

#[derive(Debug, Default)]
pub(crate) struct FoundationDbState {
    requests: Framer<36>,
    responses: Framer<36>,
    request_started: bool,
    response_started: bool,
    inflight: Inflight<u64>,
}

fn is_connect(h: &[u8]) -> bool {
    h.len() >= 12 && h[10] == 0xdb && h[11] == 0x1f
}

/// The packet length, given whether it is the first of its direction (a
/// ConnectPacket).
fn packet_len(first: bool) -> impl Fn(&[u8]) -> Len {
    move |h: &[u8]| {
        let n = u64::from(le_u32(h, 0));
        if n > PACKET_MAX {
            Len::Garbage
        } else if first && is_connect(h) {
            Len::Total(4 + n)
        } else {
            Len::Total(12 + n)
        }
    }
}

/// The file identifier: after length, checksum, token and root offset.
const FILE_ID_AT: usize = 32;

impl FoundationDbState {
    pub(crate) fn feed(
        &mut self,
        role: Role,
        chunk: &Chunk,
        out: &mut Vec<Request>,
        stats: &mut SessionStats,
    ) {
        let inflight = &mut self.inflight;
        if is_request(role, chunk) {
            let first = !self.request_started;
            self.request_started = true;
            let r = self
                .requests
                .feed(chunk, 12, packet_len(first), |h, _, ts| {
                    if first && is_connect(h) {
                        return;
                    }
                    if h.len() >= 36
                        && REQUESTS.contains(&le_u32(h, FILE_ID_AT))
                        && inflight.push(ts)
                    {
                        stats.pending_overflow += 1;
                    }
                });
            if lost_place(r, stats) {
                self.inflight.clear();
            }
        } else {
            let first = !self.response_started;
            self.response_started = true;
            let r = self
                .responses
                .feed(chunk, 12, packet_len(first), |h, _, ts| {
                    if first && is_connect(h) {
                        return;
                    }
                    if h.len() >= 36 && REPLIES.contains(&(le_u32(h, FILE_ID_AT) & 0x00ff_ffff)) {
                        match inflight.pop_front() {
                            Some(start) => out.push(completed(
                                Protocol::FoundationDb,
                                Status::Ok,
                                start,
                                ts,
                                Method::Unknown,
                            )),
                            None => stats.unmatched_responses += 1,
                        }
                    }
                });
            if lost_place(r, stats) {
                self.inflight.clear();
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::Direction;

    /// A ConnectPacket as FlowTransport writes it (protocol 7.1).
    pub(crate) fn connect() -> Vec<u8> {
        let mut p = Vec::new();
        p.extend_from_slice(&0x1fdb_00b0_7100_0001u64.to_le_bytes());
        p.extend_from_slice(&4500u16.to_le_bytes());
        p.extend_from_slice(&42u64.to_le_bytes());
        p.extend_from_slice(&0x7f00_0001u32.to_le_bytes());
        p.extend_from_slice(&0u16.to_le_bytes());
        p.extend_from_slice(&[0; 16]);
        let mut f = (p.len() as u32).to_le_bytes().to_vec();
        f.extend(p);
        f
    }

    /// A packet carrying a message of type `file_id` (checksummed if `sum`).
    pub(crate) fn packet(file_id: u32, sum: bool, body: &[u8]) -> Vec<u8> {
        let mut m = vec![0xab; 16]; // endpoint token
        m.extend_from_slice(&8u32.to_le_bytes()); // root offset
        m.extend_from_slice(&file_id.to_le_bytes());
        m.extend_from_slice(body);
        let mut f = (m.len() as u32).to_le_bytes().to_vec();
        if sum {
            f.extend_from_slice(&0x1234_5678_9abc_def0u64.to_le_bytes());
        }
        f.extend(m);
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
    fn requests_and_replies_both_layouts() {
        {
            let sum = true;
            let mut s = FoundationDbState::default();
            let (mut out, mut st) = (Vec::new(), SessionStats::default());
            let mut w = connect();
            w.extend(packet(8454530, sum, &[0; 40])); // GetValueRequest
            s.feed(
                Role::Client,
                &c(Direction::Egress, 10, &w),
                &mut out,
                &mut st,
            );
            let mut r = connect();
            r.extend(packet(2 << 24 | 1378929, sum, &[0; 20])); // ErrorOr<GetValueReply>
            s.feed(
                Role::Client,
                &c(Direction::Ingress, 14, &r),
                &mut out,
                &mut st,
            );
            s.feed(
                Role::Client,
                &c(Direction::Egress, 20, &packet(93948, sum, &[0; 600])),
                &mut out,
                &mut st,
            );
            s.feed(
                Role::Client,
                &c(Direction::Ingress, 29, &packet(2 << 24 | 2010442, sum, &[])),
                &mut out,
                &mut st,
            );
            // An unknown type: neither a request nor a reply.
            s.feed(
                Role::Client,
                &c(Direction::Ingress, 30, &packet(777, sum, &[1])),
                &mut out,
                &mut st,
            );
            assert_eq!(st, SessionStats::default(), "checksum {sum}");
            let got: Vec<_> = out.iter().map(|r| r.duration_ns).collect();
            assert_eq!(got, vec![4, 9], "checksum {sum}");
        }
    }
}
