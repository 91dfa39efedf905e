//! The product metric catalogue: every `node_*` and `container_*` metric sonde exports, in one
//! place (coroot-node-agent's metrics.go). Names, types and labels follow ../shared/METRICS.md
//! exactly; docs/metrics.md documents them. It also declares the `sonde_*` self-metrics that
//! are rendered from subsystem state at scrape time; the agent's own long-lived counters
//! (`sonde_build_info`, `sonde_subsystem_up`, ...) are in `self_metrics.rs`.
//!
//! Every entry must be rendered: crates/registry/tests/catalogue_rendered.rs fails on an entry
//! no code names, and tests/tests/agent_node.rs on a `sonde_*` entry missing from a real scrape,
//! unless a `// scrape-condition: <when>` comment right before its `metric!(` says when it
//! appears (then it must be missing from that test's plain agent).

/// Prometheus metric type of a catalogue entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Counter,
    /// Rendered with `Family::add_histogram` (buckets of [`crate::l7::BUCKETS`]).
    Histogram,
}

/// One metric's name, help text and type.
#[derive(Debug)]
pub struct MetricDef {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
}

macro_rules! metric {
    ($id:ident, $name:literal, $kind:ident, $help:literal) => {
        pub static $id: MetricDef = MetricDef {
            name: $name,
            help: $help,
            kind: Kind::$kind,
        };
    };
}

/// The application-layer families.
pub mod l7;

// Node.
metric!(
    NODE_AGENT_INFO,
    "node_agent_info",
    Gauge,
    "Meta information about the agent"
);
metric!(
    NODE_INFO,
    "node_info",
    Gauge,
    "Meta information about the node"
);
metric!(
    NODE_CLOUD_INFO,
    "node_cloud_info",
    Gauge,
    "Meta information about the cloud instance"
);
metric!(
    NODE_UPTIME,
    "node_uptime_seconds",
    Gauge,
    "Uptime of the node in seconds"
);
metric!(
    NODE_CPU_USAGE,
    "node_resources_cpu_usage_seconds_total",
    Counter,
    "The amount of CPU time spent in each mode"
);
metric!(
    NODE_CPU_CORES,
    "node_resources_cpu_logical_cores",
    Gauge,
    "The number of logical CPU cores"
);
metric!(
    NODE_MEM_TOTAL,
    "node_resources_memory_total_bytes",
    Gauge,
    "The total amount of physical memory"
);
metric!(
    NODE_MEM_FREE,
    "node_resources_memory_free_bytes",
    Gauge,
    "The amount of unassigned memory"
);
metric!(
    NODE_MEM_AVAILABLE,
    "node_resources_memory_available_bytes",
    Gauge,
    "The total amount of available memory"
);
metric!(
    NODE_MEM_CACHED,
    "node_resources_memory_cached_bytes",
    Gauge,
    "The amount of memory used as page cache"
);
metric!(
    NODE_DISK_READS,
    "node_resources_disk_reads_total",
    Counter,
    "The total number of reads completed successfully"
);
metric!(
    NODE_DISK_WRITES,
    "node_resources_disk_writes_total",
    Counter,
    "The total number of writes completed successfully"
);
metric!(
    NODE_DISK_READ_BYTES,
    "node_resources_disk_read_bytes_total",
    Counter,
    "The total number of bytes read from the disk"
);
metric!(
    NODE_DISK_WRITTEN_BYTES,
    "node_resources_disk_written_bytes_total",
    Counter,
    "The total number of bytes written to the disk"
);
metric!(
    NODE_DISK_READ_TIME,
    "node_resources_disk_read_time_seconds_total",
    Counter,
    "The total number of seconds spent reading"
);
metric!(
    NODE_DISK_WRITE_TIME,
    "node_resources_disk_write_time_seconds_total",
    Counter,
    "The total number of seconds spent writing"
);
metric!(
    NODE_DISK_IO_TIME,
    "node_resources_disk_io_time_seconds_total",
    Counter,
    "The total number of seconds the disk spent doing I/O"
);
metric!(
    NODE_NET_RX_BYTES,
    "node_net_received_bytes_total",
    Counter,
    "The total number of bytes received"
);
metric!(
    NODE_NET_TX_BYTES,
    "node_net_transmitted_bytes_total",
    Counter,
    "The total number of bytes transmitted"
);
metric!(
    NODE_NET_RX_PACKETS,
    "node_net_received_packets_total",
    Counter,
    "The total number of packets received"
);
metric!(
    NODE_NET_TX_PACKETS,
    "node_net_transmitted_packets_total",
    Counter,
    "The total number of packets transmitted"
);
metric!(
    NODE_NET_UP,
    "node_net_interface_up",
    Gauge,
    "Status of the interface (0:down, 1:up)"
);
metric!(
    NODE_NET_IP,
    "node_net_interface_ip",
    Gauge,
    "IP address assigned to the interface"
);

