//! containerd client: unary gRPC over the unix socket with hand-written prost messages.
//!
//! Why not `containerd-client`: its build script runs `tonic-prost-build`, which needs `protoc`
//! on the build machine. A unary gRPC call is small: HTTP/2 POST `/<service>/<method>` with
//! `content-type: application/grpc`, a 5-byte frame header (compressed flag, big-endian
//! length) before the protobuf message, and the status in the `grpc-status` trailer (or header,
//! for trailers-only answers). containerd selects the namespace by the `containerd-namespace`
//! request header.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use http_body_util::{BodyExt, Full, Limited};
use hyper::{HeaderMap, Request};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::Deserialize;
use tokio::net::UnixStream;

use crate::error::{Error, truncate_message, validate_id};
use crate::http_unix::AbortOnDrop;
use crate::{CRI_LOG_FORMAT, ContainerMetadata, naming_env};

pub(crate) mod proto;

const RUNTIME: &str = "containerd";

/// Largest answer read (a container record holds its OCI spec, typically 5-30 KiB).
const MAX_BODY: usize = 4 * 1024 * 1024;

/// The namespace of Kubernetes (CRI) containers; Docker's containers are in "moby".
pub const K8S_NAMESPACE: &str = "k8s.io";

/// The containerd extension holding the CRI plugin's container metadata (JSON), which carries
/// the CRI log path.
const CRI_METADATA_EXTENSION: &str = "io.cri-containerd.container.metadata";

/// containerd API client over its unix socket (e.g. `/run/containerd/containerd.sock`).
#[derive(Debug, Clone)]
pub struct ContainerdClient {
    socket: PathBuf,
    timeout: Duration,
}

impl ContainerdClient {
    /// No I/O here; `timeout` bounds every call.
    pub fn new(socket: &Path, timeout: Duration) -> Result<ContainerdClient, Error> {
        Ok(ContainerdClient {
            socket: socket.to_owned(),
            timeout,
        })
    }

    /// The socket this client talks to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The daemon's version string (`containerd.services.version.v1.Version/Version`); doubles as a ping.
    pub async fn version(&self) -> Result<String, Error> {
        let resp: proto::VersionResponse = self
            .unary(
                "/containerd.services.version.v1.Version/Version",
                None,
                "",
                &proto::Empty {},
            )
            .await?;
        Ok(resp.version)
    }

    /// Names of all namespaces (`containerd.services.namespaces.v1.Namespaces/List`).
    pub async fn namespaces(&self) -> Result<Vec<String>, Error> {
        let resp: proto::ListNamespacesResponse = self
            .unary(
                "/containerd.services.namespaces.v1.Namespaces/List",
                None,
                "",
                &proto::ListNamespacesRequest {
                    filter: String::new(),
                },
            )
            .await?;
        Ok(resp.namespaces.into_iter().map(|n| n.name).collect())
    }

    /// Metadata of container `id` in `namespace` (`containerd.services.containers.v1.Containers/Get`).
    /// NotFound when containerd answers NOT_FOUND.
    pub async fn inspect(&self, namespace: &str, id: &str) -> Result<ContainerMetadata, Error> {
        validate_id(id)?;
        validate_id(namespace)?;
        let resp: proto::GetContainerResponse = self
            .unary(
                "/containerd.services.containers.v1.Containers/Get",
                Some(namespace),
                id,
                &proto::GetContainerRequest { id: id.to_owned() },
            )
            .await?;
        let container = resp.container.ok_or_else(|| Error::Protocol {
            runtime: RUNTIME,
            socket: self.socket.clone(),
            source: "answer without a container".into(),
        })?;
        Ok(metadata_from_container(&container))
    }

    async fn unary<Req: prost::Message, Resp: prost::Message + Default>(
        &self,
        method: &str,
        namespace: Option<&str>,
        id: &str,
        req: &Req,
    ) -> Result<Resp, Error> {
        match tokio::time::timeout(
            self.timeout,
            self.unary_unbounded(method, namespace, id, req),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(self.timeout_error()),
        }
    }

    async fn unary_unbounded<Req: prost::Message, Resp: prost::Message + Default>(
        &self,
        method: &str,
        namespace: Option<&str>,
        id: &str,
        req: &Req,
    ) -> Result<Resp, Error> {
        let protocol = |e: crate::BoxError| Error::Protocol {
            runtime: RUNTIME,
            socket: self.socket.clone(),
            source: e,
        };
        let stream = UnixStream::connect(&self.socket)
            .await
            .map_err(|e| Error::Unavailable {
                runtime: RUNTIME,
                socket: self.socket.clone(),
                source: Box::new(e),
            })?;
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .map_err(|e| protocol(Box::new(e)))?;
        let _driver = AbortOnDrop(tokio::spawn(async move {
            let _ = conn.await;
        }));

        let msg = req.encode_to_vec();
        let len = u32::try_from(msg.len()).map_err(|e| protocol(Box::new(e)))?;
        let mut body = BytesMut::with_capacity(5 + msg.len());
        body.put_u8(0);
        body.put_u32(len);
        body.put_slice(&msg);
        let mut builder = Request::post(format!("http://localhost{method}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        if let Some(ns) = namespace {
            builder = builder.header("containerd-namespace", ns);
        }
        let req = builder
            .body(Full::new(body.freeze()))
            .map_err(|e| protocol(Box::new(e)))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| protocol(Box::new(e)))?;
        let http_status = resp.status().as_u16();
        let (parts, body) = resp.into_parts();
        if http_status != 200 {
            return Err(Error::Api {
                runtime: RUNTIME,
                status: http_status,
                message: String::new(),
            });
        }
        // Trailers-only answers (errors) carry the status in the headers.
        if let Some(status) = grpc_status(&parts.headers) {
            self.check_status(status, id)?;
        }
        let collected = Limited::new(body, MAX_BODY)
            .collect()
            .await
            .map_err(protocol)?;
        if let Some(status) = collected.trailers().and_then(grpc_status) {
            self.check_status(status, id)?;
        }
        let data = collected.to_bytes();
        decode_frame::<Resp>(&data).map_err(protocol)
    }

