//! L7 at the tracer's level: real HTTP/1.1 exchanges over loopback between threads of this
//! test process become exactly one `Event::L7Request` per request on each side (client and
//! server), with the response's status and a latency inside the client's own measurement,
//! with the tp_btf dispatch programs and with the classic per-syscall fallback.
#![allow(clippy::unwrap_used)]

#[path = "support/privileged.rs"]
mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use sonde_l7::{Role, Status};
use sonde_tracer::Event;
use sonde_tracer::L7Hooks;
use support::{SockState, collect, privileged, start_with, start_with_l7};

/// A server answering `n` keep-alive requests on one connection: `/missing` gets 404,
/// everything else 200. Returns its port.
fn serve(n: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        let mut pending = Vec::new();
        let mut served = 0;
        while served < n {
            let got = s.read(&mut buf).unwrap();
            if got == 0 {
                return;
            }
            pending.extend_from_slice(&buf[..got]);
            while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&pending[..end]).to_string();
                pending.drain(..end + 4);
                let body = b"hello";
                let status = if head.starts_with("GET /missing") {
                    "404 Not Found"
                } else {
                    "200 OK"
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                s.write_all(resp.as_bytes()).unwrap();
                s.write_all(body).unwrap();
                served += 1;
            }
        }
    });
    port
}

/// Makes the requests one at a time on one connection; returns the longest wall time one took.
fn client(port: u16, paths: &[&str]) -> Duration {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut longest = Duration::ZERO;
    for p in paths {
        let t = Instant::now();
        write!(s, "GET {p} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        // Read the head and the 5-byte body.
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            let n = s.read(&mut buf).unwrap();
            got.extend_from_slice(&buf[..n]);
            if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n")
                && got.len() >= end + 4 + 5
            {
                break;
            }
        }
        longest = longest.max(t.elapsed());
    }
    longest
}

/// An L7 request of this process on the test's connection (either end).
fn ours(e: &Event, me: u32, port: u16) -> bool {
    match e {
        Event::L7Request { pid, src, dst, .. } => {
            *pid == me && (src.port() == port || dst.port() == port)
        }
        _ => false,
    }
}