// Container resources.
metric!(
    CONTAINER_INFO,
    "container_info",
    Gauge,
    "Meta information about the container"
);
metric!(
    CONTAINER_RESTARTS,
    "container_restarts_total",
    Counter,
    "Number of times the container was restarted"
);
metric!(
    CONTAINER_CPU_LIMIT,
    "container_resources_cpu_limit_cores",
    Gauge,
    "CPU limit of the container"
);
metric!(
    CONTAINER_CPU_USAGE,
    "container_resources_cpu_usage_seconds_total",
    Counter,
    "Total CPU time consumed by the container"
);
metric!(
    CONTAINER_CPU_THROTTLED,
    "container_resources_cpu_throttled_seconds_total",
    Counter,
    "Total time duration the container has been throttled"
);
metric!(
    CONTAINER_CPU_DELAY,
    "container_resources_cpu_delay_seconds_total",
    Counter,
    "Total time duration processes of the container have been waiting for a CPU (while being runnable)"
);
metric!(
    CONTAINER_DISK_DELAY,
    "container_resources_disk_delay_seconds_total",
    Counter,
    "Total time duration processes of the container have been waiting for I/Os to complete"
);
metric!(
    CONTAINER_MEM_RSS,
    "container_resources_memory_rss_bytes",
    Gauge,
    "Amount of physical memory used by the container (doesn't include page cache)"
);
metric!(
    CONTAINER_MEM_CACHE,
    "container_resources_memory_cache_bytes",
    Gauge,
    "Amount of page cache memory allocated by the container"
);
metric!(
    CONTAINER_MEM_LIMIT,
    "container_resources_memory_limit_bytes",
    Gauge,
    "Memory limit of the container"
);
metric!(
    CONTAINER_CPU_PRESSURE,
    "container_resources_cpu_pressure_waiting_seconds_total",
    Counter,
    "Total time in seconds that the container were delayed due to CPU pressure"
);
metric!(
    CONTAINER_MEM_PRESSURE,
    "container_resources_memory_pressure_waiting_seconds_total",
    Counter,
    "Total time in seconds that the container were delayed due to memory pressure"
);
metric!(
    CONTAINER_IO_PRESSURE,
    "container_resources_io_pressure_waiting_seconds_total",
    Counter,
    "Total time in seconds that the container were delayed due to I/O pressure"
);
metric!(
    CONTAINER_OOM_KILLS,
    "container_oom_kills_total",
    Counter,
    "Total number of times the container was terminated by the OOM killer"
);

// Container network (eBPF tracer).
metric!(
    CONTAINER_NET_LISTEN_INFO,
    "container_net_tcp_listen_info",
    Gauge,
    "Listen address of the container"
);
metric!(
    CONTAINER_NET_SUCCESSFUL_CONNECTS,
    "container_net_tcp_successful_connects_total",
    Counter,
    "Total number of successful TCP connects"
);
metric!(
    CONTAINER_NET_CONNECTION_TIME,
    "container_net_tcp_connection_time_seconds_total",
    Counter,
    "Time spent on TCP connections"
);
metric!(
    CONTAINER_NET_FAILED_CONNECTS,
    "container_net_tcp_failed_connects_total",
    Counter,
    "Total number of failed TCP connects"
);
metric!(
    CONTAINER_NET_ACTIVE,
    "container_net_tcp_active_connections",
    Gauge,
    "Number of active outbound connections used by the container"
);
metric!(
    CONTAINER_NET_RETRANSMITS,
    "container_net_tcp_retransmits_total",
    Counter,
    "Total number of retransmitted TCP segments"
);
metric!(
    CONTAINER_NET_BYTES_SENT,
    "container_net_tcp_bytes_sent_total",
    Counter,
    "Total number of bytes sent to the peer"
);
metric!(
    CONTAINER_NET_BYTES_RECEIVED,
    "container_net_tcp_bytes_received_total",
    Counter,
    "Total number of bytes received from the peer"
);
metric!(
    CONTAINER_NET_PACKETS_SENT,
    "container_net_tcp_packets_sent_total",
    Counter,
    "Total number of TCP segments sent to the peer (all kinds, retransmissions included)"
);
metric!(
    CONTAINER_NET_PACKETS_RECEIVED,
    "container_net_tcp_packets_received_total",
    Counter,
    "Total number of TCP segments received from the peer (all kinds)"
);

