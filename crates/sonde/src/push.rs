//! Wiring of push delivery (crates/push): endpoints from the flags, the registry's gather as
//! its source, health per endpoint, and its counters in every scrape and push.

use std::sync::{Arc, OnceLock};

use prometheus::proto::MetricFamily;
use sonde_exporter::exposition::Family;
use sonde_exporter::{Exporter, catalogue};
use sonde_push::{Endpoint, Protocol, Push, PushConfig};
use sonde_registry::NodeLabels;

use crate::cli::AgentArgs;

/// The endpoints the flags ask for; an invalid one stops the agent at start (naming the flag).
pub fn endpoints(args: &AgentArgs) -> anyhow::Result<Vec<Endpoint>> {
    let mut out = Vec::new();
    let remote_write = match (&args.metrics_endpoint, &args.collector_endpoint) {
        (Some(url), _) => Some((url.clone(), "--metrics-endpoint")),
        (None, Some(base)) => Some((
            format!("{}/v1/metrics", base.trim_end_matches('/')),
            "--collector-endpoint",
        )),
        (None, None) => None,
    };
    if let Some((url, flag)) = remote_write {
        out.push(Endpoint::parse(Protocol::RemoteWrite, flag, &url)?);
    }
    if let Some(url) = &args.otlp_metrics_endpoint {
        out.push(Endpoint::parse(
            Protocol::Otlp,
            "--otlp-metrics-endpoint",
            url,
        )?);
    }
    Ok(out)
}

/// Health subsystem name of an endpoint.
fn subsystem(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::RemoteWrite => "push_remote_write",
        Protocol::Otlp => "push_otlp",
    }
}

/// Starts push delivery when an endpoint is configured. `slot` is where the render and gather
/// closures find its counters (set here, read at every scrape). A spool that cannot be used
/// marks the endpoints down with the reason; the agent serves /metrics all the same.
pub fn start(
    args: &AgentArgs,
    endpoints: Vec<Endpoint>,
    exporter: &Exporter,
    slot: Arc<OnceLock<Push>>,
) {
    let registry = exporter.registry();
    if endpoints.is_empty() {
        return;
    }
    let node = registry.node_labels();
    let instance = if node.machine_id.is_empty() {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default()
    } else {
        node.machine_id.clone()
    };
    let protocols: Vec<Protocol> = endpoints.iter().map(|e| e.protocol).collect();
    // Remote write: labels of every series (a series' own label of the same name wins);
    // OTLP: resource attributes (service.instance.id, service.name).
    let labels = vec![
        ("instance".to_owned(), instance),
        ("job".to_owned(), "sonde".to_owned()),
    ];
    let config = PushConfig {
        endpoints,
        interval: args.scrape_interval,
        wal_dir: args.wal_dir.clone(),
        max_spool_size: args.max_spool_size,
        headers: args
            .api_key
            .iter()
            .map(|k| ("X-API-Key".to_owned(), k.clone()))
            .collect(),
        labels,
        retry_min: args.push_retry_min,
        retry_max: args.push_retry_max.max(args.push_retry_min),
        timeout: args.push_timeout,
    };
    let gather_exporter = exporter.clone();
    let gather_slot = slot.clone();
    let gather: sonde_push::Gather = Arc::new(move || {
        gather_exporter.gather(|node, out| extra_families(&gather_slot, node, out))
    });
    let health = registry.health().clone();
    let status: sonde_push::StatusHook = Arc::new(move |protocol, result| {
        match result {
        Ok(()) => health.up(subsystem(protocol)),
        Err(why) => health.down(
            subsystem(protocol),
            format!(
                "{why}; batches stay in the spool (--wal-dir, up to --max-spool-size) and are retried"
            ),
        ),
    }
    });
    match sonde_push::start(config, gather, status) {
        Ok(push) => {
            for p in &protocols {
                registry.health().up(subsystem(*p));
            }
            tracing::info!(
                endpoints = protocols.len(),
                interval = ?args.scrape_interval,
                wal_dir = %args.wal_dir.display(),
                "Push delivery started"
            );
            let _ = slot.set(push);
        }
        Err(e) => {
            for p in &protocols {
                registry.health().down(
                    subsystem(*p),
                    format!("{e:#}; give --wal-dir a writable directory (e.g. an emptyDir or hostPath volume)"),
                );
            }
        }
    }
}

