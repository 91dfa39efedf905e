//! CPU-time throughput of the miner on one thread, independent of machine load:
//! `throughput FILE... ` hashes all lines of the files REPS times (env, default 20) and reports
//! lines per second of this thread's CPU time (/proc/thread-self/schedstat).
use std::hint::black_box;

fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let mut lines = Vec::new();
    for f in std::env::args().skip(1) {
        let bytes = std::fs::read(&f).unwrap_or_default();
        lines.extend(String::from_utf8_lossy(&bytes).lines().map(str::to_owned));
    }
    let reps: usize = std::env::var("REPS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    let n = (lines.len() * reps) as f64;
    let run = |name: &str, f: &dyn Fn(&str) -> u64| {
        let t = cpu_ns();
        let mut acc = 0u64;
        for _ in 0..reps {
            for l in &lines {
                acc ^= f(black_box(l));
            }
        }
        let dt = (cpu_ns() - t) as f64 / 1e9;
        println!(
            "{name:28} {:>10.0} lines/s (cpu {dt:.3}s, {} lines) {}",
            n / dt,
            n,
            acc & 1
        );
    };
    run("pattern_hash", &|l| sonde_logs::pattern_hash(l));
    run("detect_level", &|l| sonde_logs::detect_level(l) as u64);
    run("detect_level+pattern_hash", &|l| {
        sonde_logs::pattern_hash(l) ^ sonde_logs::detect_level(l) as u64
    });
}
