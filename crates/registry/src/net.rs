//! Per-container TCP state fed by the eBPF tracer: connects, failures, connect time,
//! retransmits and bytes per destination, and listening sockets.
//!
//! Pure: the registry task applies [`NetEvent`]s in order; the scrape copies a snapshot out.
//! Every map is bounded: a container talking to more than [`MAX_DESTINATIONS`] destinations
//! stops adding new ones (counted in `dropped_destinations`), and closed listeners are kept only
//! for [`CLOSED_LISTEN_RETENTION`] (exported as 0, "recently closed", as coroot does).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most destinations tracked per container.
pub const MAX_DESTINATIONS: usize = 4096;
/// Most listening addresses tracked per container.
pub const MAX_LISTENS: usize = 1024;
/// How long a closed listener is still reported (with value 0).
pub const CLOSED_LISTEN_RETENTION: Duration = Duration::from_secs(300);

/// A TCP happening attributed to a process. `dst` is the address the socket dialled, `actual`
/// where the connection really went (its NAT upstream; `dst` when not translated). A failed
/// connect has no upstream: it counts under (`dst`, `dst`).
#[derive(Debug, Clone, PartialEq)]
pub enum NetEvent {
    /// One report of an outbound connection (`sonde_tracer::connections::ConnectionDelta`):
    /// its connect when this is the first report of it (`connect`, with its connect time),
    /// and the bytes and segments not counted before. One event for both, so the usual
    /// short connection (reported once, at its close) costs one destination update.
    Connection {
        dst: SocketAddr,
        actual: SocketAddr,
        connect: Option<Duration>,
        sent: u64,
        received: u64,
        segs_out: u64,
        segs_in: u64,
    },
    ConnectFailed {
        dst: SocketAddr,
    },
    Retransmit {
        dst: SocketAddr,
        actual: SocketAddr,
    },
    /// `ns_ips`: for a wildcard address, the addresses of the listener's network namespace
    /// (it is exported as those); `host_netns`: whether that namespace is the host's (a
    /// loopback listener elsewhere is no service endpoint).
    ListenOpen {
        addr: SocketAddr,
        ns_ips: Arc<[IpAddr]>,
        host_netns: bool,
    },
    ListenClose {
        addr: SocketAddr,
    },
    /// An application-protocol request this process made to `dst` (really `actual`) or, when
    /// `inbound`, served (then `dst`/`actual` are the client's address, unused).
    L7 {
        dst: SocketAddr,
        actual: SocketAddr,
        inbound: bool,
        request: Box<sonde_l7::Request>,
        /// The process's `COROOT_EBPF_TRACES=disabled` (crate::l7_optout); None: unknown.
        opted_out: Option<bool>,
    },
}

/// Open connections per (destination, actual destination): how many.
pub type ActiveMap = std::collections::HashMap<(SocketAddr, SocketAddr), u64>;

/// Open connections of one process to one (destination, actual destination), from the
/// tracer's dump of the kernel's connection map. `cgroup_path` is the cgroup the kernel saw
/// the process in at connect: it places the connections when the registry does not know the
/// process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveCount {
    pub pid: u32,
    pub cgroup_path: Option<String>,
    pub dst: SocketAddr,
    pub actual: SocketAddr,
    pub count: u64,
}

/// Counters of one destination.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DestinationStats {
    pub successful_connects: u64,
    pub failed_connects: u64,
    pub connection_time_seconds: f64,
    pub retransmits: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// TCP segments, all kinds (the kernel's per-socket segs_out/segs_in).
    pub packets_sent: u64,
    pub packets_received: u64,
}

/// A listening address: open, or closed at some moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    pub open: bool,
    pub closed_at: Option<Instant>,
    /// See [`NetEvent::ListenOpen`].
    pub ns_ips: Arc<[IpAddr]>,
    pub host_netns: bool,
}

impl Listen {
    /// The addresses to export for a listener on `addr`, as coroot-node-agent does: a
    /// wildcard is its namespace's addresses (the wildcard itself when they could not be
    /// read, so the listener is not lost); loopback only in the host namespace.
    pub fn exported_addrs(&self, addr: SocketAddr) -> Vec<SocketAddr> {
        let wildcard = addr.ip().is_unspecified();
        let ips: Vec<IpAddr> = if wildcard && !self.ns_ips.is_empty() {
            // An IPv4 wildcard accepts on IPv4 only; an IPv6 one (dual-stack) on both.
            self.ns_ips
                .iter()
                .copied()
                .filter(|ip| addr.is_ipv6() || ip.is_ipv4())
                .collect()
        } else {
            vec![addr.ip()]
        };
        ips.into_iter()
            .filter(|ip| self.host_netns || !ip.is_loopback())
            .map(|ip| SocketAddr::new(ip, addr.port()))
            .collect()
    }
}

