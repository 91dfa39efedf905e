//! The one owner of the open-connection table: the ring's connection records and the
//! on-demand dumps of the kernel's `active` map merged into per-process deltas.
//!
//! The kernel reports an outbound connection through two paths: its close record in the ring
//! ([`Event::ConnectionClosed`], or [`Event::ConnectOk`] for a connection it could not keep in
//! its map) and the `active` map, dumped when asked ([`Tracer::open_connection_bytes`]).
//! [`Connections`] takes both, filtered to destinations by one [`ConnectionFilter`], through
//! one [`ConnectionTable`], and hands out [`ConnectionDelta`]s: what each connection adds to
//! its process's counters, each connect and each byte exactly once.
//!
//! Why one owner: the table's exactly-once rule depends on order (the kernel deletes a
//! connection's map entry before it writes the close record, so a dump that showed a
//! connection must be merged before its close record). When the task that reads the ring
//! also makes the dumps ([`Connections::dump`] between two ring reads), that order is the
//! task's own and the table needs no lock, and whoever consumes the deltas (the registry)
//! gets them all through the same ordered path.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::conntrack::{Applied, ByteDelta, Connected, ConnectionTable};
use crate::decode::{ConnectionBytes, Event};
use crate::filter::ConnectionFilter;
use crate::{Error, Tracer};

/// What one report of a connection adds to the counters of its process (`pid`, 0 unknown)
/// and of the cgroup the kernel saw that process in at connect (`cgroup_id`, 0 unknown):
/// its connect, when this is the first report of the connection, and the bytes and segments
/// not counted before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionDelta {
    /// Connecting process; 0 if unknown (attribute to no container).
    pub pid: u32,
    /// Cgroup v2 id of the connecting task at connect(); 0 if unknown.
    pub cgroup_id: u64,
    /// Network namespace of the socket.
    pub netns: u32,
    /// Local address (with the destination, the key of a NAT lookup).
    pub src: SocketAddr,
    /// Destination.
    pub dst: SocketAddr,
    /// Some: the connection is counted as a connect now, with its connect() to ESTABLISHED
    /// time (zero when unknown).
    pub connect: Option<Duration>,
    /// Newly acknowledged bytes sent.
    pub sent: u64,
    /// Newly received bytes.
    pub received: u64,
    /// Newly sent segments.
    pub segs_out: u64,
    /// Newly received segments.
    pub segs_in: u64,
}

impl ConnectionDelta {
    fn connect(c: Connected) -> Self {
        ConnectionDelta {
            pid: c.pid,
            cgroup_id: c.cgroup_id,
            netns: c.netns,
            src: c.src,
            dst: c.dst,
            connect: Some(Duration::from_nanos(c.duration_ns)),
            sent: 0,
            received: 0,
            segs_out: 0,
            segs_in: 0,
        }
    }

    fn bytes(d: ByteDelta, connect: Option<Duration>) -> Self {
        ConnectionDelta {
            pid: d.pid,
            cgroup_id: d.cgroup_id,
            netns: d.netns,
            src: d.src,
            dst: d.dst,
            connect,
            sent: d.sent,
            received: d.received,
            segs_out: d.segs_out,
            segs_in: d.segs_in,
        }
    }
}

/// An open connection the latest dump showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActiveConnection {
    /// Connecting process; 0 if unknown.
    pub pid: u32,
    /// Cgroup v2 id of the connecting task at connect(); 0 if unknown.
    pub cgroup_id: u64,
    /// Network namespace of the socket.
    pub netns: u32,
    /// Local address.
    pub src: SocketAddr,
    /// Destination.
    pub dst: SocketAddr,
}

/// The table's figures, for self-metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionStats {
    /// Connections kept now.
    pub tracked: usize,
    /// See [`ConnectionTable::overflow`].
    pub overflow: u64,
    /// See [`ConnectionTable::stale`].
    pub stale: u64,
}

