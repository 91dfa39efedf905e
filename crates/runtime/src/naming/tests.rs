#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;

/// 2025-01-15T00:00:00Z.
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_736_899_200)
}

/// The minute-timestamp a CronJob controller would put in a Job scheduled `offset` from now().
fn minutes(offset_secs: i64) -> u64 {
    let secs = now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64 + offset_secs;
    (secs / 60) as u64
}

fn md(name: &str, labels: &[(&str, &str)], env: &[(&str, &str)]) -> ContainerMetadata {
    ContainerMetadata {
        name: name.into(),
        image: "img".into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    }
}

fn k8s(ns: &str, pod: &str, container: &str) -> ContainerMetadata {
    md(
        &format!("k8s_{container}_{pod}_{ns}_uid_0"),
        &[
            ("io.kubernetes.pod.namespace", ns),
            ("io.kubernetes.pod.name", pod),
            ("io.kubernetes.container.name", container),
        ],
        &[],
    )
}

fn named(container_id: &str, app_id: &str) -> Naming {
    Naming::Named {
        container_id: container_id.into(),
        app_id: app_id.into(),
    }
}

fn name(m: &ContainerMetadata) -> Naming {
    name_container_at(m, "/docker/", now())
}

#[test]
fn docker_names() {
    assert_eq!(name(&md("web", &[], &[])), named("/docker/web", ""));
    assert_eq!(
        name(&md("my_app.1-x", &[], &[])),
        named("/docker/my_app.1-x", "")
    );
    assert_eq!(
        name(&md("UPPER", &[("a", "b")], &[])),
        named("/docker/UPPER", "")
    );
    // The prefix is the caller's (e.g. a containerd namespace for plain containerd containers).
    assert_eq!(
        name_container_at(&md("redis", &[], &[]), "/default/", now()),
        named("/default/redis", "")
    );
    assert_eq!(
        name(&md("", &[], &[])),
        Naming::Skip {
            reason: "container has no name"
        }
    );
}

#[test]
fn incomplete_kubernetes_labels_fall_back_to_docker() {
    // A namespace or container label without the pod name is not a pod (coroot keys on pod.name).
    let m = md(
        "sidecar",
        &[
            ("io.kubernetes.pod.namespace", "default"),
            ("io.kubernetes.container.name", "app"),
        ],
        &[],
    );
    assert_eq!(name(&m), named("/docker/sidecar", ""));
    let m = md("x", &[("io.kubernetes.pod.name", "")], &[]);
    assert_eq!(name(&m), named("/docker/x", ""));
}

#[test]
fn kubernetes_workloads() {
    let cases = [
        // (namespace, pod, container, container_id, app_id)
        (
            "default",
            "nginx-7c5ddbdf54-x8kmz",
            "nginx",
            "/k8s/default/nginx-7c5ddbdf54-x8kmz/nginx",
            "/k8s/default/nginx",
        ),
        (
            "kube-system",
            "coredns-565d847f94-2xk5w",
            "coredns",
            "/k8s/kube-system/coredns-565d847f94-2xk5w/coredns",
            "/k8s/kube-system/coredns",
        ),
        // Pre-1.8 decimal pod-template-hash.
        (
            "prod",
            "api-3837372172-b9zxq",
            "api",
            "/k8s/prod/api-3837372172-b9zxq/api",
            "/k8s/prod/api",
        ),
        // StatefulSet ordinals.
        (
            "db",
            "postgres-0",
            "postgres",
            "/k8s/db/postgres-0/postgres",
            "/k8s/db/postgres",
        ),
        ("db", "web-12", "web", "/k8s/db/web-12/web", "/k8s/db/web"),
        // DaemonSets (and plain Jobs: "<job>-<5>").
        (
            "kube-system",
            "kube-proxy-2xk5w",
            "kube-proxy",
            "/k8s/kube-system/kube-proxy-2xk5w/kube-proxy",
            "/k8s/kube-system/kube-proxy",
        ),
        (
            "kube-flannel",
            "kube-flannel-ds-x7k2p",
            "kube-flannel",
            "/k8s/kube-flannel/kube-flannel-ds-x7k2p/kube-flannel",
            "/k8s/kube-flannel/kube-flannel-ds",
        ),
        (
            "batch",
            "migrate-db-q5r8t",
            "migrate",
            "/k8s/batch/migrate-db-q5r8t/migrate",
            "/k8s/batch/migrate-db",
        ),
        (
            "default",
            "web-fe-x7k2p",
            "fe",
            "/k8s/default/web-fe-x7k2p/fe",
            "/k8s/default/web-fe",
        ),
        // Bare and static pods: no workload suffix -> no app id.
        ("default", "debug", "shell", "/k8s/default/debug/shell", ""),
        (
            "kube-system",
            "etcd-master",
            "etcd",
            "/k8s/kube-system/etcd-master/etcd",
            "",
        ),
        (
            "kube-system",
            "kube-apiserver-node1.example.com",
            "kube-apiserver",
            "/k8s/kube-system/kube-apiserver-node1.example.com/kube-apiserver",
            "",
        ),
        // Vowels are not in the suffix alphabet: "-abcde" is not a random suffix.
        (
            "default",
            "my-app-abcde",
            "app",
            "/k8s/default/my-app-abcde/app",
            "",
        ),
    ];
    for (ns, pod, c, cid, app) in cases {
        assert_eq!(name(&k8s(ns, pod, c)), named(cid, app), "{ns}/{pod}/{c}");
        assert_eq!(k8s_app_id(ns, pod, now()), app, "{ns}/{pod}");
    }
}

