//! OTLP/HTTP trace export of the client spans the L7 tracer sees, as coroot-node-agent's
//! `--traces-endpoint` does: every request a container makes over HTTP, HTTP/2 (gRPC),
//! Postgres, MySQL, MongoDB, Memcached, Redis, ClickHouse or ZooKeeper becomes a span of
//! kind CLIENT (attributes: [`span`]).
//!
//! The path of a span: [`Traces::offer`] (called by the registry for each outbound
//! request; never blocks) samples it (`--traces-sampling`, coroot's per-span ratio) and
//! puts it in a bounded queue, or counts it dropped when the queue is full. One exporter
//! task takes up to `batch_size` spans at a time (or what came within `batch_delay`),
//! builds an `ExportTraceServiceRequest` ([`proto`]), gzips it and POSTs it as
//! `application/x-protobuf`. A failing endpoint is retried with exponential backoff up to
//! `max_attempts` times, then the batch is dropped (counted); meanwhile the queue fills
//! and new spans are dropped (counted), so memory stays bounded and the agent's event path
//! never waits. The exporter's state is reported through a [`StatusHook`].
//!
//! This crate knows nothing of containers or the registry: it gets a container id, the
//! peer's address and a completed [`sonde_l7::Request`].

pub mod proto;
pub mod span;

mod export;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use sonde_l7::Request;

pub use span::{Node, PendingSpan};

/// Errors of this crate (all at start: export failures are counted, not returned).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid {flag} {url:?}: {reason}")]
    Endpoint {
        flag: &'static str,
        url: String,
        reason: String,
    },
    #[error("invalid --traces-sampling {0}: use a ratio from 0.0 to 1.0")]
    Sampling(f64),
}

/// Export settings (coroot's `--traces-endpoint`, `--traces-sampling`; the rest sonde's).
#[derive(Debug, Clone)]
pub struct TracesConfig {
    pub endpoint: hyper::Uri,
    /// The share of requests that become spans, 0.0 to 1.0.
    pub sampling: f64,
    /// Spans waiting for export at most; beyond it new spans are dropped and counted.
    pub queue_size: usize,
    /// Spans per export request at most.
    pub batch_size: usize,
    /// How long a batch waits to fill after its first span.
    pub batch_delay: Duration,
    pub retry_min: Duration,
    pub retry_max: Duration,
    /// POSTs of one batch before it is dropped.
    pub max_attempts: u32,
    /// Bound on one POST.
    pub timeout: Duration,
    /// Sent with every request (e.g. `X-API-Key`).
    pub headers: Vec<(String, String)>,
    pub node: Node,
}

impl TracesConfig {
    /// Defaults around an endpoint (coroot's sampling 1.0; the OpenTelemetry SDK's batch
    /// processor's 512 spans and 5 s).
    pub fn new(endpoint: hyper::Uri) -> TracesConfig {
        TracesConfig {
            endpoint,
            sampling: 1.0,
            queue_size: 4096,
            batch_size: 512,
            batch_delay: Duration::from_secs(5),
            retry_min: Duration::from_secs(1),
            retry_max: Duration::from_secs(30),
            max_attempts: 5,
            timeout: Duration::from_secs(10),
            headers: Vec::new(),
            node: Node::default(),
        }
    }
}

/// Parses and checks a traces endpoint URL (`http://host:port/path`; the path as given,
/// e.g. `/v1/traces`). Only `http://`: the agent carries no TLS stack (see sonde-push).
pub fn parse_endpoint(flag: &'static str, url: &str) -> Result<hyper::Uri, Error> {
    let bad = |reason: &str| Error::Endpoint {
        flag,
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let uri: hyper::Uri = url.trim().parse().map_err(|e| bad(&format!("{e}")))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(bad(
                "https is not supported (no TLS stack in the agent); use http:// to the \
                 collector or a TLS-terminating proxy next to the agent",
            ));
        }
        _ => return Err(bad("use an http:// URL")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    Ok(uri)
}

/// Checks a sampling ratio (NaN and values outside 0..=1 are refused: coroot silently
/// drops every span on NaN).
pub fn parse_sampling(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("invalid ratio {s:?}; use e.g. 1.0 or 0.1"))?;
    if !(0.0..=1.0).contains(&v) {
        return Err(Error::Sampling(v).to_string());
    }
    Ok(v)
}

