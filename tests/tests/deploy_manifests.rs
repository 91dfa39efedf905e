//! What deploy/ ships, checked with real tools:
//! - deploy/kubernetes/sonde.yaml and the Helm chart rendered by a real `helm template` are
//!   validated against the Kubernetes API schemas by kubernetes-validate (PyPI), strict (no
//!   unknown fields). A deliberately broken copy must fail, so the validator is not a no-op.
//!   The PodMonitor is validated against the Prometheus Operator's CRD schema (the models
//!   PyPI's cloudcoil-models-prometheus-operator generates from it, made strict by
//!   tests/scripts/validate_podmonitor.py), and its selector and port must match the pods.
//! - The Grafana dashboard: every metric it names is one the agent declares, and every query
//!   runs without error in a real Prometheus that scrapes a real agent (the node and agent
//!   panels with data).
//!
//! The tools come from scripts/install-test-tools.sh (run by scripts/test.sh as root).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use sonde_integration_tests::agent::http_get;
use sonde_integration_tests::{Agent, free_port, tools, wait_for};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

fn tool(test: &str, env: &str, default: &str) -> Option<PathBuf> {
    let p = std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default));
    if p.is_file() {
        Some(p)
    } else {
        sonde_integration_tests::skip(
            test,
            &format!(
                "{} missing: run scripts/install-test-tools.sh (or set {env})",
                p.display()
            ),
        );
        None
    }
}

fn validator(test: &str) -> Option<PathBuf> {
    tool(
        test,
        "SONDE_KUBERNETES_VALIDATE",
        "/var/tmp/sonde-venv/bin/kubernetes-validate",
    )
}

fn helm(test: &str) -> Option<PathBuf> {
    tool(test, "SONDE_HELM", "/var/tmp/sonde-tools/helm")
}

fn validate(validator: &Path, file: &Path) -> Output {
    Command::new(validator)
        .arg("--strict")
        .arg(file)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Validates `yaml` (strict) and checks the DaemonSet passed; returns the validator's output.
fn assert_valid(validator: &Path, yaml: &str, what: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("manifest.yaml");
    std::fs::write(&file, yaml).unwrap();
    let out = validate(validator, &file);
    let t = text(&out);
    assert!(out.status.success(), "{what} does not validate:\n{t}");
    assert!(t.contains("passed for resource daemonset/"), "{what}: {t}");
    t
}

fn assert_invalid(validator: &Path, yaml: &str, what: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.yaml");
    std::fs::write(&file, yaml).unwrap();
    let out = validate(validator, &file);
    assert!(
        !out.status.success(),
        "the validator accepted a broken manifest ({what}):\n{}",
        text(&out)
    );
}

/// Runs tests/scripts/validate_podmonitor.py on `yaml`.
fn podmonitor_check(yaml: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("manifest.yaml");
    std::fs::write(&file, yaml).unwrap();
    let python = std::env::var_os("SONDE_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/sonde-venv/bin/python"));
    Command::new(python)
        .arg(repo().join("tests/scripts/validate_podmonitor.py"))
        .arg(&file)
        .output()
        .unwrap()
}

/// The PodMonitor is valid by the operator's CRD schema, selects the DaemonSet's pods and
/// scrapes its named port; broken copies are refused.
fn assert_podmonitor_matches(yaml: &str) {
    let out = podmonitor_check(yaml);
    assert!(out.status.success(), "PodMonitor: {}", text(&out));
    assert!(text(&out).contains("valid"), "{}", text(&out));
    for (from, to) in [
        ("scrapeTimeout:", "scrapeTimeot:"),
        ("interval: 15s", "interval: fifteen"),
    ] {
        assert!(yaml.contains(from), "{from}");
        let out = podmonitor_check(&yaml.replace(from, to));
        assert!(
            !out.status.success(),
            "a broken PodMonitor ({to}) passed: {}",
            text(&out)
        );
    }

    let pm = yaml
        .split("\n---")
        .find(|d| d.contains("kind: PodMonitor"))
        .expect("a PodMonitor");
    let ds = yaml
        .split("\n---")
        .find(|d| d.contains("kind: DaemonSet"))
        .expect("a DaemonSet");
    assert!(pm.contains("apiVersion: monitoring.coreos.com/v1"), "{pm}");
    assert!(
        pm.contains("port: http") && pm.contains("path: /metrics"),
        "{pm}"
    );
    assert!(
        ds.contains("name: http"),
        "the DaemonSet names its port http: {ds}"
    );
    // Every label the PodMonitor selects on is on the pod template (block or flow style).
    let ml = pm.lines().position(|l| l.contains("matchLabels")).unwrap();
    let lines: Vec<&str> = pm.lines().collect();
    let selector: Vec<String> = match lines[ml].split_once('{') {
        Some((_, inline)) => inline
            .trim_end_matches('}')
            .split(',')
            .map(|p| p.trim().to_owned())
            .collect(),
        None => lines[ml + 1..]
            .iter()
            .take_while(|l| l.trim_start().contains(": ") && !l.contains("podMetricsEndpoints"))
            .map(|l| l.trim().to_owned())
            .collect(),
    };
    assert!(!selector.is_empty(), "{pm}");
    let template = &ds[ds.find("template:").unwrap()..];
    for label in &selector {
        assert!(
            template.contains(label),
            "PodMonitor selects {label:?}, which the pods lack:\n{template}"
        );
    }
}