/// What the binary adds to every scrape and push: the agent's process_* metrics and the push
/// counters.
pub fn extra_families(slot: &OnceLock<Push>, node: &NodeLabels, out: &mut Vec<MetricFamily>) {
    crate::add_process_metrics(node, out);
    let Some(push) = slot.get() else { return };
    use std::sync::atomic::Ordering::Relaxed;
    type Read = fn(&sonde_push::TargetStats) -> u64;
    let defs: [(&'static catalogue::MetricDef, Read); 9] = [
        (&catalogue::SONDE_PUSH_BATCHES, |s| {
            s.batches_spooled.load(Relaxed)
        }),
        (&catalogue::SONDE_PUSH_SAMPLES_SENT, |s| {
            s.samples_sent.load(Relaxed)
        }),
        (&catalogue::SONDE_PUSH_SEND_FAILURES, |s| {
            s.send_failures.load(Relaxed)
        }),
        (&catalogue::SONDE_PUSH_BATCHES_REJECTED, |s| {
            s.batches_rejected.load(Relaxed)
        }),
        (&catalogue::SONDE_PUSH_BATCHES_DROPPED, |s| {
            s.batches_dropped.load(Relaxed)
        }),
        (&catalogue::SONDE_PUSH_SAMPLES_DROPPED, |s| {
            s.samples_dropped.load(Relaxed)
        }),
        (&catalogue::SONDE_PUSH_SPOOL_ERRORS, |s| {
            s.spool_errors.load(Relaxed)
        }),
        (&catalogue::SONDE_PUSH_SPOOL_BYTES, |s| {
            s.spool_bytes.load(Relaxed)
        }),
        (&catalogue::SONDE_PUSH_SPOOL_BATCHES, |s| {
            s.spool_batches.load(Relaxed)
        }),
    ];
    for (def, read) in defs {
        let mut f = Family::new(def);
        for (protocol, stats) in &push.targets {
            f.add(&[("protocol", protocol.as_str())], read(stats) as f64);
        }
        f.finish(node, out);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use clap::Parser;

    use super::*;
    use crate::cli::Cli;

    fn endpoints_of(args: &[&str]) -> anyhow::Result<Vec<Endpoint>> {
        let cli =
            Cli::try_parse_from(std::iter::once("sonde").chain(args.iter().copied())).unwrap();
        endpoints(&cli.agent)
    }

    #[test]
    fn endpoints_from_flags() {
        assert!(endpoints_of(&[]).unwrap().is_empty());
        let e = endpoints_of(&["--collector-endpoint", "http://coroot:8080/"]).unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].protocol, Protocol::RemoteWrite);
        assert_eq!(e[0].uri.to_string(), "http://coroot:8080/v1/metrics");
        // An explicit --metrics-endpoint wins over the collector's.
        let e = endpoints_of(&[
            "--collector-endpoint",
            "http://coroot:8080",
            "--metrics-endpoint",
            "http://prom:9090/api/v1/write",
            "--otlp-metrics-endpoint",
            "http://otel:4318/v1/metrics",
        ])
        .unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].uri.path(), "/api/v1/write");
        assert_eq!(e[1].protocol, Protocol::Otlp);
        let err = endpoints_of(&["--metrics-endpoint", "https://prom/api/v1/write"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--metrics-endpoint") && err.contains("https"),
            "{err}"
        );
        let err = endpoints_of(&["--collector-endpoint", "coroot:8080"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--collector-endpoint"), "{err}");
    }
}
