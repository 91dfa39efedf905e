//! The central container registry.
//!
//! Keyed by cgroup, it owns all per-container state. Subsystems send it events through one
//! bounded queue (`queue.rs`); a single task applies them (`State::apply`), starts metadata
//! lookups and collects containers whose processes are gone: that task is the state's only
//! writer. A scrape copies out what it exports ([`Registry::scrape`]); what it needs from the
//! kernel's connection map it has the tracer bridge read and send through the queue
//! (`tracer_bridge.rs`) first. sonde-exporter turns that copy, plus cheap reads of /proc,
//! /sys and cgroup files made at that moment, into metric families. This crate knows no
//! metric name: its self-metrics are typed counters (`stats`, `metadata`, `delays`) the
//! exporter renders.
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
pub mod queue;
pub mod readiness;
pub mod resources;
mod scrape;
pub mod seeding;
pub mod stats;
pub use readiness::READY_TIMEOUT;
pub mod span_hook;
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
pub use queue::EventSender;
pub use scrape::{Scrape, TracerFigures};
pub use span_hook::SpanHook;
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
    events: EventSender,
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

        let (events_tx, events_rx) = queue::channel(config.event_queue, stats.clone());
        let (lookups_tx, lookups_rx) = mpsc::channel(LOOKUP_QUEUE);
        let mut state = State::new(config.gc_grace);
        state.max_fqdns_per_container = config.tracer.max_fqdns_per_container;
        state.procfs = std::sync::Arc::from(config.node_paths.procfs.as_path());
        state.spans = config.tracer.spans.clone();
        span_hook::init_agent_pid(&config.node_paths.procfs);

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
        let bridge_stats = Arc::new(tracer_bridge::BridgeStats::default());
        let tracer = tracer_bridge::NetTracer::start(
            &config.tracer,
            &config.node_paths.procfs,
            cgroupfs.clone(),
            &health,
            bridge_stats.clone(),
        );
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
            net: tracer.as_ref().map(|(t, _, _)| t.clone()),
            bridge_stats,
            state: Mutex::new(state),
            delays: Mutex::new(delays),
            config,
            cgroupfs,
            node_labels,
            stats,
            metadata_stats,
            health,
            events: events_tx.clone(),
            started: Instant::now(),
            availability: availability.clone(),
            ready: std::sync::atomic::AtomicBool::new(false),
        });

        if let Some((net, stream, parts)) = tracer {
            tokio::spawn(tracer_bridge::run_bridge(
                net,
                stream,
                parts,
                events_tx.clone(),
                inner.config.node_paths.procfs.clone(),
                inner.health.clone(),
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
        self.inner.events.clone()
    }

    pub fn health(&self) -> &Health {
        &self.inner.health
    }

    pub fn node_labels(&self) -> &NodeLabels {
        &self.inner.node_labels
    }

    /// Copies what a scrape needs out of the state, and updates the tracking gauges.
    fn exported_containers(&self) -> Vec<ExportedContainer> {
        let inner = &*self.inner;
        let now = Instant::now();
        let state = inner.state.lock().unwrap_or_else(PoisonError::into_inner);
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
                    active: state
                        .active_connections_of(&c.cgroup_id)
                        .cloned()
                        .unwrap_or_default(),
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
/// containers. The only writer of the state.
async fn event_loop(
    inner: Arc<Inner>,
    mut events: mpsc::Receiver<queue::Batch>,
    lookups: mpsc::Sender<state::LookupRequest>,
    availability: Arc<RuntimeAvailability>,
) {
    let mut ticker = tokio::time::interval(HOUSEKEEPING_INTERVAL);
    let mut batches = Vec::with_capacity(64);
    loop {
        tokio::select! {
            n = events.recv_many(&mut batches, 64) => {
                if n == 0 {
                    return;
                }
                let now = Instant::now();
                let mut state = inner.state.lock().unwrap_or_else(PoisonError::into_inner);
                for mut batch in batches.drain(..) {
                    for event in batch.events.drain(..) {
                        state.apply(event, now);
                    }
                    batch.acknowledge();
                    // Dropping the batch gives its room in the queue back.
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
async fn scan_loop(inner: Arc<Inner>, mut scanner: ProcScanner, events: EventSender) {
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
                // The scan is not a kernel event source: waiting for room is fine here.
                if events.send_waiting(outcome.events).await.is_err() {
                    return;
                }
            }
            Err(e) => inner.health.down(
                "discovery",
                format!("cannot scan processes ({e}); give the agent the host's /proc (--procfs-root) and hostPID"),
            ),
        }
    }
}
