//! Processes to look at again: a process is usually first seen at fork,
//! before it execs its program, and loads libssl later still (Python imports
//! `ssl` on demand).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Delays after the first scan at which a process is scanned again.
pub(crate) const RESCAN_AFTER: [Duration; 3] = [
    Duration::from_millis(200),
    Duration::from_secs(1),
    Duration::from_secs(5),
];

/// A bounded queue of (due time, pid, stage).
#[derive(Debug)]
pub(crate) struct RescanQueue {
    entries: VecDeque<(Instant, u32, usize)>,
    max: usize,
}

impl RescanQueue {
    pub(crate) fn new(max: usize) -> Self {
        RescanQueue {
            entries: VecDeque::new(),
            max,
        }
    }

    /// Queues `pid`'s first rescan; false if the queue is full (not queued).
    pub(crate) fn push(&mut self, pid: u32, now: Instant) -> bool {
        if self.entries.len() >= self.max {
            return false;
        }
        self.entries.push_back((now + RESCAN_AFTER[0], pid, 0));
        true
    }

    /// The pids due at `now`, each queued again for its next stage (if any).
    pub(crate) fn take_due(&mut self, now: Instant) -> Vec<u32> {
        if self.entries.iter().all(|(due, _, _)| *due > now) {
            return Vec::new();
        }
        let (due, waiting): (VecDeque<_>, VecDeque<_>) =
            self.entries.drain(..).partition(|(due, _, _)| *due <= now);
        self.entries = waiting;
        let mut pids = Vec::with_capacity(due.len());
        for (_, pid, stage) in due {
            pids.push(pid);
            if let Some(delay) = RESCAN_AFTER.get(stage + 1) {
                self.entries.push_back((now + *delay, pid, stage + 1));
            }
        }
        pids
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_rescans_then_none() {
        let t0 = Instant::now();
        let mut q = RescanQueue::new(10);
        assert!(q.push(7, t0));
        assert!(q.take_due(t0).is_empty());
        let ms = |n| t0 + Duration::from_millis(n);
        assert_eq!(q.take_due(ms(200)), vec![7]);
        assert!(q.take_due(ms(1000)).is_empty()); // next is 1 s after that
        assert_eq!(q.take_due(ms(1200)), vec![7]);
        assert_eq!(q.take_due(ms(6200)), vec![7]);
        assert_eq!(q.len(), 0);
        assert!(q.take_due(ms(60_000)).is_empty());
    }

    #[test]
    fn bounded() {
        let t0 = Instant::now();
        let mut q = RescanQueue::new(2);
        assert!(q.push(1, t0));
        assert!(q.push(2, t0));
        assert!(!q.push(3, t0));
        let mut due = q.take_due(t0 + Duration::from_secs(1));
        due.sort();
        assert_eq!(due, vec![1, 2]);
    }
}
