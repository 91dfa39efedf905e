//! NAT resolution end to end, through the real agent: a DNAT rule in the host's nat OUTPUT
//! chain sends loopback connections to 127.0.0.1:<dialled> to 127.0.0.1:<upstream>; a client
//! process in a test cgroup connects through it. The agent must export
//! `destination` = the dialled address and `actual_destination` = the real upstream, with exact
//! connect counts and bytes, for short connections (reported at their close) and held ones
//! (reported by the scrape-time dump, active count included). With `--disable-conntrack` the
//! `conntrack` subsystem is down and `actual_destination` falls back to `destination`; the
//! same without CAP_NET_ADMIN (the tracer still works), with a warning that says the fix.
//!
//! The client is this test binary re-run as a helper (ignored test `nat_helper`, selected by
//! `SONDE_NAT_HELPER=1`), moved into the cgroup before the agent starts. Ports are outside the
//! ephemeral range and random, so the rule touches no other traffic; it is deleted on drop.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use sonde_integration_tests::agent::sonde_binary;
use sonde_integration_tests::cgroups::TestCgroup;
use sonde_integration_tests::{Agent, free_port_outside_ephemeral, privileged, tools, val};

const TIMEOUT: Duration = Duration::from_secs(60);
const HELPER_ENV: &str = "SONDE_NAT_HELPER";
/// Bytes each connection sends after its 8-byte header, and asks back.
const SEND: u32 = 3_000;
const REPLY: u32 = 1_234;

/// `iptables -t nat -A OUTPUT ... -j DNAT` for one port, deleted on drop.
struct DnatRule {
    spec: Vec<String>,
}

impl DnatRule {
    fn add(dialled: u16, upstream: u16) -> DnatRule {
        let spec: Vec<String> = [
            "-t",
            "nat",
            "OUTPUT",
            "-p",
            "tcp",
            "-d",
            "127.0.0.1",
            "--dport",
            &dialled.to_string(),
            "-j",
            "DNAT",
            "--to-destination",
            &format!("127.0.0.1:{upstream}"),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let rule = DnatRule { spec };
        rule.iptables("-A");
        rule
    }

    fn iptables(&self, op: &str) {
        // -t nat <op> OUTPUT ...
        let mut args: Vec<&str> = vec![&self.spec[0], &self.spec[1], op];
        args.extend(self.spec[2..].iter().map(String::as_str));
        let out = Command::new("iptables").args(&args).output().unwrap();
        assert!(
            out.status.success() || op == "-D",
            "iptables {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for DnatRule {
    fn drop(&mut self) {
        self.iptables("-D");
    }
}

/// The upstream: reads an 8-byte header (bytes to read, bytes to answer), reads, answers, then
/// waits for the client to close.
fn serve(port: u16) {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            thread::spawn(move || {
                let mut h = [0u8; 8];
                if s.read_exact(&mut h).is_err() {
                    return;
                }
                let w = u32::from_le_bytes(h[..4].try_into().unwrap()) as usize;
                let r = u32::from_le_bytes(h[4..].try_into().unwrap()) as usize;
                let mut buf = vec![0u8; w];
                if s.read_exact(&mut buf).is_err() || s.write_all(&vec![7u8; r]).is_err() {
                    return;
                }
                let _ = s.read_to_end(&mut buf);
            });
        }
    });
}

fn request(c: &mut TcpStream) {
    let mut h = [0u8; 8];
    h[..4].copy_from_slice(&SEND.to_le_bytes());
    h[4..].copy_from_slice(&REPLY.to_le_bytes());
    c.write_all(&h).unwrap();
    c.write_all(&vec![0x42; SEND as usize]).unwrap();
}

/// Runs only as the helper process. Commands (one line each, answered by `@@ ok`):
/// `connect <n> <addr>`: n connections, each a request then read to EOF;
/// `hold <k> <addr>`: k connections that make their request, read the answer and stay open;
/// `close`: closes the held ones.
#[test]
#[ignore = "helper process of the other tests, run by them with SONDE_NAT_HELPER=1"]
fn nat_helper() {
    if std::env::var(HELPER_ENV).as_deref() != Ok("1") {
        return;
    }
    let mut held = Vec::new();
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap();
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["connect", n, addr] => {
                let addr: SocketAddr = addr.parse().unwrap();
                for _ in 0..n.parse::<u32>().unwrap() {
                    let mut c = TcpStream::connect(addr).unwrap();
                    request(&mut c);
                    c.shutdown(Shutdown::Write).unwrap();
                    let mut back = Vec::new();
                    c.read_to_end(&mut back).unwrap();
                    assert_eq!(back.len(), REPLY as usize);
                }
            }
            ["hold", k, addr] => {
                let addr: SocketAddr = addr.parse().unwrap();
                for _ in 0..k.parse::<u32>().unwrap() {
                    let mut c = TcpStream::connect(addr).unwrap();
                    request(&mut c);
                    let mut back = vec![0u8; REPLY as usize];
                    c.read_exact(&mut back).unwrap();
                    held.push(c);
                }
            }
            ["close"] => {
                for c in held.drain(..) {
                    c.shutdown(Shutdown::Both).unwrap();
                }
            }
            other => panic!("unknown command {other:?}"),
        }
        println!("@@ ok");
        std::io::stdout().flush().unwrap();
    }
}

