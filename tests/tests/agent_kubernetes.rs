//! Kubernetes and containerd, for real: a private containerd with its CRI plugin
//! (`sonde_integration_tests::containerd`), pods created through CRI with the kubelet's labels,
//! plain `ctr run` containers, the daemon killed and restarted, and runtimes that misbehave. The
//! agent must name every container as Coroot does, never export sandboxes, and never hang or
//! guess when the runtime does not answer.
//!
//! Tests run one at a time (each starts its own containerd; the machine has two cores).
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sonde_integration_tests::containerd::{Containerd, IMAGE, K8S_NAMESPACE, Pod};
use sonde_integration_tests::cri::proto::container_state;
use sonde_integration_tests::{Agent, Scrape, cgroups};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The cgroup path (relative) a process is in, per `/proc/<pid>/cgroup` (the memory
/// controller on v1, the unified line otherwise).
fn cgroup_of(pid: u32) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let line = |pred: &dyn Fn(&str) -> bool| {
        text.lines()
            .find_map(|l| {
                let mut f = l.splitn(3, ':');
                let (_, ctrl, path) = (f.next()?, f.next()?, f.next()?);
                pred(ctrl).then(|| path.to_owned())
            })
            .filter(|p| p != "/")
    };
    line(&|c| c.split(',').any(|c| c == "memory"))
        .or_else(|| line(&|c| c.is_empty()))
        .unwrap_or_default()
}

fn agent_for(socket: &Path) -> Agent {
    Agent::start(&[
        "--containerd-socket",
        socket.to_str().unwrap(),
        "--docker-socket",
        "/nonexistent/docker.sock",
        "--min-container-age",
        "0s",
        "--container-gc-grace",
        "1s",
    ])
}

/// Fails unless the agent knows `--containerd-socket` (the flag that wires containerd in).
fn require_containerd_flag(test: &str) {
    let bin = sonde_integration_tests::agent::sonde_binary();
    let help = std::process::Command::new(bin)
        .arg("--help")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&help.stdout).contains("--containerd-socket"),
        "{test}: the agent has no --containerd-socket flag (containerd metadata not wired yet)"
    );
}

/// Every sample whose label values mention `needle`.
fn series_mentioning<'a>(s: &'a Scrape, needle: &str) -> Vec<&'a sonde_integration_tests::Sample> {
    s.samples
        .iter()
        .filter(|x| x.labels.values().any(|v| v.contains(needle)))
        .collect()
}

fn assert_named(agent: &Agent, container_id: &str) -> Scrape {
    assert_named_within(agent, container_id, Duration::from_secs(30))
}

/// Waits up to `timeout` for `container_info{container_id, image=IMAGE} 1` and the container's
/// CPU and (non-zero) memory series.
fn assert_named_within(agent: &Agent, container_id: &str, timeout: Duration) -> Scrape {
    agent.scrape_until(
        &format!("container_info and resource metrics of {container_id}"),
        timeout,
        |s| {
            s.value(
                "container_info",
                &[("container_id", container_id), ("image", IMAGE)],
            ) == Some(1.0)
                && s.has(
                    "container_resources_cpu_usage_seconds_total",
                    &[("container_id", container_id)],
                )
                && s.value(
                    "container_resources_memory_rss_bytes",
                    &[("container_id", container_id)],
                )
                .unwrap_or(0.0)
                    > 0.0
        },
    )
}

/// The sandbox (pause) container must never show: neither its id nor the name "POD" nor any
/// container of the pod other than `containers`.
fn assert_sandbox_hidden(s: &Scrape, pod: &Pod, containers: &[&str]) {
    let leaked = series_mentioning(s, &pod.id);
    assert!(leaked.is_empty(), "sandbox {} exported: {leaked:?}", pod.id);
    let pod_prefix = format!("/k8s/{}/{}/", pod.namespace, pod.name);
    let odd: Vec<_> = s
        .samples
        .iter()
        .filter(|x| {
            x.labels.get("container_id").is_some_and(|c| {
                c.ends_with("/POD")
                    || c.strip_prefix(&pod_prefix)
                        .is_some_and(|name| !containers.contains(&name))
            })
        })
        .collect();
    assert!(odd.is_empty(), "unexpected containers of the pod: {odd:?}");
}

