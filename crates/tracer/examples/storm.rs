//! Benchmark (root): loopback connect storm with and without the tracer.
//!
//!   cargo run --release -p sonde-tracer --example storm -- [CONNECTIONS]
//!
//! Prints: connects/s without and with the tracer, per-program kernel cost
//! (kernel.bpf_stats_enabled=1: run_time_ns / run_cnt), the reader thread's CPU
//! time per 100,000 connections, and the userspace RSS of tracking 100,000
//! connections (ConnectionTable + one scrape snapshot). Numbers go to
//! docs/tracer.md; nothing here is asserted. Experiment knobs: see
//! `common::config_from_env`.
#![allow(clippy::unwrap_used)]

#[path = "common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use common::{config_from_env, drain, server, storm};
use sonde_tracer::conntrack::ConnectionTable;
use sonde_tracer::{ConnectionBytes, Tracer};

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid timespec out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn prog_stats() -> HashMap<String, (u64, u64)> {
    let mut m = HashMap::new();
    for p in aya::programs::loaded_programs().flatten() {
        let name = p.name_as_str().unwrap_or("").to_owned();
        let e = m.entry(name).or_insert((0, 0));
        e.0 += p.run_time().as_nanos() as u64;
        e.1 += p.run_count();
    }
    m
}

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let addr = server();
    storm(addr, 2_000); // warm-up
    let base1 = storm(addr, n);

    let stop = Arc::new(AtomicBool::new(false));
    let reader_cpu = Arc::new(AtomicU64::new(0));
    let events = Arc::new(AtomicU64::new(0));
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = {
        let (stop, reader_cpu, events) = (stop.clone(), reader_cpu.clone(), events.clone());
        thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let (tracer, mut stream) = Tracer::start(config_from_env()).unwrap();
                tx.send(()).unwrap();
                let cpu0 = thread_cpu();
                events.store(drain(&mut stream, &stop).await, Ordering::Relaxed);
                reader_cpu.store((thread_cpu() - cpu0).as_nanos() as u64, Ordering::Relaxed);
                println!("lost events: {:?}", tracer.lost_events());
            });
        })
    };
    rx.recv().unwrap();
    // Throughput with the tracer, bpf_stats off (stats add two clock reads per run).
    let with = storm(addr, n);
    std::fs::write("/proc/sys/kernel/bpf_stats_enabled", "1").unwrap();
    let before = prog_stats();
    storm(addr, n);
    let after = prog_stats();
    std::fs::write("/proc/sys/kernel/bpf_stats_enabled", "0").unwrap();
    thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    let base2 = storm(addr, n);
    let without = (base1 + base2) / 2.0;

    println!(
        "without tracer: {without:.0} connects/s (runs: {base1:.0}, {base2:.0}; {n} connects each)"
    );
    println!(
        "with tracer:    {with:.0} connects/s ({:.2}% slower)",
        (1.0 - with / without) * 100.0
    );
    let cpu = reader_cpu.load(Ordering::Relaxed) as f64;
    println!(
        "reader thread CPU: {:.1} ms for {} events over {} connects = {:.1} ms per 100,000 connections",
        cpu / 1e6,
        events.load(Ordering::Relaxed),
        2 * n,
        cpu / 1e6 * 100_000.0 / (2 * n) as f64
    );
    for name in [
        "task_newtask",
        "sched_process_e",
        "oom_mark_victim",
        "inet_sock_set_s",
        "tcp_retransmit_",
    ] {
        let (t1, c1) = after.get(name).copied().unwrap_or_default();
        let (t0, c0) = before.get(name).copied().unwrap_or_default();
        let (dt, dc) = (t1 - t0, c1 - c0);
        if dc > 0 {
            println!(
                "{name:16} {dc:>9} runs  {:>7.1} ns/run",
                dt as f64 / dc as f64
            );
        } else {
            println!("{name:16} {dc:>9} runs");
        }
    }

    // Userspace memory for 100,000 tracked connections, learned from one dump.
    let snapshot: Vec<_> = (0..100_000u64)
        .map(|i| {
            let (src, dst) = addrs(i);
            ConnectionBytes {
                pid: 1,
                netns: 1,
                sock: i,
                src,
                dst,
                bytes_sent: i,
                bytes_received: i,
                duration_ns: 1,
                cgroup_id: 1,
                segs_out: 3,
                segs_in: 3,
            }
        })
        .collect();
    let base = rss_kib();
    let mut table = ConnectionTable::new(131_072);
    let update = table.update_open(&snapshot, std::time::Instant::now());
    let with_update_kib = rss_kib() - base;
    drop(update);
    println!(
        "userspace RSS, 100,000 tracked connections (snapshot allocated before): ConnectionTable with the dump's connects and deltas +{with_update_kib} KiB; table alone {} tracked",
        table.len()
    );
}

fn addrs(i: u64) -> (SocketAddr, SocketAddr) {
    (
        SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 40_000)),
        SocketAddr::from(([10, 1, 0, (i % 50) as u8], 5432)),
    )
}
