//! The eBPF tracer end to end, through the real agent: TCP connects, failures, open and closed
//! connections' bytes, listeners and retransmits of a process inside a test cgroup, all read
//! from /metrics with exact counts. OOM kills and restarts of real Docker containers are in
//! agent_oom_restarts.rs.
//!
//! The TCP client is this test binary itself, re-run as a helper process (the ignored test
//! `tcp_helper`, selected by `SONDE_TCP_HELPER=1`): it is moved into the test cgroup before the
//! agent starts and before it opens any socket, then driven by one-line commands on stdin. Every
//! assertion is filtered to the test's own cgroup and ports (other processes on the machine open
//! connections too), and every server port is outside the ephemeral range (32768-60999 by
//! default), which the agent never counts as a destination or listener.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use sonde_integration_tests::cgroups::TestCgroup;
use sonde_integration_tests::{Agent, free_port_outside_ephemeral, privileged, val};

const TIMEOUT: Duration = Duration::from_secs(60);
const HELPER_ENV: &str = "SONDE_TCP_HELPER";

// ---------------------------------------------------------------------------------------------
// Small utilities.

/// A pseudo-random number (no rand crate here): time, pid and a counter mixed.
fn random_u64() -> u64 {
    use std::sync::atomic::AtomicU64;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut x = nanos
        ^ (u64::from(std::process::id()) << 32)
        ^ COUNTER
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    // splitmix64 finaliser.
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The test cgroup `/system.slice/sonde-<kind>-<pid>.service` (a systemd-service-shaped path,
/// exported under that container_id).
fn service_cgroup(kind: &str) -> TestCgroup {
    let path = format!("/system.slice/sonde-{kind}-{}.service", std::process::id());
    TestCgroup::create(&path).unwrap_or_else(|e| panic!("create cgroup {path}: {e}"))
}

/// The sizes one held-open connection writes (after its 8-byte header) and reads.
fn held_sizes(i: u32) -> (u32, u32) {
    (300_000 + i * 10_007, 100_000 + i * 3_001)
}

// ---------------------------------------------------------------------------------------------
// The helper process: a TCP client and loopback server driven over stdin.

/// Runs only as the helper process (`SONDE_TCP_HELPER=1`); a no-op otherwise.
///
/// Commands, one per line; each answers one line starting with `@@ ` on stdout:
/// - `listen <port>`: serve on 127.0.0.1:<port> (see [`serve_connection`]) -> `@@ ok`
/// - `unlisten`: close that listener -> `@@ ok`
/// - `connect <n> <port>`: n connections each sending an empty request (8-byte header), then
///   reading to EOF -> `@@ ok <bytes sent> <bytes received>`
/// - `refused <m> <port>`: m connects to a closed port -> `@@ ok <refused count>`
/// - `hold <k> <port>`: k connections that exchange [`held_sizes`] and stay open ->
///   `@@ ok <bytes sent> <bytes received>`
/// - `close`: closes the held connections -> `@@ ok`
/// - `send <addr> <bytes>`: one connection writing `bytes` raw bytes, then reading to EOF ->
///   `@@ ok <bytes sent> <bytes received>`
#[test]
#[ignore = "helper process of the other tests, run by them with SONDE_TCP_HELPER=1"]
fn tcp_helper() {
    if std::env::var(HELPER_ENV).as_deref() != Ok("1") {
        return;
    }
    let mut listener: Option<(Arc<AtomicBool>, thread::JoinHandle<()>)> = None;
    let mut held: Vec<TcpStream> = Vec::new();
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let line = line.unwrap();
        let words: Vec<&str> = line.split_whitespace().collect();
        let reply = match words.as_slice() {
            ["listen", port] => {
                let l =
                    TcpListener::bind((Ipv4Addr::LOCALHOST, port.parse::<u16>().unwrap())).unwrap();
                l.set_nonblocking(true).unwrap();
                let stop = Arc::new(AtomicBool::new(false));
                let stop2 = stop.clone();
                let handle = thread::spawn(move || {
                    while !stop2.load(Ordering::Relaxed) {
                        match l.accept() {
                            Ok((s, _)) => {
                                s.set_nonblocking(false).unwrap();
                                thread::spawn(move || serve_connection(s));
                            }
                            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                                thread::sleep(Duration::from_millis(2));
                            }
                            Err(e) => panic!("accept: {e}"),
                        }
                    }
                });
                listener = Some((stop, handle));
                "ok".to_owned()
            }
            ["unlisten"] => {
                if let Some((stop, handle)) = listener.take() {
                    stop.store(true, Ordering::Relaxed);
                    handle.join().unwrap();
                }
                "ok".to_owned()
            }
            ["connect", n, port] => {
                let port: u16 = port.parse().unwrap();
                let (mut sent, mut received) = (0u64, 0u64);
                for _ in 0..n.parse::<u32>().unwrap() {
                    let mut c = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
                    c.write_all(&header(0, 0)).unwrap();
                    sent += 8;
                    c.shutdown(Shutdown::Write).unwrap();
                    let mut buf = Vec::new();
                    c.read_to_end(&mut buf).unwrap();
                    received += buf.len() as u64;
                }
                format!("ok {sent} {received}")
            }
            ["refused", m, port] => {
                let port: u16 = port.parse().unwrap();
                let refused = (0..m.parse::<u32>().unwrap())
                    .filter(|_| {
                        matches!(
                            TcpStream::connect((Ipv4Addr::LOCALHOST, port)),
                            Err(e) if e.kind() == ErrorKind::ConnectionRefused
                        )
                    })
                    .count();
                format!("ok {refused}")
            }
            ["hold", k, port] => {
                let port: u16 = port.parse().unwrap();
                let (mut sent, mut received) = (0u64, 0u64);
                for i in 0..k.parse::<u32>().unwrap() {
                    let (w, r) = held_sizes(i);
                    let mut c = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
                    c.write_all(&header(w, r)).unwrap();
                    c.write_all(&vec![0x42; w as usize]).unwrap();
                    let mut back = vec![0u8; r as usize];
                    c.read_exact(&mut back).unwrap();
                    sent += 8 + u64::from(w);
                    received += u64::from(r);
                    held.push(c);
                }
                format!("ok {sent} {received}")
            }
            ["close"] => {
                for c in held.drain(..) {
                    c.shutdown(Shutdown::Both).unwrap();
                }
                "ok".to_owned()
            }
            ["send", addr, bytes] => {
                let addr: SocketAddr = addr.parse().unwrap();
                let bytes: usize = bytes.parse().unwrap();
                let mut c = TcpStream::connect_timeout(&addr, Duration::from_secs(60)).unwrap();
                c.write_all(&vec![0x5a; bytes]).unwrap();
                c.shutdown(Shutdown::Write).unwrap();
                let mut buf = Vec::new();
                c.read_to_end(&mut buf).unwrap();
                format!("ok {bytes} {}", buf.len())
            }
            other => format!("err unknown command {other:?}"),
        };
        println!("@@ {reply}");
        std::io::stdout().flush().unwrap();
    }
}

