//! Per-process readings -> per-container monotonic totals (pure, no I/O).
//!
//! Rules (docs/taskstats.md explains the why and the loss bounds):
//! - A process is keyed by (pid, start time): a reused pid is a different process, with its
//!   own baseline, so it never produces a negative or doubled delta.
//! - The first reading of a process adds its whole history (totals since it started): exact
//!   for processes started after the agent, and the container counter starts at the
//!   container's delay so far for the others.
//! - Later readings add `max(0, new - last)`. A counter that went backwards (schedstat sum
//!   after a thread exited, a kernel wrap) adds 0 and becomes the new baseline.
//! - `sweep` forgets processes not observed since the previous sweep; container totals keep
//!   what they contributed. So memory is bounded by the live processes plus the containers.

use std::collections::HashMap;
use std::hash::Hash;

use crate::TaskDelays;

/// Delay totals of one container, in seconds; never decrease while the container is kept.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ContainerDelays {
    /// Time its processes were runnable but waiting for a CPU.
    pub cpu_delay_seconds: f64,
    /// Time its processes waited for synchronous block I/O.
    pub disk_delay_seconds: f64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Totals {
    cpu_ns: u64,
    blkio_ns: u64,
}

#[derive(Debug)]
struct ProcessState<K> {
    container: K,
    last_cpu_ns: u64,
    last_blkio_ns: u64,
    /// Observed since the last sweep.
    seen: bool,
}

/// Adds per-process delay deltas into per-container totals. `K` is the container key.
#[derive(Debug)]
pub struct DelayAccumulator<K> {
    processes: HashMap<(u32, u64), ProcessState<K>>,
    containers: HashMap<K, Totals>,
}

impl<K: Clone + Eq + Hash> Default for DelayAccumulator<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Clone + Eq + Hash> DelayAccumulator<K> {
    /// An empty accumulator.
    pub fn new() -> Self {
        DelayAccumulator {
            processes: HashMap::new(),
            containers: HashMap::new(),
        }
    }

    /// Records a reading of process (`pid`, `start_time`) in `container` and adds its growth
    /// since the previous reading (its whole history on the first reading) to the container.
    /// A process seen under another container than before (cgroup migration) moves there:
    /// the growth since its previous reading goes to the new container.
    pub fn observe(&mut self, container: &K, pid: u32, start_time: u64, delays: TaskDelays) {
        let (cpu_delta, blkio_delta) = match self.processes.get_mut(&(pid, start_time)) {
            Some(state) => {
                let deltas = (
                    delays.cpu_delay_ns.saturating_sub(state.last_cpu_ns),
                    delays.blkio_delay_ns.saturating_sub(state.last_blkio_ns),
                );
                state.last_cpu_ns = delays.cpu_delay_ns;
                state.last_blkio_ns = delays.blkio_delay_ns;
                state.seen = true;
                if state.container != *container {
                    state.container = container.clone();
                }
                deltas
            }
            None => {
                self.processes.insert(
                    (pid, start_time),
                    ProcessState {
                        container: container.clone(),
                        last_cpu_ns: delays.cpu_delay_ns,
                        last_blkio_ns: delays.blkio_delay_ns,
                        seen: true,
                    },
                );
                (delays.cpu_delay_ns, delays.blkio_delay_ns)
            }
        };
        let totals = self.containers.entry(container.clone()).or_default();
        totals.cpu_ns = totals.cpu_ns.saturating_add(cpu_delta);
        totals.blkio_ns = totals.blkio_ns.saturating_add(blkio_delta);
    }

    /// Forgets the processes not observed since the previous sweep (they exited, or the
    /// caller stopped tracking them); container totals keep their contributions. Call once
    /// per scrape, after the observations.
    pub fn sweep(&mut self) {
        self.processes
            .retain(|_, state| std::mem::take(&mut state.seen));
    }

    /// The container's totals in seconds, `None` if nothing was observed for it.
    pub fn totals(&self, container: &K) -> Option<ContainerDelays> {
        self.containers.get(container).map(|t| ContainerDelays {
            cpu_delay_seconds: t.cpu_ns as f64 / 1e9,
            disk_delay_seconds: t.blkio_ns as f64 / 1e9,
        })
    }

    /// Drops a container's totals and the processes last seen in it.
    pub fn remove_container(&mut self, container: &K) {
        self.containers.remove(container);
        self.processes
            .retain(|_, state| state.container != *container);
    }

    /// Processes currently tracked (for a self-metric and tests).
    pub fn tracked_processes(&self) -> usize {
        self.processes.len()
    }

    /// Containers with totals.
    pub fn tracked_containers(&self) -> usize {
        self.containers.len()
    }
}

#[cfg(test)]
#[path = "accumulator_tests.rs"]
mod tests;
