//! The registry's state and the pure `apply(event)` that changes it.
//!
//! Nothing here does I/O or reads the clock: every call takes `now`, so the whole life cycle
//! (process seen, named, aged, filtered, emptied, collected) is unit-tested with a fake clock.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use regex::Regex;
use sonde_cgroup::{ContainerKind, ProcessCgroups, Runtime, classify};
use sonde_runtime::{ContainerMetadata, Naming as RuntimeNaming, name_container};

use crate::container::{Container, MetadataSource, Naming};
use crate::net::NetEvent;

/// Upper bound of the retry delay for a metadata lookup that keeps failing.
const MAX_LOOKUP_BACKOFF: Duration = Duration::from_secs(300);
const FIRST_LOOKUP_BACKOFF: Duration = Duration::from_secs(1);

/// Something that happened on the node, applied to the state in order.
#[derive(Debug, Clone)]
pub enum Event {
    /// A process is (still) in these cgroups. `start_ticks` (field 22 of /proc/<pid>/stat)
    /// tells a reused pid from the process it replaced; `age` is how long it has been running.
    ProcessSeen {
        pid: u32,
        start_ticks: u64,
        age: Duration,
        cgroups: ProcessCgroups,
    },
    /// The process exited.
    ProcessGone { pid: u32 },
    /// The OOM killer chose this process.
    OomKill { pid: u32 },
    /// The OOM killer chose a process that was gone before it could be placed; `cgroup_path`
    /// is its unified-hierarchy cgroup (from the kernel's cgroup id).
    OomKillInCgroup { cgroup_path: String },
    /// A TCP happening of this process (from the tracer).
    Net { pid: u32, event: NetEvent },
    /// The answer to a metadata lookup started by [`State::due_lookups`].
    Metadata {
        cgroup_id: String,
        outcome: MetadataOutcome,
    },
    /// Events applied in this order: one queue slot for what one read of the kernel's ring
    /// produced, so the queue's atomics are paid per batch, not per event
    /// (`EventSender::send_batch`).
    Batch(Vec<Event>),
}

/// What a runtime said about a container.
#[derive(Debug, Clone)]
pub enum MetadataOutcome {
    /// `source` is the runtime that answered (for AnyKubernetes lookups, the one that knew it).
    Found {
        metadata: Box<ContainerMetadata>,
        source: MetadataSource,
    },
    /// The runtime does not know the id (yet, or at all).
    NotFound,
    /// The runtime could not be asked (timeout, refused, garbage).
    Failed(String),
}

/// A metadata lookup the resolver should make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupRequest {
    pub cgroup_id: String,
    pub source: MetadataSource,
    pub runtime_id: String,
    /// containerd namespace for plain containerd containers (Kubernetes ones are in k8s.io).
    pub namespace: Option<String>,
}

/// Which containers are exported.
#[derive(Debug, Clone)]
pub struct Filters {
    /// When non-empty, a container_id must match one of these.
    pub allowlist: Vec<Regex>,
    /// A container_id matching any of these is never exported.
    pub denylist: Vec<Regex>,
    /// Containers younger than this are not exported yet (short-lived jobs would churn series).
    pub min_container_age: Duration,
}

impl Filters {
    pub fn allows(&self, container_id: &str) -> bool {
        if !self.allowlist.is_empty() && !self.allowlist.iter().any(|r| r.is_match(container_id)) {
            return false;
        }
        !self.denylist.iter().any(|r| r.is_match(container_id))
    }
}

#[derive(Debug)]
struct PidEntry {
    start_ticks: u64,
    /// The container the process counts for, or None for processes outside containers.
    cgroup_id: Option<String>,
}

/// All per-container state, keyed by cgroup id.
#[derive(Debug)]
pub struct State {
    // foldhash: both are looked up for every TCP event.
    containers: foldhash::HashMap<String, Container>,
    pids: foldhash::HashMap<u32, PidEntry>,
    /// How long a container with no processes is kept (so a restart is seen as one container).
    gc_grace: Duration,
    /// Kernel events about processes the registry could not place in a container (they ran
    /// outside containers, or exited before they could be looked up).
    pub unattributed_events: u64,
    /// Container of recently exited processes: a process's sockets close after its exit event,
    /// and their last bytes still belong to its container.
    exited: foldhash::HashMap<u32, (String, Instant)>,
}

/// How long an exited process's container is remembered for its late socket events.
const EXITED_RETENTION: Duration = Duration::from_secs(60);
/// Bound of that memory.
const MAX_EXITED: usize = 65_536;

