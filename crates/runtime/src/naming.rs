//! Container naming: runtime metadata -> the `container_id` and `app_id` labels of METRICS.md.
//!
//! Pure functions, in coroot-node-agent's order (`containers/registry.go` `calcId` and
//! `common/otel.go` `ContainerIdToOtelServiceName`); the deliberate differences are listed in
//! docs/runtime.md and marked "Differs from coroot" below.

use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use regex::Regex;

use crate::ContainerMetadata;

/// How a container is named in metrics, per METRICS.md `container_id` forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Naming {
    /// Export under this container_id; `app_id` is the k8s workload id
    /// ("/k8s/<ns>/<workload>" or "/k8s-cronjob/<ns>/<name>") or empty.
    Named {
        /// The `container_id` label value.
        container_id: String,
        /// The `app_id` label value (may be empty).
        app_id: String,
    },
    /// Never export (pause/sandbox containers): reason for debug logs.
    Skip {
        /// Why the container is not exported.
        reason: &'static str,
    },
}

/// Environment variables [`name_container`] reads (HashiCorp Nomad's task environment).
/// Runtime clients keep only these in [`ContainerMetadata::env`].
pub const NAMING_ENV_KEYS: [&str; 5] = [
    "NOMAD_NAMESPACE",
    "NOMAD_JOB_NAME",
    "NOMAD_GROUP_NAME",
    "NOMAD_ALLOC_ID",
    "NOMAD_TASK_NAME",
];

const LABEL_POD_NAME: &str = "io.kubernetes.pod.name";
const LABEL_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
const LABEL_CONTAINER_NAME: &str = "io.kubernetes.container.name";
const LABEL_DOCKER_TYPE: &str = "io.kubernetes.docker.type";
const LABEL_CRI_CONTAINERD_KIND: &str = "io.cri-containerd.kind";
const LABEL_SWARM_TASK_NAME: &str = "com.docker.swarm.task.name";
const LABEL_SWARM_SERVICE_NAME: &str = "com.docker.swarm.service.name";
const LABEL_STACK_NAMESPACE: &str = "com.docker.stack.namespace";

/// How far from now a CronJob pod's scheduled minute may be (coroot's `cronjobPodScheduleWindow`).
const CRONJOB_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);

/// Kubernetes' random-suffix alphabet (`k8s.io/apimachinery/pkg/util/rand`): no vowels, no 0/1/3.
macro_rules! safe {
    () => {
        "[bcdfghjklmnpqrstvwxz2456789]"
    };
}

fn compile(pattern: &str) -> Regex {
    // The patterns are literals of this file: failing to compile is a bug caught by every test.
    #[allow(clippy::expect_used)]
    Regex::new(pattern).expect("static regex")
}

/// `<cronjob>-<minutes since epoch, 8 digits>-<5 random>`, searched unanchored like coroot's
/// `cronjobPodName` (leftmost-first, greedy: the same captures as Go's RE2).
static CRONJOB_POD: LazyLock<Regex> =
    LazyLock::new(|| compile(concat!("([a-z0-9-]+)-([0-9]{8})-", safe!(), "{5}")));

/// Workload suffixes in coroot's order (Deployment, DaemonSet, StatefulSet).
///
/// Differs from coroot, whose pod-template-hash class is `[0-9a-f]{1,10}`: the hash is
/// `SafeEncodeString(decimal fnv32 sum)`, whose characters are exactly `{4-9,b,c,d,f}`
/// (pre-1.8: plain decimal), 6 to 10 of them for all but ~2e-5 of hashes. `[0-9bcdf]{6,10}`
/// keeps every real hash while no longer reading short hex-like name parts as a hash
/// (coroot turns the Job pod "migrate-db-q5r8t" into workload "migrate").
static DEPLOYMENT_POD: LazyLock<Regex> =
    LazyLock::new(|| compile(concat!("^([a-z0-9-]+)-[0-9bcdf]{6,10}-", safe!(), "{5}$")));
static DAEMONSET_POD: LazyLock<Regex> =
    LazyLock::new(|| compile(concat!("^([a-z0-9-]+)-", safe!(), "{5}$")));
static STATEFULSET_POD: LazyLock<Regex> = LazyLock::new(|| compile("^([a-z0-9-]+)-[0-9]+$"));
static NAMESPACE: LazyLock<Regex> = LazyLock::new(|| compile("^[a-z0-9-]+$"));

/// Name a container from its metadata, in coroot-node-agent's order: Kubernetes labels
/// (`io.kubernetes.pod.namespace` / `pod.name` / `container.name`; sandboxes:
/// `io.kubernetes.docker.type=podsandbox`, `io.cri-containerd.kind=sandbox` or container name
/// `POD` -> Skip), CronJob pods -> `/k8s-cronjob/...`, Swarm
/// (`com.docker.swarm.task.name` "<service>.<slot>.<taskid>", `com.docker.stack.namespace`) ->
/// `/swarm/<ns or _>/<service without "<ns>_" prefix>/<slot>`, Nomad env (`NOMAD_NAMESPACE`,
/// `NOMAD_JOB_NAME`, `NOMAD_GROUP_NAME`, `NOMAD_ALLOC_ID`, `NOMAD_TASK_NAME`) ->
/// `/nomad/<ns>/<job>/<group>/<alloc>/<task>`, else `fallback_prefix` + name, e.g. "/docker/<name>".
pub fn name_container(md: &ContainerMetadata, fallback_prefix: &str) -> Naming {
    name_container_at(md, fallback_prefix, SystemTime::now())
}

