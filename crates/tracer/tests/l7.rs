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
use support::{SockState, collect, privileged, start_with};

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

fn exchange(variant: SockState, test: &str) {
    if !privileged(test) {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _guard = rt.enter();
    let (tracer, mut stream) = start_with(variant);
    assert!(
        tracer.l7_attached(),
        "L7 not attached: {:?}",
        tracer.l7_error()
    );
    let expect_btf = variant == SockState::TpBtf;
    assert_eq!(
        tracer.l7_programs().contains(&"l7_sys_enter"),
        expect_btf,
        "{:?}",
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
fn http_requests_on_both_ends_with_the_tp_btf_dispatch() {
    exchange(
        SockState::TpBtf,
        "http_requests_on_both_ends_with_the_tp_btf_dispatch",
    );
}

#[test]
fn http_requests_on_both_ends_with_the_classic_syscall_tracepoints() {
    exchange(
        SockState::Classic,
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

fn length_prefixed_exchange(variant: SockState, test: &str) {
    if !privileged(test) {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _guard = rt.enter();
    let (tracer, mut stream) = start_with(variant);
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
fn a_server_reading_the_length_prefix_apart_is_classified_with_the_tp_btf_dispatch() {
    length_prefixed_exchange(
        SockState::TpBtf,
        "a_server_reading_the_length_prefix_apart_is_classified_with_the_tp_btf_dispatch",
    );
}

#[test]
fn a_server_reading_the_length_prefix_apart_is_classified_with_the_classic_tracepoints() {
    length_prefixed_exchange(
        SockState::Classic,
        "a_server_reading_the_length_prefix_apart_is_classified_with_the_classic_tracepoints",
    );
}