impl State {
    pub fn new(gc_grace: Duration) -> State {
        State {
            containers: foldhash::HashMap::default(),
            pids: foldhash::HashMap::default(),
            gc_grace,
            unattributed_events: 0,
            exited: foldhash::HashMap::default(),
        }
    }

    pub fn containers(&self) -> impl Iterator<Item = &Container> {
        self.containers.values()
    }

    pub fn container(&self, cgroup_id: &str) -> Option<&Container> {
        self.containers.get(cgroup_id)
    }

    /// The container a live process belongs to.
    pub fn container_of_pid(&self, pid: u32) -> Option<&Container> {
        let id = self.pids.get(&pid)?.cgroup_id.as_deref()?;
        self.containers.get(id)
    }

    /// Start time (clock ticks since boot) of a live tracked process.
    pub fn start_ticks(&self, pid: u32) -> Option<u64> {
        self.pids.get(&pid).map(|e| e.start_ticks)
    }

    /// Whether `pid` is tracked, live or recently exited.
    pub fn knows_pid(&self, pid: u32) -> bool {
        self.pids.contains_key(&pid) || self.exited.contains_key(&pid)
    }

    pub fn tracked_pids(&self) -> usize {
        self.pids.len()
    }

    pub fn apply(&mut self, event: Event, now: Instant) {
        match event {
            Event::ProcessSeen {
                pid,
                start_ticks,
                age,
                cgroups,
            } => self.process_seen(pid, start_ticks, age, cgroups, now),
            Event::ProcessGone { pid } => self.process_gone(pid, now),
            Event::Metadata { cgroup_id, outcome } => self.metadata(&cgroup_id, outcome, now),
            Event::OomKill { pid } => match self.container_of_pid_mut(pid) {
                Some(c) => c.oom_kills += 1,
                None => self.unattributed_events += 1,
            },
            Event::OomKillInCgroup { cgroup_path } => self.oom_in_cgroup(&cgroup_path, now),
            Event::Net { pid, event } => self.apply_net(pid, &event, now),
            Event::Batch(events) => {
                for event in events {
                    self.apply(event, now);
                }
            }
        }
    }

    /// Applies a TCP happening to the container of `pid` (also used for scrape-time byte
    /// counts, which do not go through the event queue).
    pub fn apply_net(&mut self, pid: u32, event: &NetEvent, now: Instant) {
        match self.container_of_pid_mut(pid) {
            Some(c) => c.net.apply(event, now),
            None => self.unattributed_events += 1,
        }
    }

    fn container_of_pid_mut(&mut self, pid: u32) -> Option<&mut Container> {
        let id = match self.pids.get(&pid) {
            Some(entry) => entry.cgroup_id.as_deref()?,
            None => self.exited.get(&pid).map(|(id, _)| id.as_str())?,
        };
        self.containers.get_mut(id)
    }

    fn process_seen(
        &mut self,
        pid: u32,
        start_ticks: u64,
        age: Duration,
        cgroups: ProcessCgroups,
        now: Instant,
    ) {
        let new_id = cgroups.id();
        if let Some(entry) = self.pids.get(&pid)
            && entry.start_ticks == start_ticks
            && entry.cgroup_id.as_deref() == new_id.filter(|id| self.containers.contains_key(*id))
        {
            return; // Nothing changed: the common case of a periodic scan.
        }
        // A new process, a reused pid, or a process that moved to another cgroup.
        self.process_gone(pid, now);

        let tracked = match new_id {
            Some(id) => self.track(id, &cgroups, age, pid, now),
            None => None,
        };
        self.pids.insert(
            pid,
            PidEntry {
                start_ticks,
                cgroup_id: tracked,
            },
        );
    }

    /// Adds `pid` to the container of cgroup `id`, creating it when it is a container.
    /// Returns the key when the process belongs to a container.
    fn track(
        &mut self,
        id: &str,
        cgroups: &ProcessCgroups,
        age: Duration,
        pid: u32,
        now: Instant,
    ) -> Option<String> {
        let started = now.checked_sub(age).unwrap_or(now);
        if let Some(c) = self.containers.get_mut(id) {
            if c.empty_since.take().is_some() {
                // Every process was gone and the same container runs again.
                c.restarts += 1;
            }
            c.pids.insert(pid);
            if started < c.started_at {
                c.started_at = started;
            }
            return Some(c.cgroup_id.clone());
        }
        let container = new_container(id, cgroups, started, now)?;
        self.containers.insert(id.to_owned(), container);
        if let Some(c) = self.containers.get_mut(id) {
            c.pids.insert(pid);
        }
        Some(id.to_owned())
    }