/// HTTP requests between a client and a server of this process, seen from the L7 programs
/// on `hooks` (`program`: the one that must be attached, so a silent fallback fails).
fn exchange(variant: SockState, hooks: L7Hooks, program: &str, test: &str) {
    if !privileged(test) {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _guard = rt.enter();
    let (tracer, mut stream) = start_with_l7(variant, hooks);
    assert!(
        tracer.l7_attached(),
        "L7 not attached: {:?}",
        tracer.l7_error()
    );
    assert!(
        tracer.l7_programs().contains(&program),
        "{program} is not attached: {:?}",
        tracer.l7_programs()
    );
    let paths = ["/a", "/missing", "/b", "/c", "/missing"];
    let port = serve(paths.len());
    let longest = client(port, &paths);
    let me = std::process::id();
    let events = rt.block_on(collect(
        &mut stream,
        |e| ours(e, me, port),
        |kept| kept.len() >= 2 * paths.len(),
    ));
    let mut client_statuses = Vec::new();
    let mut server_statuses = Vec::new();
    for e in &events {
        let Event::L7Request { role, request, .. } = e else {
            unreachable!()
        };
        assert!(
            Duration::from_nanos(request.duration_ns) <= longest,
            "{request:?} took longer than the client's longest wall time {longest:?}"
        );
        match role {
            Role::Client => client_statuses.push(request.status),
            Role::Server => server_statuses.push(request.status),
        }
    }
    let expected: Vec<Status> = paths
        .iter()
        .map(|p| Status::Http(if *p == "/missing" { 404 } else { 200 }))
        .collect();
    assert_eq!(client_statuses, expected, "client side: {events:?}");
    assert_eq!(server_statuses, expected, "server side: {events:?}");
}

#[test]
fn http_requests_on_both_ends_with_the_socket_tracepoints() {
    exchange(
        SockState::TpBtf,
        L7Hooks::Best,
        "l7_sock_recv",
        "http_requests_on_both_ends_with_the_socket_tracepoints",
    );
}

#[test]
fn http_requests_on_both_ends_with_the_tp_btf_dispatch() {
    exchange(
        SockState::TpBtf,
        L7Hooks::Syscalls,
        "l7_sys_enter",
        "http_requests_on_both_ends_with_the_tp_btf_dispatch",
    );
}

#[test]
fn http_requests_on_both_ends_with_the_classic_syscall_tracepoints() {
    exchange(
        SockState::Classic,
        L7Hooks::Best,
        "l7_enter_read",
        "http_requests_on_both_ends_with_the_classic_syscall_tracepoints",
    );
}

/// A server that accepts in its parent process and serves in a forked child, as Postgres does:
/// the child's requests are seen on the socket it inherited.
const FORKING_SERVER: &str = r#"
import os, socket, sys
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(1)
print(l.getsockname()[1], flush=True)
c, _ = l.accept()
pid = os.fork()
if pid == 0:
    buf = b""
    served = 0
    while served < 3:
        d = c.recv(4096)
        if not d: break
        buf += d
        while b"\r\n\r\n" in buf:
            head, buf = buf.split(b"\r\n\r\n", 1)
            st = b"404 Not Found" if head.startswith(b"GET /missing") else b"200 OK"
            c.sendall(b"HTTP/1.1 " + st + b"\r\nContent-Length: 5\r\n\r\nhello")
            served += 1
    os._exit(0)
c.close()
print(pid, flush=True)
os.waitpid(pid, 0)
"#;

#[test]
fn a_forked_child_serving_an_inherited_socket_is_seen() {
    let test = "a_forked_child_serving_an_inherited_socket_is_seen";
    if !privileged(test) {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _guard = rt.enter();
    let (tracer, mut stream) = start_with(SockState::TpBtf);
    assert!(tracer.l7_attached(), "{:?}", tracer.l7_error());
    let mut server = std::process::Command::new("python3")
        .args(["-c", FORKING_SERVER])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(server.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    let port: u16 = line.trim().parse().unwrap();
    let paths = ["/a", "/missing", "/b"];
    let longest = client(port, &paths);
    line.clear();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    let child: u32 = line.trim().parse().unwrap();
    server.wait().unwrap();
    let events = rt.block_on(collect(
        &mut stream,
        |e| ours(e, child, port),
        |kept| kept.len() >= paths.len(),
    ));
    let statuses: Vec<Status> = events
        .iter()
        .map(|e| match e {
            Event::L7Request { role, request, .. } => {
                assert_eq!(*role, Role::Server, "{e:?}");
                assert!(Duration::from_nanos(request.duration_ns) <= longest);
                request.status
            }
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(
        statuses,
        [Status::Http(200), Status::Http(404), Status::Http(200)],
        "{events:?}"
    );
}

/// A Kafka-framed server (`[length: u32 BE][body]`) that reads each request's 4-byte length
/// apart from its body, as ZooKeeper's and Kafka's Java servers do: its first read on the
/// connection is only the prefix. Answers each request (ApiVersions) with its correlation id.
/// Returns its port.
fn serve_length_prefixed(n: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        for _ in 0..n {
            let mut len = [0u8; 4];
            if s.read_exact(&mut len).is_err() {
                return;
            }
            let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
            s.read_exact(&mut body).unwrap();
            // [length 10][correlation id][error code 0][api versions: empty array]
            let mut resp = 10u32.to_be_bytes().to_vec();
            resp.extend_from_slice(&body[4..8]);
            resp.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
            s.write_all(&resp).unwrap();
        }
    });
    port
}

fn length_prefixed_exchange(variant: SockState, hooks: L7Hooks, test: &str) {
    if !privileged(test) {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _guard = rt.enter();
    let (tracer, mut stream) = start_with_l7(variant, hooks);
    assert!(tracer.l7_attached(), "{:?}", tracer.l7_error());
    const N: usize = 4;
    let port = serve_length_prefixed(N);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut longest = Duration::ZERO;
    for corr in 1..=N as u32 {
        // ApiVersions v0: [length][api key 18][version 0][correlation id][client id "sonde"]
        let mut m = vec![0, 18, 0, 0];
        m.extend_from_slice(&corr.to_be_bytes());
        m.extend_from_slice(&[0, 5]);
        m.extend_from_slice(b"sonde");
        let mut req = (m.len() as u32).to_be_bytes().to_vec();
        req.extend_from_slice(&m);
        let t = Instant::now();
        s.write_all(&req).unwrap();
        let mut resp = [0u8; 14];
        s.read_exact(&mut resp).unwrap();
        assert_eq!(resp[4..8], corr.to_be_bytes());
        longest = longest.max(t.elapsed());
    }
    let me = std::process::id();
    let events = rt.block_on(collect(
        &mut stream,
        |e| ours(e, me, port),
        |kept| kept.len() >= 2 * N,
    ));
    let (mut client, mut server) = (0, 0);
    for e in &events {
        let Event::L7Request { role, request, .. } = e else {
            unreachable!()
        };
        assert_eq!(request.protocol, sonde_l7::Protocol::Kafka, "{e:?}");
        assert_eq!(request.status, Status::Ok, "{e:?}");
        assert!(
            Duration::from_nanos(request.duration_ns) <= longest,
            "{e:?}"
        );
        match role {
            Role::Client => client += 1,
            Role::Server => server += 1,
        }
    }
    assert_eq!((client, server), (N, N), "{events:?}");
}

#[test]
fn a_server_reading_the_length_prefix_apart_is_classified_with_the_socket_tracepoints() {
    length_prefixed_exchange(
        SockState::TpBtf,
        L7Hooks::Socket,
        "a_server_reading_the_length_prefix_apart_is_classified_with_the_socket_tracepoints",
    );
}

#[test]
fn a_server_reading_the_length_prefix_apart_is_classified_with_the_tp_btf_dispatch() {
    length_prefixed_exchange(
        SockState::TpBtf,
        L7Hooks::Syscalls,
        "a_server_reading_the_length_prefix_apart_is_classified_with_the_tp_btf_dispatch",
    );
}

#[test]
fn a_server_reading_the_length_prefix_apart_is_classified_with_the_classic_tracepoints() {
    length_prefixed_exchange(
        SockState::Classic,
        L7Hooks::Best,
        "a_server_reading_the_length_prefix_apart_is_classified_with_the_classic_tracepoints",
    );
}

/// A server that accepts `n` connections one after another and answers one request on
/// each, then closes it: `/missing` gets 404, everything else 200. Returns its port.
fn serve_one_per_connection(n: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for _ in 0..n {
            let (mut s, _) = listener.accept().unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                let k = s.read(&mut buf).unwrap();
                if k == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..k]);
            }
            let status = if got.starts_with(b"GET /missing") {
                "404 Not Found"
            } else {
                "200 OK"
            };
            let resp =
                format!("HTTP/1.1 {status}\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello");
            s.write_all(resp.as_bytes()).unwrap();
        }
    });
    port
}

