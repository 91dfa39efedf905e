//! sonde's traffic extensions through the real agent: the interfaces of a container's own
//! network namespace (`container_net_interface_*`, equal to the kernel's /proc/<pid>/net/dev of
//! a process in it), and the node activity counters (`node_context_switches_total`, ...), which
//! must lie between the kernel's own /proc/stat and /proc/vmstat read just before and just after
//! the scrape.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::time::Duration;

use sonde_integration_tests::cgroups::TestCgroup;
use sonde_integration_tests::{Agent, Scrape, privileged};

const TIMEOUT: Duration = Duration::from_secs(30);

fn sh(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", cmd])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A netns with a veth pair to the host (10.214.<n>.1 host, .2 inside); deleted on drop.
struct TestNetns {
    name: String,
    host_if: String,
    ns_if: String,
    ns_ip: String,
}

impl TestNetns {
    fn create() -> TestNetns {
        let n = std::process::id() % 250 + 1;
        let tag = format!("{}", std::process::id() % 100_000);
        let ns = TestNetns {
            name: format!("sonde-if-{tag}"),
            host_if: format!("sif{tag}h"),
            ns_if: format!("sif{tag}n"),
            ns_ip: format!("10.214.{n}.2"),
        };
        let (name, host_if, ns_if) = (&ns.name, &ns.host_if, &ns.ns_if);
        for cmd in [
            format!("ip netns add {name}"),
            format!("ip link add {host_if} type veth peer name {ns_if} netns {name}"),
            // No IPv6 on the pair: its autoconfiguration would send packets at any moment.
            format!("sysctl -qw net.ipv6.conf.{host_if}.disable_ipv6=1"),
            format!("ip netns exec {name} sysctl -qw net.ipv6.conf.all.disable_ipv6=1"),
            format!("ip addr add 10.214.{n}.1/30 dev {host_if}"),
            format!("ip link set {host_if} up"),
            format!("ip -n {name} addr add {}/30 dev {ns_if}", ns.ns_ip),
            format!("ip -n {name} link set {ns_if} up"),
            format!("ip -n {name} link set lo up"),
        ] {
            assert!(sh(&cmd), "network setup failed: {cmd}");
        }
        ns
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        sh(&format!("ip link del {}", self.host_if));
        sh(&format!("ip netns del {}", self.name));
    }
}

/// /proc/<pid>/net/dev as (interface, [rx bytes, rx packets, rx errs, rx drop, tx bytes,
/// tx packets, tx errs, tx drop]).
fn net_dev(pid: u32) -> Vec<(String, [u64; 8])> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).unwrap();
    text.lines()
        .skip(2)
        .map(|l| {
            let (name, rest) = l.split_once(':').unwrap();
            let f: Vec<u64> = rest
                .split_whitespace()
                .map(|v| v.parse().unwrap())
                .collect();
            let v = [f[0], f[1], f[2], f[3], f[8], f[9], f[10], f[11]];
            (name.trim().to_owned(), v)
        })
        .collect()
}

const METRICS: [&str; 8] = [
    "container_net_interface_received_bytes_total",
    "container_net_interface_received_packets_total",
    "container_net_interface_received_errors_total",
    "container_net_interface_received_dropped_total",
    "container_net_interface_transmitted_bytes_total",
    "container_net_interface_transmitted_packets_total",
    "container_net_interface_transmitted_errors_total",
    "container_net_interface_transmitted_dropped_total",
];

