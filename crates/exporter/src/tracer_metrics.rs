//! The tracer's self-metrics, rendered at scrape from what the registry's scrape took of the
//! tracer and its bridge: events lost in the kernel, decode errors, unattributed events, the
//! connection table's figures, and the conntrack, L7 and TLS counters.

use prometheus::proto::MetricFamily;
use sonde_registry::{NodeLabels, TracerFigures};

use crate::catalogue;
use crate::exposition::Family;

/// Renders every tracer self-metric of `t`.
pub fn render_tracer(t: &TracerFigures, node: &NodeLabels, out: &mut Vec<MetricFamily>) {
    let TracerFigures {
        lost,
        decode_errors,
        new_processes_dropped,
        unattributed,
        tracked_connections,
        table_overflow,
        stale_connections,
        nat,
        l7,
        tls,
    } = t;
    let mut f = Family::new(&catalogue::SONDE_EBPF_EVENTS_LOST);
    for (program, n) in lost {
        f.add(&[("program", program)], *n as f64);
    }
    f.finish(node, out);
    for (def, value) in [
        (&catalogue::SONDE_EBPF_DECODE_ERRORS, *decode_errors as f64),
        (
            &catalogue::SONDE_NEW_PROCESSES_DROPPED,
            *new_processes_dropped as f64,
        ),
        (&catalogue::SONDE_EVENTS_UNATTRIBUTED, *unattributed as f64),
        (
            &catalogue::SONDE_TCP_CONNECTIONS_TRACKED,
            *tracked_connections as f64,
        ),
        (&catalogue::SONDE_TCP_TABLE_OVERFLOW, *table_overflow as f64),
        (
            &catalogue::SONDE_TCP_CONNECTIONS_STALE,
            *stale_connections as f64,
        ),
    ] {
        let mut f = Family::new(def);
        f.add(&[], value);
        f.finish(node, out);
    }
    if let Some(nat) = nat {
        crate::subsystems::render_nat(nat, node, out);
    }
    if let Some(l7) = l7 {
        crate::render_l7::render_l7_self_metrics(l7, node, out);
    }
    if let Some(tls) = tls {
        crate::subsystems::render_tls(tls, node, out);
    }
}
