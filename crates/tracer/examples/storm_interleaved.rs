//! Benchmark (root): the tracer's own cost to a loopback connect storm, as many
//! short interleaved rounds with and without it (the order alternates A B, B A,
//! ... so drift hits both sides), to beat a noisy machine with numbers.
//!
//!   cargo run --release -p sonde-tracer --example storm_interleaved -- [PAIRS] [CONNECTIONS]
//!
//! `SONDE_STORM_RING_BYTES` overrides the ring buffer's size (experiments).
//!
//! With the tracer, a reader thread drains the ring buffer into a
//! ConnectionTable, as the agent does (the agent's registry work is not
//! included: compare with tests/benches/connect_storm.rs for that). Prints the
//! mean throughput loss with its 95% confidence interval, over all pairs and
//! over the pairs the hypervisor left alone (CPU steal < 1 % in both rounds),
//! and the increase in CPU time per connection; nothing is asserted.
#![allow(clippy::unwrap_used)]

#[path = "common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use common::{MAX_STEAL_PERCENT, drain, measured_storm, process_cpu, report, server, storm};
use sonde_tracer::{Tracer, TracerConfig};

/// The tracer and its reader thread, for one round; dropping it detaches.
struct Attached {
    stop: Arc<AtomicBool>,
    reader: Option<thread::JoinHandle<()>>,
}

impl Attached {
    fn start() -> Attached {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let stop2 = stop.clone();
        let reader = thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut config = TracerConfig::default();
                // Experiments: SONDE_STORM_RING_BYTES sets the ring buffer's size.
                if let Some(bytes) = std::env::var("SONDE_STORM_RING_BYTES")
                    .ok()
                    .and_then(|s| s.parse().ok())
                {
                    config.ring_buffer_bytes = bytes;
                }
                let (_tracer, mut stream) = Tracer::start(config).unwrap();
                tx.send(()).unwrap();
                drain(&mut stream, &stop2).await;
            });
        });
        rx.recv().unwrap();
        Attached {
            stop,
            reader: Some(reader),
        }
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let pairs: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(40);
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let addr = server();
    storm(addr, 2_000); // warm-up

    let mut pairs_out = Vec::with_capacity(pairs);
    for p in 0..pairs {
        let mut without = None;
        let mut with = None;
        let order = if p % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for traced in order {
            if traced {
                let attached = Attached::start();
                let cpu0 = process_cpu();
                let mut round = measured_storm(addr, n);
                // Let the reader drain before detaching (its work counts too).
                thread::sleep(Duration::from_millis(300));
                drop(attached);
                round.cpu_us = (process_cpu() - cpu0).as_secs_f64() * 1e6 / n as f64;
                with = Some(round);
            } else {
                without = Some(measured_storm(addr, n));
            }
        }
        let (without, with) = (without.unwrap(), with.unwrap());
        let loss = (without.rate - with.rate) / without.rate * 100.0;
        let cpu = (with.cpu_us - without.cpu_us) / without.cpu_us * 100.0;
        let steal = without.steal.max(with.steal) * 100.0;
        eprintln!(
            "pair {}: {:.0} without, {:.0} with: {loss:.2}%; CPU {:.2} / {:.2} us per connection: {cpu:+.2}%; steal {steal:.1}%",
            p + 1,
            without.rate,
            with.rate,
            without.cpu_us,
            with.cpu_us,
        );
        pairs_out.push((loss, cpu, steal));
    }
    let all: Vec<_> = pairs_out.iter().map(|p| p.0).collect();
    report("tracer only, throughput loss, all pairs", &all, n);
    // Steal is CPU time the hypervisor gave to other guests: a round that lost much of it
    // measured the neighbours, not the tracer.
    let quiet: Vec<_> = pairs_out
        .iter()
        .filter(|p| p.2 < MAX_STEAL_PERCENT)
        .map(|p| p.0)
        .collect();
    report(
        &format!("tracer only, throughput loss, pairs with steal < {MAX_STEAL_PERCENT}%"),
        &quiet,
        n,
    );
    let cpu: Vec<_> = pairs_out.iter().map(|p| p.1).collect();
    report(
        "tracer only, CPU time per connection (storm + reader), increase",
        &cpu,
        n,
    );
}
