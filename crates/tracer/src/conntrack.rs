//! Userspace side of the connection state machine, pure and unit-tested.
//!
//! The kernel writes one ring record per outbound connection, at its close
//! ([`Event::ConnectionClosed`], with the connect duration and the socket's
//! final byte totals). Connections still open are learned from the `active`
//! map dump made for every scrape ([`crate::Tracer::open_connection_bytes`]),
//! which carries the same fields and the byte totals so far. So a connection
//! reaches userspace once or twice, in either order of arrival, and
//! [`ConnectionTable`] makes sure that it is counted exactly once as a
//! connect ([`Connected`]) and that every byte is counted exactly once
//! ([`ByteDelta`]):
//! - first seen in a dump: counted as connected, its bytes so far counted, and
//!   kept (deltas at later dumps and at close);
//! - first seen at close (opened and closed between two scrapes): counted as
//!   connected, with its final totals;
//! - [`Event::ConnectOk`] (the kernel could not keep the connection in its map,
//!   so neither a dump nor a close will show it): counted as connected, not kept.
//!
//! Ordering: the kernel deletes a connection's map entry before it writes the
//! close record, and the one task that owns the table ([`crate::connections`])
//! merges each dump right after making it, between two reads of the ring, so a
//! dump that saw a connection is always applied before that connection's close. A socket address reused by a new
//! connection is told apart by its addresses: while the table still holds the
//! old connection (its close record not read yet), the new one is left for a
//! later dump or its own close.
//!
//! "Active connections" are the ones the latest dump showed. A kept connection
//! missing from dumps for [`STALE_AFTER`] (its close record was lost: a run the
//! kernel skipped, counted in lost events) is dropped and counted in
//! [`ConnectionTable::stale`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::decode::{ConnectionBytes, Event};

/// How long a kept connection may be missing from the kernel's map before it is
/// dropped as stale. Far above the reader's drain period (100 ms), so a close
/// record still waiting in the ring is always read first.
pub const STALE_AFTER: Duration = Duration::from_secs(60);

/// Bytes and segments to add to a destination's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteDelta {
    /// Connecting process.
    pub pid: u32,
    /// Cgroup v2 id of the connecting task at connect(); 0 if unknown.
    pub cgroup_id: u64,
    /// Network namespace of the socket.
    pub netns: u32,
    /// Local address (with the destination, the key of a NAT lookup).
    pub src: SocketAddr,
    /// Destination.
    pub dst: SocketAddr,
    /// Newly acknowledged bytes sent.
    pub sent: u64,
    /// Newly received bytes.
    pub received: u64,
    /// Newly sent segments.
    pub segs_out: u64,
    /// Newly received segments.
    pub segs_in: u64,
}

/// A successful outbound connect, counted once per connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connected {
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
    /// connect() to ESTABLISHED; 0 if unknown (leave out of latency figures).
    pub duration_ns: u64,
}

/// What one event adds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// The connect, if this is the first time the connection is seen.
    pub connected: Option<Connected>,
    /// Bytes not counted before.
    pub bytes: Option<ByteDelta>,
}

/// What one scrape-time dump adds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenUpdate {
    /// Connections seen for the first time.
    pub connected: Vec<Connected>,
    /// Bytes transferred since they were last counted (zero deltas omitted).
    pub bytes: Vec<ByteDelta>,
}

#[derive(Debug, Clone)]
struct Tracked {
    pid: u32,
    cgroup_id: u64,
    netns: u32,
    src: SocketAddr,
    dst: SocketAddr,
    sent: u64,
    received: u64,
    segs_out: u32,
    segs_in: u32,
    /// The dump generation that last showed this connection.
    seen: u64,
    /// First dump that did not show it, while it is missing.
    missing_since: Option<Instant>,
}

/// Open outbound connections keyed by socket id, bounded by `capacity`.
#[derive(Debug)]
pub struct ConnectionTable {
    /// Keyed by socket address; foldhash: one lookup per connection event.
    conns: foldhash::HashMap<u64, Tracked>,
    capacity: usize,
    generation: u64,
    overflow: u64,
    stale: u64,
}

