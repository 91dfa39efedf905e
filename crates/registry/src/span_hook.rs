//! The hook through which outbound requests leave the registry for trace export
//! (crates/traces, wired by the binary): called on the registry task for each request a
//! named container made, after the request was counted and unless the container opted out
//! of L7 tracing. It must not block (the exporter's `offer` only samples and `try_send`s).

use std::net::SocketAddr;
use std::sync::Arc;

/// `(container_id, actual destination, request)`.
pub type HookFn = dyn Fn(&str, SocketAddr, &sonde_l7::Request) + Send + Sync;

/// Receives each outbound L7 request with its container (`--traces-endpoint`).
#[derive(Clone)]
pub struct SpanHook(pub Arc<HookFn>);

static AGENT_PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();

/// The agent's own pid as the kernel's events give it: its exports to the collector are HTTP
/// requests the L7 tracer sees too, and must not become spans (one more span per export,
/// forever). Set from the host's /proc by [`init_agent_pid`]; this process's own id until then.
pub fn agent_pid() -> u32 {
    *AGENT_PID.get_or_init(std::process::id)
}

/// Takes the agent's pid from `procfs` (the host's /proc), once, before any event: in a
/// container with a pid namespace of its own (no hostPID) `std::process::id()` is the pid
/// inside it, while the kernel's events carry the host's.
pub fn init_agent_pid(procfs: &std::path::Path) {
    let _ = AGENT_PID.set(pid_in(procfs));
}

/// This process's pid in the pid namespace of the procfs at `procfs` (its `self` link names it
/// there), or `std::process::id()` when that cannot be read.
fn pid_in(procfs: &std::path::Path) -> u32 {
    std::fs::read_link(procfs.join("self"))
        .ok()
        .and_then(|p| p.to_str()?.parse().ok())
        .unwrap_or_else(std::process::id)
}

impl std::fmt::Debug for SpanHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SpanHook")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_pid_comes_from_the_procfs_self_link() {
        assert_eq!(pid_in(std::path::Path::new("/proc")), std::process::id());
        let dir = tempfile::tempdir().unwrap();
        // A host's /proc seen from a container: `self` names the host pid.
        std::os::unix::fs::symlink("424242", dir.path().join("self")).unwrap();
        assert_eq!(pid_in(dir.path()), 424_242);
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(pid_in(empty.path()), std::process::id());
    }
}
