//! The central container registry.
//!
//! Keyed by cgroup, it owns all per-container state. Subsystems send it events through one
//! bounded channel; a single task applies them (`State::apply`), starts metadata lookups and
//! collects containers whose processes are gone. A scrape copies out what it exports
//! ([`Registry::scrape`]); sonde-exporter turns that, plus cheap reads of /proc, /sys and
//! cgroup files made at that moment, into metric families. This crate knows no metric name:
//! its self-metrics are typed counters (`stats`, `metadata`, `delays`) the exporter renders.
//!
//! The subsystem crates (cgroup, node, runtime, ...) know nothing of containers or of each
//! other; this crate composes them.

pub mod cgroup_ids;
pub mod container;
pub mod delays;
pub mod discovery;
pub mod exported;
pub mod gpu;
pub mod health;
pub mod l7;
mod l7_optout;
pub mod latency;
mod logs_sync;
pub mod metadata;
pub mod nat_bridge;
pub mod net;
pub mod netns_ips;
pub mod readiness;
pub mod resources;
mod scrape;
pub mod seeding;
pub mod stats;
pub use readiness::READY_TIMEOUT;
pub mod state;
mod tls_bridge;
pub mod tracer_bridge;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sonde_cgroup::CgroupFs;
use sonde_node::NodePaths;
use tokio::sync::mpsc;

pub use exported::{ExportedContainer, NodeLabels};
pub use health::Health;
pub use scrape::{Scrape, TracerFigures};
pub use state::{Event, Filters};
pub use stats::RegistryStats;
pub use tracer_bridge::TracerSettings;

use crate::discovery::ProcScanner;
pub use crate::metadata::RuntimeSockets;
use crate::metadata::{Resolver, RuntimeAvailability};
use crate::state::State;

/// How often the registry task retries metadata lookups and collects dead containers.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(1);
/// Capacity of the queue of metadata lookups waiting for the resolver.
const LOOKUP_QUEUE: usize = 1024;

/// Everything the registry needs to know, converted once from the CLI.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    pub node_paths: NodePaths,
    pub cgroupfs_root: PathBuf,
    /// Container runtimes' API sockets.
    pub runtime_sockets: RuntimeSockets,
    /// Bound on every container-runtime API call.
    pub runtime_timeout: Duration,
    pub filters: Filters,
    /// Period of the /proc reconciliation scan.
    pub scan_interval: Duration,
    /// How long a container with no processes is kept before its series vanish.
    pub gc_grace: Duration,
    /// Capacity of the event channel; events beyond it are dropped and counted.
    pub event_queue: usize,
    pub version: String,
    /// `--enable-delay-accounting`: turn kernel.task_delayacct on at start.
    pub enable_delay_accounting: bool,
    /// The cloud metadata subsystem, rendered as node_cloud_info.
    pub cloud: Option<sonde_cloud::CloudHandle>,
    /// The eBPF tracer: process, OOM and TCP events.
    pub tracer: TracerSettings,
    /// Log pattern mining (`disabled` for --disable-log-parsing).
    pub logs: sonde_logs::LogManagerConfig,
    /// Volumes, disk I/O and application types.
    pub resources: resources::ResourcesConfig,
}

/// Handle to the running registry. Cheap to clone.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Registry")
    }
}

struct Inner {
    state: Mutex<State>,
    /// Scrape-time delay accounting; scrapes take turns on it.
    delays: Mutex<delays::Delays>,
    config: RegistryConfig,
    cgroupfs: Option<CgroupFs>,
    node_labels: NodeLabels,
    stats: Arc<RegistryStats>,
    metadata_stats: Arc<metadata::MetadataStats>,
    health: Health,
    events: mpsc::Sender<Event>,
    batched: Arc<BatchedEvents>,
    net: Option<Arc<tracer_bridge::NetTracer>>,
    bridge_stats: Arc<tracer_bridge::BridgeStats>,
    logs: Option<Arc<sonde_logs::LogManager>>,
    /// Volumes, disk I/O and application types (resources.rs).
    resources: resources::Resources,
    /// When the registry started, and whether it has been ready since (see `readiness`).
    started: Instant,
    availability: Arc<RuntimeAvailability>,
    ready: std::sync::atomic::AtomicBool,
}

