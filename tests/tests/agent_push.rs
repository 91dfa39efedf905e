//! Push delivery against real receivers, each with an outage in the middle:
//! - Prometheus 2.42 with its remote-write receiver: stopped while the agent keeps gathering
//!   into its spool, started again, and every batch is then found in its TSDB through the
//!   query API, none missing, none twice.
//! - An OTLP/HTTP receiver that decodes with the OpenTelemetry project's generated protobuf
//!   classes (tests/scripts/otlp_receiver.py, PyPI opentelemetry-proto), answering 503 for a
//!   while: likewise every batch arrives once, in order, with the right metric types.
//!
//! "Every batch" is checked exactly: each gather carries `sonde_push_batches_total{protocol}`,
//! the number of batches spooled before it, so the values the receiver holds must be exactly
//! 0, 1, 2, ... N-1 with no gap (a lost batch) and no repeat (a batch delivered twice).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sonde_integration_tests::agent::http_get;
use sonde_integration_tests::{Agent, Scrape, free_port, tools, wait_for};

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Percent-encodes a PromQL query for a URL.
fn encode(q: &str) -> String {
    let mut out = String::new();
    for b in q.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn start_prometheus(bin: &Path, dir: &Path, port: u16) -> Killed {
    let config = dir.join("prometheus.yml");
    // No scrape jobs: every sample in the TSDB came through remote write.
    std::fs::write(&config, "global:\n  scrape_interval: 1h\n").unwrap();
    let child = Command::new(bin)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--web.enable-remote-write-receiver")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
        .spawn()
        .unwrap();
    let prom = Killed(child);
    wait_for("Prometheus to be ready", Duration::from_secs(60), || {
        http_get(port, "/-/ready")
            .ok()
            .filter(|(code, _)| *code == 200)
    });
    prom
}

/// A graceful stop (SIGTERM, as a restart would): the TSDB keeps what it had.
fn stop(mut p: Killed) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(p.0.id() as i32, libc::SIGTERM) };
    let _ = p.0.wait();
}

fn gauge(s: &Scrape, name: &str, protocol: &str) -> f64 {
    s.value(name, &[("protocol", protocol)]).unwrap_or(-1.0)
}

/// The raw values of `query` (a range selector) in Prometheus, by timestamp.
fn range_values(port: u16, query: &str) -> Vec<(f64, f64)> {
    let (code, body) = http_get(port, &format!("/api/v1/query?query={}", encode(query))).unwrap();
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let result = v["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 1, "one series expected for {query}: {body}");
    result[0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_f64().unwrap(),
                p[1].as_str().unwrap().parse::<f64>().unwrap(),
            )
        })
        .collect()
}

fn assert_every_batch_once(values: &[f64], what: &str) {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let expected: Vec<f64> = (0..sorted.len()).map(|i| i as f64).collect();
    assert_eq!(
        sorted, expected,
        "{what}: the batch counters received must be exactly 0..N-1"
    );
}

fn push_agent(extra: &[&str], wal: &Path) -> Agent {
    let mut args = vec![
        "--scrape-interval",
        "500ms",
        "--push-retry-min",
        "100ms",
        "--push-retry-max",
        "400ms",
        "--wal-dir",
        wal.to_str().unwrap(),
        "--min-container-age",
        "0s",
        "--disable-log-parsing",
    ];
    args.extend_from_slice(extra);
    Agent::start(&args)
}

