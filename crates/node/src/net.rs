//! Which network interfaces are reported, their up state (sysfs) and their addresses
//! (getifaddrs, behind the [`AddressSource`] seam).
//!
//! All three sources (/proc/net/dev, /sys/class/net, getifaddrs) describe the network namespace
//! of the reading process (/proc/net is a link to /proc/self/net), so the agent must run with
//! the host network for node_net_* to describe the node.

use std::collections::HashMap;
use std::ffi::CStr;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::Arc;

use crate::procfs::NetDevCounters;
use crate::{Error, InterfaceStats};

/// Where interface addresses come from. The real one is [`SystemAddresses`]; tests inject a list.
pub trait AddressSource {
    /// Every (interface name, address) pair of the current network namespace. Alias labels such
    /// as "eth0:1" may be returned as is; they are folded into their interface.
    fn addresses(&self) -> Result<Vec<(String, IpAddr)>, Error>;
}

/// getifaddrs(3) in the current network namespace.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemAddresses;

impl AddressSource for SystemAddresses {
    fn addresses(&self) -> Result<Vec<(String, IpAddr)>, Error> {
        getifaddrs().map_err(|e| Error::Addresses {
            source: Arc::new(e),
        })
    }
}

/// Whether an interface is reported in node_net_*: coroot-node-agent's name pattern, or a
/// physical device (has `device`), a bond (has `bonding`), or a bridge with a physical or bond
/// port. Never `lo`; veths, tunnels, docker0/cni0-style bridges (only veth ports) are excluded.
pub fn is_reported_interface(sysfs: &Path, name: &str) -> bool {
    if name == "lo" || name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return false;
    }
    if coroot_name_match(name) {
        return true;
    }
    let dir = sysfs.join("class/net").join(name);
    if is_physical_or_bond(&dir) {
        return true;
    }
    if dir.join("bridge").exists() {
        let Ok(ports) = std::fs::read_dir(dir.join("brif")) else {
            return false;
        };
        return ports
            .flatten()
            .any(|port| is_physical_or_bond(&sysfs.join("class/net").join(port.file_name())));
    }
    false
}

fn is_physical_or_bond(dir: &Path) -> bool {
    // symlink_metadata: `device` is a symlink; a dangling one still marks a real device.
    dir.join("device").symlink_metadata().is_ok() || dir.join("bonding").exists()
}

/// coroot-node-agent's `^(en(p\d+)?p\d+s\d+(f\d+)?|eth\d+|eno\d+|ens\d+|em\d+|bond\d+|p\d+p\d+|enx[0-9a-f]+|br\d+|vmbr\d+)`
/// on the lowercased name, unanchored at the end (so VLANs such as "eth0.100" match too).
/// Kept so that every interface coroot reports is reported here as well.
fn coroot_name_match(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    let n = name.as_str();
    // Each alternative: literal prefix, then a sequence of (separator, class) steps.
    let digits_after = |prefix: &str| n.strip_prefix(prefix).and_then(digits).is_some();
    if ["eth", "eno", "ens", "em", "bond", "br", "vmbr"]
        .iter()
        .any(|p| digits_after(p))
    {
        return true;
    }
    if n.strip_prefix("enx")
        .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_hexdigit()))
    {
        return true;
    }
    // p\d+p\d+
    if n.strip_prefix('p')
        .and_then(digits)
        .and_then(|r| r.strip_prefix('p'))
        .and_then(digits)
        .is_some()
    {
        return true;
    }
    // en(p\d+)?p\d+s\d+
    let Some(r) = n.strip_prefix("enp").and_then(digits) else {
        return false;
    };
    let after_first = |r: &str| r.strip_prefix('s').and_then(digits).is_some();
    after_first(r)
        || r.strip_prefix('p')
            .and_then(digits)
            .is_some_and(after_first)
}

/// Consumes one or more ASCII digits; returns the rest.
fn digits(s: &str) -> Option<&str> {
    let end = s.bytes().take_while(u8::is_ascii_digit).count();
    (end > 0).then(|| &s[end..])
}

/// operstate "up" is up; "unknown" (drivers that do not report it, e.g. some virtual NICs)
/// falls back to the IFF_UP bit of `flags`; anything else, or no sysfs entry, is down.
pub fn is_up(sysfs: &Path, name: &str) -> bool {
    let dir = sysfs.join("class/net").join(name);
    match std::fs::read_to_string(dir.join("operstate")) {
        Ok(state) => match state.trim() {
            "up" => true,
            "unknown" => std::fs::read_to_string(dir.join("flags"))
                .ok()
                .and_then(|f| u32::from_str_radix(f.trim().trim_start_matches("0x"), 16).ok())
                .is_some_and(|flags| flags & libc::IFF_UP as u32 != 0),
            _ => false,
        },
        Err(_) => false,
    }
}

