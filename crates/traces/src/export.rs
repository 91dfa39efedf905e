//! The exporter task: batches from the queue, encodes, POSTs, retries with backoff.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderName, HeaderValue, USER_AGENT};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use prost::Message;
use tokio::sync::mpsc::Receiver;

use crate::{PendingSpan, Stats, StatusHook, TracesConfig, span};

/// Longest receiver answer read (an error's text, or a partial success).
const MAX_ANSWER: usize = 64 * 1024;

/// What one POST came to.
enum Outcome {
    /// Accepted; the receiver refused this many of the spans (partial success).
    Delivered(u64),
    /// 4xx other than 429: the receiver will never take this batch.
    Rejected(String),
    /// Network error, timeout, 5xx, 429: try again later.
    Retry(String),
}

pub(crate) async fn run(
    config: TracesConfig,
    mut rx: Receiver<PendingSpan>,
    stats: Arc<Stats>,
    status: StatusHook,
) {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let mut batch: Vec<PendingSpan> = Vec::with_capacity(config.batch_size.max(1));
    let mut healthy: Option<bool> = None;
    loop {
        // The first span, then what else comes within the batch delay.
        let Some(first) = rx.recv().await else {
            return; // every sender is gone: the agent is stopping
        };
        batch.push(first);
        let deadline = tokio::time::Instant::now() + config.batch_delay;
        while batch.len() < config.batch_size.max(1) {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(s)) => batch.push(s),
                Ok(None) | Err(_) => break,
            }
        }
        stats.queue_length.store(rx.len() as u64, Relaxed);
        let n = batch.len() as u64;
        let body = match encode(&batch, &config) {
            Ok(b) => Bytes::from(b),
            Err(e) => {
                // gzip into memory cannot fail short of memory exhaustion; count, go on.
                tracing::debug!(error = %e, "Cannot compress a span batch");
                stats.dropped_export_failed.fetch_add(n, Relaxed);
                batch.clear();
                continue;
            }
        };
        batch.clear();
        let mut backoff = config.retry_min;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let (result, retry) = match post(&client, &config, body.clone()).await {
                Outcome::Delivered(rejected) => {
                    let accepted = n.saturating_sub(rejected);
                    stats.exported.fetch_add(accepted, Relaxed);
                    stats.dropped_rejected.fetch_add(n - accepted, Relaxed);
                    stats.batches_exported.fetch_add(1, Relaxed);
                    (Ok(()), false)
                }
                Outcome::Rejected(why) => {
                    stats.dropped_rejected.fetch_add(n, Relaxed);
                    (Err(why), false)
                }
                Outcome::Retry(why) => {
                    stats.export_failures.fetch_add(1, Relaxed);
                    (Err(why), true)
                }
            };
            let ok = result.is_ok();
            if healthy != Some(ok) || !ok {
                status(result.map_err(|why| {
                    format!(
                        "{why}; spans wait in a queue of {} and are dropped beyond it \
                         (sonde_traces_spans_dropped_total)",
                        config.queue_size
                    )
                }));
            }
            healthy = Some(ok);
            if !retry {
                break;
            }
            if attempt >= config.max_attempts.max(1) {
                stats.dropped_export_failed.fetch_add(n, Relaxed);
                break;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(config.retry_max.max(config.retry_min));
        }
    }
}

/// The gzipped protobuf of one batch.
pub(crate) fn encode(batch: &[PendingSpan], config: &TracesConfig) -> std::io::Result<Vec<u8>> {
    let now_unix = unix_now_ns();
    let req = span::request(batch, &config.node, mono_to_unix(now_unix), now_unix);
    let raw = req.encode_to_vec();
    let mut gz = flate2::write::GzEncoder::new(
        Vec::with_capacity(raw.len() / 3 + 64),
        flate2::Compression::fast(),
    );
    gz.write_all(&raw)?;
    gz.finish()
}

fn unix_now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Unix time minus the kernel's monotonic clock (`bpf_ktime_get_ns` is CLOCK_MONOTONIC),
/// now: added to a request's kernel time it gives the request's Unix time.
fn mono_to_unix(now_unix: u64) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 {
        return 0;
    }
    let mono = i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec);
    i128::from(now_unix) - mono
}

async fn post(
    client: &Client<HttpConnector, Full<Bytes>>,
    config: &TracesConfig,
    body: Bytes,
) -> Outcome {
    let url = &config.endpoint;
    let mut req = hyper::Request::post(url.clone())
        .header(CONTENT_TYPE, "application/x-protobuf")
        .header(CONTENT_ENCODING, "gzip")
        .header(USER_AGENT, concat!("sonde/", env!("CARGO_PKG_VERSION")));
    for (name, value) in &config.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            req = req.header(n, v);
        }
    }
    let req = match req.body(Full::new(body)) {
        Ok(r) => r,
        Err(e) => return Outcome::Rejected(format!("cannot build the request: {e}")),
    };
    let sent = tokio::time::timeout(config.timeout, async {
        let resp = client.request(req).await?;
        let status = resp.status();
        let answer = match Limited::new(resp.into_body(), MAX_ANSWER).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => Bytes::new(),
        };
        Ok::<_, hyper_util::client::legacy::Error>((status, answer))
    })
    .await;
    match sent {
        Err(_) => Outcome::Retry(format!("no answer from {url} within {:?}", config.timeout)),
        Ok(Err(e)) => Outcome::Retry(format!("cannot reach {url}: {}", error_chain(&e))),
        Ok(Ok((status, answer))) if status.is_success() => {
            let rejected = crate::proto::ExportTraceServiceResponse::decode(answer)
                .ok()
                .and_then(|r| r.partial_success)
                .map_or(0, |p| p.rejected_spans.max(0) as u64);
            Outcome::Delivered(rejected)
        }
        Ok(Ok((status, answer))) => {
            let text = String::from_utf8_lossy(&answer);
            let why = format!("{url} answered {status}: {}", first_line(&text));
            if status.as_u16() == 429 || status.is_server_error() {
                Outcome::Retry(why)
            } else {
                Outcome::Rejected(why)
            }
        }
    }
}

fn first_line(s: &str) -> &str {
    let line = s.trim().lines().next().unwrap_or("");
    match line.char_indices().nth(200) {
        Some((i, _)) => &line[..i],
        None => line,
    }
}

/// "connection refused" rather than hyper's outer "client error (Connect)".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
#[path = "export_tests.rs"]
mod tests;
