//! Scrape-time rendering of the application-layer metrics (sonde_registry::l7): coroot-node-agent's
//! per-protocol request counters and latency histograms, outbound (`destination`,
//! `actual_destination`, `status`) and inbound (`status`), the DNS ones and `ip_to_fqdn`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use prometheus::proto::MetricFamily;

use sonde_registry::l7::RequestStats;
use sonde_registry::{ExportedContainer, NodeLabels};

use crate::catalogue::MetricDef;
use crate::catalogue::l7 as cat;
use crate::exposition::Family;

/// A protocol's families: requests made, their latency, requests served, their latency.
#[derive(Debug, Clone, Copy)]
pub struct L7Defs {
    pub requests: &'static MetricDef,
    pub latency: Option<&'static MetricDef>,
    pub inbound: Option<&'static MetricDef>,
    pub inbound_latency: Option<&'static MetricDef>,
}

/// The families of a protocol; None for DNS (its own families) and HTTP/2 (counted as HTTP).
pub fn defs(p: sonde_l7::Protocol) -> Option<L7Defs> {
    Some(match p {
        sonde_l7::Protocol::Http => L7Defs {
            requests: &cat::CONTAINER_HTTP_REQUESTS_TOTAL,
            latency: Some(&cat::CONTAINER_HTTP_REQUESTS_DURATION_SECONDS_TOTAL),
            inbound: Some(&cat::CONTAINER_HTTP_INBOUND_REQUESTS_TOTAL),
            inbound_latency: Some(&cat::CONTAINER_HTTP_INBOUND_REQUESTS_DURATION_SECONDS_TOTAL),
        },
        sonde_l7::Protocol::Postgres => L7Defs {
            requests: &cat::CONTAINER_POSTGRES_QUERIES_TOTAL,
            latency: Some(&cat::CONTAINER_POSTGRES_QUERIES_DURATION_SECONDS_TOTAL),
            inbound: Some(&cat::CONTAINER_POSTGRES_INBOUND_QUERIES_TOTAL),
            inbound_latency: Some(&cat::CONTAINER_POSTGRES_INBOUND_QUERIES_DURATION_SECONDS_TOTAL),
        },
        sonde_l7::Protocol::Redis => L7Defs {
            requests: &cat::CONTAINER_REDIS_QUERIES_TOTAL,
            latency: Some(&cat::CONTAINER_REDIS_QUERIES_DURATION_SECONDS_TOTAL),
            inbound: Some(&cat::CONTAINER_REDIS_INBOUND_QUERIES_TOTAL),
            inbound_latency: Some(&cat::CONTAINER_REDIS_INBOUND_QUERIES_DURATION_SECONDS_TOTAL),
        },
        sonde_l7::Protocol::Memcached => L7Defs {
            requests: &cat::CONTAINER_MEMCACHED_QUERIES_TOTAL,
            latency: Some(&cat::CONTAINER_MEMCACHED_QUERIES_DURATION_SECONDS_TOTAL),
            inbound: Some(&cat::CONTAINER_MEMCACHED_INBOUND_QUERIES_TOTAL),
            inbound_latency: Some(&cat::CONTAINER_MEMCACHED_INBOUND_QUERIES_DURATION_SECONDS_TOTAL),
        },
        sonde_l7::Protocol::Mysql => L7Defs {
            requests: &cat::CONTAINER_MYSQL_QUERIES_TOTAL,
            latency: Some(&cat::CONTAINER_MYSQL_QUERIES_DURATION_SECONDS_TOTAL),
            inbound: Some(&cat::CONTAINER_MYSQL_INBOUND_QUERIES_TOTAL),
            inbound_latency: Some(&cat::CONTAINER_MYSQL_INBOUND_QUERIES_DURATION_SECONDS_TOTAL),
        },
        sonde_l7::Protocol::Mongo => L7Defs {
            requests: &cat::CONTAINER_MONGO_QUERIES_TOTAL,
            latency: Some(&cat::CONTAINER_MONGO_QUERIES_DURATION_SECONDS_TOTAL),
            inbound: Some(&cat::CONTAINER_MONGO_INBOUND_QUERIES_TOTAL),
            inbound_latency: Some(&cat::CONTAINER_MONGO_INBOUND_QUERIES_DURATION_SECONDS_TOTAL),
        },
        sonde_l7::Protocol::Kafka => L7Defs {
            requests: &cat::CONTAINER_KAFKA_REQUESTS_TOTAL,
            latency: Some(&cat::CONTAINER_KAFKA_REQUESTS_DURATION_SECONDS_TOTAL),
            inbound: Some(&cat::CONTAINER_KAFKA_INBOUND_REQUESTS_TOTAL),
            inbound_latency: Some(&cat::CONTAINER_KAFKA_INBOUND_REQUESTS_DURATION_SECONDS_TOTAL),
        },
        sonde_l7::Protocol::Cassandra => L7Defs {
            requests: &cat::CONTAINER_CASSANDRA_QUERIES_TOTAL,
            latency: Some(&cat::CONTAINER_CASSANDRA_QUERIES_DURATION_SECONDS_TOTAL),
            inbound: Some(&cat::CONTAINER_CASSANDRA_INBOUND_QUERIES_TOTAL),
            inbound_latency: Some(&cat::CONTAINER_CASSANDRA_INBOUND_QUERIES_DURATION_SECONDS_TOTAL),
        },
        sonde_l7::Protocol::Rabbitmq => L7Defs {
            requests: &cat::CONTAINER_RABBITMQ_MESSAGES_TOTAL,
            latency: None,
            inbound: None,
            inbound_latency: None,
        },
        sonde_l7::Protocol::Nats => L7Defs {
            requests: &cat::CONTAINER_NATS_MESSAGES_TOTAL,
            latency: None,
            inbound: None,
            inbound_latency: None,
        },
        sonde_l7::Protocol::Dubbo2 => L7Defs {
            requests: &cat::CONTAINER_DUBBO_REQUESTS_TOTAL,
            latency: Some(&cat::CONTAINER_DUBBO_REQUESTS_DURATION_SECONDS_TOTAL),
            inbound: Some(&cat::CONTAINER_DUBBO_INBOUND_REQUESTS_TOTAL),
            inbound_latency: Some(&cat::CONTAINER_DUBBO_INBOUND_REQUESTS_DURATION_SECONDS_TOTAL),
        },
        sonde_l7::Protocol::Clickhouse => L7Defs {
            requests: &cat::CONTAINER_CLICKHOUSE_QUERIES_TOTAL,
            latency: Some(&cat::CONTAINER_CLICKHOUSE_QUERIES_DURATION_SECONDS_TOTAL),
            inbound: Some(&cat::CONTAINER_CLICKHOUSE_INBOUND_QUERIES_TOTAL),
            inbound_latency: Some(
                &cat::CONTAINER_CLICKHOUSE_INBOUND_QUERIES_DURATION_SECONDS_TOTAL,
            ),
        },
        sonde_l7::Protocol::Zookeeper => L7Defs {
            requests: &cat::CONTAINER_ZOOKEEPER_REQUESTS_TOTAL,
            latency: Some(&cat::CONTAINER_ZOOKEEPER_REQUESTS_DURATION_SECONDS_TOTAL),
            inbound: Some(&cat::CONTAINER_ZOOKEEPER_INBOUND_REQUESTS_TOTAL),
            inbound_latency: Some(
                &cat::CONTAINER_ZOOKEEPER_INBOUND_REQUESTS_DURATION_SECONDS_TOTAL,
            ),
        },
        sonde_l7::Protocol::FoundationDb => L7Defs {
            requests: &cat::CONTAINER_FOUNDATIONDB_REQUESTS_TOTAL,
            latency: Some(&cat::CONTAINER_FOUNDATIONDB_REQUESTS_DURATION_SECONDS_TOTAL),
            inbound: Some(&cat::CONTAINER_FOUNDATIONDB_INBOUND_REQUESTS_TOTAL),
            inbound_latency: Some(
                &cat::CONTAINER_FOUNDATIONDB_INBOUND_REQUESTS_DURATION_SECONDS_TOTAL,
            ),
        },
        sonde_l7::Protocol::Http2 | sonde_l7::Protocol::Dns => return None,
    })
}

