//! The agent's own `sonde_*` metrics rendered from subsystem state, and push delivery's.

use super::{Kind, MetricDef};

// Self-metrics that are rendered from subsystem state at scrape time.
// scrape-condition: a cloud provider was detected (absent on machines that query no metadata service)
metric!(
    SONDE_CLOUD_METADATA_ERRORS,
    "sonde_cloud_metadata_errors_total",
    Counter,
    "Cloud metadata fetches that failed, by provider"
);
metric!(
    SONDE_EBPF_EVENTS_LOST,
    "sonde_ebpf_events_lost_total",
    Counter,
    "eBPF events lost in the kernel because the ring buffer was full, by program"
);
metric!(
    SONDE_EBPF_DECODE_ERRORS,
    "sonde_ebpf_decode_errors_total",
    Counter,
    "eBPF ring buffer records that could not be decoded"
);
metric!(
    SONDE_EVENTS_UNATTRIBUTED,
    "sonde_events_unattributed_total",
    Counter,
    "Kernel events of processes outside any tracked container (or gone before they were placed)"
);
metric!(
    SONDE_TCP_CONNECTIONS_TRACKED,
    "sonde_tcp_connections_tracked",
    Gauge,
    "Open outbound TCP connections in the tracer's table"
);
metric!(
    SONDE_TCP_TABLE_OVERFLOW,
    "sonde_tcp_connection_table_overflow_total",
    Counter,
    "Open connections a scrape could not track because the connection table was full, once per scrape (each is still counted, with its bytes, at close)"
);
metric!(
    SONDE_TCP_CONNECTIONS_STALE,
    "sonde_tcp_connections_stale_total",
    Counter,
    "Tracked connections dropped after 60 s gone from the kernel's map without a close record (the kernel skipped that run; see sonde_ebpf_events_lost_total)"
);
metric!(
    SONDE_NEW_PROCESSES_DROPPED,
    "sonde_new_processes_dropped_total",
    Counter,
    "New processes not looked up at once because the queue was full (the /proc scan finds them)"
);
metric!(
    SONDE_LOG_LINES,
    "sonde_log_lines_total",
    Counter,
    "Log lines read from every source"
);
metric!(
    SONDE_LOG_BYTES,
    "sonde_log_bytes_total",
    Counter,
    "Log bytes read from every source"
);
metric!(
    SONDE_LOG_DECODE_ERRORS,
    "sonde_log_decode_errors_total",
    Counter,
    "Log lines that could not be decoded (malformed Docker JSON or CRI lines)"
);
metric!(
    SONDE_LOG_TRUNCATED_LINES,
    "sonde_log_truncated_lines_total",
    Counter,
    "Log lines longer than the limit, cut"
);
metric!(
    SONDE_LOG_READ_ERRORS,
    "sonde_log_read_errors_total",
    Counter,
    "Failed reads of log files and the journal"
);
metric!(
    SONDE_LOG_SKIPPED_SOURCES,
    "sonde_log_skipped_sources_total",
    Counter,
    "Log sources not followed because a limit (open files, sources per container) was reached"
);
metric!(
    SONDE_LOG_OPEN_FILES,
    "sonde_log_open_files",
    Gauge,
    "Log files being followed"
);
metric!(
    SONDE_LOG_MEMORY,
    "sonde_log_memory_bytes",
    Gauge,
    "Approximate memory of log pattern counters and readers"
);
metric!(
    SONDE_LOG_ROTATIONS,
    "sonde_log_rotations_total",
    Counter,
    "Log files followed across a rename or re-creation"
);
metric!(
    SONDE_LOG_TRUNCATIONS,
    "sonde_log_truncations_total",
    Counter,
    "Log files found truncated (copytruncate) and read again from the start"
);
metric!(
    SONDE_JOURNAL_ENTRIES,
    "sonde_journal_entries_total",
    Counter,
    "journald entries read"
);
metric!(
    SONDE_JOURNAL_OPEN,
    "sonde_journal_open",
    Gauge,
    "Whether a journal (/run/log/journal or /var/log/journal under the host root) is being read"
);

