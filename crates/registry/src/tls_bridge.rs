//! The TLS uprobes in the agent (crates/tracer/src/tls.rs, docs/l7.md "TLS"):
//! loaded with the tracer when the L7 programs are attached, told about every
//! process by the bridge task (all of them at its start, then each new one),
//! and their counters rendered as `sonde_tls_*`.

use std::path::Path;

use sonde_tracer::Tracer;
use sonde_tracer::tls::{TlsAttacher, TlsConfig};

use crate::health::Health;

/// Loads the TLS programs; None (subsystem `tls` down, with the reason) when
/// they cannot be: HTTPS is then not seen, plain protocols still are.
pub(crate) fn load(tracer: &mut Tracer, procfs: &Path, health: &Health) -> Option<TlsAttacher> {
    let config = TlsConfig {
        proc_root: procfs.to_path_buf(),
        ..TlsConfig::default()
    };
    match tracer.tls_attacher(config) {
        Ok(a) => {
            health.up("tls");
            Some(a)
        }
        Err(e) => {
            health.down(
                "tls",
                format!(
                    "TLS uprobes not loaded ({}): HTTPS and other TLS traffic is not seen; plain protocols are",
                    e.reason()
                ),
            );
            None
        }
    }
}

/// At the bridge's start: the host's own OpenSSL, then every process that
/// exists (new ones come as `ProcessStart` events).
pub(crate) fn scan_existing(tls: &mut TlsAttacher, procfs: &Path) {
    tls.scan_host_libraries();
    let Ok(dir) = std::fs::read_dir(procfs) else {
        return;
    };
    for entry in dir.flatten() {
        if let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) {
            tls.scan_process(pid);
        }
    }
}
