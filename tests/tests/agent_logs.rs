//! Container logs end to end, with real parts: the agent's `container_log_messages_total` counts
//! exactly the messages real producers wrote, by level and pattern.
//!
//! - journald: a live systemd-journald (reused when one runs) receiving a stream from a process in
//!   a test service's cgroup, routed by unit and cgroup;
//! - Docker json-file: a real dockerd container writing to stdout;
//! - CRI: a pod container of a real containerd (CRI plugin) writing to stdout and stderr;
//! - a plain file under /var/log held open (O_APPEND) by a process in a test service, written at
//!   ~10,000 lines/s through a rename rotation and a copytruncate.
//!
//! Counts are compared exactly once the agent has caught up (then again after a pause, so late
//! double counting would show). Tests run one at a time: each starts an agent (and a runtime),
//! and the rotation test needs the two cores. Everything made here is undone on drop, also when
//! a test panics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sonde_integration_tests::cgroups::{self, TestCgroup};
use sonde_integration_tests::containerd::Containerd;
use sonde_integration_tests::dockerd::Dockerd;
use sonde_integration_tests::{Agent, Scrape, privileged, skip};

const METRIC: &str = "container_log_messages_total";
const TIMEOUT: Duration = Duration::from_secs(60);
/// Longer than the agent's multi-line idle flush (1 s) plus a poll: a message still held would
/// be counted by then, so a count that stays put is final.
const SETTLE: Duration = Duration::from_millis(2500);

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// One series of `container_log_messages_total`, its hash abstracted: `pattern` is "#" for a
/// 16-hex-digit pattern hash (checked), else the label as is ("" below warning, "unclassified").
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Series {
    level: String,
    pattern: String,
    sample: String,
    count: u64,
}

fn series(level: &str, pattern: &str, sample: &str, count: u64) -> Series {
    Series {
        level: level.to_owned(),
        pattern: pattern.to_owned(),
        sample: sample.to_owned(),
        count,
    }
}

/// The log series of `container` from `source`, sorted.
fn log_series(s: &Scrape, container: &str, source: &str) -> Vec<Series> {
    let mut out: Vec<Series> = s
        .find(METRIC, &[("container_id", container), ("source", source)])
        .map(|x| {
            let hash = x.labels.get("pattern_hash").cloned().unwrap_or_default();
            let pattern = if hash.is_empty() || hash == "unclassified" {
                hash
            } else {
                assert!(
                    hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
                    "pattern_hash {hash:?} is not 16 hex digits: {x:?}"
                );
                "#".to_owned()
            };
            assert!(
                x.value >= 0.0 && x.value.fract() == 0.0,
                "odd count {}",
                x.value
            );
            Series {
                level: x.labels.get("level").cloned().unwrap_or_default(),
                pattern,
                sample: x.labels.get("sample").cloned().unwrap_or_default(),
                count: x.value as u64,
            }
        })
        .collect();
    out.sort();
    out
}

/// Series other than the debug level (where readiness probes are counted).
fn without_debug(v: Vec<Series>) -> Vec<Series> {
    v.into_iter().filter(|s| s.level != "debug").collect()
}

fn total(v: &[Series]) -> u64 {
    v.iter().map(|s| s.count).sum()
}

/// The `source` labels of `container`'s log series.
fn sources_of(s: &Scrape, container: &str) -> Vec<String> {
    s.find(METRIC, &[("container_id", container)])
        .map(|x| x.labels.get("source").cloned().unwrap_or_default())
        .collect()
}

/// Waits until the non-debug series of `container`/`source` add up to at least what `want`
/// does, lets the agent settle, and asserts they are exactly `want` (sorted).
fn assert_counts(agent: &Agent, container: &str, source: &str, mut want: Vec<Series>) -> Scrape {
    want.sort();
    let n = total(&want);
    agent.scrape_until(
        &format!("{n} messages of {container} from {source}"),
        TIMEOUT,
        |s| total(&without_debug(log_series(s, container, source))) >= n,
    );
    std::thread::sleep(SETTLE);
    let s = agent.scrape();
    let got = without_debug(log_series(&s, container, source));
    eprintln!(
        "{container} {source}: {:?}",
        log_series(&s, container, source)
    );
    assert_eq!(
        got,
        want,
        "{container} {source}: series differ\n--- scrape ---\n{}\n--- agent log ---\n{}",
        s.text,
        agent.log_text()
    );
    s
}

