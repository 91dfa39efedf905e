#![allow(clippy::unwrap_used)]

use std::sync::Mutex;
use std::time::Duration;

use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::proto::{ExportTracePartialSuccess, ExportTraceServiceResponse};
use crate::{Traces, TracesConfig};

/// A receiver answering each request with the next of `answers` (status, body), counting
/// the spans it was sent; the last answer repeats.
async fn receiver(answers: Vec<(u16, Vec<u8>)>) -> (hyper::Uri, Arc<Mutex<Vec<usize>>>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri: hyper::Uri = format!("http://{}/v1/traces", l.local_addr().unwrap())
        .parse()
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    tokio::spawn(async move {
        let mut n = 0;
        loop {
            let (mut c, _) = l.accept().await.unwrap();
            let mut buf = Vec::new();
            // One request per connection is enough here: read headers and the body.
            loop {
                let mut chunk = [0u8; 4096];
                let k = c.read(&mut chunk).await.unwrap();
                if k == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..k]);
                let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                    continue;
                };
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map(|v| v.trim().parse().unwrap())
                    .unwrap_or(0);
                if buf.len() < end + 4 + len {
                    continue;
                }
                let mut raw = Vec::new();
                flate2::read::GzDecoder::new(&buf[end + 4..end + 4 + len])
                    .read_to_end(&mut raw)
                    .unwrap();
                let req = crate::proto::ExportTraceServiceRequest::decode(raw.as_slice()).unwrap();
                let spans = req
                    .resource_spans
                    .iter()
                    .flat_map(|r| &r.scope_spans)
                    .map(|s| s.spans.len())
                    .sum();
                s.lock().unwrap().push(spans);
                let (status, body) = &answers[n.min(answers.len() - 1)];
                n += 1;
                let head = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                c.write_all(head.as_bytes()).await.unwrap();
                c.write_all(body).await.unwrap();
                break;
            }
        }
    });
    (uri, seen)
}

use std::io::Read;

fn config(uri: hyper::Uri) -> TracesConfig {
    let mut c = TracesConfig::new(uri);
    c.batch_delay = Duration::from_millis(50);
    c.retry_min = Duration::from_millis(10);
    c.retry_max = Duration::from_millis(20);
    c.max_attempts = 3;
    c
}

fn request() -> sonde_l7::Request {
    sonde_l7::Request {
        protocol: sonde_l7::Protocol::Redis,
        status: sonde_l7::Status::Ok,
        duration_ns: 10,
        method: sonde_l7::Method::Unknown,
        dns: None,
        start_ns: 1,
        detail: Some(Box::new(sonde_l7::Detail::Redis {
            command: "GET".into(),
            args: "k".into(),
        })),
    }
}

async fn until(what: &str, f: impl Fn() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn a_failing_receiver_is_retried_then_partial_success_counts_rejected() {
    let partial = ExportTraceServiceResponse {
        partial_success: Some(ExportTracePartialSuccess {
            rejected_spans: 1,
            error_message: "one too many".into(),
        }),
    }
    .encode_to_vec();
    let (uri, seen) = receiver(vec![(503, b"busy".to_vec()), (200, partial)]).await;
    let states = Arc::new(Mutex::new(Vec::new()));
    let st = states.clone();
    let t = Traces::start(
        config(uri),
        Arc::new(move |r: Result<(), String>| st.lock().unwrap().push(r.is_ok())),
    )
    .unwrap();
    let peer = "127.0.0.1:6379".parse().unwrap();
    for _ in 0..3 {
        t.offer("/docker/a", peer, &request());
    }
    let s = t.stats().clone();
    until("the batch exported", || {
        s.batches_exported.load(Relaxed) == 1
    })
    .await;
    // The same batch of 3 twice: refused with 503, then taken (one span rejected).
    assert_eq!(*seen.lock().unwrap(), vec![3, 3]);
    assert_eq!(s.export_failures.load(Relaxed), 1);
    assert_eq!(s.exported.load(Relaxed), 2);
    assert_eq!(s.dropped_rejected.load(Relaxed), 1);
    assert_eq!(*states.lock().unwrap(), vec![false, true]);
}

#[tokio::test]
async fn a_refusing_receiver_drops_the_batch_and_a_down_one_gives_up() {
    let (uri, seen) = receiver(vec![(400, b"bad".to_vec())]).await;
    let t = Traces::start(config(uri), Arc::new(|_| {})).unwrap();
    let peer = "127.0.0.1:6379".parse().unwrap();
    t.offer("/docker/a", peer, &request());
    let s = t.stats().clone();
    until("the batch rejected", || {
        s.dropped_rejected.load(Relaxed) == 1
    })
    .await;
    assert_eq!(*seen.lock().unwrap(), vec![1]);
    assert_eq!(s.export_failures.load(Relaxed), 0);

    // Nobody listens: 3 attempts, then the batch is dropped.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let uri = format!("http://127.0.0.1:{port}/v1/traces")
        .parse()
        .unwrap();
    let t = Traces::start(config(uri), Arc::new(|_| {})).unwrap();
    t.offer("/docker/a", peer, &request());
    t.offer("/docker/a", peer, &request());
    let s = t.stats().clone();
    until("the batch given up", || {
        s.dropped_export_failed.load(Relaxed) == 2
    })
    .await;
    assert_eq!(s.export_failures.load(Relaxed), 3);
    assert_eq!(s.exported.load(Relaxed), 0);
}
