//! coroot-node-agent's names and label values for application-protocol
//! metrics, so the registry renders exactly what a Coroot server expects.
//!
//! Sources (coroot-node-agent): `containers/metrics.go` (`L7Requests`,
//! `L7Latency`, `L7InboundRequests`, `L7InboundLatency`), `containers/l7.go`
//! (which protocols get a `method` label, HTTP/2 folded into HTTP),
//! `ebpftracer/l7/l7.go` (`Status.Http()`, `Status.DNS()`, `String()`, the
//! gRPC status names), `containers/container.go` (`onDNSRequest`: DNS labels,
//! the AAAA rule, `ip_to_fqdn`) and `common/net.go` (`NormalizeFQDN`).
//! See docs/l7.md for the table.

use crate::{DnsDetail, Protocol, Status};
use std::borrow::Cow;

/// Histogram buckets (seconds): coroot's L7 histograms take client_golang's
/// `prometheus.DefBuckets`.
pub const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The requests counter of a protocol: outbound (`inbound` false: the
/// container was the client) or the inbound twin (it served the request).
/// HTTP/2 and gRPC count as HTTP. None: coroot exports no such metric.
pub fn requests_metric(p: Protocol, inbound: bool) -> Option<&'static str> {
    use Protocol::*;
    Some(match (p, inbound) {
        (Http | Http2, false) => "container_http_requests_total",
        (Http | Http2, true) => "container_http_inbound_requests_total",
        (Postgres, false) => "container_postgres_queries_total",
        (Postgres, true) => "container_postgres_inbound_queries_total",
        (Redis, false) => "container_redis_queries_total",
        (Redis, true) => "container_redis_inbound_queries_total",
        (Memcached, false) => "container_memcached_queries_total",
        (Memcached, true) => "container_memcached_inbound_queries_total",
        (Mysql, false) => "container_mysql_queries_total",
        (Mysql, true) => "container_mysql_inbound_queries_total",
        (Mongo, false) => "container_mongo_queries_total",
        (Mongo, true) => "container_mongo_inbound_queries_total",
        (Kafka, false) => "container_kafka_requests_total",
        (Kafka, true) => "container_kafka_inbound_requests_total",
        (Cassandra, false) => "container_cassandra_queries_total",
        (Cassandra, true) => "container_cassandra_inbound_queries_total",
        (Rabbitmq, false) => "container_rabbitmq_messages_total",
        (Nats, false) => "container_nats_messages_total",
        (Dubbo2, false) => "container_dubbo_requests_total",
        (Dubbo2, true) => "container_dubbo_inbound_requests_total",
        (Dns, false) => "container_dns_requests_total",
        (Dns, true) => "container_dns_inbound_requests_total",
        (Clickhouse, false) => "container_clickhouse_queries_total",
        (Clickhouse, true) => "container_clickhouse_inbound_queries_total",
        (Zookeeper, false) => "container_zookeeper_requests_total",
        (Zookeeper, true) => "container_zookeeper_inbound_requests_total",
        (FoundationDb, false) => "container_foundationdb_requests_total",
        (FoundationDb, true) => "container_foundationdb_inbound_requests_total",
        (Rabbitmq | Nats, true) => return None,
    })
}

/// The latency histogram of a protocol (named `..._total`, sic). RabbitMQ
/// and NATS have none (coroot counts their messages only).
pub fn duration_metric(p: Protocol, inbound: bool) -> Option<&'static str> {
    use Protocol::*;
    Some(match (p, inbound) {
        (Http | Http2, false) => "container_http_requests_duration_seconds_total",
        (Http | Http2, true) => "container_http_inbound_requests_duration_seconds_total",
        (Postgres, false) => "container_postgres_queries_duration_seconds_total",
        (Postgres, true) => "container_postgres_inbound_queries_duration_seconds_total",
        (Redis, false) => "container_redis_queries_duration_seconds_total",
        (Redis, true) => "container_redis_inbound_queries_duration_seconds_total",
        (Memcached, false) => "container_memcached_queries_duration_seconds_total",
        (Memcached, true) => "container_memcached_inbound_queries_duration_seconds_total",
        (Mysql, false) => "container_mysql_queries_duration_seconds_total",
        (Mysql, true) => "container_mysql_inbound_queries_duration_seconds_total",
        (Mongo, false) => "container_mongo_queries_duration_seconds_total",
        (Mongo, true) => "container_mongo_inbound_queries_duration_seconds_total",
        (Kafka, false) => "container_kafka_requests_duration_seconds_total",
        (Kafka, true) => "container_kafka_inbound_requests_duration_seconds_total",
        (Cassandra, false) => "container_cassandra_queries_duration_seconds_total",
        (Cassandra, true) => "container_cassandra_inbound_queries_duration_seconds_total",
        (Dubbo2, false) => "container_dubbo_requests_duration_seconds_total",
        (Dubbo2, true) => "container_dubbo_inbound_requests_duration_seconds_total",
        (Dns, false) => "container_dns_requests_duration_seconds_total",
        (Dns, true) => "container_dns_inbound_requests_duration_seconds_total",
        (Clickhouse, false) => "container_clickhouse_queries_duration_seconds_total",
        (Clickhouse, true) => "container_clickhouse_inbound_queries_duration_seconds_total",
        (Zookeeper, false) => "container_zookeeper_requests_duration_seconds_total",
        (Zookeeper, true) => "container_zookeeper_inbound_requests_duration_seconds_total",
        (FoundationDb, false) => "container_foundationdb_requests_duration_seconds_total",
        (FoundationDb, true) => "container_foundationdb_inbound_requests_duration_seconds_total",
        (Rabbitmq | Nats, _) => return None,
    })
}

