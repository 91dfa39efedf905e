//! Privileged: process lifecycle and a real OOM kill in a cgroup v1 memory cgroup
//! (with the same path in the unified hierarchy, whose id the event must carry).
#![allow(clippy::unwrap_used)]

#[path = "support/privileged.rs"]
mod support;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use sonde_tracer::Event;
use support::{SockState, collect, privileged, start, start_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_start_and_exit_code() {
    if privileged("child_start_and_exit_code") {
        start_and_exit(SockState::TpBtf).await;
    }
}

/// The same through the classic-tracepoint fallbacks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_start_and_exit_code_classic() {
    if privileged("child_start_and_exit_code_classic") {
        start_and_exit(SockState::Classic).await;
    }
}

/// Starts the tracer with the tp_btf or the classic process programs, and
/// checks those are the ones attached.
fn start_process_tracing(program: SockState) -> (sonde_tracer::Tracer, sonde_tracer::EventStream) {
    let (tracer, stream) = start_with(program);
    for name in ["task_newtask_btf", "sched_process_exit_btf"] {
        assert_eq!(
            tracer.attached_programs().contains(&name),
            program == SockState::TpBtf,
            "{name} attached for {program:?} (see the log for why not)"
        );
    }
    (tracer, stream)
}

async fn start_and_exit(program: SockState) {
    let (_tracer, mut stream) = start_process_tracing(program);
    let mut child = Command::new("sh").args(["-c", "exit 3"]).spawn().unwrap();
    let pid = child.id();
    assert_eq!(child.wait().unwrap().code(), Some(3));

    let events = collect(
        &mut stream,
        |e| matches!(e, Event::ProcessStart { pid: p, .. } | Event::ProcessExit { pid: p, .. } if *p == pid),
        |ev| ev.iter().any(|e| matches!(e, Event::ProcessExit { .. })),
    )
    .await;
    let starts: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, Event::ProcessStart { .. }))
        .collect();
    assert_eq!(starts.len(), 1, "{events:?}");
    assert!(
        matches!(starts[0], Event::ProcessStart { ppid, cgroup_id, .. } if *ppid == std::process::id() && *cgroup_id != 0)
    );
    let &Event::ProcessStart {
        cgroup_id: parent_cgroup,
        ..
    } = starts[0]
    else {
        unreachable!()
    };
    let exits: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, Event::ProcessExit { .. }))
        .collect();
    assert_eq!(
        exits,
        vec![&Event::ProcessExit {
            pid,
            exit_code: 3,
            cgroup_id: parent_cgroup
        }],
        "one exit per process, with its code and the cgroup it ended in (never moved)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_are_not_processes() {
    if privileged("threads_are_not_processes") {
        threads(SockState::TpBtf).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_are_not_processes_classic() {
    if privileged("threads_are_not_processes_classic") {
        threads(SockState::Classic).await;
    }
}

async fn threads(program: SockState) {
    let (_tracer, mut stream) = start_process_tracing(program);
    // A process with 4 extra threads: one start, one exit.
    let script = "import threading,time\nts=[threading.Thread(target=time.sleep,args=(0.2,)) for _ in range(4)]\n[t.start() for t in ts]\n[t.join() for t in ts]\nraise SystemExit(5)";
    let status = Command::new("python3").args(["-c", script]).spawn();
    let Ok(mut child) = status else {
        support::skip("threads_are_not_processes", "python3 not available");
        return;
    };
    let pid = child.id();
    assert_eq!(child.wait().unwrap().code(), Some(5));
    let events = collect(
        &mut stream,
        |e| match e {
            Event::ProcessStart { pid: p, ppid, .. } => *p == pid || *ppid == pid,
            Event::ProcessExit { pid: p, .. } => *p == pid,
            _ => false,
        },
        |ev| ev.iter().any(|e| matches!(e, Event::ProcessExit { .. })),
    )
    .await;
    // pyenv shims may exec, but never fork threads as processes.
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, Event::ProcessExit { .. }))
            .count(),
        1,
        "{events:?}"
    );
    assert!(
        events.iter().any(
            |e| matches!(e, Event::ProcessExit { pid: p, exit_code: 5, cgroup_id } if *p == pid && *cgroup_id != 0)
        ),
        "{events:?}"
    );
}