#[test]
fn kubernetes_manifest_validates() {
    const TEST: &str = "kubernetes_manifest_validates";
    let Some(v) = validator(TEST) else { return };
    let yaml = std::fs::read_to_string(repo().join("deploy/kubernetes/sonde.yaml")).unwrap();
    let out = assert_valid(&v, &yaml, "deploy/kubernetes/sonde.yaml");
    assert!(out.contains("passed for resource namespace/sonde"), "{out}");
    assert_invalid(
        &v,
        &yaml.replace("hostPID: true", "hostPID: \"yes\""),
        "hostPID a string",
    );
    assert_invalid(
        &v,
        &yaml.replace(
            "hostNetwork: true",
            "hostNetwork: true\n      hostNetworking: true",
        ),
        "an unknown field",
    );
    // The flags the manifest passes are the agent's.
    let agent = Command::new(sonde_integration_tests::agent::sonde_binary())
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&agent.stdout);
    let flags: Vec<&str> = yaml
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- --"))
        .map(|f| f.split('=').next().unwrap())
        .collect();
    assert!(!flags.is_empty(), "the manifest passes no flags?");
    for flag in flags {
        assert!(
            help.contains(&format!("--{flag}")),
            "the agent has no --{flag}"
        );
    }
    assert_podmonitor_matches(&yaml);
}