/// The connection table and the filter in front of it; see the module docs.
#[derive(Debug)]
pub struct Connections {
    table: ConnectionTable,
    filter: ConnectionFilter,
}

impl Connections {
    /// A tracker keeping at most `capacity` connections (the kernel map's size,
    /// [`crate::TracerConfig::max_connections`]), of the destinations `filter` accepts.
    pub fn new(capacity: usize, filter: ConnectionFilter) -> Self {
        Connections {
            table: ConnectionTable::new(capacity),
            filter,
        }
    }

    /// The destination filter, for the caller's other events (failures, retransmits, L7).
    pub fn filter(&self) -> &ConnectionFilter {
        &self.filter
    }

    /// Merges one ring event: what a [`Event::ConnectOk`] or [`Event::ConnectionClosed`] to a
    /// destination adds (None for other events, other endpoints, and a close that adds
    /// nothing new).
    pub fn apply(&mut self, event: &Event) -> Option<ConnectionDelta> {
        let (Event::ConnectOk { netns, dst, .. } | Event::ConnectionClosed { netns, dst, .. }) =
            *event
        else {
            return None;
        };
        if !self.filter.is_destination(dst, netns) {
            return None;
        }
        let Applied { connected, bytes } = self.table.apply(event);
        let connect = connected.map(|c| Duration::from_nanos(c.duration_ns));
        match (bytes, connected) {
            // A close: its bytes not counted yet, and its connect if no dump showed it.
            (Some(d), _) => Some(ConnectionDelta::bytes(d, connect)),
            // A ConnectOk: the connect alone (the kernel keeps nothing to close).
            (None, Some(c)) => Some(ConnectionDelta::connect(c)),
            (None, None) => None,
        }
    }

    /// Takes a connection open before the tracer started ([`crate::seed`]) as counted up to
    /// now; see [`ConnectionTable::adopt`].
    pub fn adopt(&mut self, c: &ConnectionBytes) -> bool {
        self.table.adopt(c)
    }

    /// Dumps the kernel's open connections and merges them ([`Connections::merge_dump`]).
    /// On failure nothing changes: the connections are seen at the next dump or at their
    /// close.
    pub fn dump(
        &mut self,
        tracer: &Tracer,
        now: Instant,
        out: &mut Vec<ConnectionDelta>,
    ) -> Result<(), Error> {
        let snapshot = tracer.open_connection_bytes()?;
        self.merge_dump(snapshot, now, out);
        Ok(())
    }

    /// Merges a dump of the kernel's open connections made at `now`: a connection seen for
    /// the first time is a connect now, with its bytes so far (one delta); the others add
    /// their bytes since they were last counted. Appends to `out`.
    pub fn merge_dump(
        &mut self,
        mut snapshot: Vec<ConnectionBytes>,
        now: Instant,
        out: &mut Vec<ConnectionDelta>,
    ) {
        snapshot.retain(|c| self.filter.is_destination(c.dst, c.netns));
        self.table
            .update_open_each(&snapshot, now, |connected, bytes| {
                let connect = connected.map(|c| Duration::from_nanos(c.duration_ns));
                match (bytes, connected) {
                    (Some(d), _) => out.push(ConnectionDelta::bytes(d, connect)),
                    (None, Some(c)) => out.push(ConnectionDelta::connect(c)),
                    (None, None) => {}
                }
            });
    }

    /// The connections the latest dump showed.
    pub fn active(&self) -> impl Iterator<Item = ActiveConnection> + '_ {
        self.table
            .active_connections()
            .map(|(pid, cgroup_id, netns, src, dst)| ActiveConnection {
                pid,
                cgroup_id,
                netns,
                src,
                dst,
            })
    }

    /// The table's figures now.
    pub fn stats(&self) -> ConnectionStats {
        ConnectionStats {
            tracked: self.table.len(),
            overflow: self.table.overflow(),
            stale: self.table.stale(),
        }
    }
}

#[cfg(test)]
#[path = "connections/tests.rs"]
mod tests;
