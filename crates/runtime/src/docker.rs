//! Docker Engine API client (bollard) over a unix socket.
//!
//! API versions: bollard 0.21 builds `unix://<host>/v1.53` + the request path with a URL join,
//! and joining an absolute path drops the `/v1.53` prefix, so every request is unversioned
//! (`/containers/<id>/json`). Every daemon accepts unversioned requests and answers in its own
//! newest format (Docker 20.10 refuses a too-new `/v1.53/`, Docker >= 29 a too-old `/v1.24/`),
//! so no negotiation is needed; `requests_are_unversioned` pins this, and if a bollard upgrade
//! starts versioning paths it fails and negotiation (from `/_ping`'s `Api-Version` header)
//! must be added.
//!
//! Nothing is asked at construction; the bollard client is built on first use (bollard checks
//! that the socket exists), so a daemon that starts after the agent is picked up later.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::models::ContainerInspectResponse;
use bollard::{API_DEFAULT_VERSION, Docker};

use crate::error::{Error, truncate_message, validate_id};
use crate::{ContainerMetadata, naming_env};

const RUNTIME: &str = "docker";

/// Docker Engine API client over a unix socket.
///
/// Cheap to clone (clones share the negotiated connection settings).
#[derive(Clone)]
pub struct DockerClient {
    socket: PathBuf,
    timeout: Duration,
    /// The bollard client once built; reset when the daemon goes away (rebuilt on next use).
    docker: Arc<Mutex<Option<Docker>>>,
}

impl fmt::Debug for DockerClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DockerClient")
            .field("socket", &self.socket)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl DockerClient {
    /// No I/O here. `timeout` bounds every call (a runtime that accepts and never answers must
    /// not hang us).
    pub fn new(socket: &Path, timeout: Duration) -> Result<DockerClient, Error> {
        if socket.to_str().is_none() {
            return Err(Error::InvalidSocketPath {
                path: socket.to_owned(),
            });
        }
        Ok(DockerClient {
            socket: socket.to_owned(),
            timeout,
            docker: Arc::new(Mutex::new(None)),
        })
    }

    /// The socket this client talks to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Checks that the daemon answers (`GET /_ping`).
    pub async fn ping(&self) -> Result<(), Error> {
        let docker = self.client()?;
        self.bounded(docker.ping()).await.map(|_| ())
    }

    /// Error::NotFound when Docker says 404 (container gone), Error::Timeout, Error::Unavailable
    /// (socket missing/refused), Error::Api (other HTTP errors), Error::Protocol (garbage).
    pub async fn inspect(&self, container_id: &str) -> Result<ContainerMetadata, Error> {
        validate_id(container_id)?;
        let docker = self.client()?;
        let resp = self
            .bounded(docker.inspect_container(container_id, None))
            .await
            .map_err(|e| match e {
                Error::Api { status: 404, .. } => Error::NotFound {
                    runtime: RUNTIME,
                    id: container_id.to_owned(),
                },
                e => e,
            })?;
        Ok(metadata_from_inspect(&resp))
    }

    /// The bollard client, built on first use.
    fn client(&self) -> Result<Docker, Error> {
        if let Some(d) = self.cached() {
            return Ok(d);
        }
        let path = self
            .socket
            .to_str()
            .ok_or_else(|| Error::InvalidSocketPath {
                path: self.socket.clone(),
            })?;
        // bollard's own timeout is whole seconds; ours (`bounded`) is the precise bound.
        let secs = self.timeout.as_secs_f64().ceil().max(1.0) as u64;
        let docker = Docker::connect_with_unix(path, secs, API_DEFAULT_VERSION)
            .map_err(|e| self.map_err(e))?;
        if let Ok(mut slot) = self.docker.lock() {
            *slot = Some(docker.clone());
        }
        Ok(docker)
    }

    fn cached(&self) -> Option<Docker> {
        self.docker.lock().ok().and_then(|slot| slot.clone())
    }

    fn forget(&self) {
        if let Ok(mut slot) = self.docker.lock() {
            *slot = None;
        }
    }

    /// Runs a bollard call under our timeout and maps its error.
    async fn bounded<T>(
        &self,
        fut: impl Future<Output = Result<T, bollard::errors::Error>>,
    ) -> Result<T, Error> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                let err = self.map_err(e);
                // The daemon is gone: start from scratch next time.
                if let Error::Unavailable { .. } = &err {
                    self.forget();
                }
                Err(err)
            }
            Err(_) => Err(self.timeout_error()),
        }
    }

    fn timeout_error(&self) -> Error {
        Error::Timeout {
            runtime: RUNTIME,
            socket: self.socket.clone(),
            timeout: self.timeout,
        }
    }

    fn map_err(&self, e: bollard::errors::Error) -> Error {
        use bollard::errors::Error as B;
        let socket = self.socket.clone();
        match e {
            B::DockerResponseServerError {
                status_code,
                message,
            } => Error::Api {
                runtime: RUNTIME,
                status: status_code,
                message: truncate_message(message),
            },
            B::RequestTimeoutError => self.timeout_error(),
            B::SocketNotFoundError(_) => Error::Unavailable {
                runtime: RUNTIME,
                socket,
                source: Box::new(std::io::Error::from(std::io::ErrorKind::NotFound)),
            },
            B::HyperLegacyError { err } if err.is_connect() => Error::Unavailable {
                runtime: RUNTIME,
                socket,
                source: Box::new(err),
            },
            B::IOError { err } => Error::Unavailable {
                runtime: RUNTIME,
                socket,
                source: Box::new(err),
            },
            other => Error::Protocol {
                runtime: RUNTIME,
                socket,
                source: Box::new(other),
            },
        }
    }
}