fn helm_template(helm: &Path, args: &[&str]) -> String {
    let out = Command::new(helm)
        .args(["template", "sonde"])
        .arg(repo().join("deploy/helm/sonde"))
        .args(["--namespace", "monitoring"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "helm template {args:?}: {}",
        text(&out)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn helm_chart_renders_and_validates() {
    const TEST: &str = "helm_chart_renders_and_validates";
    let (Some(helm), Some(v)) = (helm(TEST), validator(TEST)) else {
        return;
    };
    let lint = Command::new(&helm)
        .arg("lint")
        .arg(repo().join("deploy/helm/sonde"))
        .output()
        .unwrap();
    assert!(lint.status.success(), "helm lint: {}", text(&lint));

    // Defaults: the DaemonSet and a PodMonitor, no push flags.
    let default = helm_template(&helm, &[]);
    assert_valid(&v, &default, "the chart with default values");
    assert_podmonitor_matches(&default);
    assert!(default.contains("namespace: monitoring"));
    assert!(!default.contains("--metrics-endpoint"));

    // Every value the chart documents, changed.
    let custom = helm_template(
        &helm,
        &[
            "--set",
            "image.repository=registry.example/sonde,image.tag=1.2.3",
            "--set",
            "push.metricsEndpoint=http://prometheus:9090/api/v1/write",
            "--set",
            "push.otlpMetricsEndpoint=http://collector:4318/v1/metrics",
            "--set",
            "push.apiKeySecret.name=coroot,push.apiKeySecret.key=api-key",
            "--set",
            "podMonitor.enabled=false",
            "--set",
            "args={--disable-log-parsing,--track-public-network=0.0.0.0/0}",
            "--set",
            "resources.limits.memory=1Gi",
            "--set",
            "tolerations=null",
            "--set",
            "nodeSelector.kubernetes\\.io/os=linux",
        ],
    );
    assert_valid(&v, &custom, "the chart with custom values");
    assert!(!custom.contains("kind: PodMonitor"), "{custom}");
    for want in [
        "image: \"registry.example/sonde:1.2.3\"",
        "--metrics-endpoint=http://prometheus:9090/api/v1/write",
        "--otlp-metrics-endpoint=http://collector:4318/v1/metrics",
        "--wal-dir=/var/lib/sonde",
        "\"--disable-log-parsing\"",
        "name: API_KEY",
        "memory: 1Gi",
        "kubernetes.io/os: linux",
    ] {
        assert!(custom.contains(want), "missing {want:?}:\n{custom}");
    }
    assert!(!custom.contains("tolerations:"), "{custom}");
    // Every flag the chart can emit is one the agent accepts.
    let agent = Command::new(sonde_integration_tests::agent::sonde_binary())
        .args([
            "--metrics-endpoint=http://prometheus:9090/api/v1/write",
            "--otlp-metrics-endpoint=http://collector:4318/v1/metrics",
            "--scrape-interval=15s",
            "--wal-dir=/var/lib/sonde",
            "--max-spool-size=500MB",
            "--listen=0.0.0.0:10300",
            "--cgroupfs-root=/host/sys/fs/cgroup",
            "--disable-log-parsing",
            "patterns",
            "--help",
        ])
        .output()
        .unwrap();
    assert!(agent.status.success(), "{}", text(&agent));

    // A broken value must not pass: the validator is really checking.
    let broken = helm_template(&helm, &["--set", "port=notaport"]);
    assert_invalid(&v, &broken, "port not a number");
}

/// Metric names a dashboard query uses: every one is written with a selector, `name{...}`.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    for (i, _) in expr.match_indices('{') {
        let start = expr[..i]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(0, |p| p + 1);
        if start < i {
            names.push(expr[start..i].to_owned());
        }
    }
    names
}

#[test]
fn dashboard_queries_run_in_prometheus() {
    const TEST: &str = "dashboard_queries_run_in_prometheus";
    let Some(prometheus) = tools::require(TEST, "prometheus", "prometheus") else {
        return;
    };
    if !sonde_integration_tests::privileged(TEST) {
        return;
    }
    let json = std::fs::read_to_string(repo().join("deploy/grafana/sonde-dashboard.json")).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&json).unwrap();
    let mut exprs = Vec::new();
    for panel in dash["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().into_iter().flatten() {
            exprs.push((
                panel["title"].as_str().unwrap().to_owned(),
                t["expr"].as_str().unwrap().to_owned(),
            ));
        }
    }
    assert!(exprs.len() >= 20, "{} queries", exprs.len());

    // Every metric named is declared by the agent: the catalogue (self-metrics included), process_*.
    let declared = [
        sonde_testsupport::catalogue::catalogue_source().unwrap(),
        std::fs::read_to_string(repo().join("crates/sonde/src/process_metrics.rs")).unwrap(),
    ]
    .join("\n");
    for (title, expr) in &exprs {
        assert!(
            !metric_names(expr).is_empty(),
            "panel {title:?}: no metric in {expr}"
        );
        for name in metric_names(expr) {
            let base = ["_sum", "_count", "_bucket"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(&name);
            assert!(
                declared.contains(&format!("\"{name}\""))
                    || declared.contains(&format!("\"{base}\"")),
                "panel {title:?} uses {name}, which the agent does not declare"
            );
        }
    }

    let agent = Agent::start(&["--min-container-age", "0s", "--disable-log-parsing"]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: sonde\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
            agent.port
        ),
    )
    .unwrap();
    let port = free_port();
    let mut prom = Command::new(prometheus)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let query = |q: &str| -> Option<serde_json::Value> {
        let enc: String = q
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        let (_, body) = http_get(port, &format!("/api/v1/query?query={enc}")).ok()?;
        serde_json::from_str(&body).ok()
    };
    // Enough scrapes for rate() over 10s windows.
    wait_for(
        "five scrapes in Prometheus",
        Duration::from_secs(90),
        || {
            let v = query("count_over_time(node_info[1m])")?;
            let n: f64 = v["data"]["result"][0]["value"][1].as_str()?.parse().ok()?;
            (n >= 5.0).then_some(())
        },
    );
    let mut with_data = Vec::new();
    for (title, expr) in &exprs {
        let q = expr
            .replace("$__rate_interval", "10s")
            .replace("$machine_id", ".*");
        let v = query(&q).unwrap_or_else(|| panic!("no answer for {q}"));
        assert_eq!(v["status"], "success", "panel {title:?}: {q}: {v}");
        if !v["data"]["result"].as_array().unwrap().is_empty() {
            with_data.push(title.clone());
        }
    }
    let _ = prom.kill();
    let _ = prom.wait();
    eprintln!(
        "{} of {} dashboard queries returned data",
        with_data.len(),
        exprs.len()
    );
    // The node's and the agent's own panels always have data.
    for title in [
        "CPU usage by mode (cores)",
        "Memory",
        "Network traffic (bytes/s)",
        "Subsystems down",
        "Subsystem state (1 up, 0 degraded: the agent log says why)",
        "Agent CPU (cores) and scrape time",
        "Agent memory",
    ] {
        assert!(
            with_data.iter().any(|t| t == title),
            "panel {title:?} has no data"
        );
    }
}
