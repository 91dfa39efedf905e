#![allow(clippy::unwrap_used)]

use std::time::Duration;

use super::*;
use crate::test_support::{FakeServer, Reply, no_hang, testdata};
use crate::{Naming, name_container};

fn decode(name: &str) -> ContainerMetadata {
    let resp: ContainerInspectResponse = serde_json::from_str(&testdata(name)).unwrap();
    metadata_from_inspect(&resp)
}

#[test]
fn plain_container() {
    let md = decode("docker_inspect_plain.json");
    assert_eq!(md.name, "web-frontend");
    assert_eq!(md.image, "nginx:1.25");
    assert_eq!(
        md.labels.get("com.example.team").map(String::as_str),
        Some("web")
    );
    assert_eq!(md.labels.len(), 2);
    assert!(md.env.is_empty(), "only naming env is kept: {:?}", md.env);
    assert_eq!(md.log_driver.as_deref(), Some("json-file"));
    assert_eq!(
        md.log_path.as_deref(),
        Some(Path::new(
            "/var/lib/docker/containers/4fa6e0f0c6786287e131c3852c58a2e01cc697a68231826813597e4994f1d6e2/4fa6e0f0c6786287e131c3852c58a2e01cc697a68231826813597e4994f1d6e2-json.log"
        ))
    );
    assert_eq!(
        name_container(&md, "/docker/"),
        Naming::Named {
            container_id: "/docker/web-frontend".into(),
            app_id: String::new()
        }
    );
}

#[test]
fn dockershim_pod_container_and_sandbox() {
    let md = decode("docker_inspect_k8s_dockershim.json");
    // Config.Image of a kubelet-created container is the image id: still not empty.
    assert_eq!(
        md.image,
        "sha256:5185b96f0becf59032b8e3646e99f84d9655dff3ac9e2605e0dc77f9c441ae4a"
    );
    assert_eq!(
        name_container(&md, "/docker/"),
        Naming::Named {
            container_id: "/k8s/kube-system/coredns-565d847f94-2xk5w/coredns".into(),
            app_id: "/k8s/kube-system/coredns".into()
        }
    );
    let sandbox = decode("docker_inspect_k8s_sandbox.json");
    assert_eq!(sandbox.image, "k8s.gcr.io/pause:3.6");
    assert!(matches!(
        name_container(&sandbox, "/docker/"),
        Naming::Skip { .. }
    ));
}

#[test]
fn swarm_task_container() {
    let md = decode("docker_inspect_swarm.json");
    assert_eq!(md.name, "shop_cache.2.k1jx7v3qz9w8y6t5r4e3w2q1a");
    assert!(md.image.starts_with("redis:7.2@sha256:"));
    assert_eq!(
        name_container(&md, "/docker/"),
        Naming::Named {
            container_id: "/swarm/shop/cache/2".into(),
            app_id: String::new()
        }
    );
}

#[test]
fn nomad_task_with_journald_logs() {
    let md = decode("docker_inspect_nomad_journald.json");
    assert_eq!(md.log_driver.as_deref(), Some("journald"));
    assert_eq!(md.log_path, None);
    // Only the five naming keys are kept (no secrets, no PATH).
    let keys: Vec<&str> = md.env.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "NOMAD_ALLOC_ID",
            "NOMAD_GROUP_NAME",
            "NOMAD_JOB_NAME",
            "NOMAD_NAMESPACE",
            "NOMAD_TASK_NAME"
        ]
    );
    assert_eq!(
        name_container(&md, "/docker/"),
        Naming::Named {
            container_id: "/nomad/default/api/web/5b3d0c2e-1111-2222-3333-444455556666/server"
                .into(),
            app_id: String::new()
        }
    );
}

#[test]
fn minimal_answer_falls_back_to_image_id() {
    let md = decode("docker_inspect_minimal.json");
    assert_eq!(md.name, "");
    assert_eq!(
        md.image,
        "sha256:1111111111111111111111111111111111111111111111111111111111111111"
    );
    assert!(md.labels.is_empty() && md.env.is_empty());
    assert_eq!((md.log_path, md.log_driver), (None, None));
    assert_eq!(
        metadata_from_inspect(&ContainerInspectResponse::default()),
        ContainerMetadata::default()
    );
}

#[test]
fn log_path_without_json_file_driver_is_dropped() {
    let mut resp: ContainerInspectResponse =
        serde_json::from_str(&testdata("docker_inspect_plain.json")).unwrap();
    resp.host_config
        .as_mut()
        .unwrap()
        .log_config
        .as_mut()
        .unwrap()
        .typ = Some("local".into());
    let md = metadata_from_inspect(&resp);
    assert_eq!(
        (md.log_path, md.log_driver.as_deref()),
        (None, Some("local"))
    );
}

const ID: &str = "4fa6e0f0c6786287e131c3852c58a2e01cc697a68231826813597e4994f1d6e2";

