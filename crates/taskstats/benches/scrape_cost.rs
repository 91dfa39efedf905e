//! Scrape-time cost of delay accounting with N tracked processes: one taskstats query per
//! process, the schedstat fallback, the start-time read, and the accumulator.
//!
//! `cargo bench -p sonde-taskstats --bench scrape_cost` (root): spawns 1,000 and then 10,000
//! `sleep` processes and times whole "scrapes" over them. Without `--bench` (as under
//! `cargo test --all-targets`) it runs a 20-process smoke pass.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sonde_taskstats::{
    DelayAccumulator, TaskDelays, TaskstatsClient, process_start_time, schedstat_cpu_delay_ns,
};

const ROUNDS: usize = 5;

struct Sleepers(Vec<Child>);

impl Drop for Sleepers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
        }
        for c in &mut self.0 {
            let _ = c.wait();
        }
    }
}

fn spawn_sleepers(n: usize) -> Sleepers {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let child = Command::new("sleep")
            .arg("600")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        v.push(child);
    }
    Sleepers(v)
}

/// Median of ROUNDS runs of `f`, which does one whole scrape.
fn median(mut f: impl FnMut()) -> Duration {
    let mut t: Vec<Duration> = (0..ROUNDS)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed()
        })
        .collect();
    t.sort();
    t[ROUNDS / 2]
}

fn report(what: &str, n: usize, d: Duration) {
    println!(
        "{what:<34} n={n:>6}  per scrape {:>9.3} ms  per process {:>7.2} us",
        d.as_secs_f64() * 1e3,
        d.as_secs_f64() * 1e6 / n as f64
    );
}

fn bench(n: usize, client: &mut TaskstatsClient) {
    let procfs = Path::new("/proc");
    let spawn_start = Instant::now();
    let sleepers = spawn_sleepers(n);
    eprintln!(
        "spawned {n} sleep processes in {:.1?}",
        spawn_start.elapsed()
    );
    let pids: Vec<u32> = sleepers.0.iter().map(|c| c.id()).collect();
    let starts: Vec<u64> = pids
        .iter()
        .map(|&p| process_start_time(procfs, p).unwrap().unwrap())
        .collect();

    let d = median(|| {
        for &p in &pids {
            assert!(client.query_tgid(p).unwrap().is_some());
        }
    });
    report("taskstats query_tgid", n, d);
    let d = median(|| {
        for &p in &pids {
            assert!(schedstat_cpu_delay_ns(procfs, p).unwrap().is_some());
        }
    });
    report("schedstat fallback (task/*/)", n, d);
    let d = median(|| {
        for &p in &pids {
            assert!(process_start_time(procfs, p).unwrap().is_some());
        }
    });
    report("start time (/proc/<pid>/stat)", n, d);

    // Accumulator alone: n processes over 100 containers, counters growing every scrape.
    let containers: Vec<String> = (0..100).map(|i| format!("container-{i}")).collect();
    let mut acc = DelayAccumulator::new();
    let mut tick = 0u64;
    let d = median(|| {
        tick += 1;
        for (i, (&p, &s)) in pids.iter().zip(&starts).enumerate() {
            let delays = TaskDelays {
                cpu_delay_ns: tick * 1000 + i as u64,
                blkio_delay_ns: tick * 10,
                version: 16,
            };
            acc.observe(&containers[i % containers.len()], p, s, delays);
        }
        acc.sweep();
    });
    report("DelayAccumulator observe+sweep", n, d);

    // The whole per-scrape path as the registry would run it.
    let d = median(|| {
        for (i, (&p, &s)) in pids.iter().zip(&starts).enumerate() {
            if let Some(delays) = client.query_tgid(p).unwrap() {
                acc.observe(&containers[i % containers.len()], p, s, delays);
            }
        }
        acc.sweep();
    });
    report("query + accumulate (full scrape)", n, d);
    drop(sleepers);
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let mut client = match TaskstatsClient::new() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("SKIP scrape_cost: {e} (needs root)");
            return;
        }
    };
    if !full {
        bench(20, &mut client);
        return;
    }
    println!(
        "kernel {}, {} CPUs",
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for n in [1_000, 10_000] {
        bench(n, &mut client);
    }
}
