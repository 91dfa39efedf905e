//! Miner throughput over the LogHub-2k raw lines (../shared/loghub), one core.
//!
//! `cargo bench -p sonde-logs --bench miner`. Skips (prints why) when the data is absent.
//! Measured in the bench thread's CPU time (CLOCK_THREAD_CPUTIME_ID), not wall time: on this
//! shared 2-core machine other builds keep the load at 4-9, which makes wall figures 2-3x
//! pessimistic and noisy; CPU time is what the agent pays per core.
#![allow(clippy::unwrap_used)]
use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::time::Duration;

/// Criterion measurement of this thread's CPU time; formatted as durations.
struct CpuTime(WallTime);

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant the kernel knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

impl Measurement for CpuTime {
    type Intermediate = Duration;
    type Value = Duration;
    fn start(&self) -> Duration {
        thread_cpu()
    }
    fn end(&self, i: Duration) -> Duration {
        thread_cpu().saturating_sub(i)
    }
    fn add(&self, v1: &Duration, v2: &Duration) -> Duration {
        *v1 + *v2
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        self.0.formatter()
    }
}
use std::hint::black_box;
use std::path::Path;

fn load(raw: bool) -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/loghub");
    let mut lines = Vec::new();
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return lines;
    };
    let mut systems: Vec<_> = rd.flatten().filter(|e| e.path().is_dir()).collect();
    systems.sort_by_key(|e| e.file_name());
    for e in systems {
        let name = e.file_name().to_string_lossy().into_owned();
        let p = if raw {
            e.path().join(format!("{name}_2k.log"))
        } else {
            e.path().join(format!("{name}_2k.log_structured.csv"))
        };
        let Ok(bytes) = std::fs::read(&p) else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        lines.extend(text.lines().map(str::to_owned));
    }
    lines
}

fn bench(c: &mut Criterion<CpuTime>) {
    let lines = load(true);
    if lines.is_empty() {
        eprintln!("skipping: ../shared/loghub not found");
        return;
    }
    let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
    let mut g = c.benchmark_group("miner");
    g.throughput(Throughput::Elements(lines.len() as u64));
    g.bench_function("pattern_hash/raw_lines", |b| {
        b.iter(|| {
            let mut acc = 0u64;
            for l in &lines {
                acc ^= sonde_logs::pattern_hash(black_box(l));
            }
            acc
        })
    });
    g.throughput(Throughput::Elements(lines.len() as u64));
    g.bench_function("detect_level+pattern_hash/raw_lines", |b| {
        b.iter(|| {
            let mut acc = 0u64;
            for l in &lines {
                acc ^= sonde_logs::pattern_hash(black_box(l));
                acc ^= sonde_logs::detect_level(black_box(l)) as u64;
            }
            acc
        })
    });
    g.bench_function("counter_observe/raw_lines", |b| {
        let mut counter = sonde_logs::PatternCounter::new(256, 1024);
        b.iter(|| {
            for l in &lines {
                counter.observe(black_box(l), sonde_logs::Level::Error);
            }
        })
    });
    g.bench_function("learning_miner_observe/raw_lines", |b| {
        // Steady state: the miner has seen the lines once (as a running agent has).
        let mut m = sonde_logs::PatternMiner::default();
        for l in &lines {
            m.observe(l);
        }
        b.iter(|| {
            let mut acc = 0u32;
            for l in &lines {
                acc ^= m.observe(black_box(l)).unwrap_or(0);
            }
            acc
        })
    });
    g.bench_function("learning_miner_from_scratch/raw_lines", |b| {
        // Every pass starts a fresh miner: every template is new and learned.
        b.iter(|| {
            let mut m = sonde_logs::PatternMiner::default();
            let mut acc = 0u32;
            for l in &lines {
                acc ^= m.observe(black_box(l)).unwrap_or(0);
            }
            acc
        })
    });
    g.finish();
    eprintln!("{} lines, {} bytes per iteration", lines.len(), bytes);
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(CpuTime(WallTime)).sample_size(30);
    targets = bench
}
criterion_main!(benches);
