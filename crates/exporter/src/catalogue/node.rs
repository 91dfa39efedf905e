//! `node_*` metrics: the node's identity, CPU, memory, disks and interfaces (coroot's), and
//! sonde's node activity counters.

use super::{Kind, MetricDef};

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
