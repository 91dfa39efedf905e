//! The L7 engine's sessions, by (pid, fd), with each process's fds indexed: a process's exit
//! drops all of its connections without a scan of the table (the socket tier cannot report
//! every close: a UDP socket's, or a TCP socket reset with unread data). A record's lookup is
//! one hash of the flat map, as before the index; only a session's start and end touch it.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Values keyed by (pid, fd).
pub(crate) struct SessionTable<T> {
    flat: Map<(u32, u64), T>,
    /// The fds of each pid in `flat` (a process has few).
    fds: Map<u32, Vec<u64>>,
}

impl<T> Default for SessionTable<T> {
    fn default() -> Self {
        SessionTable {
            flat: Map::default(),
            fds: Map::default(),
        }
    }
}

impl<T> SessionTable<T> {
    pub(crate) fn len(&self) -> usize {
        self.flat.len()
    }

    pub(crate) fn get(&self, pid: u32, fd: u64) -> Option<&T> {
        self.flat.get(&(pid, fd))
    }

    pub(crate) fn get_mut(&mut self, pid: u32, fd: u64) -> Option<&mut T> {
        self.flat.get_mut(&(pid, fd))
    }

    /// Inserts, returning what was there.
    pub(crate) fn insert(&mut self, pid: u32, fd: u64, value: T) -> Option<T> {
        let old = self.flat.insert((pid, fd), value);
        if old.is_none() {
            self.fds.entry(pid).or_default().push(fd);
        }
        old
    }

    pub(crate) fn remove(&mut self, pid: u32, fd: u64) -> Option<T> {
        let old = self.flat.remove(&(pid, fd))?;
        self.unindex(pid, fd);
        Some(old)
    }

    fn unindex(&mut self, pid: u32, fd: u64) {
        if let Entry::Occupied(mut of_pid) = self.fds.entry(pid) {
            let v = of_pid.get_mut();
            if let Some(i) = v.iter().position(|f| *f == fd) {
                v.swap_remove(i);
            }
            if v.is_empty() {
                of_pid.remove();
            }
        }
    }

    /// Removes every value of `pid`, handing each to `ended`.
    pub(crate) fn remove_pid(&mut self, pid: u32, mut ended: impl FnMut(T)) {
        for fd in self.fds.remove(&pid).unwrap_or_default() {
            if let Some(v) = self.flat.remove(&(pid, fd)) {
                ended(v);
            }
        }
    }

    /// Keeps the values `keep` says yes to; the others go to `ended`.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&T) -> bool, mut ended: impl FnMut(T)) {
        let gone: Vec<(u32, u64)> = self
            .flat
            .extract_if(|_, v| !keep(v))
            .map(|(k, v)| {
                ended(v);
                k
            })
            .collect();
        for (pid, fd) in gone {
            self.unindex(pid, fd);
        }
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &T> {
        self.flat.values()
    }

    /// How many values `pid` has.
    pub(crate) fn count_of(&self, pid: u32) -> usize {
        self.fds.get(&pid).map_or(0, Vec::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_stay_true_through_every_removal() {
        let mut t = SessionTable::default();
        assert!(t.insert(1, 3, "a").is_none());
        assert!(t.insert(1, 4, "b").is_none());
        assert!(t.insert(2, 3, "c").is_none());
        assert_eq!(t.insert(2, 3, "d"), Some("c"), "replaced, not added");
        assert_eq!(t.len(), 3);
        assert_eq!(t.get(2, 3), Some(&"d"));
        assert_eq!(t.count_of(1), 2);

        assert_eq!(t.remove(1, 3), Some("a"));
        assert_eq!(t.remove(1, 3), None);
        assert_eq!(t.remove(9, 3), None);
        assert_eq!(t.len(), 2);

        let mut gone = Vec::new();
        t.remove_pid(1, |v| gone.push(v));
        assert_eq!(gone, vec!["b"]);
        assert_eq!((t.len(), t.count_of(1)), (1, 0));
        assert!(!t.fds.contains_key(&1), "no empty index left behind");

        t.insert(5, 1, "x");
        t.insert(5, 2, "y");
        let mut dropped = Vec::new();
        t.retain(|v| *v != "x" && *v != "d", |v| dropped.push(v));
        dropped.sort();
        assert_eq!(dropped, vec!["d", "x"]);
        assert_eq!(t.len(), 1);
        assert_eq!(t.values().collect::<Vec<_>>(), vec![&"y"]);
        assert!(!t.fds.contains_key(&2));
    }
}
