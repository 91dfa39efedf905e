//! Command line: every flag is also an environment variable, with coroot-node-agent's names
//! where it has the same setting. Values are validated here, so a bad one fails at start with a
//! message naming the flag; `Cli::into_config` converts them once into typed configs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use regex::Regex;

/// sonde: node observability agent (coroot-node-agent compatible metrics).
#[derive(Debug, Parser)]
#[command(name = "sonde", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub agent: AgentArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent (the default when no subcommand is given).
    Run,
    /// Mine a log into patterns, as the agent does for container logs: prints each pattern
    /// with its count, level and a sample, most frequent first.
    Patterns {
        /// The log file; standard input when absent.
        file: Option<PathBuf>,
        /// Treat every input line as one message (no multi-line joining) and print, for each
        /// input line in order, its pattern hash and nothing else.
        #[arg(long)]
        per_line: bool,
    },
    /// Live terminal view of the local agent's /metrics: containers by CPU and memory, and per
    /// container its upstreams with connects, bytes/s and packets/s. Keys are listed at the
    /// bottom of the screen.
    Top {
        /// The agent's metrics URL. Default: the --listen address (0.0.0.0 read as 127.0.0.1).
        #[arg(long, env = "SONDE_URL")]
        url: Option<String>,
        /// Time between refreshes.
        #[arg(long, env = "SONDE_TOP_REFRESH", default_value = "1s", value_parser = parse_interval)]
        refresh: Duration,
    },
    /// Append node, container and per-process samples (CPU, memory, I/O, network) of the
    /// local agent to a CSV file every interval, until SIGINT or SIGTERM.
    Record {
        /// The agent's metrics URL. Default: the --listen address (0.0.0.0 read as 127.0.0.1).
        #[arg(long, env = "SONDE_URL")]
        url: Option<String>,
        /// Time between samples.
        #[arg(long, env = "SONDE_RECORD_INTERVAL", default_value = "5s", value_parser = parse_interval)]
        interval: Duration,
        /// The CSV file: created with a header, or appended to when it has the same header.
        #[arg(long, env = "SONDE_RECORD_OUTPUT")]
        output: PathBuf,
        /// Only containers whose container_id matches (and processes whose cgroup matches).
        #[arg(long, env = "SONDE_RECORD_CONTAINERS", value_parser = parse_regex)]
        containers: Option<Regex>,
    },
}