/// Protocols whose requests counter has a `method` label besides `status`
/// (values: [`crate::Method::label`]).
pub fn has_method_label(p: Protocol) -> bool {
    matches!(p, Protocol::Rabbitmq | Protocol::Nats)
}

/// The `status` label value. HTTP: the class (`2xx` ...; `unknown` outside
/// 100..599); gRPC (an HTTP/2 call with a `grpc-status`): the class of the
/// HTTP status its code stands for ([`grpc_http_status`]: `NOT_FOUND` is
/// `4xx`, `INTERNAL` and `UNAVAILABLE` `5xx`); databases and queues: `ok` /
/// `failed`; DNS: coroot's RCODE names. None: coroot does not report the
/// request at all (DNS RCODEs above 5).
///
/// gRPC, decided here (docs/l7.md): a failed call answers HTTP 200 with a
/// non-zero `grpc-status` in its trailers. Upstream coroot-node-agent labels
/// HTTP/2 by `:status` alone (a failed call is `2xx`), and a `grpc:<CODE>`
/// value seen in a derived agent is not an error to the Coroot server, which
/// counts `5xx` and `failed`. The class of the code's HTTP equivalent keeps
/// coroot's label set and makes a failed call the error it is.
pub fn status_label(s: Status) -> Option<&'static str> {
    Some(match s {
        Status::Http(c) => match c {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            500..=599 => "5xx",
            _ => "unknown",
        },
        Status::Grpc(c) => match grpc_http_status(c) {
            200 => "2xx",
            400..=499 => "4xx",
            _ => "5xx",
        },
        Status::Ok => "ok",
        Status::Failed => "failed",
        Status::Dns(rcode) => match rcode {
            0 => "ok",
            1 => "format_error",
            2 => "servfail",
            3 => "nxdomain",
            4 => "not_implemented",
            5 => "refused",
            _ => return None,
        },
    })
}

const GRPC_LABELS: [&str; 17] = [
    "grpc:OK",
    "grpc:CANCELLED",
    "grpc:UNKNOWN",
    "grpc:INVALID_ARGUMENT",
    "grpc:DEADLINE_EXCEEDED",
    "grpc:NOT_FOUND",
    "grpc:ALREADY_EXISTS",
    "grpc:PERMISSION_DENIED",
    "grpc:RESOURCE_EXHAUSTED",
    "grpc:FAILED_PRECONDITION",
    "grpc:ABORTED",
    "grpc:OUT_OF_RANGE",
    "grpc:UNIMPLEMENTED",
    "grpc:INTERNAL",
    "grpc:UNAVAILABLE",
    "grpc:DATA_LOSS",
    "grpc:UNAUTHENTICATED",
];

/// The canonical name of a gRPC status code (grpc/doc/statuscodes.md), for
/// logs and traces; codes past the defined ones are `UNKNOWN`.
pub fn grpc_code_name(c: u8) -> &'static str {
    GRPC_LABELS
        .get(c as usize)
        .map_or("UNKNOWN", |l| &l["grpc:".len()..])
}

/// The DNS `request_type` label: Go's `dnsmessage.Type.String()` (coroot
/// passes it through), e.g. `TypeA`, `TypeAAAA`; unnamed types are their
/// decimal number.
pub fn dns_type_label(t: u16) -> Cow<'static, str> {
    Cow::Borrowed(match t {
        1 => "TypeA",
        2 => "TypeNS",
        5 => "TypeCNAME",
        6 => "TypeSOA",
        11 => "TypeWKS",
        12 => "TypePTR",
        13 => "TypeHINFO",
        14 => "TypeMINFO",
        15 => "TypeMX",
        16 => "TypeTXT",
        28 => "TypeAAAA",
        33 => "TypeSRV",
        41 => "TypeOPT",
        64 => "TypeSVCB",
        65 => "TypeHTTPS",
        252 => "TypeAXFR",
        255 => "TypeALL",
        _ => return Cow::Owned(t.to_string()),
    })
}

