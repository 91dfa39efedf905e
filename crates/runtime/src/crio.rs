//! CRI-O client: its inspect endpoint (`GET /containers/<id>` on crio.sock, the JSON of CRI-O's
//! `types.ContainerInfo`), as coroot-node-agent uses it. Plain HTTP/1.1, no CRI gRPC needed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, validate_id};
use crate::{ContainerMetadata, http_unix};

const RUNTIME: &str = "crio";

/// Largest inspect answer read: pod annotations (e.g. `kubectl.kubernetes.io/last-applied-configuration`)
/// can be large, but Kubernetes caps all annotations of an object at 256 KiB.
const MAX_BODY: usize = 4 * 1024 * 1024;

/// The [`ContainerMetadata::log_driver`] value for CRI-format log files (`<time> <stream> <P|F> <msg>`).
pub const CRI_LOG_FORMAT: &str = "cri";

/// The subset of CRI-O's `ContainerInfo` that naming and logs need; unknown fields are ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ContainerInfo {
    name: String,
    image: String,
    image_ref: String,
    labels: BTreeMap<String, String>,
    crio_annotations: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    log_path: String,
}

/// CRI-O inspect client over its unix socket (default `/var/run/crio/crio.sock`).
#[derive(Debug, Clone)]
pub struct CrioClient {
    socket: PathBuf,
    timeout: Duration,
}

impl CrioClient {
    /// No I/O here; `timeout` bounds every call.
    pub fn new(socket: &Path, timeout: Duration) -> Result<CrioClient, Error> {
        Ok(CrioClient {
            socket: socket.to_owned(),
            timeout,
        })
    }

    /// The socket this client talks to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Checks that CRI-O answers (`GET /info`).
    pub async fn ping(&self) -> Result<(), Error> {
        let resp = http_unix::get(RUNTIME, &self.socket, "/info", self.timeout, MAX_BODY).await?;
        if (200..300).contains(&resp.status) {
            Ok(())
        } else {
            Err(http_unix::status_error(RUNTIME, "", &resp))
        }
    }

    /// Metadata of one container (CRI-O also answers for pod infra containers). Errors as
    /// [`crate::DockerClient::inspect`]: NotFound on 404, Timeout, Unavailable, Api, Protocol.
    pub async fn inspect(&self, container_id: &str) -> Result<ContainerMetadata, Error> {
        validate_id(container_id)?;
        let path = format!("/containers/{container_id}");
        let resp = http_unix::get(RUNTIME, &self.socket, &path, self.timeout, MAX_BODY).await?;
        if !(200..300).contains(&resp.status) {
            return Err(http_unix::status_error(RUNTIME, container_id, &resp));
        }
        metadata_from_crio_info(&resp.body).map_err(|e| Error::Protocol {
            runtime: RUNTIME,
            socket: self.socket.clone(),
            source: Box::new(e),
        })
    }
}

/// Converts CRI-O's inspect JSON into runtime-neutral metadata (pure).
///
/// image: `image` (what coroot uses), else the `io.kubernetes.cri-o.ImageName` annotation (the
/// name the pod spec gave), else `image_ref`. `log_path` is the CRI log file, so `log_driver`
/// is [`CRI_LOG_FORMAT`].
pub fn metadata_from_crio_info(json: &[u8]) -> Result<ContainerMetadata, serde_json::Error> {
    let info: ContainerInfo = serde_json::from_slice(json)?;
    let annotation = |k: &str| {
        info.crio_annotations
            .get(k)
            .or_else(|| info.annotations.get(k))
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    };
    let image = [
        Some(info.image.as_str()).filter(|s| !s.is_empty()),
        annotation("io.kubernetes.cri-o.ImageName"),
    ]
    .into_iter()
    .flatten()
    .next()
    .unwrap_or(info.image_ref.as_str())
    .to_owned();
    let log_path = (!info.log_path.is_empty()).then(|| PathBuf::from(&info.log_path));
    Ok(ContainerMetadata {
        name: info.name.clone(),
        image,
        labels: info.labels.clone(),
        env: Vec::new(),
        log_driver: log_path.as_ref().map(|_| CRI_LOG_FORMAT.to_owned()),
        log_path,
        published_ports: Vec::new(),
        volumes: BTreeMap::new(),
    })
}

#[cfg(test)]
#[path = "crio/tests.rs"]
mod tests;
