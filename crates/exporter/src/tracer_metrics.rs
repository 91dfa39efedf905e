//! The tracer's self-metrics, rendered at scrape from what the tracer's scrape read: events
//! lost in the kernel, decode errors, unattributed events and the connection table's figures.

use std::sync::PoisonError;

use crate::{Registry, catalogue, exposition, nat_bridge, tracer_bridge};

impl Registry {
    pub(crate) fn render_tracer_self_metrics(
        &self,
        t: &tracer_bridge::TracerScrape,
        out: &mut Vec<prometheus::proto::MetricFamily>,
    ) {
        use std::sync::atomic::Ordering::Relaxed;
        let node = &self.inner.node_labels;
        let mut f = exposition::Family::new(&catalogue::SONDE_EBPF_EVENTS_LOST);
        for (program, n) in &t.lost {
            f.add(&[("program", program)], *n as f64);
        }
        f.finish(node, out);
        let stats = &self.inner.bridge_stats;
        let unattributed = self
            .inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .unattributed_events;
        for (def, value) in [
            (
                &catalogue::SONDE_EBPF_DECODE_ERRORS,
                stats.decode_errors.load(Relaxed) as f64,
            ),
            (
                &catalogue::SONDE_NEW_PROCESSES_DROPPED,
                stats.pending_dropped.load(Relaxed) as f64,
            ),
            (&catalogue::SONDE_EVENTS_UNATTRIBUTED, unattributed as f64),
            (
                &catalogue::SONDE_TCP_CONNECTIONS_TRACKED,
                t.tracked_connections as f64,
            ),
            (
                &catalogue::SONDE_TCP_TABLE_OVERFLOW,
                t.table_overflow as f64,
            ),
            (
                &catalogue::SONDE_TCP_CONNECTIONS_STALE,
                t.stale_connections as f64,
            ),
        ] {
            let mut f = exposition::Family::new(def);
            f.add(&[], value);
            f.finish(node, out);
        }
        if let Some(nat) = &t.nat {
            nat_bridge::render(nat, node, out);
        }
        if t.l7_attached {
            let l7 = *stats.l7.lock().unwrap_or_else(PoisonError::into_inner);
            crate::render_l7::render_l7_self_metrics(&l7, node, out);
        }
        let tls = stats
            .tls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(tls) = tls {
            crate::tls_bridge::render(&tls, node, out);
        }
    }
}
