//! Throughput of issue 16's parsers: a conversation replayed through a
//! fresh parser many times, as the kernel would ship it (one chunk per
//! recv, at most PAYLOAD_MAX bytes shown). Recorded conversations
//! (crates/l7/fixtures) where a real server was available, hand-built ones
//! (from the protocol specs) otherwise. Plain harness: `cargo bench -p
//! sonde-l7 --bench parsers16`; figures go to docs/benchmarks.md.

use sonde_l7::{Chunk, Direction, PAYLOAD_MAX, Parser16, Protocol, Request, Role, SessionStats};
use std::hint::black_box;
use std::time::Instant;

type Conversation = Vec<(Direction, Vec<u8>)>;

fn fixture(text: &str) -> Conversation {
    let mut v = Vec::new();
    for line in text.lines() {
        let (dir, hex) = match line.split_once(' ') {
            Some((">", h)) => (Direction::Egress, h),
            Some(("<", h)) => (Direction::Ingress, h),
            _ => continue,
        };
        let b = (0..hex.len() / 2)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex"))
            .collect();
        v.push((dir, b));
    }
    v
}

fn be32(n: usize) -> [u8; 4] {
    (n as u32).to_be_bytes()
}

/// Hand-built request/response pairs, `n` of each, from the protocol specs.
fn built(protocol: Protocol, n: u32) -> Conversation {
    let mut v = Vec::new();
    for i in 1..=n {
        let (req, resp): (Vec<u8>, Vec<u8>) = match protocol {
            Protocol::Mongo => {
                let body =
                    b"\x00\x00\x00\x00\x00\x16\x00\x00\x00\x02find\x00\x02\x00\x00\x00t\x00\x00";
                let mut q = ((16 + body.len()) as u32).to_le_bytes().to_vec();
                q.extend(i.to_le_bytes());
                q.extend(0u32.to_le_bytes());
                q.extend(2013u32.to_le_bytes());
                q.extend(body);
                let mut r = ((16 + body.len()) as u32).to_le_bytes().to_vec();
                r.extend((1000 + i).to_le_bytes());
                r.extend(i.to_le_bytes());
                r.extend(2013u32.to_le_bytes());
                r.extend(body);
                (q, r)
            }
            Protocol::Kafka => {
                let mut q = be32(8 + 9 + 8).to_vec();
                q.extend([0, 1, 0, 11]);
                q.extend(i.to_be_bytes());
                q.extend(b"\x00\x07rdkafka\xff\xff\xff\xff\x00\x00\x01\xf4");
                let mut r = be32(4 + 60).to_vec();
                r.extend(i.to_be_bytes());
                r.extend([0u8; 60]);
                (q, r)
            }
            Protocol::Cassandra => {
                let s = (i % 1000) as u16;
                let body = b"\x00\x00\x00\x08SELECT 1\x00\x01\x00";
                let mut q = vec![4, 0];
                q.extend(s.to_be_bytes());
                q.push(7);
                q.extend(be32(body.len()));
                q.extend(body);
                let mut r = vec![0x84, 0];
                r.extend(s.to_be_bytes());
                r.push(8);
                r.extend(be32(4));
                r.extend([0, 0, 0, 1]);
                (q, r)
            }
            Protocol::Dubbo2 => {
                let mut q = vec![0xda, 0xbb, 0xc2, 0];
                q.extend(u64::from(i).to_be_bytes());
                q.extend(be32(40));
                q.extend([0x4e; 40]);
                let mut r = vec![0xda, 0xbb, 0x02, 20];
                r.extend(u64::from(i).to_be_bytes());
                r.extend(be32(8));
                r.extend([0x91; 8]);
                (q, r)
            }
            Protocol::FoundationDb => {
                let pkt = |id: u32| {
                    let mut m = vec![0xab; 16];
                    m.extend(8u32.to_le_bytes());
                    m.extend(id.to_le_bytes());
                    m.extend([0; 40]);
                    let mut f = (m.len() as u32).to_le_bytes().to_vec();
                    f.extend([0x5a; 8]);
                    f.extend(m);
                    f
                };
                (pkt(8454530), pkt(2 << 24 | 1378929))
            }
            _ => unreachable!("recorded"),
        };
        v.push((Direction::Egress, req));
        v.push((Direction::Ingress, resp));
    }
    v
}

