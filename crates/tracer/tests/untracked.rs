//! Privileged: a connect whose start the kernel side never saw is still
//! reported (pid 0) and counted in `tcp_untracked`, never silently dropped.
#![allow(clippy::unwrap_used)]

#[path = "support/privileged.rs"]
mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::FromRawFd;

use sonde_tracer::conntrack::ConnectionTable;
use sonde_tracer::{Event, LOST_TCP_UNTRACKED};
use support::{collect, privileged, start};

/// A loopback listener whose accept queue holds a single connection.
fn listener_backlog_0() -> TcpListener {
    // SAFETY: plain socket syscalls on a fresh fd owned by the returned listener.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        let listener = TcpListener::from_raw_fd(fd);
        let mut sa: libc::sockaddr_in = std::mem::zeroed();
        sa.sin_family = libc::AF_INET as libc::sa_family_t;
        sa.sin_addr.s_addr = u32::from(Ipv4Addr::LOCALHOST).to_be();
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        assert_eq!(libc::bind(fd, (&raw const sa).cast(), len), 0);
        assert_eq!(libc::listen(fd, 0), 0);
        listener
    }
}

/// Starts a non-blocking connect and returns the socket (in SYN_SENT).
fn connect_nonblocking(to: SocketAddr) -> TcpStream {
    let SocketAddr::V4(to) = to else {
        panic!("v4 only")
    };
    // SAFETY: plain socket syscalls on a fresh fd owned by the returned stream.
    unsafe {
        let fd = libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        );
        assert!(fd >= 0);
        let stream = TcpStream::from_raw_fd(fd);
        let mut sa: libc::sockaddr_in = std::mem::zeroed();
        sa.sin_family = libc::AF_INET as libc::sa_family_t;
        sa.sin_addr.s_addr = u32::from(*to.ip()).to_be();
        sa.sin_port = to.port().to_be();
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let r = libc::connect(fd, (&raw const sa).cast(), len);
        assert!(
            r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EINPROGRESS)
        );
        stream
    }
}

/// A connect stuck in SYN_SENT: `first` fills the backlog-0 listener's accept
/// queue, so the kernel drops `second`'s SYN, which retransmits (after ~1 s).
struct StuckConnect {
    listener: TcpListener,
    first: TcpStream,
    second: TcpStream,
}

impl StuckConnect {
    fn new() -> StuckConnect {
        let listener = listener_backlog_0();
        let addr = listener.local_addr().unwrap();
        let first = TcpStream::connect(addr).unwrap();
        let second = connect_nonblocking(addr);
        StuckConnect {
            listener,
            first,
            second,
        }
    }

    /// Frees the queue and waits for the retransmitted SYN to be accepted:
    /// returns the client socket, now established, and the server's.
    async fn complete(self) -> (TcpStream, TcpStream) {
        let (a, _) = self.listener.accept().unwrap();
        drop(a);
        drop(self.first);
        let listener = self.listener;
        // Liveness bound only (the SYN is retransmitted after ~1 s, then 3 s...).
        let accept = tokio::task::spawn_blocking(move || listener.accept().unwrap());
        let (b, _) = tokio::time::timeout(std::time::Duration::from_secs(30), accept)
            .await
            .expect("the retransmitted SYN was never accepted")
            .unwrap();
        self.second.set_nonblocking(false).unwrap();
        (self.second, b)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_started_before_the_tracer_is_still_counted() {
    if !privileged("connect_started_before_the_tracer_is_still_counted") {
        return;
    }
    let stuck = StuckConnect::new();
    let addr = stuck.listener.local_addr().unwrap();
    let second_port = stuck.second.local_addr().unwrap().port();

    // Attached now: CLOSE -> SYN_SENT of `second` happened before, unseen.
    let (tracer, mut stream) = start();
    let untracked_before = untracked(&tracer);
    let (mut second, mut b) = stuck.complete().await;
    second.write_all(b"ping").unwrap();
    drop(second);
    let mut buf = Vec::new();
    b.read_to_end(&mut buf).unwrap();
    assert_eq!(buf, b"ping");
    drop(b);

    let events = collect(
        &mut stream,
        |e| match e {
            Event::ConnectOk { src, dst, .. }
            | Event::ConnectFailed { src, dst, .. }
            | Event::ConnectionClosed { src, dst, .. } => *dst == addr && src.port() == second_port,
            _ => false,
        },
        |ev| {
            ev.iter()
                .any(|e| matches!(e, Event::ConnectionClosed { .. }))
        },
    )
    .await;
    assert!(
        !events.iter().any(|e| matches!(e, Event::ConnectOk { .. })),
        "kept in the kernel's map like any connection, so no ConnectOk: {events:?}"
    );
    let closed: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, Event::ConnectionClosed { .. }))
        .collect();
    assert_eq!(
        closed.len(),
        1,
        "the connection is reported once: {events:?}"
    );
    assert!(
        matches!(
            closed[0],
            Event::ConnectionClosed { pid: 0, duration_ns: 0, bytes_sent: 4, netns, .. } if *netns != 0
        ),
        "unknown pid and duration, known netns, its bytes still tracked: {events:?}"
    );
    // Never dumped, so its close is its connect.
    let applied = ConnectionTable::new(16).apply(closed[0]);
    assert!(
        matches!(applied.connected, Some(c) if c.pid == 0 && c.duration_ns == 0 && c.dst == addr),
        "{applied:?}"
    );
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::ConnectFailed { .. })),
        "{events:?}"
    );
    assert!(
        untracked(&tracer) > untracked_before,
        "the lost attribution is counted in {LOST_TCP_UNTRACKED}"
    );
}

