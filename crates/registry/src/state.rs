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
use crate::net::{ActiveCount, ActiveMap, NetEvent};

/// Upper bound of the retry delay for a metadata lookup that keeps failing.
const MAX_LOOKUP_BACKOFF: Duration = Duration::from_secs(300);
/// The retry delay after a lookup's first failure; it doubles with each further failure.
const FIRST_LOOKUP_BACKOFF: Duration = Duration::from_secs(2);

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
    OomKillInCgroup { pid: u32, cgroup_path: String },
    /// A process the bridge could not place (gone before its /proc could be read) exited in
    /// this cgroup (the kernel's id of the cgroup it ended in): it ran there, so it counts as
    /// a run of that container (a restart if the container was empty), and its late socket
    /// events still find the container.
    ProcessExitInCgroup { pid: u32, cgroup_path: String },
    /// A TCP happening of this process (from the tracer).
    Net { pid: u32, event: NetEvent },
    /// The open connections the tracer's latest dump of the kernel's connection map showed,
    /// all of them: they replace the previous ones.
    ActiveConnections(Vec<ActiveCount>),
    /// A TCP happening of a process the bridge could not place; `cgroup_path` is the cgroup
    /// the kernel saw the process in when it acted.
    NetInCgroup {
        pid: u32,
        cgroup_path: String,
        event: NetEvent,
    },
    /// The answer to a metadata lookup started by [`State::due_lookups`].
    Metadata {
        cgroup_id: String,
        outcome: MetadataOutcome,
    },
    /// The answer to a removal check: whether the runtime still has the container (None: the
    /// runtime could not be asked).
    RemovalChecked {
        cgroup_id: String,
        exists: Option<bool>,
    },
    /// A cgroup directory was made (the tracer's cgroup_mkdir): `cgroup_inode` is its
    /// kernel id. The latest directory of a container's path is its current run.
    CgroupCreated {
        cgroup_path: String,
        cgroup_inode: u64,
    },
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
    /// Whether this asks if an empty container still exists (answered with
    /// [`Event::RemovalChecked`]) rather than for its name.
    pub removal_check: bool,
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
    /// 0 for a process placed from the kernel's cgroup id alone (see `ghost_since`).
    start_ticks: u64,
    /// The container the process counts for, or None for processes outside containers.
    cgroup_id: Option<String>,
    /// Placed from a kernel event's cgroup id, never read from /proc: forgotten after
    /// [`GHOST_TTL`] unless its exit or a /proc scan comes first (the scan only reports
    /// processes it saw, so a ghost whose exit event was lost would otherwise stay).
    ghost_since: Option<Instant>,
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
    /// `--max-fqdns-per-container`: DNS domains a container gets its own label for.
    pub max_fqdns_per_container: usize,
    /// What DNS answers said, node-wide (`ip_to_fqdn`).
    pub ip_to_fqdn: crate::l7::IpToFqdn,
    /// procfs root, for a container's opt-out from L7 tracing (crate::l7_optout).
    pub procfs: std::sync::Arc<std::path::Path>,
    /// Where outbound requests go for trace export (None: `--traces-endpoint` unset).
    pub spans: Option<crate::SpanHook>,
    /// Container of recently exited processes: a process's sockets close after its exit event,
    /// and their last bytes still belong to its container.
    exited: foldhash::HashMap<u32, (String, Instant)>,
    /// The latest cgroup directory (inode) made at each path, from cgroup_mkdir events.
    cgroup_runs: foldhash::HashMap<String, u64>,
    /// Per exported `container_id`: what its earlier cgroups counted (see [`Identity`]).
    identities: HashMap<String, Identity>,
    /// Open connections per container key, as of the tracer's latest dump (replaced whole by
    /// each `Event::ActiveConnections`, so bounded by the tracer's connection table).
    active: foldhash::HashMap<String, ActiveMap>,
}

