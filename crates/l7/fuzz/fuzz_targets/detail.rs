//! Span details (crates/l7/src/detail.rs) on arbitrary client conversations of every traced
//! protocol, capture on: no panic, texts bounded, a detail only on a request of the session.
//! The first input byte picks the protocol; the rest is common.rs's chunk format.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sonde_l7::{Chunk, Config, Direction, PAYLOAD_MAX, Protocol, Role, Session, detail};

const TRACED: [Protocol; 9] = [
    Protocol::Http,
    Protocol::Http2,
    Protocol::Postgres,
    Protocol::Mysql,
    Protocol::Mongo,
    Protocol::Memcached,
    Protocol::Redis,
    Protocol::Clickhouse,
    Protocol::Zookeeper,
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, mut data)) = data.split_first() else { return };
    let protocol = TRACED[usize::from(pick) % TRACED.len()];
    let config = Config { capture: true, ..Config::default() };
    let mut s = Session::new(protocol, Role::Client);
    let mut out = Vec::new();
    let mut ts = 0u64;
    while data.len() >= 4 {
        let control = data[0];
        let len = (usize::from(data[1]) * (1 + usize::from((control >> 2) & 3))).min(PAYLOAD_MAX);
        let extra = u32::from(u16::from_le_bytes([data[2], data[3]]));
        data = &data[4..];
        let len = len.min(data.len());
        let (payload, rest) = data.split_at(len);
        data = rest;
        let direction = if control & 1 == 0 { Direction::Egress } else { Direction::Ingress };
        ts += 1 + u64::from(control >> 4);
        let chunk = Chunk { ts_ns: ts, direction, size: len as u32 + extra, payload };
        s.feed(&chunk, &config, &mut out);
    }
    for r in &out {
        let Some(d) = r.detail.as_deref() else { continue };
        let texts: Vec<&str> = match d {
            detail::Detail::Http { method, path, scheme } => {
                vec![method, path, scheme.as_deref().unwrap_or("")]
            }
            detail::Detail::Statement(t) => vec![t],
            detail::Detail::Redis { command, args } => vec![command, args],
            detail::Detail::Memcached { command, keys } => {
                let mut v: Vec<&str> = keys.iter().map(|k| &**k).collect();
                v.push(command);
                v
            }
            detail::Detail::Zookeeper { op, path } => vec![op, path],
        };
        for t in texts {
            assert!(t.len() <= detail::MAX_TEXT + 64, "{} bytes", t.len());
        }
    }
});