/// Whether coroot counts this DNS response at all: it skips RCODEs it has
/// no name for, and successful AAAA lookups with no address (they run in
/// parallel with the A lookup and add no latency of their own).
pub fn dns_reported(status: Status, d: &DnsDetail) -> bool {
    match status {
        Status::Dns(rcode) => {
            status_label(status).is_some() && !(d.qtype == 28 && rcode == 0 && d.answers.is_empty())
        }
        _ => false,
    }
}

/// coroot's `NormalizeFQDN`, applied to the `domain` label and to the
/// `fqdn` of `ip_to_fqdn`: PTR lookups collapse to `IP.in-addr.arpa`; EC2
/// internal names `ip-a-b-c-d.ec2...` to `IP.ec2...`; a name that goes on
/// after a `com`/`net`/`org`/`io` label (a search-path expansion like
/// `api.example.com.default.svc.cluster.local`) to `<...>.com.search_path_suffix`.
pub fn normalize_fqdn(fqdn: &str, qtype: u16) -> Cow<'_, str> {
    if qtype == 12 {
        return Cow::Borrowed("IP.in-addr.arpa");
    }
    if fqdn.starts_with("ip-")
        && let Some(idx) = fqdn.find('.')
        && idx > 0
        && fqdn[idx + 1..].starts_with("ec2")
    {
        return Cow::Owned(format!("IP.ec2{}", &fqdn[idx + 4..]));
    }
    let mut label_start = 0;
    for (i, c) in fqdn.char_indices() {
        if c != '.' {
            continue;
        }
        if label_start > 0 && matches!(&fqdn[label_start..i], "com" | "net" | "org" | "io") {
            return Cow::Owned(format!("{}.search_path_suffix", &fqdn[..i]));
        }
        label_start = i + 1;
    }
    Cow::Borrowed(fqdn)
}

/// The HTTP status a gRPC code stands for: the mapping gRPC's HTTP gateways use
/// (grpc-gateway's `HTTPStatusFromCode`); codes past the defined ones are 500.
pub fn grpc_http_status(code: u8) -> u16 {
    match code {
        0 => 200,
        1 => 499,
        2 => 500,
        3 => 400,
        4 => 504,
        5 => 404,
        6 => 409,
        7 => 403,
        8 => 429,
        9 => 400,
        10 => 409,
        11 => 400,
        12 => 501,
        13 => 500,
        14 => 503,
        15 => 500,
        16 => 401,
        _ => 500,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_statuses_and_normalisation() {
        assert_eq!(
            requests_metric(Protocol::Http2, false),
            Some("container_http_requests_total")
        );
        assert_eq!(
            duration_metric(Protocol::Http, true),
            Some("container_http_inbound_requests_duration_seconds_total")
        );
        assert_eq!(
            requests_metric(Protocol::Redis, true),
            Some("container_redis_inbound_queries_total")
        );
        assert_eq!(duration_metric(Protocol::Nats, false), None);
        assert_eq!(
            requests_metric(Protocol::Dns, false),
            Some("container_dns_requests_total")
        );
        assert_eq!(status_label(Status::Http(204)), Some("2xx"));
        assert_eq!(status_label(Status::Http(0)), Some("unknown"));
        assert_eq!(status_label(Status::Grpc(0)), Some("2xx"));
        assert_eq!(status_label(Status::Grpc(5)), Some("4xx"));
        assert_eq!(status_label(Status::Grpc(16)), Some("4xx"));
        assert_eq!(status_label(Status::Grpc(13)), Some("5xx"));
        assert_eq!(status_label(Status::Grpc(14)), Some("5xx"));
        assert_eq!(status_label(Status::Grpc(99)), Some("5xx"));
        assert_eq!(grpc_code_name(5), "NOT_FOUND");
        assert_eq!(grpc_code_name(200), "UNKNOWN");
        assert_eq!(status_label(Status::Dns(3)), Some("nxdomain"));
        assert_eq!(status_label(Status::Dns(9)), None);
        assert_eq!(dns_type_label(28), "TypeAAAA");
        assert_eq!(dns_type_label(4242), "4242");
        assert_eq!(normalize_fqdn("api.github.com", 1), "api.github.com");
        assert_eq!(
            normalize_fqdn("api.github.com.default.svc.cluster.local", 1),
            "api.github.com.search_path_suffix"
        );
        assert_eq!(
            normalize_fqdn("ip-10-0-0-1.ec2.internal", 1),
            "IP.ec2.internal"
        );
        assert_eq!(
            normalize_fqdn("4.3.2.1.in-addr.arpa", 12),
            "IP.in-addr.arpa"
        );
        assert_eq!(
            normalize_fqdn("com.example", 1),
            "com.example",
            "a first label is not a TLD"
        );
        let empty_aaaa = DnsDetail {
            qtype: 28,
            domain: "a.test".into(),
            answers: vec![],
        };
        assert!(!dns_reported(Status::Dns(0), &empty_aaaa));
        assert!(dns_reported(Status::Dns(3), &empty_aaaa));
        assert_eq!(BUCKETS.len(), 11);
    }
}
