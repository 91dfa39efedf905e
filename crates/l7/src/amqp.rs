//! RabbitMQ / AMQP 0-9-1: `container_rabbitmq_messages_total{method}`.
//!
//! Frames are `[type: u8][channel: u16][size: u32][payload][0xCE]`; the
//! client opens with the 8-byte protocol header `AMQP\0\0\x09\x01`. As
//! coroot-node-agent counts them: a client's Basic.Publish (class 60, method
//! 40) is a message produced, a Basic.Deliver (60/60) it receives a message
//! consumed; no response, no latency (duration 0), status `ok`. Beyond
//! coroot: every frame of a syscall is looked at (coroot only the first),
//! so publishes batched in one write all count, and a Basic.Get-Ok (60/71,
//! a polled message) is a message consumed too. The broker's own side is
//! not counted (coroot matches Publish only on writes, Deliver on reads).

use crate::framer::{Framer, Len, be_u16, be_u32, lost_place};
use crate::{Chunk, Direction, Method, Protocol, Request, Role, SessionStats, Status};

const FRAME_METHOD: u8 = 1;
const CLASS_BASIC: u16 = 60;
const BASIC_PUBLISH: u16 = 40;
const BASIC_DELIVER: u16 = 60;
const BASIC_GET_OK: u16 = 71;

#[derive(Debug, Default)]
pub(crate) struct AmqpState {
    writes: Framer<11>,
    reads: Framer<11>,
}

fn frame_len(h: &[u8]) -> Len {
    match h[0] {
        // The protocol header (either side may send it).
        b'A' if &h[1..4] == b"MQP" => Len::Total(8),
        1 | 2 | 3 | 8 => Len::Total(8 + u64::from(be_u32(h, 3))),
        _ => Len::Garbage,
    }
}

impl AmqpState {
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
        let (framer, wanted) = match chunk.direction {
            Direction::Egress => (&mut self.writes, &[BASIC_PUBLISH][..]),
            Direction::Ingress => (&mut self.reads, &[BASIC_DELIVER, BASIC_GET_OK][..]),
        };
        let method = match chunk.direction {
            Direction::Egress => Method::Produce,
            Direction::Ingress => Method::Consume,
        };
        let r = framer.feed(chunk, 7, frame_len, |h, _, _| {
            if h[0] == FRAME_METHOD
                && h.len() >= 11
                && be_u16(h, 7) == CLASS_BASIC
                && wanted.contains(&be_u16(h, 9))
            {
                out.push(Request {
                    protocol: Protocol::Rabbitmq,
                    status: Status::Ok,
                    duration_ns: 0,
                    start_ns: 0,
                    detail: None,
                    method,
                    dns: None,
                });
            }
        });
        lost_place(r, stats);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil16::run;

    #[test]
    fn recorded_publisher_and_consumer() {
        let (out, stats) = run(
            include_str!("../fixtures/amqp-publish.txt"),
            Role::Client,
            AmqpState::feed,
        );
        assert_eq!(
            out.iter().filter(|r| r.method == Method::Produce).count(),
            5
        );
        assert_eq!(out.len(), 5);
        assert_eq!(stats, SessionStats::default());
        let (out, stats) = run(
            include_str!("../fixtures/amqp-consume.txt"),
            Role::Client,
            AmqpState::feed,
        );
        assert_eq!(
            out.iter().filter(|r| r.method == Method::Consume).count(),
            5
        );
        assert_eq!(out.len(), 5);
        assert_eq!(stats, SessionStats::default());
        let (out, _) = run(
            include_str!("../fixtures/amqp-publish.txt"),
            Role::Server,
            AmqpState::feed,
        );
        assert!(out.is_empty());
    }

    #[test]
    fn garbage_counts() {
        let mut s = AmqpState::default();
        let (mut out, mut st) = (Vec::new(), SessionStats::default());
        let b = b"GET / HTTP/1.1\r\n\r\n";
        let c = Chunk {
            ts_ns: 1,
            direction: Direction::Egress,
            size: b.len() as u32,
            payload: b,
        };
        s.feed(Role::Client, &c, &mut out, &mut st);
        assert_eq!((out.len(), st.parse_errors), (0, 1));
    }
}
