//! Load run: what the agent's eBPF tracer costs a connection-heavy workload.
//!
//! 1. Connect storm: a client process inside a test cgroup (`/system.slice/sonde-storm-<pid>
//!    .service`) makes N loopback connections (connect, read EOF, close; the server accepts and
//!    closes) to a listener on a non-ephemeral port, in interleaved rounds without and with the
//!    release agent running (order A B B A A B ... so drift hits both sides). Reports
//!    connections/s per round, the median throughput loss, the agent's CPU seconds per 100,000
//!    connections (utime+stime from /proc/<agent>/stat around the storm) and checks the agent
//!    counted every connection.
//! 2. Held connections: H connections held open at once (spread over several client and server
//!    processes, because RLIMIT_NOFILE's hard limit cannot be raised here), then the agent's RSS
//!    (VmRSS) and the duration of one scrape, which reads every open connection's counters.
//!
//! The agent runs with its default settings (`--proc-scan-interval 10s`), plus
//! `--min-container-age 0s` so the storm's cgroup is exported.
//! Needs root. Run: cargo build --release -p sonde && cargo bench -p sonde-integration-tests --bench connect_storm
//! Knobs: SONDE_STORM_CONNECTIONS (100000), SONDE_STORM_ROUNDS (3), SONDE_STORM_HOLD (100000),
//! SONDE_STORM_PIN=1 (client on CPU 0, server thread on CPU 1; the agent unpinned),
//! SONDE_STORM_AGENT_ARGS (extra agent flags, e.g. `--disable-ebpf`), SONDE_STORM_SKIP_COUNT=1
//! (do not check the agent's count: for experimental builds that do not count).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use sonde_integration_tests::Scrape;
use sonde_integration_tests::agent::{http_get, sonde_binary};
use sonde_integration_tests::cgroups::TestCgroup;

const ROLE_ENV: &str = "SONDE_STORM_ROLE";
/// Most sockets one process holds: the hard RLIMIT_NOFILE here is 20,000 and root cannot raise
/// it (no CAP_SYS_RESOURCE), so held connections are spread over processes of this many each.
const PER_PROCESS: usize = 12_500;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// ---------------------------------------------------------------------------------------------
// Child roles (this binary re-run with SONDE_STORM_ROLE).

/// `storm-client <port> <n>`: waits for a line on stdin, makes n connections, prints
/// `@@ <seconds>`.
fn storm_client(port: u16, n: usize) {
    pin_to_cpu(0);
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    let cpu_before = own_cpu_seconds();
    let start = Instant::now();
    let mut buf = [0u8; 16];
    for _ in 0..n {
        let mut c = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
        // The server closes first, so TIME_WAIT stays on its side and client ports recycle.
        while c.read(&mut buf).unwrap() > 0 {}
    }
    println!(
        "@@ {} {}",
        start.elapsed().as_secs_f64(),
        own_cpu_seconds() - cpu_before
    );
}

/// CPU time (user + system) of this process so far. System time includes the
/// loopback softirq work done in this task and the eBPF programs run in it.
fn own_cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(ru.ru_utime) + secs(ru.ru_stime)
}

/// Pins the calling thread to one CPU (SONDE_STORM_PIN=1), so client and server
/// do not migrate between rounds; the agent stays unpinned.
fn pin_to_cpu(cpu: usize) {
    if std::env::var("SONDE_STORM_PIN").as_deref() != Ok("1") {
        return;
    }
    // SAFETY: cpu_set_t is plain data; CPU_SET and sched_setaffinity(0) act on this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// CPU time (user + system) of one thread of this process, from its stat file.
fn thread_cpu_seconds(tid: i32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / hz
}

/// `hold-server <port> <n>`: accepts n connections and keeps them until stdin closes.
fn hold_server(port: u16, n: usize) {
    raise_nofile();
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
    println!("@@ listening");
    std::io::stdout().flush().unwrap();
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        held.push(l.accept().unwrap().0);
    }
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
}