impl ConnectionTable {
    /// A table holding at most `capacity` connections (use the kernel map size).
    pub fn new(capacity: usize) -> Self {
        ConnectionTable {
            conns: foldhash::HashMap::default(),
            capacity,
            generation: 0,
            overflow: 0,
            stale: 0,
        }
    }

    /// Applies one event: what it adds to the connect and byte counters.
    pub fn apply(&mut self, event: &Event) -> Applied {
        match *event {
            Event::ConnectOk {
                pid,
                netns,
                src,
                dst,
                duration_ns,
                cgroup_id,
                ..
            } => Applied {
                connected: Some(Connected {
                    pid,
                    cgroup_id,
                    netns,
                    src,
                    dst,
                    duration_ns,
                }),
                bytes: None,
            },
            Event::ConnectionClosed {
                pid,
                netns,
                sock,
                src,
                dst,
                duration_ns,
                bytes_sent,
                bytes_received,
                cgroup_id,
                segs_out,
                segs_in,
            } => {
                let known = match self.conns.get(&sock) {
                    Some(t) if t.src == src && t.dst == dst => {
                        Some((t.sent, t.received, t.segs_out, t.segs_in))
                    }
                    _ => None,
                };
                let (connected, (sent, received, counted_out, counted_in)) = match known {
                    Some(counted) => {
                        self.conns.remove(&sock);
                        (None, counted)
                    }
                    None => (
                        Some(Connected {
                            pid,
                            cgroup_id,
                            netns,
                            src,
                            dst,
                            duration_ns,
                        }),
                        (0, 0, 0, 0),
                    ),
                };
                Applied {
                    connected,
                    bytes: Some(ByteDelta {
                        pid,
                        cgroup_id,
                        netns,
                        src,
                        dst,
                        sent: bytes_sent.saturating_sub(sent),
                        received: bytes_received.saturating_sub(received),
                        segs_out: u64::from(segs_out.saturating_sub(counted_out)),
                        segs_in: u64::from(segs_in.saturating_sub(counted_in)),
                    }),
                }
            }
            _ => Applied::default(),
        }
    }

    /// Takes an outbound connection that was open before the tracer started
    /// ([`crate::seed`]) as counted up to `c`'s byte and segment totals: its later bytes
    /// count from here, and it is never counted as a connect (that happened before). It is
    /// active until a dump no longer shows it. False when the table is full (counted in
    /// overflow) or already holds that socket.
    pub fn adopt(&mut self, c: &ConnectionBytes) -> bool {
        if self.conns.len() >= self.capacity {
            self.overflow += 1;
            return false;
        }
        if self.conns.contains_key(&c.sock) {
            return false;
        }
        self.conns.insert(
            c.sock,
            Tracked {
                pid: c.pid,
                cgroup_id: c.cgroup_id,
                netns: c.netns,
                src: c.src,
                dst: c.dst,
                sent: c.bytes_sent,
                received: c.bytes_received,
                segs_out: c.segs_out,
                segs_in: c.segs_in,
                seen: self.generation,
                missing_since: None,
            },
        );
        true
    }

    /// Applies a dump of the kernel's open connections, made at `now`.
    pub fn update_open(&mut self, snapshot: &[ConnectionBytes], now: Instant) -> OpenUpdate {
        let mut out = OpenUpdate::default();
        self.update_open_each(snapshot, now, |connected, bytes| {
            out.connected.extend(connected);
            out.bytes.extend(bytes);
        });
        out
    }

