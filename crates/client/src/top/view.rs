//! What `sonde top` shows, computed from two snapshots: pure, so it is unit-tested without a
//! terminal.

use std::cmp::Ordering;

use crate::model::{Container, Snapshot, Upstream, rate};

/// The column rows are sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// CPU use.
    Cpu,
    /// Resident memory.
    Memory,
    /// Successful connects per second.
    Connects,
    /// TCP bytes sent per second.
    Tx,
    /// TCP bytes received per second.
    Rx,
    /// Container id / destination, alphabetically.
    Name,
}

impl SortKey {
    /// The key bound to it.
    pub fn from_key(c: char) -> Option<SortKey> {
        Some(match c {
            'c' => SortKey::Cpu,
            'm' => SortKey::Memory,
            'o' => SortKey::Connects,
            't' => SortKey::Tx,
            'r' => SortKey::Rx,
            'n' => SortKey::Name,
            _ => return None,
        })
    }

    /// Its name in the status line.
    pub fn label(self) -> &'static str {
        match self {
            SortKey::Cpu => "cpu",
            SortKey::Memory => "memory",
            SortKey::Connects => "connects/s",
            SortKey::Tx => "tx/s",
            SortKey::Rx => "rx/s",
            SortKey::Name => "name",
        }
    }
}

/// One line of the container table.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerRow {
    /// container_id.
    pub id: String,
    /// CPU use in % of one core.
    pub cpu_percent: Option<f64>,
    /// Resident memory, bytes.
    pub rss_bytes: Option<f64>,
    /// Page cache, bytes.
    pub cache_bytes: Option<f64>,
    /// Successful TCP connects per second (all destinations).
    pub connects_rate: Option<f64>,
    /// TCP bytes sent per second.
    pub tx_rate: Option<f64>,
    /// TCP bytes received per second.
    pub rx_rate: Option<f64>,
    /// Destinations it has connected to.
    pub upstreams: usize,
}

/// One line of the upstream table.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamRow {
    /// `ip:port`.
    pub destination: String,
    /// Open connections now.
    pub active: f64,
    /// Successful connects per second.
    pub connects_rate: Option<f64>,
    /// Bytes sent per second.
    pub tx_rate: Option<f64>,
    /// Bytes received per second.
    pub rx_rate: Option<f64>,
    /// Packets sent per second (when the agent exports packet counters).
    pub tx_packets_rate: Option<f64>,
    /// Packets received per second.
    pub rx_packets_rate: Option<f64>,
    /// Bytes sent in total.
    pub tx_bytes: f64,
    /// Bytes received in total.
    pub rx_bytes: f64,
}

fn cmp_opt(a: Option<f64>, b: Option<f64>) -> Ordering {
    a.unwrap_or(-1.0).total_cmp(&b.unwrap_or(-1.0))
}

/// Rows of the containers whose id contains `filter`, sorted by `key` (descending, names
/// ascending; `reverse` flips). `prev` is the snapshot `seconds` before `cur` (None at start:
/// rates unknown yet).
pub fn container_rows(
    prev: Option<&Snapshot>,
    cur: &Snapshot,
    seconds: f64,
    filter: &str,
    key: SortKey,
    reverse: bool,
) -> Vec<ContainerRow> {
    let empty = Container::default();
    let mut rows: Vec<ContainerRow> = cur
        .containers
        .iter()
        .filter(|(id, _)| id.contains(filter))
        .map(|(id, c)| {
            let p = prev.and_then(|p| p.containers.get(id)).unwrap_or(&empty);
            let known = prev.is_some_and(|p| p.containers.contains_key(id));
            let tcp_rate = |f: fn(&Container) -> f64| {
                known
                    .then(|| rate(Some(f(p)), Some(f(c)), seconds))
                    .flatten()
            };
            ContainerRow {
                id: id.clone(),
                cpu_percent: known
                    .then(|| rate(p.cpu_seconds, c.cpu_seconds, seconds).map(|r| r * 100.0))
                    .flatten(),
                rss_bytes: c.rss_bytes,
                cache_bytes: c.cache_bytes,
                connects_rate: tcp_rate(Container::tcp_connects),
                tx_rate: tcp_rate(Container::tcp_sent_bytes),
                rx_rate: tcp_rate(Container::tcp_received_bytes),
                upstreams: c.upstreams.len(),
            }
        })
        .collect();
    rows.sort_by(|a, b| {
        let o = match key {
            SortKey::Cpu => cmp_opt(b.cpu_percent, a.cpu_percent),
            SortKey::Memory => cmp_opt(b.rss_bytes, a.rss_bytes),
            SortKey::Connects => cmp_opt(b.connects_rate, a.connects_rate),
            SortKey::Tx => cmp_opt(b.tx_rate, a.tx_rate),
            SortKey::Rx => cmp_opt(b.rx_rate, a.rx_rate),
            SortKey::Name => Ordering::Equal,
        };
        o.then_with(|| a.id.cmp(&b.id))
    });
    if reverse {
        rows.reverse();
    }
    rows
}