/// `hold-client <port> <n>`: waits for a line on stdin, opens n connections, prints
/// `@@ <seconds>`, keeps them until stdin closes.
fn hold_client(port: u16, n: usize) {
    raise_nofile();
    let mut stdin = std::io::stdin().lock();
    let mut line = String::new();
    stdin.read_line(&mut line).unwrap();
    let start = Instant::now();
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        held.push(TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap());
    }
    println!("@@ {}", start.elapsed().as_secs_f64());
    std::io::stdout().flush().unwrap();
    let mut rest = Vec::new();
    let _ = stdin.read_to_end(&mut rest);
    for c in held {
        let _ = c.shutdown(Shutdown::Both);
    }
}

/// Soft RLIMIT_NOFILE up to the hard limit (which cannot be raised without CAP_SYS_RESOURCE).
fn raise_nofile() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid pointer to an rlimit.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
}

fn hard_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid pointer to an rlimit.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    lim.rlim_max
}

/// A child of this binary in some role, talking `@@` lines on stdout.
struct RoleChild {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl RoleChild {
    fn spawn(role: &str, args: &[String]) -> RoleChild {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(ROLE_ENV, role)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        RoleChild {
            child,
            stdin,
            lines,
        }
    }

    fn go(&mut self) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "go").unwrap();
        stdin.flush().unwrap();
    }

    fn reply(&mut self) -> String {
        for line in self.lines.by_ref() {
            if let Some(r) = line.unwrap().strip_prefix("@@ ") {
                return r.to_owned();
            }
        }
        panic!("role child {} ended without answering", self.child.id());
    }
}