#[test]
fn harness_runs_cri_pods_with_kubelet_labels() {
    let _serial = serial();
    let Some(mut ctrd) = Containerd::new("harness_runs_cri_pods_with_kubelet_labels") else {
        return;
    };
    let cri = ctrd.cri();
    let version = cri.version().unwrap();
    assert_eq!(version.runtime_name, "containerd");

    let pod = ctrd.run_pod("web-7d4b9c8f6d-x2x9q", "shop");
    let app = ctrd.run_container(&pod, "app", &["sleep", "300"]);
    let status = cri.container_status(&app).unwrap().status.unwrap();
    assert_eq!(status.state, container_state::RUNNING);
    assert_eq!(
        status.labels["io.kubernetes.pod.name"],
        "web-7d4b9c8f6d-x2x9q"
    );
    assert_eq!(status.labels["io.kubernetes.pod.namespace"], "shop");
    assert_eq!(status.labels["io.kubernetes.container.name"], "app");
    assert!(
        status.log_path.ends_with("app/0.log"),
        "{}",
        status.log_path
    );

    // The container's process is in the cgroupfs path of a BestEffort pod, and so is the
    // sandbox's; the cgroup directory exists in every hierarchy.
    let pid = cri.container_pid(&app).unwrap();
    assert_eq!(cgroup_of(pid), pod.container_cgroup(&app));
    let sandbox_pid = ctrd.task_pid(K8S_NAMESPACE, &pod.id).unwrap();
    assert_eq!(cgroup_of(sandbox_pid), pod.container_cgroup(&pod.id));
    for h in cgroups::hierarchies() {
        let dir = h.join(pod.container_cgroup(&app).trim_start_matches('/'));
        assert!(dir.is_dir(), "{} missing", dir.display());
    }
    // containerd's own record carries the labels the agent reads, and the CRI kind.
    let info = ctrd.ctr(&["-n", K8S_NAMESPACE, "containers", "info", &app]);
    assert!(
        info.contains("\"io.kubernetes.pod.namespace\": \"shop\""),
        "{info}"
    );
    assert!(
        info.contains("\"io.cri-containerd.kind\": \"container\""),
        "{info}"
    );

    // A plain container lands in /<namespace>/<id>.
    ctrd.run_plain("sonde-plain", "plain1", &["sleep", "300"]);
    let plain_pid = ctrd.task_pid("sonde-plain", "plain1").unwrap();
    assert_eq!(cgroup_of(plain_pid), "/sonde-plain/plain1");

    // Killed and restarted: the running containers survive and new pods still work.
    ctrd.stop();
    assert!(cri.version().is_err());
    ctrd.start();
    assert_eq!(
        cri.container_status(&app).unwrap().status.unwrap().state,
        container_state::RUNNING
    );
    let pod2 = ctrd.run_pod("after-restart-5f6c7b8d9-abcde", "shop");
    let app2 = ctrd.run_container(&pod2, "app", &["sleep", "300"]);
    let pid2 = cri.container_pid(&app2).unwrap();
    assert_eq!(cgroup_of(pid2), pod2.container_cgroup(&app2));

    // Removal takes the containers and their cgroups away.
    ctrd.remove_pod(&pod);
    assert!(cri.container_status(&app).is_err());
    let leaf = cgroups::hierarchies()[0].join(pod.container_cgroup(&app).trim_start_matches('/'));
    assert!(!leaf.exists(), "{} left behind", leaf.display());
}

/// Minutes since the epoch, as the CronJob controller puts them in pod names.
fn cronjob_minutes() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 60
        - 90
}

