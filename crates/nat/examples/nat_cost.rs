//! What NAT resolution costs the agent per connection, measured on the real kernel: in a
//! network namespace of its own (root), N connections through a DNAT rule and N straight to
//! the upstream; reports the resolver thread's CPU (schedstat) per connection of each kind,
//! and the cost of the lookups the tracer bridge would make.
//!
//! `cargo run --release -p sonde-nat --example nat_cost -- 20000`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use sonde_nat::{Nat, NatConfig};

fn run(cmd: &[&str]) {
    let ok = Command::new(cmd[0])
        .args(&cmd[1..])
        .status()
        .unwrap()
        .success();
    assert!(ok, "{cmd:?}");
}

/// CPU time of this process's thread named `name`, in ns (schedstat's first field).
fn thread_cpu_ns(name: &str) -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() == name {
            let s = std::fs::read_to_string(task.path().join("schedstat")).unwrap();
            total += s.split_whitespace().next().unwrap().parse::<u64>().unwrap();
        }
    }
    total
}

fn storm(n: usize, dst: SocketAddr) -> Vec<SocketAddr> {
    let mut locals = Vec::with_capacity(n);
    for _ in 0..n {
        let mut c = TcpStream::connect(dst).unwrap();
        locals.push(c.local_addr().unwrap());
        let mut b = Vec::new();
        let _ = c.read_to_end(&mut b);
    }
    locals
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    // SAFETY: unshare on the main thread before any other thread exists.
    assert_eq!(
        unsafe { libc::unshare(libc::CLONE_NEWNET) },
        0,
        "needs root"
    );
    run(&["ip", "link", "set", "lo", "up"]);
    run(&[
        "iptables",
        "-t",
        "nat",
        "-A",
        "OUTPUT",
        "-p",
        "tcp",
        "-d",
        "127.0.0.1",
        "--dport",
        "18081",
        "-j",
        "DNAT",
        "--to-destination",
        "127.0.0.1:18082",
    ]);
    let l = TcpListener::bind("127.0.0.1:18082").unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            drop(s);
        }
    });
    let dialled: SocketAddr = "127.0.0.1:18081".parse().unwrap();
    let upstream: SocketAddr = "127.0.0.1:18082".parse().unwrap();

    for filter in [true, false] {
        let nat = Nat::start(NatConfig {
            kernel_filter: filter,
            table_size: 4 * n,
            ..NatConfig::default()
        })
        .unwrap();
        for (what, dst) in [("translated", dialled), ("untranslated", upstream)] {
            std::thread::sleep(Duration::from_millis(600));
            let before = thread_cpu_ns("sonde-conntrack");
            let t0 = Instant::now();
            let locals = storm(n, dst);
            let storm_s = t0.elapsed().as_secs_f64();
            std::thread::sleep(Duration::from_millis(1200));
            nat.sync();
            let reader = thread_cpu_ns("sonde-conntrack") - before;
            let t1 = Instant::now();
            let mut hits = 0;
            for l in &locals {
                hits += usize::from(nat.lookup(*l, dst).is_some());
            }
            let lookup_ns = t1.elapsed().as_nanos() as f64 / n as f64;
            println!(
                "filter={filter} {what}: {n} connections in {storm_s:.2} s; resolver thread {:.0} ns/connection; lookup {lookup_ns:.0} ns; hits {hits}; {:?}",
                reader as f64 / n as f64,
                nat.stats()
            );
        }
    }
}
