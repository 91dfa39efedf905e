//! `container_*` metrics of resources: CPU, memory, pressure, delays, restarts, logs, volumes
//! and disk I/O, GPUs.

use super::{Kind, MetricDef};

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

// Logs.
metric!(
    CONTAINER_LOG_MESSAGES,
    "container_log_messages_total",
    Counter,
    "Number of messages grouped by the automatically extracted repeated pattern"
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
