//! The node's availability zone and region on the container network series, through the real
//! agent: once the cloud probe knows them (here from the override flags, on a machine no cloud
//! is detected on), a container's connection series carry `az` and `region`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::net::{Ipv4Addr, TcpListener};
use std::process::{Command, Stdio};
use std::time::Duration;

use sonde_integration_tests::cgroups::TestCgroup;
use sonde_integration_tests::{Agent, privileged};

#[test]
fn connection_series_carry_the_nodes_zone_and_region() {
    let test = "connection_series_carry_the_nodes_zone_and_region";
    if !privileged(test) {
        return;
    }
    let path = format!("/system.slice/sonde-zone-{}.service", std::process::id());
    let cg = TestCgroup::create(&path).unwrap();
    let agent = Agent::start(&[
        "--min-container-age",
        "0s",
        "--provider",
        "private",
        "--region",
        "test-region-1",
        "--availability-zone",
        "test-region-1b",
    ]);
    agent.wait_tracer_up(Duration::from_secs(60));

    // One connection from a process in the test cgroup to a listener outside the ephemeral
    // range.
    let server = (0..500u16)
        .find_map(|i| {
            TcpListener::bind((
                Ipv4Addr::LOCALHOST,
                20_000 + (std::process::id() as u16 % 5_000) + i,
            ))
            .ok()
        })
        .expect("a free port");
    let port = server.local_addr().unwrap().port();
    let script = format!("read x; exec busybox nc 127.0.0.1 {port} </dev/null");
    let mut client = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("sh");
    // In the cgroup before it connects: the shell waits for a line first.
    cg.add_pid(client.id()).unwrap();
    drop(client.stdin.take()); // EOF: read returns, nc runs
    let (mut conn, _) = server.accept().unwrap();
    drop(conn.read(&mut [0u8; 1]));
    drop(conn);
    let _ = client.wait();

    let dst = format!("127.0.0.1:{port}");
    let s = agent.scrape_until("the connect", Duration::from_secs(60), |s| {
        s.value(
            "container_net_tcp_successful_connects_total",
            &[
                ("container_id", path.as_str()),
                ("destination", dst.as_str()),
            ],
        )
        .is_some()
    });
    assert_eq!(
        s.value(
            "container_net_tcp_successful_connects_total",
            &[
                ("container_id", path.as_str()),
                ("destination", dst.as_str()),
                ("az", "test-region-1b"),
                ("region", "test-region-1"),
            ],
        ),
        Some(1.0),
        "{}",
        s.text
    );
}