fn header(write: u32, read: u32) -> [u8; 8] {
    let mut h = [0u8; 8];
    h[..4].copy_from_slice(&write.to_le_bytes());
    h[4..].copy_from_slice(&read.to_le_bytes());
    h
}

/// Server side of one connection: reads the 8-byte header (how many bytes the client sends,
/// how many it wants back), reads those, answers, then holds until the client closes.
fn serve_connection(mut s: TcpStream) {
    let mut h = [0u8; 8];
    if s.read_exact(&mut h).is_err() {
        return;
    }
    let w = u32::from_le_bytes(h[..4].try_into().unwrap()) as usize;
    let r = u32::from_le_bytes(h[4..].try_into().unwrap()) as usize;
    let mut buf = vec![0u8; w];
    if s.read_exact(&mut buf).is_err() {
        return;
    }
    if s.write_all(&vec![7u8; r]).is_err() {
        return;
    }
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
}

/// The driving side of a helper process.
struct Helper {
    pid: u32,
    stdin: ChildStdin,
    replies: mpsc::Receiver<String>,
}

impl Helper {
    /// Starts the helper and moves it into `cg` before it does anything (it waits for its first
    /// command). The cgroup kills it on drop.
    fn start_in(cg: &mut TestCgroup) -> Helper {
        let exe = std::env::current_exe().unwrap();
        let mut child = Command::new(exe)
            .args([
                "--exact",
                "tcp_helper",
                "--ignored",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(HELPER_ENV, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        cg.add_pid(pid).unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        cg.own(child);
        let (tx, replies) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                // libtest may print "test tcp_helper ... " on the same line before a reply.
                if let Some((_, reply)) = line.split_once("@@ ")
                    && tx.send(reply.to_owned()).is_err()
                {
                    return;
                }
            }
        });
        Helper {
            pid,
            stdin,
            replies,
        }
    }

