//! Privileged: cgroup creation in the unified (v2) hierarchy is reported with
//! its id and path; v1 hierarchies are not; too-long paths are counted as lost.
#![allow(clippy::unwrap_used)]

#[path = "support/privileged.rs"]
mod support;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sonde_tracer::Event;
use sonde_tracer::decode::CGROUP_PATH_MAX;
use support::{SockState, collect, privileged, start_with};

/// Removes the directories (deepest first) when dropped.
struct Dirs(Vec<PathBuf>);

impl Drop for Dirs {
    fn drop(&mut self) {
        for d in self.0.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// True when `path` exists; otherwise skips `test` (a failure under SONDE_REQUIRE_PRIVILEGED=1:
/// CI's machine is a hybrid host).
fn require(test: &str, path: &Path, reason: &str) -> bool {
    path.exists() || {
        support::skip(test, reason);
        false
    }
}

fn lost_cgroup_mkdir(tracer: &sonde_tracer::Tracer) -> u64 {
    tracer
        .lost_events()
        .into_iter()
        .find(|(name, _)| *name == "cgroup_mkdir")
        .map(|(_, n)| n)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unified_cgroup_creation_is_reported_with_its_path() {
    let test = "unified_cgroup_creation_is_reported_with_its_path";
    if privileged(test) {
        cgroup_creation(test, SockState::TpBtf).await;
    }
}

/// The same through the classic-tracepoint fallback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unified_cgroup_creation_is_reported_with_its_path_classic() {
    let test = "unified_cgroup_creation_is_reported_with_its_path_classic";
    if privileged(test) {
        cgroup_creation(test, SockState::Classic).await;
    }
}

async fn cgroup_creation(test: &str, program: SockState) {
    let unified = Path::new("/sys/fs/cgroup/unified");
    let memory = Path::new("/sys/fs/cgroup/memory");
    if !require(
        test,
        &unified.join("cgroup.procs"),
        "needs the cgroup v2 hierarchy at /sys/fs/cgroup/unified (hybrid host)",
    ) || !require(
        test,
        &memory.join("memory.limit_in_bytes"),
        "needs a cgroup v1 memory hierarchy at /sys/fs/cgroup/memory",
    ) {
        return;
    }
    let name = format!("sonde-test-{}-{program:?}", std::process::id());
    let v1 = memory.join(&name);
    let parent = unified.join(&name);
    let child = parent.join("child");
    // "/<name>/" + filler: a path of exactly the limit, and one byte over it.
    let at_limit = parent.join("y".repeat(CGROUP_PATH_MAX - name.len() - 2));
    let too_long = parent.join("x".repeat(CGROUP_PATH_MAX + 1 - name.len() - 2));
    for d in [&too_long, &at_limit, &child, &parent, &v1] {
        let _ = std::fs::remove_dir(d);
    }

    let (tracer, mut stream) = start_with(program);
    assert_eq!(
        tracer.attached_programs().contains(&"cgroup_mkdir_btf"),
        program == SockState::TpBtf,
        "the {program:?} cgroup_mkdir program is attached (see the log for why not)"
    );
    let lost_before = lost_cgroup_mkdir(&tracer);
    let mut dirs = Dirs(Vec::new());
    // v1 first: the same relative path as the v2 parent, which must be the only
    // event with that path.
    for d in [&v1, &parent, &child, &too_long, &at_limit] {
        std::fs::create_dir(d).unwrap();
        dirs.0.push(d.clone());
    }
    let parent_id = std::fs::metadata(&parent).unwrap().ino();
    let child_id = std::fs::metadata(&child).unwrap().ino();
    let at_limit_id = std::fs::metadata(&at_limit).unwrap().ino();
    let too_long_id = std::fs::metadata(&too_long).unwrap().ino();

    let prefix = format!("/{name}");
    let child_path = format!("/{name}/child");
    let at_limit_path = at_limit
        .to_str()
        .unwrap()
        .trim_start_matches("/sys/fs/cgroup/unified")
        .to_string();
    assert_eq!(at_limit_path.len(), CGROUP_PATH_MAX);
    let ids = [parent_id, child_id, at_limit_id, too_long_id];
    let events = collect(
        &mut stream,
        |e| match e {
            Event::CgroupCreated { cgroup_id, path } => {
                path.starts_with(&prefix) || ids.contains(cgroup_id)
            }
            _ => false,
        },
        |ev| {
            ev.iter()
                .any(|e| matches!(e, Event::CgroupCreated { path, .. } if *path == at_limit_path))
        },
    )
    .await;

    assert_eq!(
        events,
        vec![
            Event::CgroupCreated {
                cgroup_id: parent_id,
                path: prefix.clone(),
            },
            Event::CgroupCreated {
                cgroup_id: child_id,
                path: child_path.clone(),
            },
            Event::CgroupCreated {
                cgroup_id: at_limit_id,
                path: at_limit_path.clone(),
            },
        ],
        "exactly the three unified cgroups, in order (the longest path that fits included); \
         none for the v1 mkdir or the too-long path"
    );
    let lost_after = lost_cgroup_mkdir(&tracer);
    assert!(
        lost_after > lost_before,
        "the too-long path must be counted as lost ({lost_before} -> {lost_after})"
    );
}