/// Log verbosity.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Address to serve /metrics and /healthz on.
    #[arg(long, env = "LISTEN", default_value = "0.0.0.0:10300", global = true)]
    pub listen: SocketAddr,

    /// Where the host's cgroup filesystem is mounted.
    #[arg(
        long,
        env = "CGROUPFS_ROOT",
        default_value = "/sys/fs/cgroup",
        global = true
    )]
    pub cgroupfs_root: PathBuf,

    /// Where the host's /proc is mounted (point it at the host's /proc when running in a container).
    #[arg(long, env = "PROCFS_ROOT", default_value = "/proc", global = true)]
    pub procfs_root: PathBuf,

    /// Where the host's /sys is mounted.
    #[arg(long, env = "SYSFS_ROOT", default_value = "/sys", global = true)]
    pub sysfs_root: PathBuf,

    /// Only export containers whose container_id matches one of these regexes (repeatable;
    /// newline-separated in the environment variable).
    #[arg(long, env = "CONTAINER_ALLOWLIST", value_parser = parse_regex, value_delimiter = '\n', global = true)]
    pub container_allowlist: Vec<Regex>,

    /// Never export containers whose container_id matches one of these regexes (repeatable;
    /// newline-separated in the environment variable).
    #[arg(long, env = "CONTAINER_DENYLIST", value_parser = parse_regex, value_delimiter = '\n', global = true)]
    pub container_denylist: Vec<Regex>,

    /// Export a container only once it has been running this long (e.g. 30s, 2m, 0s).
    #[arg(long, env = "MIN_CONTAINER_AGE", default_value = "30s", value_parser = parse_duration, global = true)]
    pub min_container_age: Duration,

    /// Log verbosity.
    #[arg(
        long,
        env = "LOG_LEVEL",
        default_value = "info",
        value_enum,
        global = true
    )]
    pub log_level: LogLevel,

    /// Docker Engine API socket. Default: the host's /run/docker.sock, reached through pid 1's
    /// root in --procfs-root (so it works from a container given the host's /proc).
    #[arg(long, env = "DOCKER_SOCKET", global = true)]
    pub docker_socket: Option<PathBuf>,

    /// containerd API socket. Default: the first that exists of the host's
    /// /run/containerd/containerd.sock, /run/k3s/containerd/containerd.sock,
    /// /run/k0s/containerd.sock, /var/snap/microk8s/common/run/containerd.sock.
    #[arg(long, env = "CONTAINERD_SOCKET", global = true)]
    pub containerd_socket: Option<PathBuf>,

    /// CRI-O API socket. Default: the host's /var/run/crio/crio.sock.
    #[arg(long, env = "CRIO_SOCKET", global = true)]
    pub crio_socket: Option<PathBuf>,

    /// Bound on every container-runtime API call.
    #[arg(long, env = "RUNTIME_TIMEOUT", default_value = "5s", value_parser = parse_duration, hide = true, global = true)]
    pub runtime_timeout: Duration,

    /// Period of the /proc reconciliation scan.
    #[arg(long, env = "PROC_SCAN_INTERVAL", default_value = "10s", value_parser = parse_duration, hide = true, global = true)]
    pub proc_scan_interval: Duration,

    /// How long a container whose processes are all gone is kept (a restart within it is the
    /// same container) before its series vanish.
    #[arg(long, env = "CONTAINER_GC_GRACE", default_value = "30s", value_parser = parse_duration, hide = true, global = true)]
    pub container_gc_grace: Duration,

    /// Capacity of the registry's event queue; events beyond it are dropped and counted.
    #[arg(
        long,
        env = "EVENT_QUEUE_SIZE",
        default_value_t = 65_536,
        hide = true,
        global = true
    )]
    pub event_queue_size: usize,
    // --- Cloud metadata (coroot's flags) ---
    /// Cloud provider, when DMI does not tell it (e.g. a private cloud); overrides detection.
    #[arg(long, env = "PROVIDER", global = true)]
    pub provider: Option<String>,

    /// Region label of node_cloud_info; overrides the metadata service.
    #[arg(long, env = "REGION", global = true)]
    pub region: Option<String>,

    /// Availability zone label of node_cloud_info; use the provider's own zone names.
    #[arg(long, env = "AVAILABILITY_ZONE", global = true)]
    pub availability_zone: Option<String>,

    /// Instance type label of node_cloud_info.
    #[arg(long, env = "INSTANCE_TYPE", global = true)]
    pub instance_type: Option<String>,

    /// Instance life cycle label of node_cloud_info (e.g. on-demand, spot, preemptible).
    #[arg(long, env = "INSTANCE_LIFE_CYCLE", global = true)]
    pub instance_life_cycle: Option<String>,

    /// Base URL of every cloud metadata service (tests point it at a local mock).
    #[arg(
        long,
        env = "SONDE_CLOUD_METADATA_BASE_URL",
        hide = true,
        global = true
    )]
    pub cloud_metadata_base_url: Option<String>,

    /// Where DMI is read from (`<root>/sys/class/dmi/id`); default: the parent of --sysfs-root.
    #[arg(long, env = "SONDE_CLOUD_DMI_ROOT", hide = true, global = true)]
    pub cloud_dmi_root: Option<PathBuf>,

    /// Bound on one cloud metadata fetch.
    #[arg(long, env = "SONDE_CLOUD_METADATA_TIMEOUT", default_value = "5s", value_parser = parse_duration, hide = true, global = true)]
    pub cloud_metadata_timeout: Duration,

    /// Time between cloud metadata refreshes (spot life cycle can change).
    #[arg(long, env = "SONDE_CLOUD_METADATA_REFRESH", default_value = "1h", value_parser = parse_duration, hide = true, global = true)]
    pub cloud_metadata_refresh: Duration,

    // --- eBPF tracer ---
    /// Public networks (CIDRs) whose addresses count as TCP destinations; private ranges are
    /// always tracked. Repeatable (comma- or newline-separated in the env var).
    #[arg(long, env = "TRACK_PUBLIC_NETWORK", value_parser = parse_cidr, value_delimiter = ',', default_value = "0.0.0.0/0", global = true)]
    pub track_public_network: Vec<sonde_tracer::filter::Cidr>,

    /// Ports of these ranges are ephemeral (client) ports, never destinations or listeners
    /// (gRPC's 50051 always counts). Repeatable, or comma-separated: 32768-60999,10000-10100.
    #[arg(long, env = "EPHEMERAL_PORT_RANGE", default_value = "32768-60999", value_parser = parse_ports, value_delimiter = ',', global = true)]
    pub ephemeral_port_range: Vec<std::ops::RangeInclusive<u16>>,

    /// Do not load the eBPF tracer (no TCP, OOM and restart metrics; discovery polls /proc).
    #[arg(long, env = "DISABLE_EBPF", global = true)]
    pub disable_ebpf: bool,

    /// Do not resolve NAT from conntrack: actual_destination is then the dialled destination
    /// (Service IPs, published ports and DNAT rules are not followed to the real upstream).
    #[arg(long, env = "DISABLE_CONNTRACK", global = true)]
    pub disable_conntrack: bool,

    /// Most translated (DNAT) connections kept for NAT resolution; the oldest are dropped
    /// beyond it (sonde_conntrack_entries_dropped_total).
    #[arg(long, env = "CONNTRACK_TABLE_SIZE", default_value_t = 65_536, value_parser = clap::value_parser!(u32).range(1..=16_777_216), global = true)]
    pub conntrack_table_size: u32,

    // --- Application layer (L7) ---
    /// Do not trace application protocols (HTTP, gRPC, Postgres, Redis, DNS ...): no
    /// container_<protocol>_* request metrics, no cost on reads and writes.
    #[arg(long, env = "DISABLE_L7_TRACING", global = true)]
    pub disable_l7_tracing: bool,

    /// Skip HTTP requests whose path matches one of these glob patterns (coroot's: `/health`
    /// is that path only, `/health*` every path starting with it): not counted. Repeatable,
    /// or comma-separated.
    #[arg(
        long,
        env = "EXCLUDE_HTTP_REQUESTS_BY_PATH",
        value_delimiter = ',',
        global = true
    )]
    pub exclude_http_requests_by_path: Vec<String>,

    /// Most DNS names a container gets its own `domain` label for; further names are
    /// counted under `~other`.
    #[arg(
        long,
        env = "MAX_FQDNS_PER_CONTAINER",
        default_value_t = 50,
        global = true
    )]
    pub max_fqdns_per_container: usize,

    // --- Logs ---
    /// Patterns kept per container, log source and level (warning and above); new patterns
    /// beyond it count under one "unclassified" series.
    #[arg(long, env = "LOG_PATTERNS_PER_CONTAINER", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=100_000), global = true)]
    pub log_patterns_per_container: u32,

    /// Longest label value (log samples are cut to it, on a character boundary).
    #[arg(long, env = "MAX_LABEL_LENGTH", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(16..=1_048_576), global = true)]
    pub max_label_length: u32,

    /// Do not read container logs (no container_log_messages_total).
    #[arg(long, env = "DISABLE_LOG_PARSING", global = true)]
    pub disable_log_parsing: bool,

    // --- Delay accounting ---
    /// Turn on kernel.task_delayacct at start when it is off (kernels >= 5.14 default to off;
    /// without it disk delay reads zero).
    #[arg(long, env = "ENABLE_DELAY_ACCOUNTING", global = true)]
    pub enable_delay_accounting: bool,

    // --- Container resources ---
    /// On cgroup v1 blkio with Linux >= 6.10, add a rule with no limit for each disk a container
    /// volume lives on, so the kernel counts per-container disk I/O there (docs/cgroup-node.md).
    #[arg(long, env = "ENABLE_BLKIO_ACCOUNTING", global = true)]
    pub enable_blkio_accounting: bool,

    /// Do not ping the containers' upstreams (no container_net_latency_seconds).
    #[arg(long, env = "DISABLE_PINGER", global = true)]
    pub disable_pinger: bool,

    /// Do not load NVML (no node_gpu_* or container_resources_gpu_* metrics).
    #[arg(long, env = "DISABLE_GPU_MONITORING", global = true)]
    pub disable_gpu_monitoring: bool,

    /// Path of libnvidia-ml.so.1, instead of the NVIDIA driver's usual places under the host root.
    #[arg(long, env = "NVML_LIBRARY", global = true)]
    pub nvml_library: Option<PathBuf>,
    // --- Push delivery (coroot's flags, plus OTLP) ---
    /// Push metrics by Prometheus remote write to this URL (e.g.
    /// http://prometheus:9090/api/v1/write), besides serving /metrics.
    #[arg(long, env = "METRICS_ENDPOINT", global = true)]
    pub metrics_endpoint: Option<String>,

    /// Base URL of a Coroot collector: sets --metrics-endpoint to <url>/v1/metrics when it is
    /// not given.
    #[arg(long, env = "COLLECTOR_ENDPOINT", global = true)]
    pub collector_endpoint: Option<String>,

    /// Push metrics as OTLP/HTTP protobuf to this URL (e.g. http://collector:4318/v1/metrics).
    #[arg(long, env = "OTLP_METRICS_ENDPOINT", global = true)]
    pub otlp_metrics_endpoint: Option<String>,

    /// Sent as the X-API-Key header with every push (Coroot's project key).
    #[arg(long, env = "API_KEY", global = true, hide_env_values = true)]
    pub api_key: Option<String>,

    /// How often metrics are gathered for push delivery.
    #[arg(long, env = "SCRAPE_INTERVAL", default_value = "15s", value_parser = parse_push_interval, global = true)]
    pub scrape_interval: Duration,

    /// Where push delivery spools batches the receiver has not taken yet (kept across restarts).
    #[arg(long, env = "WAL_DIR", default_value = "/tmp/sonde", global = true)]
    pub wal_dir: PathBuf,

    /// Bound on each push endpoint's spool (e.g. 500MB, 1GiB); the oldest batches go first.
    #[arg(long, env = "MAX_SPOOL_SIZE", default_value = "500MB", value_parser = sonde_push::parse_size, global = true)]
    pub max_spool_size: u64,

    /// First retry delay after a failed push; doubles up to --push-retry-max.
    #[arg(long, env = "SONDE_PUSH_RETRY_MIN", default_value = "1s", value_parser = parse_duration, hide = true, global = true)]
    pub push_retry_min: Duration,

    /// Longest retry delay of push delivery.
    #[arg(long, env = "SONDE_PUSH_RETRY_MAX", default_value = "1m", value_parser = parse_duration, hide = true, global = true)]
    pub push_retry_max: Duration,

    /// Bound on one push request.
    #[arg(long, env = "SONDE_PUSH_TIMEOUT", default_value = "30s", value_parser = parse_duration, hide = true, global = true)]
    pub push_timeout: Duration,

    // --- Traces (coroot's flags; docs/traces.md) ---
    /// Send a span for every request a container makes over HTTP, HTTP/2, gRPC, Postgres,
    /// MySQL, MongoDB, Memcached, Redis, ClickHouse or ZooKeeper to this OTLP/HTTP URL (e.g.
    /// http://collector:4318/v1/traces). Default with --collector-endpoint: <url>/v1/traces.
    #[arg(long, env = "TRACES_ENDPOINT", global = true)]
    pub traces_endpoint: Option<String>,

    /// The share of requests that become spans, 0.0 to 1.0 (each request drawn apart).
    #[arg(long, env = "TRACES_SAMPLING", default_value = "1.0", value_parser = sonde_traces::parse_sampling, global = true)]
    pub traces_sampling: f64,

    /// Spans waiting for export at most; beyond it (a slow or down collector) new spans
    /// are dropped and counted in sonde_traces_spans_dropped_total{reason="queue_full"}.
    #[arg(long, env = "TRACES_QUEUE_SIZE", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..=1_048_576), global = true)]
    pub traces_queue_size: u32,

    /// How long a batch of spans waits to fill (up to 512 spans) before it is sent.
    #[arg(long, env = "SONDE_TRACES_BATCH_DELAY", default_value = "5s", value_parser = parse_interval, hide = true, global = true)]
    pub traces_batch_delay: Duration,

    /// First retry delay after a failed export; doubles up to --traces-retry-max.
    #[arg(long, env = "SONDE_TRACES_RETRY_MIN", default_value = "1s", value_parser = parse_duration, hide = true, global = true)]
    pub traces_retry_min: Duration,

    /// Longest retry delay of trace export.
    #[arg(long, env = "SONDE_TRACES_RETRY_MAX", default_value = "30s", value_parser = parse_duration, hide = true, global = true)]
    pub traces_retry_max: Duration,

    /// Exports of one batch before it is dropped (sonde_traces_spans_dropped_total{reason="export_failed"}).
    #[arg(long, env = "SONDE_TRACES_MAX_ATTEMPTS", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000), hide = true, global = true)]
    pub traces_max_attempts: u32,
}

