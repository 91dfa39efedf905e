//! sonde-runtime: container metadata from container runtimes, and container naming.
//!
//! - [`DockerClient`]: Docker Engine API (bollard) over a unix socket -> [`ContainerMetadata`].
//! - [`ContainerdClient`]: containerd's gRPC API (hand-written messages, no protoc) over its socket.
//! - [`CrioClient`]: CRI-O's inspect endpoint (`GET /containers/<id>`) over crio.sock.
//! - [`name_container`] / [`k8s_app_id`]: pure naming of a container from its metadata into
//!   the `container_id` / `app_id` label forms of METRICS.md (coroot-node-agent's rules).
//!
//! This crate is a leaf: it knows nothing of cgroups or the registry. Every runtime call is
//! bounded by a timeout, so a runtime that accepts connections and never answers cannot stall
//! the caller.

use std::collections::BTreeMap;
use std::path::PathBuf;

mod containerd;
mod crio;
mod docker;
mod error;
mod http_unix;
mod naming;
#[cfg(test)]
mod test_support;
mod volumes;

pub use containerd::{ContainerdClient, K8S_NAMESPACE};
pub use crio::{CRI_LOG_FORMAT, CrioClient, metadata_from_crio_info};
pub use docker::{DockerClient, metadata_from_inspect};
pub use error::{BoxError, Error};
pub use naming::{NAMING_ENV_KEYS, Naming, k8s_app_id, name_container, name_container_at};
pub use volumes::kubernetes_volume;

/// Metadata about one container from its runtime, runtime-neutral.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerMetadata {
    /// The runtime's container name, without Docker's leading '/'.
    pub name: String,
    /// Image reference as the user gave it (Docker `Config.Image`), never empty if known.
    pub image: String,
    /// The container's labels.
    pub labels: BTreeMap<String, String>,
    /// Only the few keys naming needs ([`NAMING_ENV_KEYS`]), in the runtime's order, not all env.
    pub env: Vec<(String, String)>,
    /// json-file log path (Docker `LogPath`) / CRI log path.
    pub log_path: Option<PathBuf>,
    /// Logging driver (Docker `HostConfig.LogConfig.Type`, e.g. "json-file", "journald").
    pub log_driver: Option<String>,
    /// Host addresses Docker publishes the container's TCP ports on (`NetworkSettings.Ports`
    /// bindings; `0.0.0.0` when bound to every address), sorted, once each: its listeners on
    /// the host side, served by docker-proxy (`proxy="dockerd"`).
    pub published_ports: Vec<std::net::SocketAddr>,
    /// Container path -> volume name (Docker named volumes, Kubernetes persistent volumes),
    /// the `volume` label of `container_resources_disk_*`. Only mounts that are volumes.
    pub volumes: BTreeMap<String, String>,
}

/// Keeps the [`NAMING_ENV_KEYS`] entries of `KEY=value` strings (the form Docker and OCI specs
/// use), last occurrence winning, in first-seen order.
pub(crate) fn naming_env<'a>(vars: impl IntoIterator<Item = &'a str>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for var in vars {
        let Some((k, v)) = var.split_once('=') else {
            continue;
        };
        if !NAMING_ENV_KEYS.contains(&k) {
            continue;
        }
        match out.iter_mut().find(|(key, _)| key == k) {
            Some(slot) => slot.1 = v.to_owned(),
            None => out.push((k.to_owned(), v.to_owned())),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naming_env_keeps_only_nomad_keys_last_wins() {
        let env = naming_env([
            "PATH=/usr/bin",
            "NOMAD_JOB_NAME=api",
            "NOMAD_TASK_NAME=a",
            "BROKEN",
            "NOMAD_TASK_NAME=b=c",
            "NOMAD_ALLOC_ID=",
        ]);
        assert_eq!(
            env,
            vec![
                ("NOMAD_JOB_NAME".to_owned(), "api".to_owned()),
                ("NOMAD_TASK_NAME".to_owned(), "b=c".to_owned()),
                ("NOMAD_ALLOC_ID".to_owned(), String::new()),
            ]
        );
    }
}
