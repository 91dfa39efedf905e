//! Container resource metrics from real cgroups: a process moved into a test cgroup shaped like a
//! systemd service is discovered, named, measured against its own cgroup files, and its series
//! vanish when it is gone.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::Duration;

use sonde_integration_tests::cgroups::TestCgroup;
use sonde_integration_tests::{Agent, privileged};

fn cpuacct_usage_seconds(cg: &TestCgroup) -> f64 {
    if let Some(dir) = cg.dir("cpuacct")
        && let Ok(text) = std::fs::read_to_string(dir.join("cpuacct.usage"))
    {
        return text.trim().parse::<f64>().unwrap() / 1e9;
    }
    let text = std::fs::read_to_string(cg.dir("unified").unwrap().join("cpu.stat")).unwrap();
    let usec: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("usage_usec "))
        .unwrap()
        .parse()
        .unwrap();
    usec / 1e6
}

#[test]
fn service_cgroup_is_measured_and_vanishes() {
    if !privileged("service_cgroup_is_measured_and_vanishes") {
        return;
    }
    let unit = format!("sonde\\x2dtest\\x2d{}.service", std::process::id());
    let expected_id = format!("/system.slice/sonde-test-{}.service", std::process::id());
    let mut cg = TestCgroup::create(&format!("/system.slice/{unit}")).unwrap();
    // Limits: half a CPU and 64 MiB.
    let cgroup_v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    if cgroup_v2 {
        cg.write("unified", "cpu.max", "50000 100000").unwrap();
        cg.write("unified", "memory.max", "67108864").unwrap();
    } else {
        cg.write("cpu", "cpu.cfs_period_us", "100000").unwrap();
        cg.write("cpu", "cpu.cfs_quota_us", "50000").unwrap();
        cg.write("memory", "memory.limit_in_bytes", "67108864")
            .unwrap();
    }
    // A busy process that also holds some memory: sh spinning, started inside the cgroup.
    let child = Command::new("sh")
        .args([
            "-c",
            "x=$(head -c 8000000 /dev/zero | tr '\\0' a); while :; do :; done",
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    cg.add_pid(child.id()).unwrap();
    cg.own(child);

    let agent = Agent::start(&["--min-container-age", "0s", "--container-gc-grace", "1s"]);
    let id: &[(&str, &str)] = &[("container_id", &expected_id)];
    let s = agent.scrape_until("the test service's metrics", Duration::from_secs(20), |s| {
        s.value("container_resources_cpu_usage_seconds_total", id)
            .unwrap_or(0.0)
            > 0.2
            && s.value("container_resources_memory_rss_bytes", id)
                .unwrap_or(0.0)
                > 0.0
    });
    assert_eq!(
        s.value(
            "container_info",
            &[
                ("container_id", &expected_id),
                ("image", ""),
                ("systemd_type", "")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        s.value("container_resources_cpu_limit_cores", id),
        Some(0.5)
    );
    assert_eq!(
        s.value("container_resources_memory_limit_bytes", id),
        Some(67108864.0)
    );
    let reported = s
        .value("container_resources_cpu_usage_seconds_total", id)
        .unwrap();
    let after = cpuacct_usage_seconds(&cg);
    assert!(
        reported <= after && after - reported < 1.0,
        "reported {reported}s, cgroup says {after}s"
    );
    let rss = s.value("container_resources_memory_rss_bytes", id).unwrap();
    assert!(rss > 1_000_000.0 && rss < 67108864.0, "rss {rss}");
    assert!(s.has("container_resources_memory_cache_bytes", id));
    // PSI lives in the unified hierarchy (v2, or hybrid's unified mount).
    if std::path::Path::new(&format!("/sys/fs/cgroup/unified{}/cpu.pressure", cg.path)).exists()
        || cgroup_v2
    {
        assert!(s.has(
            "container_resources_cpu_pressure_waiting_seconds_total",
            &[("container_id", &expected_id), ("kind", "some")]
        ));
    }
    // The process is gone: after the grace period every series of the container is gone too.
    cg.kill_children();
    agent.scrape_until(
        "the service's series to vanish",
        Duration::from_secs(20),
        |s| !s.text.contains(&expected_id),
    );
}

#[test]
fn young_containers_wait_for_min_age_and_filters_apply() {
    if !privileged("young_containers_wait_for_min_age_and_filters_apply") {
        return;
    }
    let pid = std::process::id();
    let mut a = TestCgroup::create(&format!("/system.slice/sonde-allow-{pid}.service")).unwrap();
    let mut d = TestCgroup::create(&format!("/system.slice/sonde-deny-{pid}.service")).unwrap();
    for cg in [&mut a, &mut d] {
        let child = Command::new("sleep").arg("300").spawn().unwrap();
        cg.add_pid(child.id()).unwrap();
        cg.own(child);
    }
    let allow = format!("/system.slice/sonde-allow-{pid}.service");
    let deny = format!("/system.slice/sonde-deny-{pid}.service");
    let agent = Agent::start(&[
        "--min-container-age",
        "3s",
        "--container-allowlist",
        "^/system.slice/sonde-",
        "--container-denylist",
        "deny",
    ]);
    let first = agent.scrape();
    assert!(
        !first.text.contains(&allow),
        "exported before --min-container-age"
    );
    let s = agent.scrape_until("the allowed service", Duration::from_secs(15), |s| {
        s.has("container_info", &[("container_id", &allow)])
    });
    assert!(!s.text.contains(&deny), "denylisted container exported");
    // Nothing outside the allowlist is exported.
    for sample in s.find("container_info", &[]) {
        assert!(
            sample.labels["container_id"].starts_with("/system.slice/sonde-"),
            "{sample:?}"
        );
    }
}
