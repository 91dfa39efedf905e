//! MySQL / MariaDB client/server protocol.
//!
//! Every packet is `[length: u24 LE][sequence id: u8][body]`. A command
//! starts a new exchange with sequence 0 (its first body byte is the
//! command); the first packet of its response has sequence 1, whatever the
//! response is (OK, ERR, a result set's column count, a prepared
//! statement's OK). So a response's first packet is recognised by its
//! sequence number and matched to the oldest command waiting; the rest of a
//! result set (sequence >= 2) is skipped by length.
//!
//! Counted as queries (coroot-node-agent's choice): COM_QUERY,
//! COM_STMT_PREPARE and COM_STMT_EXECUTE. Other commands with a response
//! (COM_PING, COM_INIT_DB, ...) are matched but not counted; COM_STMT_CLOSE,
//! COM_STMT_SEND_LONG_DATA and COM_QUIT have no response. Status: an ERR
//! packet (0xff) is `failed`, anything else `ok`. The handshake (server
//! greeting, sequence 0 server-side; client login, sequence 1 client-side;
//! auth exchange with sequences >= 2) matches none of this and is skipped.
//!
//! Not followed: the compressed protocol (CLIENT_COMPRESS): its packets
//! frame differently and count as parse errors.

use crate::framer::{Framer, Inflight, Len, completed, is_request, lost_place};
use crate::{Chunk, Method, Protocol, Request, Role, SessionStats, Status};

const COM_QUIT: u8 = 0x01;
const COM_QUERY: u8 = 0x03;
const COM_STMT_PREPARE: u8 = 0x16;
const COM_STMT_EXECUTE: u8 = 0x17;
const COM_STMT_SEND_LONG_DATA: u8 = 0x18;
const COM_STMT_CLOSE: u8 = 0x19;
const ERR_PACKET: u8 = 0xff;

fn packet_len(h: &[u8]) -> Len {
    Len::Total(4 + u64::from(h[0]) + (u64::from(h[1]) << 8) + (u64::from(h[2]) << 16))
}

/// A command waiting for its response.
#[derive(Debug, Clone, Copy)]
struct Waiting {
    ts_ns: u64,
    counted: bool,
}

/// Parser state of one MySQL connection.
#[derive(Debug, Default)]
pub(crate) struct MysqlState {
    requests: Framer<5>,
    responses: Framer<5>,
    inflight: Inflight<Waiting>,
}

