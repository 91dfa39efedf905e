//! A fork runs in its parent's cgroup until it moves itself into its own and execs: runc joins
//! a container's cgroups between fork and exec, and under load that window lasts tens of ms.
//! Here each client is a shell born in a "parent" service cgroup that stays there 350 ms,
//! moves itself into a "client" service cgroup and execs a python3 that connects once and
//! exits at once (`os._exit`). The agent scans /proc every 300 ms, so a scan reads every shell
//! in the parent's cgroup, and the client is mostly gone before the next scan could see it
//! moved. The connects must still count exactly N under the client's container and none under
//! the parent's: the scan leaves processes younger than 500 ms to its next pass
//! (crates/registry/src/discovery.rs), and the kernel's cgroup id places a client gone before
//! /proc could be read. Without that rule 3-5 of the 10 connects counted under the parent (3 of
//! 3 runs failed).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use sonde_integration_tests::cgroups::TestCgroup;
use sonde_integration_tests::tools::require;
use sonde_integration_tests::{Agent, listener_outside_ephemeral, privileged, val};

const TIMEOUT: Duration = Duration::from_secs(60);
const CLIENTS: usize = 10;

#[test]
fn a_fork_that_moves_into_its_cgroup_before_exec_counts_there() {
    let test = "a_fork_that_moves_into_its_cgroup_before_exec_counts_there";
    if !privileged(test) || require(test, "python3", "python3").is_none() {
        return;
    }
    let listener = listener_outside_ephemeral();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        for _ in 0..CLIENTS {
            let (mut s, _) = listener.accept().unwrap();
            let mut rest = Vec::new();
            let _ = s.read_to_end(&mut rest);
        }
    });
    let parent = TestCgroup::service_with_keeper("settle-parent");
    let client = TestCgroup::service_with_keeper("settle-client");
    let agent = Agent::start(&["--min-container-age", "0s", "--proc-scan-interval", "300ms"]);
    agent.wait_tracer_up(TIMEOUT);

    let connect = format!(
        "import os, socket; socket.create_connection(('127.0.0.1', {port})).close(); os._exit(0)"
    );
    let script = format!(
        "sleep 0.35; for f in \"$@\"; do echo $$ > \"$f\"; done; exec python3 -c \"{connect}\""
    );
    for _ in 0..CLIENTS {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(&script)
            .arg("sh")
            .args(client.procs_files());
        parent.spawn_into(&mut cmd);
        let status = cmd.stdin(Stdio::null()).status().unwrap();
        assert!(status.success(), "client shell failed: {status}");
    }
    server.join().expect("the server saw every connection");

    let dst = format!("127.0.0.1:{port}");
    let metric = "container_net_tcp_successful_connects_total";
    let in_client = [
        ("container_id", client.path.as_str()),
        ("destination", &dst),
    ];
    let in_parent = [
        ("container_id", parent.path.as_str()),
        ("destination", &dst),
    ];
    let s = agent.scrape_until("every connect", TIMEOUT, |s| {
        val(s, metric, &in_client) + val(s, metric, &in_parent) >= CLIENTS as f64
    });
    // Settle: a connect counted late, or twice, shows up now.
    std::thread::sleep(Duration::from_millis(1500));
    let s2 = agent.scrape();
    for s in [&s, &s2] {
        assert_eq!(
            s.value(metric, &in_client),
            Some(CLIENTS as f64),
            "every connect in the client's container\n{}",
            s.text
        );
        assert_eq!(
            val(s, metric, &in_parent),
            0.0,
            "none in the parent's\n{}",
            s.text
        );
    }
}