impl Drop for RoleChild {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// The agent, with default settings.

/// SONDE_STORM_AGENT_ARGS: extra agent flags, whitespace-separated, to split the
/// cost (e.g. `--disable-ebpf`: the agent's userspace alone).
fn extra_agent_args() -> Vec<String> {
    std::env::var("SONDE_STORM_AGENT_ARGS")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// False when the extra flags turn the tracer off: nothing to wait for or count.
fn tracer_expected() -> bool {
    !extra_agent_args().iter().any(|a| a == "--disable-ebpf")
}

struct ReleaseAgent {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl ReleaseAgent {
    fn start() -> ReleaseAgent {
        let port = sonde_integration_tests::free_port();
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new(sonde_binary())
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--min-container-age", "0s"])
            .args(extra_agent_args())
            .env_remove("SONDE_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("agent.log")).unwrap())
            .spawn()
            .unwrap();
        let agent = ReleaseAgent {
            child,
            port,
            _dir: dir,
        };
        let tracer = if tracer_expected() { 1.0 } else { 0.0 };
        sonde_integration_tests::wait_for("the agent's tracer", Duration::from_secs(30), || {
            agent.try_scrape().filter(|s| {
                s.value("sonde_subsystem_up", &[("subsystem", "tracer")]) == Some(tracer)
            })
        });
        agent
    }

    fn try_scrape(&self) -> Option<Scrape> {
        http_get(self.port, "/metrics")
            .ok()
            .filter(|(code, _)| *code == 200)
            .map(|(_, body)| Scrape::parse(&body))
    }

    fn scrape(&self) -> Scrape {
        self.try_scrape().expect("scrape the agent")
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ReleaseAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / hz
}

fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn sum(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    s.find(name, labels).map(|x| x.value).sum()
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Mean and half-width of its 95% confidence interval (normal approximation,
/// fine from ~20 pairs; with fewer it is optimistic).
fn mean_ci95(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    if v.len() < 2 {
        return (v.first().copied().unwrap_or(0.0), f64::NAN);
    }
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, 1.96 * (var / n).sqrt())
}

/// A listener on a free port in 20000-32000 (outside the ephemeral range).
fn bind_outside_ephemeral(first: u16) -> TcpListener {
    (first..32_000)
        .find_map(|p| TcpListener::bind((Ipv4Addr::LOCALHOST, p)).ok())
        .expect("a free port in 20000-32000")
}

fn free_ports_outside_ephemeral(n: usize, first: u16) -> Vec<u16> {
    let mut out = Vec::new();
    let mut p = first;
    while out.len() < n {
        if TcpListener::bind((Ipv4Addr::LOCALHOST, p)).is_ok() {
            out.push(p);
        }
        p += 1;
        assert!(p < 32_000, "not enough free ports in {first}-32000");
    }
    out
}

// ---------------------------------------------------------------------------------------------

struct Round {
    with_agent: bool,
    rate: f64,
    /// Client and server CPU time per connection, microseconds.
    storm_cpu_us: f64,
    agent_cpu: Option<f64>,
    counted: Option<f64>,
}

fn main() {
    if let Ok(role) = std::env::var(ROLE_ENV) {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let port: u16 = args[0].parse().unwrap();
        let n: usize = args[1].parse().unwrap();
        match role.as_str() {
            "storm-client" => storm_client(port, n),
            "hold-server" => hold_server(port, n),
            "hold-client" => hold_client(port, n),
            other => panic!("unknown role {other}"),
        }
        return;
    }
    // `cargo bench` passes --bench; nothing else is expected.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("connect_storm bench needs root (cgroups, eBPF); skipped");
        return;
    }
    let n = env_usize("SONDE_STORM_CONNECTIONS", 100_000);
    let rounds = env_usize("SONDE_STORM_ROUNDS", 3);
    let hold = env_usize("SONDE_STORM_HOLD", 100_000);
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    println!(
        "machine: {} vCPU, {cpu_model}, kernel {}, agent {}",
        thread::available_parallelism().map_or(0, |n| n.get()),
        kernel.trim(),
        sonde_binary().display()
    );

    let cg = TestCgroup::create(&format!(
        "/system.slice/sonde-storm-{}.service",
        std::process::id()
    ))
    .unwrap();
    let cid = cg.path.clone();

    // The storm's server: accept and close, on a thread of this process.
    let listener = bind_outside_ephemeral(20_000 + (std::process::id() % 5_000) as u16);
    let port = listener.local_addr().unwrap().port();
    let dst = format!("127.0.0.1:{port}");
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let server_tid = Arc::new(std::sync::atomic::AtomicI32::new(0));
    let server_tid2 = server_tid.clone();
    let server = thread::spawn(move || {
        pin_to_cpu(1);
        // SAFETY: gettid has no preconditions.
        server_tid2.store(unsafe { libc::gettid() }, Ordering::SeqCst);
        for s in listener.incoming() {
            if stop2.load(Ordering::Relaxed) {
                break;
            }
            drop(s);
        }
    });

    // A B B A A B ...: each pair alternates which side goes first.
    let mut results: Vec<Round> = Vec::new();
    for r in 0..rounds {
        let order = if r % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for with_agent in order {
            let mut client = RoleChild::spawn("storm-client", &[port.to_string(), n.to_string()]);
            cg.add_pid(client.child.id()).unwrap();
            let agent = with_agent.then(|| {
                let a = ReleaseAgent::start();
                sonde_integration_tests::wait_for(
                    "the storm cgroup exported",
                    Duration::from_secs(30),
                    || {
                        a.try_scrape()
                            .filter(|s| s.has("container_info", &[("container_id", &cid)]))
                    },
                );
                a
            });
            let cpu_before = agent.as_ref().map(|a| cpu_seconds(a.pid()));
            let tid = server_tid.load(Ordering::SeqCst);
            let server_cpu_before = thread_cpu_seconds(tid);
            client.go();
            let reply = client.reply();
            let server_cpu = thread_cpu_seconds(tid) - server_cpu_before;
            let mut reply = reply.split_whitespace().map(|v| v.parse::<f64>().unwrap());
            let (secs, client_cpu) = (reply.next().unwrap(), reply.next().unwrap());
            let storm_cpu_us = (client_cpu + server_cpu) / n as f64 * 1e6;
            drop(client);
            // Let the agent drain its ring buffer (100 ms timer) before reading its CPU time.
            thread::sleep(Duration::from_millis(500));
            let agent_cpu = agent
                .as_ref()
                .zip(cpu_before)
                .map(|(a, before)| cpu_seconds(a.pid()) - before);
            let count = tracer_expected() && std::env::var("SONDE_STORM_SKIP_COUNT").is_err();
            let counted = agent.as_ref().filter(|_| count).map(|a| {
                let labels: &[(&str, &str)] = &[("container_id", &cid), ("destination", &dst)];
                let deadline = Instant::now() + Duration::from_secs(30);
                loop {
                    let s = a.scrape();
                    let c = sum(&s, "container_net_tcp_successful_connects_total", labels);
                    if c >= n as f64 || Instant::now() > deadline {
                        let lost = sum(&s, "sonde_ebpf_events_lost_total", &[]);
                        if lost > 0.0 {
                            eprintln!("agent lost {lost} events");
                        }
                        break c;
                    }
                    thread::sleep(Duration::from_millis(250));
                }
            });
            let rate = n as f64 / secs;
            eprintln!(
                "round {} {}: {rate:.0} conn/s, storm CPU {storm_cpu_us:.2} us/conn, agent CPU {agent_cpu:?} s, counted {counted:?}",
                r + 1,
                if with_agent { "with agent" } else { "no agent" }
            );
            results.push(Round {
                with_agent,
                rate,
                storm_cpu_us,
                agent_cpu,
                counted,
            });
        }
    }

    if rounds > 0 {
        print_storm(&results, n);
    }
    stop.store(true, Ordering::Relaxed);
    let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, port));
    server.join().unwrap();
    if hold > 0 {
        held_connections(&cg, &cid, hold);
    }
}

fn print_storm(results: &[Round], n: usize) {
    println!();
    println!("Connect storm: {n} loopback connections per round (connect, read EOF, close)");
    println!();
    println!(
        "| round | agent | connections/s | storm CPU us/conn | agent CPU s | agent CPU s per 100k | counted by agent |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (i, r) in results.iter().enumerate() {
        println!(
            "| {} | {} | {:.0} | {:.2} | {} | {} | {} |",
            i / 2 + 1,
            if r.with_agent { "yes" } else { "no" },
            r.rate,
            r.storm_cpu_us,
            r.agent_cpu.map_or("-".into(), |c| format!("{c:.2}")),
            r.agent_cpu
                .map_or("-".into(), |c| format!("{:.2}", c * 100_000.0 / n as f64)),
            r.counted.map_or("-".into(), |c| format!("{c:.0}")),
        );
    }
    let without: Vec<f64> = results
        .iter()
        .filter(|r| !r.with_agent)
        .map(|r| r.rate)
        .collect();
    let with: Vec<f64> = results
        .iter()
        .filter(|r| r.with_agent)
        .map(|r| r.rate)
        .collect();
    let pair_losses: Vec<f64> = results
        .chunks(2)
        .map(|pair| {
            let a = pair.iter().find(|r| !r.with_agent).unwrap().rate;
            let b = pair.iter().find(|r| r.with_agent).unwrap().rate;
            (a - b) / a * 100.0
        })
        .collect();
    let cpu_overheads: Vec<f64> = results
        .chunks(2)
        .map(|pair| {
            let a = pair.iter().find(|r| !r.with_agent).unwrap().storm_cpu_us;
            let b = pair.iter().find(|r| r.with_agent).unwrap().storm_cpu_us;
            (b - a) / a * 100.0
        })
        .collect();
    let cpus: Vec<f64> = results
        .iter()
        .filter_map(|r| r.agent_cpu)
        .map(|c| c * 100_000.0 / n as f64)
        .collect();
    println!();
    println!(
        "median connections/s: {:.0} without, {:.0} with the agent; loss of medians {:.1}%; per-round-pair losses {:?} (median {:.1}%)",
        median(&without),
        median(&with),
        (median(&without) - median(&with)) / median(&without) * 100.0,
        pair_losses
            .iter()
            .map(|l| format!("{l:.1}%"))
            .collect::<Vec<_>>(),
        median(&pair_losses)
    );
    println!(
        "storm CPU per connection (client + server, incl. in-task softirq and eBPF): median {:.2} us without, {:.2} us with the agent; per-round-pair increase {:?} (median {:.1}%)",
        median(
            &results
                .iter()
                .filter(|r| !r.with_agent)
                .map(|r| r.storm_cpu_us)
                .collect::<Vec<_>>()
        ),
        median(
            &results
                .iter()
                .filter(|r| r.with_agent)
                .map(|r| r.storm_cpu_us)
                .collect::<Vec<_>>()
        ),
        cpu_overheads
            .iter()
            .map(|l| format!("{l:.1}%"))
            .collect::<Vec<_>>(),
        median(&cpu_overheads)
    );
    let (mean, half) = mean_ci95(&pair_losses);
    println!(
        "throughput loss over {} round pairs: mean {mean:.2}% (95% confidence interval {:.2}% to {:.2}%), median {:.2}%",
        pair_losses.len(),
        mean - half,
        mean + half,
        median(&pair_losses)
    );
    println!(
        "agent CPU per 100,000 connections: median {:.2} s",
        median(&cpus)
    );
}

/// Client-side ESTABLISHED sockets to `ports` on 127.0.0.1, from /proc/net/tcp.
fn kernel_established(ports: &[u16]) -> usize {
    let text = std::fs::read_to_string("/proc/net/tcp").unwrap();
    text.lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3
                && f[3] == "01"
                && f[2]
                    .rsplit_once(':')
                    .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
                    .is_some_and(|p| ports.contains(&p))
        })
        .count()
}

fn held_connections(cg: &TestCgroup, cid: &str, hold: usize) {
    let procs = hold.div_ceil(PER_PROCESS);
    println!();
    println!(
        "Held connections: {hold} over {procs} client and {procs} server processes (hard RLIMIT_NOFILE {} per process)",
        hard_nofile()
    );
    let ports = free_ports_outside_ephemeral(procs, 24_000);
    let agent = ReleaseAgent::start();
    let idle_rss = status_kib(agent.pid(), "VmRSS:");
    let mut servers = Vec::new();
    let mut clients = Vec::new();
    let mut left = hold;
    for p in &ports {
        let k = left.min(PER_PROCESS);
        left -= k;
        let mut s = RoleChild::spawn("hold-server", &[p.to_string(), k.to_string()]);
        assert_eq!(s.reply(), "listening");
        servers.push(s);
        let c = RoleChild::spawn("hold-client", &[p.to_string(), k.to_string()]);
        cg.add_pid(c.child.id()).unwrap();
        clients.push(c);
    }
    sonde_integration_tests::wait_for("the hold cgroup exported", Duration::from_secs(30), || {
        agent
            .try_scrape()
            .filter(|s| s.has("container_info", &[("container_id", cid)]))
    });
    let opened = Instant::now();
    for c in &mut clients {
        c.go();
    }
    for c in &mut clients {
        c.reply();
    }
    let open_secs = opened.elapsed().as_secs_f64();
    // The agent sees them all as active, then: one scrape (reads every open connection).
    let deadline = Instant::now() + Duration::from_secs(60);
    let active = loop {
        let s = agent.scrape();
        let a = sum(
            &s,
            "container_net_tcp_active_connections",
            &[("container_id", cid)],
        );
        if a >= hold as f64 || Instant::now() > deadline {
            break a;
        }
        thread::sleep(Duration::from_millis(500));
    };
    let cpu_before = cpu_seconds(agent.pid());
    let t = Instant::now();
    let (code, body) = http_get(agent.port, "/metrics").unwrap();
    let scrape_ms = t.elapsed().as_secs_f64() * 1e3;
    let scrape_cpu_ms = (cpu_seconds(agent.pid()) - cpu_before) * 1e3;
    assert_eq!(code, 200);
    let rss = status_kib(agent.pid(), "VmRSS:");
    let hwm = status_kib(agent.pid(), "VmHWM:");
    let parsed = Scrape::parse(&body);
    let tracked = parsed
        .value("sonde_tcp_connections_tracked", &[])
        .unwrap_or(0.0);
    let lost = sum(&parsed, "sonde_ebpf_events_lost_total", &[]);
    let overflow = sum(&parsed, "sonde_tcp_connection_table_overflow_total", &[]);
    let established = kernel_established(&ports);
    println!(
        "kernel: {established} client-side ESTABLISHED sockets to the hold ports; agent: {lost} events lost, {overflow} table overflows"
    );
    println!();
    println!(
        "| held connections | opened in | active (agent) | tracked (agent) | agent RSS idle | agent RSS held | agent VmHWM | one scrape | scrape CPU |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {hold} | {open_secs:.1} s | {active:.0} | {tracked:.0} | {:.1} MiB | {:.1} MiB | {:.1} MiB | {scrape_ms:.0} ms | {scrape_cpu_ms:.0} ms |",
        idle_rss as f64 / 1024.0,
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0,
    );
    drop(clients);
    drop(servers);
}
