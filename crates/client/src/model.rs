//! Node, container and upstream figures out of one scrape of the agent, and per-second rates
//! between two scrapes. Absent metrics stay `None` (an agent without the tracer has no
//! upstreams; packets exist only where the agent exports `container_net_tcp_packets_*`).

use std::collections::BTreeMap;

use crate::exposition::Sample;

/// The node's counters and gauges (sums over devices and interfaces).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Node {
    /// node_info's hostname.
    pub hostname: String,
    /// CPU seconds in every mode but idle and iowait.
    pub cpu_busy_seconds: Option<f64>,
    /// node_resources_cpu_logical_cores.
    pub cores: Option<f64>,
    /// node_resources_memory_total_bytes.
    pub memory_total_bytes: Option<f64>,
    /// node_resources_memory_available_bytes.
    pub memory_available_bytes: Option<f64>,
    /// node_resources_memory_cached_bytes.
    pub memory_cached_bytes: Option<f64>,
    /// node_resources_disk_read_bytes_total, every disk.
    pub disk_read_bytes: Option<f64>,
    /// node_resources_disk_written_bytes_total, every disk.
    pub disk_written_bytes: Option<f64>,
    /// node_net_received_bytes_total, every reported interface.
    pub net_rx_bytes: Option<f64>,
    /// node_net_transmitted_bytes_total.
    pub net_tx_bytes: Option<f64>,
    /// node_net_received_packets_total.
    pub net_rx_packets: Option<f64>,
    /// node_net_transmitted_packets_total.
    pub net_tx_packets: Option<f64>,
}

/// One container's figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Container {
    /// container_resources_cpu_usage_seconds_total.
    pub cpu_seconds: Option<f64>,
    /// container_resources_memory_rss_bytes.
    pub rss_bytes: Option<f64>,
    /// container_resources_memory_cache_bytes.
    pub cache_bytes: Option<f64>,
    /// container_resources_disk_read_bytes_total, every device (where exported).
    pub disk_read_bytes: Option<f64>,
    /// container_resources_disk_written_bytes_total.
    pub disk_written_bytes: Option<f64>,
    /// container_net_interface_received_bytes_total, every interface of its own netns.
    pub if_rx_bytes: Option<f64>,
    /// container_net_interface_transmitted_bytes_total.
    pub if_tx_bytes: Option<f64>,
    /// container_net_interface_received_packets_total.
    pub if_rx_packets: Option<f64>,
    /// container_net_interface_transmitted_packets_total.
    pub if_tx_packets: Option<f64>,
    /// Outbound TCP per destination.
    pub upstreams: BTreeMap<String, Upstream>,
}

/// Outbound TCP of a container to one destination (summed over actual destinations).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Upstream {
    /// container_net_tcp_successful_connects_total.
    pub connects: f64,
    /// container_net_tcp_failed_connects_total.
    pub failed: f64,
    /// container_net_tcp_active_connections.
    pub active: f64,
    /// container_net_tcp_bytes_sent_total.
    pub sent_bytes: f64,
    /// container_net_tcp_bytes_received_total.
    pub received_bytes: f64,
    /// container_net_tcp_packets_sent_total, when exported.
    pub sent_packets: Option<f64>,
    /// container_net_tcp_packets_received_total, when exported.
    pub received_packets: Option<f64>,
    /// container_net_tcp_retransmits_total.
    pub retransmits: f64,
}

impl Container {
    /// Bytes sent over TCP to every destination.
    pub fn tcp_sent_bytes(&self) -> f64 {
        self.upstreams.values().map(|u| u.sent_bytes).sum()
    }
    /// Bytes received over TCP from every destination.
    pub fn tcp_received_bytes(&self) -> f64 {
        self.upstreams.values().map(|u| u.received_bytes).sum()
    }
    /// Successful connects to every destination.
    pub fn tcp_connects(&self) -> f64 {
        self.upstreams.values().map(|u| u.connects).sum()
    }
    /// TCP segments sent to every destination (None when the agent exports no packet counters).
    pub fn tcp_sent_packets(&self) -> Option<f64> {
        self.upstreams
            .values()
            .filter_map(|u| u.sent_packets)
            .reduce(|a, b| a + b)
    }
    /// TCP segments received from every destination (None without packet counters).
    pub fn tcp_received_packets(&self) -> Option<f64> {
        self.upstreams
            .values()
            .filter_map(|u| u.received_packets)
            .reduce(|a, b| a + b)
    }
    /// Open outbound connections now.
    pub fn tcp_active(&self) -> f64 {
        self.upstreams.values().map(|u| u.active).sum()
    }
}