/// Upstream rows of container `id`, sorted by `key` where it applies (tx/s otherwise).
pub fn upstream_rows(
    prev: Option<&Snapshot>,
    cur: &Snapshot,
    seconds: f64,
    id: &str,
    key: SortKey,
    reverse: bool,
) -> Vec<UpstreamRow> {
    let Some(c) = cur.containers.get(id) else {
        return Vec::new();
    };
    let before = prev.and_then(|p| p.containers.get(id));
    let mut rows: Vec<UpstreamRow> = c
        .upstreams
        .iter()
        .map(|(dst, u)| {
            let p = before.and_then(|b| b.upstreams.get(dst));
            // A destination new since the last refresh counts from zero.
            let r = |f: fn(&Upstream) -> f64| {
                prev.and_then(|_| rate(Some(p.map_or(0.0, f)), Some(f(u)), seconds))
            };
            let rp = |f: fn(&Upstream) -> Option<f64>| {
                prev.and_then(|_| rate(Some(p.and_then(f).unwrap_or(0.0)), f(u), seconds))
            };
            UpstreamRow {
                destination: dst.clone(),
                active: u.active,
                connects_rate: r(|u| u.connects),
                tx_rate: r(|u| u.sent_bytes),
                rx_rate: r(|u| u.received_bytes),
                tx_packets_rate: rp(|u| u.sent_packets),
                rx_packets_rate: rp(|u| u.received_packets),
                tx_bytes: u.sent_bytes,
                rx_bytes: u.received_bytes,
            }
        })
        .collect();
    rows.sort_by(|a, b| {
        let o = match key {
            SortKey::Name => Ordering::Equal,
            SortKey::Connects => cmp_opt(b.connects_rate, a.connects_rate),
            SortKey::Rx => cmp_opt(b.rx_rate, a.rx_rate),
            _ => cmp_opt(b.tx_rate, a.tx_rate),
        };
        o.then_with(|| a.destination.cmp(&b.destination))
    });
    if reverse {
        rows.reverse();
    }
    rows
}