// Push delivery (crates/push), rendered by the binary; label `protocol` (remote_write, otlp).
// scrape-condition: push delivery is configured (--metrics-endpoint or --otlp-metrics-endpoint)
metric!(
    SONDE_PUSH_BATCHES,
    "sonde_push_batches_total",
    Counter,
    "Gathers encoded and written to the push spool, by protocol"
);
// scrape-condition: push delivery is configured (--metrics-endpoint or --otlp-metrics-endpoint)
metric!(
    SONDE_PUSH_SAMPLES_SENT,
    "sonde_push_samples_sent_total",
    Counter,
    "Samples (OTLP: data points) the push receiver accepted"
);
// scrape-condition: push delivery is configured (--metrics-endpoint or --otlp-metrics-endpoint)
metric!(
    SONDE_PUSH_SEND_FAILURES,
    "sonde_push_send_failures_total",
    Counter,
    "Push requests that failed and are retried (network error, timeout, 5xx, 429)"
);
// scrape-condition: push delivery is configured (--metrics-endpoint or --otlp-metrics-endpoint)
metric!(
    SONDE_PUSH_BATCHES_REJECTED,
    "sonde_push_batches_rejected_total",
    Counter,
    "Spooled batches the receiver refused for good (4xx other than 429), deleted unsent"
);
// scrape-condition: push delivery is configured (--metrics-endpoint or --otlp-metrics-endpoint)
metric!(
    SONDE_PUSH_BATCHES_DROPPED,
    "sonde_push_batches_dropped_total",
    Counter,
    "Spooled batches deleted unsent because the spool reached --max-spool-size"
);
// scrape-condition: push delivery is configured (--metrics-endpoint or --otlp-metrics-endpoint)
metric!(
    SONDE_PUSH_SAMPLES_DROPPED,
    "sonde_push_samples_dropped_total",
    Counter,
    "Samples in batches dropped or rejected"
);
// scrape-condition: push delivery is configured (--metrics-endpoint or --otlp-metrics-endpoint)
metric!(
    SONDE_PUSH_SPOOL_ERRORS,
    "sonde_push_spool_errors_total",
    Counter,
    "Gathers that could not be encoded or written to the spool (disk full, permissions)"
);
// scrape-condition: push delivery is configured (--metrics-endpoint or --otlp-metrics-endpoint)
metric!(
    SONDE_PUSH_SPOOL_BYTES,
    "sonde_push_spool_bytes",
    Gauge,
    "Bytes waiting in the push spool"
);
// scrape-condition: push delivery is configured (--metrics-endpoint or --otlp-metrics-endpoint)
metric!(
    SONDE_PUSH_SPOOL_BATCHES,
    "sonde_push_spool_batches",
    Gauge,
    "Batches waiting in the push spool"
);
metric!(
    SONDE_CONNTRACK_LOOKUPS,
    "sonde_conntrack_lookups_total",
    Counter,
    "NAT lookups of TCP connections by result: hit (translated: actual_destination is the conntrack upstream) or miss (not translated, or unknown: actual_destination = destination)"
);
metric!(
    SONDE_CONNTRACK_ENTRIES,
    "sonde_conntrack_entries",
    Gauge,
    "Translated (DNAT) TCP connections held in the NAT table, including destroyed ones in their grace"
);
metric!(
    SONDE_CONNTRACK_DROPPED,
    "sonde_conntrack_entries_dropped_total",
    Counter,
    "NAT table entries dropped, oldest first, to stay within --conntrack-table-size"
);
metric!(
    SONDE_CONNTRACK_EVENTS,
    "sonde_conntrack_events_total",
    Counter,
    "Conntrack NEW and DESTROY event messages read from the kernel (a socket filter passes only translated connections' events)"
);
metric!(
    SONDE_CONNTRACK_EVENTS_LOST,
    "sonde_conntrack_events_lost_total",
    Counter,
    "Times the kernel dropped conntrack events because the agent's socket buffer was full (ENOBUFS; each is one or more events, followed by a resync dump)"
);
metric!(
    SONDE_CONNTRACK_RESYNCS,
    "sonde_conntrack_resyncs_total",
    Counter,
    "Dumps of the conntrack table made after lost events"
);
metric!(
    SONDE_CONNTRACK_ERRORS,
    "sonde_conntrack_errors_total",
    Counter,
    "Conntrack messages that could not be decoded, and failed resync dumps"
);

// The agent's own counters and gauges, kept by the subsystem that counts them as typed structs
// (sonde_registry::stats, metadata, delays; this crate's scrape stats) and rendered by
// self_metrics.rs. Labels in the order the text shows them (sorted by name).
metric!(
    SONDE_BUILD_INFO,
    "sonde_build_info",
    Gauge,
    "sonde build information"
);
metric!(
    SONDE_SCRAPE_DURATION,
    "sonde_scrape_duration_seconds",
    Histogram,
    "Time spent producing a whole /metrics response: rendering, encoding and compression"
);
metric!(
    SONDE_SUBSYSTEM_UP,
    "sonde_subsystem_up",
    Gauge,
    "Whether a subsystem of the agent is working (1) or degraded (0); the log says why"
);
metric!(
    SONDE_CONTAINERS_TRACKED,
    "sonde_containers_tracked",
    Gauge,
    "Containers the registry tracks, by naming state (named, pending, skipped)"
);
metric!(
    SONDE_PROCESSES_TRACKED,
    "sonde_processes_tracked",
    Gauge,
    "Processes the registry maps to cgroups"
);
metric!(
    SONDE_EVENTS_DROPPED,
    "sonde_events_dropped_total",
    Counter,
    "Events dropped because a bounded queue was full"
);
// scrape-optional: a container runtime was asked about a container (any Docker, containerd or CRI-O container on the node)
metric!(
    SONDE_METADATA_LOOKUPS,
    "sonde_metadata_lookups_total",
    Counter,
    "Container metadata lookups made to container runtimes"
);
// scrape-optional: a runtime lookup failed
metric!(
    SONDE_METADATA_ERRORS,
    "sonde_metadata_errors_total",
    Counter,
    "Container metadata lookups that failed (timeout, refused, garbage, not found)"
);
// scrape-optional: a cgroup file or a container's net/dev could not be read
metric!(
    SONDE_CGROUP_READ_ERRORS,
    "sonde_cgroup_read_errors_total",
    Counter,
    "cgroup files that could not be read or parsed at scrape time"
);
metric!(
    SONDE_NODE_READ_ERRORS,
    "sonde_node_read_errors_total",
    Counter,
    "/proc or /sys files for node metrics that could not be read or parsed"
);
metric!(
    SONDE_PROC_SCAN_ERRORS,
    "sonde_proc_scan_errors_total",
    Counter,
    "Processes whose /proc files could not be read or parsed during discovery"
);
metric!(
    SONDE_TASKSTATS_ERRORS,
    "sonde_taskstats_errors_total",
    Counter,
    "Per-process delay reads (taskstats or schedstat) that failed, other than exited processes"
);
metric!(
    SONDE_TASKSTATS_IMPLAUSIBLE,
    "sonde_taskstats_implausible_total",
    Counter,
    "Process disk-delay readings larger than the process could have waited (a kernel accounting glitch), ignored"
);
