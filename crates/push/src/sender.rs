//! The two loops: gather-and-spool on a fixed interval, and one sender per endpoint draining
//! its spool oldest first with exponential backoff.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Request;
use hyper::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderName, HeaderValue, USER_AGENT};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::{
    Batch, Gather, Protocol, PushConfig, StatusHook, Target, TargetStats, otlp, remote_write,
};

/// Longest receiver error body kept for the log line.
const MAX_ERROR_BODY: usize = 4096;

pub(crate) fn publish_spool(stats: &TargetStats, spool: &crate::spool::Spool) {
    stats.spool_bytes.store(spool.bytes(), Relaxed);
    stats.spool_batches.store(spool.len() as u64, Relaxed);
}

/// Every `interval`: gather once, encode for each endpoint, spool, wake the senders. A missed
/// tick (a slow gather) is skipped, not bunched up.
pub(crate) async fn gather_loop(
    targets: Vec<Arc<Target>>,
    config: Arc<PushConfig>,
    gather: Gather,
    start_unix_nano: u64,
) {
    // The first gather is one interval after start, not at once: the registry has found the
    // node's containers by then, and the binary has published the push counters.
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + config.interval,
        config.interval,
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let spooling = targets.clone();
        let gather = gather.clone();
        let labels = config.labels.clone();
        let done = tokio::task::spawn_blocking(move || {
            let families = gather();
            let timestamp_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);
            let batch = Batch {
                families: &families,
                timestamp_ms,
                labels: &labels,
            };
            for t in &spooling {
                spool_one(t, &batch, start_unix_nano);
            }
        })
        .await;
        if let Err(e) = done {
            tracing::error!(error = %e, "Push gather panicked; trying again at the next interval");
        }
        for t in &targets {
            t.wake.notify_one();
        }
    }
}

fn spool_one(t: &Target, batch: &Batch<'_>, start_unix_nano: u64) {
    let protocol = t.endpoint.protocol;
    let encoded = match protocol {
        Protocol::RemoteWrite => remote_write::encode(batch),
        Protocol::Otlp => otlp::encode(batch, start_unix_nano),
    };
    let (payload, samples) = match encoded {
        Ok(v) => v,
        Err(e) => {
            spool_failed(t, &e);
            return;
        }
    };
    let mut spool = t.spool.lock().unwrap_or_else(PoisonError::into_inner);
    match spool.add(batch.timestamp_ms, samples, &payload) {
        Ok(added) => {
            if t.spool_failing.swap(false, Relaxed) {
                tracing::info!(
                    protocol = protocol.as_str(),
                    "Push batches are being spooled again"
                );
            }
            if added.rejected {
                t.stats.batches_dropped.fetch_add(1, Relaxed);
                t.stats.samples_dropped.fetch_add(samples, Relaxed);
            } else {
                t.stats.batches_spooled.fetch_add(1, Relaxed);
            }
            t.stats
                .batches_dropped
                .fetch_add(added.dropped_batches, Relaxed);
            t.stats
                .samples_dropped
                .fetch_add(added.dropped_samples, Relaxed);
        }
        Err(e) => spool_failed(t, &e),
    }
    publish_spool(&t.stats, &spool);
}

/// Counts a gather that could not be spooled; warns once until spooling works again.
fn spool_failed(t: &Target, e: &crate::Error) {
    t.stats.spool_errors.fetch_add(1, Relaxed);
    if !t.spool_failing.swap(true, Relaxed) {
        tracing::warn!(
            protocol = t.endpoint.protocol.as_str(),
            error = %error_chain(e),
            "Cannot spool push batches: they are lost until this is fixed (free disk space, \
             or give --wal-dir a writable volume); counted in sonde_push_spool_errors_total"
        );
    }
}

/// What one POST came to.
enum Outcome {
    Delivered,
    /// 4xx other than 429: the receiver will never take this batch.
    Rejected(String),
    /// Network error, timeout, 5xx, 429: try again later.
    Retry(String),
}