/// Sends events to the registry without ever blocking: when the queue is full the event is
/// dropped and counted in `sonde_events_dropped_total{queue="events"}`.
#[derive(Clone, Debug)]
pub struct EventSender {
    tx: mpsc::Sender<Event>,
    stats: Arc<RegistryStats>,
    batched: Arc<BatchedEvents>,
}

/// Events waiting in the queue inside [`Event::Batch`]es. A batch takes one slot of the
/// queue, so the batches' events have a bound of their own, the queue's size again: memory
/// stays bounded by twice `--event-queue-size` events.
#[derive(Debug)]
struct BatchedEvents {
    queued: std::sync::atomic::AtomicUsize,
    limit: usize,
}

impl EventSender {
    pub fn send(&self, event: Event) {
        if self.tx.try_send(event).is_err() {
            self.dropped(1);
        }
    }

    /// Sends `events` as one queue item, applied in order. All or none: a batch that does not
    /// fit is dropped and each of its events counted.
    pub fn send_batch(&self, mut events: Vec<Event>) {
        use std::sync::atomic::Ordering;
        match events.len() {
            0 => return,
            1 => return self.send(events.pop().expect("one event")),
            _ => {}
        }
        let n = events.len();
        let queued = self.batched.queued.fetch_add(n, Ordering::AcqRel);
        if queued + n > self.batched.limit {
            self.batched.queued.fetch_sub(n, Ordering::AcqRel);
            return self.dropped(n);
        }
        if self.tx.try_send(Event::Batch(events)).is_err() {
            self.batched.queued.fetch_sub(n, Ordering::AcqRel);
            self.dropped(n);
        }
    }

