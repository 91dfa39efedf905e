//! `container_net_interface_*`: the interfaces of a container's own network namespace, read at
//! scrape time from `/proc/<pid>/net/dev` of one of its processes (the file shows the counters
//! of the reader's target's netns, whatever the agent's own netns is).
//!
//! Only containers with a network namespace of their own are reported: a container in the host's
//! netns would repeat the node's interfaces (node_net_*) under its name. Containers sharing one
//! netns (the containers of a Kubernetes pod share the sandbox's) each report the same
//! interfaces, as cAdvisor does: the series are per container, the counters per netns.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use prometheus::proto::MetricFamily;
use sonde_node::procfs::{NetDevCounters, parse_net_dev};

use sonde_registry::{ExportedContainer, NodeLabels};

use crate::catalogue as cat;
use crate::exposition::Family;
use crate::self_metrics::ScrapeStats;

/// One interface metric: its definition and its counter.
type Field = (&'static cat::MetricDef, fn(&NetDevCounters) -> u64);

const FIELDS: [Field; 8] = [
    (&cat::CONTAINER_NET_IF_RX_BYTES, |c| c.rx_bytes),
    (&cat::CONTAINER_NET_IF_TX_BYTES, |c| c.tx_bytes),
    (&cat::CONTAINER_NET_IF_RX_PACKETS, |c| c.rx_packets),
    (&cat::CONTAINER_NET_IF_TX_PACKETS, |c| c.tx_packets),
    (&cat::CONTAINER_NET_IF_RX_DROPPED, |c| c.rx_dropped),
    (&cat::CONTAINER_NET_IF_TX_DROPPED, |c| c.tx_dropped),
    (&cat::CONTAINER_NET_IF_RX_ERRORS, |c| c.rx_errors),
    (&cat::CONTAINER_NET_IF_TX_ERRORS, |c| c.tx_errors),
];

/// What one container's netns looks like now.
#[derive(Debug, PartialEq, Eq)]
pub enum Interfaces {
    /// The container has its own netns; its interfaces' counters.
    Own(Vec<NetDevCounters>),
    /// The container's processes are in the host's netns.
    HostNetwork,
    /// No process of the container could be looked at (all exited since the listing, or the
    /// agent may not look at them).
    Gone,
}

/// The netns of `pid` under `procfs`: the inode of its `ns/net` (stat follows the magic link
/// to the nsfs inode, which identifies the namespace).
fn netns(procfs: &Path, pid: u32) -> std::io::Result<u64> {
    Ok(std::fs::metadata(procfs.join(pid.to_string()).join("ns/net"))?.ino())
}

/// Reads the interfaces of `pids`' netns: the first pid that can be looked at decides.
/// `host_netns` is pid 1's. Errors other than "the process is gone" are returned.
pub fn read_interfaces(
    procfs: &Path,
    host_netns: u64,
    pids: impl IntoIterator<Item = u32>,
) -> Result<Interfaces, std::io::Error> {
    for pid in pids {
        let ns = match netns(procfs, pid) {
            Ok(ns) => ns,
            Err(e) if gone(&e) => continue,
            Err(e) => return Err(e),
        };
        if ns == host_netns {
            return Ok(Interfaces::HostNetwork);
        }
        let text = match std::fs::read_to_string(procfs.join(pid.to_string()).join("net/dev")) {
            Ok(t) => t,
            Err(e) if gone(&e) => continue,
            Err(e) => return Err(e),
        };
        // Malformed lines are skipped (the kernel writes none; a bad line must not hide the rest).
        let (counters, _bad) = parse_net_dev(&text);
        return Ok(Interfaces::Own(counters));
    }
    Ok(Interfaces::Gone)
}

/// The process exited, or the agent may not look at it (not root: another user's process):
/// normal, not an error to count on every scrape.
fn gone(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
    ) || e.raw_os_error() == Some(libc::ESRCH)
}

/// The host's netns: pid 1's, or, where pid 1 may not be looked at (a sandbox denies ptrace
/// access to it even to root), the agent's own, which is the host's when it runs with the host
/// network as it must (DaemonSet `hostNetwork: true`, `docker run --network host`).
fn host_netns(procfs: &Path) -> Option<u64> {
    netns(procfs, 1)
        .or_else(|_| {
            Ok::<u64, std::io::Error>(std::fs::metadata(procfs.join("self/ns/net"))?.ino())
        })
        .ok()
}