fn parse_push_interval(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_millis(100) {
        return Err(format!("interval {s:?} is too short; use at least 100ms"));
    }
    Ok(d)
}

/// A duration of at least 10 ms (a zero interval would spin).
fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_millis(10) {
        return Err(format!("interval {s:?} is too short; use e.g. 1s or 5s"));
    }
    Ok(d)
}

fn parse_regex(s: &str) -> Result<Regex, String> {
    Regex::new(s).map_err(|e| format!("invalid regex {s:?}: {e}"))
}

fn parse_cidr(s: &str) -> Result<sonde_tracer::filter::Cidr, String> {
    s.trim()
        .parse()
        .map_err(|e| format!("invalid CIDR {s:?}: {e}"))
}

fn parse_ports(s: &str) -> Result<std::ops::RangeInclusive<u16>, String> {
    sonde_tracer::filter::parse_port_range(s.trim())
        .map_err(|e| format!("invalid port range {s:?} ({e}); use e.g. 32768-60999"))
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("invalid duration {s:?} ({e}); use e.g. 30s, 5m, 1h, 0s"))
}

impl AgentArgs {
    /// Every runtime's socket: the flags, else the defaults under the host root.
    pub fn runtime_sockets(&self) -> sonde_registry::RuntimeSockets {
        let mut sockets = sonde_registry::RuntimeSockets::defaults(&self.host_root());
        if let Some(p) = &self.docker_socket {
            sockets.docker = p.clone();
            sockets.docker_explicit = true;
        }
        if let Some(p) = &self.containerd_socket {
            sockets.containerd = vec![p.clone()];
            sockets.containerd_explicit = true;
        }
        if let Some(p) = &self.crio_socket {
            sockets.crio = p.clone();
            sockets.crio_explicit = true;
        }
        sockets
    }

