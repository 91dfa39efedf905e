#![allow(clippy::unwrap_used)]

use super::*;
use crate::test_support::{FakeServer, Reply, no_hang, testdata};
use crate::{Naming, name_container};

const ID: &str = "5c8e4f1a2b3d4c5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6";

#[test]
fn pod_container_info() {
    let md = metadata_from_crio_info(testdata("crio_container.json").as_bytes()).unwrap();
    assert_eq!(
        md.name,
        "k8s_nginx_nginx-7c5ddbdf54-x8kmz_default_0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d_0"
    );
    assert_eq!(md.image, "docker.io/library/nginx:1.25");
    assert_eq!(md.labels.len(), 4);
    assert!(md.env.is_empty());
    assert_eq!(
        md.log_path.as_deref(),
        Some(Path::new(
            "/var/log/pods/default_nginx-7c5ddbdf54-x8kmz_0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d/nginx/0.log"
        ))
    );
    assert_eq!(md.log_driver.as_deref(), Some(CRI_LOG_FORMAT));
    assert_eq!(
        name_container(&md, "/crio/"),
        Naming::Named {
            container_id: "/k8s/default/nginx-7c5ddbdf54-x8kmz/nginx".into(),
            app_id: "/k8s/default/nginx".into()
        }
    );
}

#[test]
fn infra_container_is_skipped_and_image_falls_back_to_the_annotation() {
    let md = metadata_from_crio_info(testdata("crio_infra.json").as_bytes()).unwrap();
    assert_eq!(md.image, "registry.k8s.io/pause:3.9");
    assert_eq!((md.log_path.as_ref(), md.log_driver.as_ref()), (None, None));
    assert!(matches!(name_container(&md, "/crio/"), Naming::Skip { .. }));
}

#[test]
fn sparse_and_bad_json() {
    let md = metadata_from_crio_info(br#"{"image_ref":"sha256:abc","unknown":{"x":[1]}}"#).unwrap();
    assert_eq!(md.image, "sha256:abc");
    assert_eq!(
        md,
        ContainerMetadata {
            image: "sha256:abc".into(),
            ..Default::default()
        }
    );
    for bad in [
        &b"not json"[..],
        b"[1]",
        b"null",
        br#"{"labels":["a"]}"#,
        br#"{"name":1}"#,
        b"\xff\xfe",
    ] {
        assert!(metadata_from_crio_info(bad).is_err(), "{bad:?}");
    }
}

fn fake_crio() -> FakeServer {
    FakeServer::start(|path| {
        match path {
        "/info" => Reply::Http(200, vec![], r#"{"storage_driver":"overlay","storage_root":"/var/lib/containers/storage","cgroup_driver":"systemd"}"#.into()),
        p if p == format!("/containers/{ID}") => Reply::Http(200, vec![], testdata("crio_container.json")),
        "/containers/garbage" => Reply::Http(200, vec![], "<html>".into()),
        "/containers/broken" => Reply::Http(500, vec![], "internal error\n".into()),
        p => Reply::Http(404, vec![], format!("can't find the container with id {}\n", p.trim_start_matches("/containers/"))),
    }
    })
}

fn client(socket: &Path, timeout_ms: u64) -> CrioClient {
    CrioClient::new(socket, Duration::from_millis(timeout_ms)).unwrap()
}

#[tokio::test]
async fn inspect_over_the_socket() {
    let server = fake_crio();
    let c = client(&server.socket, 5000);
    no_hang(c.ping()).await.unwrap();
    let md = no_hang(c.inspect(ID)).await.unwrap();
    assert_eq!(md.image, "docker.io/library/nginx:1.25");
    assert_eq!(
        server.paths(),
        ["/info".to_owned(), format!("/containers/{ID}")]
    );
}

#[tokio::test]
async fn errors_are_classified() {
    let server = fake_crio();
    let c = client(&server.socket, 5000);
    match no_hang(c.inspect("0123abcd")).await {
        Err(Error::NotFound {
            runtime: "crio",
            id,
        }) => assert_eq!(id, "0123abcd"),
        other => panic!("want NotFound, got {other:?}"),
    }
    match no_hang(c.inspect("broken")).await {
        Err(Error::Api {
            status: 500,
            message,
            ..
        }) => assert_eq!(message, "internal error"),
        other => panic!("want Api, got {other:?}"),
    }
    assert!(matches!(
        no_hang(c.inspect("garbage")).await,
        Err(Error::Protocol { .. })
    ));
    assert!(matches!(
        no_hang(c.inspect("../info")).await,
        Err(Error::InvalidId { .. })
    ));
}

#[tokio::test]
async fn missing_socket_hang_and_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let c = client(&dir.path().join("crio.sock"), 1000);
    assert!(matches!(
        no_hang(c.ping()).await,
        Err(Error::Unavailable {
            runtime: "crio",
            ..
        })
    ));

    let hang = FakeServer::start(|_| Reply::Hang);
    let c = client(&hang.socket, 300);
    assert!(matches!(
        no_hang(c.inspect(ID)).await,
        Err(Error::Timeout {
            runtime: "crio",
            ..
        })
    ));

    let garbage =
        FakeServer::start(|_| Reply::Raw(b"\x16\x03\x01\x02\x00garbage\r\n\r\n".to_vec()));
    let c = client(&garbage.socket, 2000);
    assert!(matches!(
        no_hang(c.inspect(ID)).await,
        Err(Error::Protocol { .. })
    ));
}

#[tokio::test]
async fn oversized_answers_are_refused() {
    let big = format!(
        r#"{{"name":"x","annotations":{{"a":"{}"}}}}"#,
        "x".repeat(MAX_BODY)
    );
    let server = FakeServer::start(move |_| Reply::Http(200, vec![], big.clone()));
    let c = client(&server.socket, 10_000);
    assert!(matches!(
        no_hang(c.inspect(ID)).await,
        Err(Error::Protocol { .. })
    ));
}
