//! Container life cycles through the real agent and a real dockerd, with processes that live a
//! few milliseconds: the workloads real nodes are full of and a long-lived test binary hides.
//! - A container whose only clients are a shell loop of busybox `nc`: every `nc` is gone
//!   before its /proc could be read, so its connects are attributed from the cgroup id the
//!   kernel recorded at connect(): N connects -> exactly N, bytes exact, nothing unattributed.
//! - A container OOM-killed at every start and restarted twice by Docker's restart policy:
//!   exactly 2 restarts and 3 OOM kills, though no run's process is ever read from /proc.
//! - A container removed (`docker rm -f`) has its series gone at once, not after the agent's
//!   grace period (120 s here), while a stopped one keeps them for that period.
//! - The first scrape after `/healthz` says ready already has a container that ran before the
//!   agent started (named, not held pending).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::time::Duration;

use sonde_integration_tests::dockerd::Dockerd;
use sonde_integration_tests::{Agent, Scrape, listener_outside_ephemeral, val};

const TIMEOUT: Duration = Duration::from_secs(60);
const IMAGE: &str = "sonde-busybox:short";

fn docker_agent(d: &Dockerd) -> Agent {
    let agent = Agent::start(&[
        "--docker-socket",
        d.socket.to_str().expect("UTF-8 temp path"),
        "--min-container-age",
        "0s",
        "--container-gc-grace",
        "120s",
    ]);
    agent.wait_tracer_up(TIMEOUT);
    agent
}

const CONNECTS: usize = 30;
const REQUEST: usize = 100;
const RESPONSE: usize = 200;

#[test]
fn a_shell_loop_of_nc_is_counted_exactly() {
    let test = "a_shell_loop_of_nc_is_counted_exactly";
    let Some(d) = Dockerd::with_busybox(test, IMAGE) else {
        return;
    };
    let agent = docker_agent(&d);
    let listener = listener_outside_ephemeral();
    let port = listener.local_addr().unwrap().port();
    // Each connection: read the request whole, answer, close.
    let server = std::thread::spawn(move || {
        for _ in 0..CONNECTS {
            let (mut s, _) = listener.accept().unwrap();
            let mut req = [0u8; REQUEST];
            s.read_exact(&mut req).unwrap();
            s.write_all(&[b'r'; RESPONSE]).unwrap();
        }
    });
    let unattributed_before = val(&agent.scrape(), "sonde_events_unattributed_total", &[]);

    let name = format!("sonde-nc-loop-{}", std::process::id());
    // Host network: 127.0.0.1 is the test's listener, and loopback counts in the host netns.
    let script = format!(
        "for i in $(seq 1 {CONNECTS}); do head -c {REQUEST} /dev/zero | nc 127.0.0.1 {port} >/dev/null; done; sleep 300"
    );
    let id = d
        .run(&[
            "--network",
            "host",
            "--name",
            &name,
            IMAGE,
            "sh",
            "-c",
            &script,
        ])
        .unwrap();
    server.join().expect("the server saw every connection");

    let cid = format!("/docker/{name}");
    let dst = format!("127.0.0.1:{port}");
    let labels = [("container_id", cid.as_str()), ("destination", &dst)];
    let s = agent.scrape_until("every connect", TIMEOUT, |s| {
        val(s, "container_net_tcp_successful_connects_total", &labels) >= CONNECTS as f64
            && val(s, "container_net_tcp_bytes_received_total", &labels)
                >= (CONNECTS * RESPONSE) as f64
    });
    let exact = |name: &str, want: usize| {
        assert_eq!(
            s.value(name, &labels),
            Some(want as f64),
            "{name}\n{}",
            s.text
        );
    };
    exact("container_net_tcp_successful_connects_total", CONNECTS);
    exact("container_net_tcp_bytes_sent_total", CONNECTS * REQUEST);
    exact(
        "container_net_tcp_bytes_received_total",
        CONNECTS * RESPONSE,
    );
    assert_eq!(
        s.value("container_net_tcp_active_connections", &labels),
        Some(0.0)
    );
    // Segments: at least SYN, the request and the FIN out, SYN-ACK, the response and the
    // FIN in, per connection (the kernel's own counts are checked exactly in the tracer's
    // tests against tcp_info).
    for m in [
        "container_net_tcp_packets_sent_total",
        "container_net_tcp_packets_received_total",
    ] {
        let n = val(&s, m, &labels);
        assert!(
            (3.0 * CONNECTS as f64..=12.0 * CONNECTS as f64).contains(&n),
            "{m} = {n} for {CONNECTS} short connections"
        );
    }
    assert_eq!(
        val(&s, "sonde_events_unattributed_total", &[]),
        unattributed_before,
        "no event of the loop was left unattributed"
    );
    assert_eq!(
        val(&s, "container_restarts_total", &[("container_id", &cid)]),
        0.0,
        "a running shell with short-lived children is one run"
    );
    let _ = d.remove(&id);
}

