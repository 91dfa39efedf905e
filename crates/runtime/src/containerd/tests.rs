#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::Response;
use hyper::body::{Body, Frame};
use hyper::service::service_fn;
use prost::Message;
use tokio::net::UnixListener;

use super::proto::*;
use super::*;
use crate::test_support::{FakeServer, Reply, no_hang, testdata};
use crate::{Naming, name_container};

const ID: &str = "6f1c0a9b8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b";

fn cri_container() -> Container {
    let labels = [
        ("io.cri-containerd.kind", "container"),
        ("io.kubernetes.container.name", "coredns"),
        ("io.kubernetes.pod.name", "coredns-565d847f94-2xk5w"),
        ("io.kubernetes.pod.namespace", "kube-system"),
        (
            "io.kubernetes.pod.uid",
            "8f2e4c1a-5b6d-4e7f-9a0b-1c2d3e4f5a6b",
        ),
    ];
    Container {
        id: ID.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        image: "registry.k8s.io/coredns/coredns:v1.10.1".into(),
        spec: Some(Any {
            type_url: "types.containerd.io/opencontainers/runtime-spec/1/Spec".into(),
            value:
                br#"{"ociVersion":"1.0.2-dev","process":{"env":["PATH=/bin","HOSTNAME=coredns"]}}"#
                    .to_vec(),
        }),
        extensions: HashMap::from([(
            CRI_METADATA_EXTENSION.to_owned(),
            Any {
                type_url: "github.com/containerd/cri/pkg/store/container/Metadata".into(),
                value: testdata("containerd_cri_metadata.json").into_bytes(),
            },
        )]),
        sandbox: String::new(),
    }
}

#[test]
fn cri_container_metadata() {
    let md = metadata_from_container(&cri_container());
    assert_eq!(md.name, ID);
    assert_eq!(md.image, "registry.k8s.io/coredns/coredns:v1.10.1");
    assert!(md.env.is_empty());
    assert_eq!(
        md.log_path.as_deref(),
        Some(Path::new(
            "/var/log/pods/kube-system_coredns-565d847f94-2xk5w_8f2e4c1a-5b6d-4e7f-9a0b-1c2d3e4f5a6b/coredns/0.log"
        ))
    );
    assert_eq!(md.log_driver.as_deref(), Some(CRI_LOG_FORMAT));
    assert_eq!(
        name_container(&md, "/containerd/"),
        Naming::Named {
            container_id: "/k8s/kube-system/coredns-565d847f94-2xk5w/coredns".into(),
            app_id: "/k8s/kube-system/coredns".into()
        }
    );
}

#[test]
fn volumes_from_the_spec_mounts() {
    let mut c = cri_container();
    c.spec.as_mut().unwrap().value = br#"{"process":{"env":[]},"mounts":[
        {"destination":"/proc","type":"proc","source":"proc"},
        {"destination":"/var/lib/postgresql/data","type":"bind","source":"/var/lib/kubelet/pods/8f2e/volumes/kubernetes.io~csi/pvc-4f1e2a3b-1c2d-4e5f-8a9b-0123456789ab/mount"},
        {"destination":"/var/run/secrets/kubernetes.io/serviceaccount","type":"bind","source":"/var/lib/kubelet/pods/8f2e/volumes/kubernetes.io~projected/kube-api-access-x"},
        {"destination":"/etc/hosts","type":"bind","source":"/var/lib/kubelet/pods/8f2e/etc-hosts"}]}"#
        .to_vec();
    let md = metadata_from_container(&c);
    assert_eq!(
        md.volumes.into_iter().collect::<Vec<_>>(),
        [(
            "/var/lib/postgresql/data".to_owned(),
            "pvc-4f1e2a3b-1c2d-4e5f-8a9b-0123456789ab".to_owned()
        )]
    );
    // The fixtures without mounts have none.
    assert!(metadata_from_container(&cri_container()).volumes.is_empty());
}

#[test]
fn plain_container_env_from_spec_and_bad_json_ignored() {
    let mut c = cri_container();
    c.labels.clear();
    c.extensions.clear();
    c.spec.as_mut().unwrap().value = testdata("containerd_spec_nomad.json").into_bytes();
    let md = metadata_from_container(&c);
    assert_eq!(md.env.len(), 5, "{:?}", md.env);
    assert_eq!((md.log_path.as_ref(), md.log_driver.as_ref()), (None, None));
    assert_eq!(
        name_container(&md, "/containerd/"),
        Naming::Named {
            container_id: "/nomad/default/api/web/5b3d0c2e-1111-2222-3333-444455556666/server"
                .into(),
            app_id: String::new()
        }
    );
    c.spec.as_mut().unwrap().value = b"{not json".to_vec();
    c.extensions.insert(
        CRI_METADATA_EXTENSION.into(),
        Any {
            type_url: String::new(),
            value: b"[1,2]".to_vec(),
        },
    );
    let md = metadata_from_container(&c);
    assert!(md.env.is_empty() && md.log_path.is_none());
    assert_eq!(md.image, "registry.k8s.io/coredns/coredns:v1.10.1");
}