fn bench(name: &str, protocol: Protocol, conv: &Conversation, iters: u32) {
    let bytes: usize = conv.iter().map(|(_, b)| b.len()).sum();
    let (mut out, mut stats) = (Vec::<Request>::with_capacity(1024), SessionStats::default());
    let mut requests = 0usize;
    let start = Instant::now();
    for i in 0..iters {
        let mut p = Parser16::new(protocol).expect("parser");
        for (k, (dir, b)) in conv.iter().enumerate() {
            let c = Chunk {
                ts_ns: u64::from(i) * 1_000_000 + k as u64,
                direction: *dir,
                size: b.len() as u32,
                payload: &b[..b.len().min(PAYLOAD_MAX)],
            };
            p.feed(Role::Client, black_box(&c), &mut out, &mut stats);
        }
        requests += out.len();
        out.clear();
    }
    let secs = start.elapsed().as_secs_f64();
    let chunks = conv.len() as f64 * f64::from(iters);
    println!(
        "{name:<18} {:>8.1} ns/chunk {:>9.0} ns/request {:>8.1} MB/s (syscall bytes)  {:>10.0} requests/s",
        secs * 1e9 / chunks,
        secs * 1e9 / requests.max(1) as f64,
        bytes as f64 * f64::from(iters) / secs / 1e6,
        requests as f64 / secs,
    );
    black_box(stats);
}

fn main() {
    let iters = std::env::var("L7_BENCH_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    println!("issue-16 parsers, {iters} replays of each conversation, Role::Client");
    let rec = |t: &str| fixture(t);
    bench(
        "mysql",
        Protocol::Mysql,
        &rec(include_str!("../fixtures/mysql.txt")),
        iters,
    );
    bench(
        "memcached-text",
        Protocol::Memcached,
        &rec(include_str!("../fixtures/memcached-text.txt")),
        iters,
    );
    bench(
        "memcached-binary",
        Protocol::Memcached,
        &rec(include_str!("../fixtures/memcached-binary.txt")),
        iters,
    );
    bench(
        "zookeeper",
        Protocol::Zookeeper,
        &rec(include_str!("../fixtures/zookeeper.txt")),
        iters,
    );
    bench(
        "nats-pub",
        Protocol::Nats,
        &rec(include_str!("../fixtures/nats-pub.txt")),
        iters,
    );
    bench(
        "nats-sub",
        Protocol::Nats,
        &rec(include_str!("../fixtures/nats-sub.txt")),
        iters,
    );
    bench(
        "amqp-publish",
        Protocol::Rabbitmq,
        &rec(include_str!("../fixtures/amqp-publish.txt")),
        iters,
    );
    bench(
        "amqp-consume",
        Protocol::Rabbitmq,
        &rec(include_str!("../fixtures/amqp-consume.txt")),
        iters,
    );
    // One ClickHouse connection per query in the recording: replay them as one.
    let ch: Conversation = rec(include_str!("../fixtures/clickhouse.txt"));
    bench("clickhouse", Protocol::Clickhouse, &ch, iters);
    for (name, p) in [
        ("mongo (built)", Protocol::Mongo),
        ("kafka (built)", Protocol::Kafka),
        ("cassandra (built)", Protocol::Cassandra),
        ("dubbo2 (built)", Protocol::Dubbo2),
        ("foundationdb (bt)", Protocol::FoundationDb),
    ] {
        bench(name, p, &built(p, 20), iters);
    }
}
