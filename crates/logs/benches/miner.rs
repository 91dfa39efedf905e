//! Miner throughput over the LogHub-2k raw lines (../shared/loghub), one core.
//!
//! `cargo bench -p sonde-logs --bench miner`. Skips (prints why) when the data is absent.
#![allow(clippy::unwrap_used)]
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
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

fn bench(c: &mut Criterion) {
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
    g.finish();
    eprintln!("{} lines, {} bytes per iteration", lines.len(), bytes);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = bench
}
criterion_main!(benches);
