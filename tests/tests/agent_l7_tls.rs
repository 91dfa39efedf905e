//! HTTPS through the real agent: a python3 HTTPS server (OpenSSL) in one test cgroup, clients
//! in others (python3 on one keep-alive connection, python3 with one process per request, and
//! a Go crypto/tls client built here with `go build`), each making N requests of each of 200,
//! 404 and 500. The TLS uprobes hand the plaintext to the L7 engine, so
//! `container_http_requests_total` counts exactly what plain HTTP would: N per status class
//! per client, the histogram's count 3N, and the server's inbound counts 3N per class.
//!
//! Fixtures (server, clients) are the tracer test's: crates/tracer/tests/tls/. The server's
//! port is outside the ephemeral range, which the agent never counts as a destination.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sonde_integration_tests::cgroups::TestCgroup;
use sonde_integration_tests::tools::{require, run};
use sonde_integration_tests::{Agent, Scrape, privileged};

const TIMEOUT: Duration = Duration::from_secs(60);
const N: usize = 5;
const STATUSES: [(u16, &str); 3] = [(200, "2xx"), (404, "4xx"), (500, "5xx")];
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../crates/tracer/tests/tls");
const PYTHON: &str = "/usr/bin/python3";

/// The tests of this file run one at a time: each waits for its own Go binary to be probed
/// (`sonde_tls_uprobes_attached{kind="go"}` one above what it was), and an agent probes every
/// Go binary with crypto/tls on the node, the other test's included.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn val(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    s.value(name, labels).unwrap_or(0.0)
}

/// Go binaries the agent has probed.
fn go_probed(s: &Scrape) -> f64 {
    val(s, "sonde_tls_uprobes_attached", &[("kind", "go")])
}

/// A free loopback port in 20000-31999 (below the ephemeral range).
fn port_outside_ephemeral() -> u16 {
    let seed = std::process::id() as u64
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos() as u64;
    for i in 0..200u64 {
        let port = 20_000 + ((seed.wrapping_mul(2654435761) + i * 7919) % 12_000) as u16;
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in 20000-32000 on 127.0.0.1");
}

/// N requests of each status, interleaved.
fn paths() -> Vec<String> {
    (0..N)
        .flat_map(|_| STATUSES.iter().map(|(code, _)| format!("/{code}")))
        .collect()
}

/// A client waiting for a line on stdin (tests/tls/client.{py,go}), already in its cgroup.
fn spawn_waiting(
    cg: &TestCgroup,
    program: &Path,
    script: Option<&Path>,
    port: u16,
    paths: &[String],
) -> Child {
    let mut cmd = Command::new(program);
    if let Some(s) = script {
        cmd.arg(s);
    }
    // Born in its cgroup: see TestCgroup::spawn_into.
    cg.spawn_into(&mut cmd);
    let child = cmd
        .arg(port.to_string())
        .args(paths)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    cg.add_pid(child.id()).unwrap();
    child
}

/// Lets a waiting client go; checks it got every status it asked for.
fn finish(mut child: Child, paths: &[String]) {
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "client failed: {out:?}");
    let got: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let want: Vec<String> = paths.iter().map(|p| p[1..].to_owned()).collect();
    assert_eq!(got, want, "the client's own view of its responses");
}

