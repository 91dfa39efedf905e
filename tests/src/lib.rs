//! Harness for sonde's integration tests: start the real agent binary, scrape it, parse the
//! exposition, and set up real kernel objects (cgroups) and runtimes (containerd, dockerd).
//!
//! Privileged tests call [`privileged`] first: without root they print why they skip, and with
//! `SONDE_REQUIRE_PRIVILEGED=1` (set by CI) a skip is a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod agent;
pub mod cgroups;
pub mod containerd;
pub mod cri;
pub mod dockerd;
pub mod exposition;
pub mod http_mock;
pub mod l7_db;
pub mod l7_expect;
pub mod l7_run;
pub mod l7_servers;
pub mod otlp_receiver;
pub mod tools;

pub use agent::Agent;
pub use exposition::{Sample, Scrape, val};

/// Whether a privileged test may run. Returns false (after printing the reason) when it must
/// skip; panics when skipping is not allowed (`SONDE_REQUIRE_PRIVILEGED=1`). The policy is
/// sonde-testsupport's, shared with the crates' own tests.
pub fn privileged(test: &str) -> bool {
    sonde_testsupport::require_root(test, "cgroups, containers, eBPF")
}

/// Skips `test` for `reason` (something CI's machine has is missing), or fails it when
/// SONDE_REQUIRE_PRIVILEGED=1.
pub fn skip(test: &str, reason: &str) -> bool {
    sonde_testsupport::skip(test, sonde_testsupport::Needs::Privileged, reason)
}

/// A TCP port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral port")
        .local_addr()
        .expect("local addr")
        .port()
}

/// A loopback port outside the ephemeral range that nobody listens on right now. Tests listen
/// there because connections to ephemeral destination ports are not counted (they are not
/// service endpoints). Ports are tried from a seed of time and pid, so tests running at once
/// rarely race for one.
pub fn free_port_outside_ephemeral() -> u16 {
    let l = listener_outside_ephemeral();
    l.local_addr().expect("local addr").port()
}

/// A listener on 127.0.0.1 at a port outside the ephemeral range (see
/// [`free_port_outside_ephemeral`]).
pub fn listener_outside_ephemeral() -> std::net::TcpListener {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let seed = u64::from(nanos ^ std::process::id().rotate_left(16));
    for i in 0..500u64 {
        let port = 20_000 + ((seed + i * 104_729) % 12_000) as u16;
        if let Ok(l) = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, port)) {
            return l;
        }
    }
    panic!("no free port in 20000-32000 on 127.0.0.1");
}

/// Polls `f` every 100 ms until it returns Some, or panics with `what` after `timeout`.
pub fn wait_for<T>(
    what: &str,
    timeout: std::time::Duration,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if std::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