/// Converts a Docker inspect answer into runtime-neutral metadata (pure).
///
/// `log_path` is set only for the json-file driver (the only one whose `LogPath` file the log
/// reader can parse; coroot does the same), `log_driver` always when known.
pub fn metadata_from_inspect(c: &ContainerInspectResponse) -> ContainerMetadata {
    let config = c.config.as_ref();
    let name = c.name.as_deref().unwrap_or("");
    let name = name.strip_prefix('/').unwrap_or(name).to_owned();
    // `Config.Image` is what the user asked for ("nginx:1.25"); the top-level `Image` is the
    // resolved "sha256:..." id, used only when the former is missing.
    let image = config
        .and_then(|c| c.image.as_deref())
        .filter(|s| !s.is_empty())
        .or(c.image.as_deref())
        .unwrap_or("")
        .to_owned();
    let labels = config
        .and_then(|c| c.labels.as_ref())
        .map(|l| l.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let env = config
        .and_then(|c| c.env.as_ref())
        .map(|vars| naming_env(vars.iter().map(String::as_str)))
        .unwrap_or_default();
    let log_driver = c
        .host_config
        .as_ref()
        .and_then(|h| h.log_config.as_ref())
        .and_then(|l| l.typ.clone())
        .filter(|s| !s.is_empty());
    let log_path = c
        .log_path
        .as_deref()
        .filter(|p| !p.is_empty() && log_driver.as_deref() == Some("json-file"))
        .map(PathBuf::from);
    let volumes = c
        .mounts
        .iter()
        .flatten()
        .filter_map(|m| {
            let dst = m.destination.as_deref().filter(|d| !d.is_empty())?;
            let volume = crate::volumes::docker_volume(
                m.typ.as_deref(),
                m.name.as_deref(),
                m.source.as_deref().unwrap_or(""),
            )?;
            Some((dst.to_owned(), volume))
        })
        .collect();
    ContainerMetadata {
        name,
        image,
        labels,
        env,
        log_path,
        log_driver,
        published_ports: published_ports(c),
        volumes,
    }
}

/// The host side of the container's published TCP ports (`NetworkSettings.Ports`:
/// `"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]`); an empty `HostIp` is every
/// address. Malformed bindings are skipped.
fn published_ports(c: &ContainerInspectResponse) -> Vec<std::net::SocketAddr> {
    let mut out: Vec<std::net::SocketAddr> = c
        .network_settings
        .as_ref()
        .and_then(|n| n.ports.as_ref())
        .into_iter()
        .flatten()
        .filter(|(port, _)| port.ends_with("/tcp"))
        .flat_map(|(_, bindings)| bindings.iter().flatten())
        .filter_map(|b| {
            let port: u16 = b.host_port.as_deref()?.parse().ok()?;
            let ip: std::net::IpAddr = match b.host_ip.as_deref() {
                None | Some("") => std::net::Ipv4Addr::UNSPECIFIED.into(),
                Some(ip) => ip.parse().ok()?,
            };
            Some(std::net::SocketAddr::new(ip, port))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
#[path = "docker/tests.rs"]
mod tests;