/// A byte count or rate for people: 1023, 1.0K, 12.5M (binary multiples); exact: the integer.
pub fn human(v: Option<f64>, exact: bool) -> String {
    let Some(v) = v else {
        return "-".to_owned();
    };
    if exact {
        return format!("{}", v.round());
    }
    let mut x = v;
    for unit in ["", "K", "M", "G", "T"] {
        if x.abs() < 1024.0 {
            return if unit.is_empty() {
                format!("{}", x.round())
            } else {
                format!("{x:.1}{unit}")
            };
        }
        x /= 1024.0;
    }
    format!("{x:.1}P")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::exposition::parse;

    fn snap(text: &str) -> Snapshot {
        Snapshot::from_samples(&parse(text).samples)
    }

    const T0: &str = "container_resources_cpu_usage_seconds_total{container_id=\"/a\"} 10\ncontainer_resources_memory_rss_bytes{container_id=\"/a\"} 100\ncontainer_resources_cpu_usage_seconds_total{container_id=\"/b\"} 10\ncontainer_resources_memory_rss_bytes{container_id=\"/b\"} 900\ncontainer_net_tcp_bytes_sent_total{container_id=\"/a\",destination=\"10.0.0.1:80\"} 1000\ncontainer_net_tcp_successful_connects_total{container_id=\"/a\",destination=\"10.0.0.1:80\"} 1\n";
    const T1: &str = "container_resources_cpu_usage_seconds_total{container_id=\"/a\"} 11\ncontainer_resources_memory_rss_bytes{container_id=\"/a\"} 100\ncontainer_resources_cpu_usage_seconds_total{container_id=\"/b\"} 10.5\ncontainer_resources_memory_rss_bytes{container_id=\"/b\"} 900\ncontainer_net_tcp_bytes_sent_total{container_id=\"/a\",destination=\"10.0.0.1:80\"} 5000\ncontainer_net_tcp_successful_connects_total{container_id=\"/a\",destination=\"10.0.0.1:80\"} 3\ncontainer_net_tcp_bytes_sent_total{container_id=\"/a\",destination=\"10.0.0.2:443\"} 200\ncontainer_net_tcp_packets_sent_total{container_id=\"/a\",destination=\"10.0.0.2:443\"} 4\ncontainer_resources_cpu_usage_seconds_total{container_id=\"/c\"} 1\n";

    #[test]
    fn containers_sorted_with_rates() {
        let (a, b) = (snap(T0), snap(T1));
        let rows = container_rows(Some(&a), &b, 2.0, "", SortKey::Cpu, false);
        let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["/a", "/b", "/c"], "cpu: 50%, 25%, unknown");
        assert_eq!(rows[0].cpu_percent, Some(50.0));
        assert_eq!(rows[0].tx_rate, Some(2100.0));
        assert_eq!(rows[0].connects_rate, Some(1.0));
        assert_eq!(rows[0].upstreams, 2);
        assert_eq!(rows[2].cpu_percent, None, "new container: no rate yet");
        let rows = container_rows(Some(&a), &b, 2.0, "", SortKey::Memory, false);
        assert_eq!(rows[0].id, "/b");
        let rows = container_rows(Some(&a), &b, 2.0, "", SortKey::Name, true);
        assert_eq!(rows[0].id, "/c");
        let rows = container_rows(Some(&a), &b, 2.0, "/b", SortKey::Cpu, false);
        assert_eq!(rows.len(), 1);
        let rows = container_rows(None, &b, 2.0, "", SortKey::Cpu, false);
        assert!(
            rows.iter()
                .all(|r| r.cpu_percent.is_none() && r.tx_rate.is_none())
        );
    }

    #[test]
    fn upstreams_with_rates_and_packets() {
        let (a, b) = (snap(T0), snap(T1));
        let rows = upstream_rows(Some(&a), &b, 2.0, "/a", SortKey::Tx, false);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].destination, "10.0.0.1:80");
        assert_eq!(rows[0].tx_rate, Some(2000.0));
        assert_eq!(rows[0].connects_rate, Some(1.0));
        assert_eq!(rows[0].tx_packets_rate, None);
        assert_eq!(rows[0].tx_bytes, 5000.0);
        assert_eq!(
            rows[1].tx_rate,
            Some(100.0),
            "new destination counts from 0"
        );
        assert_eq!(rows[1].tx_packets_rate, Some(2.0));
        let rows = upstream_rows(Some(&a), &b, 2.0, "/a", SortKey::Name, true);
        assert_eq!(rows[0].destination, "10.0.0.2:443");
        assert!(upstream_rows(Some(&a), &b, 2.0, "/zz", SortKey::Tx, false).is_empty());
    }

    #[test]
    fn human_numbers() {
        assert_eq!(human(None, false), "-");
        assert_eq!(human(Some(1023.0), false), "1023");
        assert_eq!(human(Some(1536.0), false), "1.5K");
        assert_eq!(human(Some(3.0 * 1024.0 * 1024.0), false), "3.0M");
        assert_eq!(human(Some(3_145_728.0), true), "3145728");
        assert_eq!(human(Some(2.4), true), "2");
    }
}
