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