#[test]
fn remote_write_to_prometheus_survives_an_outage() {
    const TEST: &str = "remote_write_to_prometheus_survives_an_outage";
    if !sonde_integration_tests::privileged(TEST) {
        return;
    }
    let Some(prometheus) = tools::require(TEST, "prometheus", "prometheus") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let prom = start_prometheus(&prometheus, dir.path(), port);
    let endpoint = format!("http://127.0.0.1:{port}/api/v1/write");
    let agent = push_agent(&["--metrics-endpoint", &endpoint], &dir.path().join("wal"));

    let batches = "sonde_push_batches_total{protocol=\"remote_write\"}";
    wait_for("two batches in Prometheus", Duration::from_secs(60), || {
        let (_, body) = http_get(port, &format!("/api/v1/query?query={}", encode(batches))).ok()?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        let value: f64 = v["data"]["result"][0]["value"][1].as_str()?.parse().ok()?;
        (value >= 1.0).then_some(())
    });

    // The outage: Prometheus stops; the agent keeps gathering into its spool.
    stop(prom);
    let during = agent.scrape_until(
        "five batches spooled while Prometheus is down",
        Duration::from_secs(60),
        |s| {
            gauge(s, "sonde_push_spool_batches", "remote_write") >= 5.0
                && gauge(s, "sonde_push_send_failures_total", "remote_write") >= 1.0
        },
    );
    let spooled_during = gauge(&during, "sonde_push_spool_batches", "remote_write");
    let health = during.value("sonde_subsystem_up", &[("subsystem", "push_remote_write")]);
    assert_eq!(health, Some(0.0), "push is down during the outage");
    assert!(
        agent.log_text().contains("push_remote_write"),
        "one warning names the failing endpoint: {}",
        agent.log_text()
    );

    // Back: the spool drains, oldest first.
    let prom = start_prometheus(&prometheus, dir.path(), port);
    let after = agent.scrape_until("the spool to drain", Duration::from_secs(90), |s| {
        gauge(s, "sonde_push_spool_batches", "remote_write") == 0.0
    });
    assert_eq!(
        gauge(&after, "sonde_push_batches_dropped_total", "remote_write"),
        0.0
    );
    assert_eq!(
        gauge(&after, "sonde_push_batches_rejected_total", "remote_write"),
        0.0
    );
    let spooled = gauge(&after, "sonde_push_batches_total", "remote_write");
    drop(agent);

    let values = range_values(port, &format!("{batches}[1h]"));
    let got: Vec<f64> = values.iter().map(|(_, v)| *v).collect();
    assert_every_batch_once(&got, "remote write");
    eprintln!(
        "remote write: {} batches in Prometheus (0..{}), {spooled_during} were spooled during the outage",
        got.len(),
        got.len() - 1
    );
    assert!(
        got.len() as f64 >= spooled,
        "{} batches in Prometheus, {spooled} spooled by the last scrape",
        got.len()
    );
    // Timestamps ascend with the counter: delivered in gather order.
    for w in values.windows(2) {
        assert!(w[0].0 < w[1].0 && w[0].1 < w[1].1, "{values:?}");
    }
    // Every other series of a batch came along: node_info has one sample per batch too.
    let node_info = range_values(port, "node_info[1h]");
    assert_eq!(node_info.len(), got.len(), "node_info samples = batches");
    // The samples carry the push labels and the node labels.
    let (_, body) = http_get(
        port,
        &format!("/api/v1/query?query={}", encode("node_info")),
    )
    .unwrap();
    assert!(
        body.contains("\"job\":\"sonde\"") && body.contains("\"machine_id\""),
        "{body}"
    );
    drop(prom);
}

