//! Privileged tests against the real kernel's conntrack: a network namespace of the test's own
//! with DNAT rules in its nat OUTPUT chain (iptables and ip6tables), real TCP connections
//! through them on loopback, and the resolver running in that namespace. Each test checks
//! exact counts: every connection resolved to the real upstream, every untranslated one not.
//!
//! Root is needed (a netns, iptables, ctnetlink); without it they print why they skip, and
//! with SONDE_REQUIRE_PRIVILEGED=1 a skip is a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use sonde_nat::{Nat, NatConfig};

const DIALLED: u16 = 18_081;
const UPSTREAM: u16 = 18_082;

fn privileged(test: &str) -> bool {
    sonde_testsupport::require_root(test, "a network namespace, iptables nat rules, ctnetlink")
}

fn run(cmd: &[&str]) {
    let out = Command::new(cmd[0]).args(&cmd[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace with loopback up and DNAT rules: tcp to 127.0.0.1:DIALLED and
/// [::1]:DIALLED goes to UPSTREAM. Deleted on drop.
struct TestNetns {
    name: String,
}

impl TestNetns {
    fn create(tag: &str) -> TestNetns {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "sonde-nat-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        run(&["ip", "netns", "add", &name]);
        let ns = TestNetns { name };
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        let dialled = DIALLED.to_string();
        ns.exec(&[
            "iptables",
            "-t",
            "nat",
            "-A",
            "OUTPUT",
            "-p",
            "tcp",
            "-d",
            "127.0.0.1",
            "--dport",
            &dialled,
            "-j",
            "DNAT",
            "--to-destination",
            &format!("127.0.0.1:{UPSTREAM}"),
        ]);
        ns.exec(&[
            "ip6tables",
            "-t",
            "nat",
            "-A",
            "OUTPUT",
            "-p",
            "tcp",
            "-d",
            "::1",
            "--dport",
            &dialled,
            "-j",
            "DNAT",
            "--to-destination",
            &format!("[::1]:{UPSTREAM}"),
        ]);
        ns
    }

    fn exec(&self, cmd: &[&str]) {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(cmd);
        run(&full);
    }

    /// Runs `f` on a thread inside the namespace (sockets it opens, and the resolver's, live
    /// there).
    fn within<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/var/run/netns/{}", self.name);
        thread::scope(|s| {
            s.spawn(|| {
                let file = File::open(&path).unwrap();
                // SAFETY: setns on a valid fd; it changes only this thread's namespace.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .unwrap()
        })
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .status();
    }
}

/// Accepts and answers "ok" to every connection on `addr`, until the process ends (the
/// listener lives in the namespace it was opened in).
fn serve(addr: SocketAddr) {
    let l = TcpListener::bind(addr).unwrap();
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let _ = s.write_all(b"ok");
        }
    });
}

/// One connection to `dst`; returns its local address and keeps it open.
fn dial(dst: SocketAddr) -> (SocketAddr, TcpStream) {
    let mut c = TcpStream::connect_timeout(&dst, Duration::from_secs(10)).unwrap();
    let mut two = [0u8; 2];
    c.read_exact(&mut two).unwrap();
    assert_eq!(&two, b"ok");
    (c.local_addr().unwrap(), c)
}

fn v4(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

fn v6(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv6Addr::LOCALHOST, port))
}

#[test]
fn every_dnat_connection_resolves_to_the_real_upstream() {
    if !privileged("every_dnat_connection_resolves_to_the_real_upstream") {
        return;
    }
    const N: usize = 40;
    let ns = TestNetns::create("events");
    ns.within(|| {
        serve(v4(UPSTREAM));
        serve(v6(UPSTREAM));
        let nat = Nat::start(NatConfig::default()).expect("conntrack works here");
        let mut open = Vec::new();
        for i in 0..N {
            for (dialled, upstream) in [(v4(DIALLED), v4(UPSTREAM)), (v6(DIALLED), v6(UPSTREAM))] {
                let (local, conn) = dial(dialled);
                // Right after the connect, as the tracer bridge asks at a connect or close.
                assert_eq!(
                    nat.actual_destination(local, dialled),
                    Some(upstream),
                    "connection {i} {local} -> {dialled}"
                );
                open.push(conn);
            }
        }
        // Connections straight to the upstream are not translated.
        for upstream in [v4(UPSTREAM), v6(UPSTREAM)] {
            let (local, _c) = dial(upstream);
            assert_eq!(nat.actual_destination(local, upstream), None);
        }
        let s = nat.stats();
        assert_eq!(s.table.hits, 2 * N as u64);
        assert_eq!(s.table.misses, 2);
        assert_eq!(s.table.len, 2 * N, "only translated connections are kept");
        assert_eq!((s.events_lost, s.table.dropped, s.decode_errors), (0, 0, 0));
        // One NEW event per translated connection (one conntrack entry per loopback
        // connection); the kernel filter kept the 2 untranslated ones' events away.
        assert_eq!(s.events, 2 * N as u64, "{s:?}");
    });
}

#[test]
fn without_the_kernel_filter_every_event_arrives_and_resolution_is_the_same() {
    if !privileged("without_the_kernel_filter_every_event_arrives_and_resolution_is_the_same") {
        return;
    }
    const N: usize = 12;
    const M: usize = 7;
    let ns = TestNetns::create("nofilter");
    ns.within(|| {
        serve(v4(UPSTREAM));
        let nat = Nat::start(NatConfig {
            kernel_filter: false,
            ..NatConfig::default()
        })
        .unwrap();
        let translated: Vec<_> = (0..N).map(|_| dial(v4(DIALLED))).collect();
        let direct: Vec<_> = (0..M).map(|_| dial(v4(UPSTREAM))).collect();
        for (local, _) in &translated {
            assert_eq!(
                nat.actual_destination(*local, v4(DIALLED)),
                Some(v4(UPSTREAM))
            );
        }
        for (local, _) in &direct {
            assert_eq!(nat.actual_destination(*local, v4(UPSTREAM)), None);
        }
        let s = nat.stats();
        assert_eq!(s.events, (N + M) as u64, "{s:?}");
        assert_eq!(s.table.len, N);
    });
}