/// What a `container_id` keeps across cgroups. The kubelet replaces a crashed container with
/// a new one (new runtime id, new cgroup, same pod and container name): the series are the
/// name's, so its restarts and OOM kills must survive the cgroup. As Coroot does, a name is
/// remembered for [`IDENTITY_RETENTION`] after its last cgroup is gone (CrashLoopBackOff waits
/// up to 5 minutes between runs).
#[derive(Debug, Default)]
struct Identity {
    /// The registry key of the cgroup carrying the name now.
    key: String,
    /// Restarts and OOM kills of the name's earlier cgroups, each replacement counted as one
    /// restart.
    carried_restarts: u64,
    carried_oom_kills: u64,
    /// The counts of `key`'s container when it was collected (None while it exists).
    collected: Option<(u64, u64, Instant)>,
}

/// How long a `container_id` whose containers are all gone is remembered.
const IDENTITY_RETENTION: Duration = Duration::from_secs(600);
/// Bound of the remembered names (those gone longest are forgotten first when full).
const MAX_IDENTITIES: usize = 65_536;

/// Bound of `cgroup_runs` (cleared when exceeded: a restart is then counted by the older
/// rule, "every process gone, then a new one").
const MAX_CGROUP_RUNS: usize = 65_536;

/// How long an exited process's container is remembered for its late socket events.
const EXITED_RETENTION: Duration = Duration::from_secs(60);
/// How long a process placed from a kernel cgroup id alone is kept without its exit or a
/// /proc scan confirming it (scans run every 10 s by default).
const GHOST_TTL: Duration = Duration::from_secs(30);
/// Bound of that memory.
const MAX_EXITED: usize = 65_536;