/// [`name_container`] with the clock injected (CronJob detection compares with `now`).
pub fn name_container_at(md: &ContainerMetadata, fallback_prefix: &str, now: SystemTime) -> Naming {
    let label = |k: &str| md.labels.get(k).map(String::as_str).unwrap_or("");

    // Differs from coroot: sandbox markers are checked explicitly (coroot relies on sandboxes
    // having no container name or the name "POD", which holds for dockershim, CRI-O and
    // containerd; the explicit check also covers a sandbox with a pod label but odd naming).
    if label(LABEL_DOCKER_TYPE) == "podsandbox" || label(LABEL_CRI_CONTAINERD_KIND) == "sandbox" {
        return Naming::Skip {
            reason: "kubernetes pod sandbox",
        };
    }

    let pod = label(LABEL_POD_NAME);
    if !pod.is_empty() {
        let namespace = label(LABEL_POD_NAMESPACE);
        let name = label(LABEL_CONTAINER_NAME);
        if name.is_empty() || name == "POD" {
            return Naming::Skip {
                reason: "kubernetes pause container",
            };
        }
        if let Some(cronjob) = cronjob_name(pod, now) {
            return Naming::Named {
                container_id: format!("/k8s-cronjob/{namespace}/{cronjob}/{name}"),
                app_id: k8s_app_id(namespace, pod, now),
            };
        }
        return Naming::Named {
            container_id: format!("/k8s/{namespace}/{pod}/{name}"),
            app_id: k8s_app_id(namespace, pod, now),
        };
    }

    let task = label(LABEL_SWARM_TASK_NAME);
    let parts: Vec<&str> = task.splitn(3, '.').collect();
    if let [task_service, slot, _task_id] = parts[..] {
        let namespace = label(LABEL_STACK_NAMESPACE);
        let mut service = label(LABEL_SWARM_SERVICE_NAME);
        // Differs from coroot: without the service label (never seen from a real swarm), the
        // task name's first part, which swarm sets to the service name, is used instead of "".
        if service.is_empty() {
            service = task_service;
        }
        let container_id = if namespace.is_empty() {
            format!("/swarm/_/{service}/{slot}")
        } else {
            let service = service
                .strip_prefix(&format!("{namespace}_"))
                .unwrap_or(service);
            format!("/swarm/{namespace}/{service}/{slot}")
        };
        return Naming::Named {
            container_id,
            app_id: String::new(),
        };
    }

    let env = |k: &str| {
        md.env
            .iter()
            .rev()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let [ns, job, group, alloc, task] = [
        "NOMAD_NAMESPACE",
        "NOMAD_JOB_NAME",
        "NOMAD_GROUP_NAME",
        "NOMAD_ALLOC_ID",
        "NOMAD_TASK_NAME",
    ]
    .map(env);
    if [ns, job, group, alloc, task].iter().all(|v| !v.is_empty()) {
        return Naming::Named {
            container_id: format!("/nomad/{ns}/{job}/{group}/{alloc}/{task}"),
            app_id: String::new(),
        };
    }

    if md.name.is_empty() {
        return Naming::Skip {
            reason: "container has no name",
        };
    }
    Naming::Named {
        container_id: format!("{fallback_prefix}{}", md.name),
        app_id: String::new(),
    }
}

/// Kubernetes workload id from namespace + pod name: strip ReplicaSet "-<hash>-<5 chars>",
/// DaemonSet "-<5 chars>", StatefulSet "-<n>" suffixes; CronJob/Job pods (name
/// "<cronjob>-<minutes-since-epoch timestamp within a week of now>-<5>") ->
/// "/k8s-cronjob/<ns>/<cronjob>". Empty when no suffix matches (bare pods, static pods with
/// dots in their names) or the namespace is not a valid namespace name.
pub fn k8s_app_id(namespace: &str, pod: &str, now: SystemTime) -> String {
    if !NAMESPACE.is_match(namespace) {
        return String::new();
    }
    // Differs from coroot: coroot's app id regex for CronJobs is never reached (its "/k8s/"
    // prefix guard returns first), leaving CronJob pods with an empty app_id; METRICS.md asks
    // for "/k8s-cronjob/<ns>/<name>".
    if let Some(cronjob) = cronjob_name(pod, now) {
        return format!("/k8s-cronjob/{namespace}/{cronjob}");
    }
    for re in [&*DEPLOYMENT_POD, &*DAEMONSET_POD, &*STATEFULSET_POD] {
        if let Some(workload) = re.captures(pod).and_then(|c| c.get(1)) {
            return format!("/k8s/{namespace}/{}", workload.as_str());
        }
    }
    String::new()
}

/// The CronJob name of a Job pod whose scheduled minute lies within a week of `now`.
fn cronjob_name(pod: &str, now: SystemTime) -> Option<&str> {
    let caps = CRONJOB_POD.captures(pod)?;
    let minutes: i128 = caps.get(2)?.as_str().parse().ok()?;
    let scheduled_ns = minutes * 60 * 1_000_000_000;
    let now_ns = match now.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    };
    let window = CRONJOB_WINDOW.as_nanos() as i128;
    (scheduled_ns > now_ns - window && scheduled_ns < now_ns + window)
        .then(|| caps.get(1).map(|m| m.as_str()))
        .flatten()
}

#[cfg(test)]
#[path = "naming/tests.rs"]
mod tests;
