//! Which connection endpoints count as destinations (coroot's rules), pure and
//! unit-tested; the registry applies it to `ConnectOk`, `ConnectFailed`,
//! `Retransmit`, `ConnectionClosed` and listen events.
//!
//! Rules, in order:
//! 1. A destination port inside the ephemeral ranges (`--ephemeral-port-range`,
//!    default 32768-60999; several ranges may be given; gRPC's 50051 is always a
//!    service port) is not a service but the client side of some other
//!    connection: skipped. Listening sockets on ephemeral ports are skipped too
//!    (they are mostly short-lived RPC callbacks, and would make label values
//!    unbounded).
//! 2. Unspecified addresses and port 0 are never destinations.
//! 3. Loopback destinations count only for sockets in the host network
//!    namespace: inside a container's own netns, 127.0.0.1 is the container
//!    talking to itself, not an edge between two services.
//! 4. Private addresses (RFC 1918, CGNAT, link-local, ULA) always count; a
//!    public address counts only if it lies in one of the `--track-public-network`
//!    CIDRs (default `0.0.0.0/0` and `::/0`: everything).

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::Path;
use std::str::FromStr;

/// The kernel's default `net.ipv4.ip_local_port_range`, coroot's default too.
pub const DEFAULT_EPHEMERAL_PORTS: RangeInclusive<u16> = 32768..=60999;

/// A filter configuration value could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// Not `LOW-HIGH` with `LOW <= HIGH`, both in 1..=65535.
    #[error("invalid port range {value:?}: expected LOW-HIGH, e.g. 32768-60999")]
    PortRange { value: String },
    /// Not `ADDR/PREFIX`.
    #[error("invalid network {value:?}: expected ADDR/PREFIX, e.g. 203.0.113.0/24")]
    Cidr { value: String },
}

/// An IP network, `ADDR/PREFIX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` lies in this network. IPv4 networks never contain IPv6
    /// addresses and vice versa (v4-mapped addresses are unmapped by the decoder).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = FilterError;
    fn from_str(s: &str) -> Result<Self, FilterError> {
        let err = || FilterError::Cidr {
            value: s.to_owned(),
        };
        let (addr, prefix) = s.trim().split_once('/').ok_or_else(err)?;
        let addr: IpAddr = addr.parse().map_err(|_| err())?;
        let prefix: u8 = prefix.parse().map_err(|_| err())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(err());
        }
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Parses `LOW-HIGH` (the `--ephemeral-port-range` flag).
pub fn parse_port_range(s: &str) -> Result<RangeInclusive<u16>, FilterError> {
    let err = || FilterError::PortRange {
        value: s.to_owned(),
    };
    let (lo, hi) = s.trim().split_once('-').ok_or_else(err)?;
    let lo: u16 = lo.trim().parse().map_err(|_| err())?;
    let hi: u16 = hi.trim().parse().map_err(|_| err())?;
    if lo == 0 || lo > hi {
        return Err(err());
    }
    Ok(lo..=hi)
}

/// Private (non-routable on the internet) addresses: always tracked.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64.0.0/10 CGNAT
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            v6.is_loopback()
                || (s[0] & 0xfe00) == 0xfc00 // fc00::/7 unique local
                || (s[0] & 0xffc0) == 0xfe80 // fe80::/10 link local
        }
    }
}

/// Well-known service ports that lie inside the kernel's default ephemeral range and are
/// still services, never client ports: gRPC's 50051.
pub const WELL_KNOWN_IN_EPHEMERAL: &[u16] = &[50051];

/// The ephemeral (client) ports: one or more ranges (`--ephemeral-port-range`, repeatable or
/// comma-separated), less [`WELL_KNOWN_IN_EPHEMERAL`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EphemeralPorts(Vec<RangeInclusive<u16>>);

impl EphemeralPorts {
    pub fn new(ranges: Vec<RangeInclusive<u16>>) -> Self {
        EphemeralPorts(ranges)
    }

    /// Whether `port` is a client port, never a service.
    pub fn contains(&self, port: u16) -> bool {
        !WELL_KNOWN_IN_EPHEMERAL.contains(&port) && self.0.iter().any(|r| r.contains(&port))
    }
}

impl From<RangeInclusive<u16>> for EphemeralPorts {
    fn from(r: RangeInclusive<u16>) -> Self {
        EphemeralPorts(vec![r])
    }
}

/// Decides which endpoints are destinations; see the module docs for the rules.
#[derive(Debug, Clone)]
pub struct ConnectionFilter {
    ephemeral_ports: EphemeralPorts,
    public_networks: Vec<Cidr>,
    host_netns: u32,
}

impl ConnectionFilter {
    /// `host_netns` is the inode of the host network namespace ([`host_netns`]).
    pub fn new(
        ephemeral_ports: impl Into<EphemeralPorts>,
        public_networks: Vec<Cidr>,
        host_netns: u32,
    ) -> Self {
        ConnectionFilter {
            ephemeral_ports: ephemeral_ports.into(),
            public_networks,
            host_netns,
        }
    }

    /// Default public networks: everything (`0.0.0.0/0`, `::/0`), as coroot.
    pub fn default_public_networks() -> Vec<Cidr> {
        vec![
            Cidr {
                addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                prefix: 0,
            },
            Cidr {
                addr: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                prefix: 0,
            },
        ]
    }

    /// Whether `dst`, reached from a socket in network namespace `netns`, is a destination.
    pub fn is_destination(&self, dst: SocketAddr, netns: u32) -> bool {
        let ip = dst.ip();
        if dst.port() == 0 || ip.is_unspecified() || self.ephemeral_ports.contains(dst.port()) {
            return false;
        }
        if ip.is_loopback() {
            return netns == self.host_netns;
        }
        is_private(ip) || self.public_networks.iter().any(|n| n.contains(ip))
    }

    /// Whether `netns` is the host's network namespace.
    pub fn is_host_netns(&self, netns: u32) -> bool {
        netns == self.host_netns
    }

    /// Whether a listening socket on `addr` is reported (not on an ephemeral port).
    pub fn is_tracked_listen(&self, addr: SocketAddr) -> bool {
        addr.port() != 0 && !self.ephemeral_ports.contains(addr.port())
    }
}

/// Parses a `/proc/<pid>/ns/net` link target, `net:[4026531840]`.
pub fn parse_netns_link(s: &str) -> Option<u32> {
    s.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok()
}

/// Inode of the host network namespace: that of pid 1 under `proc_root`
/// (`/proc`, or the host's /proc mounted elsewhere in a container).
pub fn host_netns(proc_root: &Path) -> io::Result<u32> {
    let link = std::fs::read_link(proc_root.join("1/ns/net"))?;
    let text = link.to_string_lossy();
    parse_netns_link(&text).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected netns link {text:?}"),
        )
    })
}

#[cfg(test)]
#[path = "filter/tests.rs"]
mod tests;