/// Addresses worth reporting: not link-local, not multicast, not unspecified.
fn is_reported_ip(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !(v4.is_link_local() || v4.is_multicast() || v4.is_unspecified()),
        IpAddr::V6(v6) => {
            // fe80::/10 (Ipv6Addr::is_unicast_link_local is stable since 1.84).
            !(v6.is_unicast_link_local() || v6.is_multicast() || v6.is_unspecified())
        }
    }
}

/// Builds the reported interfaces from /proc/net/dev counters, sysfs and addresses.
pub(crate) fn interfaces(
    sysfs: &Path,
    counters: Vec<NetDevCounters>,
    addresses: &dyn AddressSource,
    errors: &mut Vec<Error>,
) -> Vec<InterfaceStats> {
    let reported: Vec<NetDevCounters> = counters
        .into_iter()
        .filter(|c| is_reported_interface(sysfs, &c.name))
        .collect();
    if reported.is_empty() {
        return Vec::new();
    }
    let mut by_name: HashMap<String, Vec<IpAddr>> = HashMap::new();
    match addresses.addresses() {
        Ok(list) => {
            for (name, ip) in list {
                // "eth0:1" is an alias label of eth0.
                let base = name.split(':').next().unwrap_or(&name).to_owned();
                if !is_reported_ip(&ip) {
                    continue;
                }
                let ips = by_name.entry(base).or_default();
                if !ips.contains(&ip) {
                    ips.push(ip);
                }
            }
        }
        Err(e) => errors.push(e),
    }
    reported
        .into_iter()
        .map(|c| InterfaceStats {
            up: is_up(sysfs, &c.name),
            ips: by_name.remove(&c.name).unwrap_or_default(),
            name: c.name,
            rx_bytes: c.rx_bytes,
            tx_bytes: c.tx_bytes,
            rx_packets: c.rx_packets,
            tx_packets: c.tx_packets,
        })
        .collect()
}

/// Safe wrapper over getifaddrs(3): copies names and IPv4/IPv6 addresses out of the list and
/// frees it before returning.
fn getifaddrs() -> io::Result<Vec<(String, IpAddr)>> {
    struct List(*mut libc::ifaddrs);
    impl Drop for List {
        fn drop(&mut self) {
            // SAFETY: self.0 came from a successful getifaddrs and is freed exactly once.
            unsafe { libc::freeifaddrs(self.0) }
        }
    }

    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs only writes the list head through the valid pointer we pass.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let list = List(head);
    let mut out = Vec::new();
    let mut cur = list.0;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list owned by `list`, alive until it is dropped below.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let name = unsafe { CStr::from_ptr(ifa.ifa_name) }
            .to_string_lossy()
            .into_owned();
        // SAFETY: ifa_addr is non-null and points to at least a sockaddr header.
        let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
        let ip = match family {
            libc::AF_INET => {
                // SAFETY: family AF_INET means the storage is a sockaddr_in.
                let sin =
                    unsafe { std::ptr::read_unaligned(ifa.ifa_addr.cast::<libc::sockaddr_in>()) };
                IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)))
            }
            libc::AF_INET6 => {
                // SAFETY: family AF_INET6 means the storage is a sockaddr_in6.
                let sin6 =
                    unsafe { std::ptr::read_unaligned(ifa.ifa_addr.cast::<libc::sockaddr_in6>()) };
                IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr))
            }
            _ => continue,
        };
        out.push((name, ip));
    }
    drop(list);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coroot_names() {
        for yes in [
            "eth0",
            "eth0.100",
            "ens3",
            "eno1",
            "em1",
            "bond0",
            "br0",
            "vmbr0",
            "enp3s0",
            "enp3s0f1",
            "enp0p3s0",
            "p1p1",
            "enx00e04c680001",
            "ETH0",
            // Xen's enX0 matches enx[0-9a-f]+ after lowercasing, in coroot too.
            "enX0",
        ] {
            assert!(coroot_name_match(yes), "{yes}");
        }
        for no in [
            "lo",
            "docker0",
            "cni0",
            "veth1234",
            "br-1a2b3c",
            "eth",
            "enp3",
            "enp",
            "flannel.1",
            "cali123",
            "tunl0",
            "wlan0",
            "p1",
            "enxzz",
        ] {
            assert!(!coroot_name_match(no), "{no}");
        }
    }

    #[test]
    fn ip_filter() {
        let ok = ["192.0.2.2", "fd00::2", "10.0.0.1", "2001:db8::1"];
        let no = [
            "169.254.1.1",
            "fe80::fc:ff:fe00:1",
            "224.0.0.1",
            "ff02::1",
            "0.0.0.0",
            "::",
        ];
        for ip in ok {
            assert!(is_reported_ip(&ip.parse().unwrap()), "{ip}");
        }
        for ip in no {
            assert!(!is_reported_ip(&ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn getifaddrs_lists_loopback() {
        // Every network namespace has lo with 127.0.0.1 once it is up; if it is down the list
        // may lack it, so only check the call works and any lo address is loopback.
        let list = getifaddrs().unwrap();
        for (name, ip) in &list {
            if name == "lo" {
                assert!(ip.is_loopback(), "{ip}");
            }
        }
    }
}