#[test]
fn pod_containers_are_named_as_coroot_does() {
    let _serial = serial();
    let test = "pod_containers_are_named_as_coroot_does";
    let Some(ctrd) = Containerd::new(test) else {
        return;
    };
    require_containerd_flag(test);
    let pod = ctrd.run_pod("web-7d4b9c8f6d-x2x9q", "shop");
    let app = ctrd.run_container(&pod, "app", &["sleep", "300"]);
    let cron_pod_name = format!("backup-{}-x7k2p", cronjob_minutes());
    let cron = ctrd.run_pod(&cron_pod_name, "shop");
    ctrd.run_container(&cron, "dump", &["sleep", "300"]);
    ctrd.run_plain("sonde-plain", "plain1", &["sleep", "300"]);

    let agent = agent_for(ctrd.socket());
    let app_id = "/k8s/shop/web-7d4b9c8f6d-x2x9q/app";
    let s = assert_named(&agent, app_id);
    assert_named(&agent, "/k8s-cronjob/shop/backup/dump");
    // A plain containerd namespace: `/containerd/<namespace>/<id>` (docs/architecture.md).
    assert_named(&agent, "/containerd/sonde-plain/plain1");

    assert_sandbox_hidden(&s, &pod, &["app"]);
    assert_sandbox_hidden(&s, &cron, &["dump"]);
    // The raw cgroup path or container id is never used as a name.
    let raw = series_mentioning(&s, &app);
    assert!(raw.is_empty(), "container id {app} leaked: {raw:?}");

    // app_id rides on the network metrics only (proven with real connections in
    // pod_connections_carry_the_workload_app_id); any series of the app that has one carries
    // the workload.
    for sample in &s.samples {
        if sample.labels.get("container_id").map(String::as_str) == Some(app_id)
            && let Some(a) = sample.labels.get("app_id")
        {
            assert_eq!(a, "/k8s/shop/web", "{sample:?}");
        }
    }
}

/// The app container's command: a listener on 8080 (each accepted connection held 2 s by
/// `sleep 2`, so the connecting `nc` lives long enough for its pid to be resolved), then a
/// connect to the pod's own eth0 address on 8080 every second. Not loopback (which counts only
/// in the host's network namespace) and not an ephemeral port, so it is a destination.
const CONNECT_TO_SELF: &str = r#"nc -ll -p 8080 -e sleep 2 &
while :; do
  ip=$(ip -4 addr show dev eth0 | sed -n 's/.*inet \([0-9.]*\).*/\1/p')
  [ -n "$ip" ] && nc -w 1 "$ip" 8080 </dev/null
  sleep 1
done"#;

/// The IPv4 addresses local to the network namespace of `pid`, other than loopback (the host
/// routes of the `local` table in `/proc/<pid>/net/fib_trie`: a `|-- a.b.c.d` line followed by
/// `/32 host LOCAL`).
fn netns_local_ipv4(pid: u32) -> Vec<std::net::Ipv4Addr> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/fib_trie")).unwrap();
    let mut out = Vec::new();
    let mut last = None;
    for line in text.lines() {
        let t = line.trim_start_matches([' ', '|', '+', '-']).trim();
        if let Ok(ip) = t.parse::<std::net::Ipv4Addr>() {
            last = Some(ip);
        } else if t == "/32 host LOCAL"
            && let Some(ip) = last
            && !ip.is_loopback()
            && !out.contains(&ip)
        {
            out.push(ip);
        }
    }
    out
}

