//! The metadata resolver: asks container runtimes who a container is, off the scrape path.
//!
//! Lookups come from the registry task (`State::due_lookups`) through a bounded queue and run
//! with bounded concurrency; every call has a timeout, so a runtime that hangs delays naming, never
//! a scrape or the event loop. Answers go back to the registry as `Event::Metadata`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sonde_runtime::DockerClient;
use tokio::sync::{Semaphore, mpsc};

use crate::container::MetadataSource;
use crate::health::Health;
use crate::self_metrics::SelfMetrics;
use crate::state::{Event, LookupRequest, MetadataOutcome};

/// Lookups running at once, per agent: enough for a burst of new pods, not a stampede.
const MAX_CONCURRENT_LOOKUPS: usize = 8;
/// How often an unreachable runtime is probed again.
const RUNTIME_PROBE_INTERVAL: Duration = Duration::from_secs(30);

/// Which runtimes currently answer, read by the registry task before it queues lookups.
#[derive(Debug, Default)]
pub struct RuntimeAvailability {
    docker: AtomicBool,
}

impl RuntimeAvailability {
    pub fn is_available(&self, source: MetadataSource) -> bool {
        match source {
            MetadataSource::Docker => self.docker.load(Ordering::Relaxed),
            // Clients for these come with the Kubernetes/containerd work; until then their
            // containers are held (pending), never guessed.
            MetadataSource::Containerd | MetadataSource::Crio => false,
        }
    }
}

/// Settings of the resolver.
#[derive(Debug, Clone)]
pub struct ResolverConfig {
    pub docker_socket: PathBuf,
    pub timeout: Duration,
}

pub(crate) struct Resolver {
    pub docker: Option<Arc<DockerClient>>,
    pub availability: Arc<RuntimeAvailability>,
    pub metrics: SelfMetrics,
    pub health: Health,
    pub config: ResolverConfig,
}

impl Resolver {
    /// Probes Docker now and then every RUNTIME_PROBE_INTERVAL, keeping the availability flag
    /// and the `docker` subsystem state current.
    pub async fn watch_docker(self: Arc<Self>) {
        let Some(docker) = self.docker.clone() else {
            return;
        };
        let mut ticker = tokio::time::interval(RUNTIME_PROBE_INTERVAL);
        loop {
            ticker.tick().await;
            match docker.ping().await {
                Ok(()) => {
                    self.availability.docker.store(true, Ordering::Relaxed);
                    self.health.up("docker");
                }
                Err(e) => {
                    self.availability.docker.store(false, Ordering::Relaxed);
                    self.health.down(
                        "docker",
                        format!(
                            "Docker API at {} does not answer ({e}); Docker containers are held unnamed. \
                             If Docker runs on this node, make its socket reachable (mount the host's /run/docker.sock, \
                             or run with the host's /proc and set --docker-socket)",
                            self.config.docker_socket.display()
                        ),
                    );
                }
            }
        }
    }

    /// Serves lookups until the registry goes away.
    pub async fn run(
        self: Arc<Self>,
        mut requests: mpsc::Receiver<LookupRequest>,
        events: mpsc::Sender<Event>,
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
                // The registry task applies answers; if it is gone the agent is stopping.
                let _ = events
                    .send(Event::Metadata {
                        cgroup_id: req.cgroup_id,
                        outcome,
                    })
                    .await;
            });
        }
    }

    async fn lookup(&self, req: &LookupRequest) -> MetadataOutcome {
        let runtime = req.source.as_str();
        self.metrics
            .metadata_lookups
            .with_label_values(&[runtime])
            .inc();
        let result = match (req.source, &self.docker) {
            (MetadataSource::Docker, Some(docker)) => docker.inspect(&req.runtime_id).await,
            _ => {
                return MetadataOutcome::Failed(format!("no {runtime} client"));
            }
        };
        match result {
            Ok(md) => MetadataOutcome::Found(Box::new(md)),
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
                self.metrics
                    .metadata_errors
                    .with_label_values(&[runtime, reason])
                    .inc();
                tracing::debug!(runtime, id = %req.runtime_id, error = %e, "Container metadata lookup failed");
                outcome
            }
        }
    }
}
