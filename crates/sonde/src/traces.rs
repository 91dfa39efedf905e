//! Wiring of trace export (crates/traces): the endpoint from the flags, the registry's span
//! hook, health as `sonde_subsystem_up{subsystem="traces"}`, and the exporter's counters in
//! every scrape.

use std::sync::{Arc, OnceLock};

use prometheus::proto::MetricFamily;
use sonde_exporter::catalogue;
use sonde_exporter::exposition::Family;
use sonde_registry::{NodeLabels, Registry, SpanHook};
use sonde_traces::{Traces, TracesConfig};

use crate::cli::AgentArgs;

/// Health subsystem name.
const SUBSYSTEM: &str = "traces";

/// The traces endpoint the flags ask for (`--traces-endpoint`, else coroot's
/// `<--collector-endpoint>/v1/traces`); an invalid one stops the agent at start.
pub fn endpoint(args: &AgentArgs) -> anyhow::Result<Option<hyper::Uri>> {
    let (url, flag) = match (&args.traces_endpoint, &args.collector_endpoint) {
        (Some(url), _) => (url.clone(), "--traces-endpoint"),
        (None, Some(base)) => (
            format!("{}/v1/traces", base.trim_end_matches('/')),
            "--collector-endpoint",
        ),
        (None, None) => return Ok(None),
    };
    Ok(Some(sonde_traces::parse_endpoint(flag, &url)?))
}

/// The registry's hook: hands each outbound request to the exporter once it runs (the few
/// requests before that, while the registry starts, are not traced).
pub fn hook(slot: &Arc<OnceLock<Traces>>) -> SpanHook {
    let slot = slot.clone();
    SpanHook(Arc::new(
        move |container_id: &str, peer: std::net::SocketAddr, request: &sonde_l7::Request| {
            if let Some(t) = slot.get() {
                t.offer(container_id, peer, request);
            }
        },
    ))
}

/// Starts the exporter (a task on the current runtime) and puts it in `slot`.
pub fn start(args: &AgentArgs, endpoint: hyper::Uri, registry: &Registry, slot: &OnceLock<Traces>) {
    let node = registry.node_labels();
    let host_name = std::fs::read_to_string(args.procfs_root.join("sys/kernel/hostname"))
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    let mut config = TracesConfig::new(endpoint.clone());
    config.sampling = args.traces_sampling;
    config.queue_size = args.traces_queue_size as usize;
    config.batch_delay = args.traces_batch_delay;
    config.retry_min = args.traces_retry_min;
    config.retry_max = args.traces_retry_max.max(args.traces_retry_min);
    config.max_attempts = args.traces_max_attempts;
    config.headers = args
        .api_key
        .iter()
        .map(|k| ("X-API-Key".to_owned(), k.clone()))
        .collect();
    config.node = sonde_traces::Node {
        host_name,
        host_id: node.machine_id.clone(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let health = registry.health().clone();
    let status: sonde_traces::StatusHook = Arc::new(move |result| match result {
        Ok(()) => health.up(SUBSYSTEM),
        Err(why) => health.down(SUBSYSTEM, why),
    });
    if args.disable_l7_tracing || args.disable_ebpf {
        tracing::warn!(
            "--traces-endpoint is set but L7 tracing is off (--disable-l7-tracing or \
             --disable-ebpf): no spans will be sent"
        );
    }
    match Traces::start(config, status) {
        Ok(t) => {
            registry.health().up(SUBSYSTEM);
            tracing::info!(endpoint = %endpoint, sampling = args.traces_sampling, "Trace export started");
            let _ = slot.set(t);
        }
        Err(e) => registry.health().down(SUBSYSTEM, format!("{e:#}")),
    }
}

/// The exporter's counters, for every scrape (nothing when it is not configured).
pub fn families(slot: &OnceLock<Traces>, node: &NodeLabels, out: &mut Vec<MetricFamily>) {
    let Some(t) = slot.get() else { return };
    use std::sync::atomic::Ordering::Relaxed;
    let s = t.stats();
    let plain: [(&'static catalogue::MetricDef, u64); 7] = [
        (
            &catalogue::SONDE_TRACES_SPANS_QUEUED,
            s.queued.load(Relaxed),
        ),
        (
            &catalogue::SONDE_TRACES_SPANS_EXPORTED,
            s.exported.load(Relaxed),
        ),
        (
            &catalogue::SONDE_TRACES_SAMPLED_OUT,
            s.sampled_out.load(Relaxed),
        ),
        (
            &catalogue::SONDE_TRACES_WITHOUT_DETAIL,
            s.without_detail.load(Relaxed),
        ),
        (
            &catalogue::SONDE_TRACES_EXPORT_FAILURES,
            s.export_failures.load(Relaxed),
        ),
        (
            &catalogue::SONDE_TRACES_BATCHES_EXPORTED,
            s.batches_exported.load(Relaxed),
        ),
        (&catalogue::SONDE_TRACES_QUEUE, s.queue_length.load(Relaxed)),
    ];
    for (def, v) in plain {
        let mut f = Family::new(def);
        f.add(&[], v as f64);
        f.finish(node, out);
    }
    let mut f = Family::new(&catalogue::SONDE_TRACES_SPANS_DROPPED);
    for (reason, v) in [
        ("queue_full", &s.dropped_queue_full),
        ("export_failed", &s.dropped_export_failed),
        ("rejected", &s.dropped_rejected),
    ] {
        f.add(&[("reason", reason)], v.load(Relaxed) as f64);
    }
    f.finish(node, out);
}
