//! The TLS uprobes in the agent (crates/tracer/src/tls.rs, docs/l7.md "TLS"):
//! loaded with the tracer when the L7 programs are attached, told about every
//! process by the bridge task (all of them at its start, then each new one),
//! and their counters rendered as `sonde_tls_*`.

use std::path::Path;

use prometheus::proto::MetricFamily;
use sonde_tracer::Tracer;
use sonde_tracer::tls::{SkipReason, TlsAttacher, TlsConfig, TlsStats};

use crate::catalogue::l7 as cat;
use crate::exposition::{Family, NodeLabels};
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

/// `sonde_tls_uprobes_attached{kind}` and `sonde_tls_files_skipped_total{reason}`.
pub(crate) fn render(s: &TlsStats, node: &NodeLabels, out: &mut Vec<MetricFamily>) {
    let mut f = Family::new(&cat::SONDE_TLS_UPROBES_ATTACHED);
    f.add(&[("kind", "openssl")], s.openssl_targets as f64);
    f.add(&[("kind", "go")], s.go_targets as f64);
    f.finish(node, out);
    let mut f = Family::new(&cat::SONDE_TLS_FILES_SKIPPED);
    for reason in SkipReason::ALL {
        let n = s.skipped.get(&reason).copied().unwrap_or(0);
        f.add(&[("reason", reason.label())], n as f64);
    }
    f.finish(node, out);
    let mut f = Family::new(&cat::SONDE_TLS_UPROBES);
    f.add(&[], s.uprobes as f64);
    f.finish(node, out);
}
