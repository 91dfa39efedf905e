//! The metadata resolver: asks container runtimes who a container is, off the scrape path.
//!
//! Lookups come from the registry task (`State::due_lookups`) through a bounded queue and run
//! with bounded concurrency; every call has a timeout, so a runtime that hangs delays naming, never
//! a scrape or the event loop. Answers go back to the registry as `Event::Metadata`.
//!
//! Each runtime (Docker, containerd, CRI-O) is probed at start and every 30 s. A runtime whose
//! default socket does not exist is simply absent (no warning: most nodes run one runtime); one
//! that was asked for explicitly, or whose socket exists but does not answer, is reported down.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use sonde_runtime::{ContainerMetadata, ContainerdClient, CrioClient, DockerClient, K8S_NAMESPACE};
use tokio::sync::{Semaphore, mpsc};

use crate::container::MetadataSource;
use crate::health::Health;
use crate::state::{Event, LookupRequest, MetadataOutcome};

/// Lookups running at once, per agent: enough for a burst of new pods, not a stampede.
const MAX_CONCURRENT_LOOKUPS: usize = 8;
/// How often runtimes are probed again.
const RUNTIME_PROBE_INTERVAL: Duration = Duration::from_secs(30);

/// Where the runtimes' APIs are.
#[derive(Debug, Clone)]
pub struct RuntimeSockets {
    pub docker: PathBuf,
    /// Candidates in order (containerd, k3s, k0s, microk8s); the first that exists is used.
    pub containerd: Vec<PathBuf>,
    pub crio: PathBuf,
    /// Sockets the user named with a flag: their absence is a problem worth a warning.
    pub docker_explicit: bool,
    pub containerd_explicit: bool,
    pub crio_explicit: bool,
}

impl RuntimeSockets {
    /// The default sockets of every runtime, under the host root.
    pub fn defaults(host_root: &Path) -> RuntimeSockets {
        RuntimeSockets {
            docker: host_root.join("run/docker.sock"),
            containerd: [
                "run/containerd/containerd.sock",
                "run/k3s/containerd/containerd.sock",
                "run/k0s/containerd.sock",
                "var/snap/microk8s/common/run/containerd.sock",
            ]
            .iter()
            .map(|p| host_root.join(p))
            .collect(),
            crio: host_root.join("var/run/crio/crio.sock"),
            docker_explicit: false,
            containerd_explicit: false,
            crio_explicit: false,
        }
    }

    fn containerd_socket(&self) -> Option<&Path> {
        self.containerd
            .iter()
            .find(|p| p.exists())
            .or(self.containerd.first())
            .map(PathBuf::as_path)
    }
}

/// Which runtimes currently answer, read by the registry task before it queues lookups.
#[derive(Debug, Default)]
pub struct RuntimeAvailability {
    docker: AtomicBool,
    containerd: AtomicBool,
    crio: AtomicBool,
    /// Every configured runtime was probed at least once (see `Registry::readiness`).
    probed: AtomicBool,
}

impl RuntimeAvailability {
    /// Whether the first probe of every runtime has answered (or timed out).
    pub fn probed(&self) -> bool {
        self.probed.load(Ordering::Relaxed)
    }

    pub fn is_available(&self, source: MetadataSource) -> bool {
        match source {
            MetadataSource::Docker => self.docker.load(Ordering::Relaxed),
            MetadataSource::Containerd => self.containerd.load(Ordering::Relaxed),
            MetadataSource::Crio => self.crio.load(Ordering::Relaxed),
            MetadataSource::AnyKubernetes => {
                self.is_available(MetadataSource::Docker)
                    || self.is_available(MetadataSource::Containerd)
                    || self.is_available(MetadataSource::Crio)
            }
        }
    }

    fn flag(&self, source: MetadataSource) -> Option<&AtomicBool> {
        match source {
            MetadataSource::Docker => Some(&self.docker),
            MetadataSource::Containerd => Some(&self.containerd),
            MetadataSource::Crio => Some(&self.crio),
            MetadataSource::AnyKubernetes => None,
        }
    }
}

/// The runtimes of `sonde_metadata_*{runtime}`, in the order rendered (sorted).
pub const RUNTIMES: [MetadataSource; 3] = [
    MetadataSource::Containerd,
    MetadataSource::Crio,
    MetadataSource::Docker,
];
/// The `reason` label of `sonde_metadata_errors_total`, in the order rendered (sorted).
pub const ERROR_REASONS: [&str; 4] = ["error", "not_found", "timeout", "unavailable"];