#[test]
fn cronjob_pods_within_a_week() {
    for offset in [0, -3600, -6 * 86_400, 6 * 86_400] {
        let pod = format!("backup-{}-x7k2p", minutes(offset));
        assert_eq!(
            name(&k8s("ops", &pod, "backup")),
            named("/k8s-cronjob/ops/backup/backup", "/k8s-cronjob/ops/backup"),
            "offset {offset}"
        );
    }
    // Dashes in the CronJob name are kept.
    let pod = format!("nightly-db-dump-{}-b9zxq", minutes(-60));
    assert_eq!(
        k8s_app_id("ops", &pod, now()),
        "/k8s-cronjob/ops/nightly-db-dump"
    );
}

#[test]
fn cronjob_like_names_outside_the_window_are_plain_pods() {
    for offset in [-8 * 86_400, 8 * 86_400, -400 * 86_400] {
        let m = minutes(offset);
        let pod = format!("backup-{m}-x7k2p");
        // As in coroot, the 8-digit number then reads as a (decimal) pod-template-hash.
        assert_eq!(
            name(&k8s("ops", &pod, "backup")),
            named(&format!("/k8s/ops/{pod}/backup"), "/k8s/ops/backup"),
            "offset {offset}"
        );
    }
    // 7 or 9 digits are not a minute timestamp.
    assert_eq!(
        k8s_app_id("ops", "backup-2894832-x7k2p", now()),
        "/k8s/ops/backup"
    );
    assert_eq!(
        k8s_app_id("ops", "backup-289483200-x7k2p", now()),
        "/k8s/ops/backup"
    );
}

#[test]
fn cronjob_search_is_unanchored_like_coroot() {
    // coroot's regex is searched, not anchored: a prefix the name class cannot match is skipped.
    let pod = format!("x.backup-{}-x7k2p", minutes(0));
    assert_eq!(
        name(&k8s("ops", &pod, "c")),
        named("/k8s-cronjob/ops/backup/c", "/k8s-cronjob/ops/backup")
    );
}

#[test]
fn app_id_needs_a_valid_namespace() {
    assert_eq!(k8s_app_id("", "nginx-7c5ddbdf54-x8kmz", now()), "");
    assert_eq!(k8s_app_id("Bad_NS", "nginx-7c5ddbdf54-x8kmz", now()), "");
    // The container id is still built from the labels as given (coroot does the same).
    let m = md(
        "n",
        &[
            ("io.kubernetes.pod.name", "nginx-7c5ddbdf54-x8kmz"),
            ("io.kubernetes.container.name", "nginx"),
        ],
        &[],
    );
    assert_eq!(name(&m), named("/k8s//nginx-7c5ddbdf54-x8kmz/nginx", ""));
}

#[test]
fn sandboxes_are_skipped() {
    let pod = [
        ("io.kubernetes.pod.namespace", "default"),
        ("io.kubernetes.pod.name", "web-0"),
    ];
    let dockershim = md(
        "k8s_POD_web-0_default_uid_0",
        &[
            pod[0],
            pod[1],
            ("io.kubernetes.container.name", "POD"),
            ("io.kubernetes.docker.type", "podsandbox"),
        ],
        &[],
    );
    let cri_containerd = md(
        "",
        &[pod[0], pod[1], ("io.cri-containerd.kind", "sandbox")],
        &[],
    );
    let crio_infra = md(
        "k8s_POD_web-0",
        &[pod[0], pod[1], ("io.kubernetes.container.name", "POD")],
        &[],
    );
    let no_container_name = md("x", &[pod[0], pod[1]], &[]);
    // A sandbox marker wins even with a container name present.
    let marked = md(
        "x",
        &[
            pod[0],
            pod[1],
            ("io.kubernetes.container.name", "app"),
            ("io.cri-containerd.kind", "sandbox"),
        ],
        &[],
    );
    for m in [
        dockershim,
        cri_containerd,
        crio_infra,
        no_container_name,
        marked,
    ] {
        assert!(matches!(name(&m), Naming::Skip { .. }), "{m:?}");
    }
    // Ordinary containers of the same pod are exported.
    let app = md(
        "x",
        &[
            pod[0],
            pod[1],
            ("io.kubernetes.container.name", "app"),
            ("io.cri-containerd.kind", "container"),
        ],
        &[],
    );
    assert_eq!(
        name(&app),
        named("/k8s/default/web-0/app", "/k8s/default/web")
    );
}

