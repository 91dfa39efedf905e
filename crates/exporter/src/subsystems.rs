//! Self-metrics of subsystems whose counters are their own typed structs (sonde-nat's
//! `NatStats`, the TLS attacher's `TlsStats`, the L7 engine's `L7Stats`), rendered at scrape.

use prometheus::proto::MetricFamily;
use sonde_nat::NatStats;
use sonde_registry::NodeLabels;
use sonde_tracer::tls::{SkipReason, TlsStats};

use crate::catalogue as cat;
use crate::exposition::Family;

/// `sonde_conntrack_*` self-metrics.
pub fn render_nat(stats: &NatStats, node: &NodeLabels, out: &mut Vec<MetricFamily>) {
    let mut f = Family::new(&cat::SONDE_CONNTRACK_LOOKUPS);
    f.add(&[("result", "hit")], stats.table.hits as f64);
    f.add(&[("result", "miss")], stats.table.misses as f64);
    f.finish(node, out);
    for (def, value) in [
        (&cat::SONDE_CONNTRACK_ENTRIES, stats.table.len as f64),
        (&cat::SONDE_CONNTRACK_DROPPED, stats.table.dropped as f64),
        (&cat::SONDE_CONNTRACK_EVENTS, stats.events as f64),
        (&cat::SONDE_CONNTRACK_EVENTS_LOST, stats.events_lost as f64),
        (&cat::SONDE_CONNTRACK_RESYNCS, stats.resyncs as f64),
        (
            &cat::SONDE_CONNTRACK_ERRORS,
            (stats.decode_errors + stats.dump_errors) as f64,
        ),
    ] {
        let mut f = Family::new(def);
        f.add(&[], value);
        f.finish(node, out);
    }
}

/// `sonde_tls_uprobes_attached{kind}` and `sonde_tls_files_skipped_total{reason}`.
pub fn render_tls(s: &TlsStats, node: &NodeLabels, out: &mut Vec<MetricFamily>) {
    let mut f = Family::new(&cat::l7::SONDE_TLS_UPROBES_ATTACHED);
    f.add(&[("kind", "openssl")], s.openssl_targets as f64);
    f.add(&[("kind", "go")], s.go_targets as f64);
    f.finish(node, out);
    let mut f = Family::new(&cat::l7::SONDE_TLS_FILES_SKIPPED);
    for reason in SkipReason::ALL {
        let n = s.skipped.get(&reason).copied().unwrap_or(0);
        f.add(&[("reason", reason.label())], n as f64);
    }
    f.finish(node, out);
    let mut f = Family::new(&cat::l7::SONDE_TLS_UPROBES);
    f.add(&[], s.uprobes as f64);
    f.finish(node, out);
}