/// coroot's sampler: every span at 1.0, none at 0.0, else each with probability `rate`.
#[derive(Debug, Clone, Copy)]
pub struct Sampler {
    rate: f64,
}

impl Sampler {
    pub fn new(rate: f64) -> Result<Sampler, Error> {
        if !(0.0..=1.0).contains(&rate) {
            return Err(Error::Sampling(rate));
        }
        Ok(Sampler { rate })
    }

    pub fn sample(&self) -> bool {
        if self.rate >= 1.0 {
            return true;
        }
        if self.rate <= 0.0 {
            return false;
        }
        fastrand::f64() < self.rate
    }
}

/// Counters of the exporter, rendered by the binary as `sonde_traces_*`.
#[derive(Debug, Default)]
pub struct Stats {
    /// Spans put in the queue.
    pub queued: AtomicU64,
    /// Requests the sampler left out.
    pub sampled_out: AtomicU64,
    /// Spans the receiver accepted.
    pub exported: AtomicU64,
    /// Export requests the receiver accepted.
    pub batches_exported: AtomicU64,
    /// POSTs that failed and were retried or given up (network, timeout, 5xx, 429).
    pub export_failures: AtomicU64,
    /// Spans dropped: the queue was full ...
    pub dropped_queue_full: AtomicU64,
    /// ... their batch failed `max_attempts` times ...
    pub dropped_export_failed: AtomicU64,
    /// ... the receiver refused them for good (4xx, or a partial success's rejected spans).
    pub dropped_rejected: AtomicU64,
    /// Requests of a traced protocol whose text was not seen (no method, query or
    /// command): no span, as coroot does.
    pub without_detail: AtomicU64,
    /// Spans in the queue now.
    pub queue_length: AtomicU64,
}

/// Told whether the exporter delivers (`Ok`) or why not, on every change of outcome.
pub type StatusHook = Arc<dyn Fn(Result<(), String>) + Send + Sync>;

/// The running exporter's front: cheap to clone, called from the event path.
#[derive(Debug, Clone)]
pub struct Traces {
    tx: tokio::sync::mpsc::Sender<PendingSpan>,
    sampler: Sampler,
    stats: Arc<Stats>,
}

impl Traces {
    /// Starts the exporter task on the current tokio runtime.
    pub fn start(config: TracesConfig, status: StatusHook) -> Result<Traces, Error> {
        let sampler = Sampler::new(config.sampling)?;
        let (tx, rx) = tokio::sync::mpsc::channel(config.queue_size.max(1));
        let stats = Arc::new(Stats::default());
        tokio::spawn(export::run(config, rx, stats.clone(), status));
        Ok(Traces { tx, sampler, stats })
    }