/// Everything read from one scrape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// The node.
    pub node: Node,
    /// Containers by container_id.
    pub containers: BTreeMap<String, Container>,
}

fn add(slot: &mut Option<f64>, v: f64) {
    *slot = Some(slot.unwrap_or(0.0) + v);
}

impl Snapshot {
    /// Builds the figures from samples of one scrape.
    pub fn from_samples(samples: &[Sample]) -> Snapshot {
        let mut snap = Snapshot::default();
        for s in samples {
            if let Some(rest) = s.name.strip_prefix("node_") {
                snap.node_sample(rest, s);
            } else if s.name.starts_with("container_") {
                let id = s.label("container_id");
                if id.is_empty() {
                    continue;
                }
                snap.container_sample(id, s);
            }
        }
        snap
    }

    fn node_sample(&mut self, name: &str, s: &Sample) {
        let n = &mut self.node;
        let v = s.value;
        match name {
            "info" => n.hostname = s.label("hostname").to_owned(),
            "resources_cpu_usage_seconds_total"
                if !matches!(s.label("mode"), "idle" | "iowait") =>
            {
                add(&mut n.cpu_busy_seconds, v);
            }
            "resources_cpu_logical_cores" => n.cores = Some(v),
            "resources_memory_total_bytes" => n.memory_total_bytes = Some(v),
            "resources_memory_available_bytes" => n.memory_available_bytes = Some(v),
            "resources_memory_cached_bytes" => n.memory_cached_bytes = Some(v),
            "resources_disk_read_bytes_total" => add(&mut n.disk_read_bytes, v),
            "resources_disk_written_bytes_total" => add(&mut n.disk_written_bytes, v),
            "net_received_bytes_total" => add(&mut n.net_rx_bytes, v),
            "net_transmitted_bytes_total" => add(&mut n.net_tx_bytes, v),
            "net_received_packets_total" => add(&mut n.net_rx_packets, v),
            "net_transmitted_packets_total" => add(&mut n.net_tx_packets, v),
            _ => {}
        }
    }

    fn container_sample(&mut self, id: &str, s: &Sample) {
        // Look the container up without allocating its key when it is known.
        if !self.containers.contains_key(id) {
            self.containers.insert(id.to_owned(), Container::default());
        }
        let Some(c) = self.containers.get_mut(id) else {
            return;
        };
        let v = s.value;
        let name = &s.name["container_".len()..];
        match name {
            "resources_cpu_usage_seconds_total" => c.cpu_seconds = Some(v),
            "resources_memory_rss_bytes" => c.rss_bytes = Some(v),
            "resources_memory_cache_bytes" => c.cache_bytes = Some(v),
            "resources_disk_read_bytes_total" => add(&mut c.disk_read_bytes, v),
            "resources_disk_written_bytes_total" => add(&mut c.disk_written_bytes, v),
            "net_interface_received_bytes_total" => add(&mut c.if_rx_bytes, v),
            "net_interface_transmitted_bytes_total" => add(&mut c.if_tx_bytes, v),
            "net_interface_received_packets_total" => add(&mut c.if_rx_packets, v),
            "net_interface_transmitted_packets_total" => add(&mut c.if_tx_packets, v),
            _ => {
                let Some(tcp) = name.strip_prefix("net_tcp_") else {
                    return;
                };
                let dst = s.label("destination");
                if dst.is_empty() || tcp == "listen_info" {
                    return;
                }
                let u = c.upstreams.entry(dst.to_owned()).or_default();
                match tcp {
                    "successful_connects_total" => u.connects += v,
                    "failed_connects_total" => u.failed += v,
                    "active_connections" => u.active += v,
                    "bytes_sent_total" => u.sent_bytes += v,
                    "bytes_received_total" => u.received_bytes += v,
                    "packets_sent_total" => add(&mut u.sent_packets, v),
                    "packets_received_total" => add(&mut u.received_packets, v),
                    "retransmits_total" => u.retransmits += v,
                    _ => {}
                }
            }
        }
    }
}