struct Helper {
    stdin: ChildStdin,
    replies: mpsc::Receiver<String>,
}

impl Helper {
    fn start_in(cg: &mut TestCgroup) -> Helper {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "nat_helper",
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
        cg.add_pid(child.id()).unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        cg.own(child);
        let (tx, replies) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if let Some((_, reply)) = line.split_once("@@ ")
                    && tx.send(reply.to_owned()).is_err()
                {
                    return;
                }
            }
        });
        Helper { stdin, replies }
    }

    fn cmd(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
        let reply = self
            .replies
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|e| panic!("helper: no answer to {line:?}: {e}"));
        assert_eq!(reply, "ok", "{line:?}");
    }
}

/// The setup shared by both tests: a cgroup with the helper, the upstream and the rule.
struct Setup {
    cg: TestCgroup,
    helper: Helper,
    dialled: String,
    upstream: String,
    _rule: DnatRule,
}

fn setup(kind: &str) -> Setup {
    let path = format!("/system.slice/sonde-{kind}-{}.service", std::process::id());
    let mut cg = TestCgroup::create(&path).unwrap_or_else(|e| panic!("create cgroup {path}: {e}"));
    let helper = Helper::start_in(&mut cg);
    let dialled_port = free_port_outside_ephemeral();
    let upstream_port = loop {
        let p = free_port_outside_ephemeral();
        if p != dialled_port {
            break p;
        }
    };
    serve(upstream_port);
    let rule = DnatRule::add(dialled_port, upstream_port);
    Setup {
        cg,
        helper,
        dialled: format!("127.0.0.1:{dialled_port}"),
        upstream: format!("127.0.0.1:{upstream_port}"),
        _rule: rule,
    }
}

#[test]
fn dnat_connections_report_the_dialled_and_the_real_upstream() {
    if !privileged("dnat_connections_report_the_dialled_and_the_real_upstream") {
        return;
    }
    const N: u64 = 30;
    const K: u64 = 4;
    let mut t = setup("nat");
    let id = t.cg.path.clone();
    let agent = Agent::start(&["--min-container-age", "0s"]);
    agent.scrape_until("the tracer and conntrack up", TIMEOUT, |s| {
        s.value("sonde_subsystem_up", &[("subsystem", "tracer")]) == Some(1.0)
            && s.value("sonde_subsystem_up", &[("subsystem", "conntrack")]) == Some(1.0)
    });

    // N short connections through the rule: reported at their close.
    t.helper.cmd(&format!("connect {N} {}", t.dialled));
    let via: &[(&str, &str)] = &[
        ("container_id", &id),
        ("destination", &t.dialled),
        ("actual_destination", &t.upstream),
    ];
    let per_conn_sent = u64::from(8 + SEND);
    let s = agent.scrape_until("the short connections' bytes", TIMEOUT, |s| {
        val(s, "container_net_tcp_bytes_sent_total", via) >= (N * per_conn_sent) as f64
    });
    assert_eq!(
        val(&s, "container_net_tcp_successful_connects_total", via),
        N as f64,
        "{}",
        s.text
    );
    assert_eq!(
        val(&s, "container_net_tcp_bytes_sent_total", via),
        (N * per_conn_sent) as f64
    );
    assert_eq!(
        val(&s, "container_net_tcp_bytes_received_total", via),
        (N * u64::from(REPLY)) as f64
    );
    // Every series of this container goes to the dialled address via the upstream: none
    // left with actual_destination = destination, none to the upstream directly.
    let mine = [("container_id", id.as_str())];
    let all: Vec<_> = s
        .find("container_net_tcp_successful_connects_total", &mine)
        .collect();
    assert_eq!(all.len(), 1, "{all:?}");
    assert!(
        s.value("sonde_conntrack_lookups_total", &[("result", "hit")])
            .unwrap()
            >= N as f64
    );

    // K held connections: found by the scrape-time dump, active under the same labels.
    t.helper.cmd(&format!("hold {K} {}", t.dialled));
    let s = agent.scrape_until("the held connections", TIMEOUT, |s| {
        val(s, "container_net_tcp_active_connections", via) == K as f64
    });
    assert_eq!(
        val(&s, "container_net_tcp_successful_connects_total", via),
        (N + K) as f64,
        "{}",
        s.text
    );
    t.helper.cmd("close");
    let s = agent.scrape_until(
        "the held connections closed with their bytes",
        TIMEOUT,
        |s| {
            val(s, "container_net_tcp_active_connections", via) == 0.0
                && val(s, "container_net_tcp_bytes_sent_total", via)
                    >= ((N + K) * per_conn_sent) as f64
        },
    );
    assert_eq!(
        val(&s, "container_net_tcp_successful_connects_total", via),
        (N + K) as f64
    );
    assert_eq!(
        val(&s, "container_net_tcp_bytes_sent_total", via),
        ((N + K) * per_conn_sent) as f64
    );
    assert_eq!(
        val(&s, "container_net_tcp_bytes_received_total", via),
        ((N + K) * u64::from(REPLY)) as f64,
        "{}",
        s.text
    );
    assert_eq!(
        s.find(
            "container_net_tcp_successful_connects_total",
            &[("container_id", &id)]
        )
        .count(),
        1
    );
}

