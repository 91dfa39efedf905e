//! The cost per span: building it from a completed request and encoding it in a batch of
//! 512 (protobuf, then gzip as the exporter sends it), and the event path's `offer`.
//! `cargo bench -p sonde-traces --bench span`; figures in docs/benchmarks.md.

use std::hint::black_box;
use std::io::Write;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use prost::Message;
use sonde_l7::{Detail, Protocol, Status};
use sonde_traces::{Node, PendingSpan, span};

fn spans(n: usize) -> Vec<PendingSpan> {
    (0..n)
        .map(|i| PendingSpan {
            container_id: format!("/k8s/shop/api-7d4b9c8f6d-x2x7k/app{}", i % 8).into(),
            peer: "10.1.2.3:5432".parse().unwrap_or_else(|_| unreachable!()),
            protocol: if i % 2 == 0 {
                Protocol::Postgres
            } else {
                Protocol::Http
            },
            status: if i % 2 == 0 {
                Status::Ok
            } else {
                Status::Http(200)
            },
            start_ns: 1_000 + i as u64,
            duration_ns: 250_000,
            detail: Some(Box::new(if i % 2 == 0 {
                Detail::Statement("SELECT id, name FROM users WHERE id = $1".into())
            } else {
                Detail::Http {
                    method: "GET".into(),
                    path: "/api/v1/users/42?expand=orders".into(),
                    scheme: None,
                }
            })),
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let node = Node {
        host_name: "node-1".into(),
        host_id: "0123456789abcdef".into(),
        version: "0.1.0".into(),
    };
    let batch = spans(512);
    let mut g = c.benchmark_group("traces");
    g.throughput(Throughput::Elements(batch.len() as u64));
    g.bench_function("build_encode_512", |b| {
        b.iter(|| {
            let req = span::request(black_box(&batch), &node, 0, 1);
            black_box(req.encode_to_vec())
        })
    });
    g.bench_function("build_encode_gzip_512", |b| {
        b.iter(|| {
            let req = span::request(black_box(&batch), &node, 0, 1);
            let raw = req.encode_to_vec();
            let mut gz = flate2::write::GzEncoder::new(
                Vec::with_capacity(raw.len()),
                flate2::Compression::fast(),
            );
            let _ = gz.write_all(&raw);
            black_box(gz.finish().map(|v| v.len()).unwrap_or(0))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
