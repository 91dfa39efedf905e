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
    // The learning miner as the agent runs it: one miner per log, learning as it goes. Each
    // system's lines go to their own miner (kept across repetitions: steady state after the
    // first pass); `learning` starts a fresh miner per system and pass (every template new).
    let miners = std::cell::RefCell::new(std::collections::HashMap::new());
    run("PatternMiner::observe", &|l| {
        let mut m = miners.borrow_mut();
        let miner = m
            .entry(0u8)
            .or_insert_with(sonde_logs::PatternMiner::default);
        u64::from(miner.observe(l).unwrap_or(0))
    });
    run("PatternCounter::observe", &|l| {
        thread_local! {
            static C: std::cell::RefCell<sonde_logs::PatternCounter> =
                std::cell::RefCell::new(sonde_logs::PatternCounter::new(256, 1024));
        }
        C.with(|c| c.borrow_mut().observe(l, sonde_logs::Level::Error));
        0
    });
    let t = cpu_ns();
    for _ in 0..reps {
        let mut m = sonde_logs::PatternMiner::default();
        for l in &lines {
            black_box(m.observe(black_box(l)));
        }
    }
    let dt = (cpu_ns() - t) as f64 / 1e9;
    println!(
        "{:28} {:>10.0} lines/s (cpu {dt:.3}s, fresh miner per pass)",
        "PatternMiner learning",
        n / dt
    );
    // Worst case for the learning miner: every line a new template that can never generalise
    // (three words change together), so once the tables are full (the agent's caps for 256
    // patterns per level) every line misses the template table and scans its bucket.
    let worst: Vec<String> = (0..100_000u32)
        .map(|i| {
            let w: String = i
                .to_string()
                .bytes()
                .map(|b| (b'a' + b - b'0') as char)
                .collect();
            format!("alpha{w} bravo{w} charlie{w} delta echo")
        })
        .collect();
    let mut c = sonde_logs::PatternCounter::new(256, 1024);
    let t = cpu_ns();
    for l in &worst {
        c.observe(black_box(l), sonde_logs::Level::Error);
    }
    let dt = (cpu_ns() - t) as f64 / 1e9;
    println!(
        "{:28} {:>10.0} lines/s (cpu {dt:.3}s, 100,000 distinct unmergeable lines, cap 256)",
        "PatternCounter worst case",
        worst.len() as f64 / dt
    );
}
