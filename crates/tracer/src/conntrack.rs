//! Userspace side of the connection state machine, pure and unit-tested.
//!
//! The kernel reports absolute per-socket byte totals twice: for open
//! connections at scrape time ([`crate::Tracer::open_connection_bytes`]) and as
//! final totals in [`Event::ConnectionClosed`]. Counters must be monotonic and
//! count every byte exactly once, so [`ConnectionTable`] remembers, per socket,
//! what was already counted and hands out only deltas. It also answers "active
//! connections": those with a `ConnectOk` and no `ConnectionClosed` yet.
//!
//! Ordering: events and scrape snapshots may interleave arbitrarily. A snapshot
//! entry for a socket the table does not know (its `ConnectOk` is still in the
//! ring, or its close was already applied) is skipped; its bytes are counted at
//! the next scrape or at close. A socket address reused by a new connection is
//! told apart by its addresses.

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::decode::{ConnectionBytes, Event};

/// Bytes to add to a destination's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteDelta {
    /// Connecting process.
    pub pid: u32,
    /// Network namespace of the socket.
    pub netns: u32,
    /// Destination.
    pub dst: SocketAddr,
    /// Newly acknowledged bytes sent.
    pub sent: u64,
    /// Newly received bytes.
    pub received: u64,
}

#[derive(Debug, Clone)]
struct Tracked {
    pid: u32,
    netns: u32,
    src: SocketAddr,
    dst: SocketAddr,
    sent: u64,
    received: u64,
}

/// Open outbound connections keyed by socket id, bounded by `capacity`.
#[derive(Debug)]
pub struct ConnectionTable {
    conns: HashMap<u64, Tracked>,
    capacity: usize,
    overflow: u64,
}

impl ConnectionTable {
    /// A table holding at most `capacity` connections (use the kernel map size).
    pub fn new(capacity: usize) -> Self {
        ConnectionTable {
            conns: HashMap::new(),
            capacity,
            overflow: 0,
        }
    }

    /// Applies one event. Returns the bytes to count when a connection closed.
    pub fn apply(&mut self, event: &Event) -> Option<ByteDelta> {
        match *event {
            Event::ConnectOk {
                pid,
                netns,
                sock,
                src,
                dst,
                ..
            } => {
                if self.conns.len() >= self.capacity && !self.conns.contains_key(&sock) {
                    // Still counted correctly at close (as a whole); only the
                    // active gauge and scrape-time bytes miss it.
                    self.overflow += 1;
                    return None;
                }
                self.conns.insert(
                    sock,
                    Tracked {
                        pid,
                        netns,
                        src,
                        dst,
                        sent: 0,
                        received: 0,
                    },
                );
                None
            }
            Event::ConnectionClosed {
                pid,
                netns,
                sock,
                src,
                dst,
                bytes_sent,
                bytes_received,
            } => {
                let (sent, received) = match self.conns.get(&sock) {
                    Some(t) if t.src == src && t.dst == dst => {
                        let counted = (t.sent, t.received);
                        self.conns.remove(&sock);
                        counted
                    }
                    _ => (0, 0),
                };
                Some(ByteDelta {
                    pid,
                    netns,
                    dst,
                    sent: bytes_sent.saturating_sub(sent),
                    received: bytes_received.saturating_sub(received),
                })
            }
            _ => None,
        }
    }

    /// Applies a scrape-time snapshot of open connections; returns the bytes
    /// transferred since they were last counted (zero deltas are omitted).
    pub fn update_open(&mut self, snapshot: &[ConnectionBytes]) -> Vec<ByteDelta> {
        let mut out = Vec::new();
        for c in snapshot {
            let Some(t) = self.conns.get_mut(&c.sock) else {
                continue;
            };
            if t.src != c.src || t.dst != c.dst {
                continue;
            }
            let sent = c.bytes_sent.saturating_sub(t.sent);
            let received = c.bytes_received.saturating_sub(t.received);
            t.sent = t.sent.max(c.bytes_sent);
            t.received = t.received.max(c.bytes_received);
            if sent > 0 || received > 0 {
                out.push(ByteDelta {
                    pid: t.pid,
                    netns: t.netns,
                    dst: t.dst,
                    sent,
                    received,
                });
            }
        }
        out
    }

    /// Active connections per (pid, netns, destination).
    pub fn active(&self) -> HashMap<(u32, u32, SocketAddr), u64> {
        let mut m = HashMap::new();
        for t in self.conns.values() {
            *m.entry((t.pid, t.netns, t.dst)).or_insert(0) += 1;
        }
        m
    }

    /// Number of open connections tracked.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// Whether no connection is tracked.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Connects not tracked because the table was full.
    pub fn overflow(&self) -> u64 {
        self.overflow
    }
}

#[cfg(test)]
#[path = "conntrack/tests.rs"]
mod tests;
