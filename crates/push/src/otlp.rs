//! OTLP metrics over HTTP (OTLP/HTTP 1.x, binary protobuf): an `ExportMetricsServiceRequest`,
//! gzip-compressed, POSTed as `application/x-protobuf` to e.g. `http://collector:4318/v1/metrics`.
//!
//! The messages are hand-written prost structs carrying only the fields sonde sets, with the
//! field numbers of opentelemetry-proto (`metrics/v1/metrics.proto`, `common/v1/common.proto`,
//! `resource/v1/resource.proto`, `collector/metrics/v1/metrics_service.proto`); no protoc.
//!
//! Mapping (the OpenTelemetry Prometheus-compatibility spec, in reverse): a counter is a
//! cumulative monotonic Sum whose start time is the agent's start, a gauge (or untyped) a
//! Gauge, a histogram a cumulative Histogram with per-bucket counts (Prometheus' cumulative
//! bucket counts differenced; `+Inf` is the implicit last bucket). Labels become data point
//! attributes; the resource says `service.name=sonde` and `service.instance.id`.

use prometheus::proto::{MetricFamily, MetricType};

use crate::Batch;

#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportMetricsServiceRequest {
    #[prost(message, repeated, tag = "1")]
    pub resource_metrics: Vec<ResourceMetrics>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ResourceMetrics {
    #[prost(message, optional, tag = "1")]
    pub resource: Option<Resource>,
    #[prost(message, repeated, tag = "2")]
    pub scope_metrics: Vec<ScopeMetrics>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Resource {
    #[prost(message, repeated, tag = "1")]
    pub attributes: Vec<KeyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ScopeMetrics {
    #[prost(message, optional, tag = "1")]
    pub scope: Option<InstrumentationScope>,
    #[prost(message, repeated, tag = "2")]
    pub metrics: Vec<Metric>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct InstrumentationScope {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub version: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Metric {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub description: String,
    #[prost(string, tag = "3")]
    pub unit: String,
    #[prost(oneof = "Data", tags = "5, 7, 9")]
    pub data: Option<Data>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Data {
    #[prost(message, tag = "5")]
    Gauge(Gauge),
    #[prost(message, tag = "7")]
    Sum(Sum),
    #[prost(message, tag = "9")]
    Histogram(Histogram),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Gauge {
    #[prost(message, repeated, tag = "1")]
    pub data_points: Vec<NumberDataPoint>,
}

/// `AggregationTemporality`: 2 is CUMULATIVE.
pub const CUMULATIVE: i32 = 2;

#[derive(Clone, PartialEq, prost::Message)]
pub struct Sum {
    #[prost(message, repeated, tag = "1")]
    pub data_points: Vec<NumberDataPoint>,
    #[prost(int32, tag = "2")]
    pub aggregation_temporality: i32,
    #[prost(bool, tag = "3")]
    pub is_monotonic: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Histogram {
    #[prost(message, repeated, tag = "1")]
    pub data_points: Vec<HistogramDataPoint>,
    #[prost(int32, tag = "2")]
    pub aggregation_temporality: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct NumberDataPoint {
    #[prost(message, repeated, tag = "7")]
    pub attributes: Vec<KeyValue>,
    #[prost(fixed64, tag = "2")]
    pub start_time_unix_nano: u64,
    #[prost(fixed64, tag = "3")]
    pub time_unix_nano: u64,
    #[prost(double, optional, tag = "4")]
    pub as_double: Option<f64>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct HistogramDataPoint {
    #[prost(message, repeated, tag = "9")]
    pub attributes: Vec<KeyValue>,
    #[prost(fixed64, tag = "2")]
    pub start_time_unix_nano: u64,
    #[prost(fixed64, tag = "3")]
    pub time_unix_nano: u64,
    #[prost(fixed64, tag = "4")]
    pub count: u64,
    #[prost(double, optional, tag = "5")]
    pub sum: Option<f64>,
    #[prost(fixed64, repeated, tag = "6")]
    pub bucket_counts: Vec<u64>,
    #[prost(double, repeated, tag = "7")]
    pub explicit_bounds: Vec<f64>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValue {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<AnyValue>,
}

/// `AnyValue` with only its string arm (field 1 of its oneof): every label is a string.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AnyValue {
    #[prost(string, optional, tag = "1")]
    pub string_value: Option<String>,
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            string_value: Some(value.to_owned()),
        }),
    }
}

/// Converts one gather. `resource` holds the resource attributes; `start_unix_nano` is the
/// start of every cumulative series (the agent's start).
pub fn export_request(
    families: &[MetricFamily],
    time_unix_nano: u64,
    start_unix_nano: u64,
    resource: &[(String, String)],
) -> ExportMetricsServiceRequest {
    let mut metrics = Vec::with_capacity(families.len());
    for family in families {
        let ms = family.get_metric();
        if ms.is_empty() {
            continue;
        }
        let attrs = |m: &prometheus::proto::Metric| -> Vec<KeyValue> {
            m.get_label()
                .iter()
                .map(|l| kv(l.name(), l.value()))
                .collect()
        };
        let number = |m: &prometheus::proto::Metric, v: f64, start: u64| NumberDataPoint {
            attributes: attrs(m),
            start_time_unix_nano: start,
            time_unix_nano,
            as_double: Some(v),
        };
        let data = match family.get_field_type() {
            MetricType::COUNTER => Data::Sum(Sum {
                data_points: ms
                    .iter()
                    .map(|m| number(m, m.get_counter().value(), start_unix_nano))
                    .collect(),
                aggregation_temporality: CUMULATIVE,
                is_monotonic: true,
            }),
            MetricType::GAUGE => Data::Gauge(Gauge {
                data_points: ms
                    .iter()
                    .map(|m| number(m, m.get_gauge().value(), 0))
                    .collect(),
            }),
            MetricType::UNTYPED => Data::Gauge(Gauge {
                data_points: ms.iter().map(|m| number(m, m.untyped.value(), 0)).collect(),
            }),
            MetricType::HISTOGRAM => Data::Histogram(Histogram {
                data_points: ms
                    .iter()
                    .map(|m| {
                        let h = m.get_histogram();
                        let mut bounds = Vec::new();
                        let mut counts = Vec::new();
                        let mut below = 0u64;
                        for b in h.get_bucket() {
                            if b.upper_bound().is_infinite() {
                                continue;
                            }
                            bounds.push(b.upper_bound());
                            counts.push(b.cumulative_count().saturating_sub(below));
                            below = b.cumulative_count();
                        }
                        counts.push(h.get_sample_count().saturating_sub(below));
                        HistogramDataPoint {
                            attributes: attrs(m),
                            start_time_unix_nano: start_unix_nano,
                            time_unix_nano,
                            count: h.get_sample_count(),
                            sum: Some(h.get_sample_sum()),
                            bucket_counts: counts,
                            explicit_bounds: bounds,
                        }
                    })
                    .collect(),
                aggregation_temporality: CUMULATIVE,
            }),
            // sonde exports no summaries; a summary has no lossless OTLP form but its sum and
            // count, which are not worth a special case.
            MetricType::SUMMARY => continue,
        };
        metrics.push(Metric {
            name: family.name().to_owned(),
            description: family.help().to_owned(),
            unit: String::new(),
            data: Some(data),
        });
    }
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: resource.iter().map(|(k, v)| kv(k, v)).collect(),
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "sonde".to_owned(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                }),
                metrics,
            }],
        }],
    }
}