    /// The host's root filesystem: pid 1's root through --procfs-root when the agent may look
    /// there (it needs CAP_SYS_PTRACE over pid 1), else the agent's own root, where a DaemonSet
    /// mounts the host's /etc/machine-id.
    pub fn host_root(&self) -> PathBuf {
        let through_proc = self.procfs_root.join("1/root");
        if std::fs::read_dir(through_proc.join("etc")).is_ok() {
            through_proc
        } else {
            PathBuf::from("/")
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("sonde").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_match_coroot() {
        let cli = parse(&[]).unwrap();
        assert_eq!(cli.agent.listen.to_string(), "0.0.0.0:10300");
        assert_eq!(cli.agent.cgroupfs_root, PathBuf::from("/sys/fs/cgroup"));
        assert_eq!(cli.agent.min_container_age, Duration::from_secs(30));
        let sockets = cli.agent.runtime_sockets();
        assert!(sockets.docker.ends_with("run/docker.sock"));
        assert!(!sockets.docker_explicit);
        assert_eq!(sockets.containerd.len(), 4);
        assert!(cli.command.is_none());
    }

    #[test]
    fn invalid_values_name_the_flag() {
        let err = parse(&["--container-allowlist", "("])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--container-allowlist"), "{err}");
        let err = parse(&["--min-container-age", "soon"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--min-container-age"), "{err}");
        let err = parse(&["--listen", "nowhere"]).unwrap_err().to_string();
        assert!(err.contains("--listen"), "{err}");
        let err = parse(&["--track-public-network", "10.0.0.0/33"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--track-public-network"), "{err}");
        let err = parse(&["--ephemeral-port-range", "9-1"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--ephemeral-port-range"), "{err}");
        // Several ranges, comma-separated or repeated.
        let a = parse(&["--ephemeral-port-range", "32768-60999,10000-10100"])
            .unwrap()
            .agent;
        assert_eq!(a.ephemeral_port_range, vec![32768..=60999, 10000..=10100]);
        let a = parse(&[
            "--ephemeral-port-range",
            "1-2",
            "--ephemeral-port-range",
            "5-6",
        ])
        .unwrap()
        .agent;
        assert_eq!(a.ephemeral_port_range, vec![1..=2, 5..=6]);
        let err = parse(&["--log-level", "loud"]).unwrap_err().to_string();
        assert!(err.contains("--log-level"), "{err}");
        let err = parse(&["--max-spool-size", "lots"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--max-spool-size"), "{err}");
        let err = parse(&["--scrape-interval", "0s"]).unwrap_err().to_string();
        assert!(err.contains("--scrape-interval"), "{err}");
        assert!(parse(&["--no-such-flag"]).is_err());
    }

    #[test]
    fn patterns_subcommand() {
        let cli = parse(&["patterns", "--per-line", "app.log"]).unwrap();
        match cli.command {
            Some(Command::Patterns { file, per_line }) => {
                assert_eq!(file, Some(PathBuf::from("app.log")));
                assert!(per_line);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse(&["patterns"]).unwrap().command,
            Some(Command::Patterns {
                file: None,
                per_line: false
            })
        ));
    }

    #[test]
    fn top_and_record_subcommands() {
        match parse(&["top"]).unwrap().command {
            Some(Command::Top { url: None, refresh }) => {
                assert_eq!(refresh, Duration::from_secs(1))
            }
            other => panic!("{other:?}"),
        }
        let cli = parse(&[
            "record",
            "--interval",
            "2s",
            "--output",
            "r.csv",
            "--containers",
            "^/docker/",
            "--url",
            "127.0.0.1:9",
        ])
        .unwrap();
        match cli.command {
            Some(Command::Record {
                url,
                interval,
                output,
                containers,
            }) => {
                assert_eq!(url.as_deref(), Some("127.0.0.1:9"));
                assert_eq!(interval, Duration::from_secs(2));
                assert_eq!(output, PathBuf::from("r.csv"));
                assert!(containers.unwrap().is_match("/docker/abc"));
            }
            other => panic!("{other:?}"),
        }
        assert!(parse(&["record"]).is_err(), "--output is required");
        let err = parse(&["record", "--output", "x", "--interval", "0s"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--interval"), "{err}");
        let err = parse(&["record", "--output", "x", "--containers", "("])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--containers"), "{err}");
        // The agent's flags still work with and without a subcommand.
        assert!(parse(&["--listen", "127.0.0.1:1", "top"]).is_ok());
        assert!(
            parse(&["--listen", "127.0.0.1:1"])
                .unwrap()
                .command
                .is_none()
        );
    }

    #[test]
    fn lists_and_durations_parse() {
        let cli = parse(&[
            "--container-allowlist",
            "^/docker/",
            "--container-allowlist",
            "^/k8s/",
            "--min-container-age",
            "0s",
        ])
        .unwrap();
        assert_eq!(cli.agent.container_allowlist.len(), 2);
        assert_eq!(cli.agent.min_container_age, Duration::ZERO);
    }
}
