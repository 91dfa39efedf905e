//! Sockets older than the agent, through the real agent: a connection opened before the agent
//! started shows as active at once and its bytes count from the agent's start (not its whole
//! history, and no connect: that happened before); a listener opened before the agent is
//! reported. The client and the listener are busybox `nc` processes in a test cgroup
//! (`/system.slice/sonde-pre-<pid>.service`), the server the test itself.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::process::{Command, Stdio};
use std::time::Duration;

use sonde_integration_tests::cgroups::TestCgroup;
use sonde_integration_tests::{Agent, privileged, val};

const TIMEOUT: Duration = Duration::from_secs(60);

/// A loopback port outside the ephemeral range (those are never destinations or listeners).
fn port_outside_ephemeral(salt: u64) -> u16 {
    let seed = u64::from(std::process::id()) * 7919 + salt * 31;
    for i in 0..500u64 {
        let port = 20_000 + ((seed + i * 104_729) % 12_000) as u16;
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in 20000-32000 on 127.0.0.1");
}

#[test]
fn a_connection_and_a_listener_older_than_the_agent_are_seen() {
    let test = "a_connection_and_a_listener_older_than_the_agent_are_seen";
    if !privileged(test) {
        return;
    }
    let path = format!("/system.slice/sonde-pre-{}.service", std::process::id());
    let container_id = path.clone();
    let mut cg = TestCgroup::create(&path).unwrap();

    // Before the agent: the server (this test), a client connection that moves 1,000 bytes,
    // and a listener, both in the test cgroup.
    let server_port = port_outside_ephemeral(1);
    let server = TcpListener::bind((Ipv4Addr::LOCALHOST, server_port)).unwrap();
    let mut client = Command::new("busybox")
        .args(["nc", "127.0.0.1", &server_port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("busybox nc");
    cg.add_pid(client.id()).unwrap();
    let (mut conn, _) = server.accept().unwrap();
    let mut stdin = client.stdin.take().unwrap();
    stdin.write_all(&[b'a'; 1000]).unwrap();
    stdin.flush().unwrap();
    let mut buf = vec![0u8; 1000];
    conn.read_exact(&mut buf).unwrap();

    let listen_port = port_outside_ephemeral(2);
    let listener = Command::new("busybox")
        .args(["nc", "-l", "-p", &listen_port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("busybox nc -l");
    cg.add_pid(listener.id()).unwrap();
    // Listening (busybox listens on [::], dual-stack), per /proc/net/tcp6: a connect would
    // end busybox's one-shot listener.
    let listening = format!(":{listen_port:04X} 00000000000000000000000000000000:0000 0A");
    sonde_integration_tests::wait_for("the listener", Duration::from_secs(10), || {
        let v4 = std::fs::read_to_string("/proc/net/tcp").ok()?;
        let v6 = std::fs::read_to_string("/proc/net/tcp6").ok()?;
        let v4_listening = format!(":{listen_port:04X} 00000000:0000 0A");
        (v6.contains(&listening) || v4.contains(&v4_listening)).then_some(())
    });
    cg.own(listener);

    let agent = Agent::start(&["--min-container-age", "0s"]);
    let dst = format!("127.0.0.1:{server_port}");
    let labels = [
        ("container_id", container_id.as_str()),
        ("destination", dst.as_str()),
    ];
    let s = agent.scrape_until("the old connection active", TIMEOUT, |s| {
        val(s, "container_net_tcp_active_connections", &labels) >= 1.0
    });
    assert_eq!(
        s.value("container_net_tcp_active_connections", &labels),
        Some(1.0)
    );
    assert_eq!(
        val(&s, "container_net_tcp_bytes_sent_total", &labels),
        0.0,
        "bytes before the agent started are not its to count"
    );
    assert_eq!(
        val(&s, "container_net_tcp_successful_connects_total", &labels),
        0.0,
        "the connect happened before the agent"
    );
    // The listener: a wildcard in the host's namespace, so its addresses include loopback.
    let listen_addr = format!("127.0.0.1:{listen_port}");
    assert_eq!(
        s.value(
            "container_net_tcp_listen_info",
            &[
                ("container_id", &container_id),
                ("listen_addr", &listen_addr),
                ("proxy", "")
            ]
        ),
        Some(1.0),
        "{}",
        s.text
    );

    // After the start: 500 bytes out, 300 in; exactly those are counted.
    stdin.write_all(&[b'b'; 500]).unwrap();
    stdin.flush().unwrap();
    let mut buf = vec![0u8; 500];
    conn.read_exact(&mut buf).unwrap();
    conn.write_all(&[b'c'; 300]).unwrap();
    let s = agent.scrape_until("the new bytes", TIMEOUT, |s| {
        val(s, "container_net_tcp_bytes_sent_total", &labels) >= 500.0
            && val(s, "container_net_tcp_bytes_received_total", &labels) >= 300.0
    });
    assert_eq!(
        s.value("container_net_tcp_bytes_sent_total", &labels),
        Some(500.0)
    );
    assert_eq!(
        s.value("container_net_tcp_bytes_received_total", &labels),
        Some(300.0)
    );

    // Closed: active 0, nothing counted twice, still no connect.
    drop(stdin);
    drop(conn);
    let _ = client.kill();
    let _ = client.wait();
    let s = agent.scrape_until("the close", TIMEOUT, |s| {
        s.value("container_net_tcp_active_connections", &labels) == Some(0.0)
    });
    assert_eq!(
        s.value("container_net_tcp_bytes_sent_total", &labels),
        Some(500.0)
    );
    assert_eq!(
        s.value("container_net_tcp_bytes_received_total", &labels),
        Some(300.0)
    );
    assert_eq!(
        val(&s, "container_net_tcp_successful_connects_total", &labels),
        0.0
    );
    cg.kill_children();
}
