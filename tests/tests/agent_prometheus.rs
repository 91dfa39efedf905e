//! A real Prometheus scrapes the agent: the exposition is accepted as-is by the scraper the
//! backend reads from, and the node is visible through its query API.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::Duration;

use sonde_integration_tests::agent::http_get;
use sonde_integration_tests::{Agent, free_port, tools, wait_for};

struct Killed(std::process::Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn prometheus_scrapes_the_agent() {
    let Some(prometheus) =
        tools::require("prometheus_scrapes_the_agent", "prometheus", "prometheus")
    else {
        return;
    };
    let agent = Agent::start(&["--min-container-age", "0s"]);
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
    let _prom = Killed(
        Command::new(prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let query = |q: &str| -> Option<String> {
        let (code, body) = http_get(port, &format!("/api/v1/query?query={q}")).ok()?;
        (code == 200).then_some(body)
    };
    // `up` is 1 only if Prometheus parsed the whole exposition without error.
    let body = wait_for(
        "Prometheus to scrape the agent",
        Duration::from_secs(60),
        || query("up").filter(|b| b.contains("\"value\":[") && b.contains("\"1\"]")),
    );
    assert!(body.contains("sonde"), "{body}");
    let node = wait_for("node_info in Prometheus", Duration::from_secs(30), || {
        query("node_info").filter(|b| b.contains("kernel_version"))
    });
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert!(node.contains(hostname.trim()), "{node}");
    // The scrape reported no sample errors (duplicates, bad values).
    let errors = query("scrape_samples_post_metric_relabeling").unwrap();
    assert!(errors.contains("\"value\""), "{errors}");
    let (code, targets) = http_get(port, "/api/v1/targets").unwrap();
    assert_eq!(code, 200);
    assert!(targets.contains("\"health\":\"up\""), "{targets}");
    assert!(targets.contains("\"lastError\":\"\""), "{targets}");
}
