//! LogManager end to end on files written in the Docker json-file, CRI and plain formats:
//! exact counts per source, level and pattern; bounds; lifecycle (remove, stop, resume).
#![allow(clippy::unwrap_used)]

use sonde_logs::{Level, LogManager, LogManagerConfig, LogSpec, pattern_hash};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

type Series = BTreeMap<(String, Level, Option<u64>), (String, u64)>;

fn cfg(root: &Path) -> LogManagerConfig {
    LogManagerConfig {
        host_root: root.to_path_buf(),
        poll_interval: Duration::from_millis(50),
        multiline_idle: Duration::from_millis(300),
        journald: false,
        ..LogManagerConfig::default()
    }
}

fn series(m: &LogManager, key: &str) -> Series {
    let mut s = Series::new();
    m.for_each(key, |src, l, h, sample, n| {
        let prev = s.insert((src.to_owned(), l, h), (sample.to_owned(), n));
        assert!(prev.is_none(), "duplicate series {src} {l:?} {h:?}");
    });
    s
}

fn total(s: &Series) -> u64 {
    s.values().map(|v| v.1).sum()
}

/// Waits until `key` has counted `n` messages (failing after a generous deadline, not a timing
/// assertion), then a few poll intervals more to catch any double count.
fn wait_total(m: &LogManager, key: &str, n: u64) -> Series {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = series(m, key);
        if total(&s) >= n {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "waited for {n} messages, have {}: {s:#?}",
            total(&s)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(400));
    series(m, key)
}