/// The addresses listening on `port` in the network namespace of `pid`, as `SocketAddr`
/// displays them (`0.0.0.0:8080`, `[::]:8080`), from `/proc/<pid>/net/tcp{,6}`.
fn netns_listeners(pid: u32, port: u16) -> Vec<String> {
    let mut out = Vec::new();
    for file in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{file}")).unwrap();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st ...; 0A is TCP_LISTEN.
            let (Some(local), Some("0A")) = (f.get(1), f.get(3).copied()) else {
                continue;
            };
            let (hex_ip, hex_port) = local.split_once(':').unwrap();
            if u16::from_str_radix(hex_port, 16).unwrap() != port {
                continue;
            }
            // The address is in 32-bit words, each in host (little-endian) byte order.
            let words: Vec<u32> = (0..hex_ip.len() / 8)
                .map(|i| u32::from_str_radix(&hex_ip[i * 8..i * 8 + 8], 16).unwrap())
                .collect();
            let ip: std::net::IpAddr = if words.len() == 1 {
                std::net::Ipv4Addr::from(words[0].to_le_bytes()).into()
            } else {
                let mut b = [0u8; 16];
                for (i, w) in words.iter().enumerate() {
                    b[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
                }
                std::net::Ipv6Addr::from(b).into()
            };
            out.push(std::net::SocketAddr::new(ip, port).to_string());
        }
    }
    out
}

#[test]
fn pod_connections_carry_the_workload_app_id() {
    let _serial = serial();
    let test = "pod_connections_carry_the_workload_app_id";
    let Some(ctrd) = Containerd::new(test) else {
        return;
    };
    require_containerd_flag(test);
    // The agent first: its tracer sees sockets change, not the sockets that already exist.
    let agent = agent_for(ctrd.socket());
    agent.wait_tracer_up(Duration::from_secs(60));
    let pod = ctrd.run_pod("web-7d4b9c8f6d-x2x9q", "shop");
    let app = ctrd.run_container(&pod, "app", &["sh", "-c", CONNECT_TO_SELF]);
    let pid = ctrd.cri().container_pid(&app).unwrap();
    let ips = netns_local_ipv4(pid);
    assert_eq!(ips.len(), 1, "the pod's addresses: {ips:?}");
    assert!(ips[0].is_private(), "pod address {} not private", ips[0]);
    let destination = format!("{}:8080", ips[0]);
    let listeners = sonde_integration_tests::wait_for(
        "the app's listener on 8080",
        Duration::from_secs(30),
        || Some(netns_listeners(pid, 8080)).filter(|l| !l.is_empty()),
    );

    let container_id = "/k8s/shop/web-7d4b9c8f6d-x2x9q/app";
    let app_id = "/k8s/shop/web";
    let connects = |s: &Scrape| {
        s.value(
            "container_net_tcp_successful_connects_total",
            &[
                ("container_id", container_id),
                ("destination", &destination),
                ("actual_destination", &destination),
                ("app_id", app_id),
            ],
        )
        .unwrap_or(0.0)
    };
    let s = agent.scrape_until(
        &format!(
            "container_net_tcp_successful_connects_total{{container_id=\"{container_id}\",\
             destination=\"{destination}\",app_id=\"{app_id}\"}} >= 1"
        ),
        Duration::from_secs(60),
        |s| connects(s) >= 1.0,
    );
    // The app listens on a wildcard (0.0.0.0:8080 or [::]:8080) in the pod's own network
    // namespace: exported as the pod's address, which is what clients dial and what the
    // server matches `actual_destination` against; the wildcard and loopback never.
    assert!(
        listeners
            .iter()
            .all(|l| l.starts_with("0.0.0.0:") || l.starts_with("[::]:")),
        "{listeners:?}"
    );
    let listen_series: Vec<String> = s
        .find(
            "container_net_tcp_listen_info",
            &[("container_id", container_id)],
        )
        .map(|x| x.labels["listen_addr"].clone())
        .collect();
    assert!(
        listen_series.contains(&destination),
        "the wildcard listener is exported as the pod's {destination}: {listen_series:?}"
    );
    for l in &listen_series {
        assert!(
            !l.starts_with("0.0.0.0:") && !l.starts_with("[::]:") && !l.starts_with("127."),
            "{l} is no service endpoint: {listen_series:?}"
        );
    }
    assert_eq!(
        s.value(
            "container_net_tcp_listen_info",
            &[
                ("container_id", container_id),
                ("listen_addr", &destination),
                ("proxy", "")
            ],
        ),
        Some(1.0)
    );
    // Every network series of the app carries its workload, and only it; the sandbox (which
    // shares the network namespace but opens no socket) exports nothing.
    let net: Vec<_> = s
        .find("container_net_tcp_successful_connects_total", &[])
        .chain(s.find("container_net_tcp_active_connections", &[]))
        .chain(s.find("container_net_tcp_bytes_sent_total", &[]))
        .filter(|x| x.labels.get("container_id").map(String::as_str) == Some(container_id))
        .collect();
    assert!(!net.is_empty());
    for x in &net {
        assert_eq!(x.labels["app_id"], app_id, "{x:?}");
    }
    assert_sandbox_hidden(&s, &pod, &["app"]);
    assert!(series_mentioning(&s, &app).is_empty());
    // The counter keeps counting: the loop connects every second.
    let before = connects(&s);
    agent.scrape_until("more connects", Duration::from_secs(60), |s| {
        connects(s) > before
    });
}

