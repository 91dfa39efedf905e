//! The registry task's own counters: what its queues dropped, what discovery could not read,
//! and what it tracks. Typed and kept where they are counted; sonde-exporter renders them from
//! [`RegistryStats::counts`] by naming every field, so a counter added here does not compile
//! until it is rendered (or left out there with the reason).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

/// The naming states of `sonde_containers_tracked{state}`, in the order of
/// [`RegistryCounts::containers_tracked`].
pub const CONTAINER_STATES: [&str; 3] = ["named", "pending", "skipped"];

/// Counters and gauges of the registry task (atomics: the tracer bridge, the event loop and
/// the scrape update them from different threads).
#[derive(Debug, Default)]
pub struct RegistryStats {
    /// Events dropped because the event queue was full (`queue="events"`).
    pub events_dropped: AtomicU64,
    /// Metadata lookups dropped because the resolver's queue was full
    /// (`queue="metadata_lookups"`).
    pub lookups_dropped: AtomicU64,
    /// Processes whose /proc files could not be read or parsed during discovery.
    pub proc_scan_errors: AtomicU64,
    /// Containers tracked, by naming state ([`CONTAINER_STATES`]), as of the last scrape.
    pub containers_tracked: [AtomicI64; CONTAINER_STATES.len()],
    /// Processes mapped to cgroups, as of the last scrape.
    pub processes_tracked: AtomicI64,
}

/// A reading of [`RegistryStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegistryCounts {
    pub events_dropped: u64,
    pub lookups_dropped: u64,
    pub proc_scan_errors: u64,
    pub containers_tracked: [i64; CONTAINER_STATES.len()],
    pub processes_tracked: i64,
}

impl RegistryStats {
    pub fn counts(&self) -> RegistryCounts {
        RegistryCounts {
            events_dropped: self.events_dropped.load(Relaxed),
            lookups_dropped: self.lookups_dropped.load(Relaxed),
            proc_scan_errors: self.proc_scan_errors.load(Relaxed),
            containers_tracked: self.containers_tracked.each_ref().map(|a| a.load(Relaxed)),
            processes_tracked: self.processes_tracked.load(Relaxed),
        }
    }
}
