//! What a scrape exports of the registry's state: the node labels and, per exported container,
//! the copy a scrape renders from (the exporter crate, sonde-exporter, turns them into metric
//! families; this crate knows no metric).

use std::collections::HashMap;
use std::net::SocketAddr;

use sonde_cgroup::ProcessCgroups;

use crate::net::ContainerNet;

/// Labels every series carries (`machine_id`, `system_uuid`): the backend joins on them.
#[derive(Debug, Clone, Default)]
pub struct NodeLabels {
    pub machine_id: String,
    pub system_uuid: String,
}

/// What a scrape needs of one exported container, copied out of the registry so cgroup files are
/// read without holding the registry lock.
#[derive(Debug, Clone)]
pub struct ExportedContainer {
    /// The registry key (cgroup id).
    pub key: String,
    pub container_id: String,
    /// Live processes with their start times (for per-process delay accounting).
    pub pids: Vec<(u32, u64)>,
    pub app_id: String,
    pub restarts: u64,
    pub oom_kills: u64,
    /// TCP state (copied out at scrape).
    pub net: ContainerNet,
    /// Active outbound connections per (destination, actual destination), now.
    pub active: HashMap<(SocketAddr, SocketAddr), u64>,
    pub image: String,
    pub cgroups: ProcessCgroups,
    /// Host-side listeners of published ports (a wildcard already expanded to the host's
    /// addresses), exported with `proxy="dockerd"`.
    pub proxied_listens: Vec<SocketAddr>,
    /// systemd's Type= and trigger of a service (empty for other containers).
    pub systemd: sonde_systemd::UnitInfo,
    /// Container path -> volume name (the `volume` label of the disk metrics).
    pub volumes: std::sync::Arc<std::collections::BTreeMap<String, String>>,
}
