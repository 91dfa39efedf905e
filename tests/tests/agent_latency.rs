//! `container_net_latency_seconds` against a real delay: a test network namespace B answers
//! ICMP echo through a user-space responder that sends each reply a fixed DELAY after the
//! kernel received the request (B's own echo replies are off: net.ipv4.icmp_echo_ignore_all).
//! netem is absent on these kernels, and so is the `fq` qdisc an EDT (skb->tstamp) delay would
//! need, so the delay is added at the far end instead of by tc; what the agent measures is the
//! same: a round trip that takes DELAY longer.
//!
//! A process in a test service cgroup, in namespace A, connects over TCP to B (the tracer makes
//! B its upstream); the agent pings B from inside A and must report DELAY within 10 %.
#![allow(clippy::unwrap_used)]

use std::net::{Ipv4Addr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sonde_integration_tests::cgroups::{TestCgroup, hierarchies};
use sonde_integration_tests::tools::run;
use sonde_integration_tests::{Agent, privileged};

const DELAY: Duration = Duration::from_millis(100);

/// Two namespaces joined by a veth pair, deleted on drop.
struct Namespaces {
    a: String,
    b: String,
}

impl Namespaces {
    fn create(a_ip: &str, b_ip: &str) -> Namespaces {
        let id = std::process::id();
        let ns = Namespaces {
            a: format!("sonde-lat-a-{id}"),
            b: format!("sonde-lat-b-{id}"),
        };
        let (va, vb) = (
            format!("slta{}", id % 100_000),
            format!("sltb{}", id % 100_000),
        );
        for args in [
            vec!["netns", "add", &ns.a],
            vec!["netns", "add", &ns.b],
            vec!["link", "add", &va, "type", "veth", "peer", "name", &vb],
            vec!["link", "set", &va, "netns", &ns.a],
            vec!["link", "set", &vb, "netns", &ns.b],
            vec![
                "-n",
                &ns.a,
                "addr",
                "add",
                &format!("{a_ip}/24"),
                "dev",
                &va,
            ],
            vec![
                "-n",
                &ns.b,
                "addr",
                "add",
                &format!("{b_ip}/24"),
                "dev",
                &vb,
            ],
            vec!["-n", &ns.a, "link", "set", &va, "up"],
            vec!["-n", &ns.b, "link", "set", &vb, "up"],
            vec!["-n", &ns.a, "link", "set", "lo", "up"],
        ] {
            run(Command::new("ip").args(&args));
        }
        run(Command::new("ip").args([
            "netns",
            "exec",
            &ns.b,
            "sysctl",
            "-qw",
            "net.ipv4.icmp_echo_ignore_all=1",
        ]));
        ns
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for n in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

/// Moves the calling thread into the named namespace.
fn enter(ns: &str) {
    let f = std::fs::File::open(format!("/var/run/netns/{ns}")).unwrap();
    // SAFETY: valid namespace fd; affects this thread only.
    assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
}

fn realtime() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
}

/// Answers echo requests in namespace `ns`, each DELAY after the kernel received it.
fn delaying_responder(ns: String, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u32> {
    std::thread::spawn(move || {
        enter(&ns);
        // SAFETY: plain socket(2), owned at once.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP) };
        assert!(fd >= 0);
        // SAFETY: fresh fd.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let on: libc::c_int = 1;
        // SAFETY: valid fd and option.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                (&on as *const libc::c_int).cast(),
                4,
            )
        };
        let mut answered = 0;
        let mut buf = [0u8; 1500];
        while !stop.load(Ordering::Relaxed) {
            let mut pfd = libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            if unsafe { libc::poll(&mut pfd, 1, 100) } <= 0 {
                continue;
            }
            let mut iov = libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            };
            let mut control = [0u64; 16];
            // SAFETY: zeroed msghdr, pointers valid for the call.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = std::mem::size_of_val(&control) as _;
            // SAFETY: valid fd and msghdr.
            let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, 0) };
            if n < 28 {
                continue;
            }
            let mut rx = realtime();
            // SAFETY: walking the kernel-filled control buffer.
            unsafe {
                let c = libc::CMSG_FIRSTHDR(&msg);
                if !c.is_null() && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                    let t = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::timespec>());
                    rx = Duration::new(t.tv_sec as u64, t.tv_nsec as u32);
                }
            }
            let ihl = usize::from(buf[0] & 0x0f) * 4;
            let icmp = &buf[ihl..n as usize];
            if icmp.first() != Some(&8) {
                continue; // not an echo request (e.g. our own replies)
            }
            let src = Ipv4Addr::new(buf[12], buf[13], buf[14], buf[15]);
            let mut reply = icmp.to_vec();
            reply[0] = 0;
            reply[2] = 0;
            reply[3] = 0;
            let c = sonde_pinger::checksum(&reply);
            reply[2..4].copy_from_slice(&c.to_be_bytes());
            let due = rx + DELAY;
            let now = realtime();
            if due > now {
                std::thread::sleep(due - now);
            }
            let addr = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: 0,
                sin_addr: libc::in_addr {
                    s_addr: u32::from(src).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: valid fd, buffer and address.
            unsafe {
                libc::sendto(
                    fd.as_raw_fd(),
                    reply.as_ptr().cast(),
                    reply.len(),
                    0,
                    (&addr as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            };
            answered += 1;
        }
        answered
    })
}