/// The resolver's counters (`sonde_metadata_lookups_total{runtime}`,
/// `sonde_metadata_errors_total{runtime,reason}`), rendered by sonde-exporter from
/// [`MetadataStats::counts`], whose every field it names.
#[derive(Debug, Default)]
pub struct MetadataStats {
    lookups: [AtomicU64; RUNTIMES.len()],
    errors: [[AtomicU64; ERROR_REASONS.len()]; RUNTIMES.len()],
}

/// A reading of [`MetadataStats`], indexed like [`RUNTIMES`] and [`ERROR_REASONS`]. A series is
/// exported once its count is above zero (as a runtime never asked has no series).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetadataCounts {
    pub lookups: [u64; RUNTIMES.len()],
    pub errors: [[u64; ERROR_REASONS.len()]; RUNTIMES.len()],
}

impl MetadataStats {
    fn runtime(source: MetadataSource) -> Option<usize> {
        RUNTIMES.iter().position(|r| *r == source)
    }

    fn lookup(&self, source: MetadataSource) {
        if let Some(i) = Self::runtime(source) {
            self.lookups[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    fn error(&self, source: MetadataSource, reason: &str) {
        let r = ERROR_REASONS.iter().position(|x| *x == reason);
        if let (Some(i), Some(r)) = (Self::runtime(source), r) {
            self.errors[i][r].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn counts(&self) -> MetadataCounts {
        MetadataCounts {
            lookups: self.lookups.each_ref().map(|a| a.load(Ordering::Relaxed)),
            errors: self
                .errors
                .each_ref()
                .map(|row| row.each_ref().map(|a| a.load(Ordering::Relaxed))),
        }
    }
}

pub(crate) struct Resolver {
    pub docker: Option<DockerClient>,
    pub containerd: Option<ContainerdClient>,
    pub crio: Option<CrioClient>,
    pub sockets: RuntimeSockets,
    pub availability: Arc<RuntimeAvailability>,
    pub stats: Arc<MetadataStats>,
    pub health: Health,
}

impl Resolver {
    pub fn new(
        sockets: RuntimeSockets,
        timeout: Duration,
        availability: Arc<RuntimeAvailability>,
        stats: Arc<MetadataStats>,
        health: Health,
    ) -> Resolver {
        // Constructors do no I/O; they fail only on unusable paths, said once here.
        let docker = DockerClient::new(&sockets.docker, timeout)
            .map_err(|e| health.down("docker", format!("cannot create a Docker client: {e}")))
            .ok();
        let containerd = sockets.containerd_socket().and_then(|s| {
            ContainerdClient::new(s, timeout)
                .map_err(|e| {
                    health.down(
                        "containerd",
                        format!("cannot create a containerd client: {e}"),
                    )
                })
                .ok()
        });
        let crio = CrioClient::new(&sockets.crio, timeout)
            .map_err(|e| health.down("crio", format!("cannot create a CRI-O client: {e}")))
            .ok();
        Resolver {
            docker,
            containerd,
            crio,
            sockets,
            availability,
            stats,
            health,
        }
    }

    /// Probes every runtime now and then every RUNTIME_PROBE_INTERVAL, keeping the
    /// availability flags and the subsystem states current.
    pub async fn watch_runtimes(self: Arc<Self>) {
        let mut ticker = tokio::time::interval(RUNTIME_PROBE_INTERVAL);
        loop {
            ticker.tick().await;
            if let Some(c) = &self.docker {
                let explicit = self.sockets.docker_explicit;
                self.probe(MetadataSource::Docker, c.socket(), explicit, c.ping())
                    .await;
            }
            if let Some(c) = &self.containerd {
                let explicit = self.sockets.containerd_explicit;
                self.probe(MetadataSource::Containerd, c.socket(), explicit, async {
                    c.version().await.map(|_| ())
                })
                .await;
            }
            if let Some(c) = &self.crio {
                let explicit = self.sockets.crio_explicit;
                self.probe(MetadataSource::Crio, c.socket(), explicit, c.ping())
                    .await;
            }
            self.availability.probed.store(true, Ordering::Relaxed);
        }
    }

    async fn probe(
        &self,
        source: MetadataSource,
        socket: &Path,
        explicit: bool,
        ping: impl Future<Output = Result<(), sonde_runtime::Error>>,
    ) {
        let name = source.as_str();
        let Some(flag) = self.availability.flag(source) else {
            return;
        };
        let was_up = flag.load(Ordering::Relaxed);
        if !explicit && !was_up && !socket.exists() {
            // Not on this node (yet): not a problem worth a warning.
            tracing::debug!(runtime = name, socket = %socket.display(), "Runtime socket not present");
            return;
        }
        match ping.await {
            Ok(()) => {
                flag.store(true, Ordering::Relaxed);
                self.health.up(name);
            }
            Err(e) => {
                flag.store(false, Ordering::Relaxed);
                // Counted like a failed lookup: containers of this runtime are held because of it.
                self.stats.error(source, error_reason(&e));
                self.health.down(
                    name,
                    format!(
                        "{name} API at {} does not answer ({e}); its containers are held unnamed (sonde_containers_tracked{{state=\"pending\"}}). \
                         Make the socket reachable (mount it from the host, or set --{name}-socket)",
                        socket.display()
                    ),
                );
            }
        }
    }

    /// Serves lookups until the registry goes away.
    pub async fn run(
        self: Arc<Self>,
        mut requests: mpsc::Receiver<LookupRequest>,
        events: crate::EventSender,
    ) {
        let permits = Arc::new(Semaphore::new(MAX_CONCURRENT_LOOKUPS));
        while let Some(req) = requests.recv().await {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let this = self.clone();
            let events = events.clone();
            tokio::spawn(async move {
                let outcome = this.lookup(&req).await;
                drop(permit);
                let event = if req.removal_check {
                    Event::RemovalChecked {
                        cgroup_id: req.cgroup_id,
                        exists: match outcome {
                            MetadataOutcome::Found { .. } => Some(true),
                            MetadataOutcome::NotFound => Some(false),
                            MetadataOutcome::Failed(_) => None,
                        },
                    }
                } else {
                    Event::Metadata {
                        cgroup_id: req.cgroup_id,
                        outcome,
                    }
                };
                // The registry task applies answers; if it is gone the agent is stopping.
                let _ = events.send_waiting(vec![event]).await;
            });
        }
    }

    async fn lookup(&self, req: &LookupRequest) -> MetadataOutcome {
        if req.source != MetadataSource::AnyKubernetes {
            return self.ask(req.source, req).await;
        }
        // A bare id under kubepods: docker-shim, containerd with the cgroupfs driver, or CRI-O.
        // Ask every runtime that answers; the first that knows the id wins.
        let mut last = MetadataOutcome::Failed("no Kubernetes runtime answers".into());
        for source in [
            MetadataSource::Docker,
            MetadataSource::Containerd,
            MetadataSource::Crio,
        ] {
            if !self.availability.is_available(source) {
                continue;
            }
            match self.ask(source, req).await {
                found @ MetadataOutcome::Found { .. } => return found,
                other => last = other,
            }
        }
        last
    }

    async fn ask(&self, source: MetadataSource, req: &LookupRequest) -> MetadataOutcome {
        let runtime = source.as_str();
        self.stats.lookup(source);
        let id = req.runtime_id.as_str();
        let result: Result<ContainerMetadata, sonde_runtime::Error> = match source {
            MetadataSource::Docker => match &self.docker {
                Some(c) => c.inspect(id).await,
                None => return MetadataOutcome::Failed("no Docker client".into()),
            },
            MetadataSource::Containerd => match &self.containerd {
                Some(c) => {
                    let ns = req.namespace.as_deref().unwrap_or(K8S_NAMESPACE);
                    c.inspect(ns, id).await
                }
                None => return MetadataOutcome::Failed("no containerd client".into()),
            },
            MetadataSource::Crio => match &self.crio {
                Some(c) => c.inspect(id).await,
                None => return MetadataOutcome::Failed("no CRI-O client".into()),
            },
            MetadataSource::AnyKubernetes => {
                return MetadataOutcome::Failed("not a single runtime".into());
            }
        };
        match result {
            Ok(md) => MetadataOutcome::Found {
                metadata: Box::new(md),
                source,
            },
            Err(e) => {
                let (reason, outcome) = match &e {
                    sonde_runtime::Error::NotFound { .. } => {
                        ("not_found", MetadataOutcome::NotFound)
                    }
                    sonde_runtime::Error::Timeout { .. } => {
                        ("timeout", MetadataOutcome::Failed(e.to_string()))
                    }
                    sonde_runtime::Error::Unavailable { .. } => {
                        ("unavailable", MetadataOutcome::Failed(e.to_string()))
                    }
                    _ => ("error", MetadataOutcome::Failed(e.to_string())),
                };
                self.stats.error(source, reason);
                tracing::debug!(runtime, id, error = %e, "Container metadata lookup failed");
                outcome
            }
        }
    }
}

/// The `reason` label of `sonde_metadata_errors_total`.
fn error_reason(e: &sonde_runtime::Error) -> &'static str {
    match e {
        sonde_runtime::Error::NotFound { .. } => "not_found",
        sonde_runtime::Error::Timeout { .. } => "timeout",
        sonde_runtime::Error::Unavailable { .. } => "unavailable",
        _ => "error",
    }
}