#[test]
fn a_container_oom_killed_at_every_start_counts_each_run() {
    let test = "a_container_oom_killed_at_every_start_counts_each_run";
    let Some(d) = Dockerd::with_busybox(test, IMAGE) else {
        return;
    };
    let agent = docker_agent(&d);
    let name = format!("sonde-oom-loop-{}", std::process::id());
    // busybox dd allocates a 100 MiB block in a 32 MiB container: killed within a second of
    // each start, before the agent could read its /proc.
    let id = d
        .run(&[
            "--restart",
            "on-failure:2",
            "--memory",
            "32m",
            "--memory-swap",
            "32m",
            "--name",
            &name,
            IMAGE,
            "dd",
            "if=/dev/zero",
            "of=/dev/null",
            "bs=100M",
            "count=1",
        ])
        .unwrap();
    sonde_integration_tests::wait_for("docker's two restarts", Duration::from_secs(90), || {
        (d.inspect(&id, "{{.RestartCount}} {{.State.Status}}") == "2 exited").then_some(())
    });
    let state = d.inspect(&id, "{{.State.ExitCode}}");
    assert_eq!(state, "137", "dd was not OOM-killed");
    let cid = format!("/docker/{name}");
    let labels = [("container_id", cid.as_str())];
    let s = agent.scrape_until("3 kills and 2 restarts", TIMEOUT, |s| {
        val(s, "container_oom_kills_total", &labels) >= 3.0
            && val(s, "container_restarts_total", &labels) >= 2.0
    });
    // A moment later nothing more came: exact.
    std::thread::sleep(Duration::from_secs(2));
    let s2 = agent.scrape();
    for s in [&s, &s2] {
        assert_eq!(
            s.value("container_oom_kills_total", &labels),
            Some(3.0),
            "{}",
            s.text
        );
        assert_eq!(
            s.value("container_restarts_total", &labels),
            Some(2.0),
            "{}",
            s.text
        );
    }
}

#[test]
fn a_removed_container_is_gone_at_once_and_a_stopped_one_stays() {
    let test = "a_removed_container_is_gone_at_once_and_a_stopped_one_stays";
    let Some(d) = Dockerd::with_busybox(test, IMAGE) else {
        return;
    };
    let agent = docker_agent(&d);
    let removed = format!("sonde-removed-{}", std::process::id());
    let stopped = format!("sonde-stopped-{}", std::process::id());
    let removed_id = d.run(&["--name", &removed, IMAGE, "sleep", "300"]).unwrap();
    let stopped_id = d.run(&["--name", &stopped, IMAGE, "sleep", "300"]).unwrap();
    let info = |s: &Scrape, name: &str| {
        s.has(
            "container_info",
            &[("container_id", format!("/docker/{name}").as_str())],
        )
    };
    agent.scrape_until("both named", TIMEOUT, |s| {
        info(s, &removed) && info(s, &stopped)
    });
    d.remove(&removed_id).unwrap();
    d.docker(&["stop", "-t", "0", &stopped_id]).unwrap();
    // Well within the 120 s grace period: the removed one is gone...
    let s = agent.scrape_until("the removed container's series gone", TIMEOUT, |s| {
        !info(s, &removed)
    });
    // ...and the stopped one (Docker still has it) is still exported.
    assert!(info(&s, &stopped), "{}", s.text);
}

#[test]
fn the_first_scrape_after_ready_has_the_containers_found_at_start() {
    let test = "the_first_scrape_after_ready_has_the_containers_found_at_start";
    let Some(d) = Dockerd::with_busybox(test, IMAGE) else {
        return;
    };
    let name = format!("sonde-early-{}", std::process::id());
    d.run(&["--name", &name, IMAGE, "sleep", "300"]).unwrap();
    // Agent::start returns at the first /healthz 200.
    let agent = Agent::start(&[
        "--docker-socket",
        d.socket.to_str().expect("UTF-8 temp path"),
        "--min-container-age",
        "0s",
    ]);
    let s = agent.scrape();
    assert!(
        s.has(
            "container_info",
            &[("container_id", format!("/docker/{name}").as_str())]
        ),
        "the first scrape after ready misses the container\n{}",
        s.text
    );
}
