//! The agent's node_* metrics agree with /proc and /sys, and the exposition is valid.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use sonde_integration_tests::{Agent, privileged, tools};
use sonde_testsupport::catalogue;

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap()
}

fn meminfo_kb(key: &str) -> f64 {
    read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap()
}

#[test]
fn node_metrics_match_proc_and_sys() {
    let agent = Agent::start(&[]);
    let s = agent.scrape();

    // node_info creates the node in the backend: always present, with the real host facts.
    let hostname = read("/proc/sys/kernel/hostname").trim().to_owned();
    let kernel = read("/proc/sys/kernel/osrelease").trim().to_owned();
    assert_eq!(
        s.value(
            "node_info",
            &[("hostname", &hostname), ("kernel_version", &kernel)]
        ),
        Some(1.0)
    );
    assert_eq!(
        s.value("node_agent_info", &[("version", env!("CARGO_PKG_VERSION"))]),
        Some(1.0)
    );

    // Every series carries machine_id (and system_uuid, empty where there is no DMI).
    let machine_id = read("/etc/machine-id").trim().to_owned();
    for sample in &s.samples {
        assert_eq!(
            sample.labels.get("machine_id").map(String::as_str),
            Some(machine_id.as_str()),
            "{sample:?}"
        );
        assert!(sample.labels.contains_key("system_uuid"), "{sample:?}");
    }

    let total = s.value("node_resources_memory_total_bytes", &[]).unwrap();
    assert_eq!(total, meminfo_kb("MemTotal") * 1024.0);
    let available = s
        .value("node_resources_memory_available_bytes", &[])
        .unwrap();
    assert!(available > 0.0 && available <= total);

    let cores = std::thread::available_parallelism().unwrap().get() as f64;
    assert_eq!(
        s.value("node_resources_cpu_logical_cores", &[]),
        Some(cores)
    );
    // A node is up only while both idle and non-idle modes are reported.
    for mode in [
        "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
    ] {
        assert!(
            s.has("node_resources_cpu_usage_seconds_total", &[("mode", mode)]),
            "mode {mode} missing"
        );
    }
    let idle = s
        .value(
            "node_resources_cpu_usage_seconds_total",
            &[("mode", "idle")],
        )
        .unwrap();
    assert!(idle > 0.0);

    let uptime: f64 = read("/proc/uptime")
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let reported = s.value("node_uptime_seconds", &[]).unwrap();
    assert!((reported - uptime).abs() < 5.0, "{reported} vs {uptime}");

    // Disks: exactly the whole physical devices of /proc/diskstats (no partitions, loops, ram).
    let mut expected_disks: Vec<String> = read("/proc/diskstats")
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_owned))
        .filter(|d| std::path::Path::new(&format!("/sys/block/{d}")).exists())
        .filter(|d| {
            !d.starts_with("loop")
                && !d.starts_with("ram")
                && !d.starts_with("sr")
                && !d.starts_with("zram")
                && !d.starts_with("nbd")
        })
        .collect();
    expected_disks.sort();
    let mut disks: Vec<String> = s
        .find("node_resources_disk_reads_total", &[])
        .map(|x| x.labels["device"].clone())
        .collect();
    disks.sort();
    assert_eq!(disks, expected_disks);

    // Interfaces: lo is never reported; eth0 (virtio here) is, with its addresses.
    assert!(!s.has("node_net_interface_up", &[("interface", "lo")]));
    for iface in std::fs::read_dir("/sys/class/net").unwrap().flatten() {
        let name = iface.file_name().into_string().unwrap();
        if iface.path().join("device").exists() {
            assert!(
                s.has("node_net_interface_up", &[("interface", &name)]),
                "{name}"
            );
            let rx: f64 = read(&format!("/sys/class/net/{name}/statistics/rx_bytes"))
                .trim()
                .parse()
                .unwrap();
            let reported = s
                .value("node_net_received_bytes_total", &[("interface", &name)])
                .unwrap();
            assert!(reported <= rx && reported > 0.0, "{reported} vs {rx}");
        }
    }
}

#[test]
fn exposition_passes_promtool() {
    let Some(promtool) = tools::require("exposition_passes_promtool", "promtool", "prometheus")
    else {
        return;
    };
    let agent = Agent::start(&["--min-container-age", "0s"]);
    let s = agent.scrape();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("metrics.txt");
    std::fs::write(&file, &s.text).unwrap();
    let out = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .unwrap();
    // promtool lints names too; its only complaints may be about counters without _total and
    // about coroot's L7 histograms named `..._duration_seconds_total` (present once any HTTP,
    // database or DNS request happened on the node), both fixed by the metric contract
    // (coroot's names). Anything else is an error.
    let complaints =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    let unexpected: Vec<&str> = complaints
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| !l.contains("counter metrics should have \"_total\" suffix"))
        .filter(|l| {
            !(l.contains("non-counter metrics should not have \"_total\" suffix")
                && l.split_whitespace()
                    .next()
                    .is_some_and(|name| name.ends_with("_duration_seconds_total")))
        })
        .collect();
    assert!(unexpected.is_empty(), "promtool: {complaints}");
}

#[test]
fn http_endpoints() {
    let agent = Agent::start(&[]);
    assert_eq!(agent.get("/healthz").0, 200);
    assert_eq!(agent.get("/metrics").0, 200);
    assert_eq!(agent.get("/").0, 404);
    assert_eq!(agent.get("/metrics/extra").0, 404);
}

/// Every `sonde_*` catalogue entry is in a real scrape of a plain agent (root: tracer, logs and
/// conntrack up), except exactly the entries whose `// scrape-condition:` comment says when they
/// appear (push delivery, a detected cloud): a metric cannot be declared and never exported.
#[test]
fn every_sonde_catalogue_metric_is_in_a_real_scrape() {
    let test = "every_sonde_catalogue_metric_is_in_a_real_scrape";
    if !privileged(test) {
        return;
    }
    let src = catalogue::catalogue_source().unwrap();
    let entries = catalogue::parse(&src).unwrap();
    assert!(entries.iter().any(|e| e.condition.is_some()));
    let agent = Agent::start(&[]);
    // The tracer's and the conntrack subsystem's series come once they are up: scrape until
    // the check passes, and report the last scrape's mismatches if it never does.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let s = agent.scrape();
        let names = s.samples.iter().map(|x| x.name.clone()).collect();
        match catalogue::check_scrape(&entries, "sonde_", &names) {
            Ok(()) => break,
            Err(e) if std::time::Instant::now() > deadline => panic!(
                "{e}\n--- scrape ---\n{}\n--- agent log ---\n{}",
                s.text,
                agent.log_text()
            ),
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(500)),
        }
    }
}
