//! CPU and disk delay per container (taskstats), accounted at scrape time.
//!
//! Each scrape asks the kernel once per process of every exported container (one netlink
//! round trip each) and adds the growth since the previous scrape into the container's totals
//! (`sonde_taskstats::DelayAccumulator`, keyed by pid and start time so a reused pid never adds a
//! negative or doubled delta). A process that exits between scrapes loses at most what it
//! accumulated since the last scrape that saw it.

use std::collections::HashSet;
use std::path::Path;

use sonde_taskstats::{
    ContainerDelays, DELAYACCT_FIX_HINT, DelayAccumulator, DelayReader, Error as TsError,
    TaskstatsClient, delayacct_enabled, enable_delayacct,
};

use crate::discovery::ProcessClock;
use crate::health::Health;
use crate::render::ExportedContainer;
use crate::self_metrics::SelfMetrics;

/// A process's block-I/O delay can exceed its age only by waiting in many threads at once;
/// beyond this many (all waiting its whole life) the reading is taken as corrupt. Seen on 6.18:
/// a process's first I/O wait sometimes reports the node's uptime (a wait that never started).
const MAX_WAITING_THREADS: f64 = 1024.0;

/// The reader and the per-container totals, owned by the scrape path.
#[derive(Debug)]
pub struct Delays {
    clock: Option<ProcessClock>,
    /// Processes whose disk-delay total was once impossible: their total stays tainted, so
    /// their disk delay is not counted from then on (pid + start time; pruned to live ones).
    tainted: HashSet<(u32, u64)>,
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
            clock: ProcessClock::new(procfs).ok(),
            tainted: HashSet::new(),
            reader: DelayReader::new(procfs, client, delayacct_on),
            totals: DelayAccumulator::new(),
            known: HashSet::new(),
        }
    }

    /// Reads every process of `containers` once and returns each container's totals, in order.
    pub fn update(
        &mut self,
        containers: &[ExportedContainer],
        metrics: &SelfMetrics,
    ) -> Vec<Option<ContainerDelays>> {
        for c in containers {
            for &(pid, start_ticks) in &c.pids {
                match self.reader.read(pid) {
                    Ok(Some(mut d)) => {
                        if let Some(clock) = &self.clock {
                            let limit = (clock.age(start_ticks).as_secs_f64() + 1.0)
                                * 1e9
                                * MAX_WAITING_THREADS;
                            if d.blkio_delay_ns as f64 > limit
                                && self.tainted.insert((pid, start_ticks))
                            {
                                // Counted once per process, never silent.
                                metrics.taskstats_implausible.inc();
                            }
                        }
                        if self.tainted.contains(&(pid, start_ticks)) {
                            // Its disk delay stays where it was instead of an impossible jump.
                            d.blkio_delay_ns = 0;
                        }
                        self.totals.observe(&c.key, pid, start_ticks, d);
                    }
                    Ok(None) => {} // Exited since the registry listed it.
                    Err(e) => {
                        metrics.taskstats_errors.inc();
                        tracing::debug!(pid, error = %e, "Failed to read process delays");
                    }
                }
            }
        }
        self.totals.sweep();
        if !self.tainted.is_empty() {
            let live: HashSet<(u32, u64)> = containers
                .iter()
                .flat_map(|c| c.pids.iter().copied())
                .collect();
            self.tainted.retain(|p| live.contains(p));
        }
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
