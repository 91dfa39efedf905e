//! Sockets older than the agent: adopted once, when the tracer starts.
//!
//! The tracer's iterator lists every TCP socket open now (`sonde_tracer::seed`). Outbound
//! connections to destinations (the same filter as every other connection) are put into the
//! kernel's `active` map and into the connection table (`sonde_tracer::connections`) as
//! counted up to now, so they show as active at once and their bytes count from the agent's
//! start; they are not connects (those happened before). Listeners are reported as if they
//! had just opened. Owners are found by socket inode in /proc (once). Where the iterator
//! cannot run (kernel < 5.9, no iter/tcp), one warning says what is missing: such sockets are
//! seen from their next change on.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;

use sonde_tracer::connections::Connections;
use sonde_tracer::seed::{Adopted, ExistingSocket, classify, socket_owners};
use sonde_tracer::{ConnectionBytes, Tracer};

/// A listener open before the agent, reported at the bridge's start.
#[derive(Debug, Clone)]
pub struct SeededListener {
    pub pid: u32,
    pub netns: u32,
    pub addr: SocketAddr,
}

/// What seeding found, for the log and the tests.
#[derive(Debug, Default)]
pub struct Seeded {
    pub listeners: Vec<SeededListener>,
    pub connections: usize,
}

/// Adopts the outbound connections and collects the listeners open now.
pub fn seed(
    tracer: &mut Tracer,
    btf_path: &Path,
    procfs: &Path,
    table: &mut Connections,
) -> Seeded {
    let filter = table.filter();
    let sockets = match tracer.existing_sockets(btf_path) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "Sockets open before the agent are not seeded: such connections and listeners are seen from their next state change (needs kernel >= 5.9 with BPF iterators)");
            return Seeded::default();
        }
    };
    let (listeners, outbound) = classify(sockets);
    let outbound: Vec<ExistingSocket> = outbound
        .into_iter()
        .filter(|s| filter.is_destination(s.dst, s.netns))
        .collect();
    let listeners: Vec<ExistingSocket> = listeners
        .into_iter()
        .filter(|s| filter.is_tracked_listen(s.src))
        .collect();
    let inodes: HashSet<u64> = outbound
        .iter()
        .chain(&listeners)
        .map(|s| s.inode)
        .filter(|i| *i != 0)
        .collect();
    let owners = socket_owners(procfs, &inodes);
    let adopted: Vec<Adopted> = outbound
        .into_iter()
        .map(|socket| Adopted {
            pid: owners.get(&socket.inode).copied().unwrap_or(0),
            socket,
        })
        .collect();
    let taken: HashSet<u64> = match tracer.adopt_connections(&adopted) {
        Ok(socks) => socks.into_iter().collect(),
        Err(e) => {
            tracing::warn!(error = %e, "Connections open before the agent could not be adopted");
            HashSet::new()
        }
    };
    let connections = taken.len();
    for a in adopted.iter().filter(|a| taken.contains(&a.socket.sock)) {
        let s = &a.socket;
        table.adopt(&ConnectionBytes {
            pid: a.pid,
            netns: s.netns,
            sock: s.sock,
            src: s.src,
            dst: s.dst,
            bytes_sent: s.bytes_sent,
            bytes_received: s.bytes_received,
            duration_ns: 0,
            cgroup_id: 0,
            segs_out: s.segs_out,
            segs_in: s.segs_in,
        });
    }
    let listeners: Vec<SeededListener> = listeners
        .into_iter()
        .filter_map(|s| {
            Some(SeededListener {
                pid: *owners.get(&s.inode)?,
                netns: s.netns,
                addr: s.src,
            })
        })
        .collect();
    tracing::info!(
        connections,
        listeners = listeners.len(),
        "Seeded the TCP sockets open before the agent"
    );
    Seeded {
        listeners,
        connections,
    }
}