#[test]
fn frames_and_percent_decoding() {
    let v = VersionResponse {
        version: "1.6.20".into(),
        revision: "x".into(),
    };
    let f = encode_frame(&v);
    assert_eq!(decode_frame::<VersionResponse>(&f).unwrap(), v);
    assert!(decode_frame::<VersionResponse>(&f[..3]).is_err());
    assert!(decode_frame::<VersionResponse>(&f[..f.len() - 1]).is_err());
    let mut compressed = f.to_vec();
    compressed[0] = 1;
    assert!(decode_frame::<VersionResponse>(&compressed).is_err());
    assert!(decode_frame::<VersionResponse>(&[0, 0, 0, 0, 3, 0xff, 0xff, 0xff]).is_err());
    assert_eq!(
        percent_decode(b"container%20%22x%22 not found%"),
        "container \"x\" not found%"
    );
    assert_eq!(percent_decode(b"%zz%4"), "%zz%4");
}

/// A response body: one data frame, then trailers.
struct GrpcBody {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl Body for GrpcBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(d) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(d))));
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }
}

fn status(code: u32, message: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("grpc-status", code.to_string().parse().unwrap());
    if !message.is_empty() {
        h.insert("grpc-message", message.parse().unwrap());
    }
    h
}

/// Requests a fake containerd saw: (path, `containerd-namespace` header).
type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// A fake containerd speaking gRPC over HTTP/2 on a unix socket. Records (path, namespace header).
struct FakeContainerd {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    seen: Seen,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeContainerd {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn fake_containerd() -> FakeContainerd {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("containerd.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let log = log.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let log = log.clone();
                    async move {
                        let path = req.uri().path().to_owned();
                        let ns = req
                            .headers()
                            .get("containerd-namespace")
                            .map(|v| v.to_str().unwrap().to_owned());
                        log.lock().unwrap().push((path.clone(), ns.clone()));
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let (data, trailers, headers_only) = match path.as_str() {
                            "/containerd.services.version.v1.Version/Version" => (
                                Some(encode_frame(&VersionResponse {
                                    version: "1.6.20".into(),
                                    revision: "r".into(),
                                })),
                                status(0, ""),
                                false,
                            ),
                            "/containerd.services.namespaces.v1.Namespaces/List" => {
                                let names = ["default", "k8s.io", "moby"]
                                    .map(|n| Namespace { name: n.into() })
                                    .to_vec();
                                (
                                    Some(encode_frame(&ListNamespacesResponse {
                                        namespaces: names,
                                    })),
                                    status(0, ""),
                                    false,
                                )
                            }
                            "/containerd.services.containers.v1.Containers/Get" => {
                                let req: GetContainerRequest = decode_frame(&body).unwrap();
                                match (req.id.as_str(), ns.as_deref()) {
                                    (ID, Some("k8s.io")) => (
                                        Some(encode_frame(&GetContainerResponse {
                                            container: Some(cri_container()),
                                        })),
                                        status(0, ""),
                                        false,
                                    ),
                                    ("broken", _) => {
                                        (None, status(13, "internal%20failure"), false)
                                    }
                                    ("garbage", _) => (
                                        Some(Bytes::from_static(b"\0\0\0\0\x09xyz")),
                                        status(0, ""),
                                        false,
                                    ),
                                    ("empty", _) => (
                                        Some(encode_frame(&GetContainerResponse {
                                            container: None,
                                        })),
                                        status(0, ""),
                                        false,
                                    ),
                                    (id, _) => (
                                        None,
                                        status(
                                            5,
                                            &format!(
                                                "container%20%22{id}%22%20in%20namespace:%20not%20found"
                                            ),
                                        ),
                                        true,
                                    ),
                                }
                            }
                            _ => (None, status(12, "unknown method"), true),
                        };
                        let mut resp = Response::builder()
                            .status(200)
                            .header("content-type", "application/grpc");
                        if headers_only {
                            for (k, v) in trailers.iter() {
                                resp = resp.header(k, v);
                            }
                            return Ok::<_, Infallible>(
                                resp.body(GrpcBody {
                                    data: None,
                                    trailers: None,
                                })
                                .unwrap(),
                            );
                        }
                        Ok(resp
                            .body(GrpcBody {
                                data,
                                trailers: Some(trailers),
                            })
                            .unwrap())
                    }
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    FakeContainerd {
        _dir: dir,
        socket,
        seen,
        task,
    }
}

fn client(socket: &Path, timeout_ms: u64) -> ContainerdClient {
    ContainerdClient::new(socket, Duration::from_millis(timeout_ms)).unwrap()
}

#[tokio::test]
async fn version_namespaces_and_inspect() {
    let server = fake_containerd();
    let c = client(&server.socket, 5000);
    assert_eq!(no_hang(c.version()).await.unwrap(), "1.6.20");
    assert_eq!(
        no_hang(c.namespaces()).await.unwrap(),
        ["default", "k8s.io", "moby"]
    );
    let md = no_hang(c.inspect(K8S_NAMESPACE, ID)).await.unwrap();
    assert_eq!(md, metadata_from_container(&cri_container()));
    let seen = server.seen.lock().unwrap().clone();
    assert_eq!(
        seen[2],
        (
            "/containerd.services.containers.v1.Containers/Get".to_owned(),
            Some("k8s.io".to_owned())
        )
    );
    assert_eq!(seen[0].1, None);
}

#[tokio::test]
async fn grpc_errors_are_classified() {
    let server = fake_containerd();
    let c = client(&server.socket, 5000);
    // The same id in another namespace is not found (trailers-only answer).
    match no_hang(c.inspect("moby", ID)).await {
        Err(Error::NotFound {
            runtime: "containerd",
            id,
        }) => assert_eq!(id, ID),
        other => panic!("want NotFound, got {other:?}"),
    }
    match no_hang(c.inspect("default", "broken")).await {
        Err(Error::Grpc {
            code: 13, message, ..
        }) => assert_eq!(message, "internal failure"),
        other => panic!("want Grpc, got {other:?}"),
    }
    assert!(matches!(
        no_hang(c.inspect("default", "garbage")).await,
        Err(Error::Protocol { .. })
    ));
    assert!(matches!(
        no_hang(c.inspect("default", "empty")).await,
        Err(Error::Protocol { .. })
    ));
    assert!(matches!(
        no_hang(c.inspect("bad/ns", ID)).await,
        Err(Error::InvalidId { .. })
    ));
    assert!(matches!(
        no_hang(c.inspect("default", "a/b")).await,
        Err(Error::InvalidId { .. })
    ));
}

#[tokio::test]
async fn missing_socket_hang_and_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let c = client(&dir.path().join("containerd.sock"), 1000);
    assert!(matches!(
        no_hang(c.version()).await,
        Err(Error::Unavailable {
            runtime: "containerd",
            ..
        })
    ));

