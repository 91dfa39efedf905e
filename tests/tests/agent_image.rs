//! The image as users get it: scripts/image.sh builds `sonde:test` FROM scratch from the
//! static binary with a real (private) dockerd, and deploy/docker-run.sh runs it exactly as
//! the README says (privileged, host pid and network, the cgroupfs, tracefs and debugfs
//! mounts, the Docker socket). The containerised agent must then name and measure a running
//! container of that dockerd, have its eBPF tracer up, and report node_info. It also pushes
//! to a Prometheus remote-write receiver addressed as `localhost`: the static binary resolves
//! names in an image that holds nothing but itself (Docker's /etc/hosts), and the receiver
//! gets its node_info.
//!
//! The static binary comes from `SONDE_STATIC_BIN` (scripts/test.sh builds it once with
//! scripts/build-static.sh); without it image.sh builds it (slow the first time: a separate
//! target dir, fat LTO).
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use sonde_integration_tests::agent::http_get;
use sonde_integration_tests::dockerd::Dockerd;
use sonde_integration_tests::{Scrape, free_port};

const BUSYBOX: &str = "sonde-busybox:test";
const IMAGE: &str = "sonde:test";

/// Removes the agent container even when the test panics.
struct AgentContainer<'a> {
    d: &'a Dockerd,
    name: String,
}
impl Drop for AgentContainer<'_> {
    fn drop(&mut self) {
        let _ = self.d.docker(&["rm", "-f", &self.name]);
    }
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

fn scrape(port: u16) -> Option<Scrape> {
    let (code, body) = http_get(port, "/metrics").ok()?;
    (code == 200).then(|| Scrape::parse(&body))
}

