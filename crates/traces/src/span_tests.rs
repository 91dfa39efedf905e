#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use prost::Message;

use super::*;
use crate::proto::{ExportTraceServiceRequest, Value};

fn pending(protocol: Protocol, status: Status, detail: Option<Detail>) -> PendingSpan {
    PendingSpan {
        container_id: "/k8s/shop/api-7d4b9c8f6d-x2x7k/app".into(),
        peer: "10.1.2.3:5432".parse().unwrap(),
        protocol,
        status,
        start_ns: 1_000,
        duration_ns: 2_500,
        detail: detail.map(Box::new),
    }
}

fn attrs(s: &proto::Span) -> HashMap<String, Value> {
    s.attributes
        .iter()
        .map(|kv| (kv.key.clone(), kv.value.clone().unwrap().value.unwrap()))
        .collect()
}

fn s(v: &str) -> Value {
    Value::String(v.to_owned())
}

#[test]
fn service_names_are_coroots() {
    assert_eq!(
        service_name("/k8s/shop/api-7d4b9c8f6d-x2x7k/app"),
        "/k8s/shop/api"
    );
    assert_eq!(
        service_name("/k8s/kube-system/proxy-x2x7k/p"),
        "/k8s/kube-system/proxy"
    );
    assert_eq!(service_name("/k8s/db/pg-0/postgres"), "/k8s/db/pg");
    assert_eq!(service_name("/docker/web"), "/docker/web");
    assert_eq!(
        service_name("/system.slice/nginx.service"),
        "/system.slice/nginx.service"
    );
}

/// The encoder's bytes decode back (prost) to what was built: resource per container,
/// kind CLIENT, times from the kernel clock, coroot's attributes, ERROR on failure.
#[test]
fn encoded_requests_decode_back() {
    let node = Node {
        host_name: "node-1".into(),
        host_id: "abc".into(),
        version: "0.1.0".into(),
    };
    let mut other = pending(
        Protocol::Redis,
        Status::Failed,
        Some(Detail::Redis {
            command: "INCR".into(),
            args: "s".into(),
        }),
    );
    other.container_id = "/docker/b".into();
    let spans = vec![
        pending(
            Protocol::Postgres,
            Status::Ok,
            Some(Detail::Statement("SELECT 1".into())),
        ),
        other,
    ];
    let offset = 1_700_000_000_000_000_000i128;
    let req = request(&spans, &node, offset, 0);
    let bytes = req.encode_to_vec();
    let back = ExportTraceServiceRequest::decode(bytes.as_slice()).unwrap();
    assert_eq!(back, req);
    assert_eq!(back.resource_spans.len(), 2);
    let rs = &back.resource_spans[1]; // BTreeMap order: "/docker/b" < "/k8s/..."
    assert_eq!(rs.schema_url, SCHEMA_URL);
    let res: HashMap<_, _> = rs
        .resource
        .as_ref()
        .unwrap()
        .attributes
        .iter()
        .map(|kv| (kv.key.clone(), kv.value.clone().unwrap().value.unwrap()))
        .collect();
    assert_eq!(res["service.name"], s("/k8s/shop/api"));
    assert_eq!(res["container.id"], s("/k8s/shop/api-7d4b9c8f6d-x2x7k/app"));
    assert_eq!(res["host.name"], s("node-1"));
    assert_eq!(res["host.id"], s("abc"));
    let span = &rs.scope_spans[0].spans[0];
    assert_eq!(rs.scope_spans[0].scope.as_ref().unwrap().name, "sonde");
    assert_eq!(span.name, "query");
    assert_eq!(span.kind, proto::SPAN_KIND_CLIENT);
    assert_eq!(span.start_time_unix_nano, 1_700_000_000_000_001_000);
    assert_eq!(span.end_time_unix_nano, 1_700_000_000_000_003_500);
    assert_eq!(span.trace_id.len(), 16);
    assert_eq!(span.span_id.len(), 8);
    assert!(span.status.is_none());
    let a = attrs(span);
    assert_eq!(a["db.system"], s("postgresql"));
    assert_eq!(a["db.statement"], s("SELECT 1"));
    assert_eq!(a["net.peer.name"], s("10.1.2.3"));
    assert_eq!(a["net.peer.port"], Value::Int(5432));
    let failed = &back.resource_spans[0].scope_spans[0].spans[0];
    assert_eq!(failed.name, "INCR");
    assert_eq!(
        failed.status.as_ref().unwrap().code,
        proto::STATUS_CODE_ERROR
    );
    let a = attrs(failed);
    assert_eq!(a["db.system"], s("redis"));
    assert_eq!(a["db.operation"], s("INCR"));
    assert_eq!(a["db.statement"], s("INCR s"));
}