#[test]
fn upstream_latency_matches_a_real_delay() {
    let test = "upstream_latency_matches_a_real_delay";
    if !privileged(test) {
        return;
    }
    let net = 213;
    let sub = std::process::id() % 250;
    let (a_ip, b_ip) = (format!("10.{net}.{sub}.1"), format!("10.{net}.{sub}.2"));
    let ns = Namespaces::create(&a_ip, &b_ip);
    let stop = Arc::new(AtomicBool::new(false));
    let responder = delaying_responder(ns.b.clone(), stop.clone());
    // The upstream's TCP service in B: accepts and holds the connections open.
    let (listen_ns, listen_ip, listen_stop) = (ns.b.clone(), b_ip.clone(), stop.clone());
    let listener = std::thread::spawn(move || {
        enter(&listen_ns);
        let l = TcpListener::bind(format!("{listen_ip}:5000")).unwrap();
        l.set_nonblocking(true).unwrap();
        let mut open = Vec::new();
        while !listen_stop.load(Ordering::Relaxed) {
            match l.accept() {
                Ok((s, _)) => open.push(s),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    });

    let unit = format!("sonde\\x2dlatency\\x2d{}.service", std::process::id());
    let id = format!("/system.slice/sonde-latency-{}.service", std::process::id());
    let mut cg = TestCgroup::create(&format!("/system.slice/{unit}")).unwrap();
    let agent = Agent::start(&["--min-container-age", "0s"]);
    // Started after the agent, so the tracer sees the connect; the connection stays open
    // (nc's stdin never ends), so the connecting process is alive when the agent places it.
    let procs: Vec<String> = hierarchies()
        .iter()
        .map(|h| {
            let p = h.join(cg.path.trim_start_matches('/')).join("cgroup.procs");
            format!("'{}'", p.display())
        })
        .collect();
    let script = format!(
        "for f in {}; do echo $$ > \"$f\"; done; exec ip netns exec {} sh -c 'sleep 1000 | busybox nc {b_ip} 5000 >/dev/null 2>&1'",
        procs.join(" "),
        ns.a
    );
    cg.own(
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );

    let labels: &[(&str, &str)] = &[("container_id", &id), ("destination_ip", &b_ip)];
    let s = agent.scrape_until("the upstream latency", Duration::from_secs(40), |s| {
        s.value("container_net_latency_seconds", labels).is_some()
    });
    let rtt = s.value("container_net_latency_seconds", labels).unwrap();
    eprintln!("{test}: delay {DELAY:?}, measured {rtt} s");
    let want = DELAY.as_secs_f64();
    assert!(
        (rtt - want).abs() <= want * 0.1,
        "measured {rtt} s, set {want} s (more than 10 % off)"
    );
    assert_eq!(
        s.value("sonde_subsystem_up", &[("subsystem", "pinger")]),
        Some(1.0)
    );
    cg.kill_children();
    stop.store(true, Ordering::Relaxed);
    assert!(responder.join().unwrap() >= 1);
    listener.join().unwrap();
    drop(agent);

    // --disable-pinger: the subsystem is down and nothing is measured.
    let agent = Agent::start(&["--min-container-age", "0s", "--disable-pinger"]);
    let s = agent.scrape();
    assert_eq!(
        s.value("sonde_subsystem_up", &[("subsystem", "pinger")]),
        Some(0.0)
    );
    assert!(!s.text.contains("container_net_latency_seconds{"));
}