// Logs.
metric!(
    CONTAINER_LOG_MESSAGES,
    "container_log_messages_total",
    Counter,
    "Number of messages grouped by the automatically extracted repeated pattern"
);

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

// Container volumes and disk I/O (resources.rs).
metric!(
    CONTAINER_DISK_SIZE,
    "container_resources_disk_size_bytes",
    Gauge,
    "Total capacity of the volume"
);
metric!(
    CONTAINER_DISK_USED,
    "container_resources_disk_used_bytes",
    Gauge,
    "Used capacity of the volume"
);
metric!(
    CONTAINER_DISK_RESERVED,
    "container_resources_disk_reserved_bytes",
    Gauge,
    "Reserved capacity of the volume"
);
metric!(
    CONTAINER_DISK_READS,
    "container_resources_disk_reads_total",
    Counter,
    "Total number of reads completed successfully by the container"
);
metric!(
    CONTAINER_DISK_READ_BYTES,
    "container_resources_disk_read_bytes_total",
    Counter,
    "Total number of bytes read from the disk by the container"
);
metric!(
    CONTAINER_DISK_WRITES,
    "container_resources_disk_writes_total",
    Counter,
    "Total number of writes completed successfully by the container"
);
metric!(
    CONTAINER_DISK_WRITTEN_BYTES,
    "container_resources_disk_written_bytes_total",
    Counter,
    "Total number of bytes written to the disk by the container"
);
metric!(
    CONTAINER_APPLICATION_TYPE,
    "container_application_type",
    Gauge,
    "Type of the application running in the container (e.g. memcached, postgres, mysql)"
);
metric!(
    SONDE_VOLUME_MOUNTS_DROPPED,
    "sonde_volume_mounts_dropped_total",
    Counter,
    "Container data mounts not rendered because a container had more than 64 (counted per scrape)"
);
metric!(
    SONDE_VOLUME_READ_ERRORS,
    "sonde_volume_read_errors_total",
    Counter,
    "Failed or malformed reads of a container's mountinfo and statvfs of its mounts"
);
metric!(
    SONDE_APPTYPE_UNCACHED,
    "sonde_apptype_uncached_total",
    Counter,
    "Process application-type lookups not cached because the cache was full (counted per scrape)"
);

// GPUs (gpu.rs).
metric!(
    NODE_GPU_INFO,
    "node_gpu_info",
    Gauge,
    "Meta information about the GPU"
);
metric!(
    NODE_GPU_MEMORY_TOTAL,
    "node_resources_gpu_memory_total_bytes",
    Gauge,
    "Total memory available on the GPU in bytes"
);
metric!(
    NODE_GPU_MEMORY_USED,
    "node_resources_gpu_memory_used_bytes",
    Gauge,
    "GPU memory currently in use in bytes"
);
metric!(
    NODE_GPU_MEMORY_UTILIZATION_AVG,
    "node_resources_gpu_memory_utilization_percent_avg",
    Gauge,
    "Average GPU memory utilization (percentage) over the collection interval"
);
metric!(
    NODE_GPU_MEMORY_UTILIZATION_PEAK,
    "node_resources_gpu_memory_utilization_percent_peak",
    Gauge,
    "Peak GPU memory utilization (percentage) over the collection interval"
);
metric!(
    NODE_GPU_UTILIZATION_AVG,
    "node_resources_gpu_utilization_percent_avg",
    Gauge,
    "Average GPU core utilization (percentage) over the collection interval"
);
metric!(
    NODE_GPU_UTILIZATION_PEAK,
    "node_resources_gpu_utilization_percent_peak",
    Gauge,
    "Peak GPU core utilization (percentage) over the collection interval"
);
metric!(
    NODE_GPU_TEMPERATURE,
    "node_resources_gpu_temperature_celsius",
    Gauge,
    "Current temperature of the GPU in Celsius"
);
metric!(
    NODE_GPU_POWER,
    "node_resources_gpu_power_usage_watts",
    Gauge,
    "Current power usage of the GPU in watts"
);
metric!(
    CONTAINER_GPU_USAGE,
    "container_resources_gpu_usage_percent",
    Gauge,
    "Percent of GPU compute resources used by the container"
);
metric!(
    CONTAINER_GPU_MEMORY_USAGE,
    "container_resources_gpu_memory_usage_percent",
    Gauge,
    "Percent of GPU memory used by the container"
);

