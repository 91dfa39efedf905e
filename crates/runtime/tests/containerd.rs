//! Privileged: `ContainerdClient` against a real containerd 1.6 (the one under the test's
//! private dockerd; Docker keeps its containers in containerd's "moby" namespace).
#![allow(clippy::unwrap_used)]

use sonde_integration_tests::dockerd;
use std::time::Duration;

use sonde_runtime::{ContainerdClient, Error, Naming, name_container};

#[test]
fn inspect_real_containerd() {
    let Some(d) = dockerd::Dockerd::start_or_skip("inspect_real_containerd") else {
        return;
    };
    d.import_busybox("sonde-busybox:test").unwrap();
    let id = d
        .run(&[
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
            "-e",
            "OTHER=x",
            "sonde-busybox:test",
            "sleep",
            "300",
        ])
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let c = ContainerdClient::new(&d.containerd_socket, Duration::from_secs(10)).unwrap();

    let version = rt.block_on(c.version()).unwrap();
    assert!(
        version.starts_with('1') || version.starts_with('2'),
        "{version}"
    );
    let namespaces = rt.block_on(c.namespaces()).unwrap();
    assert!(namespaces.iter().any(|n| n == "moby"), "{namespaces:?}");

    let md = rt.block_on(c.inspect("moby", &id)).unwrap();
    assert_eq!(md.name, id);
    // The env comes from the OCI spec stored with the container (naming keys only).
    assert_eq!(md.env.len(), 5, "{:?}", md.env);
    assert_eq!(
        name_container(&md, "/containerd/"),
        Naming::Named {
            container_id: "/nomad/default/api/web/5b3d0c2e/server".into(),
            app_id: String::new()
        }
    );
    // Not a CRI container: no CRI log path.
    assert_eq!(md.log_path, None);

    match rt.block_on(c.inspect("moby", "0123456789abcdef")) {
        Err(Error::NotFound { .. }) => {}
        other => panic!("want NotFound, got {other:?}"),
    }
    match rt.block_on(c.inspect("no-such-namespace", &id)) {
        Err(Error::NotFound { .. }) => {}
        other => panic!("want NotFound, got {other:?}"),
    }
}