impl State {
    pub fn new(gc_grace: Duration) -> State {
        State {
            containers: foldhash::HashMap::default(),
            pids: foldhash::HashMap::default(),
            gc_grace,
            unattributed_events: 0,
            max_fqdns_per_container: 50,
            ip_to_fqdn: crate::l7::IpToFqdn::default(),
            procfs: std::sync::Arc::from(std::path::Path::new("/proc")),
            spans: None,
            exited: foldhash::HashMap::default(),
            cgroup_runs: foldhash::HashMap::default(),
            identities: HashMap::new(),
            active: foldhash::HashMap::default(),
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

    /// Open connections of the container keyed `key` per (destination, actual destination),
    /// as of the tracer's latest dump.
    pub fn active_connections_of(&self, key: &str) -> Option<&ActiveMap> {
        self.active.get(key)
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
            Event::OomKillInCgroup { pid, cgroup_path } => {
                self.oom_in_cgroup(pid, &cgroup_path, now)
            }
            Event::ProcessExitInCgroup { pid, cgroup_path } => {
                if !self.pids.contains_key(&pid) {
                    self.place_ghost(pid, &cgroup_path, false, now);
                }
                self.process_gone(pid, now);
            }
            Event::RemovalChecked { cgroup_id, exists } => {
                self.removal_checked(&cgroup_id, exists, now)
            }
            Event::CgroupCreated {
                cgroup_path,
                cgroup_inode,
            } => {
                if self.cgroup_runs.len() >= MAX_CGROUP_RUNS {
                    self.cgroup_runs.clear();
                }
                self.cgroup_runs.insert(cgroup_path, cgroup_inode);
            }
            Event::Net { pid, event } => self.apply_net(pid, &event, now),
            Event::NetInCgroup {
                pid,
                cgroup_path,
                event,
            } => self.apply_net_in_cgroup(pid, &cgroup_path, &event, now),
            Event::ActiveConnections(counts) => self.active_connections(counts),
        }
    }

    /// Places `pid`, which could not be read from /proc, in the container of cgroup `path`
    /// (a restart when its cgroup was made anew). A bare exit never makes a container the
    /// registry never saw (`create` false): runtimes run short-lived helpers in cgroups that are
    /// not containers yet (runc's parent stages, before the container is started in its
    /// runtime), and a container made from them is looked up too early (seen with containerd's
    /// CRI: never named). An OOM kill or a TCP event is the container's own workload.
    fn place_ghost(&mut self, pid: u32, path: &str, create: bool, now: Instant) {
        if pid == 0
            || self.pids.contains_key(&pid)
            || (!create && !self.containers.contains_key(path))
        {
            return;
        }
        let Ok(cgroups) = ProcessCgroups::parse(&format!("0::{path}\n")) else {
            return;
        };
        let tracked = match cgroups.id() {
            Some(id) => self.track(id, &cgroups, Duration::ZERO, pid, now),
            None => None,
        };
        self.pids.insert(
            pid,
            PidEntry {
                start_ticks: 0,
                cgroup_id: tracked,
                ghost_since: Some(now),
            },
        );
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
        if let Some(entry) = self.pids.get_mut(&pid)
            && (entry.start_ticks == start_ticks || entry.ghost_since.is_some())
            && entry.cgroup_id.as_deref() == new_id.filter(|id| self.containers.contains_key(*id))
        {
            // Nothing changed (the common case of a periodic scan), or a process placed
            // from its cgroup id alone is confirmed where it was placed.
            entry.start_ticks = start_ticks;
            entry.ghost_since = None;
            return;
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
                ghost_since: None,
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
        let latest_run = self.cgroup_runs.get(id).copied();
        if let Some(c) = self.containers.get_mut(id) {
            let was_empty = c.empty_since.take().is_some();
            let restarted = match (latest_run, c.run_inode) {
                // The runtime made the cgroup anew since this run began: a new run. Exact
                // even when every process of a run is gone before /proc is read, and a
                // runtime's helper process that comes and goes in the same directory is not
                // a run of its own.
                (Some(latest), Some(current)) => latest != current,
                // Tracked since before any directory of the path was seen made (the agent
                // started while it ran, or a /proc scan placed it before the bridge passed
                // on the mkdir): a new run once every process of the old one was gone.
                (Some(_), None) => was_empty,
                // No cgroup_mkdir events (tracer off, no unified hierarchy): every process
                // was gone and the same container runs again.
                (None, _) => was_empty,
            };
            if restarted {
                c.restarts += 1;
            }
            c.run_inode = latest_run.or(c.run_inode);
            c.pids.insert(pid);
            if started < c.started_at {
                c.started_at = started;
            }
            return Some(c.cgroup_id.clone());
        }
        let mut container = new_container(id, cgroups, started, now)?;
        container.run_inode = latest_run;
        self.containers.insert(id.to_owned(), container);
        if let Some(c) = self.containers.get_mut(id) {
            c.pids.insert(pid);
        }
        Some(id.to_owned())
    }

    /// An OOM kill of `pid` in the cgroup at `path`, a process that was gone before it could
    /// be placed (a container whose only process was killed at once). The victim is placed
    /// in its container (created if the registry never saw it, so the kill is counted and the
    /// container is named and exported for its grace period) until its exit event.
    fn oom_in_cgroup(&mut self, pid: u32, path: &str, now: Instant) {
        if !self.knows_pid(pid) {
            self.place_ghost(pid, path, true, now);
        }
        match self.container_of_pid_mut(pid) {
            Some(c) => c.oom_kills += 1,
            None => self.unattributed_events += 1,
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
                removal::schedule(c, now);
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
                c.published_ports = md.published_ports.clone();
                c.volumes = std::sync::Arc::new(md.volumes.clone());
                if let Naming::Named { container_id, .. } = &c.naming {
                    let (key, name) = (c.cgroup_id.clone(), container_id.clone());
                    self.adopt_name(name, key);
                }
            }
            MetadataOutcome::NotFound => {
                c.naming = retry(source, attempts, now, "not found in the runtime".into());
            }
            MetadataOutcome::Failed(error) => {
                c.naming = retry(source, attempts, now, error);
            }
        }
    }

    /// The cgroup `key` was named `name`: if another cgroup carried that name before (a
    /// container replaced by the kubelet), this is a restart of the name, and what the earlier
    /// cgroup counted carries over.
    fn adopt_name(&mut self, name: String, key: String) {
        if self.identities.len() >= MAX_IDENTITIES && !self.identities.contains_key(&name) {
            // Full: forget the name gone longest (live names are never evicted this way,
            // since every container has at most one).
            let oldest = self
                .identities
                .iter()
                .filter_map(|(n, i)| Some((i.collected?.2, n.clone())))
                .min();
            if let Some((_, n)) = oldest {
                self.identities.remove(&n);
            }
        }
        let previous = self
            .identities
            .get(&name)
            .map(|i| (i.key.clone(), i.collected));
        let identity = self.identities.entry(name).or_default();
        match previous {
            None => identity.key = key,
            // The same cgroup still carrying its name (named again): nothing new.
            Some((old_key, None)) if old_key == key => {}
            // Another cgroup carried the name, or this one did and was collected since (a
            // Docker container started again after its grace period): a new run.
            Some((old_key, collected)) => {
                let (restarts, oom_kills) = match collected {
                    Some((r, o, _)) => (r, o),
                    None => self
                        .containers
                        .get(&old_key)
                        .map(|c| (c.restarts, c.oom_kills))
                        .unwrap_or_default(),
                };
                identity.carried_restarts += restarts + 1;
                identity.carried_oom_kills += oom_kills;
                identity.key = key;
                identity.collected = None;
            }
        }
    }

    /// Restarts and OOM kills to export for container `c` (its own plus what earlier cgroups
    /// of the same `container_id` counted).
    pub fn lifetime_counts(&self, c: &Container) -> (u64, u64) {
        match c.container_id().and_then(|n| self.identities.get(n)) {
            Some(i) if i.key == c.cgroup_id => (
                i.carried_restarts + c.restarts,
                i.carried_oom_kills + c.oom_kills,
            ),
            _ => (c.restarts, c.oom_kills),
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
            if let Some(req) = removal::due(c, now, &available) {
                due.push(req);
                continue;
            }
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
                    removal_check: false,
                });
            }
        }
        due
    }

    /// A lookup that could not be queued: make it due again on the next tick.
    pub fn lookup_not_started(&mut self, cgroup_id: &str) {
        let Some(c) = self.containers.get_mut(cgroup_id) else {
            return;
        };
        if let Some((_, in_flight)) = &mut c.removal_check {
            *in_flight = false;
        }
        if let Naming::Pending { in_flight, .. } = &mut c.naming {
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
        let expired: Vec<u32> = self
            .pids
            .iter()
            .filter(|(_, e)| {
                e.ghost_since
                    .is_some_and(|t| now.saturating_duration_since(t) >= GHOST_TTL)
            })
            .map(|(pid, _)| *pid)
            .collect();
        for pid in expired {
            self.process_gone(pid, now);
        }
        let identities = &mut self.identities;
        self.containers.retain(|_, c| {
            let keep = !c.removed
                && match c.empty_since {
                    Some(t) => now.saturating_duration_since(t) < grace,
                    None => true,
                };
            if !keep
                && let Some(i) = c.container_id().and_then(|n| identities.get_mut(n))
                && i.key == c.cgroup_id
            {
                i.collected = Some((c.restarts, c.oom_kills, now));
            }
            keep
        });
        self.identities.retain(|_, i| {
            i.collected
                .is_none_or(|(_, _, t)| now.saturating_duration_since(t) < IDENTITY_RETENTION)
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
    let lookup_source = naming_source(&naming);
    Some(Container {
        cgroup_id: id.to_owned(),
        cgroups: cgroups.clone(),
        kind,
        runtime_id,
        naming,
        image: String::new(),
        log_path: None,
        log_driver: None,
        published_ports: Vec::new(),
        pids: Default::default(),
        started_at: started,
        empty_since: None,
        restarts: 0,
        run_inode: None,
        lookup_source,
        removal_check: None,
        removed: false,
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
    // attempts >= 1 here: the first failure waits FIRST_LOOKUP_BACKOFF itself.
    let backoff = FIRST_LOOKUP_BACKOFF
        .saturating_mul(1u32 << (attempts - 1).min(16))
        .min(MAX_LOOKUP_BACKOFF);
    Naming::Pending {
        source,
        attempts,
        next_attempt: now + backoff,
        in_flight: false,
        last_error: Some(error),
    }
}

/// The runtime a pending container's name comes from.
fn naming_source(naming: &Naming) -> Option<MetadataSource> {
    match naming {
        Naming::Pending { source, .. } => Some(*source),
        _ => None,
    }
}

mod net_apply;
mod removal;

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