    /// As [`ConnectionTable::update_open`], but tells `each` what each connection of the
    /// dump adds, both halves at once (a connection seen for the first time is its connect
    /// and its bytes so far), and collects nothing.
    pub fn update_open_each(
        &mut self,
        snapshot: &[ConnectionBytes],
        now: Instant,
        mut each: impl FnMut(Option<Connected>, Option<ByteDelta>),
    ) {
        self.generation += 1;
        let generation = self.generation;
        for c in snapshot {
            let mut connected = None;
            let (sent, received, segs_out, segs_in, pid, cgroup_id, netns) =
                match self.conns.get_mut(&c.sock) {
                    Some(t) if t.src == c.src && t.dst == c.dst => {
                        let delta = (
                            c.bytes_sent.saturating_sub(t.sent),
                            c.bytes_received.saturating_sub(t.received),
                        );
                        // Like the bytes, never backwards (a stale read adds nothing). The
                        // kernel's segment counters are u32s: one that wraps (2^32 segments,
                        // terabytes on one connection) loses that connection's later segments.
                        let segs = (
                            u64::from(c.segs_out.saturating_sub(t.segs_out)),
                            u64::from(c.segs_in.saturating_sub(t.segs_in)),
                        );
                        t.sent = t.sent.max(c.bytes_sent);
                        t.received = t.received.max(c.bytes_received);
                        t.segs_out = t.segs_out.max(c.segs_out);
                        t.segs_in = t.segs_in.max(c.segs_in);
                        t.seen = generation;
                        t.missing_since = None;
                        (
                            delta.0,
                            delta.1,
                            segs.0,
                            segs.1,
                            t.pid,
                            t.cgroup_id,
                            t.netns,
                        )
                    }
                    // The socket's previous connection is still kept: its close is
                    // still in the ring. This one is counted later.
                    Some(_) => continue,
                    None => {
                        if self.conns.len() >= self.capacity {
                            // Counted as a whole at its close instead.
                            self.overflow += 1;
                            continue;
                        }
                        self.conns.insert(
                            c.sock,
                            Tracked {
                                pid: c.pid,
                                cgroup_id: c.cgroup_id,
                                netns: c.netns,
                                src: c.src,
                                dst: c.dst,
                                sent: c.bytes_sent,
                                received: c.bytes_received,
                                segs_out: c.segs_out,
                                segs_in: c.segs_in,
                                seen: generation,
                                missing_since: None,
                            },
                        );
                        connected = Some(Connected {
                            pid: c.pid,
                            cgroup_id: c.cgroup_id,
                            netns: c.netns,
                            src: c.src,
                            dst: c.dst,
                            duration_ns: c.duration_ns,
                        });
                        (
                            c.bytes_sent,
                            c.bytes_received,
                            u64::from(c.segs_out),
                            u64::from(c.segs_in),
                            c.pid,
                            c.cgroup_id,
                            c.netns,
                        )
                    }
                };
            let bytes =
                (sent > 0 || received > 0 || segs_out > 0 || segs_in > 0).then_some(ByteDelta {
                    pid,
                    cgroup_id,
                    netns,
                    src: c.src,
                    dst: c.dst,
                    sent,
                    received,
                    segs_out,
                    segs_in,
                });
            if connected.is_some() || bytes.is_some() {
                each(connected, bytes);
            }
        }
        let mut stale = 0;
        self.conns.retain(|_, t| {
            if t.seen == generation {
                return true;
            }
            let since = *t.missing_since.get_or_insert(now);
            let keep = now.saturating_duration_since(since) < STALE_AFTER;
            stale += u64::from(!keep);
            keep
        });
        self.stale += stale;
    }

    /// Active connections per (pid, cgroup id, netns, destination): those the latest dump
    /// showed.
    pub fn active(&self) -> HashMap<(u32, u64, u32, SocketAddr), u64> {
        let mut m = HashMap::new();
        for t in self.conns.values().filter(|t| t.seen == self.generation) {
            *m.entry((t.pid, t.cgroup_id, t.netns, t.dst)).or_insert(0) += 1;
        }
        m
    }

    /// The connections the latest dump showed: (pid, cgroup id, netns, local address,
    /// destination), for callers that key active connections by more than the destination
    /// (its NAT upstream).
    pub fn active_connections(
        &self,
    ) -> impl Iterator<Item = (u32, u64, u32, SocketAddr, SocketAddr)> {
        self.conns
            .values()
            .filter(|t| t.seen == self.generation)
            .map(|t| (t.pid, t.cgroup_id, t.netns, t.src, t.dst))
    }

    /// Number of connections kept.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// Whether no connection is kept.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Open connections a dump showed that the full table could not keep (once per
    /// dump that showed them; each is counted as a whole at its close).
    pub fn overflow(&self) -> u64 {
        self.overflow
    }

    /// Kept connections dropped because the kernel no longer had them and their close
    /// record never came (see [`STALE_AFTER`]).
    pub fn stale(&self) -> u64 {
        self.stale
    }
}

#[cfg(test)]
#[path = "conntrack/tests.rs"]
mod tests;
