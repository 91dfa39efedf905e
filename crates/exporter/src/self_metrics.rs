//! The agent's own metrics (`sonde_*`): is it healthy, what did it drop, what did a scrape cost.
//!
//! Each subsystem keeps its counters in a typed struct of its own (the registry's
//! `RegistryStats`, the resolver's `MetadataStats`, the delay reader's `DelayStats`; this
//! crate's [`ScrapeStats`] for what the scrape itself reads), and this module renders each of
//! them from a reading destructured field by field: a counter added to one of them does not
//! compile until it is rendered here (or left out with the reason), and every metric is a
//! catalogue entry, so the catalogue checks see these too.

use std::sync::Mutex;
use std::sync::PoisonError;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use prometheus::proto::MetricFamily;
use sonde_registry::delays::DelayStats;
use sonde_registry::metadata::{ERROR_REASONS, MetadataCounts, RUNTIMES};
use sonde_registry::stats::{CONTAINER_STATES, RegistryCounts};
use sonde_registry::{Health, NodeLabels};

use crate::catalogue as cat;
use crate::exposition::Family;

/// Upper bounds of `sonde_scrape_duration_seconds`' buckets.
pub const SCRAPE_BUCKETS: [f64; 11] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// The `resource` label of `sonde_cgroup_read_errors_total`, in the order rendered (sorted).
pub const READ_RESOURCES: [&str; 7] = [
    "cpu",
    "cpu_pressure",
    "io",
    "io_pressure",
    "memory",
    "memory_pressure",
    "net_dev",
];

/// What the scrape itself counts: its duration, and the files it could not read.
#[derive(Debug, Default)]
pub struct ScrapeStats {
    duration: Mutex<Histogram>,
    /// Per [`READ_RESOURCES`]: cgroup files (and a container's net/dev) not read.
    cgroup_read_errors: [AtomicU64; READ_RESOURCES.len()],
    /// /proc or /sys files of the node metrics not read.
    node_read_errors: AtomicU64,
}

