//! CPU and disk delay per container (taskstats), accounted at scrape time.
//!
//! Each scrape asks the kernel once per process of every exported container (one netlink
//! round trip each) and adds the growth since the previous scrape into the container's totals
//! (`sonde_taskstats::DelayAccumulator`, keyed by pid and start time so a reused pid never adds a
//! negative or doubled delta). A process that exits between scrapes loses at most what it
//! accumulated since the last scrape that saw it.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Instant;

use sonde_taskstats::{
    ContainerDelays, DELAYACCT_FIX_HINT, DelayAccumulator, DelayReader, Error as TsError,
    TaskstatsClient, delayacct_enabled, enable_delayacct,
};

use crate::discovery::ProcessClock;
use crate::exported::ExportedContainer;
use crate::health::Health;

/// A process's block-I/O delay can exceed its age only by waiting in many threads at once;
/// beyond this many (all waiting its whole life) the reading is taken as corrupt. Seen on 6.18:
/// a process's first I/O wait sometimes reports the node's uptime (a wait that never started).
const MAX_WAITING_THREADS: f64 = 1024.0;

/// A process's raw disk-delay readings, to remove impossible jumps.
#[derive(Debug, Clone, Copy)]
struct BlkioTrack {
    last_raw: u64,
    at: Instant,
    removed: u64,
}

/// The delay reader's own counters (`sonde_taskstats_*`), rendered by sonde-exporter, which
/// names every field: a counter added here does not compile until it is rendered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DelayStats {
    /// Per-process reads (taskstats or schedstat) that failed, other than exited processes.
    pub errors: u64,
    /// Disk-delay readings larger than the process could have waited, ignored.
    pub implausible: u64,
}

/// The reader and the per-container totals, owned by the scrape path.
#[derive(Debug)]
pub struct Delays {
    /// What went wrong so far.
    pub stats: DelayStats,
    clock: Option<ProcessClock>,
    /// Per process (pid + start time; pruned to live ones): its last raw disk-delay total and
    /// the sum of impossible jumps removed from it.
    blkio: HashMap<(u32, u64), BlkioTrack>,
    reader: DelayReader,
    totals: DelayAccumulator<String>,
    /// Containers with totals, to forget those no longer exported.
    known: HashSet<String>,
}

impl Delays {
    /// Opens the taskstats socket and checks `kernel.task_delayacct`, turning it on when
    /// `enable` is set. Problems degrade the `taskstats`/`delayacct` subsystems, never the agent.
    pub fn start(procfs: &Path, enable: bool, health: &Health) -> Delays {
        let client = match TaskstatsClient::new() {
            Ok(c) => {
                health.up("taskstats");
                Some(c)
            }
            Err(TsError::FamilyNotFound) => {
                // Older kernels register the family only in the host network namespace.
                match TaskstatsClient::new_in_netns(&procfs.join("1/ns/net")) {
                    Ok(c) => {
                        health.up("taskstats");
                        Some(c)
                    }
                    Err(e) => {
                        health.down(
                            "taskstats",
                            format!("no TASKSTATS netlink family ({e}): CPU delay comes from /proc/<pid>/task/*/schedstat and disk delay is 0; run the agent with hostNetwork"),
                        );
                        None
                    }
                }
            }
            Err(e) => {
                health.down(
                    "taskstats",
                    format!("cannot open the taskstats netlink socket ({e}): CPU delay comes from schedstat and disk delay is 0; run the agent as root"),
                );
                None
            }
        };
        let delayacct_on = match delayacct_enabled(procfs) {
            Ok(Some(true)) | Ok(None) => true,
            Ok(Some(false)) if enable => match enable_delayacct(procfs) {
                Ok(()) => {
                    tracing::info!("Turned on kernel.task_delayacct (--enable-delay-accounting)");
                    true
                }
                Err(e) => {
                    health.down(
                        "delayacct",
                        format!("--enable-delay-accounting could not set kernel.task_delayacct=1 ({e}); {DELAYACCT_FIX_HINT}"),
                    );
                    false
                }
            },
            Ok(Some(false)) => {
                health.down("delayacct", DELAYACCT_FIX_HINT);
                false
            }
            Err(e) => {
                health.down(
                    "delayacct",
                    format!("cannot read kernel.task_delayacct: {e}"),
                );
                false
            }
        };
        if delayacct_on {
            health.up("delayacct");
        }
        Delays {
            stats: DelayStats::default(),
            clock: ProcessClock::new(procfs).ok(),
            blkio: HashMap::new(),
            reader: DelayReader::new(procfs, client, delayacct_on),
            totals: DelayAccumulator::new(),
            known: HashSet::new(),
        }
    }