pub(crate) async fn send_loop(target: Arc<Target>, config: Arc<PushConfig>, status: StatusHook) {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let protocol = target.endpoint.protocol;
    let mut backoff = config.retry_min;
    let mut healthy: Option<bool> = None;
    loop {
        let next = target
            .spool
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take_oldest();
        let Some((entry, path)) = next else {
            target.wake.notified().await;
            continue;
        };
        let body = match tokio::fs::read(&path).await {
            Ok(b) => b,
            Err(e) => {
                // Deleted or unreadable behind our back: nothing to send; count it as dropped.
                tracing::debug!(path = %path.display(), error = %e, "Spooled batch unreadable");
                let mut spool = target.spool.lock().unwrap_or_else(PoisonError::into_inner);
                spool.forget(&entry);
                target.stats.batches_dropped.fetch_add(1, Relaxed);
                target
                    .stats
                    .samples_dropped
                    .fetch_add(entry.samples, Relaxed);
                crate::sender::publish_spool(&target.stats, &spool);
                continue;
            }
        };
        let outcome = post(&client, &target, &config, body).await;
        let (remove, result) = match outcome {
            Outcome::Delivered => {
                target.stats.samples_sent.fetch_add(entry.samples, Relaxed);
                (true, Ok(()))
            }
            Outcome::Rejected(why) => {
                target.stats.batches_rejected.fetch_add(1, Relaxed);
                target
                    .stats
                    .samples_dropped
                    .fetch_add(entry.samples, Relaxed);
                (true, Err(why))
            }
            Outcome::Retry(why) => {
                target.stats.send_failures.fetch_add(1, Relaxed);
                (false, Err(why))
            }
        };
        {
            let mut spool = target.spool.lock().unwrap_or_else(PoisonError::into_inner);
            spool.finish(&entry, remove);
            publish_spool(&target.stats, &spool);
        }
        let ok = result.is_ok();
        if healthy != Some(ok) || !ok {
            status(protocol, result);
        }
        healthy = Some(ok);
        if remove {
            backoff = config.retry_min;
        } else {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(config.retry_max);
        }
    }
}

async fn post(
    client: &Client<HttpConnector, Full<Bytes>>,
    target: &Target,
    config: &PushConfig,
    body: Vec<u8>,
) -> Outcome {
    let url = &target.endpoint.uri;
    let mut req = Request::post(url.clone())
        .header(CONTENT_TYPE, "application/x-protobuf")
        .header(USER_AGENT, concat!("sonde/", env!("CARGO_PKG_VERSION")));
    req = match target.endpoint.protocol {
        Protocol::RemoteWrite => req
            .header(CONTENT_ENCODING, "snappy")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0"),
        Protocol::Otlp => req.header(CONTENT_ENCODING, "gzip"),
    };
    for (name, value) in &config.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            req = req.header(n, v);
        }
    }
    let req = match req.body(Full::new(Bytes::from(body))) {
        Ok(r) => r,
        Err(e) => return Outcome::Rejected(format!("cannot build the request: {e}")),
    };
    let sent = tokio::time::timeout(config.timeout, async {
        let resp = client.request(req).await?;
        let status = resp.status();
        // Read (a bounded part of) the body so the connection can be reused and the receiver's
        // reason shows in the log.
        let text = match Limited::new(resp.into_body(), MAX_ERROR_BODY)
            .collect()
            .await
        {
            Ok(b) => String::from_utf8_lossy(&b.to_bytes()).trim().to_owned(),
            Err(_) => String::new(),
        };
        Ok::<_, hyper_util::client::legacy::Error>((status, text))
    })
    .await;
    match sent {
        Err(_) => Outcome::Retry(format!("no answer from {url} within {:?}", config.timeout)),
        Ok(Err(e)) => Outcome::Retry(format!("cannot reach {url}: {}", error_chain(&e))),
        Ok(Ok((status, _))) if status.is_success() => Outcome::Delivered,
        Ok(Ok((status, text))) => {
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
    let line = s.lines().next().unwrap_or("");
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
mod tests {
    use super::*;

    #[test]
    fn receiver_text_is_cut() {
        assert_eq!(first_line("bad\nmore"), "bad");
        assert_eq!(first_line(&"x".repeat(500)).len(), 200);
    }
}
