//! Push delivery of the agent's metrics, for users without a Prometheus that scrapes the node:
//! Prometheus remote write (coroot-node-agent's `--metrics-endpoint`) and OTLP metrics over
//! HTTP. Every `--scrape-interval` the agent's metrics are gathered once, encoded for each
//! endpoint and written to that endpoint's bounded on-disk spool ([`spool`]); a sender per
//! endpoint POSTs the spooled batches oldest first, deletes each once the receiver accepted
//! it, and retries with exponential backoff while the receiver is down. So nothing is lost
//! across an outage (or an agent restart) shorter than the spool, and the receiver gets the
//! batches in order (Prometheus refuses out-of-order samples).
//!
//! This crate knows nothing of the registry: it gets a [`Gather`] closure returning metric
//! families, and exposes its counters in [`TargetStats`] for the binary to render.

pub mod otlp;
pub mod remote_write;
mod sender;
pub mod spool;

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus::proto::MetricFamily;

/// Errors of this crate; all are start-up or per-batch errors, none is fatal to the agent.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid {flag} {url:?}: {reason}")]
    Endpoint {
        flag: &'static str,
        url: String,
        reason: String,
    },
    #[error("cannot use the push spool at {0} (--wal-dir)")]
    Spool(PathBuf, #[source] std::io::Error),
    #[error("snappy compression failed")]
    Snappy(#[source] snap::Error),
    #[error("gzip compression failed")]
    Compress(#[source] std::io::Error),
}

/// The wire protocol of an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    RemoteWrite,
    Otlp,
}

impl Protocol {
    /// The `protocol` label value and spool directory name.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::RemoteWrite => "remote_write",
            Protocol::Otlp => "otlp",
        }
    }
}

/// One push endpoint: `http://host:port/path`.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub protocol: Protocol,
    pub uri: hyper::Uri,
}

impl Endpoint {
    /// Parses and checks an endpoint URL; `flag` names the flag in the error.
    ///
    /// Only `http://` is accepted: the agent carries no TLS stack (it would need a C toolchain
    /// for ring or aws-lc, and `cargo build` must need only Rust). Put a TLS-terminating proxy
    /// (a sidecar, or the collector's plain HTTP port) in between.
    pub fn parse(protocol: Protocol, flag: &'static str, url: &str) -> Result<Endpoint, Error> {
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
        Ok(Endpoint { protocol, uri })
    }
}

/// Push settings (coroot-node-agent's flags: `--metrics-endpoint`, `--scrape-interval`,
/// `--wal-dir`, `--max-spool-size`, `--api-key`).
#[derive(Debug, Clone)]
pub struct PushConfig {
    pub endpoints: Vec<Endpoint>,
    /// How often the metrics are gathered and spooled.
    pub interval: Duration,
    /// Each endpoint spools under `<wal_dir>/<protocol>/`.
    pub wal_dir: PathBuf,
    /// Bound on each endpoint's spool, in bytes.
    pub max_spool_size: u64,
    /// Headers sent with every request (e.g. `X-API-Key`).
    pub headers: Vec<(String, String)>,
    /// Labels added to every series (remote write) or to the resource (OTLP), e.g. instance.
    pub labels: Vec<(String, String)>,
    pub retry_min: Duration,
    pub retry_max: Duration,
    /// Bound on one request.
    pub timeout: Duration,
}

/// One gather as the encoders see it.
#[derive(Debug)]
pub struct Batch<'a> {
    pub families: &'a [MetricFamily],
    pub timestamp_ms: i64,
    pub labels: &'a [(String, String)],
}

/// Counters of one endpoint, rendered by the binary as `sonde_push_*{protocol}`.
#[derive(Debug, Default)]
pub struct TargetStats {
    /// Batches gathered and written to the spool.
    pub batches_spooled: AtomicU64,
    /// Samples (remote write series samples, OTLP data points) the receiver accepted.
    pub samples_sent: AtomicU64,
    /// Requests that failed and will be retried (network errors, timeouts, 5xx, 429).
    pub send_failures: AtomicU64,
    /// Batches the receiver refused for good (4xx other than 429): deleted, not retried.
    pub batches_rejected: AtomicU64,
    /// Batches deleted unsent because the spool was full (or one batch alone exceeded it).
    pub batches_dropped: AtomicU64,
    /// Samples in the dropped and rejected batches.
    pub samples_dropped: AtomicU64,
    /// Gathers that could not be encoded or spooled (disk full, permissions).
    pub spool_errors: AtomicU64,
    /// Current spool size.
    pub spool_bytes: AtomicU64,
    pub spool_batches: AtomicU64,
}