/// The network state of one container.
#[derive(Debug, Clone, Default)]
pub struct ContainerNet {
    /// Keyed by (destination, actual destination); foldhash: looked up for every TCP event.
    pub destinations: foldhash::HashMap<(SocketAddr, SocketAddr), DestinationStats>,
    pub listens: foldhash::HashMap<SocketAddr, Listen>,
    /// Events about destinations beyond MAX_DESTINATIONS, not counted.
    pub dropped_destinations: u64,
    /// Application-layer requests (crate::l7).
    pub l7: crate::l7::ContainerL7,
}

impl ContainerNet {
    pub fn apply(&mut self, event: &NetEvent, now: Instant) {
        match *event {
            NetEvent::Connection {
                dst,
                actual,
                connect,
                sent,
                received,
                segs_out,
                segs_in,
            } => {
                if let Some(d) = self.destination((dst, actual)) {
                    if let Some(duration) = connect {
                        d.successful_connects += 1;
                        d.connection_time_seconds += duration.as_secs_f64();
                    }
                    d.bytes_sent += sent;
                    d.bytes_received += received;
                    d.packets_sent += segs_out;
                    d.packets_received += segs_in;
                }
            }
            NetEvent::ConnectFailed { dst } => {
                if let Some(d) = self.destination((dst, dst)) {
                    d.failed_connects += 1;
                }
            }
            NetEvent::Retransmit { dst, actual } => {
                if let Some(d) = self.destination((dst, actual)) {
                    d.retransmits += 1;
                }
            }
            NetEvent::ListenOpen {
                addr,
                ref ns_ips,
                host_netns,
            } => {
                if self.listens.len() < MAX_LISTENS || self.listens.contains_key(&addr) {
                    self.listens.insert(
                        addr,
                        Listen {
                            open: true,
                            closed_at: None,
                            ns_ips: ns_ips.clone(),
                            host_netns,
                        },
                    );
                }
            }
            NetEvent::ListenClose { addr } => {
                if let Some(l) = self.listens.get_mut(&addr) {
                    l.open = false;
                    l.closed_at = Some(now);
                }
            }
            NetEvent::L7 {
                dst,
                actual,
                inbound,
                ref request,
                ..
            } => {
                // No DNS answers wanted here: State::apply_net takes them (apply_l7).
                self.l7.apply(request, dst, actual, inbound, usize::MAX);
            }
        }
    }

    fn destination(&mut self, dst: (SocketAddr, SocketAddr)) -> Option<&mut DestinationStats> {
        if self.destinations.len() >= MAX_DESTINATIONS && !self.destinations.contains_key(&dst) {
            self.dropped_destinations += 1;
            return None;
        }
        Some(self.destinations.entry(dst).or_default())
    }

