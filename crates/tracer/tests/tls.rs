//! Privileged: HTTPS through OpenSSL (python3's ssl module) and through Go's
//! crypto/tls, seen by the TLS uprobes (ebpf/src/tls.c) and the L7 engine as
//! the same HTTP requests plain HTTP would give: exact counts per status, on
//! the client's side and on the (OpenSSL) server's.
//!
//! Needs python3, openssl (a self-signed certificate made here) and, for the
//! Go client, the `go` toolchain (Debian golang-go; std lib only, built here).
//! Without one of them the test prints why it skips; with
//! SONDE_REQUIRE_PRIVILEGED=1 that is a failure.
#![allow(clippy::unwrap_used)]

#[path = "support/privileged.rs"]
mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use sonde_l7::{Role, Status};
use sonde_tracer::tls::{SkipReason, TlsAttacher, TlsConfig};
use sonde_tracer::{Event, EventStream, Tracer};
use support::{collect, privileged, start};

/// Requests per status per client.
const N: usize = 5;
const STATUSES: [u16; 3] = [200, 404, 500];
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tls");
const PYTHON: &str = "/usr/bin/python3";

/// A tool the test needs is missing: skip, unless skipping is forbidden.
fn missing(test: &str, what: &str) -> bool {
    if std::env::var("SONDE_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
        panic!(
            "{test}: {what} is missing (scripts/test.sh installs it), and SONDE_REQUIRE_PRIVILEGED=1 forbids skipping"
        );
    }
    eprintln!("SKIP {test}: {what} is missing");
    true
}

fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
        || Command::new(program)
            .arg("version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
}

/// The paths a client asks for: N of each status, interleaved.
fn paths() -> Vec<String> {
    (0..N)
        .flat_map(|_| STATUSES.iter().map(|s| format!("/{s}")))
        .collect()
}

struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A self-signed certificate and the python3 HTTPS server on 127.0.0.1.
fn https_server(dir: &Path) -> Server {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let ok = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(ok, "openssl req failed");
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
    let port = line.trim().parse().unwrap();
    Server { child, port }
}

/// Runs a client that waits for a line on stdin: scans it (attaching to
/// its files) first, then lets it go; checks it printed every status.
fn run_client(attacher: Option<&mut TlsAttacher>, mut cmd: Command, paths: &[String]) -> u32 {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // The client has mapped its libraries once it waits on stdin; python3
    // imports ssl (and maps libssl) before it reads.
    if let Some(attacher) = attacher {
        wait_until_blocked_on_stdin(pid);
        attacher.scan_process(pid);
    }
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "client failed: {out:?}");
    let printed: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let want: Vec<String> = paths.iter().map(|p| p[1..].to_owned()).collect();
    assert_eq!(printed, want, "the client's own view of its responses");
    pid
}