#[test]
fn containers_are_named_after_a_runtime_restart() {
    let _serial = serial();
    let test = "containers_are_named_after_a_runtime_restart";
    let Some(mut ctrd) = Containerd::new(test) else {
        return;
    };
    require_containerd_flag(test);
    let pod = ctrd.run_pod("web-7d4b9c8f6d-x2x9q", "shop");
    ctrd.run_container(&pod, "app", &["sleep", "300"]);
    let agent = agent_for(ctrd.socket());
    assert_named(&agent, "/k8s/shop/web-7d4b9c8f6d-x2x9q/app");

    ctrd.stop();
    // While the runtime is down (long enough for the agent to notice) the agent keeps serving
    // and keeps what it knew.
    let s = agent.scrape_until("containerd reported down", Duration::from_secs(60), |s| {
        s.value("sonde_subsystem_up", &[("subsystem", "containerd")]) == Some(0.0)
    });
    assert!(s.has(
        "container_info",
        &[("container_id", "/k8s/shop/web-7d4b9c8f6d-x2x9q/app")]
    ));
    ctrd.start();

    let pod2 = ctrd.run_pod("api-6b8f7c9d5-q7w2z", "shop");
    let api = ctrd.run_container(&pod2, "server", &["sleep", "300"]);
    // Bounded by the agent's runtime probe interval (30 s) plus a lookup retry.
    let s = assert_named_within(
        &agent,
        "/k8s/shop/api-6b8f7c9d5-q7w2z/server",
        Duration::from_secs(90),
    );
    assert_sandbox_hidden(&s, &pod2, &["server"]);
    assert!(series_mentioning(&s, &api).is_empty());
    // The first container is still there under its name.
    assert!(s.has(
        "container_info",
        &[("container_id", "/k8s/shop/web-7d4b9c8f6d-x2x9q/app")]
    ));
}

/// What the socket given to the agent does with each new connection.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// Relay to the real containerd.
    Forward = 0,
    /// Accept and never send a byte (connections are held open).
    Hang = 1,
    /// Send bytes that are not HTTP/2, then close.
    Garbage = 2,
}

/// A unix socket in front of the harness' containerd whose behaviour can be switched mid-test
/// (the agent opens a connection per call, so a switch takes effect at its next call).
struct RuntimeProxy {
    path: PathBuf,
    mode: Arc<AtomicU8>,
    _dir: tempfile::TempDir,
}

impl RuntimeProxy {
    fn start(upstream: &Path, mode: Mode) -> RuntimeProxy {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("proxy.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let shared = Arc::new(AtomicU8::new(mode as u8));
        let (upstream, current) = (upstream.to_owned(), shared.clone());
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { break };
                match current.load(Ordering::SeqCst) {
                    0 => {
                        let Ok(up) = UnixStream::connect(&upstream) else {
                            continue;
                        };
                        relay(conn, up);
                    }
                    1 => {
                        // Bounded, so the agent's retries cannot grow this without limit.
                        if held.len() < 256 {
                            held.push(conn);
                        }
                    }
                    _ => {
                        let _ = conn
                            .write_all(b"\x00\x00\x12\x04\x00garbage, not HTTP/2\r\n\r\n\xff\xfe");
                    }
                }
            }
        });
        RuntimeProxy {
            path,
            mode: shared,
            _dir: dir,
        }
    }

    fn set(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }
}

