//! Benchmarks (ignored by default; they print figures and assert nothing about time):
//! `cargo test -p sonde-logs --release --test sources_bench -- --ignored --nocapture --test-threads=1`
//!
//! - tailer + decoder + multi-line + level + PatternCounter on one thread, CPU time and wall,
//!   for plain and Docker json-file lines (LogHub raw lines from ../shared/loghub when present,
//!   else synthetic lines);
//! - the whole LogManager (its reader thread, 250 ms polls) reading a file written up front;
//! - memory of one container with full pattern tables.
#![allow(clippy::unwrap_used)]

use sonde_logs::source::pipeline::{Format, Pipeline};
use sonde_logs::source::tail::{FileTailer, TailConfig};
use sonde_logs::{Level, LogManager, LogManagerConfig, LogSpec, PatternCounter, detect_level};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn corpus() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/loghub");
    let mut lines = Vec::new();
    if let Ok(rd) = std::fs::read_dir(&dir) {
        let mut systems: Vec<_> = rd.flatten().filter(|e| e.path().is_dir()).collect();
        systems.sort_by_key(|e| e.file_name());
        for e in systems {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Ok(b) = std::fs::read(e.path().join(format!("{name}_2k.log"))) {
                lines.extend(String::from_utf8_lossy(&b).lines().map(str::to_owned));
            }
        }
    }
    if lines.is_empty() {
        println!("(LogHub absent: synthetic lines)");
        for i in 0..16_000 {
            lines.push(match i % 4 {
                0 => format!(
                    "2024-05-01 10:00:{:02} ERROR db timeout on shard {i}",
                    i % 60
                ),
                1 => format!("2024-05-01 10:00:{:02} WARN slow query took {i} ms", i % 60),
                2 => format!("2024-05-01 10:00:{:02} INFO request {i} served", i % 60),
                _ => format!("2024-05-01 10:00:{:02} DEBUG tick {i}", i % 60),
            });
        }
    }
    lines
}

fn write_file(path: &Path, lines: &[String], reps: usize, docker: bool) -> u64 {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut n = 0;
    for _ in 0..reps {
        for l in lines {
            if docker {
                let v = serde_json::json!({"log": format!("{l}\n"), "stream": "stdout", "time": "2024-05-01T10:00:00.000000001Z"});
                writeln!(f, "{v}").unwrap();
            } else {
                writeln!(f, "{l}").unwrap();
            }
            n += 1;
        }
    }
    f.flush().unwrap();
    n
}

fn one_thread(format: Format, docker: bool) {
    let lines = corpus();
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("bench.log");
    let n = write_file(&p, &lines, 20, docker);
    let bytes = std::fs::metadata(&p).unwrap().len();
    let cfg = TailConfig {
        start_at_end: false,
        ..TailConfig::default()
    };
    let mut t = FileTailer::new(&p, cfg, None);
    let mut pl = Pipeline::new(format, 16 * 1024, 128);
    let mut counter = PatternCounter::new(256, 4096);
    let mut msgs = Vec::new();
    let mut count = 0u64;
    let (c0, w0) = (cpu_ns(), Instant::now());
    loop {
        let st = t.poll(Instant::now(), &mut |l| {
            let _ = pl.push_line(l.bytes, Instant::now(), &mut msgs);
        });
        for m in msgs.drain(..) {
            counter.observe(&m, detect_level(&m));
            count += 1;
        }
        if !st.more {
            break;
        }
    }
    pl.flush(&mut msgs);
    count += msgs.len() as u64;
    let (cpu, wall) = ((cpu_ns() - c0) as f64 / 1e9, w0.elapsed().as_secs_f64());
    println!(
        "{format:?}: {n} lines ({:.1} MB) -> {count} messages; CPU {cpu:.3} s = {:.0} lines/s ({:.0} MB/s); wall {wall:.3} s = {:.0} lines/s; counter {} patterns, {} bytes",
        bytes as f64 / 1e6,
        n as f64 / cpu,
        bytes as f64 / 1e6 / cpu,
        n as f64 / wall,
        counter.patterns(),
        counter.memory_bytes()
    );
}

#[test]
#[ignore]
fn bench_one_thread_plain() {
    one_thread(Format::Plain, false);
}

#[test]
#[ignore]
fn bench_one_thread_docker_json() {
    one_thread(Format::DockerJson, true);
}

#[test]
#[ignore]
fn bench_manager_end_to_end() {
    let lines = corpus();
    let d = tempfile::tempdir().unwrap();
    let m = LogManager::start(LogManagerConfig {
        journald: false,
        ..LogManagerConfig::default()
    });
    std::thread::sleep(Duration::from_millis(50));
    let p = d.path().join("e2e.log");
    let n = write_file(&p, &lines, 20, false);
    let w0 = Instant::now();
    m.set_sources("bench", vec![LogSpec::File(p.clone())]);
    loop {
        if m.stats().messages >= n - 1000 {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let wall = w0.elapsed().as_secs_f64();
    println!(
        "LogManager: {n} lines of a file written before set_sources, counted in {wall:.3} s = {:.0} lines/s; {:?}",
        n as f64 / wall,
        m.stats()
    );
}

#[test]
#[ignore]
fn bench_memory_per_container() {
    for sample in [200usize, 4096] {
        let mut c = PatternCounter::new(256, sample);
        let pad = "z".repeat(sample);
        for level in [Level::Critical, Level::Error, Level::Warning] {
            for i in 0..300 {
                let word: String = format!("{i:03}")
                    .bytes()
                    .map(|b| (b'a' + b - b'0') as char)
                    .collect();
                c.observe(&format!("failure kind{word} {pad}"), level);
            }
        }
        for level in [Level::Info, Level::Debug, Level::Unknown] {
            c.observe("x", level);
        }
        println!(
            "one source, 3 levels x 256 patterns (+ overflow, + lower levels), samples {sample} B: {} patterns, {} bytes ({} B/pattern)",
            c.patterns(),
            c.memory_bytes(),
            c.memory_bytes() / c.patterns()
        );
    }
}
