//! The NAT table, pure: original tuple -> real upstream, for translated TCP connections only.
//!
//! Only entries whose reply source differs from their original destination are kept (a
//! connection without DNAT needs nothing: its actual destination is its destination), so the
//! table holds the NAT'd part of the host's conntrack table, not all of it.
//!
//! Bounded: at most `capacity` entries; beyond it the oldest inserted is dropped (counted).
//! A destroyed entry stays for `grace` (the tracer reports a connection at its close, which may
//! come after conntrack destroyed the entry: a RST, or a close record read late), then goes.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::decode::{Entry, Kind};

type Key = (SocketAddr, SocketAddr);

#[derive(Debug, Clone, Copy)]
struct Slot {
    actual: SocketAddr,
    /// Insertion number: tells a slot from an older one of the same key in the queues.
    seq: u64,
    destroyed: bool,
}

/// Counters of the table (monotonic, except `len`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableStats {
    /// Entries held now (live and in their grace after destruction).
    pub len: usize,
    /// Lookups that found a translation.
    pub hits: u64,
    /// Lookups that found none (the connection was not translated, or its entry is unknown).
    pub misses: u64,
    /// Entries dropped to stay within the capacity.
    pub dropped: u64,
}

/// Original tuple -> real upstream of translated TCP connections, bounded.
#[derive(Debug)]
pub struct NatTable {
    map: foldhash::HashMap<Key, Slot>,
    /// Keys in insertion order, with their seq; stale items (re-inserted or removed keys)
    /// are skipped when popped and compacted away when they pile up.
    order: VecDeque<(u64, Key)>,
    /// Destroyed keys in order of destruction, for expiry after the grace.
    destroyed: VecDeque<(Instant, u64, Key)>,
    capacity: usize,
    grace: Duration,
    seq: u64,
    stats: TableStats,
}

impl NatTable {
    /// A table of at most `capacity` entries (at least 1) keeping destroyed ones for `grace`.
    pub fn new(capacity: usize, grace: Duration) -> Self {
        NatTable {
            map: foldhash::HashMap::default(),
            order: VecDeque::new(),
            destroyed: VecDeque::new(),
            capacity: capacity.max(1),
            grace,
            seq: 0,
            stats: TableStats::default(),
        }
    }

    /// Applies an event (or a dump entry, which is a [`Kind::New`]) seen at `now`.
    pub fn apply(&mut self, entry: &Entry, now: Instant) {
        let key = (entry.orig.src, entry.orig.dst);
        match (entry.kind, entry.translated_destination()) {
            (Kind::New | Kind::Update, Some(actual)) => self.insert(key, actual),
            // A new untranslated connection on a tuple we still remember (its old entry in
            // its grace): the old translation must not answer for it.
            (Kind::New, None) => {
                self.map.remove(&key);
            }
            (Kind::Update, None) => {}
            (Kind::Destroy, _) => {
                if let Some(slot) = self.map.get_mut(&key)
                    && !slot.destroyed
                {
                    slot.destroyed = true;
                    self.destroyed.push_back((now, slot.seq, key));
                }
            }
        }
        self.expire(now);
    }

    /// Merges an entry of a dump made after events were lost: it fills gaps and never
    /// overrides what events said (they may be newer than the dump's view).
    pub fn merge_dumped(&mut self, entry: &Entry) {
        if let Some(actual) = entry.translated_destination() {
            let key = (entry.orig.src, entry.orig.dst);
            if !self.map.contains_key(&key) {
                self.insert(key, actual);
            }
        }
    }

    /// The real upstream of the connection `src -> dst`, if conntrack translated it.
    pub fn lookup(&mut self, src: SocketAddr, dst: SocketAddr) -> Option<SocketAddr> {
        let found = self.peek(src, dst);
        if found.is_some() {
            self.stats.hits += 1;
        } else {
            self.stats.misses += 1;
        }
        found
    }

    /// As [`NatTable::lookup`], without counting.
    pub fn peek(&self, src: SocketAddr, dst: SocketAddr) -> Option<SocketAddr> {
        self.map.get(&(src, dst)).map(|s| s.actual)
    }

    /// Forgets destroyed entries whose grace is over.
    pub fn expire(&mut self, now: Instant) {
        while let Some(&(at, seq, key)) = self.destroyed.front() {
            if now.saturating_duration_since(at) < self.grace {
                break;
            }
            self.destroyed.pop_front();
            if self
                .map
                .get(&key)
                .is_some_and(|s| s.seq == seq && s.destroyed)
            {
                self.map.remove(&key);
            }
        }
    }

    pub fn stats(&self) -> TableStats {
        TableStats {
            len: self.map.len(),
            ..self.stats
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn insert(&mut self, key: Key, actual: SocketAddr) {
        if let Some(slot) = self.map.get_mut(&key)
            && slot.actual == actual
            && !slot.destroyed
        {
            return; // An update of what we know: keep its place.
        }
        self.seq += 1;
        let seq = self.seq;
        self.map.insert(
            key,
            Slot {
                actual,
                seq,
                destroyed: false,
            },
        );
        self.order.push_back((seq, key));
        while self.map.len() > self.capacity {
            let Some((old_seq, old_key)) = self.order.pop_front() else {
                break;
            };
            if self.map.get(&old_key).is_some_and(|s| s.seq == old_seq) {
                self.map.remove(&old_key);
                self.stats.dropped += 1;
            }
        }
        // Re-inserted and removed keys leave stale items behind; keep the queues O(capacity).
        if self.order.len() > 2 * self.capacity + 64 {
            let map = &self.map;
            self.order
                .retain(|(seq, key)| map.get(key).is_some_and(|s| s.seq == *seq));
        }
        if self.destroyed.len() > 2 * self.capacity + 64 {
            let map = &self.map;
            self.destroyed
                .retain(|(_, seq, key)| map.get(key).is_some_and(|s| s.seq == *seq && s.destroyed));
        }
    }
}

#[cfg(test)]
#[path = "table/tests.rs"]
mod tests;
