//! Benchmark (root): the cost of the TLS uprobes to HTTPS clients and servers.
//!
//!   cargo run --release -p sonde-tracer --example tls_cost -- [REQUESTS] [ROUNDS]
//!
//! A python3 HTTPS server (OpenSSL) on loopback; clients make REQUESTS
//! keep-alive GETs each: python3 (OpenSSL) and a Go crypto/tls client (built
//! here with `go`, skipped without it). Rounds interleave three setups:
//! no tracer, the tracer with the L7 syscall programs, and the same plus the
//! TLS uprobes. Prints each round's requests/s, then, from one more round with
//! `kernel.bpf_stats_enabled=1`, each program's runs and ns per run. Numbers
//! go to docs/benchmarks.md; nothing is asserted.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sonde_tracer::tls::{TlsAttacher, TlsConfig};
use sonde_tracer::{EventStream, Tracer, TracerConfig};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tls");
const PYTHON: &str = "/usr/bin/python3";

struct Setup {
    _tracer: Option<Tracer>,
    _tls: Option<TlsAttacher>,
    stop: Arc<AtomicBool>,
    drain: Option<std::thread::JoinHandle<u64>>,
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(d) = self.drain.take() {
            let _ = d.join();
        }
    }
}

fn drain_thread(mut stream: EventStream, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut batch = Vec::new();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                batch.clear();
                let _ =
                    tokio::time::timeout(Duration::from_millis(50), stream.next_batch(&mut batch))
                        .await;
                n += batch.len() as u64;
            }
            n
        })
    })
}

/// `what`: 0 nothing, 1 L7 tracepoints, 2 L7 + TLS uprobes.
fn setup(rt: &tokio::runtime::Runtime, what: u8, go_pid: Option<u32>) -> Setup {
    let stop = Arc::new(AtomicBool::new(false));
    if what == 0 {
        return Setup {
            _tracer: None,
            _tls: None,
            stop,
            drain: None,
        };
    }
    let _guard = rt.enter();
    // The default config attaches the L7 programs (the bpf_stats table
    // below lists them: none there means they did not attach).
    let (mut tracer, stream) = Tracer::start(TracerConfig::default()).unwrap();
    let tls = (what == 2).then(|| {
        let mut tls = tracer.tls_attacher(TlsConfig::default()).unwrap();
        tls.scan_host_libraries();
        if let Some(pid) = go_pid {
            tls.scan_process(pid);
        }
        tls
    });
    let drain = Some(drain_thread(stream, stop.clone()));
    Setup {
        _tracer: Some(tracer),
        _tls: tls,
        stop,
        drain,
    }
}

fn server(dir: &Path) -> (Child, u16) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let ok = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let mut child = Command::new(PYTHON)
        .arg(Path::new(FIXTURES).join("server.py"))
        .arg(&cert)
        .arg(&key)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, line.trim().parse().unwrap())
}

/// Starts a client waiting on stdin (so the TLS attacher can scan it first).
fn spawn_client(program: &Path, script: Option<&Path>, port: u16, n: usize) -> Child {
    let mut cmd = Command::new(program);
    if let Some(s) = script {
        cmd.arg(s);
    }
    cmd.arg(port.to_string());
    cmd.args(std::iter::repeat_n("/200", n));
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

/// CPU time (user + system) of a live process, from /proc/<pid>/stat (clock ticks).
fn proc_cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // After the comm: state is field 0, utime 11, stime 12.
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_nanos(ticks * 1_000_000_000 / hz)
}

/// One round's figures: requests/s, and CPU microseconds per request of the
/// client and of the server.
#[derive(Clone, Copy)]
struct Round {
    rate: f64,
    client_us: f64,
    server_us: f64,
}

/// Lets a waiting client go; its rate and CPU (rusage of the reaped child)
/// and the server's CPU over the same time.
fn finish(mut child: Child, n: usize, server: u32) -> Round {
    let server0 = proc_cpu(server);
    let start = Instant::now();
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let mut status = 0;
    // SAFETY: rusage is plain data the kernel fills.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, valid out-pointers.
    let rc = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut ru) };
    assert_eq!(rc, child.id() as i32);
    assert_eq!(status, 0, "client failed");
    let elapsed = start.elapsed().as_secs_f64();
    let tv = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
    let client_us = (tv(ru.ru_utime) + tv(ru.ru_stime)) / n as f64;
    let server_us = (proc_cpu(server) - server0).as_secs_f64() * 1e6 / n as f64;
    Round {
        rate: n as f64 / elapsed,
        client_us,
        server_us,
    }
}

