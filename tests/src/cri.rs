//! A minimal CRI client (`runtime.v1.RuntimeService`) over a runtime's unix socket, playing the
//! kubelet's part in tests: `crictl` is not packaged in Debian.
//!
//! Same approach as sonde-runtime's containerd client: unary gRPC is an HTTP/2 (h2c) POST of
//! `/<service>/<method>` with `content-type: application/grpc`, the protobuf message behind a
//! 5-byte frame header, and the status in the `grpc-status` trailer (or in the headers of a
//! trailers-only answer). Messages are hand-written prost structs ([`proto`]), so no protoc.
//!
//! The client is synchronous (tests are), with its own single-threaded tokio runtime, and every
//! call is bounded by a timeout so a wedged runtime fails a test instead of hanging it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Request};
use hyper_util::rt::{TokioExecutor, TokioIo};

pub mod proto;

const RUNTIME_SERVICE: &str = "runtime.v1.RuntimeService";

/// Labels and annotations the kubelet sets (k8s.io/kubernetes `pkg/kubelet/kuberuntime/labels.go`).
pub const LABEL_POD_NAME: &str = "io.kubernetes.pod.name";
/// The pod's namespace label.
pub const LABEL_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
/// The pod's uid label.
pub const LABEL_POD_UID: &str = "io.kubernetes.pod.uid";
/// The container's name label (containers only).
pub const LABEL_CONTAINER_NAME: &str = "io.kubernetes.container.name";

/// A CRI client for the runtime listening on `socket`.
pub struct CriClient {
    socket: PathBuf,
    timeout: Duration,
    rt: tokio::runtime::Runtime,
}

impl CriClient {
    /// A client; no I/O until the first call. Each call is bounded by 60 s (sandbox creation
    /// runs CNI and starts a shim, which takes a second or two).
    pub fn new(socket: &Path) -> CriClient {
        CriClient::with_timeout(socket, Duration::from_secs(60))
    }

    /// A client whose calls are bounded by `timeout`.
    pub fn with_timeout(socket: &Path, timeout: Duration) -> CriClient {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime for the CRI client");
        CriClient {
            socket: socket.to_owned(),
            timeout,
            rt,
        }
    }

    /// `Version`: also a readiness probe of the CRI plugin.
    pub fn version(&self) -> anyhow::Result<proto::VersionResponse> {
        self.call(
            "Version",
            &proto::VersionRequest {
                version: "v1".into(),
            },
        )
    }