    /// Forgets listeners closed longer ago than the retention.
    pub fn expire(&mut self, now: Instant) {
        self.listens.retain(|_, l| {
            l.closed_at
                .is_none_or(|t| now.saturating_duration_since(t) < CLOSED_LISTEN_RETENTION)
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn open_listen(addr: SocketAddr) -> NetEvent {
        NetEvent::ListenOpen {
            addr,
            ns_ips: Arc::from([]),
            host_netns: true,
        }
    }

    #[test]
    fn wildcard_listeners_are_their_namespace_addresses_and_loopback_only_on_the_host() {
        let ips: Arc<[IpAddr]> = Arc::from(vec![
            "10.88.0.7".parse().unwrap(),
            "127.0.0.1".parse().unwrap(),
            "fd00::7".parse().unwrap(),
            "::1".parse().unwrap(),
        ]);
        let l = |host_netns| Listen {
            open: true,
            closed_at: None,
            ns_ips: ips.clone(),
            host_netns,
        };
        let strs = |v: Vec<SocketAddr>| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        // A container's own namespace: its addresses, never loopback.
        assert_eq!(
            strs(l(false).exported_addrs(addr("0.0.0.0:80"))),
            ["10.88.0.7:80"]
        );
        assert_eq!(
            strs(l(false).exported_addrs(addr("[::]:80"))),
            ["10.88.0.7:80", "[fd00::7]:80"]
        );
        assert!(l(false).exported_addrs(addr("127.0.0.1:80")).is_empty());
        assert_eq!(
            strs(l(false).exported_addrs(addr("10.88.0.7:80"))),
            ["10.88.0.7:80"]
        );
        // The host's namespace: loopback is a service endpoint there.
        assert_eq!(
            strs(l(true).exported_addrs(addr("0.0.0.0:80"))),
            ["10.88.0.7:80", "127.0.0.1:80"]
        );
        // Addresses unknown (the process was gone): the wildcard itself, not nothing.
        let unknown = Listen {
            ns_ips: Arc::from([]),
            ..l(false)
        };
        assert_eq!(
            strs(unknown.exported_addrs(addr("0.0.0.0:80"))),
            ["0.0.0.0:80"]
        );
    }

    /// A connection report: `connect` Some when it is the connection's first.
    fn report(
        dst: SocketAddr,
        actual: SocketAddr,
        connect: Option<Duration>,
        bytes: [u64; 4],
    ) -> NetEvent {
        let [sent, received, segs_out, segs_in] = bytes;
        NetEvent::Connection {
            dst,
            actual,
            connect,
            sent,
            received,
            segs_out,
            segs_in,
        }
    }

    #[test]
    fn counts_per_destination() {
        let now = Instant::now();
        let mut n = ContainerNet::default();
        let db = addr("10.0.0.5:5432");
        // Connects alone (the kernel's ConnectOk, a dump's first sight of a connection).
        for _ in 0..3 {
            n.apply(&report(db, db, Some(Duration::from_millis(2)), [0; 4]), now);
        }
        n.apply(&NetEvent::ConnectFailed { dst: db }, now);
        n.apply(
            &NetEvent::Retransmit {
                dst: db,
                actual: db,
            },
            now,
        );
        // Bytes alone (later dumps of open connections).
        n.apply(&report(db, db, None, [10, 20, 3, 4]), now);
        n.apply(&report(db, db, None, [5, 0, 1, 1]), now);
        // A close record: once with its connect (never seen open), once without.
        n.apply(
            &report(db, db, Some(Duration::from_millis(4)), [1, 2, 5, 6]),
            now,
        );
        n.apply(&report(db, db, None, [3, 4, 7, 8]), now);
        let d = &n.destinations[&(db, db)];
        assert_eq!(d.successful_connects, 4);
        assert_eq!(d.failed_connects, 1);
        assert_eq!(d.retransmits, 1);
        assert_eq!((d.bytes_sent, d.bytes_received), (19, 26));
        assert_eq!((d.packets_sent, d.packets_received), (16, 19));
        assert!((d.connection_time_seconds - 0.010).abs() < 1e-9);
    }

    #[test]
    fn a_translated_destination_counts_per_upstream() {
        let now = Instant::now();
        let mut n = ContainerNet::default();
        let service = addr("10.96.0.10:80");
        let (a, b) = (addr("10.1.0.1:8080"), addr("10.1.0.2:8080"));
        for actual in [a, a, b] {
            n.apply(&report(service, actual, Some(Duration::ZERO), [0; 4]), now);
        }
        n.apply(&NetEvent::ConnectFailed { dst: service }, now);
        assert_eq!(n.destinations[&(service, a)].successful_connects, 2);
        assert_eq!(n.destinations[&(service, b)].successful_connects, 1);
        assert_eq!(n.destinations[&(service, service)].failed_connects, 1);
    }

    #[test]
    fn destinations_are_bounded() {
        let now = Instant::now();
        let mut n = ContainerNet::default();
        for i in 0..(MAX_DESTINATIONS as u32 + 10) {
            let dst = SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 80));
            n.apply(&NetEvent::ConnectFailed { dst }, now);
        }
        assert_eq!(n.destinations.len(), MAX_DESTINATIONS);
        assert_eq!(n.dropped_destinations, 10);
        // Known destinations still count.
        let first = SocketAddr::from(([10, 0, 0, 0], 80));
        n.apply(&NetEvent::ConnectFailed { dst: first }, now);
        assert_eq!(n.destinations[&(first, first)].failed_connects, 2);
    }

    #[test]
    fn closed_listeners_are_kept_then_forgotten() {
        let now = Instant::now();
        let mut n = ContainerNet::default();
        let a = addr("0.0.0.0:8080");
        n.apply(&open_listen(a), now);
        n.apply(&NetEvent::ListenClose { addr: a }, now);
        assert!(!n.listens[&a].open);
        n.expire(now + Duration::from_secs(10));
        assert!(n.listens.contains_key(&a));
        n.expire(now + CLOSED_LISTEN_RETENTION);
        assert!(n.listens.is_empty());
        // Reopened within the retention: open again.
        n.apply(&open_listen(a), now);
        assert!(n.listens[&a].open);
    }
}
