//! One entry point for issue 16's protocols, for the session's dispatch:
//! `Parser16::new(protocol)` gives the per-connection parser of MySQL,
//! Memcached, MongoDB, Kafka, Cassandra, RabbitMQ, NATS, Dubbo2, ClickHouse,
//! ZooKeeper or FoundationDB (None for the others).

use crate::amqp::AmqpState;
use crate::cassandra::CassandraState;
use crate::clickhouse::ClickhouseState;
use crate::dubbo2::Dubbo2State;
use crate::foundationdb::FoundationDbState;
use crate::kafka::KafkaState;
use crate::memcached::MemcachedState;
use crate::mongo::MongoState;
use crate::mysql::MysqlState;
use crate::nats::NatsState;
use crate::zookeeper::ZookeeperState;
use crate::{Chunk, Protocol, Request, Role, SessionStats};

/// The parser state of one connection of an issue-16 protocol. Boxed: the
/// states hold fixed head buffers (up to a few hundred bytes) and a
/// connection's session should stay small whatever its protocol.
#[derive(Debug)]
pub struct Parser16(Box<Inner>);

// Boxed as a whole (see Parser16): the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Inner {
    Mysql(MysqlState),
    Memcached(MemcachedState),
    Mongo(MongoState),
    Kafka(KafkaState),
    Cassandra(CassandraState),
    Rabbitmq(AmqpState),
    Nats(NatsState),
    Dubbo2(Dubbo2State),
    Clickhouse(ClickhouseState),
    Zookeeper(ZookeeperState),
    FoundationDb(FoundationDbState),
}

impl Parser16 {
    /// A fresh parser for a connection of `protocol`; None if `protocol` is
    /// not one of issue 16's.
    pub fn new(protocol: Protocol) -> Option<Parser16> {
        let inner = match protocol {
            Protocol::Mysql => Inner::Mysql(MysqlState::default()),
            Protocol::Memcached => Inner::Memcached(MemcachedState::default()),
            Protocol::Mongo => Inner::Mongo(MongoState::default()),
            Protocol::Kafka => Inner::Kafka(KafkaState::default()),
            Protocol::Cassandra => Inner::Cassandra(CassandraState::default()),
            Protocol::Rabbitmq => Inner::Rabbitmq(AmqpState::default()),
            Protocol::Nats => Inner::Nats(NatsState::default()),
            Protocol::Dubbo2 => Inner::Dubbo2(Dubbo2State::default()),
            Protocol::Clickhouse => Inner::Clickhouse(ClickhouseState::default()),
            Protocol::Zookeeper => Inner::Zookeeper(ZookeeperState::default()),
            Protocol::FoundationDb => Inner::FoundationDb(FoundationDbState::default()),
            Protocol::Http
            | Protocol::Http2
            | Protocol::Postgres
            | Protocol::Redis
            | Protocol::Dns => return None,
        };
        Some(Parser16(Box::new(inner)))
    }

    /// Feeds one read or write of the connection (`role` is the traced
    /// process's end); completed requests are appended to `out`, what could
    /// not be used is counted in `stats`. Never panics, whatever the bytes.
    pub fn feed(
        &mut self,
        role: Role,
        chunk: &Chunk,
        out: &mut Vec<Request>,
        stats: &mut SessionStats,
    ) {
        match &mut *self.0 {
            Inner::Mysql(s) => s.feed(role, chunk, out, stats),
            Inner::Memcached(s) => s.feed(role, chunk, out, stats),
            Inner::Mongo(s) => s.feed(role, chunk, out, stats),
            Inner::Kafka(s) => s.feed(role, chunk, out, stats),
            Inner::Cassandra(s) => s.feed(role, chunk, out, stats),
            Inner::Rabbitmq(s) => s.feed(role, chunk, out, stats),
            Inner::Nats(s) => s.feed(role, chunk, out, stats),
            Inner::Dubbo2(s) => s.feed(role, chunk, out, stats),
            Inner::Clickhouse(s) => s.feed(role, chunk, out, stats),
            Inner::Zookeeper(s) => s.feed(role, chunk, out, stats),
            Inner::FoundationDb(s) => s.feed(role, chunk, out, stats),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Direction, PAYLOAD_MAX};

    const ISSUE16: [Protocol; 11] = [
        Protocol::Mysql,
        Protocol::Memcached,
        Protocol::Mongo,
        Protocol::Kafka,
        Protocol::Cassandra,
        Protocol::Rabbitmq,
        Protocol::Nats,
        Protocol::Dubbo2,
        Protocol::Clickhouse,
        Protocol::Zookeeper,
        Protocol::FoundationDb,
    ];

    #[test]
    fn every_issue16_protocol_has_a_parser() {
        for p in ISSUE16 {
            assert!(Parser16::new(p).is_some(), "{p:?}");
        }
        assert!(Parser16::new(Protocol::Http).is_none());
    }

    /// Deterministic pseudo-random bytes (xorshift), no dependency.
    fn noise(seed: &mut u64, buf: &mut [u8]) {
        for b in buf {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            *b = *seed as u8;
        }
    }

    /// Hostile input: random bytes, random sizes (larger than shown, or 0),
    /// both roles and directions, never panic, never unbounded.
    #[test]
    fn random_bytes_never_panic() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut buf = [0u8; PAYLOAD_MAX];
        for p in ISSUE16 {
            let mut parser = Parser16::new(p).expect("parser");
            let (mut out, mut stats) = (Vec::new(), SessionStats::default());
            for i in 0..20_000u64 {
                noise(&mut seed, &mut buf);
                let len = (seed % (PAYLOAD_MAX as u64 + 1)) as usize;
                let size = if seed.is_multiple_of(3) {
                    len as u32
                } else {
                    len as u32 + (seed >> 40) as u32 % 100_000
                };
                let direction = if seed & 16 == 0 {
                    Direction::Egress
                } else {
                    Direction::Ingress
                };
                let role = if seed & 32 == 0 {
                    Role::Client
                } else {
                    Role::Server
                };
                let c = Chunk {
                    ts_ns: i,
                    direction,
                    size,
                    payload: &buf[..len],
                };
                parser.feed(role, &c, &mut out, &mut stats);
                out.clear();
            }
        }
    }

