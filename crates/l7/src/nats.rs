//! NATS client protocol: `container_nats_messages_total{method}`.
//!
//! As coroot-node-agent counts them: a client's PUB/HPUB is a message
//! produced, a MSG/HMSG it receives a message consumed; there is no
//! response to match and no latency (duration 0). Every message of a write
//! or read is counted (coroot counts at most one per syscall): lines are
//! followed through the stream and payloads skipped by their length. The
//! server's own side (nats-server reading PUB, writing MSG) is not counted,
//! as coroot's kernel matches PUB only on writes and MSG only on reads.
//! Protocol operations are case-insensitive. Status: `ok` (NATS does not
//! answer a PUB unless in verbose mode; a -ERR closes the connection).

use crate::framer::lost_place;
use crate::lines::{LineVerdict, Lines, dec, tokens};
use crate::{Chunk, Direction, Method, Protocol, Request, Role, SessionStats, Status};

#[derive(Debug, Default)]
pub(crate) struct NatsState {
    writes: Lines,
    reads: Lines,
}

/// Payload bytes after a PUB/MSG (`len` token) or HPUB/HMSG (`total` token)
/// line, with the closing `\r\n`.
fn payload(tok: &[u8]) -> Option<u64> {
    dec(tok).map(|n| n + 2)
}

impl NatsState {
    pub(crate) fn feed(
        &mut self,
        role: Role,
        chunk: &Chunk,
        out: &mut Vec<Request>,
        stats: &mut SessionStats,
    ) {
        if role == Role::Server {
            return;
        }
        let r = if chunk.direction == Direction::Egress {
            self.writes.feed(chunk, |line, _| {
                let (t, n) = tokens::<5>(line);
                let op = t[0];
                let publish = op.eq_ignore_ascii_case(b"PUB") && (n == 3 || n == 4);
                let hpublish = op.eq_ignore_ascii_case(b"HPUB") && (n == 4 || n == 5);
                let data = if publish || hpublish {
                    payload(t[n - 1])
                } else if known_op(op) {
                    return LineVerdict::Data(0);
                } else {
                    return LineVerdict::Garbage;
                };
                match data {
                    Some(d) => {
                        out.push(message(Method::Produce));
                        LineVerdict::Data(d)
                    }
                    None => LineVerdict::Garbage,
                }
            })
        } else {
            self.reads.feed(chunk, |line, _| {
                let (t, n) = tokens::<6>(line);
                let op = t[0];
                let msg = op.eq_ignore_ascii_case(b"MSG") && (n == 4 || n == 5);
                let hmsg = op.eq_ignore_ascii_case(b"HMSG") && (n == 5 || n == 6);
                let data = if msg || hmsg {
                    payload(t[n - 1])
                } else if known_op(op) {
                    return LineVerdict::Data(0);
                } else {
                    return LineVerdict::Garbage;
                };
                match data {
                    Some(d) => {
                        out.push(message(Method::Consume));
                        LineVerdict::Data(d)
                    }
                    None => LineVerdict::Garbage,
                }
            })
        };
        lost_place(r, stats);
    }
}

fn known_op(op: &[u8]) -> bool {
    [
        &b"CONNECT"[..],
        b"INFO",
        b"SUB",
        b"UNSUB",
        b"PING",
        b"PONG",
        b"+OK",
        b"-ERR",
    ]
    .iter()
    .any(|k| op.eq_ignore_ascii_case(k))
}

fn message(method: Method) -> Request {
    Request {
        protocol: Protocol::Nats,
        status: Status::Ok,
        duration_ns: 0,
        start_ns: 0,
        detail: None,
        method,
        dns: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil16::run;

    fn methods(out: &[Request]) -> (usize, usize) {
        let p = out.iter().filter(|r| r.method == Method::Produce).count();
        (p, out.len() - p)
    }

    #[test]
    fn recorded_publisher_and_subscriber() {
        let (out, stats) = run(
            include_str!("../fixtures/nats-pub.txt"),
            Role::Client,
            NatsState::feed,
        );
        assert_eq!(methods(&out), (5, 0));
        assert_eq!(stats, SessionStats::default());
        let (out, stats) = run(
            include_str!("../fixtures/nats-sub.txt"),
            Role::Client,
            NatsState::feed,
        );
        assert_eq!(methods(&out), (0, 5));
        assert_eq!(stats, SessionStats::default());
        assert!(
            out.iter()
                .all(|r| r.duration_ns == 0 && r.status == Status::Ok)
        );
        // The server's side is not counted.
        let (out, _) = run(
            include_str!("../fixtures/nats-pub.txt"),
            Role::Server,
            NatsState::feed,
        );
        assert!(out.is_empty());
    }

    #[test]
    fn garbage_counts() {
        let mut s = NatsState::default();
        let (mut out, mut st) = (Vec::new(), SessionStats::default());
        let b = b"PUB a notanumber\r\nxx\r\n";
        let c = Chunk {
            ts_ns: 1,
            direction: Direction::Egress,
            size: b.len() as u32,
            payload: b,
        };
        s.feed(Role::Client, &c, &mut out, &mut st);
        assert_eq!((out.len(), st.parse_errors), (0, 1));
        let b = b"pub a 2\r\nxx\r\n";
        let c = Chunk {
            ts_ns: 2,
            direction: Direction::Egress,
            size: b.len() as u32,
            payload: b,
        };
        s.feed(Role::Client, &c, &mut out, &mut st);
        assert_eq!(out.len(), 1);
    }
}
