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

/// The agent's own pid: its exports to the collector are HTTP requests the L7 tracer sees too,
/// and must not become spans (one more span per export, forever).
pub fn agent_pid() -> u32 {
    static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *PID.get_or_init(std::process::id)
}

impl std::fmt::Debug for SpanHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SpanHook")
    }
}
