//! Privileged: cgroup creation in the unified (v2) hierarchy is reported with
//! its id and path; v1 hierarchies are not; too-long paths are counted as lost.
#![allow(clippy::unwrap_used)]

#[path = "support/privileged.rs"]
mod support;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sonde_tracer::Event;
use sonde_tracer::decode::CGROUP_PATH_MAX;
use support::{collect, privileged, start};

/// Removes the directories (deepest first) when dropped.
struct Dirs(Vec<PathBuf>);

impl Drop for Dirs {
    fn drop(&mut self) {
        for d in self.0.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
    }
}

fn require(path: &Path, reason: &str) -> bool {
    if path.exists() {
        return true;
    }
    if std::env::var("SONDE_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
        panic!("cgroup test: {reason}");
    }
    eprintln!("SKIP cgroup test: {reason}");
    false
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
    if !privileged("unified_cgroup_creation_is_reported_with_its_path") {
        return;
    }
    let unified = Path::new("/sys/fs/cgroup/unified");
    let memory = Path::new("/sys/fs/cgroup/memory");
    if !require(
        &unified.join("cgroup.procs"),
        "needs the cgroup v2 hierarchy at /sys/fs/cgroup/unified (hybrid host)",
    ) || !require(
        &memory.join("memory.limit_in_bytes"),
        "needs a cgroup v1 memory hierarchy at /sys/fs/cgroup/memory",
    ) {
        return;
    }
    let name = format!("sonde-test-{}", std::process::id());
    let v1 = memory.join(&name);
    let parent = unified.join(&name);
    let child = parent.join("child");
    // A path one byte over the limit: "/<name>/" + filler.
    let filler = "x".repeat(CGROUP_PATH_MAX + 1 - name.len() - 2);
    let too_long = parent.join(&filler);
    for d in [&too_long, &child, &parent, &v1] {
        let _ = std::fs::remove_dir(d);
    }

    let (tracer, mut stream) = start();
    let lost_before = lost_cgroup_mkdir(&tracer);
    let mut dirs = Dirs(Vec::new());
    // v1 first: the same relative path as the v2 parent, which must be the only
    // event with that path.
    for d in [&v1, &parent, &child, &too_long] {
        std::fs::create_dir(d).unwrap();
        dirs.0.push(d.clone());
    }
    let parent_id = std::fs::metadata(&parent).unwrap().ino();
    let child_id = std::fs::metadata(&child).unwrap().ino();
    let too_long_id = std::fs::metadata(&too_long).unwrap().ino();

    let prefix = format!("/{name}");
    let child_path = format!("/{name}/child");
    let events = collect(
        &mut stream,
        |e| match e {
            Event::CgroupCreated { cgroup_id, path } => {
                path.starts_with(&prefix) || [parent_id, child_id, too_long_id].contains(cgroup_id)
            }
            _ => false,
        },
        |ev| {
            ev.iter()
                .any(|e| matches!(e, Event::CgroupCreated { path, .. } if *path == child_path))
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
        ],
        "exactly the two unified cgroups, in order; none for the v1 mkdir or the too-long path"
    );
    let lost_after = lost_cgroup_mkdir(&tracer);
    assert!(
        lost_after > lost_before,
        "the too-long path must be counted as lost ({lost_before} -> {lost_after})"
    );
}