    /// `RunPodSandbox`: creates and starts the sandbox (pause container and network); its id.
    pub fn run_pod_sandbox(&self, config: &proto::PodSandboxConfig) -> anyhow::Result<String> {
        let resp: proto::RunPodSandboxResponse = self.call(
            "RunPodSandbox",
            &proto::RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: String::new(),
            },
        )?;
        Ok(resp.pod_sandbox_id)
    }

    /// `StopPodSandbox`: stops its containers and tears its network down.
    pub fn stop_pod_sandbox(&self, id: &str) -> anyhow::Result<()> {
        let _: proto::Empty = self.call(
            "StopPodSandbox",
            &proto::PodSandboxIdRequest {
                pod_sandbox_id: id.to_owned(),
            },
        )?;
        Ok(())
    }

    /// `RemovePodSandbox`: removes it and its containers.
    pub fn remove_pod_sandbox(&self, id: &str) -> anyhow::Result<()> {
        let _: proto::Empty = self.call(
            "RemovePodSandbox",
            &proto::PodSandboxIdRequest {
                pod_sandbox_id: id.to_owned(),
            },
        )?;
        Ok(())
    }

    /// `ListPodSandbox` without filter.
    pub fn list_pod_sandboxes(&self) -> anyhow::Result<Vec<proto::PodSandbox>> {
        let resp: proto::ListPodSandboxResponse =
            self.call("ListPodSandbox", &proto::ListPodSandboxRequest {})?;
        Ok(resp.items)
    }

    /// `CreateContainer` in sandbox `pod_id` (`sandbox_config` is the sandbox's own config, as
    /// the kubelet passes it); the new container's id.
    pub fn create_container(
        &self,
        pod_id: &str,
        config: &proto::ContainerConfig,
        sandbox_config: &proto::PodSandboxConfig,
    ) -> anyhow::Result<String> {
        let resp: proto::CreateContainerResponse = self.call(
            "CreateContainer",
            &proto::CreateContainerRequest {
                pod_sandbox_id: pod_id.to_owned(),
                config: Some(config.clone()),
                sandbox_config: Some(sandbox_config.clone()),
            },
        )?;
        Ok(resp.container_id)
    }

    /// `StartContainer`.
    pub fn start_container(&self, id: &str) -> anyhow::Result<()> {
        let _: proto::Empty = self.call(
            "StartContainer",
            &proto::ContainerIdRequest {
                container_id: id.to_owned(),
            },
        )?;
        Ok(())
    }

    /// `StopContainer` with a grace period of `timeout_s` seconds.
    pub fn stop_container(&self, id: &str, timeout_s: i64) -> anyhow::Result<()> {
        let _: proto::Empty = self.call(
            "StopContainer",
            &proto::StopContainerRequest {
                container_id: id.to_owned(),
                timeout: timeout_s,
            },
        )?;
        Ok(())
    }

    /// `RemoveContainer`.
    pub fn remove_container(&self, id: &str) -> anyhow::Result<()> {
        let _: proto::Empty = self.call(
            "RemoveContainer",
            &proto::ContainerIdRequest {
                container_id: id.to_owned(),
            },
        )?;
        Ok(())
    }

    /// `ContainerStatus` (verbose: `info` carries containerd's JSON with the task's pid).
    pub fn container_status(&self, id: &str) -> anyhow::Result<proto::ContainerStatusResponse> {
        self.call(
            "ContainerStatus",
            &proto::ContainerStatusRequest {
                container_id: id.to_owned(),
                verbose: true,
            },
        )
    }

    /// The pid of a running container's main process, from the verbose status' `info`.
    pub fn container_pid(&self, id: &str) -> anyhow::Result<u32> {
        let status = self.container_status(id)?;
        let info = status
            .info
            .get("info")
            .ok_or_else(|| anyhow!("ContainerStatus of {id} has no verbose info"))?;
        json_u32_field(info, "pid").ok_or_else(|| anyhow!("no pid in the status of {id}: {info}"))
    }

    fn call<Req: prost::Message, Resp: prost::Message + Default>(
        &self,
        method: &str,
        req: &Req,
    ) -> anyhow::Result<Resp> {
        let path = format!("/{RUNTIME_SERVICE}/{method}");
        self.rt
            .block_on(async {
                tokio::time::timeout(self.timeout, unary(&self.socket, &path, req))
                    .await
                    .map_err(|_| anyhow!("no answer within {:?}", self.timeout))?
            })
            .with_context(|| format!("CRI {method} on {}", self.socket.display()))
    }
}

