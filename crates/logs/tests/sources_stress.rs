//! Stress: a writer at ~10,000 lines/s for a few seconds, with a rename rotation (the writer
//! keeps writing to the renamed file for a while before reopening, as an application between
//! logrotate's rename and its reopen signal) and a copytruncate in the middle. The agent's
//! counts must equal the lines written, per pattern and level.
//!
//! copytruncate has an inherent race: lines written after the agent's last read and before the
//! truncation exist only in the copy. Here the writer cooperates as with logrotate's
//! copytruncate of a quiesced writer: it pauses, the test waits until the agent has read
//! everything written, then copies and truncates, and the writer resumes.
#![allow(clippy::unwrap_used)]

use sonde_logs::{Level, LogManager, LogManagerConfig, LogSpec, pattern_hash};
use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

const RATE: u64 = 10_000;
const SECONDS: u64 = 4;
const BATCH: u64 = 100;

/// The i-th line and its level: five kinds, two of them below warning.
fn line(i: u64) -> (String, Level) {
    match i % 5 {
        0 => (
            format!("ERROR db timeout on shard {i} after {} ms", i % 97),
            Level::Error,
        ),
        1 => (
            format!("WARN slow query took {} ms", i % 1000),
            Level::Warning,
        ),
        2 => (format!("INFO request {i} served"), Level::Info),
        3 => (format!("CRITICAL payment {i} lost"), Level::Critical),
        _ => (format!("DEBUG tick {i}"), Level::Debug),
    }
}

fn counted(m: &LogManager, key: &str) -> BTreeMap<(Level, Option<u64>), u64> {
    let mut s = BTreeMap::new();
    m.for_each(key, |_, l, h, _, n| {
        *s.entry((l, h)).or_insert(0) += n;
    });
    s
}

fn wait_for(m: &LogManager, key: &str, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got: u64 = counted(m, key).values().sum();
        if got >= n {
            return;
        }
        assert!(Instant::now() < deadline, "agent stuck at {got} of {n}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run(format_line: fn(&str) -> String, spec: fn(&Path) -> LogSpec, name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    let m = LogManager::start(LogManagerConfig {
        host_root: "/".into(),
        journald: false,
        ..LogManagerConfig::default()
    });
    let mut w = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap();
    m.set_sources("stress", vec![spec(&path)]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while m.stats().open_files == 0 {
        assert!(Instant::now() < deadline, "{:?}", m.stats());
        std::thread::sleep(Duration::from_millis(10));
    }

    let total = RATE * SECONDS;
    let mut want: BTreeMap<(Level, Option<u64>), u64> = BTreeMap::new();
    let start = Instant::now();
    let mut i = 0u64;
    let mut stale_writes = 0u64;
    let mut old: Option<std::fs::File> = None;
    while i < total {
        // Pace: BATCH lines every BATCH/RATE seconds.
        let due = start + Duration::from_micros(i * 1_000_000 / RATE);
        if let Some(d) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
        let mut buf = String::new();
        for _ in 0..BATCH {
            let (text, level) = line(i);
            let h = level.keeps_patterns().then(|| pattern_hash(&text));
            *want.entry((level, h)).or_insert(0) += 1;
            buf.push_str(&format_line(&text));
            i += 1;
        }
        // After the rename the application still writes to the old file for a while.
        match (&mut old, stale_writes) {
            (Some(o), n) if n < 20 => {
                o.write_all(buf.as_bytes()).unwrap();
                stale_writes += 1;
                if stale_writes == 20 {
                    old = None;
                    w = OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&path)
                        .unwrap();
                }
            }
            _ => w.write_all(buf.as_bytes()).unwrap(),
        }
        if i == total / 3 / BATCH * BATCH {
            std::fs::rename(&path, dir.path().join(format!("{name}.1"))).unwrap();
            old = Some(w.try_clone().unwrap());
        }
        if i == 2 * total / 3 / BATCH * BATCH {
            wait_for(&m, "stress", i);
            std::fs::copy(&path, dir.path().join(format!("{name}.2"))).unwrap();
            OpenOptions::new()
                .write(true)
                .open(&path)
                .unwrap()
                .set_len(0)
                .unwrap();
        }
    }
    let elapsed = start.elapsed();
    wait_for(&m, "stress", total);
    // A few more polls: nothing may be counted twice.
    std::thread::sleep(Duration::from_millis(1500));
    let got = counted(&m, "stress");
    let st = m.stats();
    println!(
        "{name}: wrote {total} lines in {elapsed:?} ({:.0} lines/s); stats {st:?}",
        total as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(got, want);
    assert_eq!(st.messages, total);
    assert!(st.rotations >= 1, "{st:?}");
    assert_eq!(st.truncations, 1, "{st:?}");
}

#[test]
fn plain_file_rename_and_copytruncate_at_10k_lines_per_second() {
    run(
        |t| format!("{t}\n"),
        |p| LogSpec::File(p.to_path_buf()),
        "plain.log",
    );
}

#[test]
fn docker_json_file_rename_and_copytruncate_at_10k_lines_per_second() {
    run(
        |t| {
            let v = serde_json::json!({"log": format!("{t}\n"), "stream": "stdout", "time": "2024-05-01T10:00:00Z"});
            format!("{v}\n")
        },
        |p| LogSpec::DockerJson(p.to_path_buf()),
        "container-json.log",
    );
}
