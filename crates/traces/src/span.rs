//! From a completed client request to an OTLP span, as coroot-node-agent builds it
//! (`tracing/tracing.go`, semantic conventions v1.18.0): one span of kind CLIENT per
//! request, named by its method, command or `query`, with the peer's address, the
//! protocol's attributes, and status ERROR when the request failed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::LazyLock;

use regex::Regex;
use sonde_l7::{Detail, Protocol, Status};

use crate::proto::{self, KeyValue};

/// Semantic conventions the attribute names follow (coroot's `semconv/v1.18.0`).
pub const SCHEMA_URL: &str = "https://opentelemetry.io/schemas/1.18.0";

/// A request waiting in the queue to become a span.
#[derive(Debug, Clone)]
pub struct PendingSpan {
    /// The client's `container_id`.
    pub container_id: Box<str>,
    /// Where the request really went (the actual destination after NAT).
    pub peer: SocketAddr,
    pub protocol: Protocol,
    pub status: Status,
    /// Kernel monotonic time of the request's write (0: unknown, then the span ends when it
    /// is built) and its duration.
    pub start_ns: u64,
    pub duration_ns: u64,
    pub detail: Option<Box<Detail>>,
}

/// Whether a request of `protocol` with this detail becomes a span. coroot skips requests
/// whose text it could not read (no method, query or command), except ClickHouse and HTTP/2,
/// whose spans it sends with placeholders.
pub fn has_span(protocol: Protocol, detail: Option<&Detail>) -> bool {
    sonde_l7::detail::traced(protocol)
        && (detail.is_some() || matches!(protocol, Protocol::Clickhouse | Protocol::Http2))
}

/// Resource attributes shared by every container's spans.
#[derive(Debug, Clone, Default)]
pub struct Node {
    pub host_name: String,
    pub host_id: String,
    pub version: String,
}

/// coroot's `ContainerIdToOtelServiceName`: a Kubernetes pod's container is named by its
/// workload (`/k8s/<ns>/<deployment, daemonset or statefulset>`), anything else by its id.
pub fn service_name(container_id: &str) -> &str {
    static PATTERNS: LazyLock<[Regex; 3]> = LazyLock::new(|| {
        [
            r"^(/k8s/[a-z0-9-]+/[a-z0-9-]+)-[0-9a-f]{1,10}-[bcdfghjklmnpqrstvwxz2456789]{5}/.+",
            r"^(/k8s/[a-z0-9-]+/[a-z0-9-]+)-[bcdfghjklmnpqrstvwxz2456789]{5}/.+",
            r"^(/k8s/[a-z0-9-]+/[a-z0-9-]+)-\d+/.+",
        ]
        .map(|p| Regex::new(p).unwrap_or_else(|_| unreachable!("constant pattern")))
    });
    if !container_id.starts_with("/k8s/") {
        return container_id;
    }
    for r in PATTERNS.iter() {
        if let Some(m) = r.captures(container_id).and_then(|c| c.get(1)) {
            return m.as_str();
        }
    }
    container_id
}

fn random_id<const N: usize>() -> Vec<u8> {
    loop {
        let v: Vec<u8> = (0..N).map(|_| fastrand::u8(..)).collect();
        if v.iter().any(|b| *b != 0) {
            return v;
        }
    }
}

/// The span of one request. `mono_to_unix` turns kernel monotonic time into Unix time;
/// `now_unix` ends a span of unknown start.
pub fn build(p: &PendingSpan, mono_to_unix: i128, now_unix: u64) -> proto::Span {
    let (start, end) = if p.start_ns == 0 {
        (now_unix.saturating_sub(p.duration_ns), now_unix)
    } else {
        let start = (i128::from(p.start_ns) + mono_to_unix).max(0) as u64;
        (start, start.saturating_add(p.duration_ns))
    };
    let mut attrs: Vec<KeyValue> = Vec::with_capacity(6);
    let (name, error) = attributes(p, &mut attrs);
    attrs.push(proto::string("net.peer.name", p.peer.ip().to_string()));
    attrs.push(proto::int("net.peer.port", i64::from(p.peer.port())));
    proto::Span {
        trace_id: random_id::<16>(),
        span_id: random_id::<8>(),
        parent_span_id: Vec::new(),
        name,
        kind: proto::SPAN_KIND_CLIENT,
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        attributes: attrs,
        status: error.then(|| proto::Status {
            message: String::new(),
            code: proto::STATUS_CODE_ERROR,
        }),
    }
}