#[test]
fn swarm_tasks() {
    let with_stack = md(
        "mystack_web.1.abc123",
        &[
            ("com.docker.swarm.task.name", "mystack_web.1.abc123def"),
            ("com.docker.swarm.service.name", "mystack_web"),
            ("com.docker.stack.namespace", "mystack"),
        ],
        &[],
    );
    assert_eq!(name(&with_stack), named("/swarm/mystack/web/1", ""));

    let no_stack = md(
        "web.2.xyz",
        &[
            ("com.docker.swarm.task.name", "web.2.xyz789"),
            ("com.docker.swarm.service.name", "web"),
        ],
        &[],
    );
    assert_eq!(name(&no_stack), named("/swarm/_/web/2", ""));

    // Global services put the node id where the slot is; extra dots stay in the task id.
    let global = md(
        "agent",
        &[
            ("com.docker.swarm.task.name", "agent.n0de1d.t4sk.id"),
            ("com.docker.swarm.service.name", "agent"),
        ],
        &[],
    );
    assert_eq!(name(&global), named("/swarm/_/agent/n0de1d", ""));

    // A service not prefixed by its stack keeps its name.
    let odd = md(
        "x",
        &[
            ("com.docker.swarm.task.name", "other.3.id"),
            ("com.docker.swarm.service.name", "other"),
            ("com.docker.stack.namespace", "mystack"),
        ],
        &[],
    );
    assert_eq!(name(&odd), named("/swarm/mystack/other/3", ""));

    // Without the service label the task name's service part is used.
    let no_service = md("x", &[("com.docker.swarm.task.name", "web.4.id")], &[]);
    assert_eq!(name(&no_service), named("/swarm/_/web/4", ""));

    // Fewer than three parts is not a swarm task.
    let not_task = md("plain", &[("com.docker.swarm.task.name", "web.1")], &[]);
    assert_eq!(name(&not_task), named("/docker/plain", ""));
}

#[test]
fn nomad_tasks() {
    let env = [
        ("NOMAD_NAMESPACE", "default"),
        ("NOMAD_JOB_NAME", "api"),
        ("NOMAD_GROUP_NAME", "web"),
        ("NOMAD_ALLOC_ID", "5b3d0c2e-1111-2222-3333-444455556666"),
        ("NOMAD_TASK_NAME", "server"),
    ];
    let m = md("server-5b3d0c2e", &[], &env);
    assert_eq!(
        name(&m),
        named(
            "/nomad/default/api/web/5b3d0c2e-1111-2222-3333-444455556666/server",
            ""
        )
    );
    // Any missing or empty variable -> not a Nomad task.
    for skip in 0..env.len() {
        let partial: Vec<_> = env
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != skip)
            .map(|(_, kv)| *kv)
            .collect();
        assert_eq!(
            name(&md("n", &[], &partial)),
            named("/docker/n", ""),
            "without {}",
            env[skip].0
        );
        let mut empty = env;
        empty[skip].1 = "";
        assert_eq!(
            name(&md("n", &[], &empty)),
            named("/docker/n", ""),
            "empty {}",
            env[skip].0
        );
    }
    // A repeated variable: the last one wins (as in a Go map built in order).
    let mut repeated = env.to_vec();
    repeated.push(("NOMAD_TASK_NAME", "sidecar"));
    assert_eq!(
        name(&md("n", &[], &repeated)),
        named(
            "/nomad/default/api/web/5b3d0c2e-1111-2222-3333-444455556666/sidecar",
            ""
        )
    );
}

#[test]
fn precedence_is_kubernetes_then_swarm_then_nomad_then_name() {
    let env = [
        ("NOMAD_NAMESPACE", "n"),
        ("NOMAD_JOB_NAME", "j"),
        ("NOMAD_GROUP_NAME", "g"),
        ("NOMAD_ALLOC_ID", "a"),
        ("NOMAD_TASK_NAME", "t"),
    ];
    let swarm = ("com.docker.swarm.task.name", "s.1.x");
    let mut all = k8s("default", "web-0", "app");
    all.labels.insert(swarm.0.into(), swarm.1.into());
    all.env = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(
        name(&all),
        named("/k8s/default/web-0/app", "/k8s/default/web")
    );
    let swarm_nomad = md("x", &[swarm], &env);
    assert_eq!(name(&swarm_nomad), named("/swarm/_/s/1", ""));
    assert_eq!(name(&md("x", &[], &env)), named("/nomad/n/j/g/a/t", ""));
}

#[test]
fn name_container_uses_the_clock() {
    // A CronJob pod scheduled a minute ago (by the real clock) is recognised by name_container.
    let m = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 60
        - 1;
    let pod = format!("report-{m}-x7k2p");
    assert_eq!(
        name_container(&k8s("ops", &pod, "r"), "/docker/"),
        named("/k8s-cronjob/ops/report/r", "/k8s-cronjob/ops/report")
    );
}

#[test]
fn clock_before_epoch_does_not_panic() {
    let before = UNIX_EPOCH - Duration::from_secs(86_400);
    assert_eq!(
        k8s_app_id("ops", "backup-28948320-x7k2p", before),
        "/k8s/ops/backup"
    );
}