#[test]
fn http_and_grpc_attributes() {
    let h1 = build(
        &pending(
            Protocol::Http,
            Status::Http(404),
            Some(Detail::Http {
                method: "GET".into(),
                path: "/x?y=1".into(),
                scheme: None,
            }),
        ),
        0,
        0,
    );
    assert_eq!(h1.name, "GET");
    let a = attrs(&h1);
    assert_eq!(a["http.url"], s("http://10.1.2.3:5432/x?y=1"));
    assert_eq!(a["http.method"], s("GET"));
    assert_eq!(a["http.status_code"], Value::Int(404));
    assert!(h1.status.is_some());
    let grpc = build(
        &pending(
            Protocol::Http2,
            Status::Grpc(5),
            Some(Detail::Http {
                method: "POST".into(),
                path: "/pkg.Svc/Get".into(),
                scheme: Some("http".into()),
            }),
        ),
        0,
        0,
    );
    let a = attrs(&grpc);
    assert_eq!(a["http.url"], s("http://10.1.2.3:5432/pkg.Svc/Get"));
    assert_eq!(a["http.status_code"], Value::Int(200));
    assert_eq!(a["rpc.grpc.status_code"], Value::Int(5));
    assert!(grpc.status.is_some());
    let ok = build(&pending(Protocol::Http2, Status::Grpc(0), None), 0, 0);
    assert!(ok.status.is_none());
    assert_eq!(ok.name, "unknown");
    assert_eq!(attrs(&ok)["http.url"], s("unknown://10.1.2.3:5432/unknown"));
}

#[test]
fn memcached_items_and_zookeeper() {
    let one = build(
        &pending(
            Protocol::Memcached,
            Status::Ok,
            Some(Detail::Memcached {
                command: "get".into(),
                keys: vec!["k".into()],
            }),
        ),
        0,
        0,
    );
    assert_eq!(one.name, "get");
    assert_eq!(attrs(&one)["db.memcached.item"], s("k"));
    let many = build(
        &pending(
            Protocol::Memcached,
            Status::Ok,
            Some(Detail::Memcached {
                command: "gets".into(),
                keys: vec!["a".into(), "b".into()],
            }),
        ),
        0,
        0,
    );
    let Value::Array(arr) = &attrs(&many)["db.memcached.item"] else {
        panic!()
    };
    assert_eq!(arr.values.len(), 2);
    let zk = build(
        &pending(
            Protocol::Zookeeper,
            Status::Failed,
            Some(Detail::Zookeeper {
                op: "getData".into(),
                path: "/a".into(),
            }),
        ),
        0,
        0,
    );
    assert_eq!(zk.name, "getData");
    let a = attrs(&zk);
    assert_eq!(a["db.system"], s("zookeeper"));
    assert_eq!(a["db.statement"], s("getData /a"));
    assert!(zk.status.is_some());
}

#[test]
fn unknown_start_ends_now() {
    let mut p = pending(Protocol::Clickhouse, Status::Ok, None);
    p.start_ns = 0;
    let sp = build(&p, 0, 10_000);
    assert_eq!(
        (sp.start_time_unix_nano, sp.end_time_unix_nano),
        (7_500, 10_000)
    );
    assert_eq!(attrs(&sp)["db.system"], s("clickhouse"));
    assert!(has_span(Protocol::Clickhouse, None));
    assert!(!has_span(Protocol::Postgres, None));
    assert!(!has_span(Protocol::Kafka, None));
}