/// The protocol's attributes; the span's name and whether it failed.
fn attributes(p: &PendingSpan, out: &mut Vec<KeyValue>) -> (String, bool) {
    let failed = p.status == Status::Failed;
    let db = |system: &str, out: &mut Vec<KeyValue>| out.push(proto::string("db.system", system));
    match (p.protocol, p.detail.as_deref()) {
        (Protocol::Http | Protocol::Http2, detail) => {
            let (method, path, scheme) = match detail {
                Some(Detail::Http {
                    method,
                    path,
                    scheme,
                }) => (&**method, &**path, scheme.as_deref().unwrap_or("http")),
                _ => ("unknown", "/unknown", "unknown"),
            };
            // A gRPC call's answer is HTTP 200 (the code is in grpc-status).
            let (code, grpc) = match p.status {
                Status::Http(c) => (c, None),
                Status::Grpc(g) => (200, Some(g)),
                _ => (0, None),
            };
            out.push(proto::string(
                "http.url",
                format!("{scheme}://{}{path}", p.peer),
            ));
            out.push(proto::string("http.method", method));
            out.push(proto::int("http.status_code", i64::from(code)));
            if let Some(g) = grpc {
                out.push(proto::int("rpc.grpc.status_code", i64::from(g)));
            }
            (
                method.to_owned(),
                code >= 400 || grpc.is_some_and(|g| g > 0),
            )
        }
        (Protocol::Redis, Some(Detail::Redis { command, args })) => {
            db("redis", out);
            out.push(proto::string("db.operation", &**command));
            let statement = if args.is_empty() {
                command.to_string()
            } else {
                format!("{command} {args}")
            };
            out.push(proto::string("db.statement", statement));
            (command.to_string(), failed)
        }
        (Protocol::Memcached, Some(Detail::Memcached { command, keys })) => {
            db("memcached", out);
            out.push(proto::string("db.operation", &**command));
            match keys.as_slice() {
                [] => {}
                [k] => out.push(proto::string("db.memcached.item", &**k)),
                ks => out.push(proto::strings(
                    "db.memcached.item",
                    ks.iter().map(|k| k.to_string()),
                )),
            }
            (command.to_string(), failed)
        }
        (Protocol::Zookeeper, Some(Detail::Zookeeper { op, path })) => {
            db("zookeeper", out);
            out.push(proto::string("db.operation", &**op));
            let statement = if path.is_empty() {
                op.to_string()
            } else {
                format!("{op} {path}")
            };
            out.push(proto::string("db.statement", statement));
            (op.to_string(), failed)
        }
        (protocol, detail) => {
            let system = match protocol {
                Protocol::Postgres => "postgresql",
                Protocol::Mysql => "mysql",
                Protocol::Mongo => "mongodb",
                Protocol::Clickhouse => "clickhouse",
                _ => "other_sql",
            };
            db(system, out);
            let statement = match detail {
                Some(Detail::Statement(s)) => s.to_string(),
                _ => String::new(),
            };
            out.push(proto::string("db.statement", statement));
            ("query".to_owned(), failed)
        }
    }
}

/// One export request of `spans`: a ResourceSpans per container (host, service and
/// container attributes), its spans under the scope `sonde`.
pub fn request(
    spans: &[PendingSpan],
    node: &Node,
    mono_to_unix: i128,
    now_unix: u64,
) -> proto::ExportTraceServiceRequest {
    let mut by_container: BTreeMap<&str, Vec<proto::Span>> = BTreeMap::new();
    for p in spans {
        by_container
            .entry(&*p.container_id)
            .or_default()
            .push(build(p, mono_to_unix, now_unix));
    }
    let resource_spans = by_container
        .into_iter()
        .map(|(id, spans)| proto::ResourceSpans {
            resource: Some(proto::Resource {
                attributes: vec![
                    proto::string("host.name", node.host_name.as_str()),
                    proto::string("host.id", node.host_id.as_str()),
                    proto::string("service.name", service_name(id)),
                    proto::string("container.id", id),
                ],
            }),
            scope_spans: vec![proto::ScopeSpans {
                scope: Some(proto::InstrumentationScope {
                    name: "sonde".to_owned(),
                    version: node.version.clone(),
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: SCHEMA_URL.to_owned(),
        })
        .collect();
    proto::ExportTraceServiceRequest { resource_spans }
}

#[cfg(test)]
#[path = "span_tests.rs"]
mod tests;
