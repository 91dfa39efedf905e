//! Benchmark (root): what TCP tracing costs a loopback connect storm, measured
//! with the tracer loaded once and its TCP state program detached and
//! re-attached between short rounds, so hundreds of with/without pairs fit in a
//! few minutes and each pair's two rounds are a fraction of a second apart (a
//! noisy VM drifts less in that time than between the seconds-long rounds of
//! storm_interleaved, which reloads the whole tracer per round).
//!
//!   cargo run --release -p sonde-tracer --example storm_toggle -- [PAIRS] [CONNECTIONS]
//!
//! A reader thread drains the ring into a ConnectionTable throughout, as the
//! agent does, and the scrape-time dump of open connections is not exercised
//! (a storm's connections close at once). Between rounds the reader is given
//! 150 ms to drain, outside the measured time, so a round's records are paid
//! for in that round. Only the TCP state program is toggled: the other programs
//! stay attached and do not fire in a connect storm. Order alternates
//! (on off, off on, ...). Prints the mean throughput loss with its 95%
//! confidence interval over all pairs and over the pairs with CPU steal < 1 %,
//! and the increase of this process's CPU time per connection; nothing is
//! asserted.
#![allow(clippy::unwrap_used)]

#[path = "common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use common::{compare, config_from_env, drain, measured_storm, server, storm, summarize};
use sonde_tracer::Tracer;

fn main() {
    let mut args = std::env::args().skip(1);
    let pairs: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(200);
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
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let reader = rt.spawn(async move { drain(&mut stream, &stop2).await });

    let addr = server();
    storm(addr, 2_000); // warm-up
    let mut results = Vec::with_capacity(pairs);
    for p in 0..pairs {
        let order = if p % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        let (mut with, mut without) = (None, None);
        for traced in order {
            tracer.set_tcp_state_tracing(traced).unwrap();
            let cpu0 = common::process_cpu();
            let mut round = measured_storm(addr, n);
            thread::sleep(Duration::from_millis(150)); // the reader drains
            round.cpu_us = (common::process_cpu() - cpu0).as_secs_f64() * 1e6 / n as f64;
            if traced {
                with = Some(round);
            } else {
                without = Some(round);
            }
        }
        results.push(compare(p, &without.unwrap(), &with.unwrap()));
    }
    tracer.set_tcp_state_tracing(true).unwrap();
    stop.store(true, Ordering::Relaxed);
    let events = rt.block_on(reader).unwrap();

    summarize("TCP tracing", &results, n);
    let lost: u64 = tracer.lost_events().iter().map(|(_, n)| n).sum();
    println!("events read: {events}; lost in the kernel: {lost}");
}