    fn check_status(&self, (code, message): (u32, String), id: &str) -> Result<(), Error> {
        match code {
            0 => Ok(()),
            5 => Err(Error::NotFound {
                runtime: RUNTIME,
                id: id.to_owned(),
            }),
            4 => Err(self.timeout_error()),
            14 => Err(Error::Unavailable {
                runtime: RUNTIME,
                socket: self.socket.clone(),
                source: message.into(),
            }),
            code => Err(Error::Grpc {
                runtime: RUNTIME,
                code,
                message: truncate_message(message),
            }),
        }
    }

    fn timeout_error(&self) -> Error {
        Error::Timeout {
            runtime: RUNTIME,
            socket: self.socket.clone(),
            timeout: self.timeout,
        }
    }
}

/// `grpc-status` (and the percent-decoded `grpc-message`) of a header or trailer map.
fn grpc_status(headers: &HeaderMap) -> Option<(u32, String)> {
    let code = headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .unwrap_or(2);
    let message = headers
        .get("grpc-message")
        .map(|m| percent_decode(m.as_bytes()))
        .unwrap_or_default();
    Some((code, message))
}

fn percent_decode(b: &[u8]) -> String {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Decodes one uncompressed gRPC message frame.
fn decode_frame<M: prost::Message + Default>(data: &[u8]) -> Result<M, crate::BoxError> {
    let [flag, a, b, c, d, rest @ ..] = data else {
        return Err(format!("gRPC frame too short ({} bytes)", data.len()).into());
    };
    if *flag != 0 {
        return Err("compressed gRPC messages are not supported".into());
    }
    let len = u32::from_be_bytes([*a, *b, *c, *d]) as usize;
    let msg = rest.get(..len).ok_or("truncated gRPC frame")?;
    Ok(M::decode(msg)?)
}

/// The parts of an OCI runtime spec naming needs.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Spec {
    process: SpecProcess,
    mounts: Vec<SpecMount>,
}

/// An OCI spec mount: Kubernetes PVs are bind mounts whose source is under the kubelet's dir.
#[derive(Deserialize, Default)]
#[serde(default)]
struct SpecMount {
    destination: String,
    source: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SpecProcess {
    env: Vec<String>,
}

/// The part of the CRI plugin's container metadata extension needed (`{"Metadata":{"LogPath":..}}`).
#[derive(Deserialize, Default)]
#[serde(default)]
struct CriMetadata {
    #[serde(rename = "Metadata")]
    metadata: CriMetadataInner,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CriMetadataInner {
    #[serde(rename = "LogPath")]
    log_path: String,
}

/// Converts a containerd container record into runtime-neutral metadata (pure). `name` is the
/// container id (containerd has no separate name); env comes from the OCI spec's `process.env`
/// (naming keys only); `log_path` from the CRI metadata extension (Kubernetes containers only).
/// Undecodable spec or extension JSON is ignored (the rest is still useful).
pub(crate) fn metadata_from_container(c: &proto::Container) -> ContainerMetadata {
    let spec = c
        .spec
        .as_ref()
        .and_then(|s| serde_json::from_slice::<Spec>(&s.value).ok());
    let env = spec
        .as_ref()
        .map(|s| naming_env(s.process.env.iter().map(String::as_str)))
        .unwrap_or_default();
    let volumes = spec
        .iter()
        .flat_map(|s| &s.mounts)
        .filter(|m| !m.destination.is_empty())
        .filter_map(|m| {
            let v = crate::volumes::kubernetes_volume(&m.source)?;
            Some((m.destination.clone(), v.to_owned()))
        })
        .collect();
    let log_path = c
        .extensions
        .get(CRI_METADATA_EXTENSION)
        .and_then(|a| serde_json::from_slice::<CriMetadata>(&a.value).ok())
        .map(|m| m.metadata.log_path)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from);
    ContainerMetadata {
        name: c.id.clone(),
        image: c.image.clone(),
        labels: c
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        env,
        log_driver: log_path.as_ref().map(|_| CRI_LOG_FORMAT.to_owned()),
        log_path,
        // Kubernetes publishes through Services and kube-proxy, not a proxy per container.
        published_ports: Vec::new(),
        volumes,
    }
}

/// Encodes a message as one gRPC frame (for tests and fakes).
#[cfg(test)]
pub(crate) fn encode_frame(m: &impl prost::Message) -> bytes::Bytes {
    let msg = m.encode_to_vec();
    let mut b = BytesMut::with_capacity(5 + msg.len());
    b.put_u8(0);
    b.put_u32(msg.len() as u32);
    b.put_slice(&msg);
    b.freeze()
}

#[cfg(test)]
#[path = "containerd/tests.rs"]
mod tests;