    fn dropped(&self, n: usize) {
        self.stats
            .events_dropped
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Registry {
    /// Starts the registry on the current tokio runtime: an initial /proc scan (applied before
    /// this returns, so the first scrape already sees the node's containers), then the event
    /// loop, the periodic scan and the metadata resolver as tasks.
    pub fn start(config: RegistryConfig, health: Health) -> Registry {
        let node_labels = NodeLabels {
            machine_id: sonde_node::machine_id(&config.node_paths).unwrap_or_default(),
            system_uuid: sonde_node::system_uuid(&config.node_paths).unwrap_or_default(),
        };
        if node_labels.machine_id.is_empty() {
            tracing::warn!(
                host_root = %config.node_paths.host_root.display(),
                "No machine id found (/etc/machine-id, /var/lib/dbus/machine-id): the backend cannot join this node's series; mount the host's /etc/machine-id"
            );
        }
        let stats = Arc::new(RegistryStats::default());
        let metadata_stats = Arc::new(metadata::MetadataStats::default());

        let cgroupfs = match CgroupFs::detect(&config.cgroupfs_root) {
            Ok(fs) => {
                health.up("cgroup");
                Some(fs)
            }
            Err(e) => {
                health.down(
                    "cgroup",
                    format!(
                        "cannot use cgroupfs at {} ({e}): container resource metrics are off; mount the host's /sys/fs/cgroup and set --cgroupfs-root",
                        config.cgroupfs_root.display()
                    ),
                );
                None
            }
        };

        let (events_tx, events_rx) = mpsc::channel(config.event_queue.max(1));
        let batched = Arc::new(BatchedEvents {
            queued: std::sync::atomic::AtomicUsize::new(0),
            limit: config.event_queue.max(1),
        });
        let (lookups_tx, lookups_rx) = mpsc::channel(LOOKUP_QUEUE);
        let mut state = State::new(config.gc_grace);
        state.max_fqdns_per_container = config.tracer.max_fqdns_per_container;
        state.procfs = std::sync::Arc::from(config.node_paths.procfs.as_path());

        let mut scanner = ProcScanner::new(&config.node_paths.procfs);
        let now = Instant::now();
        match scanner.scan() {
            Ok(outcome) => {
                stats
                    .proc_scan_errors
                    .fetch_add(outcome.errors, std::sync::atomic::Ordering::Relaxed);
                for event in outcome.events {
                    state.apply(event, now);
                }
                health.up("discovery");
            }
            Err(e) => health.down(
                "discovery",
                format!("cannot scan processes ({e}): no containers are discovered; give the agent the host's /proc (--procfs-root) and hostPID"),
            ),
        }

        let availability = Arc::new(RuntimeAvailability::default());
        let resolver = Arc::new(Resolver::new(
            config.runtime_sockets.clone(),
            config.runtime_timeout,
            availability.clone(),
            metadata_stats.clone(),
            health.clone(),
        ));

        let delays = delays::Delays::start(
            &config.node_paths.procfs,
            config.enable_delay_accounting,
            &health,
        );
        let tracer = tracer_bridge::NetTracer::start(
            &config.tracer,
            &config.node_paths.procfs,
            cgroupfs.clone(),
            &health,
        );
        let bridge_stats = Arc::new(tracer_bridge::BridgeStats::default());
        let logs = if config.logs.disabled {
            health.down("logs", "log parsing is off (--disable-log-parsing)");
            None
        } else {
            health.up("logs");
            Some(Arc::new(sonde_logs::LogManager::start(config.logs.clone())))
        };
        if let Some(fs) = &cgroupfs {
            resources::warn_if_blkio_inactive(fs, &config.node_paths.procfs, &config.resources);
        }
        let resources = resources::Resources::new(
            &config.node_paths.procfs,
            &config.node_paths.sysfs,
            config.resources.clone(),
        )
        .with_host_root(&config.node_paths.host_root)
        .with_latency(latency::Latency::start(
            &config.node_paths.procfs,
            config.resources.disable_pinger,
            &health,
        ))
        .with_gpu(gpu::start(
            &config.resources,
            &config.node_paths.host_root,
            &health,
        ));
        let inner = Arc::new(Inner {
            resources,
            logs: logs.clone(),
            net: tracer.as_ref().map(|(t, _)| t.clone()),
            bridge_stats: bridge_stats.clone(),
            state: Mutex::new(state),
            delays: Mutex::new(delays),
            config,
            cgroupfs,
            node_labels,
            stats,
            metadata_stats,
            health,
            events: events_tx.clone(),
            batched,
            started: Instant::now(),
            availability: availability.clone(),
            ready: std::sync::atomic::AtomicBool::new(false),
        });

        if let Some((net, stream)) = tracer {
            let sender = EventSender {
                tx: events_tx.clone(),
                stats: inner.stats.clone(),
                batched: inner.batched.clone(),
            };
            tokio::spawn(tracer_bridge::run_bridge(
                net,
                stream,
                sender,
                inner.config.node_paths.procfs.clone(),
                inner.health.clone(),
                bridge_stats,
            ));
        }
        if let Some(manager) = logs {
            tokio::spawn(logs_sync::run(inner.clone(), manager));
        }
        tokio::spawn(resolver.clone().watch_runtimes());
        tokio::spawn(resolver.run(lookups_rx, events_tx.clone()));
        tokio::spawn(event_loop(
            inner.clone(),
            events_rx,
            lookups_tx,
            availability,
        ));
        tokio::spawn(scan_loop(inner.clone(), scanner, events_tx));
        Registry { inner }
    }

    /// A non-blocking sender for other subsystems' events.
    pub fn event_sender(&self) -> EventSender {
        EventSender {
            tx: self.inner.events.clone(),
            stats: self.inner.stats.clone(),
            batched: self.inner.batched.clone(),
        }
    }

    pub fn health(&self) -> &Health {
        &self.inner.health
    }

    pub fn node_labels(&self) -> &NodeLabels {
        &self.inner.node_labels
    }

    /// Copies what a scrape needs out of the state, and updates the tracking gauges. Byte
    /// counts of open connections read by this scrape are applied first.
    fn exported_containers(
        &self,
        tracer: Option<&tracer_bridge::TracerScrape>,
    ) -> Vec<ExportedContainer> {
        let inner = &*self.inner;
        let now = Instant::now();
        let mut state = inner.state.lock().unwrap_or_else(PoisonError::into_inner);
        // Active connections per container key and destination.
        let mut active: std::collections::HashMap<
            String,
            std::collections::HashMap<(std::net::SocketAddr, std::net::SocketAddr), u64>,
        > = Default::default();
        if let (Some(t), Some(net)) = (tracer, inner.net.as_ref()) {
            // Connections first seen in this scrape's dump: place their process first (its
            // first report may be this one), then count the connect.
            // A process gone before it could be read is placed by the cgroup the kernel saw
            // it in at connect.
            let mut buf = String::new();
            let mut apply = |state: &mut State, pid: u32, cgroup_id: u64, event: net::NetEvent| {
                if pid != 0 && !state.knows_pid(pid) {
                    if let Some(seen) = net.place(pid, &mut buf) {
                        state.apply(seen, now);
                    } else if let Some(path) = net.cgroup_path(cgroup_id) {
                        state.apply_net_in_cgroup(pid, &path, &event, now);
                        return;
                    }
                }
                state.apply_net(pid, &event, now);
            };
            for c in &t.connected {
                let event = net::NetEvent::Connected {
                    dst: c.dst,
                    actual: net.actual(c.src, c.dst),
                    duration: Duration::from_nanos(c.duration_ns),
                };
                apply(&mut state, c.pid, c.cgroup_id, event);
            }
            for d in &t.bytes {
                let event = net::NetEvent::Bytes {
                    dst: d.dst,
                    actual: net.actual(d.src, d.dst),
                    sent: d.sent,
                    received: d.received,
                    segs_out: d.segs_out,
                    segs_in: d.segs_in,
                };
                apply(&mut state, d.pid, d.cgroup_id, event);
            }
            for ((pid, cgroup_path), dst, actual, n) in &t.active {
                let container = state
                    .container_of_pid(*pid)
                    .or_else(|| state.container(cgroup_path.as_deref()?));
                if let Some(c) = container {
                    *active
                        .entry(c.cgroup_id.clone())
                        .or_default()
                        .entry((*dst, *actual))
                        .or_default() += n;
                }
            }
        }
        let mut by_state = [("named", 0i64), ("pending", 0), ("skipped", 0)];
        for c in state.containers() {
            if let Some(slot) = by_state.iter_mut().find(|(s, _)| *s == c.state_label()) {
                slot.1 += 1;
            }
        }
        for ((_, n), gauge) in by_state.iter().zip(&inner.stats.containers_tracked) {
            gauge.store(*n, std::sync::atomic::Ordering::Relaxed);
        }
        inner.stats.processes_tracked.store(
            state.tracked_pids() as i64,
            std::sync::atomic::Ordering::Relaxed,
        );
        // The host's addresses (the agent runs in the host's network namespace), read only
        // when a published port is bound to a wildcard.
        let mut host_ips: Option<Vec<std::net::IpAddr>> = None;
        state
            .exported(&inner.config.filters, now)
            .into_iter()
            .filter_map(|c| {
                let (restarts, oom_kills) = state.lifetime_counts(c);
                let mut proxied_listens = Vec::new();
                for a in &c.published_ports {
                    let ips = if a.ip().is_unspecified() {
                        host_ips.get_or_insert_with(|| {
                            netns_ips::read_dir(&inner.config.node_paths.procfs.join("self/net"))
                        })
                    } else {
                        &Vec::new()
                    };
                    for l in netns_ips::expand_host(*a, ips) {
                        if !proxied_listens.contains(&l) {
                            proxied_listens.push(l);
                        }
                    }
                }
                Some(ExportedContainer {
                    app_id: c.app_id().to_owned(),
                    restarts,
                    oom_kills,
                    net: c.net.clone(),
                    active: active.remove(&c.cgroup_id).unwrap_or_default(),
                    key: c.cgroup_id.clone(),
                    pids: c
                        .pids
                        .iter()
                        .filter_map(|&pid| Some((pid, state.start_ticks(pid)?)))
                        .collect(),
                    container_id: c.container_id()?.to_owned(),
                    image: c.image.clone(),
                    cgroups: c.cgroups.clone(),
                    proxied_listens,
                    volumes: c.volumes.clone(),
                    systemd: Default::default(),
                })
            })
            .collect()
    }

    /// Runs `f` with read access to the state (for tests and debugging endpoints).
    pub fn with_state<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        let state = self
            .inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        f(&state)
    }
}

/// Applies events in order, and on every tick queues due metadata lookups and drops dead
/// containers.
async fn event_loop(
    inner: Arc<Inner>,
    mut events: mpsc::Receiver<Event>,
    lookups: mpsc::Sender<state::LookupRequest>,
    availability: Arc<RuntimeAvailability>,
) {
    let mut ticker = tokio::time::interval(HOUSEKEEPING_INTERVAL);
    let mut batch = Vec::with_capacity(256);
    loop {
        tokio::select! {
            n = events.recv_many(&mut batch, 256) => {
                if n == 0 {
                    return;
                }
                let now = Instant::now();
                let mut state = inner.state.lock().unwrap_or_else(PoisonError::into_inner);
                for event in batch.drain(..) {
                    let batched = match &event {
                        Event::Batch(events) => events.len(),
                        _ => 0,
                    };
                    state.apply(event, now);
                    if batched > 0 {
                        inner.batched.queued.fetch_sub(batched, std::sync::atomic::Ordering::AcqRel);
                    }
                }
            }
            _ = ticker.tick() => {
                let now = Instant::now();
                let due = {
                    let mut state = inner.state.lock().unwrap_or_else(PoisonError::into_inner);
                    let removed = state.collect_garbage(now);
                    if removed > 0 {
                        tracing::debug!(removed, "Dropped containers whose processes are gone");
                    }
                    state.due_lookups(now, |s| availability.is_available(s))
                };
                for req in due {
                    let cgroup_id = req.cgroup_id.clone();
                    if lookups.try_send(req).is_err() {
                        inner.stats.lookups_dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let mut state = inner.state.lock().unwrap_or_else(PoisonError::into_inner);
                        state.lookup_not_started(&cgroup_id);
                    }
                }
            }
        }
    }
}

/// The periodic /proc reconciliation scan.
async fn scan_loop(inner: Arc<Inner>, mut scanner: ProcScanner, events: mpsc::Sender<Event>) {
    let period = inner.config.scan_interval;
    loop {
        tokio::time::sleep(period).await;
        let result = tokio::task::spawn_blocking(move || {
            let outcome = scanner.scan();
            (scanner, outcome)
        })
        .await;
        let Ok((returned, outcome)) = result else {
            inner
                .health
                .down("discovery", "the /proc scan task panicked");
            return;
        };
        scanner = returned;
        match outcome {
            Ok(outcome) => {
                inner.health.up("discovery");
                inner
                    .stats
                    .proc_scan_errors
                    .fetch_add(outcome.errors, std::sync::atomic::Ordering::Relaxed);
                for event in outcome.events {
                    // The scan is not a kernel event source: waiting for room is fine here.
                    if events.send(event).await.is_err() {
                        return;
                    }
                }
            }
            Err(e) => inner.health.down(
                "discovery",
                format!("cannot scan processes ({e}); give the agent the host's /proc (--procfs-root) and hostPID"),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gone(pid: u32) -> Event {
        Event::ProcessGone { pid }
    }

    fn pids(event: &Event) -> Vec<u32> {
        match event {
            Event::ProcessGone { pid } => vec![*pid],
            Event::Batch(events) => events.iter().flat_map(pids).collect(),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_batch_is_one_queue_item_in_order_and_its_events_are_bounded() {
        let (tx, mut rx) = mpsc::channel(8);
        let stats = Arc::new(RegistryStats::default());
        let sender = EventSender {
            tx,
            stats: stats.clone(),
            batched: Arc::new(BatchedEvents {
                queued: std::sync::atomic::AtomicUsize::new(0),
                limit: 3,
            }),
        };
        sender.send_batch(vec![gone(1), gone(2)]);
        // 2 + 2 events would exceed the bound of 3 batched events: dropped whole, each counted.
        sender.send_batch(vec![gone(3), gone(4)]);
        // One event takes a plain slot, outside the batch bound.
        sender.send_batch(vec![gone(5)]);
        sender.send_batch(Vec::new());

        let first = rx.try_recv().unwrap();
        assert!(matches!(first, Event::Batch(_)));
        assert_eq!(pids(&first), [1, 2]);
        assert_eq!(pids(&rx.try_recv().unwrap()), [5]);
        assert!(rx.try_recv().is_err(), "nothing else was queued");
        let dropped = stats.counts().events_dropped;
        assert_eq!(dropped, 2);
        assert_eq!(
            sender
                .batched
                .queued
                .load(std::sync::atomic::Ordering::Acquire),
            2,
            "the dropped batch gave its room back"
        );
    }
}
