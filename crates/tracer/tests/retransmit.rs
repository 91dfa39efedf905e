//! Privileged: retransmits forced by an iptables random-drop rule inside a
//! network namespace of our own (veth pair), attributed to the connection.
#![allow(clippy::unwrap_used)]

#[path = "support/privileged.rs"]
mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::thread;

use sonde_tracer::Event;
use support::{SockState, collect, privileged, start_with};

fn run(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Removes the netns (and with it the veth pair and the iptables rule).
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        run(&["ip", "netns", "del", &self.0]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retransmits_through_random_drop() {
    if privileged("retransmits_through_random_drop") {
        retransmits(SockState::TpBtf, 0).await;
    }
}

/// The classic-tracepoint fallback of the retransmit (and TCP state) program.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retransmits_through_random_drop_classic_tracepoints() {
    if privileged("retransmits_through_random_drop_classic_tracepoints") {
        retransmits(SockState::Classic, 1).await;
    }
}

/// `slot` keeps the two tests' netns, links and subnets apart.
async fn retransmits(program: SockState, slot: u32) {
    if !run(&["sh", "-c", "command -v ip && command -v iptables"]) {
        support::skip(
            "retransmits_through_random_drop",
            "needs iproute2 and iptables",
        );
        return;
    }
    let id = std::process::id() % 120 * 2 + 1 + slot;
    let ns = Netns(format!("sonde-rt-{id}"));
    let (host_if, ns_if) = (format!("srt{id}h"), format!("srt{id}n"));
    let (host_ip, ns_ip) = (format!("10.251.{id}.1"), format!("10.251.{id}.2"));
    let port: u16 = 7777;
    let _ = run(&["ip", "netns", "del", &ns.0]);
    for cmd in [
        format!("ip netns add {}", ns.0),
        format!(
            "ip link add {host_if} type veth peer name {ns_if} netns {}",
            ns.0
        ),
        format!("ip addr add {host_ip}/30 dev {host_if}"),
        format!("ip link set {host_if} up"),
        format!("ip -n {} addr add {ns_ip}/30 dev {ns_if}", ns.0),
        format!("ip -n {} link set {ns_if} up", ns.0),
        format!("ip -n {} link set lo up", ns.0),
        format!(
            "ip netns exec {} iptables -I INPUT -p tcp --dport {port} -m statistic --mode random --probability 0.3 -j DROP",
            ns.0
        ),
    ] {
        assert!(run(&["sh", "-c", &cmd]), "setup failed: {cmd}");
    }

    // The server runs on a thread that joined the test netns (setns affects only it).
    let ns_path = format!("/var/run/netns/{}", ns.0);
    let ns_ip_addr: Ipv4Addr = ns_ip.parse().unwrap();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let server = thread::spawn(move || {
        let f = std::fs::File::open(&ns_path).unwrap();
        // SAFETY: a valid netns fd; CLONE_NEWNET moves only this thread.
        assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
        let l = TcpListener::bind((ns_ip_addr, port)).unwrap();
        ready_tx.send(()).unwrap();
        let (mut s, _) = l.accept().unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).unwrap();
        buf.len()
    });
    ready_rx.recv().unwrap();

    let (tracer, mut stream) = start_with(program);
    assert_eq!(
        tracer
            .attached_programs()
            .contains(&"tcp_retransmit_skb_btf"),
        program == SockState::TpBtf,
        "the {program:?} tcp_retransmit_skb program is attached (see the log for why not)"
    );
    let dst = SocketAddr::from((ns_ip_addr, port));
    const SIZE: usize = 2 << 20;
    let mut c = TcpStream::connect_timeout(&dst, std::time::Duration::from_secs(30)).unwrap();
    c.write_all(&vec![0x5a; SIZE]).unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(server.join().unwrap(), SIZE);
    drop(c);

    let pid = std::process::id();
    let events = collect(
        &mut stream,
        |e| match e {
            Event::Retransmit { dst: d, .. } | Event::ConnectionClosed { dst: d, .. } => *d == dst,
            _ => false,
        },
        |ev| {
            ev.iter()
                .any(|e| matches!(e, Event::ConnectionClosed { .. }))
        },
    )
    .await;
    let retrans: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, Event::Retransmit { .. }))
        .collect();
    eprintln!(
        "retransmit events through 30% drop for {SIZE} bytes: {}",
        retrans.len()
    );
    assert!(
        !retrans.is_empty(),
        "retransmits expected through a 30% drop"
    );
    for e in &retrans {
        assert!(
            matches!(e, Event::Retransmit { pid: p, src, .. } if *p == pid && src.ip().to_string() == host_ip),
            "{e:?}"
        );
    }
    // Payload counted once despite the retransmissions.
    assert!(
        events.iter().any(|e| matches!(e, Event::ConnectionClosed { bytes_sent, .. } if *bytes_sent == SIZE as u64)),
        "{:?}",
        events.iter().filter(|e| matches!(e, Event::ConnectionClosed { .. })).collect::<Vec<_>>()
    );
}