    /// A request `container_id` made to `peer` (its actual destination): a span, if the
    /// protocol is traced, the sampler takes it and the queue has room. Never blocks.
    pub fn offer(&self, container_id: &str, peer: SocketAddr, request: &Request) {
        if !sonde_l7::detail::traced(request.protocol) {
            return;
        }
        if !span::has_span(request.protocol, request.detail.as_deref()) {
            self.stats.without_detail.fetch_add(1, Relaxed);
            return;
        }
        if !self.sampler.sample() {
            self.stats.sampled_out.fetch_add(1, Relaxed);
            return;
        }
        let pending = PendingSpan {
            container_id: container_id.into(),
            peer,
            protocol: request.protocol,
            status: request.status,
            start_ns: request.start_ns,
            duration_ns: request.duration_ns,
            detail: request.detail.clone(),
        };
        match self.tx.try_send(pending) {
            Ok(()) => {
                self.stats.queued.fetch_add(1, Relaxed);
            }
            Err(_) => {
                self.stats.dropped_queue_full.fetch_add(1, Relaxed);
            }
        }
        self.stats.queue_length.store(
            (self.tx.max_capacity() - self.tx.capacity()) as u64,
            Relaxed,
        );
    }

    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// A front with no exporter behind it (tests: the queue is the receiver's).
    #[cfg(test)]
    fn detached(sampling: f64, queue: usize) -> (Traces, tokio::sync::mpsc::Receiver<PendingSpan>) {
        let (tx, rx) = tokio::sync::mpsc::channel(queue);
        let t = Traces {
            tx,
            sampler: Sampler::new(sampling).unwrap_or(Sampler { rate: 1.0 }),
            stats: Arc::default(),
        };
        (t, rx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn endpoints_and_ratios() {
        assert_eq!(
            parse_endpoint("--traces-endpoint", "http://127.0.0.1:4318/v1/traces")
                .unwrap()
                .path(),
            "/v1/traces"
        );
        assert!(parse_endpoint("f", "https://x/v1/traces").is_err());
        assert!(parse_endpoint("f", "x:4318").is_err());
        assert_eq!(parse_sampling("0.25"), Ok(0.25));
        assert!(parse_sampling("NaN").is_err());
        assert!(parse_sampling("1.5").is_err());
        assert!(parse_sampling("-0.1").is_err());
    }

    #[test]
    fn sampler_extremes_and_ratio() {
        let all = Sampler::new(1.0).unwrap();
        let none = Sampler::new(0.0).unwrap();
        assert!((0..10_000).all(|_| all.sample()));
        assert!((0..10_000).all(|_| !none.sample()));
        fastrand::seed(7);
        let quarter = Sampler::new(0.25).unwrap();
        let n = (0..100_000).filter(|_| quarter.sample()).count();
        // 25,000 expected; 6 standard deviations (~137 each) either way.
        assert!((24_100..=25_900).contains(&n), "{n}");
        assert!(Sampler::new(f64::NAN).is_err());
    }

    fn http_request(detail: bool) -> Request {
        Request {
            protocol: sonde_l7::Protocol::Http,
            status: sonde_l7::Status::Http(200),
            duration_ns: 1_000,
            method: sonde_l7::Method::Unknown,
            dns: None,
            start_ns: 5,
            detail: detail.then(|| {
                Box::new(sonde_l7::Detail::Http {
                    method: "GET".into(),
                    path: "/".into(),
                    scheme: None,
                })
            }),
        }
    }

    #[test]
    fn the_queue_is_bounded_and_drops_are_counted() {
        let peer: SocketAddr = "10.0.0.1:80".parse().unwrap();
        let (t, mut rx) = Traces::detached(1.0, 8);
        for _ in 0..20 {
            t.offer("/docker/a", peer, &http_request(true));
        }
        let s = t.stats();
        assert_eq!(s.queued.load(Relaxed), 8);
        assert_eq!(s.dropped_queue_full.load(Relaxed), 12);
        assert_eq!(s.queue_length.load(Relaxed), 8);
        let mut n = 0;
        while rx.try_recv().is_ok() {
            n += 1;
        }
        assert_eq!(n, 8);
        // Room again.
        t.offer("/docker/a", peer, &http_request(true));
        assert_eq!(s.queued.load(Relaxed), 9);
        // No text seen: no span (coroot's rule), counted apart.
        t.offer("/docker/a", peer, &http_request(false));
        assert_eq!(s.without_detail.load(Relaxed), 1);
        // DNS is not traced at all.
        let mut dns = http_request(true);
        dns.protocol = sonde_l7::Protocol::Dns;
        t.offer("/docker/a", peer, &dns);
        assert_eq!(s.queued.load(Relaxed), 9);
    }

    #[test]
    fn sampling_zero_queues_nothing() {
        let peer: SocketAddr = "10.0.0.1:80".parse().unwrap();
        let (t, mut rx) = Traces::detached(0.0, 8);
        for _ in 0..5 {
            t.offer("/docker/a", peer, &http_request(true));
        }
        assert_eq!(t.stats().sampled_out.load(Relaxed), 5);
        assert_eq!(t.stats().queued.load(Relaxed), 0);
        assert!(rx.try_recv().is_err());
    }
}