// Upstream latency (latency.rs).
metric!(
    CONTAINER_NET_LATENCY,
    "container_net_latency_seconds",
    Gauge,
    "Round-trip time between the container and a remote IP"
);
metric!(
    SONDE_PINGER_TARGETS_DROPPED,
    "sonde_pinger_targets_dropped_total",
    Counter,
    "Upstream addresses not pinged because of the per-container (32) or total (2048) bound (counted per scrape)"
);
metric!(
    SONDE_PINGER_ERRORS,
    "sonde_pinger_errors_total",
    Counter,
    "Ping rounds that failed in a container's network namespace (other than the container exiting)"
);

// Node activity (sonde's extension: the kernel counters node_exporter users know, from
// /proc/stat and /proc/vmstat).
metric!(
    NODE_CONTEXT_SWITCHES,
    "node_context_switches_total",
    Counter,
    "Total number of context switches"
);
metric!(
    NODE_INTERRUPTS,
    "node_intr_total",
    Counter,
    "Total number of interrupts serviced"
);
metric!(
    NODE_FORKS,
    "node_forks_total",
    Counter,
    "Total number of forks (processes and threads created)"
);
metric!(
    NODE_PAGE_FAULTS,
    "node_vmstat_pgfault_total",
    Counter,
    "Total number of page faults, minor and major"
);
metric!(
    NODE_MAJOR_PAGE_FAULTS,
    "node_vmstat_pgmajfault_total",
    Counter,
    "Total number of major page faults (the page was read from disk)"
);
metric!(
    NODE_SWAP_IN,
    "node_vmstat_pswpin_total",
    Counter,
    "Total number of pages swapped in"
);
metric!(
    NODE_SWAP_OUT,
    "node_vmstat_pswpout_total",
    Counter,
    "Total number of pages swapped out"
);

// Container network interfaces (sonde's extension: /proc/<pid>/net/dev of a process in the
// container's own network namespace).
metric!(
    CONTAINER_NET_IF_RX_BYTES,
    "container_net_interface_received_bytes_total",
    Counter,
    "Total number of bytes received by an interface of the container's network namespace"
);
metric!(
    CONTAINER_NET_IF_TX_BYTES,
    "container_net_interface_transmitted_bytes_total",
    Counter,
    "Total number of bytes transmitted by an interface of the container's network namespace"
);
metric!(
    CONTAINER_NET_IF_RX_PACKETS,
    "container_net_interface_received_packets_total",
    Counter,
    "Total number of packets received by an interface of the container's network namespace"
);
metric!(
    CONTAINER_NET_IF_TX_PACKETS,
    "container_net_interface_transmitted_packets_total",
    Counter,
    "Total number of packets transmitted by an interface of the container's network namespace"
);
metric!(
    CONTAINER_NET_IF_RX_DROPPED,
    "container_net_interface_received_dropped_total",
    Counter,
    "Total number of received packets dropped by an interface of the container's network namespace"
);
metric!(
    CONTAINER_NET_IF_TX_DROPPED,
    "container_net_interface_transmitted_dropped_total",
    Counter,
    "Total number of packets to transmit dropped by an interface of the container's network namespace"
);
metric!(
    CONTAINER_NET_IF_RX_ERRORS,
    "container_net_interface_received_errors_total",
    Counter,
    "Total number of receive errors of an interface of the container's network namespace"
);
metric!(
    CONTAINER_NET_IF_TX_ERRORS,
    "container_net_interface_transmitted_errors_total",
    Counter,
    "Total number of transmit errors of an interface of the container's network namespace"
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