/// Returns the agent's metric families (blocking: may read files).
pub type Gather = Arc<dyn Fn() -> Vec<MetricFamily> + Send + Sync>;

/// Told whether an endpoint is delivering (`Ok`) or why not, on every change of outcome.
pub type StatusHook = Arc<dyn Fn(Protocol, Result<(), String>) + Send + Sync>;

/// The running push delivery: one entry per endpoint.
#[derive(Debug, Clone)]
pub struct Push {
    pub targets: Vec<(Protocol, Arc<TargetStats>)>,
}

struct Target {
    endpoint: Endpoint,
    /// Whether the last gather could not be spooled (logged once per change, not per batch).
    spool_failing: std::sync::atomic::AtomicBool,
    spool: Arc<Mutex<spool::Spool>>,
    stats: Arc<TargetStats>,
    wake: Arc<tokio::sync::Notify>,
}

/// Opens every endpoint's spool and starts the gather loop and one sender per endpoint on the
/// current tokio runtime. Fails only when a spool directory cannot be used.
pub fn start(config: PushConfig, gather: Gather, status: StatusHook) -> Result<Push, Error> {
    let start_unix_nano = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut targets = Vec::new();
    for endpoint in &config.endpoints {
        let dir = config.wal_dir.join(endpoint.protocol.as_str());
        let spool = spool::Spool::open(&dir, config.max_spool_size)?;
        let stats = Arc::new(TargetStats::default());
        sender::publish_spool(&stats, &spool);
        if !spool.is_empty() {
            tracing::info!(
                protocol = endpoint.protocol.as_str(),
                batches = spool.len(),
                bytes = spool.bytes(),
                "Resuming push delivery of batches spooled by a previous run"
            );
        }
        targets.push(Arc::new(Target {
            endpoint: endpoint.clone(),
            spool_failing: std::sync::atomic::AtomicBool::new(false),
            spool: Arc::new(Mutex::new(spool)),
            stats,
            wake: Arc::new(tokio::sync::Notify::new()),
        }));
    }
    let config = Arc::new(config);
    for t in &targets {
        tokio::spawn(sender::send_loop(t.clone(), config.clone(), status.clone()));
    }
    let push = Push {
        targets: targets
            .iter()
            .map(|t| (t.endpoint.protocol, t.stats.clone()))
            .collect(),
    };
    tokio::spawn(sender::gather_loop(
        targets,
        config,
        gather,
        start_unix_nano,
    ));
    Ok(push)
}

/// Parses a size like `500MB`, `1GiB`, `64k` or `1048576` (bytes); decimal (KB, MB, GB) and
/// binary (KiB, MiB, GiB) units, case-insensitive, as coroot-node-agent's `--max-spool-size`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: f64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?}; use e.g. 500MB, 1GiB"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "ki" | "kib" => 1024.0,
        "mi" | "mib" => 1024.0 * 1024.0,
        "gi" | "gib" => 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "unknown size unit {other:?} in {s:?}; use B, KB, MB, GB, KiB, MiB, GiB"
            ));
        }
    };
    let bytes = num * mult;
    if !(1.0..=1e15).contains(&bytes) {
        return Err(format!("size {s:?} out of range"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn endpoints() {
        let e = Endpoint::parse(
            Protocol::RemoteWrite,
            "--metrics-endpoint",
            "http://127.0.0.1:9090/api/v1/write",
        )
        .unwrap();
        assert_eq!(e.uri.port_u16(), Some(9090));
        let err = Endpoint::parse(Protocol::Otlp, "--otlp-endpoint", "https://x/v1/metrics")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--otlp-endpoint") && err.contains("https"),
            "{err}"
        );
        assert!(Endpoint::parse(Protocol::Otlp, "f", "ftp://x/").is_err());
        assert!(Endpoint::parse(Protocol::Otlp, "f", "not a url").is_err());
        assert!(Endpoint::parse(Protocol::Otlp, "f", "/just/a/path").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("500MB"), Ok(500_000_000));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("64k"), Ok(64_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size(" 1.5 mb "), Ok(1_500_000));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("10XB").is_err());
        assert!(parse_size("0").is_err());
    }
}
