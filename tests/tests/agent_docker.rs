//! Docker containers end to end: a private dockerd (tests/src/dockerd.rs) runs real containers,
//! the real agent discovers them from /proc, names them through the Docker API and measures their
//! cgroups. Covers naming (plain, swarm, skipped pod sandboxes), limits and usage, removal,
//! restart, and an unreachable Docker (containers held, never exported under a guessed name).
//!
//! Each test has its own dockerd and agent, so they run in parallel; an agent also sees the other
//! tests' `/docker/<id>` cgroups, which its own dockerd does not know (they stay pending there),
//! so assertions are about this test's containers only.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use sonde_integration_tests::dockerd::Dockerd;
use sonde_integration_tests::{Agent, Scrape};

const IMAGE: &str = "sonde-busybox:test";
const TIMEOUT: Duration = Duration::from_secs(30);

/// The agent, pointed at `socket`, exporting containers as soon as they are named.
fn agent(socket: &str, extra: &[&str]) -> Agent {
    let mut args = vec!["--docker-socket", socket, "--min-container-age", "0s"];
    args.extend_from_slice(extra);
    Agent::start(&args)
}

fn socket(d: &Dockerd) -> &str {
    d.socket.to_str().expect("UTF-8 temp path")
}

/// The `sonde_containers_tracked{state}` gauge.
fn tracked(s: &Scrape, state: &str) -> f64 {
    s.value("sonde_containers_tracked", &[("state", state)])
        .unwrap_or(0.0)
}

/// Every container_id label value in the scrape.
fn container_ids(s: &Scrape) -> Vec<&str> {
    s.samples
        .iter()
        .filter_map(|x| x.labels.get("container_id").map(String::as_str))
        .collect()
}

#[test]
fn docker_container_is_named_measured_and_removed() {
    let test = "docker_container_is_named_measured_and_removed";
    let Some(d) = Dockerd::with_busybox(test, IMAGE) else {
        return;
    };
    let id = d
        .run(&[
            "--name",
            "sonde-e2e-web",
            "--memory",
            "64m",
            "--cpus",
            "0.5",
            IMAGE,
            "sh",
            "-c",
            "while :; do :; done",
        ])
        .unwrap();
    let agent = agent(socket(&d), &["--container-gc-grace", "1s"]);
    let name = "/docker/sonde-e2e-web";
    let cid: &[(&str, &str)] = &[("container_id", name)];

    let s = agent.scrape_until("the web container's metrics", TIMEOUT, |s| {
        s.value("container_resources_cpu_usage_seconds_total", cid)
            .is_some_and(|v| v > 0.0)
            && s.value("container_resources_memory_rss_bytes", cid)
                .is_some_and(|v| v > 0.0)
    });
    assert_eq!(
        s.value(
            "container_info",
            &[("container_id", name), ("image", IMAGE)]
        ),
        Some(1.0),
        "{}",
        s.text
    );
    assert_eq!(s.find("container_info", cid).count(), 1);
    assert_eq!(
        s.value("container_resources_cpu_limit_cores", cid),
        Some(0.5)
    );
    assert_eq!(
        s.value("container_resources_memory_limit_bytes", cid),
        Some(67108864.0)
    );
    assert_eq!(
        s.value("sonde_subsystem_up", &[("subsystem", "docker")]),
        Some(1.0)
    );
    assert!(tracked(&s, "named") >= 1.0, "{}", s.text);
    // Named by its Docker name only: the 64-hex id appears nowhere, not even in a label.
    assert!(
        !s.text.contains(&id),
        "the container id leaked:\n{}",
        s.text
    );
    assert!(
        !s.text.contains(&id[..12]),
        "the short id leaked:\n{}",
        s.text
    );

    // Removed: after the grace period every series of the container is gone.
    d.remove(&id).unwrap();
    agent.scrape_until("the removed container's series to vanish", TIMEOUT, |s| {
        !container_ids(s).contains(&name)
    });
}

