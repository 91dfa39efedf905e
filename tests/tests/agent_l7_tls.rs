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

fn val(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    s.value(name, labels).unwrap_or(0.0)
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

/// A service cgroup with a long-lived process in it: a container whose clients come and go
/// is never empty, so the agent does not drop it (and its series) between two clients.
fn service_cgroup(kind: &str) -> TestCgroup {
    let path = format!("/system.slice/sonde-{kind}-{}.service", std::process::id());
    let mut cg = TestCgroup::create(&path).unwrap_or_else(|e| panic!("create cgroup {path}: {e}"));
    let mut keeper = Command::new("sleep");
    keeper.arg("600");
    cg.spawn_into(&mut keeper);
    let child = keeper.spawn().unwrap();
    cg.own(child);
    cg
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

#[test]
fn https_through_openssl_and_go_counts_as_http() {
    let test = "https_through_openssl_and_go_counts_as_http";
    if !privileged(test) {
        return;
    }
    if require(test, "openssl", "openssl").is_none()
        || require(test, "go", "golang-go").is_none()
        || require(test, "python3", "python3").is_none()
    {
        return;
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

    // The server, in its cgroup, before the agent: found by the agent's first scan.
    let server_cg = service_cgroup("tls-server");
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
    let _server = Server(child);

    let agent = Agent::start(&["--min-container-age", "0s"]);
    agent.scrape_until("the TLS uprobes on libssl", TIMEOUT, |s| {
        s.value("sonde_subsystem_up", &[("subsystem", "tls")]) == Some(1.0)
            && val(s, "sonde_tls_uprobes_attached", &[("kind", "openssl")]) >= 1.0
    });

    // python3 (OpenSSL), one keep-alive connection.
    let py_cg = service_cgroup("tls-py");
    let c = spawn_waiting(
        &py_cg,
        Path::new(PYTHON),
        Some(&Path::new(FIXTURES).join("client.py")),
        port,
        &paths(),
    );
    finish(c, &paths());

    // Go crypto/tls: a binary the agent has not seen; it waits until the agent has probed it
    // (a few hundred ms after it started: see TlsAttacher::process_started).
    let go_cg = service_cgroup("tls-go");
    let c = spawn_waiting(&go_cg, &go_client, None, port, &paths());
    agent.scrape_until("the TLS uprobes on the Go client", TIMEOUT, |s| {
        val(s, "sonde_tls_uprobes_attached", &[("kind", "go")]) == 1.0
    });
    finish(c, &paths());

    // python3, each request its own process.
    let short_cg = service_cgroup("tls-short");
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
    assert_eq!(
        val(&s2, "sonde_tls_uprobes_attached", &[("kind", "go")]),
        1.0
    );
}
