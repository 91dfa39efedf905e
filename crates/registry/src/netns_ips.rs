//! The IP addresses of a network namespace, for expanding wildcard listeners.
//!
//! A Coroot server matches a client's `actual_destination` against the listen addresses of
//! every container, so `0.0.0.0:8080` must be exported as the addresses it really accepts on:
//! the local addresses of the listening process's network namespace (as coroot-node-agent
//! does). They are read from the host through the process: `/proc/<pid>/net/fib_trie` (IPv4:
//! the `local` table's host routes) and `/proc/<pid>/net/if_inet6` (IPv6, link-local left
//! out: a peer cannot dial it without a zone). Cached per namespace inode, bounded, re-read
//! after [`REFRESH`] (a pod's address is set before its containers start, but namespaces
//! change).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a namespace's addresses are reused before they are read again.
pub const REFRESH: Duration = Duration::from_secs(30);
/// Most namespaces cached (cleared when full).
const MAX_NAMESPACES: usize = 4_096;

/// The IPv4 addresses of the `local` table's host routes in a `fib_trie` text: a
/// `|-- a.b.c.d` line followed by `/32 host LOCAL`. Loopback included; the caller decides.
pub fn parse_fib_trie_local(text: &str) -> Vec<Ipv4Addr> {
    let mut out = Vec::new();
    let mut last = None;
    for line in text.lines() {
        let t = line.trim_start_matches([' ', '|', '+', '-']).trim();
        if let Ok(ip) = t.parse::<Ipv4Addr>() {
            last = Some(ip);
        } else if t == "/32 host LOCAL"
            && let Some(ip) = last
            && !out.contains(&ip)
        {
            out.push(ip);
        }
    }
    out
}

/// The IPv6 addresses of an `if_inet6` text (`<32 hex> <ifindex> <prefix> <scope> <flags>
/// <name>`), link-local (scope 0x20) left out. Loopback included; the caller decides.
pub fn parse_if_inet6(text: &str) -> Vec<Ipv6Addr> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let (Some(hex), Some(_), Some(_), Some(scope)) = (f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        if hex.len() != 32 || scope == "20" {
            continue;
        }
        let Ok(v) = u128::from_str_radix(hex, 16) else {
            continue;
        };
        let ip = Ipv6Addr::from(v);
        if !out.contains(&ip) {
            out.push(ip);
        }
    }
    out
}

/// Reads the addresses of the network namespace `pid` is in (empty when it is gone).
pub fn read(procfs: &Path, pid: u32) -> Vec<IpAddr> {
    let dir = procfs.join(pid.to_string()).join("net");
    let mut out: Vec<IpAddr> = std::fs::read_to_string(dir.join("fib_trie"))
        .map(|t| parse_fib_trie_local(&t))
        .unwrap_or_default()
        .into_iter()
        .map(IpAddr::V4)
        .collect();
    out.extend(
        std::fs::read_to_string(dir.join("if_inet6"))
            .map(|t| parse_if_inet6(&t))
            .unwrap_or_default()
            .into_iter()
            .map(IpAddr::V6),
    );
    out
}

/// Addresses per network namespace inode, read through a process in it.
#[derive(Debug)]
pub struct NetnsIps {
    procfs: PathBuf,
    cache: HashMap<u32, (Instant, Arc<[IpAddr]>)>,
}

impl NetnsIps {
    pub fn new(procfs: &Path) -> NetnsIps {
        NetnsIps {
            procfs: procfs.to_path_buf(),
            cache: HashMap::new(),
        }
    }

    /// The addresses of namespace `netns`, read through `pid` when not cached (or stale).
    pub fn get(&mut self, netns: u32, pid: u32, now: Instant) -> Arc<[IpAddr]> {
        if let Some((at, ips)) = self.cache.get(&netns)
            && now.saturating_duration_since(*at) < REFRESH
        {
            return ips.clone();
        }
        let ips: Arc<[IpAddr]> = read(&self.procfs, pid).into();
        if ips.is_empty() {
            // The process is gone: the last addresses known, if any; nothing cached.
            return self
                .cache
                .get(&netns)
                .map(|(_, ips)| ips.clone())
                .unwrap_or(ips);
        }
        if self.cache.len() >= MAX_NAMESPACES {
            self.cache.clear();
        }
        self.cache.insert(netns, (now, ips.clone()));
        ips
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    // A pod's namespace as /proc/<pid>/net/fib_trie shows it (captured from a CRI pod here).
    const FIB_TRIE: &str = "Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 10.88.0.0/16 2 0 2
        |-- 10.88.0.0
           /16 link UNICAST
        |-- 10.88.0.7
           /32 host LOCAL
        |-- 10.88.255.255
           /32 link BROADCAST
     +-- 127.0.0.0/8 2 0 2
        |-- 127.0.0.1
           /32 host LOCAL
Local:
  +-- 0.0.0.0/0 3 0 5
     |-- 10.88.0.7
        /32 host LOCAL
     +-- 127.0.0.0/8 2 0 2
        |-- 127.0.0.1
           /32 host LOCAL
";

    const IF_INET6: &str = "\
00000000000000000000000000000001 01 80 10 80       lo
fe800000000000008c2a3bfffe4d5e6f 02 40 20 80     eth0
fd000000000000000000000000000007 02 40 00 80     eth0
";

    #[test]
    fn local_ipv4_addresses_once_each() {
        assert_eq!(
            parse_fib_trie_local(FIB_TRIE),
            vec![Ipv4Addr::new(10, 88, 0, 7), Ipv4Addr::LOCALHOST]
        );
    }

    #[test]
    fn ipv6_without_link_local() {
        assert_eq!(
            parse_if_inet6(IF_INET6),
            vec![Ipv6Addr::LOCALHOST, "fd00::7".parse::<Ipv6Addr>().unwrap()]
        );
        assert!(parse_if_inet6("garbage\nzz 1 2 3 4 x\n").is_empty());
    }

    #[test]
    fn read_through_a_process_and_cache_by_namespace() {
        let dir = tempfile::tempdir().unwrap();
        let net = dir.path().join("42/net");
        std::fs::create_dir_all(&net).unwrap();
        std::fs::write(net.join("fib_trie"), FIB_TRIE).unwrap();
        std::fs::write(net.join("if_inet6"), IF_INET6).unwrap();
        let mut c = NetnsIps::new(dir.path());
        let now = Instant::now();
        assert_eq!(c.get(7, 42, now).len(), 4);
        // Cached: another pid of the namespace (gone) gets the same answer.
        assert_eq!(c.get(7, 43, now).len(), 4);
        // Stale, read again through a gone pid: the last addresses known.
        assert_eq!(c.get(7, 43, now + REFRESH).len(), 4);
        // An unknown namespace through a gone pid: nothing.
        assert!(c.get(8, 43, now).is_empty());
    }
}