/// Number of data points in a request (what the push counters count).
pub fn data_points(req: &ExportMetricsServiceRequest) -> u64 {
    let mut n = 0;
    for rm in &req.resource_metrics {
        for sm in &rm.scope_metrics {
            for m in &sm.metrics {
                n += match &m.data {
                    Some(Data::Gauge(g)) => g.data_points.len(),
                    Some(Data::Sum(s)) => s.data_points.len(),
                    Some(Data::Histogram(h)) => h.data_points.len(),
                    None => 0,
                } as u64;
            }
        }
    }
    n
}

/// Encodes and gzips a gather: the spool stores exactly the bytes POSTed.
pub fn encode(batch: &Batch<'_>, start_unix_nano: u64) -> Result<(Vec<u8>, u64), crate::Error> {
    use std::io::Write;
    let time = u64::try_from(batch.timestamp_ms).unwrap_or(0) * 1_000_000;
    let resource: Vec<(String, String)> = batch
        .labels
        .iter()
        .map(|(k, v)| {
            let key = match k.as_str() {
                "job" => "service.name",
                "instance" => "service.instance.id",
                other => other,
            };
            (key.to_owned(), v.clone())
        })
        .collect();
    let req = export_request(batch.families, time, start_unix_nano, &resource);
    let points = data_points(&req);
    let raw = prost::Message::encode_to_vec(&req);
    let mut gz = flate2::write::GzEncoder::new(
        Vec::with_capacity(raw.len() / 4 + 64),
        flate2::Compression::fast(),
    );
    gz.write_all(&raw).map_err(crate::Error::Compress)?;
    Ok((gz.finish().map_err(crate::Error::Compress)?, points))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use prometheus::core::Collector;

    use super::*;

    #[test]
    fn counters_gauges_and_histograms() {
        let c = prometheus::IntCounter::new("jobs_total", "Jobs").unwrap();
        c.inc_by(7);
        let g = prometheus::Gauge::new("temp", "T").unwrap();
        g.set(-1.5);
        let h = prometheus::Histogram::with_opts(
            prometheus::HistogramOpts::new("lat_seconds", "L").buckets(vec![0.1, 1.0]),
        )
        .unwrap();
        for v in [0.05, 0.5, 0.7, 5.0] {
            h.observe(v);
        }
        let mut fams = c.collect();
        fams.extend(g.collect());
        fams.extend(h.collect());
        let res = vec![("service.name".to_owned(), "sonde".to_owned())];
        let req = export_request(&fams, 2_000, 1_000, &res);
        assert_eq!(data_points(&req), 3);
        let metrics = &req.resource_metrics[0].scope_metrics[0].metrics;
        let Some(Data::Sum(sum)) = &metrics[0].data else {
            panic!("{:?}", metrics[0])
        };
        assert!(sum.is_monotonic);
        assert_eq!(sum.aggregation_temporality, CUMULATIVE);
        assert_eq!(sum.data_points[0].as_double, Some(7.0));
        assert_eq!(sum.data_points[0].start_time_unix_nano, 1_000);
        assert_eq!(sum.data_points[0].time_unix_nano, 2_000);
        let Some(Data::Gauge(gauge)) = &metrics[1].data else {
            panic!()
        };
        assert_eq!(gauge.data_points[0].as_double, Some(-1.5));
        let Some(Data::Histogram(hist)) = &metrics[2].data else {
            panic!()
        };
        let p = &hist.data_points[0];
        assert_eq!(p.explicit_bounds, vec![0.1, 1.0]);
        assert_eq!(p.bucket_counts, vec![1, 2, 1]);
        assert_eq!(p.count, 4);
        assert!((p.sum.unwrap() - 6.25).abs() < 1e-9);
    }
}
