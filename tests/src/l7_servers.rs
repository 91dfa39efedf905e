//! Real application servers and clients for the L7 tests (tests/tests/agent_l7.rs), each set
//! inside a test cgroup the agent exports as a container.
//!
//! A [`Container`] is a test cgroup (`/system.slice/sonde-l7<kind>-<pid>.service`) with a small
//! Python runner (tests/scripts/l7_runner.py) moved into it before the agent starts. Every
//! process the test asks it to start, server or client, is forked by that runner, so it is born
//! in the cgroup: short-lived clients are attributed from their first syscall, and servers'
//! workers and backends (nginx, postgres) are in the container too. Nothing is moved after birth
//! except the runner itself.
//!
//! Servers listen on 127.0.0.1 on ports outside the ephemeral range (which the agent never
//! counts as a destination), or, for DNS, on 127.0.0.1:53 of a network namespace of the test's
//! own ([`Netns`]). No other address is ever contacted.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::cgroups::TestCgroup;

/// A helper script of tests/scripts.
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(name)
}

/// The test venv's Python (scripts/install-test-tools.sh) when it can import `module`.
pub fn venv_python_with(module: &str) -> Option<PathBuf> {
    let p = std::env::var_os("SONDE_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/sonde-venv/bin/python"));
    Command::new(&p)
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
        .then_some(p)
}

/// A loopback port outside the ephemeral range (32768-60999) that nobody listens on now.
pub fn free_port_outside_ephemeral() -> u16 {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        ^ std::process::id().wrapping_mul(2_654_435_761);
    for i in 0..500u32 {
        let port = 20_000 + ((seed.wrapping_add(i.wrapping_mul(7_919))) % 12_000) as u16;
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in 20000-32000 on 127.0.0.1");
}

/// What one process run by a [`Container`] did.
#[derive(Debug, Clone)]
pub struct Ran {
    pub rc: i64,
    pub stdout: String,
    pub stderr: String,
    /// Wall-clock time of the whole process, measured by the runner: an upper bound of the
    /// latency of every request the process made.
    pub wall: Duration,
}

impl Ran {
    /// The process's stdout as one JSON value (the l7_clients.py convention).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("client output is not JSON ({e}): {self:?}"))
    }
}

/// A test cgroup with a runner inside that forks every process of the container.
pub struct Container {
    /// The container_id the agent exports it under.
    pub id: String,
    stdin: ChildStdin,
    replies: mpsc::Receiver<String>,
    _cg: TestCgroup,
    /// Scratch space for the container's servers (configs, data, logs); world-readable, as
    /// postgres and nginx workers run as other users.
    pub dir: tempfile::TempDir,
}