/// Waits until the manager's reader has opened `n` files (it opens them at their end).
fn wait_open(m: &LogManager, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while m.stats().open_files < n {
        assert!(Instant::now() < deadline, "{:?}", m.stats());
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn wait_open_exactly(m: &LogManager, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while m.stats().open_files != n {
        assert!(Instant::now() < deadline, "{:?}", m.stats());
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn append(path: &Path) -> File {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).unwrap();
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
}

fn docker_line(stream: &str, log: &str) -> String {
    let v =
        serde_json::json!({"log": log, "stream": stream, "time": "2024-05-01T10:00:00.000000001Z"});
    format!("{v}\n")
}

fn key(source: &str, level: Level, msg: Option<&str>) -> (String, Level, Option<u64>) {
    (source.to_owned(), level, msg.map(pattern_hash))
}

#[test]
fn docker_json_file_counts_per_level_and_pattern() {
    let root = tempfile::tempdir().unwrap();
    let rel = PathBuf::from("/var/lib/docker/containers/abc/abc-json.log");
    let path = root
        .path()
        .join("var/lib/docker/containers/abc/abc-json.log");
    let mut w = append(&path);
    w.write_all(docker_line("stdout", "ERROR history must not count\n").as_bytes())
        .unwrap();
    // Born well before the manager starts (birth times are coarse: see BIRTH_SLACK).
    std::thread::sleep(Duration::from_millis(100));
    let m = LogManager::start(cfg(root.path()));
    m.set_sources("c1", vec![LogSpec::DockerJson(rel)]);
    wait_open(&m, 1);
    let mut s = String::new();
    for i in 0..30 {
        s += &docker_line(
            "stderr",
            &format!("ERROR payment {i} failed for order {i}\n"),
        );
    }
    for i in 0..20 {
        s += &docker_line(
            "stdout",
            &format!("level=warn msg=\"cache miss\" key=k{i}\n"),
        );
    }
    for i in 0..50 {
        s += &docker_line("stdout", &format!("INFO served /api/{i} in {i} ms\n"));
    }
    // A message split by Docker at 16 KiB: one message.
    s += &docker_line("stdout", &format!("ERROR huge {}", "a".repeat(16384)));
    s += &docker_line("stdout", "tail of huge\n");
    s += "this is not json\n";
    s += &docker_line("stdout", "plain words\n");
    w.write_all(s.as_bytes()).unwrap();

    let got = wait_total(&m, "c1", 30 + 20 + 50 + 1 + 1);
    let src = "stdout/stderr";
    let mut want = Series::new();
    want.insert(
        key(
            src,
            Level::Error,
            Some("ERROR payment 0 failed for order 0"),
        ),
        ("ERROR payment 0 failed for order 0".into(), 30),
    );
    want.insert(
        key(
            src,
            Level::Warning,
            Some("level=warn msg=\"cache miss\" key=k0"),
        ),
        ("level=warn msg=\"cache miss\" key=k0".into(), 20),
    );
    let huge = format!("ERROR huge {}tail of huge", "a".repeat(16384));
    want.insert(
        key(src, Level::Error, Some(&huge)),
        (sonde_logs::truncate(&huge, 4096).to_owned(), 1),
    );
    want.insert(key(src, Level::Info, None), (String::new(), 50));
    want.insert(key(src, Level::Unknown, None), (String::new(), 1));
    assert_eq!(got, want);
    let st = m.stats();
    assert_eq!(st.decode_errors, 1);
    assert_eq!(st.messages, 102);
    assert_eq!(st.open_files, 1);
}

#[test]
fn cri_log_partial_lines_are_joined() {
    let root = tempfile::tempdir().unwrap();
    let rel = PathBuf::from("/var/log/pods/ns_pod_uid/app/0.log");
    let path = root.path().join("var/log/pods/ns_pod_uid/app/0.log");
    let mut w = append(&path);
    let m = LogManager::start(cfg(root.path()));
    m.set_sources("pod", vec![LogSpec::Cri(rel)]);
    wait_open(&m, 1);
    let t = "2024-05-01T10:00:00.000000001Z";
    let mut s = String::new();
    for i in 0..10 {
        s += &format!("{t} stderr F E0501 10:00:00.000000 1 main.go:1] failed to sync {i}\n");
    }
    // Partial lines of stdout interleaved with a full stderr line.
    s += &format!("{t} stdout P WARNING: disk ");
    s += "\n";
    s += &format!("{t} stderr F I0501 10:00:00.000000 1 main.go:2] synced\n");
    s += &format!("{t} stdout F almost full\n");
    s += &format!("{t} garbage line\n");
    w.write_all(s.as_bytes()).unwrap();
    let got = wait_total(&m, "pod", 12);
    let src = "stdout/stderr";
    let first = "E0501 10:00:00.000000 1 main.go:1] failed to sync 0";
    let mut want = Series::new();
    want.insert(key(src, Level::Error, Some(first)), (first.into(), 10));
    want.insert(
        key(src, Level::Warning, Some("WARNING: disk almost full")),
        ("WARNING: disk almost full".into(), 1),
    );
    want.insert(key(src, Level::Info, None), (String::new(), 1));
    assert_eq!(got, want);
    assert_eq!(m.stats().decode_errors, 1);
}

#[test]
fn plain_file_under_host_root_has_its_path_as_source_and_joins_stack_traces() {
    let root = tempfile::tempdir().unwrap();
    let path = root.path().join("var/log/app/app.log");
    let mut w = append(&path);
    let m = LogManager::start(cfg(root.path()));
    m.set_sources("svc", vec![LogSpec::File("/var/log/app/app.log".into())]);
    wait_open(&m, 1);
    let trace = "ERROR request failed\njava.lang.IllegalStateException: boom\n\tat a.b.C.d(C.java:1)\n\tat a.b.C.e(C.java:2)\nCaused by: java.io.IOException: x\n\t... 2 more\n";
    for _ in 0..3 {
        w.write_all(trace.as_bytes()).unwrap();
    }
    w.write_all(b"WARN low memory\n").unwrap();
    let got = wait_total(&m, "svc", 4);
    let src = "/var/log/app/app.log";
    let joined = trace.trim_end();
    let mut want = Series::new();
    want.insert(key(src, Level::Error, Some(joined)), (joined.into(), 3));
    want.insert(
        key(src, Level::Warning, Some("WARN low memory")),
        ("WARN low memory".into(), 1),
    );
    assert_eq!(got, want);
}

#[test]
fn patterns_are_capped_per_level_and_samples_truncated() {
    let root = tempfile::tempdir().unwrap();
    let path = root.path().join("cap.log");
    let mut w = append(&path);
    let m = LogManager::start(LogManagerConfig {
        max_patterns_per_level: 5,
        max_sample_len: 12,
        ..cfg(root.path())
    });
    m.set_sources("k", vec![LogSpec::File("/cap.log".into())]);
    wait_open(&m, 1);
    let words = [
        "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
    ];
    let mut s = String::new();
    // Two words vary together, so the learning miner keeps eight kinds (it generalises one
    // position at a time).
    for (i, w) in words.iter().enumerate() {
        for _ in 0..=i {
            s += &format!("ERROR {w} subsystem {w}-unit failed\n");
        }
    }
    s += "ERROR alpha subsystem alpha-unit failed\n";
    w.write_all(s.as_bytes()).unwrap();
    let got = wait_total(&m, "k", 1 + 36);
    let patterns: Vec<_> = got.iter().filter(|(k, _)| k.2.is_some()).collect();
    assert_eq!(patterns.len(), 5);
    for ((_, l, _), (sample, _)) in &patterns {
        assert_eq!(*l, Level::Error);
        assert!(sample.len() <= 12, "{sample}");
    }
    let alpha = key(
        "/cap.log",
        Level::Error,
        Some("ERROR alpha subsystem alpha-unit failed"),
    );
    assert_eq!(got[&alpha], ("ERROR alpha ".to_owned(), 2));
    // foxtrot (6), golf (7), hotel (8) came after the cap: unclassified.
    assert_eq!(
        got[&key("/cap.log", Level::Error, None)],
        (String::new(), 21)
    );
}

#[test]
fn existing_files_start_at_end_new_files_from_start_and_resume_after_stop() {
    let root = tempfile::tempdir().unwrap();
    let old = root.path().join("old.log");
    let mut w_old = append(&old);
    w_old.write_all(b"ERROR old history\n").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let m = LogManager::start(cfg(root.path()));
    // Created after the manager started, with lines already in it when it is added.
    let new = root.path().join("new.log");
    let mut w_new = append(&new);
    w_new.write_all(b"ERROR crash at startup\n").unwrap();
    m.set_sources(
        "c",
        vec![
            LogSpec::File("/old.log".into()),
            LogSpec::File("/new.log".into()),
        ],
    );
    let got = wait_total(&m, "c", 1);
    assert_eq!(
        got.keys().cloned().collect::<Vec<_>>(),
        vec![key(
            "/new.log",
            Level::Error,
            Some("ERROR crash at startup")
        )]
    );
    w_old.write_all(b"ERROR old new line\n").unwrap();
    let got = wait_total(&m, "c", 2);
    assert_eq!(total(&got), 2);

    // Stop the sources: counters stay; lines written meanwhile are read once on re-add.
    m.set_sources("c", vec![]);
    wait_open_exactly(&m, 0);
    assert_eq!(m.stats().open_files, 0);
    w_new
        .write_all(b"ERROR crash at startup\npartial ")
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(total(&series(&m, "c")), 2, "stopped");
    m.set_sources("c", vec![LogSpec::File("/new.log".into())]);
    w_new.write_all(b"line\n").unwrap();
    let got = wait_total(&m, "c", 4);
    assert_eq!(total(&got), 4);
    assert_eq!(
        got[&key("/new.log", Level::Error, Some("ERROR crash at startup"))].1,
        2
    );
    assert_eq!(got[&key("/new.log", Level::Unknown, None)].1, 1);

    m.remove("c");
    assert!(series(&m, "c").is_empty());
    w_new.write_all(b"ERROR after removal\n").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(series(&m, "c").is_empty());
    assert_eq!(m.stats().containers, 0);
    assert_eq!(m.stats().open_files, 0);
}

#[test]
fn open_file_and_source_caps() {
    let root = tempfile::tempdir().unwrap();
    let m = LogManager::start(LogManagerConfig {
        max_open_files: 3,
        max_sources_per_container: 2,
        ..cfg(root.path())
    });
    let specs = |p: &str| {
        (0..3)
            .map(|i| LogSpec::File(format!("/{p}{i}.log").into()))
            .collect()
    };
    for p in ["a", "b"] {
        for i in 0..3 {
            append(&root.path().join(format!("{p}{i}.log")));
        }
    }
    m.set_sources("a", specs("a"));
    m.set_sources("b", specs("b"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while m.stats().open_files < 3 {
        assert!(Instant::now() < deadline, "{:?}", m.stats());
        std::thread::sleep(Duration::from_millis(20));
    }
    let st = m.stats();
    assert_eq!(st.open_files, 3);
    assert_eq!(st.skipped_sources, 3);
}

#[test]
fn disabled_does_nothing() {
    let root = tempfile::tempdir().unwrap();
    let path = root.path().join("x.log");
    let mut w = append(&path);
    let m = LogManager::start(LogManagerConfig {
        disabled: true,
        ..cfg(root.path())
    });
    m.set_sources("c", vec![LogSpec::File("/x.log".into())]);
    m.set_journald_route("c", Some("x.service".into()), None);
    w.write_all(b"ERROR x\n").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(series(&m, "c").is_empty());
    assert_eq!(m.stats(), Default::default());
}

#[test]
fn memory_per_container_is_bounded_with_full_pattern_tables() {
    let root = tempfile::tempdir().unwrap();
    let path = root.path().join("mem.log");
    let mut w = append(&path);
    let m = LogManager::start(LogManagerConfig {
        max_sample_len: 200,
        ..cfg(root.path())
    });
    m.set_sources("c", vec![LogSpec::File("/mem.log".into())]);
    wait_open(&m, 1);
    // 300 distinct patterns per level (words, not digits, so masking keeps them) at three
    // levels that keep patterns, with ~200-byte samples.
    let pad = "z".repeat(150);
    let mut s = String::new();
    let mut n = 0;
    for level in ["CRITICAL", "ERROR", "WARN"] {
        for i in 0..300 {
            let word: String = format!("{i:03}")
                .bytes()
                .map(|b| (b'a' + b - b'0') as char)
                .collect();
            // Two words vary together: the learning miner generalises one position at a time,
            // so these stay distinct patterns (the worst case for memory).
            s += &format!("{level} failure kind{word} sort{word} {pad}\n");
            n += 1;
        }
    }
    w.write_all(s.as_bytes()).unwrap();
    let got = wait_total(&m, "c", n);
    assert_eq!(got.iter().filter(|(k, _)| k.2.is_some()).count(), 3 * 256);
    let mem = m.container_memory_bytes("c");
    println!("container memory with 3 x 256 patterns, 200-byte samples: {mem} bytes");
    // Samples and series, plus the miner's tables (768 clusters, 1024 remembered templates).
    assert!(mem < 3 * 256 * (200 + 160) + 160 * 1024, "{mem}");
    assert!(m.stats().memory_bytes >= mem as u64);
}

/// Memory per container, silent and busy, through the whole manager (tailer, pipeline,
/// counters). A silent container (its log file open, nothing written) must cost next to
/// nothing: the read buffer is shared by the reader thread, the pattern tables allocate on the
/// first message.
#[test]
fn memory_per_silent_and_busy_container() {
    let root = tempfile::tempdir().unwrap();
    let n = 200;
    let m = LogManager::start(cfg(root.path()));
    let baseline = m.stats().memory_bytes;
    for i in 0..n {
        let path = root.path().join(format!("c{i}.log"));
        append(&path);
        m.set_sources(
            &format!("c{i}"),
            vec![LogSpec::File(format!("/c{i}.log").into())],
        );
    }
    wait_open(&m, n);
    // The reader publishes its memory after each pass over the files.
    std::thread::sleep(Duration::from_millis(300));
    let silent = m.stats().memory_bytes - baseline;
    let per_silent = silent / n;
    println!("{n} silent containers: {silent} bytes, {per_silent} bytes each");
    // One shared 64 KiB read buffer for all, plus under 1 KiB per container.
    assert!(silent < 64 * 1024 + n * 1024, "{silent}");

    // Busy: one container writes 60 kinds of warning (20 with a word variable), 100 each.
    let mut w = append(&root.path().join("c0.log"));
    let names = ["ann", "ben", "cat", "dan", "eve", "fay", "gus", "hal"];
    let mut text = String::new();
    for i in 0..6000usize {
        let kind = i % 60;
        let word: String = format!("{kind:02}")
            .bytes()
            .map(|b| (b'a' + b - b'0') as char)
            .collect();
        text += &if kind < 20 {
            format!(
                "WARN job{word} rejected for tenant {} after {i} ms\n",
                names[i % 8]
            )
        } else {
            format!("WARN disk{word} check failed on {i} sectors with status {word}\n")
        };
    }
    w.write_all(text.as_bytes()).unwrap();
    let got = wait_total(&m, "c0", 6000);
    assert_eq!(got.len(), 60);
    let busy = m.container_memory_bytes("c0");
    println!("busy container (60 patterns, 6000 messages): {busy} bytes of counters");
    assert!(busy < 64 * 1024, "{busy}");
}