/// Per-second rate of a counter between two readings `seconds` apart. A counter that went down
/// was reset (the container restarted, the agent restarted): its new value counts from zero,
/// as Prometheus' rate() does.
pub fn rate(prev: Option<f64>, cur: Option<f64>, seconds: f64) -> Option<f64> {
    let (p, c) = (prev?, cur?);
    if seconds <= 0.0 {
        return None;
    }
    Some(if c >= p { c - p } else { c } / seconds)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::exposition::parse;

    const SCRAPE: &str = r#"
node_info{hostname="n1",kernel_version="6.18"} 1
node_resources_cpu_usage_seconds_total{mode="user"} 10
node_resources_cpu_usage_seconds_total{mode="system"} 5
node_resources_cpu_usage_seconds_total{mode="idle"} 100
node_resources_cpu_usage_seconds_total{mode="iowait"} 7
node_resources_cpu_logical_cores 2
node_net_received_bytes_total{interface="eth0"} 100
node_net_received_bytes_total{interface="eth1"} 50
container_resources_cpu_usage_seconds_total{container_id="/a"} 1.5
container_resources_memory_rss_bytes{container_id="/a"} 4096
container_net_tcp_successful_connects_total{container_id="/a",destination="10.0.0.1:80",actual_destination="10.0.0.1:80",app_id=""} 3
container_net_tcp_bytes_sent_total{container_id="/a",destination="10.0.0.1:80",actual_destination="10.0.0.1:80",app_id=""} 1000
container_net_tcp_bytes_sent_total{container_id="/a",destination="10.0.0.1:80",actual_destination="10.0.0.2:80",app_id=""} 500
container_net_tcp_packets_sent_total{container_id="/a",destination="10.0.0.1:80",actual_destination="10.0.0.1:80"} 9
container_net_tcp_listen_info{container_id="/a",listen_addr="0.0.0.0:80",proxy=""} 1
container_net_interface_received_bytes_total{container_id="/b",interface="lo"} 10
container_net_interface_received_bytes_total{container_id="/b",interface="eth0"} 20
container_info{container_id="/b",image=""} 1
sonde_build_info{version="x"} 1
"#;

    #[test]
    fn figures_from_a_scrape() {
        let s = Snapshot::from_samples(&parse(SCRAPE).samples);
        assert_eq!(s.node.hostname, "n1");
        assert_eq!(s.node.cpu_busy_seconds, Some(15.0));
        assert_eq!(s.node.net_rx_bytes, Some(150.0));
        assert_eq!(s.node.net_tx_bytes, None);
        assert_eq!(s.containers.len(), 2);
        let a = &s.containers["/a"];
        assert_eq!(a.cpu_seconds, Some(1.5));
        assert_eq!(a.rss_bytes, Some(4096.0));
        assert_eq!(a.upstreams.len(), 1, "listen_info is not an upstream");
        let u = &a.upstreams["10.0.0.1:80"];
        assert_eq!(u.connects, 3.0);
        assert_eq!(u.sent_bytes, 1500.0, "summed over actual destinations");
        assert_eq!(u.sent_packets, Some(9.0));
        assert_eq!(u.received_packets, None);
        assert_eq!(a.tcp_sent_bytes(), 1500.0);
        assert_eq!(a.tcp_sent_packets(), Some(9.0));
        assert_eq!(a.tcp_received_packets(), None);
        let b = &s.containers["/b"];
        assert_eq!(b.if_rx_bytes, Some(30.0));
        assert_eq!(b.cpu_seconds, None);
    }

    #[test]
    fn rates() {
        assert_eq!(rate(Some(10.0), Some(30.0), 2.0), Some(10.0));
        assert_eq!(rate(Some(10.0), Some(4.0), 2.0), Some(2.0), "reset");
        assert_eq!(rate(None, Some(4.0), 2.0), None);
        assert_eq!(rate(Some(1.0), Some(4.0), 0.0), None);
    }
}
