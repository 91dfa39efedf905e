//! The agent's own metrics (`sonde_*`): is it healthy, what did it drop, what did a scrape cost.
//! These are long-lived counters, so they use the `prometheus` crate's metric types in a
//! registry of their own that carries the node labels.

use std::collections::HashMap;

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

use crate::exposition::NodeLabels;

/// Every self-metric, registered once at start.
#[derive(Clone)]
pub struct SelfMetrics {
    pub registry: Registry,
    pub build_info: IntGaugeVec,
    pub scrape_duration: Histogram,
    pub subsystem_up: IntGaugeVec,
    pub containers_tracked: IntGaugeVec,
    pub processes_tracked: IntGauge,
    pub events_dropped: IntCounterVec,
    pub metadata_lookups: IntCounterVec,
    pub metadata_errors: IntCounterVec,
    pub cgroup_read_errors: IntCounterVec,
    pub node_read_errors: IntCounter,
    pub proc_scan_errors: IntCounter,
    pub taskstats_errors: IntCounter,
    pub taskstats_implausible: IntCounter,
}

impl std::fmt::Debug for SelfMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SelfMetrics")
    }
}

impl SelfMetrics {
    pub fn new(node: &NodeLabels, version: &str) -> Result<SelfMetrics, prometheus::Error> {
        let labels = HashMap::from([
            ("machine_id".to_owned(), node.machine_id.clone()),
            ("system_uuid".to_owned(), node.system_uuid.clone()),
        ]);
        let registry = Registry::new_custom(None, Some(labels))?;
        let m = SelfMetrics {
            build_info: IntGaugeVec::new(
                Opts::new("sonde_build_info", "sonde build information"),
                &["version"],
            )?,
            scrape_duration: Histogram::with_opts(
                HistogramOpts::new(
                    "sonde_scrape_duration_seconds",
                    "Time spent producing a whole /metrics response: rendering, encoding and compression",
                )
                .buckets(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                ]),
            )?,
            subsystem_up: IntGaugeVec::new(
                Opts::new(
                    "sonde_subsystem_up",
                    "Whether a subsystem of the agent is working (1) or degraded (0); the log says why",
                ),
                &["subsystem"],
            )?,
            containers_tracked: IntGaugeVec::new(
                Opts::new(
                    "sonde_containers_tracked",
                    "Containers the registry tracks, by naming state (named, pending, skipped)",
                ),
                &["state"],
            )?,
            processes_tracked: IntGauge::new(
                "sonde_processes_tracked",
                "Processes the registry maps to cgroups",
            )?,
            events_dropped: IntCounterVec::new(
                Opts::new(
                    "sonde_events_dropped_total",
                    "Events dropped because a bounded queue was full",
                ),
                &["queue"],
            )?,
            metadata_lookups: IntCounterVec::new(
                Opts::new(
                    "sonde_metadata_lookups_total",
                    "Container metadata lookups made to container runtimes",
                ),
                &["runtime"],
            )?,
            metadata_errors: IntCounterVec::new(
                Opts::new(
                    "sonde_metadata_errors_total",
                    "Container metadata lookups that failed (timeout, refused, garbage, not found)",
                ),
                &["runtime", "reason"],
            )?,
            cgroup_read_errors: IntCounterVec::new(
                Opts::new(
                    "sonde_cgroup_read_errors_total",
                    "cgroup files that could not be read or parsed at scrape time",
                ),
                &["resource"],
            )?,
            node_read_errors: IntCounter::new(
                "sonde_node_read_errors_total",
                "/proc or /sys files for node metrics that could not be read or parsed",
            )?,
            proc_scan_errors: IntCounter::new(
                "sonde_proc_scan_errors_total",
                "Processes whose /proc files could not be read or parsed during discovery",
            )?,
            taskstats_errors: IntCounter::new(
                "sonde_taskstats_errors_total",
                "Per-process delay reads (taskstats or schedstat) that failed, other than exited processes",
            )?,
            taskstats_implausible: IntCounter::new(
                "sonde_taskstats_implausible_total",
                "Process disk-delay readings larger than the process could have waited (a kernel accounting glitch), ignored",
            )?,
            registry,
        };
        m.registry.register(Box::new(m.build_info.clone()))?;
        m.registry.register(Box::new(m.scrape_duration.clone()))?;
        m.registry.register(Box::new(m.subsystem_up.clone()))?;
        m.registry
            .register(Box::new(m.containers_tracked.clone()))?;
        m.registry.register(Box::new(m.processes_tracked.clone()))?;
        m.registry.register(Box::new(m.events_dropped.clone()))?;
        m.registry.register(Box::new(m.metadata_lookups.clone()))?;
        m.registry.register(Box::new(m.metadata_errors.clone()))?;
        m.registry
            .register(Box::new(m.cgroup_read_errors.clone()))?;
        m.registry.register(Box::new(m.node_read_errors.clone()))?;
        m.registry.register(Box::new(m.proc_scan_errors.clone()))?;
        m.registry.register(Box::new(m.taskstats_errors.clone()))?;
        m.registry
            .register(Box::new(m.taskstats_implausible.clone()))?;
        m.build_info.with_label_values(&[version]).set(1);
        // Pre-create the series people alert on, so they read 0 rather than absent.
        for queue in ["events", "metadata_lookups"] {
            m.events_dropped.with_label_values(&[queue]);
        }
        for state in ["named", "pending", "skipped"] {
            m.containers_tracked.with_label_values(&[state]);
        }
        Ok(m)
    }
}