struct Cgroup(PathBuf);

impl Drop for Cgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oom_kill_is_reported_exactly_once() {
    if !privileged("oom_kill_is_reported_exactly_once") {
        return;
    }
    let memory = Path::new("/sys/fs/cgroup/memory");
    if !memory.join("memory.limit_in_bytes").exists() {
        support::skip(
            "oom_kill_is_reported_exactly_once",
            "needs a cgroup v1 memory hierarchy at /sys/fs/cgroup/memory",
        );
        return;
    }
    // The unified (v2) hierarchy: /sys/fs/cgroup/unified on a hybrid host.
    let unified_root = Path::new("/sys/fs/cgroup/unified");
    if !unified_root.join("cgroup.procs").exists() {
        support::skip(
            "oom_kill_is_reported_exactly_once",
            "needs the cgroup v2 hierarchy at /sys/fs/cgroup/unified (hybrid host)",
        );
        return;
    }
    let name = format!("sonde-test-{}", std::process::id());
    let cg = Cgroup(memory.join(&name));
    let _ = std::fs::remove_dir(&cg.0);
    std::fs::create_dir(&cg.0).unwrap();
    std::fs::write(cg.0.join("memory.limit_in_bytes"), "33554432").unwrap();
    let _ = std::fs::write(cg.0.join("memory.swappiness"), "0");
    let unified = Cgroup(unified_root.join(&name));
    let _ = std::fs::remove_dir(&unified.0);
    std::fs::create_dir(&unified.0).unwrap();
    // The cgroup v2 id is the inode number of the cgroup's directory.
    let unified_id = std::fs::metadata(&unified.0).unwrap().ino();
    assert_ne!(unified_id, 1, "a fresh cgroup is not the root");

    let (tracer, mut stream) = start();
    // The shell moves itself into both cgroups, then becomes `tail`, which
    // keeps the endless line of /dev/zero in memory until the OOM killer ends it.
    let script = format!(
        "echo $$ > {}/cgroup.procs && echo $$ > {}/cgroup.procs && exec tail /dev/zero",
        unified.0.display(),
        cg.0.display()
    );
    let mut child = Command::new("sh").args(["-c", &script]).spawn().unwrap();
    let pid = child.id();
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.signal(),
        Some(9),
        "killed by the OOM killer: {status:?}"
    );

    let events = collect(
        &mut stream,
        |e| matches!(e, Event::OomKill { pid: p, .. } | Event::ProcessExit { pid: p, .. } if *p == pid),
        |ev| ev.iter().any(|e| matches!(e, Event::ProcessExit { .. })),
    )
    .await;
    let ooms: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, Event::OomKill { .. }))
        .collect();
    assert_eq!(
        ooms,
        vec![&Event::OomKill {
            pid,
            cgroup_id: unified_id
        }],
        "exactly one OOM kill, carrying the victim's cgroup v2 id"
    );
    // Kernels whose mark_victim passes the task (total_vm in the event) must
    // get the raw tracepoint program, which reads the victim's own cgroup.
    let format = std::fs::read_to_string("/sys/kernel/tracing/events/oom/mark_victim/format")
        .unwrap_or_default();
    if format.contains("total_vm") {
        assert!(
            tracer.oom_cgroup_is_victims(),
            "raw_tp oom program should be attached on this kernel"
        );
    }
    assert!(
        events.contains(&Event::ProcessExit {
            pid,
            exit_code: 137,
            cgroup_id: unified_id
        }),
        "{events:?}"
    );
    let oom_control = std::fs::read_to_string(cg.0.join("memory.oom_control")).unwrap();
    assert!(oom_control.contains("oom_kill 1"), "{oom_control}");
}