    let hang = FakeServer::start(|_| Reply::Hang);
    let c = client(&hang.socket, 300);
    assert!(matches!(
        no_hang(c.inspect("k8s.io", ID)).await,
        Err(Error::Timeout { .. })
    ));

    // An HTTP/1 server, garbage, or a closed connection are protocol errors.
    for reply in [
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec(),
        b"\x00\xff garbage".to_vec(),
        Vec::new(),
    ] {
        let server = FakeServer::start(move |_| Reply::Raw(reply.clone()));
        let c = client(&server.socket, 2000);
        let err = no_hang(c.namespaces()).await.unwrap_err();
        assert!(matches!(err, Error::Protocol { .. }), "{err:?}");
    }
}

#[test]
fn hand_written_messages_match_the_wire_format() {
    // GetContainerRequest{id="ab"}: field 1, wire type 2 -> 0x0a, len 2.
    assert_eq!(
        GetContainerRequest { id: "ab".into() }.encode_to_vec(),
        [0x0a, 2, b'a', b'b']
    );
    // A Container with fields sonde skips (runtime=4, snapshotter=6, created_at=8) still decodes.
    let mut raw = Container {
        id: "x".into(),
        image: "img".into(),
        ..Default::default()
    }
    .encode_to_vec();
    raw.extend_from_slice(&[0x22, 0x04, 0x0a, 0x02, b'r', b'c']); // runtime { name: "rc" }
    raw.extend_from_slice(&[0x32, 0x03, b'o', b'v', b'l']); // snapshotter "ovl"
    raw.extend_from_slice(&[0x42, 0x02, 0x08, 0x01]); // created_at { seconds: 1 }
    let c = Container::decode(raw.as_slice()).unwrap();
    assert_eq!((c.id.as_str(), c.image.as_str()), ("x", "img"));
}
