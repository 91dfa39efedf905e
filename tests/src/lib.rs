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
pub mod l7_expect;
pub mod l7_run;
pub mod l7_servers;
pub mod tools;

pub use agent::Agent;
pub use exposition::{Sample, Scrape};

/// Whether a privileged test may run. Returns false (after printing the reason) when it must
/// skip; panics when skipping is not allowed (`SONDE_REQUIRE_PRIVILEGED=1`).
pub fn privileged(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if root {
        return true;
    }
    skip(test, "needs root (cgroups, containers, eBPF)")
}

/// Skips `test` for `reason`, or fails it when SONDE_REQUIRE_PRIVILEGED=1.
pub fn skip(test: &str, reason: &str) -> bool {
    if std::env::var("SONDE_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
        panic!("{test}: cannot skip ({reason}) because SONDE_REQUIRE_PRIVILEGED=1");
    }
    eprintln!("SKIPPED {test}: {reason}");
    false
}

/// A TCP port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral port")
        .local_addr()
        .expect("local addr")
        .port()
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
