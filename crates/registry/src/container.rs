//! One tracked container: its cgroup, its processes, and how it is named.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use sonde_cgroup::{ContainerKind, ProcessCgroups};

use crate::net::ContainerNet;

/// Which runtime a container's name must come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetadataSource {
    Docker,
    Containerd,
    Crio,
    /// A bare id under kubepods: whichever runtime knows it (docker-shim, containerd, CRI-O).
    AnyKubernetes,
}

impl MetadataSource {
    pub fn as_str(self) -> &'static str {
        match self {
            MetadataSource::Docker => "docker",
            MetadataSource::Containerd => "containerd",
            MetadataSource::Crio => "crio",
            MetadataSource::AnyKubernetes => "kubernetes",
        }
    }
}

/// How far a container is on its way to a final `container_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Naming {
    /// Final name: exported (once old enough and allowed by the filters).
    Named {
        container_id: String,
        app_id: String,
    },
    /// Needs runtime metadata that has not arrived yet. Held, never exported under a guess.
    Pending {
        source: MetadataSource,
        attempts: u32,
        next_attempt: Instant,
        in_flight: bool,
        last_error: Option<String>,
    },
    /// Never exported (pause/sandbox containers).
    Skipped { reason: &'static str },
}

/// Per-container state owned by the registry.
#[derive(Debug)]
pub struct Container {
    /// The registry key: the cgroup id as coroot picks it (see `ProcessCgroups::id`).
    pub cgroup_id: String,
    /// The cgroup paths of its processes, for the resource readers.
    pub cgroups: ProcessCgroups,
    pub kind: ContainerKind,
    /// The runtime's own container id (64 hex for Docker/CRI), when the kind has one.
    pub runtime_id: Option<String>,
    pub naming: Naming,
    pub image: String,
    pub log_path: Option<PathBuf>,
    /// How the runtime writes its logs ("json-file", "cri", ...).
    pub log_driver: Option<String>,
    /// Host addresses the runtime publishes the container's ports on (Docker's docker-proxy):
    /// exported as its listeners with `proxy="dockerd"`.
    pub published_ports: Vec<std::net::SocketAddr>,
    /// Live processes. Bounded by the node's process count; emptied as processes exit.
    pub pids: HashSet<u32>,
    /// When its oldest known process started: the container's age for `--min-container-age`.
    pub started_at: Instant,
    /// Set when the last process went away; the container is dropped after the grace period.
    pub empty_since: Option<Instant>,
    /// Times all its processes were gone and it ran again (container_restarts_total).
    pub restarts: u64,
    /// The cgroup directory (its inode, the kernel's cgroup v2 id) of the current run, when
    /// a cgroup_mkdir event for the path was seen: a runtime restarting the container makes
    /// the directory anew, so a new id is a new run (see `State::track`).
    pub run_inode: Option<u64>,
    /// The runtime that named the container: asked again, once it is empty, whether it still
    /// exists (see `state/removal.rs`).
    pub lookup_source: Option<MetadataSource>,
    /// When an empty named container is next asked about (None: not empty, or no runtime),
    /// and whether that question is in flight.
    pub removal_check: Option<(Instant, bool)>,
    /// The runtime said it no longer has the container: collected at the next housekeeping.
    pub removed: bool,
    /// OOM kills of its processes (container_oom_kills_total).
    pub oom_kills: u64,
    /// TCP state from the tracer.
    pub net: ContainerNet,
    /// Container path -> volume name, from the runtime (shared with scrapes, rarely changed).
    pub volumes: std::sync::Arc<std::collections::BTreeMap<String, String>>,
}

impl Container {
    /// The exported name, when final.
    pub fn container_id(&self) -> Option<&str> {
        match &self.naming {
            Naming::Named { container_id, .. } => Some(container_id),
            _ => None,
        }
    }

    pub fn app_id(&self) -> &str {
        match &self.naming {
            Naming::Named { app_id, .. } => app_id,
            _ => "",
        }
    }

    pub fn age(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.started_at)
    }

    /// The state label used by `sonde_containers_tracked{state}`.
    pub fn state_label(&self) -> &'static str {
        match self.naming {
            Naming::Named { .. } => "named",
            Naming::Pending { .. } => "pending",
            Naming::Skipped { .. } => "skipped",
        }
    }
}