/// One process connecting, asking and closing, again and again, to two servers in turn:
/// each connection reuses the fd (and, the kernel's socket memory being reused at once,
/// often the socket's address) of the one before. Each must be a connection of its own on
/// both ends, with its own peer: the socket tracepoints tell them apart by the socket's
/// cookie, the syscall hooks by close().
fn reconnecting_client(hooks: L7Hooks, test: &str) {
    if !privileged(test) {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _guard = rt.enter();
    let (tracer, mut stream) = start_with_l7(SockState::TpBtf, hooks);
    assert!(tracer.l7_attached(), "{:?}", tracer.l7_error());
    let paths = [
        "/a", "/missing", "/b", "/missing", "/c", "/d", "/missing", "/e",
    ];
    let ports = [
        serve_one_per_connection(paths.len() / 2),
        serve_one_per_connection(paths.len() / 2),
    ];
    let mut longest = Duration::ZERO;
    for (i, p) in paths.iter().enumerate() {
        let t = Instant::now();
        let mut s = TcpStream::connect(("127.0.0.1", ports[i % 2])).unwrap();
        write!(s, "GET {p} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        assert!(got.ends_with(b"hello"), "{}", String::from_utf8_lossy(&got));
        drop(s);
        longest = longest.max(t.elapsed());
    }
    let me = std::process::id();
    let events = rt.block_on(collect(
        &mut stream,
        |e| ours(e, me, ports[0]) || ours(e, me, ports[1]),
        |kept| kept.len() >= 2 * paths.len(),
    ));
    // (server port, status) of each request, in order, as each end saw it.
    let expected: Vec<(u16, Status)> = paths
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let status = Status::Http(if *p == "/missing" { 404 } else { 200 });
            (ports[i % 2], status)
        })
        .collect();
    let (mut client, mut server) = (Vec::new(), Vec::new());
    for e in &events {
        let Event::L7Request {
            role,
            request,
            src,
            dst,
            ..
        } = e
        else {
            unreachable!()
        };
        assert!(
            Duration::from_nanos(request.duration_ns) <= longest,
            "{request:?} took longer than the client's longest wall time {longest:?}"
        );
        match role {
            Role::Client => client.push((dst.port(), request.status)),
            Role::Server => server.push((src.port(), request.status)),
        }
    }
    assert_eq!(client, expected, "client side: {events:?}");
    assert_eq!(server, expected, "server side: {events:?}");
}