impl MysqlState {
    pub(crate) fn feed(
        &mut self,
        role: Role,
        chunk: &Chunk,
        out: &mut Vec<Request>,
        stats: &mut SessionStats,
    ) {
        if is_request(role, chunk) {
            let inflight = &mut self.inflight;
            let r = self.requests.feed(chunk, 4, packet_len, |h, total, ts| {
                // Sequence 0 with a body: a command. Anything else is the
                // handshake, auth, or a continuation of a >16 MB command.
                if h[3] != 0 || total < 5 {
                    return;
                }
                let counted = match h[4] {
                    COM_STMT_CLOSE | COM_STMT_SEND_LONG_DATA | COM_QUIT => return,
                    COM_QUERY | COM_STMT_PREPARE | COM_STMT_EXECUTE => true,
                    _ => false,
                };
                if inflight.push(Waiting { ts_ns: ts, counted }) {
                    stats.pending_overflow += 1;
                }
            });
            if lost_place(r, stats) {
                // A command may have been lost: its response would be
                // matched to the next one.
                self.inflight.clear();
            }
        } else {
            let inflight = &mut self.inflight;
            let r = self.responses.feed(chunk, 4, packet_len, |h, total, ts| {
                if h[3] != 1 || total < 5 {
                    return;
                }
                match inflight.pop_front() {
                    Some(w) if w.counted => {
                        let status = if h[4] == ERR_PACKET {
                            Status::Failed
                        } else {
                            Status::Ok
                        };
                        out.push(completed(
                            Protocol::Mysql,
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
            if lost_place(r, stats) {
                self.inflight.clear();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Direction::{Egress, Ingress};

    fn c(dir: crate::Direction, ts: u64, b: &[u8]) -> Chunk<'_> {
        Chunk {
            ts_ns: ts,
            direction: dir,
            size: b.len() as u32,
            payload: b,
        }
    }

    fn pkt(seq: u8, body: &[u8]) -> Vec<u8> {
        let n = body.len();
        let mut v = vec![n as u8, (n >> 8) as u8, (n >> 16) as u8, seq];
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn query_ok_error_and_result_set() {
        let mut s = MysqlState::default();
        let (mut out, mut st) = (Vec::new(), SessionStats::default());
        // Greeting and login: skipped.
        s.feed(
            Role::Client,
            &c(Ingress, 1, &pkt(0, b"\x0a10.11.6-MariaDB\0")),
            &mut out,
            &mut st,
        );
        s.feed(
            Role::Client,
            &c(Egress, 2, &pkt(1, &[0x85, 0xa6, 0x3f, 0x20, 0, 0, 0, 1])),
            &mut out,
            &mut st,
        );
        s.feed(
            Role::Client,
            &c(Ingress, 3, &pkt(2, &[0, 0, 0, 2, 0, 0, 0])),
            &mut out,
            &mut st,
        );
        // SELECT 1: column count, column def, row, EOF, in one read.
        s.feed(
            Role::Client,
            &c(Egress, 10, &pkt(0, b"\x03SELECT 1")),
            &mut out,
            &mut st,
        );
        let mut rs = pkt(1, &[1]);
        rs.extend(pkt(
            2,
            b"\x03def\0\0\0\x011\0\x0c?\0\x01\0\0\0\x08\x81\0\0\0\0",
        ));
        rs.extend(pkt(3, b"\x011"));
        rs.extend(pkt(4, &[0xfe, 0, 0, 2, 0]));
        s.feed(Role::Client, &c(Ingress, 25, &rs), &mut out, &mut st);
        // A failing query.
        s.feed(
            Role::Client,
            &c(Egress, 30, &pkt(0, b"\x03SELEC")),
            &mut out,
            &mut st,
        );
        s.feed(
            Role::Client,
            &c(Ingress, 31, &pkt(1, b"\xff\x28\x04#42000You have an error")),
            &mut out,
            &mut st,
        );
        // A ping: matched, not counted. A statement close: no response.
        s.feed(
            Role::Client,
            &c(Egress, 40, &pkt(0, &[0x0e])),
            &mut out,
            &mut st,
        );
        s.feed(
            Role::Client,
            &c(Ingress, 41, &pkt(1, &[0, 0, 0, 2, 0, 0, 0])),
            &mut out,
            &mut st,
        );
        s.feed(
            Role::Client,
            &c(Egress, 42, &pkt(0, &[0x19, 1, 0, 0, 0])),
            &mut out,
            &mut st,
        );
        assert_eq!(st, SessionStats::default());
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].status, out[0].duration_ns), (Status::Ok, 15));
        assert_eq!((out[1].status, out[1].duration_ns), (Status::Failed, 1));
    }

    #[test]
    fn server_side_and_split_reads() {
        let mut s = MysqlState::default();
        let (mut out, mut st) = (Vec::new(), SessionStats::default());
        let q = pkt(0, b"\x03INSERT INTO t VALUES (1)");
        // The server reads the header, then the body.
        s.feed(Role::Server, &c(Ingress, 5, &q[..4]), &mut out, &mut st);
        s.feed(Role::Server, &c(Ingress, 6, &q[4..]), &mut out, &mut st);
        s.feed(
            Role::Server,
            &c(Egress, 9, &pkt(1, &[0, 1, 0, 2, 0, 0, 0])),
            &mut out,
            &mut st,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].duration_ns, 4);
        assert_eq!(st, SessionStats::default());
    }

    #[test]
    fn garbage_is_counted_not_matched() {
        let mut s = MysqlState::default();
        let (mut out, mut st) = (Vec::new(), SessionStats::default());
        s.feed(
            Role::Client,
            &c(Egress, 1, &pkt(0, b"\x03SELECT 1")),
            &mut out,
            &mut st,
        );
        // A response whose header claims more bytes than were shown, then
        // a header in the unseen part.
        let b = [0x01, 0, 0, 1, 0x01, 0x05];
        s.feed(
            Role::Client,
            &Chunk {
                ts_ns: 2,
                direction: Ingress,
                size: 100,
                payload: &b,
            },
            &mut out,
            &mut st,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(st.parse_errors, 0, "unseen bytes are not a parse error");
        s.feed(
            Role::Client,
            &c(Ingress, 3, &pkt(1, &[0])),
            &mut out,
            &mut st,
        );
        assert_eq!(st.unmatched_responses, 1);
    }
}

#[cfg(test)]
mod recorded {
    use super::*;
    use crate::testutil16::{run, tally};

    const FIXTURE: &str = include_str!("../fixtures/mysql.txt");

    #[test]
    fn mariadb_conversation_both_ends() {
        for role in [Role::Client, Role::Server] {
            let (out, stats) = run(FIXTURE, role, MysqlState::feed);
            assert_eq!(tally(&out), (11, 2), "{role:?}");
            assert_eq!(stats, SessionStats::default());
            assert!(
                out.iter()
                    .all(|r| r.duration_ns == 1000 && r.protocol == Protocol::Mysql)
            );
        }
    }
}