impl Container {
    /// Creates `/system.slice/sonde-l7<kind>-<pid>.service` and its runner, with `env` set
    /// for the runner and so every process of the container (it shows in /proc/<pid>/environ).
    pub fn create(kind: &str, env: &[(&str, &str)]) -> Container {
        let path = format!(
            "/system.slice/sonde-l7{kind}-{}.service",
            std::process::id()
        );
        let mut cg =
            TestCgroup::create(&path).unwrap_or_else(|e| panic!("create cgroup {path}: {e}"));
        let mut cmd = Command::new("python3");
        cmd.arg(script("l7_runner.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start tests/scripts/l7_runner.py");
        // The runner does nothing before its first command: moving it now means nothing it
        // starts is ever outside the cgroup.
        cg.add_pid(child.id())
            .unwrap_or_else(|e| panic!("move the runner into {path}: {e}"));
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        cg.own(child);
        let (tx, replies) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let dir = tempfile::Builder::new()
            .prefix("sonde-l7-")
            .tempdir()
            .expect("tempdir");
        set_mode(dir.path(), 0o755);
        Container {
            id: path,
            stdin,
            replies,
            _cg: cg,
            dir,
        }
    }

    fn request(&mut self, req: serde_json::Value) -> serde_json::Value {
        writeln!(self.stdin, "{req}").expect("write to the runner");
        self.stdin.flush().unwrap();
        let line = self
            .replies
            .recv_timeout(Duration::from_secs(180))
            .unwrap_or_else(|e| panic!("runner of {}: no answer to {req}: {e}", self.id));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        if let Some(err) = v.get("error") {
            panic!("runner of {}: {req} failed: {err}", self.id);
        }
        v
    }

    /// Runs `argv` to completion inside the container.
    pub fn run(&mut self, argv: &[&str]) -> Ran {
        let v = self.request(serde_json::json!({"op": "run", "argv": argv}));
        Ran {
            rc: v["rc"].as_i64().unwrap(),
            stdout: v["stdout"].as_str().unwrap().to_owned(),
            stderr: v["stderr"].as_str().unwrap().to_owned(),
            wall: Duration::from_nanos(v["ns"].as_u64().unwrap()),
        }
    }

    /// Like [`Container::run`], failing the test unless the process exits 0.
    pub fn run_ok(&mut self, argv: &[&str]) -> Ran {
        let r = self.run(argv);
        assert_eq!(r.rc, 0, "{argv:?} failed in {}: {r:?}", self.id);
        r
    }

    /// Starts `argv` in the background inside the container; its output goes to `log` in the
    /// container's directory. Returns its pid and the log's path.
    pub fn spawn(&mut self, argv: &[&str], log: &str) -> (u32, PathBuf) {
        let log = self.dir.path().join(log);
        let v = self.request(
            serde_json::json!({"op": "spawn", "argv": argv, "log": log.to_str().unwrap()}),
        );
        (v["pid"].as_u64().unwrap() as u32, log)
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Waits until `log` has a line equal to `line` (the servers of l7_servers.py print READY).
pub fn wait_for_line(log: &Path, line: &str, what: &str) {
    crate::wait_for(what, Duration::from_secs(30), || {
        std::fs::read_to_string(log)
            .ok()
            .filter(|t| t.lines().any(|l| l.trim() == line))
            .map(|_| ())
    });
}

/// Waits until 127.0.0.1:`port` accepts connections (a bare connect: no request is sent).
pub fn wait_for_port(port: u16, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on 127.0.0.1:{port}: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Lines of a server log starting with `prefix` (the server's own record of its requests).
pub fn log_lines(log: &Path, prefix: &str) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

/// A server started in a container.
pub struct Server {
    pub port: u16,
    pub pid: u32,
    pub log: PathBuf,
    /// Server-specific files: nginx's access log, postgres's socket directory.
    pub aux: PathBuf,
}

/// The HTTP/1.1 server of l7_servers.py (keep-alive, pipelining; /status/CODE answers CODE).
pub fn http_server(c: &mut Container) -> Server {
    let port = free_port_outside_ephemeral();
    let (pid, log) = c.spawn(
        &[
            "python3",
            script("l7_servers.py").to_str().unwrap(),
            "http",
            &port.to_string(),
        ],
        "http.log",
    );
    wait_for_line(&log, "READY", "the HTTP server");
    Server {
        port,
        pid,
        log: log.clone(),
        aux: log,
    }
}

/// The gRPC server of l7_servers.py, run by `python` (a Python with grpcio).
pub fn grpc_server(c: &mut Container, python: &Path) -> Server {
    let port = free_port_outside_ephemeral();
    let (pid, log) = c.spawn(
        &[
            python.to_str().unwrap(),
            script("l7_servers.py").to_str().unwrap(),
            "grpc",
            &port.to_string(),
        ],
        "grpc.log",
    );
    wait_for_line(&log, "READY", "the gRPC server");
    wait_for_port(port, "the gRPC server", &log);
    Server {
        port,
        pid,
        log: log.clone(),
        aux: log,
    }
}

/// nghttpd (Debian nghttp2-server): HTTP/2 over cleartext with prior knowledge, serving a
/// document root with `index.html`, `a.html` and `b.html` (200); any other path is 404.
pub fn nghttpd(c: &mut Container) -> Server {
    let port = free_port_outside_ephemeral();
    let root = c.dir.path().join("h2root");
    std::fs::create_dir_all(&root).unwrap();
    for page in ["index.html", "a.html", "b.html"] {
        std::fs::write(root.join(page), format!("{page} over h2c\n")).unwrap();
    }
    let (pid, log) = c.spawn(
        &[
            "nghttpd",
            "--no-tls",
            "-a",
            "127.0.0.1",
            "-d",
            root.to_str().unwrap(),
            &port.to_string(),
        ],
        "nghttpd.log",
    );
    wait_for_port(port, "nghttpd", &log);
    Server {
        port,
        pid,
        log,
        aux: root,
    }
}

/// Debian's nginx as a test process: its own prefix, config and port; master and one worker,
/// both in the container. `/status/200` and `/status/500` are `return`s, `/file.txt` a static
/// file (sendfile), anything else 404. The access log (`aux`) records "STATUS URI" per request.
pub fn nginx(c: &mut Container) -> Server {
    nginx_with(c, false)
}

/// [`nginx`] serving HTTPS (HTTP/1.1 over TLS through the system's OpenSSL, libssl) with a
/// self-signed certificate made for the test.
pub fn nginx_tls(c: &mut Container) -> Server {
    nginx_with(c, true)
}

fn nginx_with(c: &mut Container, tls: bool) -> Server {
    let port = free_port_outside_ephemeral();
    let dir = c.dir.path().join("nginx");
    std::fs::create_dir_all(dir.join("html")).unwrap();
    std::fs::create_dir_all(dir.join("tmp")).unwrap();
    std::fs::write(dir.join("html/file.txt"), "x".repeat(20_000)).unwrap();
    let d = dir.to_str().unwrap();
    let (listen, certs) = if tls {
        crate::tools::run(
            Command::new("openssl")
                .args([
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=localhost",
                    "-keyout",
                    &format!("{d}/key.pem"),
                    "-out",
                    &format!("{d}/cert.pem"),
                ])
                .stderr(Stdio::null()),
        );
        (
            format!("127.0.0.1:{port} ssl"),
            format!("ssl_certificate {d}/cert.pem;\n        ssl_certificate_key {d}/key.pem;"),
        )
    } else {
        (format!("127.0.0.1:{port}"), String::new())
    };
    let conf = format!(
        r#"daemon off;
master_process on;
worker_processes 1;
user root root;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 256; }}
http {{
    log_format l7 '$status $request_uri';
    access_log {d}/access.log l7;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    sendfile on;
    keepalive_requests 100000;
    server {{
        listen {listen};
        {certs}
        root {d}/html;
        location = /status/200 {{ return 200 "ok\n"; }}
        location = /status/500 {{ return 500; }}
    }}
}}
"#
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let (pid, log) = c.spawn(
        &[
            "nginx",
            "-p",
            d,
            "-c",
            &format!("{d}/nginx.conf"),
            "-e",
            &format!("{d}/error.log"),
        ],
        "nginx.log",
    );
    wait_for_port(port, "nginx", &log);
    Server {
        port,
        pid,
        log,
        aux: dir.join("access.log"),
    }
}

/// redis-server on its own port, no persistence.
pub fn redis(c: &mut Container) -> Server {
    let port = free_port_outside_ephemeral();
    let dir = c.dir.path().join("redis");
    std::fs::create_dir_all(&dir).unwrap();
    let (pid, log) = c.spawn(
        &[
            "redis-server",
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            dir.to_str().unwrap(),
        ],
        "redis.log",
    );
    wait_for_port(port, "redis-server", &log);
    Server {
        port,
        pid,
        log,
        aux: dir,
    }
}

/// The directory of Debian's PostgreSQL server binaries (initdb, postgres).
pub fn postgres_bin() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|b| b.join("initdb").exists() && b.join("postgres").exists())
        .collect();
    versions.sort();
    versions.pop()
}

/// A fresh PostgreSQL cluster: initdb'd as the postgres user in the container's directory
/// (trust authentication), listening on 127.0.0.1 on a port of its own with a socket
/// directory of its own (`aux`). The postmaster and every backend are in the container.
pub fn postgres(c: &mut Container, bin: &Path) -> Server {
    let port = free_port_outside_ephemeral();
    let dir = c.dir.path().join("pg");
    let data = dir.join("data");
    let sock = dir.join("sock");
    for d in [&dir, &data, &sock] {
        std::fs::create_dir_all(d).unwrap();
    }
    set_mode(&dir, 0o755);
    crate::tools::run(Command::new("chown").args([
        "postgres:postgres",
        data.to_str().unwrap(),
        sock.to_str().unwrap(),
    ]));
    let setpriv = [
        "setpriv",
        "--reuid=postgres",
        "--regid=postgres",
        "--init-groups",
    ];
    // initdb runs outside the container: it is no part of what the test measures.
    crate::tools::run(
        Command::new(setpriv[0])
            .args(&setpriv[1..])
            .arg(bin.join("initdb"))
            .args(["-D", data.to_str().unwrap()])
            .args(["--auth=trust", "-U", "postgres", "-N"])
            .stdout(Stdio::null()),
    );
    let postgres = bin.join("postgres");
    let mut argv: Vec<&str> = setpriv.to_vec();
    let port_s = port.to_string();
    argv.extend([
        postgres.to_str().unwrap(),
        "-D",
        data.to_str().unwrap(),
        "-p",
        &port_s,
        "-k",
        sock.to_str().unwrap(),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        "fsync=off",
    ]);
    let (pid, log) = c.spawn(&argv, "postgres.log");
    wait_for_port(port, "postgres", &log);
    // Listening comes before accepting sessions: wait until the startup is complete.
    crate::wait_for(
        "postgres to accept sessions",
        Duration::from_secs(30),
        || {
            std::fs::read_to_string(&log)
                .ok()
                .filter(|t| t.contains("database system is ready to accept connections"))
                .map(|_| ())
        },
    );
    Server {
        port,
        pid,
        log,
        aux: sock,
    }
}

/// A network namespace of the test's own with only its loopback up; deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn create(tag: &str) -> Netns {
        let name = format!("sonde-l7{tag}-{}", std::process::id());
        crate::tools::run(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns { name };
        crate::tools::run(Command::new("ip").args(["-n", &ns.name, "link", "set", "lo", "up"]));
        ns
    }

    /// `argv` prefixed to run inside the namespace (`ip netns exec NAME ...`).
    pub fn exec<'a>(&'a self, argv: &[&'a str]) -> Vec<&'a str> {
        let mut v = vec!["ip", "netns", "exec", self.name.as_str()];
        v.extend_from_slice(argv);
        v
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// The DNS responder of l7_servers.py on 127.0.0.1:53 (UDP and TCP) inside `ns`.
pub fn dns_server(c: &mut Container, ns: &Netns) -> Server {
    let s = script("l7_servers.py");
    let argv = ns.exec(&["python3", s.to_str().unwrap(), "dns", "127.0.0.1", "53"]);
    let (pid, log) = c.spawn(&argv, "dns.log");
    wait_for_line(&log, "READY", "the DNS responder");
    Server {
        port: 53,
        pid,
        log: log.clone(),
        aux: log,
    }
}
