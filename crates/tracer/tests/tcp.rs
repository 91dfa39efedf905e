//! Privileged: real TCP on loopback, the real programs on this kernel.
#![allow(clippy::unwrap_used)]

#[path = "support/privileged.rs"]
mod support;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, TcpListener, TcpStream};
use std::thread;

use sonde_tracer::conntrack::ConnectionTable;
use sonde_tracer::{Event, EventStream, Tracer, TracerConfig};
use support::{SockState, collect, own_cgroup_v2_id, privileged, start_with, tcp_segments};

fn me() -> u32 {
    std::process::id()
}

fn count(events: &[Event], f: impl Fn(&Event) -> bool) -> usize {
    events.iter().filter(|e| f(e)).count()
}

const V4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const V6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connects_to_a_listener_are_counted_exactly() {
    if privileged("connects_to_a_listener_are_counted_exactly") {
        connects_counted(start_with(SockState::TpBtf), V4).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connects_to_a_listener_are_counted_exactly_classic() {
    if privileged("connects_to_a_listener_are_counted_exactly_classic") {
        connects_counted(start_with(SockState::Classic), V4).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_connects_to_a_listener_are_counted_exactly() {
    if privileged("ipv6_connects_to_a_listener_are_counted_exactly") {
        connects_counted(start_with(SockState::TpBtf), V6).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_connects_to_a_listener_are_counted_exactly_classic() {
    if privileged("ipv6_connects_to_a_listener_are_counted_exactly_classic") {
        connects_counted(start_with(SockState::Classic), V6).await;
    }
}

/// The tp_btf program cannot be loaded (here: the BTF given for it does not
/// parse): the tracer falls back to the classic program on its own, and every
/// connect is still counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_tp_btf_program_falls_back_to_the_classic_one() {
    if !privileged("a_refused_tp_btf_program_falls_back_to_the_classic_one") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("vmlinux");
    std::fs::write(&garbage, b"not BTF").unwrap();
    let config = TracerConfig {
        poll_interval: std::time::Duration::from_millis(20),
        btf_path: garbage,
        ..TracerConfig::default()
    };
    let (tracer, stream) = match Tracer::start(config) {
        Ok(t) => t,
        Err(e) => panic!("tracer failed to start: {}", e.reason()),
    };
    assert!(!tracer.sock_state_is_tp_btf(), "the classic program runs");
    let btf: Vec<_> = tracer
        .attached_programs()
        .iter()
        .filter(|p| p.ends_with("_btf"))
        .collect();
    assert!(btf.is_empty(), "only classic programs run: {btf:?}");
    connects_counted((tracer, stream), V4).await;
}

/// N connects with 4 bytes each, closed before any scrape: the kernel writes
/// one record per connection, N ConnectionClosed with the test's pid, source
/// and destination addresses, the connect duration and exact bytes (no
/// ConnectOk: that record is only for a connection the kernel could not keep),
/// and the connection table counts exactly N connects from them.
async fn connects_counted(started: (Tracer, EventStream), ip: IpAddr) {
    const N: usize = 50;
    let (_tracer, mut stream) = started;
    let listener = TcpListener::bind((ip, 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    let server = thread::spawn(move || {
        for _ in 0..N {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).unwrap();
        }
    });
    // Each client's socket, with how long its connect() took as seen from here.
    let mut sources = std::collections::HashMap::new();
    for _ in 0..N {
        let started = std::time::Instant::now();
        let mut c = TcpStream::connect(addr).unwrap();
        let took = started.elapsed();
        c.write_all(b"ping").unwrap();
        sources.insert(c.local_addr().unwrap(), took);
    }
    server.join().unwrap();

    let pid = me();
    let events = collect(
        &mut stream,
        |e| match e {
            Event::ConnectOk { dst, .. }
            | Event::ConnectFailed { dst, .. }
            | Event::ConnectionClosed { dst, .. } => *dst == addr,
            Event::ListenOpen { addr: a, .. } | Event::ListenClose { addr: a, .. } => *a == addr,
            _ => false,
        },
        |ev| count(ev, |e| matches!(e, Event::ConnectionClosed { .. })) >= N,
    )
    .await;

    assert_eq!(
        count(&events, |e| matches!(e, Event::ConnectOk { .. })),
        0,
        "no record when a connection opens"
    );
    assert_eq!(
        count(&events, |e| matches!(e, Event::ConnectFailed { .. })),
        0
    );
    let closed: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, Event::ConnectionClosed { .. }))
        .collect();
    assert_eq!(closed.len(), N, "one record per connection to {addr}");
    let mut table = ConnectionTable::new(1024);
    let mut connects = 0;
    let mut distinct = std::collections::HashSet::new();
    for e in &closed {
        let Event::ConnectionClosed {
            pid: p,
            src,
            duration_ns,
            bytes_sent,
            bytes_received,
            ..
        } = e
        else {
            unreachable!()
        };
        assert_eq!(
            *p, pid,
            "connecting pid is the test process, not softirq context"
        );
        let Some(took) = sources.get(src) else {
            panic!("{src} is not one of the clients' sockets");
        };
        distinct.insert(*src);
        // The kernel's interval (connect start to the SYN-ACK's arrival) lies
        // within the connect() call: a wrong clock or stamp would not.
        assert!(
            *duration_ns > 0 && u128::from(*duration_ns) <= took.as_nanos(),
            "the connect's duration, within the {took:?} its connect() took: {e:?}"
        );
        assert_eq!(
            (*bytes_sent, *bytes_received),
            (4, 0),
            "each client wrote 4 bytes and read none"
        );
        let applied = table.apply(e);
        let c = applied
            .connected
            .expect("a close never dumped is a connect");
        assert_eq!((c.pid, c.dst, c.duration_ns), (pid, addr, *duration_ns));
        connects += 1;
    }
    assert_eq!(distinct.len(), N, "one record per client socket");
    assert_eq!(connects, N);
    assert!(table.is_empty());
    // Accepted (inbound) sockets are never reported as connects.
    assert!(
        events.iter().all(
            |e| !matches!(e, Event::ConnectionClosed { src, .. } if src.port() == addr.port())
        )
    );
    let listens: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, Event::ListenOpen { .. }))
        .collect();
    assert_eq!(listens.len(), 1, "the listener shows: {listens:?}");
    assert!(matches!(listens[0], Event::ListenOpen { pid: p, .. } if *p == pid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connects_to_a_closed_port_fail_exactly() {
    if privileged("connects_to_a_closed_port_fail_exactly") {
        connects_fail(SockState::TpBtf).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connects_to_a_closed_port_fail_exactly_classic() {
    if privileged("connects_to_a_closed_port_fail_exactly_classic") {
        connects_fail(SockState::Classic).await;
    }
}

async fn connects_fail(program: SockState) {
    const M: usize = 20;
    let (_tracer, mut stream) = start_with(program);
    // A port nobody listens on: bind, read it, release it.
    let addr = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap();
    for _ in 0..M {
        let err = TcpStream::connect(addr).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    }
    let pid = me();
    let events = collect(
        &mut stream,
        |e| matches!(e, Event::ConnectOk { dst, .. } | Event::ConnectFailed { dst, .. } if *dst == addr),
        |ev| ev.len() >= M,
    )
    .await;
    assert_eq!(events.len(), M, "{events:?}");
    for e in &events {
        assert!(
            matches!(e, Event::ConnectFailed { pid: p, .. } if *p == pid),
            "{e:?}"
        );
    }
}

fn sizes(i: usize) -> (usize, usize) {
    (300_000 + i * 10_007, 100_000 + i * 3_001)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_connections_show_bytes_then_close_exactly() {
    if privileged("open_connections_show_bytes_then_close_exactly") {
        open_connection_bytes(SockState::TpBtf).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_connections_show_bytes_then_close_exactly_classic() {
    if privileged("open_connections_show_bytes_then_close_exactly_classic") {
        open_connection_bytes(SockState::Classic).await;
    }
}

async fn open_connection_bytes(program: SockState) {
    const K: usize = 5;
    let (tracer, mut stream) = start_with(program);
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    let server = thread::spawn(move || {
        let mut handles = Vec::new();
        for _ in 0..K {
            let (mut s, _) = listener.accept().unwrap();
            handles.push(thread::spawn(move || {
                let mut idx = [0u8; 1];
                s.read_exact(&mut idx).unwrap();
                let (w, r) = sizes(idx[0] as usize);
                let mut buf = vec![0u8; w - 1];
                s.read_exact(&mut buf).unwrap();
                s.write_all(&vec![7u8; r]).unwrap();
                // Hold until the client closes.
                let mut rest = Vec::new();
                s.read_to_end(&mut rest).unwrap();
            }));
        }
        for h in handles {
            h.join().unwrap();
        }
    });

    let mut clients = Vec::new();
    let mut expect = std::collections::HashMap::new();
    for i in 0..K {
        let mut c = TcpStream::connect(addr).unwrap();
        let (w, r) = sizes(i);
        let mut out = vec![1u8; w];
        out[0] = i as u8;
        c.write_all(&out).unwrap();
        let mut back = vec![0u8; r];
        c.read_exact(&mut back).unwrap();
        expect.insert(c.local_addr().unwrap(), (w as u64, r as u64));
        clients.push(c);
    }

    let pid = me();
    let cgroup = own_cgroup_v2_id();
    let mut table = ConnectionTable::new(1024);
    // The kernel's own segment counts around the dump (a delayed ACK may leave in between).
    let segs = |clients: &[TcpStream]| -> std::collections::HashMap<_, _> {
        use std::os::fd::AsRawFd;
        clients
            .iter()
            .map(|c| (c.local_addr().unwrap(), tcp_segments(c.as_raw_fd())))
            .collect()
    };
    let segs_before = segs(&clients);
    // Scrape time: the connections are still open, and the dump is how
    // userspace learns them (no record was written when they opened).
    let open: Vec<_> = tracer
        .open_connection_bytes()
        .unwrap()
        .into_iter()
        .filter(|c| c.dst == addr)
        .collect();
    let segs_after = segs(&clients);
    assert_eq!(open.len(), K, "{open:?}");
    for c in &open {
        assert_eq!(c.pid, pid);
        assert_eq!(c.cgroup_id, cgroup, "the connecting task's cgroup v2 id");
        let (before, after) = (segs_before[&c.src], segs_after[&c.src]);
        assert!(
            (before.0..=after.0).contains(&c.segs_out) && (before.1..=after.1).contains(&c.segs_in),
            "segments {:?} are the kernel's tcp_info counts {before:?}..{after:?}",
            (c.segs_out, c.segs_in)
        );
        assert!(c.duration_ns > 0, "the connect's duration: {c:?}");
        let (w, r) = expect[&c.src];
        let within = |got: u64, want: u64| (got as f64 - want as f64).abs() <= want as f64 * 0.01;
        assert!(
            within(c.bytes_sent, w),
            "sent {} vs written {w}",
            c.bytes_sent
        );
        assert!(
            within(c.bytes_received, r),
            "received {} vs read {r}",
            c.bytes_received
        );
    }
    let update = table.update_open(&open, std::time::Instant::now());
    assert_eq!(
        update.connected.len(),
        K,
        "each open connection is a connect"
    );
    assert!(
        update
            .connected
            .iter()
            .all(|c| c.pid == pid && c.dst == addr)
    );
    let deltas = update.bytes;
    assert_eq!(deltas.len(), K);
    let active: u64 = table
        .active()
        .iter()
        .filter(|((p, _, _, d), _)| *p == pid && *d == addr)
        .map(|(_, n)| n)
        .sum();
    assert_eq!(active, K as u64, "active connections while held open");

    for c in &clients {
        c.shutdown(Shutdown::Both).unwrap();
    }
    drop(clients);
    server.join().unwrap();

    let closed = collect(
        &mut stream,
        |e| matches!(e, Event::ConnectionClosed { dst, .. } if *dst == addr),
        |ev| ev.len() >= K,
    )
    .await;
    assert_eq!(closed.len(), K);
    // Scrape-time deltas plus close-time deltas add up to the exact totals.
    let mut counted = deltas
        .iter()
        .fold((0u64, 0u64), |acc, d| (acc.0 + d.sent, acc.1 + d.received));
    for e in &closed {
        let Event::ConnectionClosed {
            pid: p,
            src,
            bytes_sent,
            bytes_received,
            cgroup_id,
            segs_out,
            segs_in,
            ..
        } = e
        else {
            unreachable!()
        };
        assert_eq!(*p, pid);
        assert_eq!(*cgroup_id, cgroup);
        // At least what tcp_info showed while open, plus the close's few (FIN, ACKs).
        let (out0, in0) = segs_after[src];
        assert!(
            (out0..=out0 + 3).contains(segs_out) && (in0..=in0 + 3).contains(segs_in),
            "segments at close {:?} vs {:?} while open",
            (segs_out, segs_in),
            (out0, in0)
        );
        let Some(&(w, r)) = expect.get(src) else {
            panic!("close of {src} ({e:?}) is one of the clients' sockets {expect:?}")
        };
        assert_eq!(
            (*bytes_sent, *bytes_received),
            (w, r),
            "exact totals at close for {src}"
        );
        let applied = table.apply(e);
        assert_eq!(applied.connected, None, "counted once, by the dump");
        let d = applied.bytes.unwrap();
        counted = (counted.0 + d.sent, counted.1 + d.received);
    }
    let want = expect
        .values()
        .fold((0u64, 0u64), |acc, (w, r)| (acc.0 + w, acc.1 + r));
    assert_eq!(counted, want, "every byte counted exactly once");
    assert!(table.active().is_empty(), "active = 0 after close");
}