/// Renders `container_net_interface_*` for every exported container with its own netns.
/// Without access to the host's netns (not root) nothing is rendered: which containers have a
/// netns of their own cannot be told.
pub fn render_interfaces(
    containers: &[ExportedContainer],
    procfs: &Path,
    stats: &ScrapeStats,
    node: &NodeLabels,
    out: &mut Vec<MetricFamily>,
) {
    let Some(host) = host_netns(procfs) else {
        return;
    };
    let mut fams = FIELDS.map(|(def, _)| Family::new(def));
    for c in containers {
        let counters = match read_interfaces(procfs, host, c.pids.iter().map(|(pid, _)| *pid)) {
            Ok(Interfaces::Own(counters)) => counters,
            Ok(Interfaces::HostNetwork | Interfaces::Gone) => continue,
            Err(e) => {
                stats.read_error("net_dev");
                tracing::debug!(container = %c.container_id, error = %e, "Failed to read the container's net/dev");
                continue;
            }
        };
        for iface in &counters {
            let labels: &[(&str, &str)] = &[
                ("container_id", &c.container_id),
                ("interface", &iface.name),
            ];
            for (fam, (_, value)) in fams.iter_mut().zip(FIELDS) {
                fam.add(labels, value(iface) as f64);
            }
        }
    }
    for f in fams {
        f.finish(node, out);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::fs;

    const NET_DEV: &str = "Inter-|   Receive |  Transmit\n face |bytes packets errs drop fifo frame compressed multicast|bytes packets errs drop fifo colls carrier compressed\n    lo: 100 2 0 0 0 0 0 0 100 2 0 0 0 0 0 0\n  eth0: 5000 40 1 2 0 0 0 0 7000 50 3 4 0 0 0 0\n";

    /// A fake procfs: pid 1 (host netns), 10 in the host netns (a hard link to pid 1's ns/net:
    /// same inode), 20 in a netns of its own, 30 without files (gone).
    fn fake_proc(root: &Path) {
        for pid in ["1", "10", "20"] {
            fs::create_dir_all(root.join(pid).join("ns")).unwrap();
            fs::create_dir_all(root.join(pid).join("net")).unwrap();
        }
        fs::write(root.join("1/ns/net"), "").unwrap();
        fs::hard_link(root.join("1/ns/net"), root.join("10/ns/net")).unwrap();
        fs::write(root.join("20/ns/net"), "").unwrap();
        fs::write(root.join("20/net/dev"), NET_DEV).unwrap();
        fs::write(root.join("10/net/dev"), NET_DEV).unwrap();
    }

    #[test]
    fn own_host_and_gone_netns() {
        let tmp = tempfile::tempdir().unwrap();
        fake_proc(tmp.path());
        let host = netns(tmp.path(), 1).unwrap();
        assert_eq!(
            read_interfaces(tmp.path(), host, [10]).unwrap(),
            Interfaces::HostNetwork
        );
        assert_eq!(
            read_interfaces(tmp.path(), host, [30]).unwrap(),
            Interfaces::Gone
        );
        assert_eq!(
            read_interfaces(tmp.path(), host, []).unwrap(),
            Interfaces::Gone
        );
        // A gone pid first: the next one decides.
        let Interfaces::Own(counters) = read_interfaces(tmp.path(), host, [30, 20]).unwrap() else {
            panic!("pid 20 has its own netns");
        };
        assert_eq!(counters.len(), 2);
        let eth0 = &counters[1];
        assert_eq!(eth0.name, "eth0");
        assert_eq!(
            (
                eth0.rx_bytes,
                eth0.rx_packets,
                eth0.rx_errors,
                eth0.rx_dropped
            ),
            (5000, 40, 1, 2)
        );
        assert_eq!(
            (
                eth0.tx_bytes,
                eth0.tx_packets,
                eth0.tx_errors,
                eth0.tx_dropped
            ),
            (7000, 50, 3, 4)
        );
    }

    #[test]
    fn host_netns_falls_back_to_the_agents_own() {
        let tmp = tempfile::tempdir().unwrap();
        fake_proc(tmp.path());
        let pid1 = netns(tmp.path(), 1).unwrap();
        assert_eq!(host_netns(tmp.path()), Some(pid1));
        // pid 1 hidden: "self" (a hard link standing for the agent's netns) decides.
        fs::create_dir_all(tmp.path().join("self/ns")).unwrap();
        fs::hard_link(tmp.path().join("1/ns/net"), tmp.path().join("self/ns/net")).unwrap();
        fs::remove_file(tmp.path().join("1/ns/net")).unwrap();
        assert_eq!(host_netns(tmp.path()), Some(pid1));
        fs::remove_file(tmp.path().join("self/ns/net")).unwrap();
        assert_eq!(host_netns(tmp.path()), None);
    }

    #[test]
    fn unreadable_net_dev_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        fake_proc(tmp.path());
        let host = netns(tmp.path(), 1).unwrap();
        // A directory where the file should be: EISDIR, not "gone".
        fs::remove_file(tmp.path().join("20/net/dev")).unwrap();
        fs::create_dir(tmp.path().join("20/net/dev")).unwrap();
        assert!(read_interfaces(tmp.path(), host, [20]).is_err());
    }
}