    /// The recordings of real servers, every recv cut at random points
    /// (200 seeds, both ends): the same counts, no parse error. ClickHouse
    /// is left out: its parser judges a chunk by its first packet, by design.
    #[test]
    fn recordings_split_at_random_points_count_the_same() {
        use crate::amqp::AmqpState;
        use crate::memcached::MemcachedState;
        use crate::mysql::MysqlState;
        use crate::nats::NatsState;
        use crate::testutil16::{run_split, tally};
        use crate::zookeeper::ZookeeperState;
        let messages = |out: &[Request]| out.len();
        for seed in 1..=200u64 {
            for role in [Role::Client, Role::Server] {
                let (o, st) = run_split(
                    include_str!("../fixtures/mysql.txt"),
                    role,
                    seed,
                    MysqlState::feed,
                );
                assert_eq!(
                    (tally(&o), st.parse_errors),
                    ((11, 2), 0),
                    "mysql seed {seed}"
                );
                let (o, st) = run_split(
                    include_str!("../fixtures/memcached-text.txt"),
                    role,
                    seed,
                    MemcachedState::feed,
                );
                assert_eq!(
                    (tally(&o), st.parse_errors),
                    ((12, 1), 0),
                    "memcached text seed {seed}"
                );
                let (o, st) = run_split(
                    include_str!("../fixtures/memcached-binary.txt"),
                    role,
                    seed,
                    MemcachedState::feed,
                );
                assert_eq!(
                    (tally(&o), st.parse_errors),
                    ((5, 1), 0),
                    "memcached binary seed {seed}"
                );
                let (o, st) = run_split(
                    include_str!("../fixtures/zookeeper.txt"),
                    role,
                    seed,
                    ZookeeperState::feed,
                );
                assert_eq!(
                    (tally(&o), st.parse_errors),
                    ((8, 5), 0),
                    "zookeeper seed {seed}"
                );
            }
            for (f, n) in [
                (include_str!("../fixtures/nats-pub.txt"), 5),
                (include_str!("../fixtures/nats-sub.txt"), 5),
            ] {
                let (o, st) = run_split(f, Role::Client, seed, NatsState::feed);
                assert_eq!((messages(&o), st.parse_errors), (n, 0), "nats seed {seed}");
            }
            for (f, n) in [
                (include_str!("../fixtures/amqp-publish.txt"), 5),
                (include_str!("../fixtures/amqp-consume.txt"), 5),
            ] {
                let (o, st) = run_split(f, Role::Client, seed, AmqpState::feed);
                assert_eq!((messages(&o), st.parse_errors), (n, 0), "amqp seed {seed}");
            }
        }
    }

    /// A client that never gets answers: what waits is bounded, the excess
    /// counted, and a late answer is matched with a request still waiting.
    #[test]
    fn waiting_requests_are_bounded() {
        let mut p = Parser16::new(Protocol::Mysql).expect("parser");
        let (mut out, mut stats) = (Vec::new(), SessionStats::default());
        let q = b"\x09\x00\x00\x00\x03SELECT 1";
        for i in 0..200 {
            let c = Chunk {
                ts_ns: i,
                direction: Direction::Egress,
                size: q.len() as u32,
                payload: q,
            };
            p.feed(Role::Client, &c, &mut out, &mut stats);
        }
        assert_eq!(
            stats.pending_overflow,
            200 - crate::framer::INFLIGHT_MAX as u64
        );
        let ok = b"\x07\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00";
        let c = Chunk {
            ts_ns: 1000,
            direction: Direction::Ingress,
            size: ok.len() as u32,
            payload: ok,
        };
        p.feed(Role::Client, &c, &mut out, &mut stats);
        // The oldest still waiting is the 73rd sent (ts 72).
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].duration_ns,
            1000 - (200 - crate::framer::INFLIGHT_MAX as u64)
        );
    }
}
