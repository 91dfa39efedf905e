//! Per-connection cost of NAT resolution: decoding one conntrack event, applying it to the
//! table, and the lookups the tracer bridge makes (hit, miss); as root with conntrack, also a
//! real [`Nat::actual_destination`] miss (which first drains the event socket: one syscall).
//!
//! `cargo bench -p sonde-nat --bench nat_table`
#![allow(clippy::unwrap_used)]
use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use sonde_nat::decode::{self, Entry, Kind, Message, Tuple};
use sonde_nat::{Nat, NatConfig, NatTable};

/// A NEW event captured from the kernel (see src/decode/tests.rs).
const NEW_V4: &str = "c4000000000100060000000000000000020000003400018014000180080001007f000001080002007f0000011c0002800500010006000000060002009c4100000600030046a100003400028014000180080001007f000001080002007f0000011c00028005000100060000000600020046a20000060003009c41000008000c00d969c7ed08000300000001a80800070000000078300004802c0001800500010001000000050002000a000000050003000000000006000400030000000600050000000000";

fn bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

fn entry(i: u32) -> Entry {
    let src = SocketAddr::from((
        [10, 0, (i >> 16) as u8, (i >> 8) as u8],
        1024 + (i % 60_000) as u16,
    ));
    Entry {
        kind: Kind::New,
        orig: Tuple {
            src,
            dst: SocketAddr::from(([10, 96, 0, 10], 80)),
        },
        reply: Tuple {
            src: SocketAddr::from(([10, 1, 2, 3], 8080)),
            dst: src,
        },
    }
}

fn bench(c: &mut Criterion) {
    let msg = bytes(NEW_V4);
    c.bench_function("decode one NEW event", |b| {
        b.iter(|| {
            for m in decode::messages(black_box(&msg)) {
                black_box(m.unwrap());
            }
        })
    });

    const CAP: usize = 65_536;
    let now = Instant::now();
    let entries: Vec<Entry> = (0..2 * CAP as u32).map(entry).collect();
    let mut t = NatTable::new(CAP, Duration::from_secs(30));
    let mut i = 0usize;
    c.bench_function(
        "apply NEW to a full 65,536-entry table (insert + evict)",
        |b| {
            b.iter(|| {
                t.apply(black_box(&entries[i % entries.len()]), now);
                i += 1;
            })
        },
    );
    let mut t = NatTable::new(CAP, Duration::from_secs(30));
    for e in &entries[..CAP] {
        t.apply(e, now);
    }
    let mut i = 0usize;
    c.bench_function("lookup hit (65,536 entries)", |b| {
        b.iter(|| {
            let e = &entries[i % CAP];
            i += 1;
            black_box(t.lookup(e.orig.src, e.orig.dst))
        })
    });
    let other = SocketAddr::from(([10, 200, 0, 1], 443));
    c.bench_function("lookup miss (65,536 entries)", |b| {
        b.iter(|| {
            let e = &entries[i % CAP];
            i += 1;
            black_box(t.lookup(e.orig.src, other))
        })
    });

    match Nat::start(NatConfig::default()) {
        Ok(nat) => {
            let src: SocketAddr = "127.0.0.1:40000".parse().unwrap();
            let dst: SocketAddr = "127.0.0.1:1".parse().unwrap();
            c.bench_function(
                "Nat::actual_destination miss (drains the socket first)",
                |b| b.iter(|| black_box(nat.actual_destination(src, dst))),
            );
            c.bench_function(
                "Nat::lookup miss (the bridge's call, after its per-batch sync)",
                |b| b.iter(|| black_box(nat.lookup(src, dst))),
            );
            c.bench_function("Nat::sync with nothing queued (once per batch)", |b| {
                b.iter(|| nat.sync())
            });
        }
        Err(e) => eprintln!("skipping the live Nat benchmark: {}", e.reason()),
    }
    let _ = Message::Done;
}

criterion_group!(benches, bench);
criterion_main!(benches);