#[test]
fn without_conntrack_actual_destination_is_the_dialled_one() {
    if !privileged("without_conntrack_actual_destination_is_the_dialled_one") {
        return;
    }
    const N: u64 = 10;
    let mut t = setup("nonat");
    let id = t.cg.path.clone();
    let agent = Agent::start(&["--min-container-age", "0s", "--disable-conntrack"]);
    let s = agent.wait_tracer_up(TIMEOUT);
    assert_eq!(
        s.value("sonde_subsystem_up", &[("subsystem", "conntrack")]),
        Some(0.0)
    );
    assert!(!s.has("sonde_conntrack_lookups_total", &[]));
    t.helper.cmd(&format!("connect {N} {}", t.dialled));
    let same: &[(&str, &str)] = &[
        ("container_id", &id),
        ("destination", &t.dialled),
        ("actual_destination", &t.dialled),
    ];
    let s = agent.scrape_until("the connections", TIMEOUT, |s| {
        val(s, "container_net_tcp_bytes_sent_total", same) >= (N * u64::from(8 + SEND)) as f64
    });
    assert_eq!(
        val(&s, "container_net_tcp_successful_connects_total", same),
        N as f64
    );
    assert!(
        agent.log_text().contains("--disable-conntrack"),
        "one warning names the flag"
    );
}

/// The one degradation this kernel lets us make real: root without CAP_NET_ADMIN. The tracer
/// still loads; joining conntrack's event groups is refused (EPERM), the subsystem is down with
/// a warning naming the fix, and connections count under `actual_destination` = `destination`.
#[test]
fn without_cap_net_admin_conntrack_is_down_with_the_fix() {
    let test = "without_cap_net_admin_conntrack_is_down_with_the_fix";
    if !privileged(test) {
        return;
    }
    let Some(setpriv) = tools::require(test, "setpriv", "util-linux") else {
        return;
    };
    const N: u64 = 5;
    let mut t = setup("nocap");
    let id = t.cg.path.clone();
    let launcher = [
        setpriv.into_os_string(),
        "--bounding-set=-net_admin".into(),
        "--inh-caps=-net_admin".into(),
        "--".into(),
        sonde_binary().into_os_string(),
    ];
    let agent = Agent::start_via(&launcher, &["--min-container-age", "0s"]);
    let s = agent.wait_tracer_up(TIMEOUT);
    assert_eq!(
        s.value("sonde_subsystem_up", &[("subsystem", "conntrack")]),
        Some(0.0),
        "{}",
        agent.log_text()
    );
    let log = agent.log_text();
    assert!(
        log.contains("Operation not permitted") && log.contains("CAP_NET_ADMIN"),
        "{log}"
    );
    t.helper.cmd(&format!("connect {N} {}", t.dialled));
    let same: &[(&str, &str)] = &[
        ("container_id", &id),
        ("destination", &t.dialled),
        ("actual_destination", &t.dialled),
    ];
    let s = agent.scrape_until("the connections", TIMEOUT, |s| {
        val(s, "container_net_tcp_bytes_sent_total", same) >= (N * u64::from(8 + SEND)) as f64
    });
    assert_eq!(
        val(&s, "container_net_tcp_successful_connects_total", same),
        N as f64
    );
}
