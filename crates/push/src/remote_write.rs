//! Prometheus remote write 1.0: a `WriteRequest` protobuf, snappy block-compressed, POSTed with
//! `Content-Encoding: snappy` and `X-Prometheus-Remote-Write-Version: 0.1.0`.
//!
//! The messages are hand-written prost structs with the field numbers of prometheus/prompb
//! (`types.proto`, `remote.proto`), so the build needs no protoc. Conversion follows what a
//! Prometheus scrape of the same exposition would store: one series per sample, histograms as
//! `_bucket{le}` (cumulative, `+Inf` included), `_sum` and `_count`, labels sorted by name with
//! `__name__` among them (the spec requires sorted labels).

use prometheus::proto::{MetricFamily, MetricType};

use crate::Batch;

/// `prometheus.WriteRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
    #[prost(message, repeated, tag = "3")]
    pub metadata: Vec<MetricMetadata>,
}

/// `prometheus.TimeSeries`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`: value, then milliseconds since the epoch.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// `prometheus.MetricMetadata`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricMetadata {
    /// `MetricType`: 0 unknown, 1 counter, 2 gauge, 3 histogram, 4 gaugehistogram,
    /// 5 summary, 6 info, 7 stateset.
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    #[prost(string, tag = "2")]
    pub metric_family_name: String,
    #[prost(string, tag = "4")]
    pub help: String,
    #[prost(string, tag = "5")]
    pub unit: String,
}

/// Converts one gather into a `WriteRequest`, every sample at `timestamp_ms`, with `extra`
/// labels (instance, job) added to every series unless the series has them already.
pub fn write_request(
    families: &[MetricFamily],
    timestamp_ms: i64,
    extra: &[(String, String)],
) -> WriteRequest {
    let mut req = WriteRequest::default();
    for family in families {
        let metrics = family.get_metric();
        if metrics.is_empty() {
            continue;
        }
        let name = family.name();
        req.metadata.push(MetricMetadata {
            r#type: match family.get_field_type() {
                MetricType::COUNTER => 1,
                MetricType::GAUGE => 2,
                MetricType::HISTOGRAM => 3,
                MetricType::SUMMARY => 5,
                MetricType::UNTYPED => 0,
            },
            metric_family_name: name.to_owned(),
            help: family.help().to_owned(),
            unit: String::new(),
        });
        for m in metrics {
            let base: Vec<(&str, &str)> = m
                .get_label()
                .iter()
                .map(|l| (l.name(), l.value()))
                .collect();
            let mut push = |suffix: &str, extra_label: Option<(&str, &str)>, value: f64| {
                let full = format!("{name}{suffix}");
                req.timeseries.push(TimeSeries {
                    labels: labels(&full, &base, extra_label, extra),
                    samples: vec![Sample {
                        value,
                        timestamp: timestamp_ms,
                    }],
                });
            };
            match family.get_field_type() {
                MetricType::COUNTER => push("", None, m.get_counter().value()),
                MetricType::GAUGE => push("", None, m.get_gauge().value()),
                MetricType::UNTYPED => push("", None, m.untyped.value()),
                MetricType::HISTOGRAM => {
                    let h = m.get_histogram();
                    let mut has_inf = false;
                    for b in h.get_bucket() {
                        let le = b.upper_bound();
                        has_inf |= le.is_infinite();
                        push(
                            "_bucket",
                            Some(("le", &format_le(le))),
                            b.cumulative_count() as f64,
                        );
                    }
                    if !has_inf {
                        push("_bucket", Some(("le", "+Inf")), h.get_sample_count() as f64);
                    }
                    push("_sum", None, h.get_sample_sum());
                    push("_count", None, h.get_sample_count() as f64);
                }
                MetricType::SUMMARY => {
                    let s = m.get_summary();
                    for q in s.get_quantile() {
                        push("", Some(("quantile", &format_le(q.quantile()))), q.value());
                    }
                    push("_sum", None, s.sample_sum());
                    push("_count", None, s.sample_count() as f64);
                }
            }
        }
    }
    req
}

/// Label values for `le`/`quantile` as the text format writes them (`0.005`, `+Inf`).
fn format_le(v: f64) -> String {
    if v == f64::INFINITY {
        "+Inf".to_owned()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        format!("{v}")
    }
}