fn venv_python() -> Option<PathBuf> {
    let p = std::env::var_os("SONDE_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/sonde-venv/bin/python"));
    let ok = Command::new(&p)
        .args([
            "-c",
            "import opentelemetry.proto.collector.metrics.v1.metrics_service_pb2",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(p)
}

fn records(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The `protocol="otlp"` point of `sonde_push_batches_total` in one request.
fn otlp_batch_value(rec: &serde_json::Value) -> Option<f64> {
    rec["metrics"]
        .as_array()?
        .iter()
        .find(|m| m["name"] == "sonde_push_batches_total")?["points"]
        .as_array()?
        .iter()
        .find(|p| p["attrs"]["protocol"] == "otlp")?["value"]
        .as_f64()
}

#[test]
fn otlp_push_decodes_with_the_reference_schema_and_survives_an_outage() {
    const TEST: &str = "otlp_push_decodes_with_the_reference_schema_and_survives_an_outage";
    if !sonde_integration_tests::privileged(TEST) {
        return;
    }
    let Some(python) = venv_python() else {
        sonde_integration_tests::skip(
            TEST,
            "no Python with opentelemetry-proto at /var/tmp/sonde-venv (scripts/test.sh installs it; or set SONDE_TEST_PYTHON)",
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("received.jsonl");
    let down = dir.path().join("down");
    let port = free_port();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/otlp_receiver.py");
    let _receiver = Killed(
        Command::new(python)
            .arg(&script)
            .arg(port.to_string())
            .arg(&out)
            .arg(&down)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("receiver.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_for("the OTLP receiver", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    let endpoint = format!("http://127.0.0.1:{port}/v1/metrics");
    let agent = push_agent(
        &["--otlp-metrics-endpoint", &endpoint],
        &dir.path().join("wal"),
    );
    wait_for("two OTLP requests", Duration::from_secs(60), || {
        (records(&out).len() >= 2).then_some(())
    });
    // The outage: 503 for every request.
    std::fs::write(&down, b"").unwrap();
    let during = agent.scrape_until(
        "four batches spooled during the outage",
        Duration::from_secs(60),
        |s| {
            gauge(s, "sonde_push_spool_batches", "otlp") >= 4.0
                && gauge(s, "sonde_push_send_failures_total", "otlp") >= 1.0
        },
    );
    std::fs::remove_file(&down).unwrap();
    let after = agent.scrape_until("the spool to drain", Duration::from_secs(90), |s| {
        gauge(s, "sonde_push_spool_batches", "otlp") == 0.0
    });
    assert_eq!(
        gauge(&after, "sonde_push_batches_dropped_total", "otlp"),
        0.0
    );
    drop(agent);

    let recs = records(&out);
    for r in &recs {
        assert!(
            r.get("error").is_none(),
            "the receiver could not decode a request: {r}"
        );
    }
    let values: Vec<f64> = recs.iter().map(|r| otlp_batch_value(r).unwrap()).collect();
    assert_every_batch_once(&values, "OTLP");
    eprintln!(
        "OTLP: {} batches received (0..{}), {} were spooled during the outage",
        values.len(),
        values.len() - 1,
        gauge(&during, "sonde_push_spool_batches", "otlp")
    );
    // In gather order.
    assert!(values.windows(2).all(|w| w[0] < w[1]), "{values:?}");

    let last = recs.last().unwrap();
    assert_eq!(
        last["resource"]["service.name"], "sonde",
        "{}",
        last["resource"]
    );
    let metric = |name: &str| {
        last["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing"))
            .clone()
    };
    // A counter is a cumulative monotonic sum that starts when the agent started.
    let counter = metric("sonde_push_batches_total");
    assert_eq!(counter["kind"], "sum");
    assert_eq!(counter["monotonic"], true);
    assert_eq!(counter["temporality"], 2);
    let p = &counter["points"][0];
    assert!(p["start"].as_u64().unwrap() > 0 && p["start"].as_u64() < p["time"].as_u64());
    assert_eq!(metric("node_info")["kind"], "gauge");
    assert!(metric("node_info")["points"][0]["attrs"]["machine_id"].is_string());
    // The scrape histogram (the test scraped the agent): buckets add up to the count.
    let h = metric("sonde_scrape_duration_seconds");
    assert_eq!(h["kind"], "histogram");
    let hp = &h["points"][0];
    let buckets: Vec<u64> = hp["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_u64().unwrap())
        .collect();
    assert_eq!(buckets.len(), hp["bounds"].as_array().unwrap().len() + 1);
    assert_eq!(buckets.iter().sum::<u64>(), hp["count"].as_u64().unwrap());
    assert!(hp["count"].as_u64().unwrap() >= 1);
}

#[test]
fn remote_write_spool_bound_drops_the_oldest_and_counts_them() {
    const TEST: &str = "remote_write_spool_bound_drops_the_oldest_and_counts_them";
    if !sonde_integration_tests::privileged(TEST) {
        return;
    }
    let Some(prometheus) = tools::require(TEST, "prometheus", "prometheus") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let prom = start_prometheus(&prometheus, dir.path(), port);
    let endpoint = format!("http://127.0.0.1:{port}/api/v1/write");
    // A batch here is a few KB: the spool holds only a handful.
    let agent = push_agent(
        &["--metrics-endpoint", &endpoint, "--max-spool-size", "24KB"],
        &dir.path().join("wal"),
    );
    agent.scrape_until("a delivered batch", Duration::from_secs(60), |s| {
        gauge(s, "sonde_push_samples_sent_total", "remote_write") > 0.0
    });
    stop(prom);
    let full = agent.scrape_until("the spool to overflow", Duration::from_secs(60), |s| {
        gauge(s, "sonde_push_batches_dropped_total", "remote_write") >= 5.0
    });
    assert!(gauge(&full, "sonde_push_spool_bytes", "remote_write") <= 24_000.0);
    let prom = start_prometheus(&prometheus, dir.path(), port);
    agent.scrape_until("the spool to drain", Duration::from_secs(90), |s| {
        gauge(s, "sonde_push_spool_batches", "remote_write") == 0.0
    });
    // Stop gathering so the counters are final, then compare with what arrived.
    let last = agent.scrape();
    drop(agent);
    let dropped = gauge(&last, "sonde_push_batches_dropped_total", "remote_write");
    let mut got: Vec<f64> = range_values(
        port,
        "sonde_push_batches_total{protocol=\"remote_write\"}[1h]",
    )
    .into_iter()
    .map(|(_, v)| v)
    .collect();
    got.sort_by(f64::total_cmp);
    let mut dedup = got.clone();
    dedup.dedup();
    assert_eq!(dedup, got, "a batch arrived twice");
    let max = *got.last().unwrap() as usize;
    let missing: Vec<usize> = (0..=max).filter(|v| !got.contains(&(*v as f64))).collect();
    eprintln!(
        "spool bound: {} batches delivered, {missing:?} dropped",
        got.len()
    );
    // Exactly the dropped batches are missing, and they are the oldest of the outage: one run.
    assert_eq!(
        missing.len() as f64,
        dropped,
        "missing {missing:?}, dropped {dropped}"
    );
    assert_eq!(
        missing.last().unwrap() - missing[0] + 1,
        missing.len(),
        "{missing:?}"
    );
    assert!(missing[0] > 0, "batches before the outage were delivered");
    drop(prom);
}

#[test]
fn remote_write_spool_survives_an_agent_restart() {
    const TEST: &str = "remote_write_spool_survives_an_agent_restart";
    if !sonde_integration_tests::privileged(TEST) {
        return;
    }
    let Some(prometheus) = tools::require(TEST, "prometheus", "prometheus") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let wal = dir.path().join("wal");
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}/api/v1/write");
    // First run: no receiver at all; the agent spools, then dies without warning.
    let first = push_agent(&["--metrics-endpoint", &endpoint], &wal);
    first.scrape_until("four batches spooled", Duration::from_secs(60), |s| {
        gauge(s, "sonde_push_spool_batches", "remote_write") >= 4.0
    });
    drop(first); // SIGKILL
    let spooled = std::fs::read_dir(wal.join("remote_write"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".batch")
        })
        .count();
    assert!(spooled >= 4, "{spooled}");
    let restart_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as f64;

    // Second run with the same spool, and the receiver up: the first run's batches arrive.
    let prom = start_prometheus(&prometheus, dir.path(), port);
    let second = push_agent(&["--metrics-endpoint", &endpoint], &wal);
    second.scrape_until(
        "the first run's batches delivered",
        Duration::from_secs(60),
        |s| {
            gauge(s, "sonde_push_samples_sent_total", "remote_write") > 0.0
                && gauge(s, "sonde_push_spool_batches", "remote_write") == 0.0
        },
    );
    drop(second);
    let values = range_values(
        port,
        "sonde_push_batches_total{protocol=\"remote_write\"}[1h]",
    );
    let first_run: Vec<f64> = values
        .iter()
        .filter(|(ts, _)| ts * 1000.0 < restart_ms)
        .map(|(_, v)| *v)
        .collect();
    eprintln!(
        "agent restart: {spooled} batches left by the first run, {} delivered by the second",
        first_run.len()
    );
    assert_eq!(first_run.len(), spooled, "{values:?}");
    assert_every_batch_once(&first_run, "the first run's spool");
    drop(prom);
}

/// A tmpfs mounted for one test, unmounted on drop.
struct Tmpfs(PathBuf);
impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_is_counted_and_said_once() {
    const TEST: &str = "a_full_disk_is_counted_and_said_once";
    if !sonde_integration_tests::privileged(TEST) {
        return;
    }
    let Some(prometheus) = tools::require(TEST, "prometheus", "prometheus") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let wal = dir.path().join("wal");
    std::fs::create_dir(&wal).unwrap();
    // 24 KiB of disk, a spool bound far above it: the disk fills first.
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=24k", "sonde-test-wal"])
        .arg(&wal)
        .status()
        .unwrap();
    assert!(status.success(), "mount tmpfs");
    let _tmpfs = Tmpfs(wal.clone());
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}/api/v1/write");
    let agent = push_agent(
        &["--metrics-endpoint", &endpoint, "--max-spool-size", "10MB"],
        &wal,
    );
    // No receiver: the spool grows until the disk is full.
    agent.scrape_until("spool errors", Duration::from_secs(60), |s| {
        gauge(s, "sonde_push_spool_errors_total", "remote_write") >= 3.0
    });
    let log = agent.log_text();
    assert_eq!(
        log.matches("Cannot spool push batches").count(),
        1,
        "one warning, not one per batch:\n{log}"
    );
    assert!(
        log.contains("No space left on device") || log.contains("os error 28"),
        "{log}"
    );
    // The receiver comes: the spool drains, the disk frees, spooling resumes.
    let prom = start_prometheus(&prometheus, dir.path(), port);
    let before = gauge(&agent.scrape(), "sonde_push_batches_total", "remote_write");
    agent.scrape_until("spooling to resume", Duration::from_secs(60), |s| {
        gauge(s, "sonde_push_batches_total", "remote_write") >= before + 3.0
    });
    assert!(
        agent
            .log_text()
            .contains("Push batches are being spooled again"),
        "{}",
        agent.log_text()
    );
    drop(agent);
    drop(prom);
}
