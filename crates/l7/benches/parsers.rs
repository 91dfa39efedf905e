//! Parser throughput per protocol, on the recorded fixtures
//! (tests/fixtures/*.txt): each iteration replays one recorded connection
//! through a fresh Session (setup included), payloads cut to the kernel's
//! 512-byte window as the tracer would deliver them; plus the steady state
//! of one long-lived HTTP/1 keep-alive session (one GET and its 200).
//!
//! `cargo bench -p sonde-l7 --bench parsers`
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sonde_l7::{Chunk, Config, Direction, PAYLOAD_MAX, Protocol, Request, Role, Session};

fn load(text: &str) -> Vec<(Direction, Vec<u8>)> {
    text.lines()
        .take_while(|l| *l != "# conn")
        .filter_map(|l| {
            let (d, h) = match l.split_at_checked(2)? {
                ("E ", h) => (Direction::Egress, h),
                ("I ", h) => (Direction::Ingress, h),
                _ => return None,
            };
            let b = (0..h.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap());
            Some((d, b.collect()))
        })
        .collect()
}

fn replay(p: Protocol, conn: &[(Direction, Vec<u8>)], config: &Config, out: &mut Vec<Request>) {
    let mut s = Session::new(p, Role::Client);
    for (i, (d, b)) in conn.iter().enumerate() {
        let c = Chunk {
            ts_ns: i as u64,
            direction: *d,
            size: b.len() as u32,
            payload: &b[..b.len().min(PAYLOAD_MAX)],
        };
        s.feed(&c, config, out);
    }
}

fn bench(c: &mut Criterion) {
    let fixtures = [
        (
            "http1",
            Protocol::Http,
            include_str!("../tests/fixtures/http1_nginx_keepalive.txt"),
        ),
        (
            "http2",
            Protocol::Http2,
            include_str!("../tests/fixtures/http2_nginx.txt"),
        ),
        (
            "postgres",
            Protocol::Postgres,
            include_str!("../tests/fixtures/postgres.txt"),
        ),
        (
            "redis",
            Protocol::Redis,
            include_str!("../tests/fixtures/redis.txt"),
        ),
        (
            "dns_udp",
            Protocol::Dns,
            include_str!("../tests/fixtures/dns_udp.txt"),
        ),
    ];
    let config = Config::default();
    let mut g = c.benchmark_group("replay");
    for (name, p, text) in fixtures {
        let conn = load(text);
        let mut out = Vec::new();
        replay(p, &conn, &config, &mut out);
        g.throughput(Throughput::Elements(out.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                replay(p, black_box(&conn), &config, &mut out);
                black_box(out.len())
            })
        });
    }
    g.finish();

    let req = b"GET /api/items?id=1 HTTP/1.1\r\nHost: svc:8080\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n";
    let resp = b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
    let mut s = Session::new(Protocol::Http, Role::Client);
    let mut out = Vec::with_capacity(1);
    let mut g = c.benchmark_group("steady");
    g.throughput(Throughput::Elements(1));
    g.bench_function("http1_keepalive_request", |b| {
        let mut ts = 0;
        b.iter(|| {
            ts += 2;
            out.clear();
            let w = Chunk {
                ts_ns: ts,
                direction: Direction::Egress,
                size: req.len() as u32,
                payload: req,
            };
            s.feed(black_box(&w), &config, &mut out);
            let r = Chunk {
                ts_ns: ts + 1,
                direction: Direction::Ingress,
                size: resp.len() as u32,
                payload: resp,
            };
            s.feed(black_box(&r), &config, &mut out);
            black_box(out.len())
        })
    });
    // The same with span details kept (`--traces-endpoint`: Config::capture).
    let capture = Config {
        capture: true,
        ..Config::default()
    };
    let mut s = Session::new(Protocol::Http, Role::Client);
    g.bench_function("http1_keepalive_request_capture", |b| {
        let mut ts = 0;
        b.iter(|| {
            ts += 2;
            out.clear();
            let w = Chunk {
                ts_ns: ts,
                direction: Direction::Egress,
                size: req.len() as u32,
                payload: req,
            };
            s.feed(black_box(&w), &capture, &mut out);
            let r = Chunk {
                ts_ns: ts + 1,
                direction: Direction::Ingress,
                size: resp.len() as u32,
                payload: resp,
            };
            s.feed(black_box(&r), &capture, &mut out);
            black_box(out.len())
        })
    });
    g.finish();

    let mut g = c.benchmark_group("replay_capture");
    for (name, p, text) in fixtures {
        let conn = load(text);
        let mut out = Vec::new();
        replay(p, &conn, &capture, &mut out);
        g.throughput(Throughput::Elements(out.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                replay(p, black_box(&conn), &capture, &mut out);
                black_box(out.len())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