fn labels(
    name: &str,
    base: &[(&str, &str)],
    extra_label: Option<(&str, &str)>,
    extra: &[(String, String)],
) -> Vec<Label> {
    let mut out: Vec<Label> = Vec::with_capacity(base.len() + extra.len() + 2);
    out.push(Label {
        name: "__name__".to_owned(),
        value: name.to_owned(),
    });
    for (n, v) in base.iter().copied().chain(extra_label) {
        out.push(Label {
            name: n.to_owned(),
            value: v.to_owned(),
        });
    }
    for (n, v) in extra {
        if !out.iter().any(|l| l.name == *n) {
            out.push(Label {
                name: n.clone(),
                value: v.clone(),
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Encodes and snappy-compresses a gather: the spool stores exactly the bytes POSTed.
pub fn encode(batch: &Batch<'_>) -> Result<(Vec<u8>, u64), crate::Error> {
    let req = write_request(batch.families, batch.timestamp_ms, batch.labels);
    let samples = req.timeseries.len() as u64;
    let raw = prost::Message::encode_to_vec(&req);
    let packed = snap::raw::Encoder::new()
        .compress_vec(&raw)
        .map_err(crate::Error::Snappy)?;
    Ok((packed, samples))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use prometheus::core::Collector;

    use super::*;

    fn gathered() -> Vec<MetricFamily> {
        let c =
            prometheus::IntCounterVec::new(prometheus::Opts::new("jobs_total", "Jobs"), &["kind"])
                .unwrap();
        c.with_label_values(&["a"]).inc_by(3);
        let h = prometheus::Histogram::with_opts(
            prometheus::HistogramOpts::new("lat_seconds", "Latency").buckets(vec![0.1, 1.0]),
        )
        .unwrap();
        h.observe(0.05);
        h.observe(0.5);
        h.observe(5.0);
        let mut f = c.collect();
        f.extend(h.collect());
        f
    }

    fn find<'a>(req: &'a WriteRequest, want: &[(&str, &str)]) -> &'a TimeSeries {
        req.timeseries
            .iter()
            .find(|ts| {
                want.iter()
                    .all(|(n, v)| ts.labels.iter().any(|l| l.name == *n && l.value == *v))
            })
            .unwrap_or_else(|| panic!("no series {want:?}"))
    }

    #[test]
    fn counters_and_histograms_become_series() {
        let extra = vec![("instance".to_owned(), "m1".to_owned())];
        let req = write_request(&gathered(), 1_700_000_000_123, &extra);
        // 1 counter + 3 buckets (0.1, 1, +Inf) + sum + count.
        assert_eq!(req.timeseries.len(), 6);
        assert_eq!(req.metadata.len(), 2);
        let c = find(&req, &[("__name__", "jobs_total"), ("kind", "a")]);
        assert_eq!(
            c.samples,
            vec![Sample {
                value: 3.0,
                timestamp: 1_700_000_000_123
            }]
        );
        let names: Vec<&str> = c.labels.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["__name__", "instance", "kind"]);
        let b = find(&req, &[("__name__", "lat_seconds_bucket"), ("le", "0.1")]);
        assert_eq!(b.samples[0].value, 1.0);
        let b = find(&req, &[("__name__", "lat_seconds_bucket"), ("le", "1")]);
        assert_eq!(b.samples[0].value, 2.0);
        let b = find(&req, &[("__name__", "lat_seconds_bucket"), ("le", "+Inf")]);
        assert_eq!(b.samples[0].value, 3.0);
        assert_eq!(
            find(&req, &[("__name__", "lat_seconds_sum")]).samples[0].value,
            5.55
        );
        assert_eq!(
            find(&req, &[("__name__", "lat_seconds_count")]).samples[0].value,
            3.0
        );
    }

    #[test]
    fn series_labels_win_over_extra_labels() {
        let extra = vec![("kind".to_owned(), "override".to_owned())];
        let req = write_request(&gathered(), 1, &extra);
        let c = find(&req, &[("__name__", "jobs_total")]);
        assert_eq!(c.labels.iter().filter(|l| l.name == "kind").count(), 1);
        assert!(c.labels.iter().any(|l| l.value == "a"));
    }

    #[test]
    fn encoded_payload_round_trips() {
        let families = gathered();
        let labels = vec![("job".to_owned(), "sonde".to_owned())];
        let (packed, samples) = encode(&Batch {
            families: &families,
            timestamp_ms: 42,
            labels: &labels,
        })
        .unwrap();
        assert_eq!(samples, 6);
        let raw = snap::raw::Decoder::new().decompress_vec(&packed).unwrap();
        let req: WriteRequest = prost::Message::decode(&raw[..]).unwrap();
        assert_eq!(req, write_request(&families, 42, &labels));
    }
}