/// Families filled lazily: a node without a protocol's traffic exports none of its families.
#[derive(Default)]
struct Families(BTreeMap<&'static str, Family>);

impl Families {
    fn get(&mut self, def: &'static MetricDef) -> &mut Family {
        self.0.entry(def.name).or_insert_with(|| Family::new(def))
    }
}

fn add_stats(
    fams: &mut Families,
    requests: &'static MetricDef,
    latency: Option<&'static MetricDef>,
    labels: &[(&str, &str)],
    stats: &RequestStats,
) {
    let mut with_status: Vec<(&str, &str)> = Vec::with_capacity(labels.len() + 2);
    for ((status, method), n) in &stats.by_status {
        with_status.clear();
        with_status.extend_from_slice(labels);
        with_status.push(("status", status));
        if !method.is_empty() {
            with_status.push(("method", method));
        }
        fams.get(requests).add(&with_status, *n as f64);
    }
    if let Some(def) = latency
        && stats.latency.count > 0
    {
        fams.get(def).add_histogram(
            labels,
            &stats.latency.cumulative(),
            stats.latency.sum,
            stats.latency.count,
        );
    }
}

/// Renders every container's L7 series and the node's `ip_to_fqdn`.
pub fn render_l7(
    containers: &[ExportedContainer],
    ip_to_fqdn: &[(IpAddr, String)],
    node: &NodeLabels,
    out: &mut Vec<MetricFamily>,
) {
    let mut fams = Families::default();
    let mut dst = String::with_capacity(48);
    let mut actual = String::with_capacity(48);
    for c in containers {
        let id = c.container_id.as_str();
        let l7 = &c.net.l7;
        for ((protocol, d, a), stats) in &l7.outbound {
            let Some(defs) = defs(*protocol) else {
                continue;
            };
            dst.clear();
            let _ = write!(dst, "{d}");
            actual.clear();
            let _ = write!(actual, "{a}");
            let labels = [
                ("container_id", id),
                ("destination", dst.as_str()),
                ("actual_destination", actual.as_str()),
            ];
            add_stats(&mut fams, defs.requests, defs.latency, &labels, stats);
        }
        for (protocol, stats) in &l7.inbound {
            let Some(defs) = defs(*protocol) else {
                continue;
            };
            let Some(requests) = defs.inbound else {
                continue;
            };
            add_stats(
                &mut fams,
                requests,
                defs.inbound_latency,
                &[("container_id", id)],
                stats,
            );
        }
        for ((kind, domain, status), n) in &l7.dns {
            fams.get(&cat::CONTAINER_DNS_REQUESTS_TOTAL).add(
                &[
                    ("container_id", id),
                    ("request_type", kind.as_ref()),
                    ("domain", domain),
                    ("status", status),
                ],
                *n as f64,
            );
        }
        if l7.dns_latency.count > 0 {
            fams.get(&cat::CONTAINER_DNS_REQUESTS_DURATION_SECONDS_TOTAL)
                .add_histogram(
                    &[("container_id", id)],
                    &l7.dns_latency.cumulative(),
                    l7.dns_latency.sum,
                    l7.dns_latency.count,
                );
        }
    }
    let dropped: u64 = containers.iter().map(|c| c.net.l7.dropped).sum();
    fams.get(&cat::SONDE_L7_DROPPED).add(&[], dropped as f64);
    let mut ip = String::with_capacity(40);
    for (addr, fqdn) in ip_to_fqdn {
        ip.clear();
        let _ = write!(ip, "{addr}");
        fams.get(&cat::IP_TO_FQDN)
            .add(&[("ip", ip.as_str()), ("fqdn", fqdn)], 1.0);
    }
    for (_, f) in fams.0 {
        f.finish(node, out);
    }
}

/// The L7 engine's counters (`sonde_l7_*`), when the L7 programs are attached.
pub fn render_l7_self_metrics(
    s: &sonde_tracer::l7::L7Stats,
    node: &NodeLabels,
    out: &mut Vec<MetricFamily>,
) {
    for (def, value) in [
        (&cat::SONDE_L7_RECORDS, s.records),
        (&cat::SONDE_L7_REQUESTS, s.requests),
        (&cat::SONDE_L7_SESSIONS, s.sessions as u64),
        (&cat::SONDE_L7_SESSIONS_EVICTED, s.sessions_evicted),
        (&cat::SONDE_L7_PARSE_ERRORS, s.parsing.parse_errors),
        (&cat::SONDE_L7_UNMATCHED, s.parsing.unmatched_responses),
        (&cat::SONDE_L7_PENDING_OVERFLOW, s.parsing.pending_overflow),
        (&cat::SONDE_L7_UNSUPPORTED, s.unsupported),
        (&cat::SONDE_L7_DECODE_ERRORS, s.decode_errors),
        (
            &cat::SONDE_L7_UNSUPPORTED_CHUNKS,
            s.parsing.unsupported_chunks,
        ),
        (&cat::SONDE_L7_UNPROVEN, s.parsing.unproven_requests),
        (&cat::SONDE_L7_RESYNCS, s.parsing.resyncs),
        (&cat::SONDE_L7_HPACK_ERRORS, s.parsing.hpack_errors),
        (&cat::SONDE_L7_RESET_STREAMS, s.parsing.reset_streams),
        (&cat::SONDE_L7_EXCLUDED, s.parsing.excluded),
    ] {
        let mut f = Family::new(def);
        f.add(&[], value as f64);
        f.finish(node, out);
    }
}