    /// An OOM kill in the cgroup at `path` whose process was gone before it could be placed
    /// (a container whose only process was killed at once). The container is created, empty,
    /// if the registry never saw it, so the kill is counted and the container is named and
    /// exported for its grace period.
    fn oom_in_cgroup(&mut self, path: &str, now: Instant) {
        if !self.containers.contains_key(path) {
            let Ok(cgroups) = ProcessCgroups::parse(&format!("0::{path}\n")) else {
                self.unattributed_events += 1;
                return;
            };
            let Some(mut container) = new_container(path, &cgroups, now, now) else {
                self.unattributed_events += 1;
                return;
            };
            container.empty_since = Some(now);
            self.containers.insert(path.to_owned(), container);
        }
        if let Some(c) = self.containers.get_mut(path) {
            c.oom_kills += 1;
        }
    }

    fn process_gone(&mut self, pid: u32, now: Instant) {
        let Some(entry) = self.pids.remove(&pid) else {
            return;
        };
        if let Some(id) = entry.cgroup_id
            && let Some(c) = self.containers.get_mut(&id)
        {
            c.pids.remove(&pid);
            if c.pids.is_empty() {
                c.empty_since = Some(now);
            }
            if self.exited.len() < MAX_EXITED {
                self.exited.insert(pid, (id, now));
            }
        }
    }

    fn metadata(&mut self, cgroup_id: &str, outcome: MetadataOutcome, now: Instant) {
        let Some(c) = self.containers.get_mut(cgroup_id) else {
            return; // Gone before the answer came.
        };
        let Naming::Pending {
            source, attempts, ..
        } = c.naming
        else {
            return;
        };
        match outcome {
            MetadataOutcome::Found {
                metadata: md,
                source: answered_by,
            } => {
                // The fallback name when no orchestrator label names it.
                let prefix = match (answered_by, &c.kind) {
                    (_, ContainerKind::ContainerdNamespace { namespace, .. }) => {
                        format!("/containerd/{namespace}/")
                    }
                    (MetadataSource::Docker, _) => "/docker/".to_owned(),
                    (MetadataSource::Crio, _) => "/crio/".to_owned(),
                    _ => "/containerd/k8s.io/".to_owned(),
                };
                c.naming = match name_container(&md, &prefix) {
                    RuntimeNaming::Named {
                        container_id,
                        app_id,
                    } => Naming::Named {
                        container_id,
                        app_id,
                    },
                    RuntimeNaming::Skip { reason } => Naming::Skipped { reason },
                };
                c.image = md.image.clone();
                c.log_path = md.log_path.clone();
                c.log_driver = md.log_driver.clone();
                c.volumes = std::sync::Arc::new(md.volumes.clone());
            }
            MetadataOutcome::NotFound => {
                c.naming = retry(source, attempts, now, "not found in the runtime".into());
            }
            MetadataOutcome::Failed(error) => {
                c.naming = retry(source, attempts, now, error);
            }
        }
    }

    /// Lookups to start now: pending containers whose retry time has come, from sources that
    /// have a client. Marks them in flight so a slow runtime is never asked twice at once.
    pub fn due_lookups(
        &mut self,
        now: Instant,
        available: impl Fn(MetadataSource) -> bool,
    ) -> Vec<LookupRequest> {
        let mut due = Vec::new();
        for c in self.containers.values_mut() {
            if let Naming::Pending {
                source,
                next_attempt,
                in_flight,
                ..
            } = &mut c.naming
                && !*in_flight
                && *next_attempt <= now
                && available(*source)
                && let Some(runtime_id) = &c.runtime_id
            {
                *in_flight = true;
                due.push(LookupRequest {
                    cgroup_id: c.cgroup_id.clone(),
                    source: *source,
                    runtime_id: runtime_id.clone(),
                    namespace: match &c.kind {
                        ContainerKind::ContainerdNamespace { namespace, .. } => {
                            Some(namespace.clone())
                        }
                        _ => None,
                    },
                });
            }
        }
        due
    }

