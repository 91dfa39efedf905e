//! Bad input and missing privileges degrade one subsystem with a clear message; they never
//! stop the agent, and bad flags stop it at once with a message naming the flag.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::process::Command;

use sonde_integration_tests::agent::sonde_binary;
use sonde_integration_tests::{Agent, privileged, tools};

#[test]
fn invalid_flags_fail_at_start_naming_the_flag() {
    for (args, flag) in [
        (
            vec!["--container-denylist", "(unclosed"],
            "--container-denylist",
        ),
        (
            vec!["--min-container-age", "a while"],
            "--min-container-age",
        ),
        (vec!["--listen", "localhost"], "--listen"),
        (vec!["--log-level", "chatty"], "--log-level"),
        (vec!["--frobnicate"], "--frobnicate"),
    ] {
        let out = Command::new(sonde_binary()).args(&args).output().unwrap();
        assert!(!out.status.success(), "{args:?} accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
    }
    let out = Command::new(sonde_binary())
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn port_in_use_is_reported_with_the_flag() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::new(sonde_binary())
        .args(["--listen", &addr])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--listen") && stderr.contains(&addr),
        "{stderr}"
    );
}

/// A /proc full of malformed files: the agent serves what it can and counts the rest.
#[test]
fn malformed_proc_and_missing_cgroupfs_degrade_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let proc_root = dir.path().join("proc");
    fs::create_dir_all(proc_root.join("sys/kernel")).unwrap();
    fs::create_dir_all(proc_root.join("net")).unwrap();
    fs::write(proc_root.join("sys/kernel/hostname"), "fake-node\n").unwrap();
    fs::write(proc_root.join("sys/kernel/osrelease"), "6.1.0-test\n").unwrap();
    fs::write(proc_root.join("uptime"), "123.45 100.00\n").unwrap();
    fs::write(proc_root.join("stat"), "cpu  garbage\nintr 1 2 3\n").unwrap();
    fs::write(proc_root.join("meminfo"), "MemTotal: lots kB\n\0\0\0").unwrap();
    fs::write(proc_root.join("diskstats"), "   8 0 sda 1 2\n").unwrap();
    fs::write(proc_root.join("net/dev"), "not a table").unwrap();
    // Processes: one fine, one with garbage stat, one with garbage cgroup, one vanished dir.
    for (pid, stat, cgroup) in [
        (
            "10",
            "10 (ok) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 500 0 0",
            "0::/system.slice/ok.service\n",
        ),
        ("11", "11 (bad", "0::/system.slice/x.service\n"),
        (
            "12",
            "12 (bad) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 500 0 0",
            "\u{fffd}\u{fffd}garbage",
        ),
    ] {
        fs::create_dir_all(proc_root.join(pid)).unwrap();
        fs::write(proc_root.join(pid).join("stat"), stat).unwrap();
        fs::write(proc_root.join(pid).join("cgroup"), cgroup).unwrap();
    }
    fs::create_dir_all(proc_root.join("13")).unwrap();

    let agent = Agent::start(&[
        "--procfs-root",
        proc_root.to_str().unwrap(),
        "--cgroupfs-root",
        dir.path().join("no-cgroupfs").to_str().unwrap(),
        "--min-container-age",
        "0s",
    ]);
    let s = agent.scrape();
    assert_eq!(
        s.value(
            "node_info",
            &[("hostname", "fake-node"), ("kernel_version", "6.1.0-test")]
        ),
        Some(1.0)
    );
    assert_eq!(s.value("node_uptime_seconds", &[]), Some(123.45));
    assert!(s.value("sonde_node_read_errors_total", &[]).unwrap() >= 1.0);
    assert!(s.value("sonde_proc_scan_errors_total", &[]).unwrap() >= 1.0);
    assert_eq!(
        s.value("sonde_subsystem_up", &[("subsystem", "cgroup")]),
        Some(0.0)
    );
    assert_eq!(
        s.value("sonde_subsystem_up", &[("subsystem", "discovery")]),
        Some(1.0)
    );
    // The well-formed service is still discovered and exported (without resource values).
    assert!(s.has(
        "container_info",
        &[("container_id", "/system.slice/ok.service")]
    ));
    let log = agent.log_text();
    assert!(
        log.contains("cgroup") && log.contains("--cgroupfs-root"),
        "{log}"
    );
}

/// Without root the agent starts, serves node metrics and says what is off.
#[test]
fn runs_without_root() {
    if !privileged("runs_without_root") {
        return; // We need root to become an unprivileged user.
    }
    let Some(setpriv) = tools::require("runs_without_root", "setpriv", "util-linux") else {
        return;
    };
    let bin = sonde_binary();
    // The binary must be reachable by nobody: copy it somewhere world-readable.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("sonde");
    fs::copy(&bin, &copy).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).unwrap();
    let launcher = [
        setpriv.into_os_string(),
        "--reuid=65534".into(),
        "--regid=65534".into(),
        "--clear-groups".into(),
        "--".into(),
        copy.into_os_string(),
    ];
    let agent = Agent::start_via(&launcher, &[]);
    let s = agent.scrape();
    assert!(s.has("node_info", &[]));
    assert!(s.value("node_resources_memory_total_bytes", &[]).unwrap() > 0.0);
    let log = agent.log_text();
    assert!(log.contains("Not running as root"), "{log}");
}
