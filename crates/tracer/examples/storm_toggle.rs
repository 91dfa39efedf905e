//! Benchmark (root): what TCP tracing costs a loopback connect storm, measured
//! with the tracer loaded once and its TCP state program detached and
//! re-attached between short rounds, so hundreds of comparisons fit in a few
//! minutes and the rounds compared are a fraction of a second apart (a noisy VM
//! drifts less in that time than between the seconds-long rounds of
//! storm_interleaved, which reloads the whole tracer per round).
//!
//!   cargo run --release -p sonde-tracer --example storm_toggle -- [SETS] [CONNECTIONS]
//!
//! Each set has three rounds of CONNECTIONS connections, one per arm:
//!   - off: no program on `sock/inet_sock_set_state`;
//!   - dispatch only: `ebpf/bench.bpf.o`'s `dispatch_only`, a program on the
//!     same hook that returns at once, so the kernel's cost of dispatching
//!     the hook is measured on its own, in the same sets as the real program;
//!   - TCP tracing: the tracer's real program.
//!
//! The order of the arms cycles through all six permutations, so drift within
//! a set hits every arm alike. A reader thread drains the ring into a
//! ConnectionTable throughout, as the agent does, and the scrape-time dump of
//! open connections is not exercised (a storm's connections close at once).
//! After each round the reader is given 150 ms to drain, outside the measured
//! time, so a round's records are paid for in that round. Only the TCP state
//! program is toggled: the other programs stay attached and do not fire in a
//! connect storm. Prints, for each comparison (dispatch only vs off, TCP
//! tracing vs off, TCP tracing vs dispatch only), the mean and median
//! throughput loss with their 95% confidence intervals over all sets and over
//! the sets with CPU steal < 1 %, and the increase of this process's CPU time
//! per connection; nothing is asserted.
#![allow(clippy::unwrap_used)]

#[path = "common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use aya::programs::BtfTracePoint;
use aya::programs::tp_btf::BtfTracePointLinkId;
use aya::{Btf, Ebpf};
use common::{Round, compare, config_from_env, drain, measured_storm, server, storm, summarize};
use sonde_tracer::Tracer;

/// Benchmark-only object (ebpf/bench.bpf.c), not part of the agent.
static BENCH_OBJECT: &[u8] = aya::include_bytes_aligned!("../../../ebpf/bench.bpf.o");

const OFF: usize = 0;
const DISPATCH_ONLY: usize = 1;
const TRACING: usize = 2;
const PERMUTATIONS: [[usize; 3]; 6] = [
    [OFF, DISPATCH_ONLY, TRACING],
    [TRACING, DISPATCH_ONLY, OFF],
    [DISPATCH_ONLY, TRACING, OFF],
    [OFF, TRACING, DISPATCH_ONLY],
    [TRACING, OFF, DISPATCH_ONLY],
    [DISPATCH_ONLY, OFF, TRACING],
];

/// `dispatch_only` of the benchmark object.
fn dispatch_only(bench: &mut Ebpf) -> &mut BtfTracePoint {
    bench
        .program_mut("dispatch_only")
        .unwrap()
        .try_into()
        .unwrap()
}

/// `dispatch_only`, attached or detached as asked.
fn set_dispatch_only(bench: &mut Ebpf, link: &mut Option<BtfTracePointLinkId>, on: bool) {
    let prog = dispatch_only(bench);
    match (on, link.take()) {
        (true, None) => *link = Some(prog.attach().unwrap()),
        (false, Some(l)) => prog.detach(l).unwrap(),
        (_, l) => *link = l,
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let sets: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(200);
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(5_000);

    // One runtime worker is the reader thread; the tracer registers its ring with it.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (mut tracer, mut stream) = {
        let _runtime = rt.enter();
        Tracer::start(config_from_env()).unwrap()
    };
    assert!(
        tracer.sock_state_is_tp_btf(),
        "toggling needs the tp_btf program"
    );
    let mut bench = Ebpf::load(BENCH_OBJECT).unwrap();
    dispatch_only(&mut bench)
        .load("inet_sock_set_state", &Btf::from_sys_fs().unwrap())
        .unwrap();
    let mut bench_link = None;
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let reader = rt.spawn(async move { drain(&mut stream, &stop2).await });

    let addr = server();
    storm(addr, 2_000); // warm-up
    let mut rows: Vec<[Round; 3]> = Vec::with_capacity(sets);
    for set in 0..sets {
        let mut rounds: [Option<Round>; 3] = [None, None, None];
        for arm in PERMUTATIONS[set % PERMUTATIONS.len()] {
            tracer.set_tcp_state_tracing(arm == TRACING).unwrap();
            set_dispatch_only(&mut bench, &mut bench_link, arm == DISPATCH_ONLY);
            let cpu0 = common::process_cpu();
            let mut round = measured_storm(addr, n);
            thread::sleep(Duration::from_millis(150)); // the reader drains
            round.cpu_us = (common::process_cpu() - cpu0).as_secs_f64() * 1e6 / n as f64;
            rounds[arm] = Some(round);
        }
        rows.push(rounds.map(Option::unwrap));
    }
    set_dispatch_only(&mut bench, &mut bench_link, false);
    tracer.set_tcp_state_tracing(true).unwrap();
    stop.store(true, Ordering::Relaxed);
    let events = rt.block_on(reader).unwrap();

    for (what, base, arm) in [
        (
            "Dispatch only (a program that returns at once)",
            OFF,
            DISPATCH_ONLY,
        ),
        ("TCP tracing, against dispatch only", DISPATCH_ONLY, TRACING),
        ("TCP tracing", OFF, TRACING),
    ] {
        eprintln!("{what}:");
        let pairs: Vec<_> = rows
            .iter()
            .enumerate()
            .map(|(p, r)| compare(p, &r[base], &r[arm]))
            .collect();
        summarize(what, &pairs, n);
    }
    let lost: u64 = tracer.lost_events().iter().map(|(_, n)| n).sum();
    println!("events read: {events}; lost in the kernel: {lost}");
}
