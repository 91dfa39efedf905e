//! Building Prometheus metric families at scrape time.
//!
//! Every metric is rendered from state on every scrape (nothing is kept in long-lived metric
//! objects, so a vanished container's series vanish with it). This module is the one place
//! that turns (name, labels, value) into the `prometheus` crate's protobuf model, which its
//! `TextEncoder` then writes out.

use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};

pub use sonde_registry::NodeLabels;

use crate::catalogue::{Kind, MetricDef};

/// The node labels as label pairs, in the order every series ends with.
fn node_pairs(node: &NodeLabels) -> [LabelPair; 2] {
    [
        label("machine_id", &node.machine_id),
        label("system_uuid", &node.system_uuid),
    ]
}

fn label(name: &str, value: &str) -> LabelPair {
    let mut pair = LabelPair::default();
    pair.set_name(name.to_owned());
    pair.set_value(value.to_owned());
    pair
}

/// One metric family being filled with samples.
pub struct Family {
    def: &'static MetricDef,
    metrics: Vec<Metric>,
}

impl Family {
    pub fn new(def: &'static MetricDef) -> Family {
        Family {
            def,
            metrics: Vec::new(),
        }
    }

    /// Adds one sample. `labels` are (name, value) pairs in the order the catalogue lists them;
    /// the node labels are appended by [`Family::finish`].
    pub fn add(&mut self, labels: &[(&str, &str)], value: f64) {
        let mut metric = Metric::default();
        metric.set_label(labels.iter().map(|(n, v)| label(n, v)).collect());
        match self.def.kind {
            Kind::Gauge => {
                let mut g = Gauge::default();
                g.set_value(value);
                metric.set_gauge(g);
            }
            Kind::Counter => {
                let mut c = Counter::default();
                c.set_value(value);
                metric.set_counter(c);
            }
            Kind::Histogram => {
                // A histogram has no single value: see add_histogram.
                debug_assert!(false, "{}: add() on a histogram", self.def.name);
                return;
            }
        }
        self.metrics.push(metric);
    }

    /// Adds one histogram: `buckets` are (upper bound, cumulative count) in increasing order
    /// (the `+Inf` bucket is `count`, added by the encoder).
    pub fn add_histogram(
        &mut self,
        labels: &[(&str, &str)],
        buckets: &[(f64, u64)],
        sum: f64,
        count: u64,
    ) {
        let mut metric = Metric::default();
        metric.set_label(labels.iter().map(|(n, v)| label(n, v)).collect());
        let mut h = Histogram::default();
        h.set_sample_count(count);
        h.set_sample_sum(sum);
        h.set_bucket(
            buckets
                .iter()
                .map(|(upper, n)| {
                    let mut b = Bucket::default();
                    b.set_upper_bound(*upper);
                    b.set_cumulative_count(*n);
                    b
                })
                .collect(),
        );
        metric.set_histogram(h);
        self.metrics.push(metric);
    }

    pub fn is_empty(&self) -> bool {
        self.metrics.is_empty()
    }

    /// Appends the node labels to every sample and pushes the family to `out` (empty families are
    /// dropped: the text encoder rejects them and they carry no information).
    pub fn finish(self, node: &NodeLabels, out: &mut Vec<MetricFamily>) {
        if self.metrics.is_empty() {
            return;
        }
        let mut family = MetricFamily::default();
        family.set_name(self.def.name.to_owned());
        family.set_help(self.def.help.to_owned());
        family.set_field_type(match self.def.kind {
            Kind::Gauge => MetricType::GAUGE,
            Kind::Counter => MetricType::COUNTER,
            Kind::Histogram => MetricType::HISTOGRAM,
        });
        let node_pairs = node_pairs(node);
        let mut metrics = self.metrics;
        for metric in &mut metrics {
            let mut labels = metric.take_label();
            labels.extend(node_pairs.iter().cloned());
            metric.set_label(labels);
        }
        family.set_metric(metrics);
        out.push(family);
    }
}

/// Writes families in the Prometheus text format, sorted by name (stable output for diffing).
pub fn encode_text(mut families: Vec<MetricFamily>) -> Result<String, prometheus::Error> {
    families.retain(|f| !f.get_metric().is_empty());
    families.sort_by(|a, b| a.name().cmp(b.name()));
    let mut out = String::with_capacity(64 * 1024);
    prometheus::TextEncoder::new().encode_utf8(&families, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue;

    #[test]
    fn renders_labels_in_order_with_node_labels_last() {
        let node = NodeLabels {
            machine_id: "m1".into(),
            system_uuid: String::new(),
        };
        let mut fam = Family::new(&catalogue::CONTAINER_CPU_USAGE);
        fam.add(&[("container_id", "/docker/web")], 1.5);
        let mut out = Vec::new();
        fam.finish(&node, &mut out);
        let text = encode_text(out).unwrap();
        assert!(text.contains("# TYPE container_resources_cpu_usage_seconds_total counter"));
        assert!(text.contains(
            "container_resources_cpu_usage_seconds_total{container_id=\"/docker/web\",machine_id=\"m1\",system_uuid=\"\"} 1.5"
        ), "{text}");
    }

    #[test]
    fn empty_family_is_dropped() {
        let mut out = Vec::new();
        Family::new(&catalogue::NODE_INFO).finish(&NodeLabels::default(), &mut out);
        assert!(out.is_empty());
        assert_eq!(encode_text(out).unwrap(), "");
    }
}
