//! Benchmark (root): the tracer's own cost to a loopback connect storm, as many
//! short interleaved rounds with and without it (the order alternates A B, B A,
//! ... so drift hits both sides), to beat a noisy machine with numbers.
//!
//!   cargo run --release -p sonde-tracer --example storm_interleaved -- [PAIRS] [CONNECTIONS]
//!
//! Experiment knobs (ring size, map size): see `common::config_from_env`.
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

use common::{
    compare, config_from_env, drain, measured_storm, process_cpu, server, storm, summarize,
};
use sonde_tracer::Tracer;

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
                let (_tracer, mut stream) = Tracer::start(config_from_env()).unwrap();
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
        pairs_out.push(compare(p, &without.unwrap(), &with.unwrap()));
    }
    summarize("tracer only", &pairs_out, n);
}