// ---------------------------------------------------------------------------------------------
// journald

const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";
const JOURNAL_STDOUT: &str = "/run/systemd/journal/stdout";

fn journald_answers() -> bool {
    std::os::unix::net::UnixDatagram::unbound()
        .and_then(|s| s.connect(JOURNAL_SOCKET))
        .is_ok()
        && std::os::unix::net::UnixStream::connect(JOURNAL_STDOUT).is_ok()
}

/// A systemd-journald for the test: the running one if its sockets answer (only one can own
/// /run/systemd/journal), else one started here and killed on drop.
struct Journald {
    started: Option<Child>,
}

impl Journald {
    fn start_or_reuse(test: &str) -> Option<Journald> {
        if journald_answers() {
            return Some(Journald { started: None });
        }
        let Some(bin) = [
            "/lib/systemd/systemd-journald",
            "/usr/lib/systemd/systemd-journald",
        ]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists()) else {
            skip(
                test,
                "systemd-journald is not installed (apt-get install -y systemd)",
            );
            return None;
        };
        std::fs::create_dir_all("/run/systemd/journal").unwrap();
        let child = Command::new(bin)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut j = Journald {
            started: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !journald_answers() {
            if let Some(c) = j.started.as_mut()
                && let Ok(Some(st)) = c.try_wait()
            {
                panic!("systemd-journald exited at start ({st})");
            }
            assert!(Instant::now() < deadline, "systemd-journald did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(j)
    }
}

impl Drop for Journald {
    fn drop(&mut self) {
        if let Some(c) = self.started.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The test cgroup in the `name=systemd` v1 hierarchy (journald may read the sender's cgroup
/// there on a hybrid host; `TestCgroup` covers the others). Removed on drop, after killing any
/// process left in it.
struct SystemdHierarchyCgroup {
    created: Vec<PathBuf>,
    leaf: Option<PathBuf>,
}

impl SystemdHierarchyCgroup {
    fn create(path: &str) -> SystemdHierarchyCgroup {
        let root = Path::new("/sys/fs/cgroup/systemd");
        let mut cg = SystemdHierarchyCgroup {
            created: Vec::new(),
            leaf: None,
        };
        if !root.join("cgroup.procs").exists() {
            return cg;
        }
        let mut dir = root.to_path_buf();
        for part in path.trim_start_matches('/').split('/') {
            dir.push(part);
            if !dir.exists() {
                std::fs::create_dir(&dir).unwrap();
                cg.created.push(dir.clone());
            }
        }
        cg.leaf = Some(dir);
        cg
    }

    fn add_pid(&self, pid: u32) {
        if let Some(leaf) = &self.leaf {
            std::fs::write(leaf.join("cgroup.procs"), pid.to_string()).unwrap();
        }
    }
}

impl Drop for SystemdHierarchyCgroup {
    fn drop(&mut self) {
        if let Some(leaf) = &self.leaf
            && let Ok(procs) = std::fs::read_to_string(leaf.join("cgroup.procs"))
        {
            for pid in procs.lines().filter_map(|p| p.parse::<i32>().ok()) {
                // SAFETY: kill has no memory-safety preconditions.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                let _ = std::fs::write("/sys/fs/cgroup/systemd/cgroup.procs", pid.to_string());
            }
        }
        for dir in self.created.iter().rev() {
            for _ in 0..20 {
                if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

#[test]
fn journald_messages_of_a_service_are_counted_by_level_and_pattern() {
    let test = "journald_messages_of_a_service_are_counted_by_level_and_pattern";
    let _serial = serial();
    if !privileged(test) {
        return;
    }
    let Some(cat) = sonde_integration_tests::tools::require(test, "systemd-cat", "systemd") else {
        return;
    };
    let Some(_journald) = Journald::start_or_reuse(test) else {
        return;
    };
    let pid = std::process::id();
    let unit = format!("sonde-logtest-{pid}.service");
    let container = format!("/system.slice/{unit}");
    let systemd_cg = SystemdHierarchyCgroup::create(&container);
    let mut cg = TestCgroup::create(&container).unwrap();

    // The sender waits (dash's `read` takes one line off the pipe, byte by byte) until it is in
    // the unit's cgroup, then becomes a journal stream whose lines come from our pipe;
    // `<N>` prefixes set each line's priority. It stays alive, so journald can read its cgroup.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "read go; exec {} -t sonde-logtest --level-prefix=true cat",
            cat.display()
        ))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut to_journal = child.stdin.take().unwrap();
    let sender = child.id();
    cg.own(child);
    cg.add_pid(sender).unwrap();
    systemd_cg.add_pid(sender);

    // Started before anything is written: the journal is followed from its end.
    let agent = Agent::start(&["--min-container-age", "0s"]);
    writeln!(to_journal, "go").unwrap();

    // Ready once a probe (debug, counted apart) comes back routed to the service.
    let mut probe = 0;
    let deadline = Instant::now() + TIMEOUT;
    loop {
        probe += 1;
        writeln!(to_journal, "<7>sonde probe {probe}").unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let s = agent.scrape();
        if log_series(&s, &container, "journald")
            .iter()
            .any(|x| x.level == "debug")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no journald series for {container}\n--- scrape ---\n{}\n--- agent log ---\n{}",
            s.text,
            agent.log_text()
        );
    }

    let mut text = String::new();
    for i in 1..=30 {
        text += &format!("<3>payment failed for order {i}\n");
    }
    for i in 1..=20 {
        text += &format!("<6>user {i} logged in\n");
    }
    to_journal.write_all(text.as_bytes()).unwrap();
    to_journal.flush().unwrap();

    let s = assert_counts(
        &agent,
        &container,
        "journald",
        vec![
            series("error", "#", "payment failed for order 1", 30),
            series("info", "", "", 20),
        ],
    );
    // The service's messages come from journald only.
    let sources = sources_of(&s, &container);
    assert!(sources.iter().all(|s| *s == "journald"), "{sources:?}");

    // The journal's own figures: open, and every entry routed to the service was read (other
    // processes write to the same journal, so the total is at least ours, not exactly).
    assert_eq!(s.value("sonde_journal_open", &[]), Some(1.0), "{}", s.text);
    let ours = total(&log_series(&s, &container, "journald"));
    assert!(ours > 50, "{ours} (50 messages and at least one probe)");
    let entries = s.value("sonde_journal_entries_total", &[]).unwrap();
    assert!(
        entries >= ours as f64,
        "{entries} entries read, {ours} routed to {container}"
    );
}

// ---------------------------------------------------------------------------------------------
// Docker json-file

#[test]
fn docker_json_file_logs_are_counted_by_level_and_pattern() {
    let test = "docker_json_file_logs_are_counted_by_level_and_pattern";
    let _serial = serial();
    let Some(d) = Dockerd::start_or_skip(test) else {
        return;
    };
    let image = "sonde-busybox:logs";
    d.import_busybox(image)
        .unwrap_or_else(|e| panic!("{test}: import busybox: {e}\n{}", d.daemon_logs()));
    let socket = d.socket.to_str().unwrap();
    // Started first: the container's log file is then born after the agent and read from its
    // beginning, whenever the agent names the container.
    let agent = Agent::start(&["--docker-socket", socket, "--min-container-age", "0s"]);
    let name = format!("sonde-logs-e2e-{}", std::process::id());
    // "ERROR"/"INFO"/"WARN" as upper-case words are the levels; `db-$i` (a digit) is the
    // variable. The replica name is a word-valued variable the miner learns at its fifth value:
    // the four patterns seen before merge into one, their counts summed (docs/logs.md).
    d.run(&[
        "--name",
        &name,
        image,
        "sh",
        "-c",
        "sleep 3; for i in $(seq 1 40); do echo \"ERROR connection to db-$i refused\"; done; \
         for i in $(seq 1 25); do echo \"INFO request $i served\"; done; \
         for h in alpha bravo charlie delta echo; do for k in 1 2 3; do \
         echo \"WARN replica $h lagging behind\"; done; done; sleep 300",
    ])
    .unwrap_or_else(|e| panic!("docker run: {e}\n{}", d.daemon_logs()));
    let container = format!("/docker/{name}");
    let s = assert_counts(
        &agent,
        &container,
        "stdout/stderr",
        vec![
            series("error", "#", "ERROR connection to db-1 refused", 40),
            series("warning", "#", "WARN replica alpha lagging behind", 15),
            series("info", "", "", 25),
        ],
    );
    assert!(
        log_series(&s, &container, "stdout/stderr")
            .iter()
            .all(|x| x.level != "debug"),
        "{}",
        s.text
    );
}

// ---------------------------------------------------------------------------------------------
// CRI (containerd)

#[test]
fn cri_pod_container_logs_are_counted_by_level_and_pattern() {
    let test = "cri_pod_container_logs_are_counted_by_level_and_pattern";
    let _serial = serial();
    let Some(ctrd) = Containerd::new(test) else {
        return;
    };
    let agent = Agent::start(&[
        "--containerd-socket",
        ctrd.socket().to_str().unwrap(),
        "--docker-socket",
        "/nonexistent/docker.sock",
        "--min-container-age",
        "0s",
    ]);
    let pod_name = "logs-6f7d8c9b5-q4w2e";
    let pod = ctrd.run_pod(pod_name, "shop");
    // Both streams land in the one CRI file; the WARN lines go to stderr.
    ctrd.run_container(
        &pod,
        "app",
        &[
            "sh",
            "-c",
            "sleep 3; for i in $(seq 1 17); do echo \"ERROR payment gateway timeout for order $i\"; done; \
             for i in $(seq 1 12); do echo \"WARN slow query took $i ms\" >&2; done; \
             for i in $(seq 1 23); do echo \"INFO health check $i ok\"; done; sleep 300",
        ],
    );
    let container = format!("/k8s/shop/{pod_name}/app");
    assert_counts(
        &agent,
        &container,
        "stdout/stderr",
        vec![
            series(
                "error",
                "#",
                "ERROR payment gateway timeout for order 1",
                17,
            ),
            series("warning", "#", "WARN slow query took 1 ms", 12),
            series("info", "", "", 23),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// A file under /var/log, rotated

const WRITER_ENV: &str = "SONDE_LOGTEST_WRITER";
const WRITER_TEST: &str = "rotation_writer_process";
/// Lines per second the writer aims at.
const RATE: u64 = 10_000;

/// Not a test: the body of the writer process of the rotation test, which runs this binary as
/// `--exact rotation_writer_process` with SONDE_LOGTEST_WRITER=<log path>. Without the variable
/// it returns at once.
#[test]
fn rotation_writer_process() {
    if let Some(path) = std::env::var_os(WRITER_ENV) {
        writer_main(PathBuf::from(path));
    }
}

fn open_append(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
}

/// Commands on stdin, one per line; each answered on stderr with a line "WRITER ..." (libtest
/// writes to stdout):
/// - `open`: open (create) the log O_WRONLY|O_APPEND;
/// - `line <text>`: append one line;
/// - `burst <n> <rotate_at>`: append n lines at RATE lines/s, "ERROR timeout after <k> ms" when
///   the running number k is a multiple of 3, else "WARN cache miss for key <k>"; before line
///   index `rotate_at`, rename the log to `<log>.1` and reopen the path (logrotate's `create`).
///   Answers "WRITER done <errors> <warnings>".
fn writer_main(path: PathBuf) {
    let reply = |s: &str| eprintln!("WRITER {s}");
    let rotated = PathBuf::from(format!("{}.1", path.display()));
    let mut file: Option<File> = None;
    let mut k = 0u64;
    for cmd in std::io::stdin().lock().lines() {
        let cmd = cmd.unwrap();
        let (verb, rest) = cmd.split_once(' ').unwrap_or((&cmd, ""));
        match verb {
            "open" => {
                file = Some(open_append(&path));
                reply("ok");
            }
            "line" => {
                writeln!(file.as_mut().unwrap(), "{rest}").unwrap();
                reply("ok");
            }
            "burst" => {
                let mut args = rest.split(' ').map(|a| a.parse::<u64>().unwrap());
                let (n, rotate_at) = (args.next().unwrap(), args.next().unwrap());
                let (mut errors, mut warnings) = (0u64, 0u64);
                let mut buf = String::new();
                let start = Instant::now();
                for i in 0..n {
                    if i == rotate_at {
                        file.as_mut().unwrap().write_all(buf.as_bytes()).unwrap();
                        buf.clear();
                        std::fs::rename(&path, &rotated).unwrap();
                        file = Some(open_append(&path));
                    }
                    k += 1;
                    if k.is_multiple_of(3) {
                        buf += &format!("ERROR timeout after {k} ms\n");
                        errors += 1;
                    } else {
                        buf += &format!("WARN cache miss for key {k}\n");
                        warnings += 1;
                    }
                    if (i + 1).is_multiple_of(100) || i + 1 == n {
                        file.as_mut().unwrap().write_all(buf.as_bytes()).unwrap();
                        buf.clear();
                        let due = start + Duration::from_micros((i + 1) * 1_000_000 / RATE);
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                    }
                }
                reply(&format!("done {errors} {warnings}"));
            }
            _ => break,
        }
    }
}

/// The writer process, driven over its stdin; its replies come on its stderr.
struct Writer {
    stdin: ChildStdin,
    replies: BufReader<ChildStderr>,
}

impl Writer {
    fn send(&mut self, cmd: &str) -> String {
        writeln!(self.stdin, "{cmd}").unwrap();
        self.stdin.flush().unwrap();
        loop {
            let mut line = String::new();
            let n = self.replies.read_line(&mut line).unwrap();
            assert!(n > 0, "the writer exited (command {cmd:?})");
            if let Some(r) = line.trim_end().strip_prefix("WRITER ") {
                return r.to_owned();
            }
            eprintln!("writer: {}", line.trim_end());
        }
    }

    /// `burst`; (errors, warnings) written.
    fn burst(&mut self, n: u64, rotate_at: u64) -> (u64, u64) {
        let r = self.send(&format!("burst {n} {rotate_at}"));
        let mut f = r
            .strip_prefix("done ")
            .unwrap_or_else(|| panic!("writer: {r}"))
            .split(' ')
            .map(|x| x.parse::<u64>().unwrap());
        (f.next().unwrap(), f.next().unwrap())
    }
}

/// A directory under /var/log, removed with its files on drop.
struct VarLogDir(PathBuf);

impl Drop for VarLogDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Lines of the burst kinds in `path`: (errors, warnings).
fn count_on_disk(path: &Path) -> (u64, u64) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let errors = text
        .lines()
        .filter(|l| l.starts_with("ERROR timeout after "))
        .count();
    let warnings = text
        .lines()
        .filter(|l| l.starts_with("WARN cache miss for key "))
        .count();
    (errors as u64, warnings as u64)
}

#[test]
fn file_logs_survive_rename_rotation_and_copytruncate_at_10k_lines_per_second() {
    let test = "file_logs_survive_rename_rotation_and_copytruncate_at_10k_lines_per_second";
    let _serial = serial();
    if !privileged(test) {
        return;
    }
    let pid = std::process::id();
    let dir = VarLogDir(PathBuf::from(format!("/var/log/sonde-test-{pid}")));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).unwrap();
    let log = dir.0.join("app.log");
    let source = log.to_str().unwrap().to_owned();
    let container = format!("/system.slice/sonde-rotate-{pid}.service");
    let mut cg = TestCgroup::create(&container).unwrap();

    // The writer joins the service's cgroup before it opens the file.
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", WRITER_TEST, "--nocapture", "--test-threads=1"])
        .env(WRITER_ENV, &log)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut writer = Writer {
        stdin: child.stdin.take().unwrap(),
        replies: BufReader::new(child.stderr.take().unwrap()),
    };
    let writer_pid = child.id();
    cg.own(child);
    cg.add_pid(writer_pid).unwrap();
    assert_eq!(writer.send("open"), "ok");
    assert!(log.exists());
    for h in cgroups::hierarchies() {
        let procs = std::fs::read_to_string(
            h.join(container.trim_start_matches('/'))
                .join("cgroup.procs"),
        )
        .unwrap();
        assert!(
            procs.lines().any(|p| p == writer_pid.to_string()),
            "writer not in {}",
            h.display()
        );
    }

    // The file exists before the agent: it is read from its end once the agent's scan of open
    // files (every 15 s) finds it. Warm-up lines (debug, counted apart) until one is counted.
    let agent = Agent::start(&["--min-container-age", "0s"]);
    let deadline = Instant::now() + TIMEOUT;
    let mut warm = 0;
    loop {
        warm += 1;
        assert_eq!(writer.send(&format!("line DEBUG warming up {warm}")), "ok");
        std::thread::sleep(Duration::from_millis(300));
        let s = agent.scrape();
        if log_series(&s, &container, &source)
            .iter()
            .any(|x| x.level == "debug")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the agent never picked up {source}\n--- scrape ---\n{}\n--- agent log ---\n{}",
            s.text,
            agent.log_text()
        );
    }

    // 1.5 s at 10k lines/s with a rename rotation halfway.
    let half: u64 = 15_000;
    // sonde_log_rotations_total / sonde_log_truncations_total before; each step below adds
    // exactly one (nothing else on a test machine rotates a followed file in these seconds).
    let before = agent.scrape();
    let counter = |s: &Scrape, name: &str| {
        s.value(name, &[])
            .unwrap_or_else(|| panic!("no {name} in\n{}", s.text))
    };
    let rotations = counter(&before, "sonde_log_rotations_total");
    let truncations = counter(&before, "sonde_log_truncations_total");
    let started = Instant::now();
    let (e1, w1) = writer.burst(half, half / 2);
    report_rate("burst with rename rotation", half, started);
    assert_eq!(e1 + w1, half);
    let rotated = PathBuf::from(format!("{source}.1"));
    assert!(rotated.exists());
    let expect = |errors: u64, warnings: u64| {
        vec![
            series("error", "#", "ERROR timeout after 3 ms", errors),
            series("warning", "#", "WARN cache miss for key 1", warnings),
        ]
    };
    // Everything read before the copy is taken (lines written between the tailer's last read
    // and a truncation exist only in the copy: the writer is paused for that moment).
    let s = assert_counts(&agent, &container, &source, expect(e1, w1));
    assert_eq!(counter(&s, "sonde_log_rotations_total"), rotations + 1.0);
    assert_eq!(counter(&s, "sonde_log_truncations_total"), truncations);

    // copytruncate: copy, then truncate in place; the O_APPEND writer continues at the new end.
    let copy = PathBuf::from(format!("{source}.2"));
    std::fs::copy(&log, &copy).unwrap();
    OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    let started = Instant::now();
    let (e2, w2) = writer.burst(half, u64::MAX);
    report_rate("burst after copytruncate", half, started);
    assert_eq!(e2 + w2, half);

    // What was written, per the files themselves: the rotated file, the copy, the live file.
    let on_disk = [&rotated, &copy, &log]
        .iter()
        .map(|p| count_on_disk(p))
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    assert_eq!(on_disk, (e1 + e2, w1 + w2), "the writer's files");

    let s = assert_counts(&agent, &container, &source, expect(e1 + e2, w1 + w2));
    assert_eq!(counter(&s, "sonde_log_rotations_total"), rotations + 1.0);
    assert_eq!(
        counter(&s, "sonde_log_truncations_total"),
        truncations + 1.0
    );
    // Only the followed path is a source: neither the rotated file nor the copy.
    let sources = sources_of(&s, &container);
    assert!(sources.iter().all(|x| *x == source), "{sources:?}");
    let by_level: BTreeMap<String, u64> =
        log_series(&s, &container, &source)
            .into_iter()
            .fold(BTreeMap::new(), |mut m, x| {
                *m.entry(x.level).or_default() += x.count;
                m
            });
    assert!(
        by_level.get("debug").is_some_and(|n| *n >= 1 && *n <= warm),
        "warm-up lines {by_level:?} (wrote {warm})"
    );
    drop(writer);
}

/// Prints the rate a burst reached (information only: timings are never asserted).
fn report_rate(what: &str, lines: u64, started: Instant) {
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{what}: {lines} lines in {secs:.2} s ({:.0} lines/s)",
        lines as f64 / secs
    );
}
