//! Ports Docker publishes, through the real agent and a real dockerd: the host side of a
//! published port (served by docker-proxy) is one of the container's listeners, exported as
//! `container_net_tcp_listen_info{proxy="dockerd"}`, so a client dialling the host address is
//! matched to the container.
//!
//! The harness dockerd runs without its default bridge (`--bridge=none`, `--iptables=false`),
//! so the test makes a network of its own on a subnet of the benchmarking range
//! (198.18.254.0/29, RFC 2544: on no real network) and removes it at the end. No traffic is
//! sent; only the published-port metadata is read.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use sonde_integration_tests::Agent;
use sonde_integration_tests::dockerd::Dockerd;

const IMAGE: &str = "sonde-busybox:ports";

/// Removes the test network when dropped (before the daemon is, since it is declared after).
struct Network<'a> {
    docker: &'a Dockerd,
    name: String,
}

impl Drop for Network<'_> {
    fn drop(&mut self) {
        let _ = self.docker.docker(&["network", "rm", &self.name]);
    }
}

#[test]
fn published_ports_are_listeners_with_proxy_dockerd() {
    let test = "published_ports_are_listeners_with_proxy_dockerd";
    let Some(d) = Dockerd::start_or_skip(test) else {
        return;
    };
    d.import_busybox(IMAGE)
        .unwrap_or_else(|e| panic!("{test}: import busybox: {e}\n{}", d.daemon_logs()));
    let net = Network {
        docker: &d,
        name: format!("sonde-ports-{}", std::process::id()),
    };
    d.docker(&[
        "network",
        "create",
        "--driver",
        "bridge",
        "--subnet",
        "198.18.254.0/29",
        &net.name,
    ])
    .unwrap_or_else(|e| panic!("{test}: docker network create: {e}\n{}", d.daemon_logs()));
    let host_port = 20_000 + (std::process::id() % 10_000) as u16;
    let name = format!("sonde-ports-{}", std::process::id());
    let id = d
        .run(&[
            "--network",
            &net.name,
            "-p",
            &format!("127.0.0.1:{host_port}:8080"),
            "--name",
            &name,
            IMAGE,
            "sleep",
            "300",
        ])
        .unwrap_or_else(|e| panic!("{test}: docker run: {e}\n{}", d.daemon_logs()));
    let agent = Agent::start(&[
        "--docker-socket",
        d.socket.to_str().expect("UTF-8 temp path"),
        "--min-container-age",
        "0s",
    ]);
    let cid = format!("/docker/{name}");
    let listen = format!("127.0.0.1:{host_port}");
    let labels = [
        ("container_id", cid.as_str()),
        ("listen_addr", listen.as_str()),
        ("proxy", "dockerd"),
    ];
    let s = agent.scrape_until("the published port", Duration::from_secs(60), |s| {
        s.value("container_net_tcp_listen_info", &labels).is_some()
    });
    assert_eq!(
        s.value("container_net_tcp_listen_info", &labels),
        Some(1.0),
        "{}",
        s.text
    );
    let _ = d.remove(&id);
}