#[test]
fn image_runs_as_documented_and_sees_containers() {
    const TEST: &str = "image_runs_as_documented_and_sees_containers";
    let Some(d) = Dockerd::start_or_skip(TEST) else {
        return;
    };
    let docker_host = format!("unix://{}", d.socket.display());

    // Build the image with the harness daemon, as a user would with theirs.
    let out = Command::new(repo().join("scripts/image.sh"))
        .env("DOCKER_HOST", &docker_host)
        .env("SONDE_IMAGE", IMAGE)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scripts/image.sh failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let size: u64 = d
        .docker(&["image", "inspect", "--format", "{{.Size}}", IMAGE])
        .unwrap()
        .parse()
        .unwrap();
    let layers = d
        .docker(&[
            "image",
            "inspect",
            "--format",
            "{{len .RootFS.Layers}}",
            IMAGE,
        ])
        .unwrap();
    eprintln!("image {IMAGE}: {size} bytes, {layers} layer(s)");
    assert_eq!(layers, "1", "FROM scratch: the binary is the only layer");
    assert!(size < 15 * 1024 * 1024, "image is {size} bytes");

    // A workload container to find.
    d.import_busybox(BUSYBOX).unwrap();
    let id = d
        .run(&[
            "--name",
            "sonde-image-web",
            BUSYBOX,
            "sh",
            "-c",
            "while :; do :; done",
        ])
        .unwrap();

    // A remote-write receiver for the containerised agent's pushes.
    let prom_dir = tempfile::tempdir().unwrap();
    let prom_port = free_port();
    let _prom = start_receiver(prom_dir.path(), prom_port);
    let endpoint = format!("--metrics-endpoint=http://localhost:{prom_port}/api/v1/write");

    let port = free_port();
    let name = format!("sonde-agent-{port}");
    let _guard = AgentContainer {
        d: &d,
        name: name.clone(),
    };
    let docker_run = |privilege: Option<&str>| {
        let mut cmd = Command::new(repo().join("deploy/docker-run.sh"));
        cmd.env("DOCKER_HOST", &docker_host)
            .env("SONDE_IMAGE", IMAGE)
            .env("SONDE_NAME", &name)
            .env("HOST_DOCKER_SOCKET", &d.socket)
            .args([
                &format!("--listen=127.0.0.1:{port}"),
                "--min-container-age=0s",
                "--proc-scan-interval=1s",
                &endpoint,
                "--scrape-interval=1s",
                "--wal-dir=/tmp/sonde",
            ]);
        if let Some(p) = privilege {
            cmd.env("SONDE_PRIVILEGE", p);
        }
        cmd.output().unwrap()
    };
    // Exactly as documented first. A root whose bounding set lacks a capability (this
    // machine's has no CAP_SYS_RESOURCE) cannot start any --privileged container: runc fails
    // to apply the full set. Then the documented replacement: every other capability and the
    // same unconfined seccomp, AppArmor and /proc paths.
    let mut run = docker_run(None);
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    if !run.status.success() && stderr.contains("unable to apply caps") {
        eprintln!(
            "--privileged cannot start here ({}); running with SONDE_PRIVILEGE as docker-run.sh documents",
            stderr.trim()
        );
        let _ = d.docker(&["rm", "-f", &name]);
        run = docker_run(Some(
            "--cap-add=ALL --cap-drop=SYS_RESOURCE --security-opt=seccomp=unconfined \
             --security-opt=apparmor=unconfined --security-opt=systempaths=unconfined",
        ));
    }
    assert!(
        run.status.success(),
        "deploy/docker-run.sh failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );

    let cid: &[(&str, &str)] = &[("container_id", "/docker/sonde-image-web")];
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let s = loop {
        let s = scrape(port);
        if let Some(s) = &s
            && s.value("container_resources_cpu_usage_seconds_total", cid)
                .is_some_and(|v| v > 0.0)
            && s.value("sonde_subsystem_up", &[("subsystem", "tracer")]) == Some(1.0)
        {
            break s.clone();
        }
        if std::time::Instant::now() > deadline {
            let logs = d.docker(&["logs", &name]).unwrap_or_else(|e| e);
            let state = d
                .docker(&[
                    "inspect",
                    "--format",
                    "{{.State.Status}} {{.State.Error}}",
                    &name,
                ])
                .unwrap_or_else(|e| e);
            panic!(
                "the containerised agent did not report the web container with the tracer up\n\
                 state: {state}\n--- last scrape ---\n{}\n--- agent logs ---\n{logs}",
                s.map(|s| s.text).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    // Named through the Docker socket mounted as docker-run.sh mounts it.
    let info: Vec<_> = s.find("container_info", cid).collect();
    assert_eq!(info.len(), 1, "{}", s.text);
    assert!(
        info[0].labels.get("image").is_some_and(|i| i == BUSYBOX),
        "{:?}",
        info[0]
    );
    // node_info with the host's identity (read through /proc/1/root from the container).
    let node = s.find("node_info", &[]).next().expect("node_info");
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(
        node.labels.get("hostname").map(String::as_str),
        Some(hostname.trim())
    );
    let machine_id = std::fs::read_to_string("/etc/machine-id").unwrap_or_default();
    if !machine_id.trim().is_empty() {
        assert_eq!(
            node.labels.get("machine_id").map(String::as_str),
            Some(machine_id.trim())
        );
    }
    assert_eq!(
        s.value("sonde_subsystem_up", &[("subsystem", "docker")]),
        Some(1.0)
    );
    // The agent really runs the static binary in the container (pid namespace is the host's).
    let pid = d
        .docker(&["inspect", "--format", "{{.State.Pid}}", &name])
        .unwrap();
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert!(exe.ends_with("usr/bin/sonde"), "{}", exe.display());
    // The push went through a name lookup in the scratch image.
    let query = "/api/v1/query?query=node_info%7Bjob%3D%22sonde%22%7D";
    let body = sonde_integration_tests::wait_for(
        "node_info pushed by the containerised agent",
        Duration::from_secs(60),
        || {
            http_get(prom_port, query)
                .ok()
                .filter(|(c, b)| *c == 200 && b.contains("kernel_version"))
                .map(|(_, b)| b)
        },
    );
    assert!(body.contains(hostname.trim()), "{body}");
    d.remove(&id).unwrap();
}

struct Killed(std::process::Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Prometheus with only its remote-write receiver (no scrape jobs), or panics.
fn start_receiver(dir: &Path, port: u16) -> Killed {
    let prometheus = sonde_integration_tests::tools::which("prometheus")
        .expect("prometheus (apt-get install -y prometheus)");
    let config = dir.join("prometheus.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 1h\n").unwrap();
    let child = Command::new(prometheus)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--web.enable-remote-write-receiver")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let p = Killed(child);
    sonde_integration_tests::wait_for("Prometheus ready", Duration::from_secs(60), || {
        http_get(port, "/-/ready").ok().filter(|(c, _)| *c == 200)
    });
    p
}