#[test]
fn swarm_tasks_are_named_and_pod_sandboxes_skipped() {
    let test = "swarm_tasks_are_named_and_pod_sandboxes_skipped";
    let Some(d) = Dockerd::with_busybox(test, IMAGE) else {
        return;
    };
    // Started before the containers: they are found by the periodic /proc scan.
    let agent = agent(socket(&d), &[]);
    let swarm = d
        .run(&[
            "--label",
            "com.docker.swarm.task.name=web.2.abcdef",
            "--label",
            "com.docker.swarm.service.name=shop_web",
            "--label",
            "com.docker.stack.namespace=shop",
            IMAGE,
            "sleep",
            "300",
        ])
        .unwrap();
    let sandbox = d
        .run(&[
            "--name",
            "k8s_POD_web-7c5ddbdf54-x8kmz_shop_0",
            "--label",
            "io.kubernetes.docker.type=podsandbox",
            "--label",
            "io.kubernetes.pod.namespace=shop",
            "--label",
            "io.kubernetes.pod.name=web-7c5ddbdf54-x8kmz",
            "--label",
            "io.kubernetes.pod.uid=0b1c2d3e-aaaa-bbbb-cccc-000000000001",
            "--label",
            "io.kubernetes.container.name=POD",
            IMAGE,
            "sleep",
            "300",
        ])
        .unwrap();

    // Both are decided once the swarm task is named and the sandbox counted as skipped (only
    // this test's dockerd knows them, so nothing else can be skipped by this agent).
    let s = agent.scrape_until("the swarm task named, the sandbox skipped", TIMEOUT, |s| {
        s.has("container_info", &[("container_id", "/swarm/shop/web/2")])
            && tracked(s, "skipped") >= 1.0
    });
    assert_eq!(
        s.value(
            "container_info",
            &[("container_id", "/swarm/shop/web/2"), ("image", IMAGE)]
        ),
        Some(1.0)
    );
    assert_eq!(tracked(&s, "skipped"), 1.0, "{}", s.text);
    for (what, id) in [("swarm task", &swarm), ("sandbox", &sandbox)] {
        assert!(
            !s.text.contains(id.as_str()),
            "{what} id leaked:\n{}",
            s.text
        );
    }
    // The sandbox is exported under no name at all.
    for c in container_ids(&s) {
        assert!(
            !c.starts_with("/k8s/") && !c.contains("web-7c5ddbdf54") && !c.contains("k8s_POD"),
            "sandbox exported as {c}:\n{}",
            s.text
        );
    }
    // A later scrape still does not export it (its naming is final, not pending).
    let later = agent.scrape();
    assert!(
        !container_ids(&later)
            .iter()
            .any(|c| c.starts_with("/k8s/") || c.contains("k8s_POD")),
        "{}",
        later.text
    );
}

#[test]
fn unreachable_docker_holds_containers() {
    let test = "unreachable_docker_holds_containers";
    let Some(d) = Dockerd::with_busybox(test, IMAGE) else {
        return;
    };
    let id = d
        .run(&["--name", "sonde-e2e-held", IMAGE, "sleep", "300"])
        .unwrap();
    let agent = agent("/nonexistent.sock", &[]);

    let s = agent.scrape_until("docker down and the container pending", TIMEOUT, |s| {
        s.value("sonde_subsystem_up", &[("subsystem", "docker")]) == Some(0.0)
            && tracked(s, "pending") >= 1.0
    });
    for c in container_ids(&s) {
        assert!(!c.starts_with("/docker/"), "exported {c} without Docker");
    }
    assert!(
        !s.text.contains(&id),
        "guessed name from the id:\n{}",
        s.text
    );
    // The agent says why, naming the socket it tried.
    let log = sonde_integration_tests::wait_for("the agent's docker warning", TIMEOUT, || {
        let log = agent.log_text();
        log.lines()
            .any(|l| l.contains("docker") && l.contains("/nonexistent.sock"))
            .then_some(log)
    });
    assert!(log.contains("docker"), "{log}");
    // Still held a while later: pending is not a timeout to a guessed name.
    let later = agent.scrape();
    assert!(
        !container_ids(&later)
            .iter()
            .any(|c| c.starts_with("/docker/")),
        "{}",
        later.text
    );
    assert!(tracked(&later, "pending") >= 1.0, "{}", later.text);
}

#[test]
fn restarted_container_keeps_its_name() {
    let test = "restarted_container_keeps_its_name";
    let Some(d) = Dockerd::with_busybox(test, IMAGE) else {
        return;
    };
    let id = d
        .run(&["--name", "sonde-e2e-restart", IMAGE, "sleep", "300"])
        .unwrap();
    // A short grace: whether the restart outlasts it (entry collected, then found and named
    // again) or not (the new process joins the kept entry), the same name must come back.
    let agent = agent(socket(&d), &["--container-gc-grace", "1s"]);
    let name = "/docker/sonde-e2e-restart";
    let cid: &[(&str, &str)] = &[("container_id", name)];
    agent.scrape_until("the container named", TIMEOUT, |s| {
        s.has("container_info", cid)
            && s.value("container_resources_memory_rss_bytes", cid)
                .is_some_and(|v| v > 0.0)
    });
    let pid_before = d.pid_of(&id).unwrap();

    d.docker(&["restart", "-t", "0", &id]).unwrap();
    let restarted = Instant::now();
    let pid_after = d.pid_of(&id).unwrap();
    assert_ne!(pid_before, pid_after, "docker restart kept the process");
    let cgroup = std::fs::read_to_string(format!("/proc/{pid_after}/cgroup")).unwrap();
    assert!(
        cgroup.contains(&format!("/docker/{id}")),
        "restarted into another cgroup: {cgroup}"
    );

    // The agent finds the new process in the same cgroup: the same name, once, measured again.
    // Looked at only once the grace period has surely passed, so a kept entry without the new
    // process would have been collected by then.
    let s = agent.scrape_until("the restarted container measured", TIMEOUT, |s| {
        restarted.elapsed() > Duration::from_secs(4)
            && s.value("container_resources_memory_rss_bytes", cid)
                .is_some_and(|v| v > 0.0)
    });
    assert_eq!(
        s.value(
            "container_info",
            &[("container_id", name), ("image", IMAGE)]
        ),
        Some(1.0)
    );
    let ours: Vec<&str> = container_ids(&s)
        .into_iter()
        .filter(|c| c.contains("sonde-e2e-restart") || c.contains(&id[..12]))
        .collect();
    assert!(
        ours.iter().all(|c| *c == name),
        "renamed after restart: {ours:?}"
    );
    assert!(!s.text.contains(&id), "{}", s.text);
}
