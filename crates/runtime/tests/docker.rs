//! Privileged: a real dockerd (started by the test in a temp dir), real containers, inspected
//! through `DockerClient`. Skips without root; fails instead when SONDE_REQUIRE_PRIVILEGED=1.
#![allow(clippy::unwrap_used)]

use sonde_integration_tests::dockerd;
use std::time::{Duration, Instant};

use sonde_runtime::{DockerClient, Error, Naming, name_container};

const IMAGE: &str = "sonde-busybox:test";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn inspect_real_containers() {
    let Some(d) = dockerd::Dockerd::start_or_skip("inspect_real_containers") else {
        return;
    };
    d.import_busybox(IMAGE).unwrap();
    let name = format!("sonde-test-{}", std::process::id());
    let id = d
        .run(&[
            "--name",
            &name,
            "--label",
            "com.example.sonde=yes",
            "--label",
            "team=observability",
            "-e",
            "SECRET=not-kept",
            IMAGE,
            "sh",
            "-c",
            "echo hello-sonde; exec sleep 300",
        ])
        .unwrap();

    let rt = rt();
    let client = DockerClient::new(&d.socket, Duration::from_secs(10)).unwrap();
    rt.block_on(client.ping()).unwrap();

    let md = rt.block_on(client.inspect(&id)).unwrap();
    assert_eq!(md.name, name);
    assert_eq!(md.image, IMAGE);
    assert_eq!(
        md.labels.get("com.example.sonde").map(String::as_str),
        Some("yes")
    );
    assert_eq!(
        md.labels.get("team").map(String::as_str),
        Some("observability")
    );
    assert!(md.env.is_empty(), "{:?}", md.env);
    assert_eq!(md.log_driver.as_deref(), Some("json-file"));
    let log_path = md.log_path.clone().expect("json-file log path");
    assert_eq!(
        log_path,
        d.data_root
            .join("containers")
            .join(&id)
            .join(format!("{id}-json.log"))
    );
    // The container's output reaches the json-file log the path names.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if text.contains(r#""log":"hello-sonde\n""#) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no output in {}: {text:?}",
            log_path.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        name_container(&md, "/docker/"),
        Naming::Named {
            container_id: format!("/docker/{name}"),
            app_id: String::new()
        }
    );

    // Docker resolves unique id prefixes and names too.
    assert_eq!(rt.block_on(client.inspect(&id[..12])).unwrap(), md);
    assert_eq!(rt.block_on(client.inspect(&name)).unwrap(), md);

    // A container that is gone is NotFound.
    d.remove(&id).unwrap();
    match rt.block_on(client.inspect(&id)) {
        Err(Error::NotFound { id: missing, .. }) => assert_eq!(missing, id),
        other => panic!("want NotFound, got {other:?}"),
    }
}

#[test]
fn real_labels_and_env_drive_naming() {
    let Some(d) = dockerd::Dockerd::start_or_skip("real_labels_and_env_drive_naming") else {
        return;
    };
    d.import_busybox(IMAGE).unwrap();
    let rt = rt();
    let client = DockerClient::new(&d.socket, Duration::from_secs(10)).unwrap();
    let pid = std::process::id();

    let k8s = d
        .run(&[
            "--name",
            &format!("k8s_app_web-7c5ddbdf54-x8kmz_{pid}"),
            "--label",
            "io.kubernetes.pod.namespace=shop",
            "--label",
            "io.kubernetes.pod.name=web-7c5ddbdf54-x8kmz",
            "--label",
            "io.kubernetes.container.name=app",
            "--label",
            "io.kubernetes.docker.type=container",
            IMAGE,
            "sleep",
            "300",
        ])
        .unwrap();
    let nomad = d
        .run(&[
            "--name",
            &format!("server-{pid}"),
            "-e",
            "NOMAD_NAMESPACE=default",
            "-e",
            "NOMAD_JOB_NAME=api",
            "-e",
            "NOMAD_GROUP_NAME=web",
            "-e",
            "NOMAD_ALLOC_ID=5b3d0c2e",
            "-e",
            "NOMAD_TASK_NAME=server",
            IMAGE,
            "sleep",
            "300",
        ])
        .unwrap();
    let sandbox = d
        .run(&[
            "--label",
            "io.kubernetes.pod.namespace=shop",
            "--label",
            "io.kubernetes.pod.name=web-7c5ddbdf54-x8kmz",
            "--label",
            "io.kubernetes.container.name=POD",
            "--label",
            "io.kubernetes.docker.type=podsandbox",
            IMAGE,
            "sleep",
            "300",
        ])
        .unwrap();

    let k8s_md = rt.block_on(client.inspect(&k8s)).unwrap();
    assert_eq!(
        name_container(&k8s_md, "/docker/"),
        Naming::Named {
            container_id: "/k8s/shop/web-7c5ddbdf54-x8kmz/app".into(),
            app_id: "/k8s/shop/web".into()
        }
    );
    let nomad_md = rt.block_on(client.inspect(&nomad)).unwrap();
    assert_eq!(nomad_md.env.len(), 5, "{:?}", nomad_md.env);
    assert_eq!(
        name_container(&nomad_md, "/docker/"),
        Naming::Named {
            container_id: "/nomad/default/api/web/5b3d0c2e/server".into(),
            app_id: String::new()
        }
    );
    let sandbox_md = rt.block_on(client.inspect(&sandbox)).unwrap();
    assert!(matches!(
        name_container(&sandbox_md, "/docker/"),
        Naming::Skip { .. }
    ));
}

#[test]
fn stopped_daemon_is_unavailable() {
    let Some(d) = dockerd::Dockerd::start_or_skip("stopped_daemon_is_unavailable") else {
        return;
    };
    let socket = d.socket.clone();
    let rt = rt();
    let client = DockerClient::new(&socket, Duration::from_secs(10)).unwrap();
    rt.block_on(client.ping()).unwrap();
    drop(d);
    match rt.block_on(client.ping()) {
        Err(Error::Unavailable { .. }) => {}
        other => panic!("want Unavailable, got {other:?}"),
    }
}