/// A fake dockerd serving the plain fixture for ID, 500 for "broken", 404 otherwise.
fn fake_dockerd() -> FakeServer {
    FakeServer::start(move |path| {
        if path.ends_with("/_ping") {
            Reply::Http(
                200,
                vec![("Api-Version".into(), "1.41".into())],
                "OK".into(),
            )
        } else if path.ends_with(&format!("/containers/{ID}/json")) {
            Reply::Http(200, vec![], testdata("docker_inspect_plain.json"))
        } else if path.ends_with("/containers/broken/json") {
            Reply::Http(500, vec![], r#"{"message":"something broke"}"#.into())
        } else {
            Reply::Http(404, vec![], r#"{"message":"No such container"}"#.into())
        }
    })
}

fn client(socket: &Path, timeout_ms: u64) -> DockerClient {
    DockerClient::new(socket, Duration::from_millis(timeout_ms)).unwrap()
}

#[tokio::test]
async fn requests_are_unversioned() {
    // See the module doc: unversioned paths are what lets one client talk to Docker 20.10
    // (API <= 1.41) and Docker >= 29 (API >= 1.44) alike.
    let server = fake_dockerd();
    let c = client(&server.socket, 5000);
    no_hang(c.ping()).await.unwrap();
    let md = no_hang(c.inspect(ID)).await.unwrap();
    assert_eq!(md.name, "web-frontend");
    assert_eq!(
        server.paths(),
        ["/_ping".to_owned(), format!("/containers/{ID}/json")]
    );
}

#[tokio::test]
async fn new_does_no_io_and_a_late_daemon_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("docker.sock");
    let c = client(&socket, 5000);
    assert!(matches!(
        no_hang(c.ping()).await,
        Err(Error::Unavailable { .. })
    ));
    let server = fake_dockerd();
    std::os::unix::fs::symlink(&server.socket, &socket).unwrap();
    no_hang(c.ping()).await.unwrap();
}

#[tokio::test]
async fn not_found_and_api_errors() {
    let server = fake_dockerd();
    let c = client(&server.socket, 5000);
    let missing = "0123456789abcdef";
    match no_hang(c.inspect(missing)).await {
        Err(Error::NotFound {
            runtime: "docker",
            id,
        }) => assert_eq!(id, missing),
        other => panic!("want NotFound, got {other:?}"),
    }
    match no_hang(c.inspect("broken")).await {
        Err(Error::Api {
            status: 500,
            message,
            ..
        }) => assert_eq!(message, "something broke"),
        other => panic!("want Api, got {other:?}"),
    }
}

#[tokio::test]
async fn invalid_ids_are_refused_before_any_io() {
    let server = fake_dockerd();
    let c = client(&server.socket, 5000);
    for bad in ["", "../../images/json", "a/b", "x?all=1"] {
        assert!(
            matches!(no_hang(c.inspect(bad)).await, Err(Error::InvalidId { .. })),
            "{bad}"
        );
    }
    assert!(server.paths().is_empty(), "{:?}", server.paths());
}

#[tokio::test]
async fn missing_socket_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let c = client(&dir.path().join("docker.sock"), 1000);
    assert!(matches!(
        no_hang(c.ping()).await,
        Err(Error::Unavailable {
            runtime: "docker",
            ..
        })
    ));
    assert!(matches!(
        no_hang(c.inspect(ID)).await,
        Err(Error::Unavailable { .. })
    ));
}

#[tokio::test]
async fn a_file_that_is_not_a_socket_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("docker.sock");
    std::fs::write(&path, "not a socket").unwrap();
    assert!(matches!(
        no_hang(client(&path, 1000).inspect(ID)).await,
        Err(Error::Unavailable { .. })
    ));
}

#[tokio::test]
async fn a_daemon_that_never_answers_times_out() {
    let server = FakeServer::start(|_| Reply::Hang);
    let c = client(&server.socket, 300);
    match no_hang(c.ping()).await {
        Err(Error::Timeout {
            runtime: "docker",
            timeout,
            ..
        }) => assert_eq!(timeout, Duration::from_millis(300)),
        other => panic!("want Timeout, got {other:?}"),
    }
    assert!(matches!(
        no_hang(c.inspect(ID)).await,
        Err(Error::Timeout { .. })
    ));
}

#[tokio::test]
async fn a_daemon_that_hangs_after_ping_times_out() {
    let server = FakeServer::start(|path| {
        if path == "/_ping" {
            Reply::Http(
                200,
                vec![("Api-Version".into(), "1.41".into())],
                "OK".into(),
            )
        } else {
            Reply::Hang
        }
    });
    let c = client(&server.socket, 300);
    assert!(matches!(
        no_hang(c.inspect(ID)).await,
        Err(Error::Timeout { .. })
    ));
}