#[test]
fn connections_older_than_the_resolver_come_from_the_dump() {
    if !privileged("connections_older_than_the_resolver_come_from_the_dump") {
        return;
    }
    const K: usize = 15;
    let ns = TestNetns::create("dump");
    ns.within(|| {
        serve(v4(UPSTREAM));
        serve(v6(UPSTREAM));
        let mut before = Vec::new();
        for _ in 0..K {
            before.push((dial(v4(DIALLED)), v4(DIALLED), v4(UPSTREAM)));
            before.push((dial(v6(DIALLED)), v6(DIALLED), v6(UPSTREAM)));
        }
        let nat = Nat::start(NatConfig::default()).unwrap();
        assert_eq!(nat.stats().table.len, 2 * K);
        for ((local, _), dialled, upstream) in &before {
            assert_eq!(nat.actual_destination(*local, *dialled), Some(*upstream));
        }
        assert_eq!(nat.stats().events, 0, "nothing happened since the dump");
    });
}

#[test]
fn bounded_table_drops_the_oldest_and_counts() {
    if !privileged("bounded_table_drops_the_oldest_and_counts") {
        return;
    }
    const CAP: usize = 10;
    const N: usize = 25;
    let ns = TestNetns::create("bound");
    ns.within(|| {
        serve(v4(UPSTREAM));
        let nat = Nat::start(NatConfig {
            table_size: CAP,
            ..NatConfig::default()
        })
        .unwrap();
        let conns: Vec<_> = (0..N).map(|_| dial(v4(DIALLED))).collect();
        nat.sync();
        let s = nat.stats();
        assert_eq!((s.table.len, s.table.dropped), (CAP, (N - CAP) as u64));
        // The newest CAP resolve, the older ones are gone.
        let resolved = conns
            .iter()
            .filter(|(local, _)| nat.actual_destination(*local, v4(DIALLED)).is_some())
            .count();
        assert_eq!(resolved, CAP);
        assert!(
            nat.actual_destination(conns[N - 1].0, v4(DIALLED))
                .is_some(),
            "the newest is kept"
        );
    });
}

#[test]
fn destroyed_entries_leave_after_their_grace() {
    if !privileged("destroyed_entries_leave_after_their_grace") {
        return;
    }
    const N: usize = 10;
    let ns = TestNetns::create("destroy");
    // Closed connections' entries expire after 1 s instead of 120 s (TIME_WAIT), per netns.
    ns.exec(&[
        "sysctl",
        "-qw",
        "net.netfilter.nf_conntrack_tcp_timeout_time_wait=1",
    ]);
    ns.within(|| {
        serve(v4(UPSTREAM));
        let nat = Nat::start(NatConfig {
            grace: Duration::from_millis(200),
            ..NatConfig::default()
        })
        .unwrap();
        let conns: Vec<_> = (0..N).map(|_| dial(v4(DIALLED))).collect();
        nat.sync();
        assert_eq!(nat.stats().table.len, N);
        drop(conns);
        // Conntrack's garbage collector destroys expired entries on its own schedule (seconds
        // to a minute): wait for the table to empty, bounded.
        let deadline = Instant::now() + Duration::from_secs(150);
        loop {
            nat.sync();
            if nat.stats().table.len == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "entries never destroyed: {:?}",
                nat.stats()
            );
            thread::sleep(Duration::from_millis(200));
        }
        assert_eq!(nat.stats().table.dropped, 0, "expired, not dropped");
    });
}

#[test]
fn lost_events_are_counted_and_a_dump_fills_the_gap() {
    if !privileged("lost_events_are_counted_and_a_dump_fills_the_gap") {
        return;
    }
    let ns = TestNetns::create("enobufs");
    ns.within(|| {
        serve(v4(UPSTREAM));
        // A receive buffer of a few events: a burst of connections overflows it.
        let nat = Nat::start(NatConfig {
            rcvbuf: 1,
            ..NatConfig::default()
        })
        .unwrap();
        let mut held = Vec::new();
        for _burst in 0..50 {
            // The lock is held by this thread's sync below only; the reader thread drains
            // concurrently, so keep bursting until the kernel reports an overflow.
            let burst: Vec<_> = (0..200).map(|_| dial(v4(DIALLED))).collect();
            held.extend(burst);
            if nat.stats().events_lost > 0 {
                break;
            }
        }
        assert!(
            nat.stats().events_lost > 0,
            "no overflow with a tiny buffer: {:?}",
            nat.stats()
        );
        // Some held connections' NEW events were lost: only the reader thread's resync dump
        // can make every one of them resolve.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            nat.sync();
            let unresolved = held
                .iter()
                .filter(|(local, _)| {
                    nat.actual_destination(*local, v4(DIALLED)) != Some(v4(UPSTREAM))
                })
                .count();
            if unresolved == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{unresolved} of {} never resolved: {:?}",
                held.len(),
                nat.stats()
            );
            thread::sleep(Duration::from_millis(100));
        }
        let s = nat.stats();
        assert!(s.resyncs >= 1, "{s:?}");
        assert_eq!(s.table.len, held.len());
    });
}