fn build_go(dir: &Path) -> Option<PathBuf> {
    let out = dir.join("client");
    let ok = Command::new("go")
        .args(["build", "-o"])
        .arg(&out)
        .arg(Path::new(FIXTURES).join("client.go"))
        .env("GOCACHE", dir.join("gocache"))
        .env("GOPROXY", "off")
        .env("CGO_ENABLED", "0")
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    ok.then_some(out)
}

fn prog_stats() -> BTreeMap<String, (u64, u64)> {
    let mut m = BTreeMap::new();
    for p in aya::programs::loaded_programs().flatten() {
        let name = p.name_as_str().unwrap_or("").to_owned();
        if !(name.starts_with("tls_") || name.starts_with("l7_")) {
            continue;
        }
        let e = m.entry(name).or_insert((0, 0));
        e.0 += p.run_time().as_nanos() as u64;
        e.1 += p.run_count();
    }
    m
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5000);
    let rounds: usize = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (mut srv, port) = server(dir.path());
    let go = build_go(dir.path());
    let py_script = Path::new(FIXTURES).join("client.py");
    let names = ["no tracer", "L7 tracepoints", "L7 + TLS uprobes"];
    let server_pid = srv.id();
    let mut rounds_of: BTreeMap<(&str, u8), Vec<Round>> = BTreeMap::new();
    for round in 0..rounds {
        for what in [0u8, 1, 2] {
            // Python (OpenSSL) client.
            let child = spawn_client(Path::new(PYTHON), Some(&py_script), port, n);
            std::thread::sleep(Duration::from_millis(300));
            let s = setup(&rt, what, None);
            let r = finish(child, n, server_pid);
            drop(s);
            eprintln!(
                "round {round} python {}: {:.0} req/s, client {:.1} us, server {:.1} us CPU per request",
                names[what as usize], r.rate, r.client_us, r.server_us
            );
            rounds_of.entry(("python", what)).or_default().push(r);
            if let Some(go) = &go {
                let child = spawn_client(go, None, port, n);
                std::thread::sleep(Duration::from_millis(100));
                let s = setup(&rt, what, Some(child.id()));
                let r = finish(child, n, server_pid);
                drop(s);
                eprintln!(
                    "round {round} go {}: {:.0} req/s, client {:.1} us, server {:.1} us CPU per request",
                    names[what as usize], r.rate, r.client_us, r.server_us
                );
                rounds_of.entry(("go", what)).or_default().push(r);
            }
        }
    }
    println!("median of {rounds} rounds of {n} keep-alive requests:");
    println!("  client setup              req/s   client CPU us/req   server CPU us/req");
    for ((client, what), v) in &rounds_of {
        let mut rate: Vec<f64> = v.iter().map(|r| r.rate).collect();
        let mut c: Vec<f64> = v.iter().map(|r| r.client_us).collect();
        let mut sv: Vec<f64> = v.iter().map(|r| r.server_us).collect();
        println!(
            "  {client:6} {:18} {:7.0}   {:17.1}   {:17.1}",
            names[*what as usize],
            median(&mut rate),
            median(&mut c),
            median(&mut sv)
        );
    }

    // One round with bpf_stats on: in-kernel cost per program run.
    std::fs::write("/proc/sys/kernel/bpf_stats_enabled", "1").unwrap();
    let child = spawn_client(Path::new(PYTHON), Some(&py_script), port, n);
    let go_child = go.as_ref().map(|g| spawn_client(g, None, port, n));
    std::thread::sleep(Duration::from_millis(300));
    let s = setup(&rt, 2, go_child.as_ref().map(Child::id));
    let before = prog_stats();
    finish(child, n, server_pid);
    if let Some(c) = go_child {
        finish(c, n, server_pid);
    }
    let after = prog_stats();
    drop(s);
    std::fs::write("/proc/sys/kernel/bpf_stats_enabled", "0").unwrap();
    println!("bpf_stats over {n} python + {n} go requests (both ends' SSL calls for python):");
    for (name, (ns, cnt)) in &after {
        let (ns0, cnt0) = before.get(name).copied().unwrap_or((0, 0));
        let runs = cnt - cnt0;
        if runs > 0 {
            println!(
                "  {name:16} runs {runs:8}  ns/run {:6.0}",
                (ns - ns0) as f64 / runs as f64
            );
        }
    }
    let _ = srv.kill();
    let _ = srv.wait();
}