#[derive(Debug, Default, Clone, Copy)]
struct Histogram {
    /// Per bucket of [`SCRAPE_BUCKETS`], not cumulative.
    counts: [u64; SCRAPE_BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl ScrapeStats {
    /// Records one whole /metrics response's duration.
    pub fn observe(&self, seconds: f64) {
        let mut h = self.duration.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(i) = SCRAPE_BUCKETS.iter().position(|upper| seconds <= *upper) {
            h.counts[i] += 1;
        }
        h.sum += seconds;
        h.count += 1;
    }

    /// Counts a failed read of `resource` (one of [`READ_RESOURCES`]).
    pub fn read_error(&self, resource: &str) {
        if let Some(i) = READ_RESOURCES.iter().position(|r| *r == resource) {
            self.cgroup_read_errors[i].fetch_add(1, Relaxed);
        } else {
            debug_assert!(false, "unknown read resource {resource}");
        }
    }

    /// Counts failed reads of node metric sources.
    pub fn node_read_errors(&self, n: u64) {
        self.node_read_errors.fetch_add(n, Relaxed);
    }

    /// Renders the scrape's own metrics.
    pub fn render(&self, node: &NodeLabels, out: &mut Vec<MetricFamily>) {
        let h = *self.duration.lock().unwrap_or_else(PoisonError::into_inner);
        let mut cumulative = 0;
        let buckets: Vec<(f64, u64)> = SCRAPE_BUCKETS
            .iter()
            .zip(h.counts)
            .map(|(upper, n)| {
                cumulative += n;
                (*upper, cumulative)
            })
            .collect();
        let mut f = Family::new(&cat::SONDE_SCRAPE_DURATION);
        f.add_histogram(&[], &buckets, h.sum, h.count);
        f.finish(node, out);
        // A resource's series exists once it failed (as it always has).
        let mut f = Family::new(&cat::SONDE_CGROUP_READ_ERRORS);
        for (resource, n) in READ_RESOURCES.iter().zip(&self.cgroup_read_errors) {
            let n = n.load(Relaxed);
            if n > 0 {
                f.add(&[("resource", resource)], n as f64);
            }
        }
        f.finish(node, out);
        counter(
            &cat::SONDE_NODE_READ_ERRORS,
            self.node_read_errors.load(Relaxed),
            node,
            out,
        );
    }
}

fn counter(
    def: &'static cat::MetricDef,
    value: u64,
    node: &NodeLabels,
    out: &mut Vec<MetricFamily>,
) {
    let mut f = Family::new(def);
    f.add(&[], value as f64);
    f.finish(node, out);
}

/// `sonde_build_info{version}` and `sonde_subsystem_up{subsystem}`.
pub fn render_agent(
    version: &str,
    health: &Health,
    node: &NodeLabels,
    out: &mut Vec<MetricFamily>,
) {
    let mut f = Family::new(&cat::SONDE_BUILD_INFO);
    f.add(&[("version", version)], 1.0);
    f.finish(node, out);
    let mut f = Family::new(&cat::SONDE_SUBSYSTEM_UP);
    for (subsystem, status) in health.snapshot() {
        f.add(&[("subsystem", subsystem)], f64::from(u8::from(status.up)));
    }
    f.finish(node, out);
}

/// The registry task's counters.
pub fn render_registry(c: &RegistryCounts, node: &NodeLabels, out: &mut Vec<MetricFamily>) {
    let RegistryCounts {
        events_dropped,
        lookups_dropped,
        proc_scan_errors,
        containers_tracked,
        processes_tracked,
    } = *c;
    let mut f = Family::new(&cat::SONDE_EVENTS_DROPPED);
    f.add(&[("queue", "events")], events_dropped as f64);
    f.add(&[("queue", "metadata_lookups")], lookups_dropped as f64);
    f.finish(node, out);
    counter(&cat::SONDE_PROC_SCAN_ERRORS, proc_scan_errors, node, out);
    let mut f = Family::new(&cat::SONDE_CONTAINERS_TRACKED);
    for (state, n) in CONTAINER_STATES.iter().zip(containers_tracked) {
        f.add(&[("state", state)], n as f64);
    }
    f.finish(node, out);
    let mut f = Family::new(&cat::SONDE_PROCESSES_TRACKED);
    f.add(&[], processes_tracked as f64);
    f.finish(node, out);
}

/// The metadata resolver's counters: a series exists once its count is above zero.
pub fn render_metadata(c: &MetadataCounts, node: &NodeLabels, out: &mut Vec<MetricFamily>) {
    let MetadataCounts { lookups, errors } = c;
    let mut f = Family::new(&cat::SONDE_METADATA_LOOKUPS);
    for (runtime, n) in RUNTIMES.iter().zip(lookups) {
        if *n > 0 {
            f.add(&[("runtime", runtime.as_str())], *n as f64);
        }
    }
    f.finish(node, out);
    // Labels sorted by name, series by (reason, runtime): the order the text always had.
    let mut f = Family::new(&cat::SONDE_METADATA_ERRORS);
    for (r, reason) in ERROR_REASONS.iter().enumerate() {
        for (runtime, row) in RUNTIMES.iter().zip(errors) {
            if row[r] > 0 {
                f.add(
                    &[("reason", reason), ("runtime", runtime.as_str())],
                    row[r] as f64,
                );
            }
        }
    }
    f.finish(node, out);
}

/// The delay reader's counters.
pub fn render_delays(s: &DelayStats, node: &NodeLabels, out: &mut Vec<MetricFamily>) {
    let DelayStats {
        errors,
        implausible,
    } = *s;
    counter(&cat::SONDE_TASKSTATS_ERRORS, errors, node, out);
    counter(&cat::SONDE_TASKSTATS_IMPLAUSIBLE, implausible, node, out);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::exposition::encode_text;

    #[test]
    fn scrape_duration_is_a_cumulative_histogram() {
        let s = ScrapeStats::default();
        s.observe(0.002);
        s.observe(0.002);
        s.observe(7.0);
        let mut out = Vec::new();
        s.render(&NodeLabels::default(), &mut out);
        let text = encode_text(out).unwrap();
        for want in [
            "# TYPE sonde_scrape_duration_seconds histogram",
            r#"sonde_scrape_duration_seconds_bucket{machine_id="",system_uuid="",le="0.001"} 0"#,
            r#"sonde_scrape_duration_seconds_bucket{machine_id="",system_uuid="",le="0.0025"} 2"#,
            r#"sonde_scrape_duration_seconds_bucket{machine_id="",system_uuid="",le="2.5"} 2"#,
            r#"sonde_scrape_duration_seconds_bucket{machine_id="",system_uuid="",le="+Inf"} 3"#,
            r#"sonde_scrape_duration_seconds_count{machine_id="",system_uuid=""} 3"#,
            r#"sonde_node_read_errors_total{machine_id="",system_uuid=""} 0"#,
        ] {
            assert!(text.contains(want), "missing {want}\n{text}");
        }
        assert!(!text.contains("sonde_cgroup_read_errors_total"), "{text}");
        s.read_error("io");
        let mut out = Vec::new();
        s.render(&NodeLabels::default(), &mut out);
        let text = encode_text(out).unwrap();
        assert!(
            text.contains(
                r#"sonde_cgroup_read_errors_total{resource="io",machine_id="",system_uuid=""} 1"#
            ),
            "{text}"
        );
    }

    #[test]
    fn runtime_series_appear_once_counted() {
        let mut c = MetadataCounts::default();
        let mut out = Vec::new();
        render_metadata(&c, &NodeLabels::default(), &mut out);
        assert!(out.is_empty());
        c.lookups[2] = 3; // docker
        c.errors[0][1] = 1; // containerd, not_found
        render_metadata(&c, &NodeLabels::default(), &mut out);
        let text = encode_text(out).unwrap();
        assert!(
            text.contains(
                r#"sonde_metadata_lookups_total{runtime="docker",machine_id="",system_uuid=""} 3"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"sonde_metadata_errors_total{reason="not_found",runtime="containerd",machine_id="",system_uuid=""} 1"#), "{text}");
    }
}