#[test]
fn a_client_reconnecting_on_the_same_fd_is_exact_with_the_socket_tracepoints() {
    reconnecting_client(
        L7Hooks::Socket,
        "a_client_reconnecting_on_the_same_fd_is_exact_with_the_socket_tracepoints",
    );
}

#[test]
fn a_client_reconnecting_on_the_same_fd_is_exact_with_the_tp_btf_dispatch() {
    reconnecting_client(
        L7Hooks::Syscalls,
        "a_client_reconnecting_on_the_same_fd_is_exact_with_the_tp_btf_dispatch",
    );
}

/// Whether /usr/bin/python3 is there; without it the test skips, saying why (a failure
/// under SONDE_REQUIRE_PRIVILEGED=1).
fn have_python3(test: &str) -> bool {
    if std::path::Path::new("/usr/bin/python3").exists() {
        return true;
    }
    assert!(
        std::env::var("SONDE_REQUIRE_PRIVILEGED").as_deref() != Ok("1"),
        "{test}: python3 is missing (scripts/test.sh installs it)"
    );
    eprintln!("SKIP {test}: python3 is missing");
    false
}

/// A python3 client (its own process, so no other test's sockets share its pid) that opens
/// `n` connections at once (no fd reused), asks one request on each, closes them all, prints
/// "done" and waits on stdin: alive, so only the closes can end its connections.
const CLOSING_CLIENT: &str = r#"
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
for c in conns:
    c.sendall(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
    while c.recv(4096):
        pass
for c in conns:
    c.close()
print("done", flush=True)
sys.stdin.readline()
"#;

/// Connections a live process closed leave no parser state behind: on the socket
/// tracepoints their entries go at the socket's last state change (close() has no hook
/// there), on the syscall hooks at close().
fn closed_connections_are_forgotten(hooks: L7Hooks, test: &str) {
    if !privileged(test) || !have_python3(test) {
        return;
    }
    const N: usize = 6;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _guard = rt.enter();
    let (tracer, mut stream) = start_with_l7(SockState::TpBtf, hooks);
    assert!(tracer.l7_attached(), "{:?}", tracer.l7_error());
    let port = serve_one_per_connection(N);
    let mut child = std::process::Command::new("/usr/bin/python3")
        .args(["-c", CLOSING_CLIENT, &port.to_string(), &N.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "done");
    let requests = rt.block_on(collect(
        &mut stream,
        |e| matches!(e, Event::L7Request { pid: p, role: Role::Client, .. } if *p == pid),
        |kept| kept.len() >= N,
    ));
    assert_eq!(requests.len(), N, "{requests:?}");
    // The closes' records follow within the connections' FIN exchange.
    let deadline = Instant::now() + Duration::from_secs(10);
    while stream.l7_sessions_of(pid) > 0 && Instant::now() < deadline {
        let mut batch = Vec::new();
        let _ = rt.block_on(tokio::time::timeout(
            Duration::from_millis(100),
            stream.next_batch(&mut batch),
        ));
    }
    let left = stream.l7_sessions_of(pid);
    child.stdin.take().unwrap().write_all(b"\n").unwrap();
    let _ = child.wait();
    assert_eq!(left, 0, "sessions of the client's closed connections left");
}

#[test]
fn closed_connections_are_forgotten_with_the_socket_tracepoints() {
    closed_connections_are_forgotten(
        L7Hooks::Socket,
        "closed_connections_are_forgotten_with_the_socket_tracepoints",
    );
}

#[test]
fn closed_connections_are_forgotten_with_the_tp_btf_dispatch() {
    closed_connections_are_forgotten(
        L7Hooks::Syscalls,
        "closed_connections_are_forgotten_with_the_tp_btf_dispatch",
    );
}

/// A python3 client that asks one request, leaves the reply unread and exits: the kernel
/// resets the connection (unread data) before the file is let go, so no close is reported
/// for it on the socket tier, and no close() runs at exit on the syscall tiers.
const EXITING_CLIENT: &str = r#"
import os, socket, sys, time
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
c.sendall(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
time.sleep(0.3)
os._exit(0)
"#;

/// A process's exit ends its connections' parser state, those no close reports included.
fn an_exited_processes_connections_are_forgotten(hooks: L7Hooks, test: &str) {
    if !privileged(test) || !have_python3(test) {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _guard = rt.enter();
    let (tracer, mut stream) = start_with_l7(SockState::TpBtf, hooks);
    assert!(tracer.l7_attached(), "{:?}", tracer.l7_error());
    let port = serve_one_per_connection(1);
    let mut child = std::process::Command::new("/usr/bin/python3")
        .args(["-c", EXITING_CLIENT, &port.to_string()])
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut peak = 0;
    let mut exited = false;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let mut batch = Vec::new();
        let _ = rt.block_on(tokio::time::timeout(
            Duration::from_millis(50),
            stream.next_batch(&mut batch),
        ));
        peak = peak.max(stream.l7_sessions_of(pid));
        exited |= batch
            .iter()
            .any(|e| matches!(e, Event::ProcessExit { pid: p, .. } if *p == pid));
        if exited {
            break;
        }
    }
    let _ = child.wait();
    assert!(exited, "the client's exit was never seen");
    assert_eq!(peak, 1, "the client's request made a session");
    assert_eq!(stream.l7_sessions_of(pid), 0, "its session outlived it");
}

#[test]
fn an_exited_processes_connections_are_forgotten_with_the_socket_tracepoints() {
    an_exited_processes_connections_are_forgotten(
        L7Hooks::Socket,
        "an_exited_processes_connections_are_forgotten_with_the_socket_tracepoints",
    );
}

#[test]
fn an_exited_processes_connections_are_forgotten_with_the_tp_btf_dispatch() {
    an_exited_processes_connections_are_forgotten(
        L7Hooks::Syscalls,
        "an_exited_processes_connections_are_forgotten_with_the_tp_btf_dispatch",
    );
}