/// Copies both ways between two sockets until either side closes.
fn relay(a: UnixStream, b: UnixStream) {
    let (a2, b2) = (a.try_clone().unwrap(), b.try_clone().unwrap());
    let pipe = |mut from: UnixStream, mut to: UnixStream| {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut from, &mut to);
            let _ = to.shutdown(std::net::Shutdown::Write);
        });
    };
    pipe(a, b2);
    pipe(b, a2);
}

fn containerd_errors(s: &Scrape, reason: Option<&str>) -> f64 {
    s.find("sonde_metadata_errors_total", &[("runtime", "containerd")])
        .filter(|x| reason.is_none_or(|r| x.labels.get("reason").map(String::as_str) == Some(r)))
        .map(|x| x.value)
        .sum()
}

/// Scrapes a few times over a few seconds (each scrape must return: `Agent::scrape` gives up
/// after 30 s), asserting that nothing of the pod is exported: no guessed name, no raw id.
fn assert_held_not_guessed(agent: &Agent, pod: &Pod, container: &str) {
    for _ in 0..8 {
        let s = agent.scrape();
        for needle in [container, pod.id.as_str(), "/k8s/", "kubepods", &pod.uid] {
            let guessed = series_mentioning(&s, needle);
            assert!(
                guessed.is_empty(),
                "container exported without metadata: {guessed:?}"
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The agent starts with a runtime socket that never answers (or answers garbage) while a pod
/// runs: it keeps serving, says containerd is down, counts the failures and holds the
/// container unnamed.
fn broken_from_the_start(test: &str, mode: Mode) {
    let _serial = serial();
    let Some(ctrd) = Containerd::new(test) else {
        return;
    };
    require_containerd_flag(test);
    let pod = ctrd.run_pod("web-7d4b9c8f6d-x2x9q", "shop");
    let app = ctrd.run_container(&pod, "app", &["sleep", "300"]);
    let proxy = RuntimeProxy::start(ctrd.socket(), mode);
    let agent = agent_for(&proxy.path);

    agent.scrape_until(
        "containerd reported down and the container pending",
        Duration::from_secs(30),
        |s| {
            s.value("sonde_subsystem_up", &[("subsystem", "containerd")]) == Some(0.0)
                && s.value("sonde_containers_tracked", &[("state", "pending")])
                    .unwrap_or(0.0)
                    >= 1.0
        },
    );
    assert_held_not_guessed(&agent, &pod, &app);
    agent.scrape_until(
        "sonde_metadata_errors_total{runtime=\"containerd\"} > 0",
        Duration::from_secs(30),
        |s| containerd_errors(s, None) > 0.0,
    );
}

#[test]
fn hanging_runtime_from_the_start_is_not_guessed() {
    broken_from_the_start("hanging_runtime_from_the_start_is_not_guessed", Mode::Hang);
}

#[test]
fn garbage_runtime_from_the_start_is_not_guessed() {
    broken_from_the_start(
        "garbage_runtime_from_the_start_is_not_guessed",
        Mode::Garbage,
    );
}

/// containerd answers, then stops answering (or answers garbage) just before a pod starts:
/// the lookup fails in bounded time and is counted with its reason, scrapes keep returning,
/// the container is held unnamed; once containerd answers again it gets its real name.
fn broken_mid_run(test: &str, mode: Mode, reason: &str) {
    let _serial = serial();
    let Some(ctrd) = Containerd::new(test) else {
        return;
    };
    require_containerd_flag(test);
    let proxy = RuntimeProxy::start(ctrd.socket(), Mode::Forward);
    let agent = agent_for(&proxy.path);
    agent.scrape_until("containerd reported up", Duration::from_secs(30), |s| {
        s.value("sonde_subsystem_up", &[("subsystem", "containerd")]) == Some(1.0)
    });

    proxy.set(mode);
    let pod = ctrd.run_pod("web-7d4b9c8f6d-x2x9q", "shop");
    let app = ctrd.run_container(&pod, "app", &["sleep", "300"]);
    agent.scrape_until(
        &format!("sonde_metadata_errors_total{{runtime=\"containerd\",reason=\"{reason}\"}} > 0"),
        Duration::from_secs(30),
        |s| containerd_errors(s, Some(reason)) > 0.0,
    );
    assert_held_not_guessed(&agent, &pod, &app);

    // Back to normal: the held container is named (after the agent's next runtime probe and
    // lookup retry, both bounded).
    proxy.set(Mode::Forward);
    let app_id = "/k8s/shop/web-7d4b9c8f6d-x2x9q/app";
    agent.scrape_until(
        "the held container named once containerd answers",
        Duration::from_secs(120),
        |s| s.has("container_info", &[("container_id", app_id)]),
    );
    let s = agent.scrape();
    assert_sandbox_hidden(&s, &pod, &["app"]);
}

#[test]
fn runtime_hanging_mid_run_holds_then_names() {
    broken_mid_run(
        "runtime_hanging_mid_run_holds_then_names",
        Mode::Hang,
        "timeout",
    );
}

#[test]
fn runtime_garbage_mid_run_holds_then_names() {
    broken_mid_run(
        "runtime_garbage_mid_run_holds_then_names",
        Mode::Garbage,
        "error",
    );
}

/// The kubelet replaces a crashed container with a new one: new runtime id, new cgroup, same
/// pod and container name. `/k8s/<ns>/<pod>/<container>` counts it as one restart, on one
/// series per metric (Coroot's restart and CrashLoopBackOff inspections read exactly this).
#[test]
fn a_container_replaced_kubelet_style_is_one_restart_of_its_name() {
    let _serial = serial();
    let test = "a_container_replaced_kubelet_style_is_one_restart_of_its_name";
    let Some(ctrd) = Containerd::new(test) else {
        return;
    };
    require_containerd_flag(test);
    let pod = ctrd.run_pod("crash-5d4b9c8f6d-q8w2e", "shop");
    let agent = agent_for(ctrd.socket());
    let first = ctrd.run_container(&pod, "app", &["sh", "-c", "sleep 12; exit 1"]);
    let cid = "/k8s/shop/crash-5d4b9c8f6d-q8w2e/app";
    assert_named(&agent, cid);
    let cri = ctrd.cri();
    sonde_integration_tests::wait_for("the first run's exit", Duration::from_secs(60), || {
        let status = cri.container_status(&first).ok()?.status?;
        (status.state == container_state::EXITED).then_some(())
    });
    // What the kubelet does next: the old container goes, a new one with the same name starts.
    cri.remove_container(&first).unwrap();
    let second = ctrd.run_container(&pod, "app", &["sleep", "300"]);
    let pid = cri.container_pid(&second).unwrap();
    let restarts = |s: &Scrape| {
        s.samples
            .iter()
            .filter(|x| {
                x.name == "container_restarts_total"
                    && x.labels.get("container_id").map(String::as_str) == Some(cid)
            })
            .map(|x| x.value)
            .collect::<Vec<_>>()
    };
    let s = agent.scrape_until("the replacement's restart", Duration::from_secs(60), |s| {
        restarts(s).iter().any(|v| *v >= 1.0)
    });
    assert_eq!(
        restarts(&s),
        vec![1.0],
        "one series, one restart\n{}",
        s.text
    );
    assert!(
        series_mentioning(&s, &second).is_empty(),
        "runtime id leaked"
    );
    // The new run is the one exported: its memory is there (the process is alive).
    assert!(cgroup_of(pid).contains(&second), "{}", cgroup_of(pid));
}