#[tokio::test]
async fn garbage_answers_are_errors() {
    let garbage: Vec<Vec<u8>> = vec![
        b"\x00\xff\xfe garbage\r\n\r\n".to_vec(),
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n".to_vec(), // truncated body
        b"SSH-2.0-OpenSSH_9.2\r\n".to_vec(),
        Vec::new(), // closes at once
    ];
    for bytes in garbage {
        let reply = bytes.clone();
        let server = FakeServer::start(move |_| Reply::Raw(reply.clone()));
        let c = client(&server.socket, 2000);
        let err = no_hang(c.inspect(ID)).await.unwrap_err();
        assert!(matches!(err, Error::Protocol { .. }), "{bytes:?}: {err:?}");
    }
}

#[tokio::test]
async fn garbage_json_after_a_good_ping_is_an_error() {
    for body in [
        "not json",
        "{\"Name\": 42}",
        "[]",
        "{\"Config\": {\"Labels\": [1,2]}}",
    ] {
        let server = FakeServer::start(move |path| {
            if path == "/_ping" {
                Reply::Http(
                    200,
                    vec![("Api-Version".into(), "1.41".into())],
                    "OK".into(),
                )
            } else {
                Reply::Http(200, vec![], body.into())
            }
        });
        let err = no_hang(client(&server.socket, 2000).inspect(ID))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Protocol { .. }), "{body}: {err:?}");
    }
}

#[tokio::test]
async fn a_restarted_daemon_is_found_again() {
    let dir = tempfile::tempdir().unwrap();
    let first = fake_dockerd();
    let socket = dir.path().join("docker.sock");
    std::os::unix::fs::symlink(&first.socket, &socket).unwrap();
    let c = client(&socket, 5000);
    no_hang(c.inspect(ID)).await.unwrap();
    drop(first);
    assert!(matches!(
        no_hang(c.inspect(ID)).await,
        Err(Error::Unavailable { .. })
    ));
    let second = fake_dockerd();
    std::fs::remove_file(&socket).unwrap();
    std::os::unix::fs::symlink(&second.socket, &socket).unwrap();
    no_hang(c.inspect(ID)).await.unwrap();
    assert_eq!(second.paths(), [format!("/containers/{ID}/json")]);
}

#[test]
fn published_tcp_ports_are_the_host_side_of_the_bindings() {
    let md = decode("docker_inspect_plain.json");
    assert_eq!(
        md.published_ports,
        vec![
            "0.0.0.0:8080".parse().unwrap(),
            "[::]:8080".parse().unwrap()
        ]
    );
    // UDP is not a TCP listener; an empty HostIp is every address; garbage is skipped.
    let resp: ContainerInspectResponse = serde_json::from_str(
        r#"{"NetworkSettings": {"Ports": {
            "53/udp": [{"HostIp": "127.0.0.1", "HostPort": "5353"}],
            "80/tcp": [{"HostIp": "", "HostPort": "8081"}, {"HostIp": "x", "HostPort": "1"}],
            "443/tcp": [{"HostIp": "127.0.0.1", "HostPort": "not a port"}],
            "9000/tcp": null
        }}}"#,
    )
    .unwrap();
    assert_eq!(
        metadata_from_inspect(&resp).published_ports,
        vec!["0.0.0.0:8081".parse().unwrap()]
    );
}

#[test]
fn volumes_are_named_docker_volumes_and_kubernetes_pvs() {
    let resp: ContainerInspectResponse = serde_json::from_str(
        r#"{"Name":"/db","Config":{"Image":"postgres"},"Mounts":[
        {"Type":"volume","Name":"pgdata","Source":"/var/lib/docker/volumes/pgdata/_data","Destination":"/var/lib/postgresql/data","Driver":"local","RW":true},
        {"Type":"bind","Source":"/var/lib/kubelet/pods/1/volumes/kubernetes.io~csi/pvc-4f1e2a3b-1c2d-4e5f-8a9b-0123456789ab/mount","Destination":"/data","RW":true},
        {"Type":"bind","Source":"/srv/www","Destination":"/www","RW":false},
        {"Type":"tmpfs","Destination":"/tmp"}]}"#,
    )
    .unwrap();
    let md = metadata_from_inspect(&resp);
    assert_eq!(
        md.volumes.into_iter().collect::<Vec<_>>(),
        [
            (
                "/data".to_owned(),
                "pvc-4f1e2a3b-1c2d-4e5f-8a9b-0123456789ab".to_owned()
            ),
            ("/var/lib/postgresql/data".to_owned(), "pgdata".to_owned()),
        ]
    );
    // The existing fixtures: a plain bind mount and a config map are no volumes.
    assert!(decode("docker_inspect_plain.json").volumes.is_empty());
    assert!(
        decode("docker_inspect_k8s_dockershim.json")
            .volumes
            .is_empty()
    );
}