#[test]
fn container_interfaces_equal_the_kernels_net_dev() {
    let test = "container_interfaces_equal_the_kernels_net_dev";
    if !privileged(test) {
        return;
    }
    for (tool, package) in [("ip", "iproute2"), ("sysctl", "procps")] {
        if sonde_integration_tests::tools::require(test, tool, package).is_none() {
            return;
        }
    }
    let net = TestNetns::create();
    // The container: a sleeper in the netns, in a service-shaped cgroup.
    let id = format!("/system.slice/sonde-netif-{}.service", std::process::id());
    let mut cg = TestCgroup::create(&id).unwrap();
    let sleeper = Command::new("ip")
        .args(["netns", "exec", &net.name, "sleep", "100000"])
        .spawn()
        .unwrap();
    let pid = sleeper.id();
    cg.add_pid(pid).unwrap();
    cg.own(sleeper);
    // A container in the host's netns: it must get no interface series.
    let host_id = format!("/system.slice/sonde-hostnet-{}.service", std::process::id());
    let mut host_cg = TestCgroup::create(&host_id).unwrap();
    let host_sleeper = Command::new("sleep").arg("100000").spawn().unwrap();
    host_cg.add_pid(host_sleeper.id()).unwrap();
    host_cg.own(host_sleeper);

    // Real traffic over the veth: a server in the netns (a thread that joined it), 300 kB to it.
    let dst: SocketAddr = format!("{}:{}", net.ns_ip, 24_000 + std::process::id() % 1000)
        .parse()
        .unwrap();
    let ns_path = format!("/var/run/netns/{}", net.name);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        let f = std::fs::File::open(&ns_path).unwrap();
        // SAFETY: a valid netns fd; CLONE_NEWNET affects only the calling thread.
        assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
        let l = TcpListener::bind(dst).unwrap();
        ready_tx.send(()).unwrap();
        let (mut s, _) = l.accept().unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).unwrap();
        buf.len()
    });
    ready_rx.recv().unwrap();
    let mut c = TcpStream::connect(dst).unwrap();
    c.write_all(&vec![7u8; 300_000]).unwrap();
    drop(c);
    assert_eq!(server.join().unwrap(), 300_000);

    let agent = Agent::start(&["--min-container-age", "0s", "--disable-ebpf"]);
    let id_label: &[(&str, &str)] = &[("container_id", &id)];
    agent.scrape_until("the container's interfaces", TIMEOUT, |s| {
        s.has(METRICS[0], id_label)
    });

    // The counters are quiet once the transfer is over; a scrape between two equal reads of the
    // kernel's file must show exactly those values (a stray packet between them: try again).
    let mut checked = false;
    for _ in 0..20 {
        let before = net_dev(pid);
        let s: Scrape = agent.scrape();
        let after = net_dev(pid);
        if before != after {
            continue;
        }
        let names: Vec<&str> = before.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names.len(), 2, "lo and the veth: {names:?}");
        assert!(names.contains(&"lo") && names.contains(&net.ns_if.as_str()));
        for (iface, values) in &before {
            for (metric, want) in METRICS.iter().zip(values) {
                let labels: &[(&str, &str)] = &[("container_id", &id), ("interface", iface)];
                assert_eq!(
                    s.value(metric, labels),
                    Some(*want as f64),
                    "{metric}{labels:?}\n{}",
                    s.text
                );
            }
        }
        // The 300 kB went in through the veth.
        let veth = &before.iter().find(|(n, _)| *n == net.ns_if).unwrap().1;
        assert!(veth[0] > 300_000, "rx bytes {}", veth[0]);
        // Exactly the two interfaces, for each metric.
        for metric in METRICS {
            assert_eq!(s.find(metric, id_label).count(), 2, "{metric}");
            assert_eq!(
                s.find(metric, &[("container_id", &host_id)]).count(),
                0,
                "a host-network container has no interface series"
            );
        }
        checked = true;
        break;
    }
    assert!(checked, "the netns never stayed quiet across a scrape");
}

/// A /proc file's `key value` line.
fn proc_value(file: &str, key: &str) -> f64 {
    let text = std::fs::read_to_string(file).unwrap();
    text.lines()
        .find_map(|l| {
            let mut f = l.split_whitespace();
            (f.next() == Some(key)).then(|| f.next().unwrap().parse::<f64>().unwrap())
        })
        .unwrap_or_else(|| panic!("no {key} in {file}"))
}

#[test]
fn node_activity_counters_match_proc() {
    if !privileged("node_activity_counters_match_proc") {
        return;
    }
    let agent = Agent::start(&["--disable-ebpf"]);
    let sources = [
        ("node_context_switches_total", "/proc/stat", "ctxt"),
        ("node_intr_total", "/proc/stat", "intr"),
        ("node_forks_total", "/proc/stat", "processes"),
        ("node_vmstat_pgfault_total", "/proc/vmstat", "pgfault"),
        ("node_vmstat_pgmajfault_total", "/proc/vmstat", "pgmajfault"),
        ("node_vmstat_pswpin_total", "/proc/vmstat", "pswpin"),
        ("node_vmstat_pswpout_total", "/proc/vmstat", "pswpout"),
    ];
    let before: Vec<f64> = sources.iter().map(|(_, f, k)| proc_value(f, k)).collect();
    let s = agent.scrape();
    let after: Vec<f64> = sources.iter().map(|(_, f, k)| proc_value(f, k)).collect();
    for (i, (metric, file, key)) in sources.iter().enumerate() {
        let v = s
            .value(metric, &[])
            .unwrap_or_else(|| panic!("no {metric}"));
        assert!(
            before[i] <= v && v <= after[i],
            "{metric} = {v}, {file} {key} went {} -> {}",
            before[i],
            after[i]
        );
    }
    // A running machine has switched contexts since boot: the values are real, not zeros.
    assert!(s.value("node_context_switches_total", &[]).unwrap() > 0.0);
}
