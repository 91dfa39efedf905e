//! `container_net_*` metrics: TCP connections from the eBPF tracer, upstream latency from the
//! pinger, and the container's network interfaces.

use super::{Kind, MetricDef};

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
