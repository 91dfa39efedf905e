//! Issue 16's parsers allocate nothing per chunk once a session is warm
//! (its in-flight queue grown): checked with a counting global allocator
//! over 1,000 request/response round trips per protocol, through `Session`.

use sonde_l7::{Chunk, Config, Direction, Protocol, Request, Role, Session};
#[path = "support/counting.rs"]
mod counting;

/// `req` and `resp` for round trip `i` (ids that must change per request).
type Make = fn(u32) -> (Vec<u8>, Vec<u8>);

fn round_trips(p: Protocol, make: Make) -> (u64, usize) {
    let config = Config::default();
    let mut s = Session::new(p, Role::Client);
    let mut out: Vec<Request> = Vec::with_capacity(4096);
    // Build every message first: the measured loop only parses.
    let msgs: Vec<_> = (0..1010).map(make).collect();
    let mut run = |range: std::ops::Range<usize>, out: &mut Vec<Request>| {
        for (i, (req, resp)) in msgs[range].iter().enumerate() {
            let w = Chunk {
                ts_ns: 2 * i as u64,
                direction: Direction::Egress,
                size: req.len() as u32,
                payload: req,
            };
            s.feed(&w, &config, out);
            let r = Chunk {
                ts_ns: 2 * i as u64 + 1,
                direction: Direction::Ingress,
                size: resp.len() as u32,
                payload: resp,
            };
            s.feed(&r, &config, out);
        }
    };
    run(0..10, &mut out); // warm up
    let allocs = counting::allocations_in(|| run(10..1010, &mut out));
    (allocs, out.len())
}

fn mysql(_: u32) -> (Vec<u8>, Vec<u8>) {
    (
        b"\x09\x00\x00\x00\x03SELECT 1".to_vec(),
        b"\x01\x00\x00\x01\x01\x07\x00\x00\x02\x00\x00\x00\x02\x00\x00\x00".to_vec(),
    )
}

fn memcached(_: u32) -> (Vec<u8>, Vec<u8>) {
    (
        b"get k\r\nset k 0 0 1\r\nv\r\n".to_vec(),
        b"VALUE k 0 1\r\nv\r\nEND\r\nSTORED\r\n".to_vec(),
    )
}

fn mongo(i: u32) -> (Vec<u8>, Vec<u8>) {
    let msg = |id: u32, to: u32| {
        let body =
            b"\x00\x00\x00\x00\x00\x11\x00\x00\x00\x01ok\x00\x00\x00\x00\x00\x00\x00\xf0\x3f\x00";
        let mut m = ((16 + body.len()) as u32).to_le_bytes().to_vec();
        m.extend(id.to_le_bytes());
        m.extend(to.to_le_bytes());
        m.extend(2013u32.to_le_bytes());
        m.extend(body);
        m
    };
    (msg(i + 1, 0), msg(100_000 + i, i + 1))
}

fn kafka(i: u32) -> (Vec<u8>, Vec<u8>) {
    let mut q = 17u32.to_be_bytes().to_vec();
    q.extend([0, 18, 0, 3]);
    q.extend(i.to_be_bytes());
    q.extend(b"\x00\x07rdkafka");
    let mut r = 10u32.to_be_bytes().to_vec();
    r.extend(i.to_be_bytes());
    r.extend([0; 6]);
    (q, r)
}

fn cassandra(i: u32) -> (Vec<u8>, Vec<u8>) {
    let s = (i % 100) as u8;
    let mut q = vec![4, 0, 0, s, 7, 0, 0, 0, 12];
    q.extend(b"\x00\x00\x00\x08SELECT 1");
    (q, vec![0x84, 0, 0, s, 8, 0, 0, 0, 4, 0, 0, 0, 1])
}

fn amqp(_: u32) -> (Vec<u8>, Vec<u8>) {
    // Basic.Publish out (class 60, method 40, reserved, exchange "", routing
    // key "q", flags), Basic.Deliver in (consumer tag "", delivery tag,
    // redelivered, exchange "", routing key "q"); no header or body frames.
    (
        b"\x01\x00\x01\x00\x00\x00\x0a\x00\x3c\x00\x28\x00\x00\x00\x01q\x00\xce".to_vec(),
        b"\x01\x00\x01\x00\x00\x00\x11\x00\x3c\x00\x3c\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x01q\xce".to_vec(),
    )
}

fn nats(_: u32) -> (Vec<u8>, Vec<u8>) {
    (
        b"PUB a 2\r\nhi\r\n".to_vec(),
        b"MSG a 1 2\r\nhi\r\n".to_vec(),
    )
}

fn dubbo2(i: u32) -> (Vec<u8>, Vec<u8>) {
    let mut q = vec![0xda, 0xbb, 0xc2, 0];
    q.extend(u64::from(i).to_be_bytes());
    q.extend([0, 0, 0, 1, 0x4e]);
    let mut r = vec![0xda, 0xbb, 0x02, 20];
    r.extend(u64::from(i).to_be_bytes());
    r.extend([0, 0, 0, 1, 0x91]);
    (q, r)
}

fn zookeeper(i: u32) -> (Vec<u8>, Vec<u8>) {
    let mut q = 12u32.to_be_bytes().to_vec();
    q.extend((i + 1).to_be_bytes());
    q.extend(3u32.to_be_bytes());
    q.extend(b"\x00\x00\x00\x00");
    let mut r = 16u32.to_be_bytes().to_vec();
    r.extend((i + 1).to_be_bytes());
    r.extend([0; 12]);
    (q, r)
}

fn clickhouse(_: u32) -> (Vec<u8>, Vec<u8>) {
    let mut q = b"\x01\x00\x01\x00\x00\x090.0.0.0:0\x01\x00\x02vm".to_vec();
    q.extend(b"\x11ClickHouse client\x12\x10\x8c\xa9\x03\x00\x01\x00\x02\x01\x08SELECT 1");
    (q, b"\x05".to_vec())
}

fn foundationdb(_: u32) -> (Vec<u8>, Vec<u8>) {
    let pkt = |id: u32| {
        let mut m = vec![0xab; 16];
        m.extend(8u32.to_le_bytes());
        m.extend(id.to_le_bytes());
        let mut f = (m.len() as u32).to_le_bytes().to_vec();
        f.extend([0x5a; 8]);
        f.extend(m);
        f
    };
    (pkt(8454530), pkt(2 << 24 | 1378929))
}

#[test]
fn issue16_steady_state_allocates_nothing() {
    let cases: [(Protocol, Make, usize); 11] = [
        (Protocol::Mysql, mysql, 1),
        (Protocol::Memcached, memcached, 2),
        (Protocol::Mongo, mongo, 1),
        (Protocol::Kafka, kafka, 1),
        (Protocol::Cassandra, cassandra, 1),
        (Protocol::Rabbitmq, amqp, 2),
        (Protocol::Nats, nats, 2),
        (Protocol::Dubbo2, dubbo2, 1),
        (Protocol::Zookeeper, zookeeper, 1),
        (Protocol::Clickhouse, clickhouse, 1),
        (Protocol::FoundationDb, foundationdb, 1),
    ];
    for (p, make, per_trip) in cases {
        let (allocs, n) = round_trips(p, make);
        assert_eq!(n, 1010 * per_trip, "{p:?}: requests");
        assert_eq!(allocs, 0, "{p:?}: allocations in 1000 warm round trips");
    }
}