/// Waits (bounded) until `pid` sleeps in a read of fd 0.
fn wait_until_blocked_on_stdin(pid: u32) {
    for _ in 0..500 {
        let syscall = std::fs::read_to_string(format!("/proc/{pid}/syscall")).unwrap_or_default();
        // "0 0x0 ..." : read(0, ...)
        if syscall.starts_with("0 0x0 ") {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("client {pid} never blocked reading stdin");
}

/// HTTP requests of `pid` in `role`, counted by status.
fn by_status(events: &[Event], pid: u32, role: Role) -> BTreeMap<u16, usize> {
    let mut out = BTreeMap::new();
    for e in events {
        if let Event::L7Request {
            pid: p,
            role: r,
            request,
            ..
        } = e
            && *p == pid
            && *r == role
        {
            match request.status {
                Status::Http(code) => *out.entry(code).or_default() += 1,
                other => panic!("not an HTTP status: {other:?} in {e:?}"),
            }
        }
    }
    out
}

fn expected() -> BTreeMap<u16, usize> {
    STATUSES.iter().map(|s| (*s, N)).collect()
}

async fn requests_of(stream: &mut EventStream, client: u32, server: u32) -> Vec<Event> {
    let want = 2 * N * STATUSES.len();
    collect(
        stream,
        |e| matches!(e, Event::L7Request { pid, .. } if *pid == client || *pid == server),
        |kept| kept.len() >= want,
    )
    .await
}

fn attacher(tracer: &mut Tracer) -> TlsAttacher {
    tracer
        .tls_attacher(TlsConfig::default())
        .unwrap_or_else(|e| panic!("TLS uprobes failed to load: {}", e.reason()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_through_openssl() {
    let test = "https_through_openssl";
    if !privileged(test) {
        return;
    }
    if (!Path::new(PYTHON).exists() || !have("openssl")) && missing(test, "python3 or openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (mut tracer, mut stream) = start();
    assert!(tracer.l7_attached(), "L7 programs: {:?}", tracer.l7_error());
    let mut tls = attacher(&mut tracer);
    // The host's libssl, probed before any process is scanned ...
    tls.scan_host_libraries();
    assert_eq!(tls.stats().openssl_targets, 1, "{:?}", tls.stats());
    let server = https_server(dir.path());
    // ... is the file the server maps: keyed the same, not probed twice
    // (twice would count every request twice).
    tls.scan_process(server.child.id());
    assert_eq!(tls.stats().openssl_targets, 1, "{:?}", tls.stats());

    let mut cmd = Command::new(PYTHON);
    cmd.arg(Path::new(FIXTURES).join("client.py"))
        .arg(server.port.to_string())
        .args(paths());
    let client = run_client(Some(&mut tls), cmd, &paths());
    assert_eq!(tls.stats().openssl_targets, 1, "{:?}", tls.stats());

    let events = requests_of(&mut stream, client, server.child.id()).await;
    assert_eq!(
        by_status(&events, client, Role::Client),
        expected(),
        "{events:?}"
    );
    assert_eq!(
        by_status(&events, server.child.id(), Role::Server),
        expected(),
        "{events:?}"
    );
    assert_eq!(events.len(), 2 * N * STATUSES.len(), "{events:?}");

    // Short-lived clients, one request per process, never scanned: seen
    // through the host library's probes.
    let mut clients = Vec::new();
    for path in paths() {
        let mut cmd = Command::new(PYTHON);
        cmd.arg(Path::new(FIXTURES).join("client.py"))
            .arg(server.port.to_string())
            .arg(&path);
        clients.push(run_client(None, cmd, std::slice::from_ref(&path)));
    }
    let server_pid = server.child.id();
    let events = collect(
        &mut stream,
        |e| matches!(e, Event::L7Request { pid, .. } if clients.contains(pid) || *pid == server_pid),
        |kept| kept.len() >= 2 * N * STATUSES.len(),
    )
    .await;
    let mut per_client = BTreeMap::new();
    for pid in &clients {
        for (status, n) in by_status(&events, *pid, Role::Client) {
            *per_client.entry(status).or_insert(0) += n;
        }
    }
    assert_eq!(per_client, expected(), "{events:?}");
    assert_eq!(by_status(&events, server_pid, Role::Server), expected());
    assert_eq!(events.len(), 2 * N * STATUSES.len(), "{events:?}");
}

/// Builds tests/tls/client.go into `dir` (std lib only, no downloads).
fn build_go_client(dir: &Path, name: &str, ldflags: &str) -> PathBuf {
    let out = dir.join(name);
    let status = Command::new("go")
        .args(["build", "-ldflags", ldflags, "-o"])
        .arg(&out)
        .arg(Path::new(FIXTURES).join("client.go"))
        .env("GOCACHE", dir.join("gocache"))
        .env("GOPATH", dir.join("gopath"))
        .env("GOPROXY", "off")
        .env("GOFLAGS", "-mod=mod")
        .env("CGO_ENABLED", "0")
        .status()
        .unwrap();
    assert!(status.success(), "go build failed");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_through_go_crypto_tls() {
    let test = "https_through_go_crypto_tls";
    if !privileged(test) {
        return;
    }
    if (!Path::new(PYTHON).exists() || !have("openssl") || !have("go"))
        && missing(test, "python3, openssl or go (golang-go)")
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let go_client = build_go_client(dir.path(), "client", "");
    let stripped = build_go_client(dir.path(), "client-stripped", "-s -w");

    let (mut tracer, mut stream) = start();
    assert!(tracer.l7_attached(), "L7 programs: {:?}", tracer.l7_error());
    let mut tls = attacher(&mut tracer);
    let server = https_server(dir.path());
    tls.scan_process(server.child.id());

    let mut cmd = Command::new(&go_client);
    cmd.arg(server.port.to_string()).args(paths());
    let client = run_client(Some(&mut tls), cmd, &paths());
    let stats = tls.stats().clone();
    assert_eq!(stats.go_targets, 1, "{stats:?}");
    // libssl: 9 (SSL_write/_ex entry and return, SSL_read/_ex entry and return,
    // SSL_set_fd); Go: Write entry, Read entry, and at least one RET of Read.
    assert!(stats.uprobes >= 9 + 3, "{stats:?}");

    let events = requests_of(&mut stream, client, server.child.id()).await;
    assert_eq!(
        by_status(&events, client, Role::Client),
        expected(),
        "{events:?}"
    );
    assert_eq!(
        by_status(&events, server.child.id(), Role::Server),
        expected(),
        "{events:?}"
    );
    assert_eq!(events.len(), 2 * N * STATUSES.len(), "{events:?}");

    // A stripped Go binary has no symbols to probe: skipped and counted; its
    // requests are still seen on the server's side.
    let mut cmd = Command::new(&stripped);
    cmd.arg(server.port.to_string()).args(paths());
    let client = run_client(Some(&mut tls), cmd, &paths());
    assert_eq!(tls.stats().go_targets, 1, "{:?}", tls.stats());
    assert_eq!(
        tls.stats().skipped.get(&SkipReason::GoStripped),
        Some(&1),
        "{:?}",
        tls.stats()
    );
    let events = collect(
        &mut stream,
        |e| matches!(e, Event::L7Request { pid, .. } if *pid == client || *pid == server.child.id()),
        |kept| kept.len() >= N * STATUSES.len(),
    )
    .await;
    assert_eq!(
        by_status(&events, server.child.id(), Role::Server),
        expected()
    );
    assert!(
        by_status(&events, client, Role::Client).is_empty(),
        "{events:?}"
    );
}

struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// nginx (its own OpenSSL, HTTP/2 over TLS) answering /200, /404, /500, one process
/// (`master_process off`) so the server's requests carry one pid.
fn nginx_h2(dir: &Path) -> (Nginx, u16) {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let d = dir.display();
    let conf = format!(
        "daemon off; master_process off; pid {d}/nginx.pid; error_log {d}/error.log;\n\
         events {{}}\n\
         http {{ access_log off; client_body_temp_path {d}/t1; proxy_temp_path {d}/t2;\n\
           fastcgi_temp_path {d}/t3; uwsgi_temp_path {d}/t4; scgi_temp_path {d}/t5;\n\
           server {{ listen 127.0.0.1:{port} ssl http2;\n\
             ssl_certificate {d}/cert.pem; ssl_certificate_key {d}/key.pem;\n\
             location = /200 {{ return 200 \"ok\"; }}\n\
             location = /404 {{ return 404 \"no\"; }}\n\
             location = /500 {{ return 500 \"err\"; }} }} }}\n"
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let nginx = Nginx(
        Command::new("nginx")
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-e")
            .arg(dir.join("error.log"))
            .spawn()
            .unwrap(),
    );
    for _ in 0..500 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return (nginx, port);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("nginx did not listen on {port}");
}

/// HTTP/2 inside TLS (ALPN h2): the Go client's plaintext starts with the HTTP/2 preface,
/// nginx's OpenSSL reads it: both ends count the same requests as plain HTTP/2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_inside_tls_go_to_nginx() {
    let test = "http2_inside_tls_go_to_nginx";
    if !privileged(test) {
        return;
    }
    if (!have("openssl") || !have("go") || !Path::new("/usr/sbin/nginx").exists())
        && missing(test, "openssl, go (golang-go) or nginx")
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let go_client = build_go_client(dir.path(), "client", "");
    // The certificate, made the way https_server makes it.
    drop(https_server(dir.path()));
    let (mut tracer, mut stream) = start();
    assert!(tracer.l7_attached(), "L7 programs: {:?}", tracer.l7_error());
    let mut tls = attacher(&mut tracer);
    let (nginx, port) = nginx_h2(dir.path());
    tls.scan_process(nginx.0.id());
    assert!(tls.stats().openssl_targets >= 1, "{:?}", tls.stats());

    let mut cmd = Command::new(&go_client);
    cmd.env("SONDE_H2", "1").arg(port.to_string()).args(paths());
    let client = run_client(Some(&mut tls), cmd, &paths());
    let events = requests_of(&mut stream, client, nginx.0.id()).await;
    assert_eq!(
        by_status(&events, client, Role::Client),
        expected(),
        "{events:?}"
    );
    assert_eq!(
        by_status(&events, nginx.0.id(), Role::Server),
        expected(),
        "{events:?}"
    );
    assert_eq!(events.len(), 2 * N * STATUSES.len(), "{events:?}");
}