    /// The process's disk delay with impossible jumps removed: a growth larger than the process
    /// could have waited since the previous reading (or, first, since it started) is a kernel
    /// accounting glitch (seen on 6.18: a wait that never started adds the node's uptime). The
    /// jump is dropped and counted; waits before and after it still count.
    fn plausible_blkio(&mut self, pid: u32, start_ticks: u64, raw: u64) -> u64 {
        let now = Instant::now();
        let Some(clock) = &self.clock else {
            return raw;
        };
        let track = self.blkio.entry((pid, start_ticks)).or_insert(BlkioTrack {
            last_raw: 0,
            at: now.checked_sub(clock.age(start_ticks)).unwrap_or(now),
            removed: 0,
        });
        let growth = raw.saturating_sub(track.last_raw);
        let window = now.saturating_duration_since(track.at).as_secs_f64() + 1.0;
        if growth as f64 > window * 1e9 * MAX_WAITING_THREADS {
            track.removed += growth;
            self.stats.implausible += 1;
        }
        track.last_raw = raw;
        track.at = now;
        raw.saturating_sub(track.removed)
    }

    /// Reads every process of `containers` once and returns each container's totals, in order.
    pub fn update(&mut self, containers: &[ExportedContainer]) -> Vec<Option<ContainerDelays>> {
        for c in containers {
            for &(pid, start_ticks) in &c.pids {
                match self.reader.read(pid) {
                    Ok(Some(mut d)) => {
                        d.blkio_delay_ns = self.plausible_blkio(pid, start_ticks, d.blkio_delay_ns);
                        self.totals.observe(&c.key, pid, start_ticks, d);
                    }
                    Ok(None) => {} // Exited since the registry listed it.
                    Err(e) => {
                        self.stats.errors += 1;
                        tracing::debug!(pid, error = %e, "Failed to read process delays");
                    }
                }
            }
        }
        self.totals.sweep();
        let live: HashSet<(u32, u64)> = containers
            .iter()
            .flat_map(|c| c.pids.iter().copied())
            .collect();
        self.blkio.retain(|p, _| live.contains(p));
        let exported: HashSet<&str> = containers.iter().map(|c| c.key.as_str()).collect();
        self.known.retain(|k| {
            let keep = exported.contains(k.as_str());
            if !keep {
                self.totals.remove_container(k);
            }
            keep
        });
        for c in containers {
            if !self.known.contains(&c.key) {
                self.known.insert(c.key.clone());
            }
        }
        containers
            .iter()
            .map(|c| self.totals.totals(&c.key))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn impossible_disk_delay_jumps_are_dropped_and_counted() {
        let tmp = tempfile::tempdir().unwrap();
        // Booted 1,000,000 s ago; the process started 5 s ago (clock ticks at 100 Hz).
        std::fs::write(tmp.path().join("uptime"), "1000000.00 0.00\n").unwrap();
        let start_ticks = (1_000_000 - 5) * 100;
        let health = Health::new();
        let mut d = Delays::start(tmp.path(), false, &health);
        let s = 1_000_000_000u64;
        // Real waits count.
        assert_eq!(d.plausible_blkio(7, start_ticks, s / 2), s / 2);
        // The kernel adds the uptime in one go: dropped, counted.
        let glitched = s / 2 + 1_000_000 * s;
        assert_eq!(d.plausible_blkio(7, start_ticks, glitched), s / 2);
        assert_eq!(d.stats.implausible, 1);
        // Later real waits still count on top.
        assert_eq!(d.plausible_blkio(7, start_ticks, glitched + s), s / 2 + s);
        assert_eq!(d.stats.implausible, 1);
        // Another process is tracked on its own.
        assert_eq!(d.plausible_blkio(8, start_ticks, 2 * s), 2 * s);
    }
}