    /// Sends a command; returns the words after `ok`.
    fn cmd(&mut self, line: &str) -> Vec<u64> {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
        let reply = self
            .replies
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|e| panic!("helper {}: no answer to {line:?}: {e}", self.pid));
        let rest = reply
            .strip_prefix("ok")
            .unwrap_or_else(|| panic!("helper: {line:?} -> {reply:?}"));
        rest.split_whitespace()
            .map(|w| w.parse().unwrap())
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// TCP on loopback.

#[test]
fn tcp_connects_failures_bytes_and_listeners_are_exact() {
    let test = "tcp_connects_failures_bytes_and_listeners_are_exact";
    if !privileged(test) {
        return;
    }
    const N: u64 = 50;
    const M: u64 = 20;
    const K: u64 = 5;
    let mut cg = service_cgroup("tcp");
    let id = cg.path.clone();
    // Started (and moved into its cgroup) before the agent: the agent's first /proc scan finds
    // it there, so no event of it can be attributed before the move.
    let mut helper = Helper::start_in(&mut cg);
    let agent = Agent::start(&["--min-container-age", "0s"]);
    agent.wait_tracer_up(TIMEOUT);

    let short_port = free_port_outside_ephemeral();
    let held_port = free_port_outside_ephemeral();
    let closed_port = free_port_outside_ephemeral();
    let short = format!("127.0.0.1:{short_port}");
    let held = format!("127.0.0.1:{held_port}");
    let closed = format!("127.0.0.1:{closed_port}");
    helper.cmd(&format!("listen {short_port}"));
    let s = agent.scrape_until("the listener", TIMEOUT, |s| {
        s.has(
            "container_net_tcp_listen_info",
            &[("container_id", &id), ("listen_addr", &short)],
        )
    });
    assert_eq!(
        s.value(
            "container_net_tcp_listen_info",
            &[
                ("container_id", &id),
                ("listen_addr", &short),
                ("proxy", "")
            ]
        ),
        Some(1.0),
        "{}",
        s.text
    );

    // N short connections, then M refused ones: the refusals come after in the event stream,
    // so once all M are seen the N are complete and must be exactly N.
    let short_bytes = helper.cmd(&format!("connect {N} {short_port}"));
    assert_eq!(short_bytes, vec![N * 8, 0]);
    let refused = helper.cmd(&format!("refused {M} {closed_port}"));
    assert_eq!(refused, vec![M], "every connect to {closed} refused");
    let to_short: &[(&str, &str)] = &[("container_id", &id), ("destination", &short)];
    let to_closed: &[(&str, &str)] = &[("container_id", &id), ("destination", &closed)];
    let s = agent.scrape_until("the failed connects", TIMEOUT, |s| {
        val(s, "container_net_tcp_failed_connects_total", to_closed) >= M as f64
            && val(s, "container_net_tcp_bytes_sent_total", to_short) >= (N * 8) as f64
    });
    assert_eq!(
        val(&s, "container_net_tcp_successful_connects_total", to_short),
        N as f64,
        "{}",
        s.text
    );
    assert_eq!(
        s.value(
            "container_net_tcp_successful_connects_total",
            &[
                ("container_id", &id),
                ("destination", &short),
                ("actual_destination", &short),
                ("app_id", "")
            ]
        ),
        Some(N as f64)
    );
    assert_eq!(
        val(&s, "container_net_tcp_failed_connects_total", to_closed),
        M as f64
    );
    assert_eq!(
        val(&s, "container_net_tcp_successful_connects_total", to_closed),
        0.0,
        "a refused connect is no success"
    );
    assert_eq!(
        val(&s, "container_net_tcp_failed_connects_total", to_short),
        0.0
    );
    let connect_time = val(
        &s,
        "container_net_tcp_connection_time_seconds_total",
        to_short,
    );
    assert!(
        connect_time > 0.0 && connect_time < N as f64,
        "connection time {connect_time}"
    );
    assert_eq!(
        val(&s, "container_net_tcp_bytes_sent_total", to_short),
        (N * 8) as f64,
        "each short connection sent an 8-byte header"
    );
    assert_eq!(
        val(&s, "container_net_tcp_bytes_received_total", to_short),
        0.0
    );
    let s = agent.scrape_until("the short connections closed", TIMEOUT, |s| {
        s.value("container_net_tcp_active_connections", to_short) == Some(0.0)
    });
    assert_eq!(
        val(&s, "container_net_tcp_successful_connects_total", to_short),
        N as f64,
        "still exact a scrape later"
    );
    // The accepted (inbound) side is never an outbound connection of the server: nothing of
    // this container goes to an ephemeral port, and only the three test destinations show.
    for sample in s.find(
        "container_net_tcp_successful_connects_total",
        &[("container_id", &id)],
    ) {
        assert!(
            sample.labels["destination"] == short || sample.labels["destination"] == held,
            "unexpected destination {sample:?}"
        );
    }

    // K connections held open: active = K and bytes of still-open connections at scrape time.
    helper.cmd(&format!("listen {held_port}"));
    // Listeners come through the ring (drained every 100 ms), open connections through the
    // scrape-time dump: wait for the listener, or the held connections may be seen first.
    agent.scrape_until("the second listener", TIMEOUT, |s| {
        s.has(
            "container_net_tcp_listen_info",
            &[("container_id", &id), ("listen_addr", &held)],
        )
    });
    let held_bytes = helper.cmd(&format!("hold {K} {held_port}"));
    let (sent, received) = (held_bytes[0] as f64, held_bytes[1] as f64);
    let to_held: &[(&str, &str)] = &[("container_id", &id), ("destination", &held)];
    let within = |got: f64, want: f64| (got - want).abs() <= want * 0.01;
    let s = agent.scrape_until("the held connections and their bytes", TIMEOUT, |s| {
        val(s, "container_net_tcp_active_connections", to_held) == K as f64
            && within(val(s, "container_net_tcp_bytes_sent_total", to_held), sent)
            && within(
                val(s, "container_net_tcp_bytes_received_total", to_held),
                received,
            )
    });
    assert_eq!(
        val(&s, "container_net_tcp_successful_connects_total", to_held),
        K as f64
    );
    eprintln!(
        "open connections at scrape: sent {} of {sent}, received {} of {received}",
        val(&s, "container_net_tcp_bytes_sent_total", to_held),
        val(&s, "container_net_tcp_bytes_received_total", to_held)
    );

    // Closed: active = 0 and the bytes exact (scrape-time deltas plus close-time remainders).
    helper.cmd("close");
    let s = agent.scrape_until("the held connections closed", TIMEOUT, |s| {
        s.value("container_net_tcp_active_connections", to_held) == Some(0.0)
    });
    let s = if val(&s, "container_net_tcp_bytes_sent_total", to_held) < sent {
        agent.scrape_until("the close-time bytes", TIMEOUT, |s| {
            val(s, "container_net_tcp_bytes_sent_total", to_held) >= sent
        })
    } else {
        s
    };
    assert_eq!(
        val(&s, "container_net_tcp_bytes_sent_total", to_held),
        sent,
        "{}",
        s.text
    );
    assert_eq!(
        val(&s, "container_net_tcp_bytes_received_total", to_held),
        received,
        "{}",
        s.text
    );
    assert_eq!(
        val(&s, "container_net_tcp_successful_connects_total", to_held),
        K as f64
    );
    assert_eq!(
        s.value(
            "container_net_tcp_listen_info",
            &[("container_id", &id), ("listen_addr", &held)]
        ),
        Some(1.0),
        "{}",
        s.text
    );

    // A closed listener stays a while as "recently closed" (0).
    helper.cmd("unlisten");
    let s = agent.scrape_until("the listener closed", TIMEOUT, |s| {
        s.value(
            "container_net_tcp_listen_info",
            &[("container_id", &id), ("listen_addr", &held)],
        ) == Some(0.0)
    });
    assert_eq!(
        s.value(
            "container_net_tcp_listen_info",
            &[("container_id", &id), ("listen_addr", &short)]
        ),
        Some(1.0),
        "the other listener is still open"
    );
    // No event lost by any program. `tcp_untracked` is not a loss of events but of a connect's
    // start: the other tests of this file run at the same time, and a connect of theirs that
    // began before this agent started counts there (with pid 0, so it cannot reach this
    // container). This test's own connects are checked exactly above, pid included.
    for (program, lost) in s
        .find("sonde_ebpf_events_lost_total", &[])
        .map(|x| (x.labels.get("program").cloned(), x.value))
        .filter(|(program, _)| program.as_deref() != Some("tcp_untracked"))
    {
        assert_eq!(lost, 0.0, "events lost by {program:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Retransmits through a lossy link into a network namespace of our own.

fn sh(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", cmd])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A netns with a veth pair to the host; deleted (with the pair and its iptables rule) on drop,
/// also when the test panics.
struct LossyNetns {
    name: String,
    host_if: String,
    host_ip: String,
    ns_ip: Ipv4Addr,
}

impl LossyNetns {
    /// A /30 in 10.213.<n>.0 with the host at .1 and the namespace at .2, dropping 30% of the
    /// packets to `port` inside the namespace.
    fn create(port: u16) -> LossyNetns {
        let n = (random_u64() % 250 + 1) as u8;
        let tag = format!("{}{n}", std::process::id() % 10_000);
        let ns = LossyNetns {
            name: format!("sonde-tr-{tag}"),
            host_if: format!("str{tag}h"),
            host_ip: format!("10.213.{n}.1"),
            ns_ip: Ipv4Addr::new(10, 213, n, 2),
        };
        let (name, host_if, ns_if) = (&ns.name, &ns.host_if, format!("str{tag}n"));
        for cmd in [
            format!("ip netns add {name}"),
            format!("ip link add {host_if} type veth peer name {ns_if} netns {name}"),
            format!("ip addr add {}/30 dev {host_if}", ns.host_ip),
            format!("ip link set {host_if} up"),
            format!("ip -n {name} addr add {}/30 dev {ns_if}", ns.ns_ip),
            format!("ip -n {name} link set {ns_if} up"),
            format!("ip -n {name} link set lo up"),
            format!(
                "ip netns exec {name} iptables -I INPUT -p tcp --dport {port} -m statistic --mode random --probability 0.3 -j DROP"
            ),
        ] {
            assert!(sh(&cmd), "network setup failed: {cmd}");
        }
        ns
    }
}

impl Drop for LossyNetns {
    fn drop(&mut self) {
        sh(&format!("ip link del {}", self.host_if));
        sh(&format!("ip netns del {}", self.name));
    }
}

#[test]
fn retransmits_are_counted_and_bytes_sent_once() {
    let test = "retransmits_are_counted_and_bytes_sent_once";
    if !privileged(test) {
        return;
    }
    for (tool, package) in [("ip", "iproute2"), ("iptables", "iptables")] {
        if sonde_integration_tests::tools::require(test, tool, package).is_none() {
            return;
        }
    }
    const SIZE: u64 = 2 << 20;
    let port = 20_000 + (random_u64() % 12_000) as u16;
    let net = LossyNetns::create(port);
    let dst = SocketAddr::from((net.ns_ip, port));

    // The server: a thread of this process that joined the namespace (setns moves only it).
    let ns_path = format!("/var/run/netns/{}", net.name);
    let (ready_tx, ready_rx) = mpsc::channel();
    let server = thread::spawn(move || {
        let f = std::fs::File::open(&ns_path).unwrap();
        // SAFETY: a valid netns fd; CLONE_NEWNET affects only the calling thread.
        assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
        let l = TcpListener::bind(dst).unwrap();
        ready_tx.send(()).unwrap();
        let (mut s, _) = l.accept().unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).unwrap();
        buf.len() as u64
    });
    ready_rx.recv().unwrap();

    let mut cg = service_cgroup("retrans");
    let id = cg.path.clone();
    let mut helper = Helper::start_in(&mut cg);
    let agent = Agent::start(&["--min-container-age", "0s"]);
    agent.wait_tracer_up(TIMEOUT);
    let sent = helper.cmd(&format!("send {dst} {SIZE}"));
    assert_eq!(sent, vec![SIZE, 0]);
    assert_eq!(server.join().unwrap(), SIZE, "the server got everything");

    let dst_label = dst.to_string();
    let to_ns: &[(&str, &str)] = &[("container_id", &id), ("destination", &dst_label)];
    let s = agent.scrape_until("the closed connection's bytes", TIMEOUT, |s| {
        val(s, "container_net_tcp_bytes_sent_total", to_ns) >= SIZE as f64
            && s.value("container_net_tcp_active_connections", to_ns) == Some(0.0)
    });
    let retransmits = val(&s, "container_net_tcp_retransmits_total", to_ns);
    eprintln!("retransmits of {SIZE} bytes through 30% drop: {retransmits}");
    assert!(retransmits > 0.0, "{}", s.text);
    assert_eq!(
        val(&s, "container_net_tcp_bytes_sent_total", to_ns),
        SIZE as f64,
        "payload counted once despite the retransmissions"
    );
    assert_eq!(
        val(&s, "container_net_tcp_bytes_received_total", to_ns),
        0.0
    );
    assert_eq!(
        val(&s, "container_net_tcp_successful_connects_total", to_ns),
        1.0
    );
    assert!(
        s.has(
            "container_net_tcp_retransmits_total",
            &[
                ("container_id", &id),
                ("destination", &dst_label),
                ("actual_destination", &dst_label),
                ("app_id", "")
            ]
        ),
        "{}",
        s.text
    );
    drop(net);
}