/// One unary gRPC call on a fresh HTTP/2 connection.
async fn unary<Req: prost::Message, Resp: prost::Message + Default>(
    socket: &Path,
    path: &str,
    req: &Req,
) -> anyhow::Result<Resp> {
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .context("connect")?;
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .context("HTTP/2 handshake")?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let result = async {
        let request = Request::post(format!("http://localhost{path}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(Full::new(encode_frame(req)))?;
        let resp = sender.send_request(request).await.context("send")?;
        if resp.status() != 200 {
            bail!("HTTP status {}", resp.status());
        }
        let (parts, body) = resp.into_parts();
        check_status(&parts.headers)?;
        let collected = body.collect().await.context("read the answer")?;
        if let Some(trailers) = collected.trailers() {
            check_status(trailers)?;
        }
        decode_frame(&collected.to_bytes())
    }
    .await;
    driver.abort();
    result
}

/// Fails on a `grpc-status` other than 0 in `headers` (absent: nothing to say yet).
fn check_status(headers: &HeaderMap) -> anyhow::Result<()> {
    let Some(code) = headers.get("grpc-status") else {
        return Ok(());
    };
    let code = code.to_str().unwrap_or("?").trim();
    if code == "0" {
        return Ok(());
    }
    let message = headers
        .get("grpc-message")
        .map(|m| String::from_utf8_lossy(m.as_bytes()).into_owned())
        .unwrap_or_default();
    bail!("gRPC status {code}: {}", percent_decode(&message))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn encode_frame(m: &impl prost::Message) -> Bytes {
    let msg = m.encode_to_vec();
    let mut b = BytesMut::with_capacity(5 + msg.len());
    b.put_u8(0);
    b.put_u32(u32::try_from(msg.len()).expect("CRI request under 4 GiB"));
    b.put_slice(&msg);
    b.freeze()
}

fn decode_frame<M: prost::Message + Default>(data: &[u8]) -> anyhow::Result<M> {
    let [flag, a, b, c, d, rest @ ..] = data else {
        bail!("gRPC frame too short ({} bytes)", data.len());
    };
    if *flag != 0 {
        bail!("compressed gRPC message");
    }
    let len = u32::from_be_bytes([*a, *b, *c, *d]) as usize;
    let msg = rest
        .get(..len)
        .ok_or_else(|| anyhow!("truncated gRPC frame"))?;
    Ok(M::decode(msg)?)
}

/// `"key": <unsigned number>` in a JSON text (the harness avoids a JSON dependency for one field).
fn json_u32_field(json: &str, key: &str) -> Option<u32> {
    let at = json.find(&format!("\"{key}\""))? + key.len() + 2;
    let rest = json[at..].trim_start().strip_prefix(':')?.trim_start();
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// A pod as the kubelet describes it to the runtime: metadata, the kubelet's labels, the
/// cgroupfs parent of a BestEffort pod (`/kubepods/besteffort/pod<uid>`) and a log directory.
pub fn pod_sandbox_config(
    name: &str,
    namespace: &str,
    uid: &str,
    log_directory: &Path,
) -> proto::PodSandboxConfig {
    let labels = HashMap::from([
        (LABEL_POD_NAME.to_owned(), name.to_owned()),
        (LABEL_POD_NAMESPACE.to_owned(), namespace.to_owned()),
        (LABEL_POD_UID.to_owned(), uid.to_owned()),
    ]);
    let annotations = HashMap::from([("kubernetes.io/config.source".to_owned(), "api".to_owned())]);
    proto::PodSandboxConfig {
        metadata: Some(proto::PodSandboxMetadata {
            name: name.to_owned(),
            uid: uid.to_owned(),
            namespace: namespace.to_owned(),
            attempt: 0,
        }),
        hostname: name.to_owned(),
        log_directory: log_directory.display().to_string(),
        labels,
        annotations,
        linux: Some(proto::LinuxPodSandboxConfig {
            cgroup_parent: format!("/kubepods/besteffort/pod{uid}"),
            security_context: Some(proto::LinuxSandboxSecurityContext {
                namespace_options: Some(proto::NamespaceOption {
                    network: proto::namespace_mode::POD,
                    pid: proto::namespace_mode::CONTAINER,
                    ipc: proto::namespace_mode::POD,
                }),
            }),
        }),
    }
}

/// A container of the pod `sandbox` as the kubelet creates it: the kubelet's labels
/// (`io.kubernetes.container.name`, `io.kubernetes.pod.{name,namespace,uid}`) and
/// annotations, `command` as the entrypoint, and the log at `<name>/0.log` in the pod's log
/// directory.
pub fn container_config(
    sandbox: &proto::PodSandboxConfig,
    name: &str,
    image: &str,
    command: &[&str],
) -> proto::ContainerConfig {
    let meta = sandbox.metadata.clone().unwrap_or_default();
    let labels = HashMap::from([
        (LABEL_CONTAINER_NAME.to_owned(), name.to_owned()),
        (LABEL_POD_NAME.to_owned(), meta.name.clone()),
        (LABEL_POD_NAMESPACE.to_owned(), meta.namespace.clone()),
        (LABEL_POD_UID.to_owned(), meta.uid.clone()),
    ]);
    let annotations = HashMap::from([
        (
            "io.kubernetes.container.hash".to_owned(),
            "5c3b9a1e".to_owned(),
        ),
        (
            "io.kubernetes.container.restartCount".to_owned(),
            "0".to_owned(),
        ),
        (
            "io.kubernetes.container.terminationMessagePath".to_owned(),
            "/dev/termination-log".to_owned(),
        ),
        (
            "io.kubernetes.container.terminationMessagePolicy".to_owned(),
            "File".to_owned(),
        ),
        (
            "io.kubernetes.pod.terminationGracePeriod".to_owned(),
            "30".to_owned(),
        ),
    ]);
    proto::ContainerConfig {
        metadata: Some(proto::ContainerMetadata {
            name: name.to_owned(),
            attempt: 0,
        }),
        image: Some(proto::ImageSpec {
            image: image.to_owned(),
        }),
        command: command.iter().map(|s| (*s).to_owned()).collect(),
        args: Vec::new(),
        envs: vec![proto::KeyValue {
            key: "KUBERNETES_SERVICE_HOST".into(),
            value: "10.96.0.1".into(),
        }],
        labels,
        annotations,
        log_path: format!("{name}/0.log"),
        linux: Some(proto::LinuxContainerConfig {
            security_context: Some(proto::LinuxContainerSecurityContext {
                namespace_options: Some(proto::NamespaceOption {
                    network: proto::namespace_mode::POD,
                    pid: proto::namespace_mode::CONTAINER,
                    ipc: proto::namespace_mode::POD,
                }),
            }),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let m = proto::VersionRequest {
            version: "v1".into(),
        };
        let framed = encode_frame(&m);
        assert_eq!(framed[0], 0);
        assert_eq!(&framed[1..5], &(framed.len() as u32 - 5).to_be_bytes());
        assert_eq!(decode_frame::<proto::VersionRequest>(&framed).unwrap(), m);
        assert!(decode_frame::<proto::VersionRequest>(&framed[..3]).is_err());
        assert!(decode_frame::<proto::VersionRequest>(&framed[..framed.len() - 1]).is_err());
    }

    #[test]
    fn grpc_errors_are_reported() {
        let mut h = HeaderMap::new();
        assert!(check_status(&h).is_ok());
        h.insert("grpc-status", "0".parse().unwrap());
        assert!(check_status(&h).is_ok());
        h.insert("grpc-status", "5".parse().unwrap());
        h.insert("grpc-message", "no%20such%20pod".parse().unwrap());
        let e = check_status(&h).unwrap_err().to_string();
        assert_eq!(e, "gRPC status 5: no such pod");
    }

    #[test]
    fn pid_from_verbose_info() {
        let info = r#"{"sandboxID":"abc","pid": 4242,"removing":false}"#;
        assert_eq!(json_u32_field(info, "pid"), Some(4242));
        assert_eq!(json_u32_field(info, "nope"), None);
        assert_eq!(json_u32_field(r#"{"pid":"x"}"#, "pid"), None);
    }

    #[test]
    fn kubelet_labels() {
        let pod = pod_sandbox_config("web-1", "shop", "u1", Path::new("/l"));
        let c = container_config(&pod, "app", "img", &["sleep", "1"]);
        assert_eq!(c.labels[LABEL_CONTAINER_NAME], "app");
        assert_eq!(c.labels[LABEL_POD_NAME], "web-1");
        assert_eq!(c.labels[LABEL_POD_NAMESPACE], "shop");
        assert_eq!(
            pod.linux.unwrap().cgroup_parent,
            "/kubepods/besteffort/podu1"
        );
    }
}
