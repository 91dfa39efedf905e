#![allow(clippy::unwrap_used)]
use super::*;
use std::collections::BTreeMap;

const ID_A: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const ID_B: &str = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

fn cg(path: &str) -> ProcessCgroups {
    ProcessCgroups::parse(&format!("4:memory:{path}\n1:cpu,cpuacct:{path}\n0::/\n")).unwrap()
}

fn seen(pid: u32, start: u64, age_s: u64, path: &str) -> Event {
    Event::ProcessSeen {
        pid,
        start_ticks: start,
        age: Duration::from_secs(age_s),
        cgroups: cg(path),
    }
}

fn found(cgroup_id: &str, name: &str, labels: &[(&str, &str)]) -> Event {
    let md = ContainerMetadata {
        name: name.into(),
        image: "busybox:latest".into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        ..Default::default()
    };
    Event::Metadata {
        cgroup_id: cgroup_id.into(),
        outcome: MetadataOutcome::Found {
            metadata: Box::new(md),
            source: MetadataSource::Docker,
        },
    }
}

fn filters(min_age: u64) -> Filters {
    Filters {
        allowlist: vec![],
        denylist: vec![],
        min_container_age: Duration::from_secs(min_age),
    }
}

fn exported_names(s: &State, f: &Filters, now: Instant) -> Vec<String> {
    let mut v: Vec<String> = s
        .exported(f, now)
        .iter()
        .map(|c| c.container_id().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn docker_container_is_held_until_named_then_exported() {
    let now = Instant::now();
    let mut s = State::new(Duration::from_secs(30));
    let path = format!("/docker/{ID_A}");
    s.apply(seen(10, 100, 60, &path), now);
    assert_eq!(s.container(&path).unwrap().state_label(), "pending");
    assert!(
        exported_names(&s, &filters(0), now).is_empty(),
        "never exported under a guess"
    );

    let due = s.due_lookups(now, |_| true);
    assert_eq!(
        due,
        vec![LookupRequest {
            cgroup_id: path.clone(),
            source: MetadataSource::Docker,
            runtime_id: ID_A.into(),
            namespace: None,
            removal_check: false,
        }]
    );
    assert!(
        s.due_lookups(now, |_| true).is_empty(),
        "in flight: not asked twice"
    );

    s.apply(found(&path, "web", &[]), now);
    assert_eq!(exported_names(&s, &filters(0), now), vec!["/docker/web"]);
    assert_eq!(s.container(&path).unwrap().image, "busybox:latest");
}

#[test]
fn min_container_age_uses_the_oldest_process() {
    let now = Instant::now();
    let mut s = State::new(Duration::from_secs(30));
    s.apply(seen(1, 5, 10, "/system.slice/nginx.service"), now);
    assert!(exported_names(&s, &filters(30), now).is_empty());
    // An older process of the same service makes the container old enough.
    s.apply(seen(2, 1, 120, "/system.slice/nginx.service"), now);
    assert_eq!(
        exported_names(&s, &filters(30), now),
        vec!["/system.slice/nginx.service"]
    );
    // Time passes for a young container too.
    let mut s = State::new(Duration::from_secs(30));
    s.apply(seen(1, 5, 10, "/system.slice/nginx.service"), now);
    assert_eq!(
        exported_names(&s, &filters(30), now + Duration::from_secs(21)).len(),
        1
    );
}

#[test]
fn allow_and_deny_lists_filter_by_container_id() {
    let now = Instant::now();
    let mut s = State::new(Duration::from_secs(30));
    s.apply(seen(1, 1, 100, "/system.slice/nginx.service"), now);
    s.apply(seen(2, 1, 100, "/system.slice/redis.service"), now);
    s.apply(seen(3, 1, 100, "/system.slice/cron.service"), now);
    let mut f = filters(0);
    f.allowlist = vec![Regex::new("nginx|redis").unwrap()];
    f.denylist = vec![Regex::new("redis").unwrap()];
    assert_eq!(
        exported_names(&s, &f, now),
        vec!["/system.slice/nginx.service"]
    );
}

#[test]
fn processes_outside_containers_are_not_tracked() {
    let now = Instant::now();
    let mut s = State::new(Duration::from_secs(30));
    s.apply(seen(1, 1, 100, "/"), now);
    s.apply(
        seen(2, 1, 100, "/user.slice/user-0.slice/session-1.scope"),
        now,
    );
    s.apply(seen(3, 1, 100, "/init.scope"), now);
    assert_eq!(s.containers().count(), 0);
    assert!(s.container_of_pid(2).is_none());
}

#[test]
fn reused_pid_moves_to_its_new_container() {
    let now = Instant::now();
    let mut s = State::new(Duration::from_secs(30));
    s.apply(seen(7, 100, 100, "/system.slice/a.service"), now);
    // Same pid, another start time: a different process in another cgroup.
    s.apply(seen(7, 200, 1, "/system.slice/b.service"), now);
    assert!(
        s.container("/system.slice/a.service")
            .unwrap()
            .pids
            .is_empty()
    );
    assert_eq!(
        s.container_of_pid(7).unwrap().container_id(),
        Some("/system.slice/b.service")
    );
    assert!(
        s.container("/system.slice/a.service")
            .unwrap()
            .empty_since
            .is_some()
    );
}

#[test]
fn empty_containers_are_collected_after_the_grace_period() {
    let now = Instant::now();
    let mut s = State::new(Duration::from_secs(30));
    s.apply(seen(7, 100, 100, "/system.slice/a.service"), now);
    s.apply(Event::ProcessGone { pid: 7 }, now);
    assert_eq!(s.collect_garbage(now + Duration::from_secs(29)), 0);
    // A process coming back within the grace period keeps the container (same state).
    s.apply(
        seen(8, 300, 0, "/system.slice/a.service"),
        now + Duration::from_secs(29),
    );
    assert_eq!(s.collect_garbage(now + Duration::from_secs(100)), 0);
    s.apply(
        Event::ProcessGone { pid: 8 },
        now + Duration::from_secs(100),
    );
    assert_eq!(s.collect_garbage(now + Duration::from_secs(131)), 1);
    assert_eq!(s.containers().count(), 0);
    assert_eq!(s.tracked_pids(), 0);
}

#[test]
fn failed_lookups_back_off_and_retry() {
    let now = Instant::now();
    let mut s = State::new(Duration::from_secs(30));
    let path = format!("/docker/{ID_A}");
    s.apply(seen(1, 1, 100, &path), now);
    assert_eq!(s.due_lookups(now, |_| true).len(), 1);
    s.apply(
        Event::Metadata {
            cgroup_id: path.clone(),
            outcome: MetadataOutcome::Failed("timeout".into()),
        },
        now,
    );
    assert!(s.due_lookups(now, |_| true).is_empty(), "backing off");
    // The first retry waits FIRST_LOOKUP_BACKOFF, 2 s (docs/architecture.md says so).
    assert!(
        s.due_lookups(now + Duration::from_millis(1_999), |_| true)
            .is_empty()
    );
    assert_eq!(
        s.due_lookups(now + Duration::from_secs(2), |_| true).len(),
        1
    );
    s.apply(
        Event::Metadata {
            cgroup_id: path.clone(),
            outcome: MetadataOutcome::NotFound,
        },
        now,
    );
    match &s.container(&path).unwrap().naming {
        Naming::Pending {
            attempts,
            next_attempt,
            ..
        } => {
            assert_eq!(*attempts, 2);
            // The second failure waits twice as long.
            assert_eq!(*next_attempt, now + Duration::from_secs(4));
        }
        other => panic!("{other:?}"),
    }
    // A source without a client is never asked.
    let later = now + Duration::from_secs(3600);
    assert!(s.due_lookups(later, |_| false).is_empty());
    // A request that could not be queued becomes due again.
    assert_eq!(s.due_lookups(later, |_| true).len(), 1);
    s.lookup_not_started(&path);
    assert_eq!(s.due_lookups(later, |_| true).len(), 1);
}

#[test]
fn sandbox_containers_are_skipped() {
    let now = Instant::now();
    let mut s = State::new(Duration::from_secs(30));
    let path = format!("/kubepods/besteffort/pod1234/{ID_B}");
    s.apply(seen(1, 1, 100, &path), now);
    s.due_lookups(now, |_| true);
    s.apply(
        found(
            &path,
            "k8s_POD_web_shop_uid_0",
            &[
                ("io.kubernetes.docker.type", "podsandbox"),
                ("io.kubernetes.pod.name", "web-7d4b9c8f6d-x2x9q"),
                ("io.kubernetes.pod.namespace", "shop"),
            ],
        ),
        now,
    );
    assert_eq!(s.container(&path).unwrap().state_label(), "skipped");
    assert!(exported_names(&s, &filters(0), now).is_empty());
}

#[test]
fn same_name_twice_is_exported_once_preferring_the_live_container() {
    let now = Instant::now();
    let mut s = State::new(Duration::from_secs(30));
    let old = format!("/docker/{ID_A}");
    let new = format!("/docker/{ID_B}");
    s.apply(seen(1, 1, 100, &old), now);
    s.apply(seen(2, 2, 50, &new), now);
    s.due_lookups(now, |_| true);
    s.apply(found(&old, "web", &[]), now);
    s.apply(found(&new, "web", &[]), now);
    s.apply(Event::ProcessGone { pid: 1 }, now);
    let exported = s.exported(&filters(0), now);
    assert_eq!(exported.len(), 1);
    assert_eq!(exported[0].cgroup_id, new);
}

#[test]
fn metadata_for_a_vanished_container_is_ignored() {
    let now = Instant::now();
    let mut s = State::new(Duration::from_secs(30));
    s.apply(found("/docker/nope", "web", &[]), now);
    assert_eq!(s.containers().count(), 0);
}

#[test]
fn plain_containerd_and_kubernetes_containers_are_named_by_their_runtime() {
    let now = Instant::now();
    let mut s = State::new(Duration::from_secs(30));
    s.apply(seen(1, 1, 100, "/sonde-plain/plain1"), now);
    let kube = format!(
        "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-containerd-{ID_A}.scope"
    );
    s.apply(seen(2, 1, 100, &kube), now);
    let bare = format!("/kubepods/besteffort/pod2/{ID_B}");
    s.apply(seen(3, 1, 100, &bare), now);
    let mut due = s.due_lookups(now, |_| true);
    due.sort_by(|a, b| a.cgroup_id.cmp(&b.cgroup_id));
    let summary: Vec<(MetadataSource, Option<String>)> = due
        .iter()
        .map(|d| (d.source, d.namespace.clone()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (MetadataSource::Containerd, None), // /kubepods.slice/...cri-containerd-
            (MetadataSource::AnyKubernetes, None), // /kubepods/.../<bare id>
            (MetadataSource::Containerd, Some("sonde-plain".into())),
        ]
    );
    let answer = |cgroup: &str, name: &str, labels: &[(&str, &str)]| Event::Metadata {
        cgroup_id: cgroup.into(),
        outcome: MetadataOutcome::Found {
            metadata: Box::new(ContainerMetadata {
                name: name.into(),
                image: "img".into(),
                labels: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ..Default::default()
            }),
            source: MetadataSource::Containerd,
        },
    };
    s.apply(answer("/sonde-plain/plain1", "plain1", &[]), now);
    let pod = [
        ("io.kubernetes.pod.namespace", "shop"),
        ("io.kubernetes.pod.name", "web-7d4b9c8f6d-x2x9q"),
        ("io.kubernetes.container.name", "app"),
    ];
    s.apply(answer(&kube, "app", &pod), now);
    s.apply(answer(&bare, "sidecar", &pod), now);
    assert_eq!(
        s.container("/sonde-plain/plain1").unwrap().container_id(),
        Some("/containerd/sonde-plain/plain1")
    );
    let c = s.container(&kube).unwrap();
    assert_eq!(c.container_id(), Some("/k8s/shop/web-7d4b9c8f6d-x2x9q/app"));
    assert_eq!(c.app_id(), "/k8s/shop/web");
}

#[test]
fn oom_kill_of_an_unseen_container_is_counted_and_named() {
    let now = Instant::now();
    let mut s = State::new(Duration::from_secs(30));
    let path = format!("/docker/{ID_A}");
    let oom = |pid| Event::OomKillInCgroup {
        pid,
        cgroup_path: path.clone(),
    };
    let exit = |pid| Event::ProcessExitInCgroup {
        pid,
        cgroup_path: path.clone(),
    };
    s.apply(oom(10), now);
    let c = s.container(&path).unwrap();
    assert_eq!(c.oom_kills, 1);
    assert_eq!(c.pids.len(), 1, "the victim is placed until its exit");
    s.apply(exit(10), now);
    let c = s.container(&path).unwrap();
    assert!(c.pids.is_empty() && c.empty_since.is_some());
    assert_eq!(c.restarts, 0, "one run so far");
    assert_eq!(
        s.due_lookups(now, |_| true).len(),
        1,
        "named through the runtime"
    );
    s.apply(found(&path, "oom-victim", &[]), now);
    assert_eq!(
        exported_names(&s, &filters(0), now),
        vec!["/docker/oom-victim"]
    );
    // Not a container: counted as unattributed, nothing created.
    s.apply(
        Event::OomKillInCgroup {
            pid: 99,
            cgroup_path: "/user.slice".into(),
        },
        now,
    );
    assert_eq!(s.unattributed_events, 1);
    // Dropped after the grace period like any empty container.
    assert_eq!(s.collect_garbage(now + Duration::from_secs(31)), 1);
}

#[test]
fn a_container_killed_at_every_start_counts_each_run_and_each_kill() {
    // Docker's restart policy restarts the same container (same cgroup path, a new
    // directory) twice; each run's only process is OOM-killed before /proc is read.
    let now = Instant::now();
    let mut s = State::new(Duration::from_secs(30));
    let path = format!("/docker/{ID_A}");
    for pid in [10, 11, 12] {
        s.apply(
            Event::OomKillInCgroup {
                pid,
                cgroup_path: path.clone(),
            },
            now,
        );
        s.apply(
            Event::ProcessExitInCgroup {
                pid,
                cgroup_path: path.clone(),
            },
            now,
        );
    }
    let c = s.container(&path).unwrap();
    assert_eq!((c.restarts, c.oom_kills), (2, 3));
    assert_eq!(s.unattributed_events, 0);
}

#[test]
fn short_lived_processes_are_attributed_by_their_cgroup() {
    // A container whose shell (pid 1, long-lived) runs `nc` in a loop: each nc is gone before
    // /proc is read. Its socket may close after its exit (the usual case) or before.
    let now = Instant::now();
    let mut s = State::new(Duration::from_secs(30));
    let path = "/system.slice/loop.service";
    s.apply(seen(1, 1, 10, path), now);
    let closed = || NetEvent::Connection {
        dst: "10.0.0.5:80".parse().unwrap(),
        actual: "10.0.0.5:80".parse().unwrap(),
        connect: Some(Duration::from_millis(1)),
        sent: 10,
        received: 20,
        segs_out: 4,
        segs_in: 5,
    };
    for pid in 100..110u32 {
        let exit = Event::ProcessExitInCgroup {
            pid,
            cgroup_path: path.into(),
        };
        let net = Event::NetInCgroup {
            pid,
            cgroup_path: path.into(),
            event: closed(),
        };
        if pid % 2 == 0 {
            s.apply(exit, now);
            s.apply(net, now);
        } else {
            s.apply(net, now);
            s.apply(exit, now);
        }
    }
    let c = s.container(path).unwrap();
    let dst: std::net::SocketAddr = "10.0.0.5:80".parse().unwrap();
    let d = &c.net.destinations[&(dst, dst)];
    assert_eq!(d.successful_connects, 10);
    assert_eq!((d.bytes_sent, d.bytes_received), (100, 200));
    assert_eq!((d.packets_sent, d.packets_received), (40, 50));
    assert_eq!(c.restarts, 0, "the shell kept the container running");
    assert_eq!(c.pids.len(), 1);
    assert_eq!(s.unattributed_events, 0);
}

#[test]
fn active_connections_are_replaced_by_each_dump_and_placed_by_pid_then_cgroup() {
    use crate::net::ActiveCount;
    let now = Instant::now();
    let mut s = State::new(Duration::from_secs(30));
    let (a, b) = ("/system.slice/a.service", "/system.slice/b.service");
    s.apply(seen(1, 1, 10, a), now);
    s.apply(seen(2, 1, 10, b), now);
    let db: std::net::SocketAddr = "10.0.0.5:5432".parse().unwrap();
    let upstream: std::net::SocketAddr = "10.1.0.9:5432".parse().unwrap();
    let count = |pid, cgroup_path: Option<&str>, actual, count| ActiveCount {
        pid,
        cgroup_path: cgroup_path.map(str::to_owned),
        dst: db,
        actual,
        count,
    };
    s.apply(
        Event::ActiveConnections(vec![
            count(1, None, db, 2),
            count(1, None, upstream, 1),
            // A process the registry does not know: its cgroup at connect places it.
            count(77, Some(b), db, 3),
            // Known by pid: the pid wins over the cgroup the kernel saw at connect.
            count(2, Some(a), db, 1),
            // Neither: not counted anywhere.
            count(78, None, db, 5),
        ]),
        now,
    );
    let of = |s: &State, key: &str| {
        s.active_connections_of(key)
            .map(|m| {
                let mut v: Vec<_> = m.iter().map(|(k, n)| (k.1, *n)).collect();
                v.sort();
                v
            })
            .unwrap_or_default()
    };
    assert_eq!(of(&s, a), [(db, 2), (upstream, 1)]);
    assert_eq!(of(&s, b), [(db, 4)]);
    // The next dump replaces everything: a's connections closed.
    s.apply(Event::ActiveConnections(vec![count(2, None, db, 1)]), now);
    assert!(s.active_connections_of(a).is_none());
    assert_eq!(of(&s, b), [(db, 1)]);
}

#[test]
fn a_process_placed_by_cgroup_is_confirmed_by_proc_or_forgotten() {
    let now = Instant::now();
    let mut s = State::new(Duration::from_secs(300));
    let path = "/system.slice/a.service";
    s.apply(seen(1, 1, 10, path), now);
    // Placed from a kernel event alone, then seen by the /proc scan: no restart, no churn.
    s.apply(
        Event::NetInCgroup {
            pid: 7,
            cgroup_path: path.into(),
            event: NetEvent::ConnectFailed {
                dst: "10.0.0.5:80".parse().unwrap(),
            },
        },
        now,
    );
    s.apply(seen(7, 77, 0, path), now);
    assert_eq!(s.start_ticks(7), Some(77));
    // Another one whose exit event is lost: forgotten after the TTL, so the container can
    // empty and be collected.
    s.apply(
        Event::NetInCgroup {
            pid: 8,
            cgroup_path: path.into(),
            event: NetEvent::ConnectFailed {
                dst: "10.0.0.5:80".parse().unwrap(),
            },
        },
        now,
    );
    s.apply(Event::ProcessGone { pid: 1 }, now);
    s.apply(Event::ProcessGone { pid: 7 }, now);
    assert_eq!(s.container(path).unwrap().pids.len(), 1);
    s.collect_garbage(now + GHOST_TTL);
    let c = s.container(path).unwrap();
    assert!(c.pids.is_empty() && c.empty_since.is_some());
    assert_eq!(c.restarts, 0);
    assert_eq!(s.unattributed_events, 0);
}

#[test]
fn a_restart_is_counted_when_every_process_was_gone() {
    let now = Instant::now();
    let mut s = State::new(Duration::from_secs(30));
    s.apply(seen(1, 1, 10, "/system.slice/a.service"), now);
    s.apply(seen(2, 2, 10, "/system.slice/a.service"), now);
    s.apply(Event::ProcessGone { pid: 1 }, now);
    s.apply(seen(3, 3, 0, "/system.slice/a.service"), now);
    assert_eq!(
        s.container("/system.slice/a.service").unwrap().restarts,
        0,
        "never empty"
    );
    s.apply(Event::ProcessGone { pid: 2 }, now);
    s.apply(Event::ProcessGone { pid: 3 }, now);
    s.apply(seen(4, 4, 0, "/system.slice/a.service"), now);
    s.apply(Event::ProcessGone { pid: 4 }, now);
    s.apply(seen(5, 5, 0, "/system.slice/a.service"), now);
    assert_eq!(s.container("/system.slice/a.service").unwrap().restarts, 2);
}

#[test]
fn runs_are_counted_by_the_cgroup_directory_not_by_helper_processes() {
    // Docker restarts a container twice. Each run makes /docker/<id> anew (a new inode);
    // runc's short-lived helper exits in it before the entrypoint is placed from /proc.
    let now = Instant::now();
    let mut s = State::new(Duration::from_secs(30));
    let path = format!("/docker/{ID_A}");
    let mut pid = 100;
    for run in 0..3u64 {
        s.apply(
            Event::CgroupCreated {
                cgroup_path: path.clone(),
                cgroup_inode: 5000 + run,
            },
            now,
        );
        // runc's helper: comes and goes before anything else is seen.
        s.apply(
            Event::ProcessExitInCgroup {
                pid,
                cgroup_path: path.clone(),
            },
            now,
        );
        // The entrypoint, read from /proc, then gone.
        s.apply(seen(pid + 1, pid as u64 + 1, 0, &path), now);
        s.apply(Event::ProcessGone { pid: pid + 1 }, now);
        pid += 2;
    }
    assert_eq!(s.container(&path).unwrap().restarts, 2);
}

#[test]
fn a_kubernetes_container_replaced_by_the_kubelet_is_one_restart_of_its_name() {
    // The kubelet replaces a crashed container: new runtime id, new cgroup, same pod and
    // container name. The name's series count the replacement as a restart and keep the OOM
    // kill the first cgroup counted; one series per name throughout.
    let t0 = Instant::now();
    let mut s = State::new(Duration::from_secs(30));
    let pod = [
        ("io.kubernetes.pod.namespace", "shop"),
        ("io.kubernetes.pod.name", "web-7d4b9c8f6d-x2x9q"),
        ("io.kubernetes.container.name", "app"),
    ];
    let name = "/k8s/shop/web-7d4b9c8f6d-x2x9q/app";
    let first = format!("/kubepods/besteffort/pod1/{ID_A}");
    let second = format!("/kubepods/besteffort/pod1/{ID_B}");
    s.apply(seen(10, 10, 0, &first), t0);
    s.apply(found(&first, "app", &pod), t0);
    s.apply(Event::OomKill { pid: 10 }, t0);
    s.apply(Event::ProcessGone { pid: 10 }, t0);
    let counts = |s: &State, now| -> Vec<(u64, u64)> {
        s.exported(&filters(0), now)
            .iter()
            .map(|c| s.lifetime_counts(c))
            .collect()
    };
    assert_eq!(counts(&s, t0), vec![(0, 1)]);
    // CrashLoopBackOff: the old cgroup is collected before the new one starts.
    let t1 = t0 + Duration::from_secs(31);
    assert_eq!(s.collect_garbage(t1), 1);
    let t2 = t0 + Duration::from_secs(120);
    s.apply(seen(11, 11, 0, &second), t2);
    s.apply(found(&second, "app", &pod), t2);
    assert_eq!(exported_names(&s, &filters(0), t2), vec![name]);
    assert_eq!(counts(&s, t2), vec![(1, 1)]);
    // Replaced again while the previous one is still in its grace period.
    s.apply(Event::ProcessGone { pid: 11 }, t2);
    let third = format!("/kubepods/besteffort/pod1/{}", "ab".repeat(32));
    s.apply(seen(12, 12, 0, &third), t2);
    s.apply(found(&third, "app", &pod), t2);
    assert_eq!(exported_names(&s, &filters(0), t2), vec![name]);
    assert_eq!(counts(&s, t2), vec![(2, 1)]);
    // A name gone for longer than the retention starts over.
    s.apply(Event::ProcessGone { pid: 12 }, t2);
    let t3 = t2 + Duration::from_secs(31);
    s.collect_garbage(t3);
    s.collect_garbage(t3 + IDENTITY_RETENTION);
    let fourth = format!("/kubepods/besteffort/pod1/{}", "cd".repeat(32));
    let t4 = t3 + IDENTITY_RETENTION + Duration::from_secs(1);
    s.apply(seen(13, 13, 0, &fourth), t4);
    s.apply(found(&fourth, "app", &pod), t4);
    assert_eq!(counts(&s, t4), vec![(0, 0)]);
}

#[test]
fn a_container_started_again_after_its_grace_period_is_a_restart_of_its_name() {
    let t0 = Instant::now();
    let mut s = State::new(Duration::from_secs(30));
    let path = format!("/docker/{ID_A}");
    s.apply(seen(10, 10, 0, &path), t0);
    s.apply(found(&path, "web", &[]), t0);
    s.apply(Event::ProcessGone { pid: 10 }, t0);
    assert_eq!(s.collect_garbage(t0 + Duration::from_secs(31)), 1);
    // `docker start web` two minutes later: the same cgroup path, a new registry entry.
    let t1 = t0 + Duration::from_secs(120);
    s.apply(seen(11, 11, 0, &path), t1);
    s.apply(found(&path, "web", &[]), t1);
    let counts: Vec<_> = s
        .exported(&filters(0), t1)
        .iter()
        .map(|c| s.lifetime_counts(c))
        .collect();
    assert_eq!(counts, vec![(1, 0)]);
    // Named again while running (a metadata refresh): no new restart.
    s.apply(found(&path, "web", &[]), t1);
    let counts: Vec<_> = s
        .exported(&filters(0), t1)
        .iter()
        .map(|c| s.lifetime_counts(c))
        .collect();
    assert_eq!(counts, vec![(1, 0)]);
}

#[test]
fn a_container_its_runtime_removed_is_dropped_without_waiting_for_the_grace_period() {
    let now = Instant::now();
    let mut s = State::new(Duration::from_secs(300));
    let path = format!("/docker/{ID_A}");
    s.apply(seen(10, 10, 0, &path), now);
    let _ = s.due_lookups(now, |_| true);
    s.apply(found(&path, "web", &[]), now);
    s.apply(Event::ProcessGone { pid: 10 }, now);
    // Empty: its runtime is asked whether it still has it.
    let due = s.due_lookups(now, |_| true);
    assert_eq!(due.len(), 1);
    assert!(due[0].removal_check);
    assert!(s.due_lookups(now, |_| true).is_empty(), "in flight");
    // Still there (stopped): kept, asked again later.
    s.apply(
        Event::RemovalChecked {
            cgroup_id: path.clone(),
            exists: Some(true),
        },
        now,
    );
    assert_eq!(s.collect_garbage(now), 0);
    assert!(s.due_lookups(now, |_| true).is_empty());
    let later = now + removal::RECHECK;
    assert_eq!(s.due_lookups(later, |_| true).len(), 1);
    // Removed: gone at the next housekeeping, long before the grace period.
    s.apply(
        Event::RemovalChecked {
            cgroup_id: path.clone(),
            exists: Some(false),
        },
        later,
    );
    assert_eq!(s.collect_garbage(later), 1);
    assert!(s.container(&path).is_none());
}

#[test]
fn a_container_running_again_is_not_asked_about_removal() {
    let now = Instant::now();
    let mut s = State::new(Duration::from_secs(300));
    let path = format!("/docker/{ID_A}");
    s.apply(seen(10, 10, 0, &path), now);
    let _ = s.due_lookups(now, |_| true);
    s.apply(found(&path, "web", &[]), now);
    s.apply(Event::ProcessGone { pid: 10 }, now);
    s.apply(seen(11, 11, 0, &path), now);
    assert!(s.due_lookups(now, |_| true).is_empty());
    // A late "removed" answer for a container running again changes nothing.
    s.apply(
        Event::RemovalChecked {
            cgroup_id: path.clone(),
            exists: Some(false),
        },
        now,
    );
    assert_eq!(s.collect_garbage(now), 0);
}