fn build_go_client(dir: &Path) -> PathBuf {
    let out = dir.join("client");
    run(Command::new("go")
        .args(["build", "-o"])
        .arg(&out)
        .arg(Path::new(FIXTURES).join("client.go"))
        .env("GOCACHE", dir.join("gocache"))
        .env("GOPATH", dir.join("gopath"))
        .env("GOPROXY", "off")
        .env("CGO_ENABLED", "0"));
    out
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What both tests start from: a self-signed certificate, a Go client built here (a binary
/// the agent has never seen), and the python3 HTTPS server in a service cgroup of its own,
/// started before the agent (found by the agent's first scan). None: a tool is missing (the
/// test then skips, as `require` says).
struct Setup {
    _dir: tempfile::TempDir,
    go_client: PathBuf,
    port: u16,
    server_cg: TestCgroup,
    _server: Server,
}

fn setup(test: &str, server_kind: &str) -> Option<Setup> {
    if require(test, "openssl", "openssl").is_none()
        || require(test, "go", "golang-go").is_none()
        || require(test, "python3", "python3").is_none()
    {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    run(Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert));
    let go_client = build_go_client(dir.path());
    let port = port_outside_ephemeral();
    let server_cg = TestCgroup::service_with_keeper(server_kind);
    let mut child = Command::new(PYTHON)
        .arg(Path::new(FIXTURES).join("server.py"))
        .arg(&cert)
        .arg(&key)
        .arg(port.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    server_cg.add_pid(child.id()).unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), port.to_string());
    Some(Setup {
        _dir: dir,
        go_client,
        port,
        server_cg,
        _server: Server(child),
    })
}

#[test]
fn https_through_openssl_and_go_counts_as_http() {
    let test = "https_through_openssl_and_go_counts_as_http";
    let _serial = one_at_a_time();
    if !privileged(test) {
        return;
    }
    // The whole setup is kept: its server and files live until the test ends.
    let Some(env) = setup(test, "tls-server") else {
        return;
    };
    let (go_client, port, server_cg) = (&env.go_client, env.port, &env.server_cg);

    let agent = Agent::start(&["--min-container-age", "0s"]);
    agent.scrape_until("the TLS uprobes on libssl", TIMEOUT, |s| {
        s.value("sonde_subsystem_up", &[("subsystem", "tls")]) == Some(1.0)
            && val(s, "sonde_tls_uprobes_attached", &[("kind", "openssl")]) >= 1.0
    });
    let go_before = go_probed(&agent.scrape());

    // python3 (OpenSSL), one keep-alive connection.
    let py_cg = TestCgroup::service_with_keeper("tls-py");
    let c = spawn_waiting(
        &py_cg,
        Path::new(PYTHON),
        Some(&Path::new(FIXTURES).join("client.py")),
        port,
        &paths(),
    );
    finish(c, &paths());

    // Go crypto/tls: a binary the agent has not seen; it waits until the agent has probed it
    // (reported at its exec: see TlsAttacher::exec_seen).
    let go_cg = TestCgroup::service_with_keeper("tls-go");
    let c = spawn_waiting(&go_cg, go_client, None, port, &paths());
    agent.scrape_until("the TLS uprobes on the Go client", TIMEOUT, |s| {
        go_probed(s) >= go_before + 1.0
    });
    finish(c, &paths());

    // python3, each request its own process.
    let short_cg = TestCgroup::service_with_keeper("tls-short");
    for path in paths() {
        let one = std::slice::from_ref(&path);
        let c = spawn_waiting(
            &short_cg,
            Path::new(PYTHON),
            Some(&Path::new(FIXTURES).join("client.py")),
            port,
            one,
        );
        finish(c, one);
    }

    let destination = format!("127.0.0.1:{port}");
    let clients = [&py_cg.path, &go_cg.path, &short_cg.path];
    let s = agent.scrape_until("every HTTPS request", TIMEOUT, |s| {
        clients.iter().all(|id| {
            STATUSES.iter().all(|(_, class)| {
                val(
                    s,
                    "container_http_requests_total",
                    &[
                        ("container_id", id),
                        ("destination", &destination),
                        ("status", class),
                    ],
                ) >= N as f64
            })
        }) && STATUSES.iter().all(|(_, class)| {
            val(
                s,
                "container_http_inbound_requests_total",
                &[("container_id", &server_cg.path), ("status", class)],
            ) >= (3 * N) as f64
        })
    });
    // Settle: anything extra (a request counted twice, ciphertext parsed) shows up now.
    std::thread::sleep(Duration::from_millis(1500));
    let s2 = agent.scrape();
    for s in [&s, &s2] {
        for id in clients {
            for (_, class) in STATUSES {
                assert_eq!(
                    s.value(
                        "container_http_requests_total",
                        &[
                            ("container_id", id),
                            ("destination", &destination),
                            ("actual_destination", &destination),
                            ("status", class)
                        ]
                    ),
                    Some(N as f64),
                    "{id} {class}\n{}",
                    s.text
                );
            }
            assert_eq!(
                val(
                    s,
                    "container_http_requests_duration_seconds_total_count",
                    &[("container_id", id), ("destination", &destination)]
                ),
                (3 * N) as f64,
                "{id}\n{}",
                s.text
            );
        }
        for (_, class) in STATUSES {
            assert_eq!(
                s.value(
                    "container_http_inbound_requests_total",
                    &[("container_id", &server_cg.path), ("status", class)]
                ),
                Some((3 * N) as f64),
                "server {class}\n{}",
                s.text
            );
        }
    }
    assert!(go_probed(&s2) >= go_before + 1.0);
}

/// One Go client process, born in `cg`, that starts at once (stdin closed): it makes its
/// requests and exits. Returns how long it lived.
fn run_go_at_once(cg: &TestCgroup, go_client: &Path, port: u16, paths: &[String]) -> Duration {
    let mut cmd = Command::new(go_client);
    cg.spawn_into(&mut cmd);
    let started = std::time::Instant::now();
    let out = cmd
        .arg(port.to_string())
        .args(paths)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let lived = started.elapsed();
    assert!(out.status.success(), "go client failed: {out:?}");
    let want: Vec<String> = paths.iter().map(|p| p[1..].to_owned()).collect();
    let got: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(got, want, "the client's own view of its responses");
    lived
}

/// Go clients that live milliseconds: each process execs, makes one HTTPS request and exits,
/// long before the attacher's first look at its fork (0.2 s later). The kernel reports the new
/// executable at exec (ebpf/src/l7.c `l7_report_exec`), so the binary is probed while the first
/// run is still alive (that run itself may be missed: its TLS may come before the probes); every
/// later run of the binary is then counted exactly. Without the exec report no run lives long
/// enough to be looked at, the binary is never probed and the first wait below times out.
#[test]
fn go_clients_that_live_milliseconds_are_probed_from_their_exec() {
    let test = "go_clients_that_live_milliseconds_are_probed_from_their_exec";
    let _serial = one_at_a_time();
    if !privileged(test) {
        return;
    }
    let Some(env) = setup(test, "tls-short-go-server") else {
        return;
    };
    let (go_client, port) = (&env.go_client, env.port);

    let agent = Agent::start(&["--min-container-age", "0s"]);
    agent.scrape_until("the TLS subsystem up", TIMEOUT, |s| {
        s.value("sonde_subsystem_up", &[("subsystem", "tls")]) == Some(1.0)
    });
    let cg = TestCgroup::service_with_keeper("tls-short-go");
    // Runs until the binary is probed, as a loop of short clients on a node would: a run may
    // be gone before the agent opens its executable (the agent busy with its start-up scan of
    // every process, say); the next one is then reported again.
    let mut lived = Vec::new();
    let go_before = go_probed(&agent.scrape());
    let probed = |s: &Scrape| go_probed(s) >= go_before + 1.0;
    for _ in 0..100 {
        lived.push(run_go_at_once(&cg, go_client, port, &["/200".to_owned()]));
        std::thread::sleep(Duration::from_millis(200));
        if probed(&agent.scrape()) {
            break;
        }
    }
    agent.scrape_until("the Go binary probed from its exec", TIMEOUT, probed);
    let runs_until_probed = lived.len();
    // What the first run left counted (all, some or none of its one request), settled.
    std::thread::sleep(Duration::from_millis(1500));
    let destination = format!("127.0.0.1:{port}");
    let counts = |s: &Scrape| -> Vec<f64> {
        STATUSES
            .iter()
            .map(|(_, class)| {
                val(
                    s,
                    "container_http_requests_total",
                    &[
                        ("container_id", &cg.path),
                        ("destination", &destination),
                        ("status", class),
                    ],
                )
            })
            .collect()
    };
    let before = counts(&agent.scrape());
    for path in paths() {
        lived.push(run_go_at_once(
            &cg,
            go_client,
            port,
            std::slice::from_ref(&path),
        ));
    }
    eprintln!(
        "{test}: probed after {runs_until_probed} run(s); each Go client process lived {lived:?}"
    );
    let want: Vec<f64> = before.iter().map(|b| b + N as f64).collect();
    agent.scrape_until("every short Go client's request", TIMEOUT, |s| {
        counts(s).iter().zip(&want).all(|(got, want)| got >= want)
    });
    // Settle: a request counted twice shows up now.
    std::thread::sleep(Duration::from_millis(1500));
    let s = agent.scrape();
    assert_eq!(counts(&s), want, "{}", s.text);
}