fn untracked(tracer: &sonde_tracer::Tracer) -> u64 {
    tracer
        .lost_events()
        .into_iter()
        .find(|(name, _)| *name == LOST_TCP_UNTRACKED)
        .map(|(_, n)| n)
        .unwrap()
}

/// The kernel skipped a connection's SYN_SENT -> ESTABLISHED run (here: the
/// program is detached for it; in production a nested run on the same CPU):
/// its entry stays "connecting", and the scrape-time scan completes it from
/// the socket, so the dump still reports the open connection (pid known from
/// the connect's start, duration 0: unknown), counted once with its close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missed_establish_is_completed_by_the_scrape_time_scan() {
    if !privileged("a_missed_establish_is_completed_by_the_scrape_time_scan") {
        return;
    }
    let (mut tracer, mut stream) = support::start_with(support::SockState::TpBtf);
    // Its SYN_SENT is seen; the program is detached before the SYN retransmit.
    let stuck = StuckConnect::new();
    let addr = stuck.listener.local_addr().unwrap();
    let second_port = stuck.second.local_addr().unwrap().port();
    tracer.set_tcp_state_tracing(false).unwrap();
    let (mut second, mut b) = stuck.complete().await;
    // Established while the program was detached.
    tracer.set_tcp_state_tracing(true).unwrap();

    let open: Vec<_> = tracer
        .open_connection_bytes()
        .unwrap()
        .into_iter()
        .filter(|c| c.dst == addr && c.src.port() == second_port)
        .collect();
    assert_eq!(open.len(), 1, "reported open despite the missed run");
    assert_eq!(
        open[0].pid,
        std::process::id(),
        "pid from the connect's start"
    );
    assert_eq!(open[0].duration_ns, 0, "duration unknown");
    let mut table = ConnectionTable::new(16);
    let update = table.update_open(&open, std::time::Instant::now());
    assert_eq!(update.connected.len(), 1);

    second.write_all(b"ping").unwrap();
    drop(second);
    let mut buf = Vec::new();
    b.read_to_end(&mut buf).unwrap();
    drop(b);
    let closed = collect(
        &mut stream,
        |e| matches!(e, Event::ConnectionClosed { dst, src, .. } if *dst == addr && src.port() == second_port),
        |ev| !ev.is_empty(),
    )
    .await;
    assert_eq!(closed.len(), 1, "{closed:?}");
    let applied = table.apply(&closed[0]);
    assert_eq!(applied.connected, None, "counted once, by the dump");
    assert_eq!(applied.bytes.map(|d| d.sent), Some(4));
}

/// Waits (liveness bound 5 s) until the loopback socket with local port `port`
/// has left the connection: gone from /proc/net/tcp or in TIME_WAIT (06),
/// whose full socket the kernel has already closed.
fn wait_socket_closed(port: u16) {
    let needle = format!("0100007F:{port:04X} ");
    for _ in 0..500 {
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
        let open = table.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && format!("{} ", f[1]) == needle && f[3] != "06"
        });
        if !open {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("socket on port {port} still open after 5 s");
}

/// The kernel skipped a connection's final `-> CLOSE` run (here: the program
/// is detached for it; in production a nested run on the same CPU), so no
/// close record comes: the scrape-time scan sees the socket closed and drops
/// its entry, so the connection does not show as open (without the scan it
/// would stay in every dump until the LRU evicted it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missed_close_is_dropped_by_the_scrape_time_scan() {
    if !privileged("a_missed_close_is_dropped_by_the_scrape_time_scan") {
        return;
    }
    let (mut tracer, _stream) = support::start_with(support::SockState::TpBtf);
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    let client = TcpStream::connect(addr).unwrap();
    let port = client.local_addr().unwrap().port();
    let (server, _) = listener.accept().unwrap();
    let open = |tracer: &sonde_tracer::Tracer| {
        tracer
            .open_connection_bytes()
            .unwrap()
            .into_iter()
            .filter(|c| c.dst == addr && c.src.port() == port)
            .count()
    };
    assert_eq!(open(&tracer), 1, "the connection is open");

    tracer.set_tcp_state_tracing(false).unwrap();
    drop(client);
    drop(server);
    wait_socket_closed(port);
    tracer.set_tcp_state_tracing(true).unwrap();
    assert_eq!(open(&tracer), 0, "its close was missed, its end is not");

    // A connection open across the scan is kept.
    let client = TcpStream::connect(addr).unwrap();
    let (_server, _) = listener.accept().unwrap();
    let port2 = client.local_addr().unwrap().port();
    for _ in 0..3 {
        let still = tracer
            .open_connection_bytes()
            .unwrap()
            .into_iter()
            .filter(|c| c.dst == addr && c.src.port() == port2)
            .count();
        assert_eq!(still, 1, "an open connection stays");
    }
}