    /// A lookup that could not be queued: make it due again on the next tick.
    pub fn lookup_not_started(&mut self, cgroup_id: &str) {
        if let Some(c) = self.containers.get_mut(cgroup_id)
            && let Naming::Pending { in_flight, .. } = &mut c.naming
        {
            *in_flight = false;
        }
    }

    /// Drops containers whose processes have all been gone for longer than the grace period.
    /// Returns how many were removed.
    pub fn collect_garbage(&mut self, now: Instant) -> usize {
        let grace = self.gc_grace;
        let before = self.containers.len();
        for c in self.containers.values_mut() {
            c.net.expire(now);
        }
        self.exited
            .retain(|_, (_, t)| now.saturating_duration_since(*t) < EXITED_RETENTION);
        self.containers.retain(|_, c| match c.empty_since {
            Some(t) => now.saturating_duration_since(t) < grace,
            None => true,
        });
        before - self.containers.len()
    }

    /// Containers to export now: named, old enough, allowed, one per container_id (when two
    /// cgroups carry the same name, e.g. a replaced container still in its grace period, the
    /// one with live processes, then the newest, wins so no series is duplicated).
    pub fn exported<'a>(&'a self, filters: &Filters, now: Instant) -> Vec<&'a Container> {
        let mut by_name: HashMap<&str, &Container> = HashMap::new();
        for c in self.containers.values() {
            let Some(name) = c.container_id() else {
                continue;
            };
            if c.age(now) < filters.min_container_age || !filters.allows(name) {
                continue;
            }
            by_name
                .entry(name)
                .and_modify(|prev| {
                    let better = (c.pids.is_empty(), std::cmp::Reverse(c.started_at))
                        < (prev.pids.is_empty(), std::cmp::Reverse(prev.started_at));
                    if better {
                        *prev = c;
                    }
                })
                .or_insert(c);
        }
        by_name.into_values().collect()
    }
}

/// A new container for cgroup `id`, or None when the cgroup is not a container.
fn new_container(
    id: &str,
    cgroups: &ProcessCgroups,
    started: Instant,
    now: Instant,
) -> Option<Container> {
    let kind = classify(id);
    let (naming, runtime_id) = initial_naming(&kind, now)?;
    Some(Container {
        cgroup_id: id.to_owned(),
        cgroups: cgroups.clone(),
        kind,
        runtime_id,
        naming,
        image: String::new(),
        log_path: None,
        log_driver: None,
        pids: Default::default(),
        started_at: started,
        empty_since: None,
        restarts: 0,
        oom_kills: 0,
        net: Default::default(),
        volumes: Default::default(),
    })
}

/// The naming a new container starts with, and its runtime id; None when the cgroup is not a
/// container at all.
fn initial_naming(kind: &ContainerKind, now: Instant) -> Option<(Naming, Option<String>)> {
    let pending = |source| Naming::Pending {
        source,
        attempts: 0,
        next_attempt: now,
        in_flight: false,
        last_error: None,
    };
    let named = |id: &String| Naming::Named {
        container_id: id.clone(),
        app_id: String::new(),
    };
    Some(match kind {
        ContainerKind::NotAContainer | ContainerKind::Unknown => return None,
        ContainerKind::Docker { id } => (pending(MetadataSource::Docker), Some(id.clone())),
        ContainerKind::Kubernetes { runtime, id } => {
            let source = match runtime {
                Some(Runtime::Docker) => MetadataSource::Docker,
                // A bare id under kubepods is docker-shim, or containerd/CRI-O with the
                // cgroupfs driver: every runtime is asked.
                None => MetadataSource::AnyKubernetes,
                Some(Runtime::Containerd) => MetadataSource::Containerd,
                Some(Runtime::Crio) => MetadataSource::Crio,
            };
            (pending(source), Some(id.clone()))
        }
        ContainerKind::ContainerdNamespace { id, .. } => {
            (pending(MetadataSource::Containerd), Some(id.clone()))
        }
        ContainerKind::SystemdService { container_id }
        | ContainerKind::Lxc { container_id }
        | ContainerKind::Talos { container_id } => (named(container_id), None),
    })
}

fn retry(source: MetadataSource, attempts: u32, now: Instant, error: String) -> Naming {
    let attempts = attempts.saturating_add(1);
    let backoff = FIRST_LOOKUP_BACKOFF
        .saturating_mul(1u32 << attempts.min(16))
        .min(MAX_LOOKUP_BACKOFF);
    Naming::Pending {
        source,
        attempts,
        next_attempt: now + backoff,
        in_flight: false,
        last_error: Some(error),
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
