//! Real cgroups made for a test: created in every hierarchy the host has (v1 controllers and the
//! unified one), a process moved in, everything removed on drop.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Child;

const ROOT: &str = "/sys/fs/cgroup";

/// A test cgroup at the same relative path in every hierarchy.
pub struct TestCgroup {
    /// Relative path, e.g. "/system.slice/sonde-test-42.service".
    pub path: String,
    /// Directories created, deepest last (removed in reverse).
    created: Vec<PathBuf>,
    /// The leaf directory in each hierarchy.
    leaves: Vec<PathBuf>,
    children: Vec<Child>,
}

/// The hierarchies mounted under /sys/fs/cgroup: the root itself on a pure v2 host, else each
/// v1 controller directory plus `unified` when present.
pub fn hierarchies() -> Vec<PathBuf> {
    let root = Path::new(ROOT);
    if root.join("cgroup.controllers").exists() {
        return vec![root.to_path_buf()];
    }
    let mut out = Vec::new();
    for name in ["cpu", "cpuacct", "memory", "pids", "blkio", "unified"] {
        let dir = root.join(name);
        // Combined mounts (cpu,cpuacct) appear twice through symlinks: keep one.
        if let Ok(real) = fs::canonicalize(&dir)
            && (real.join("cgroup.procs").exists())
            && !out
                .iter()
                .any(|p: &PathBuf| fs::canonicalize(p).ok().as_ref() == Some(&real))
        {
            out.push(dir);
        }
    }
    out
}

impl TestCgroup {
    /// Creates `path` (absolute within each hierarchy) everywhere.
    pub fn create(path: &str) -> std::io::Result<TestCgroup> {
        let mut cg = TestCgroup {
            path: path.to_owned(),
            created: Vec::new(),
            leaves: Vec::new(),
            children: Vec::new(),
        };
        for h in hierarchies() {
            let mut dir = h.clone();
            for part in path.trim_start_matches('/').split('/') {
                dir.push(part);
                // Another test (or process) may make a shared parent such as system.slice at
                // the same moment: that one is theirs, not ours to remove.
                match fs::create_dir(&dir) {
                    Ok(()) => cg.created.push(dir.clone()),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(e),
                }
            }
            cg.leaves.push(dir);
        }
        Ok(cg)
    }

    /// The leaf directory of a v1 controller (or the unified one on pure v2).
    pub fn dir(&self, controller: &str) -> Option<&Path> {
        self.leaves
            .iter()
            .find(|d| {
                d.strip_prefix(ROOT)
                    .ok()
                    .and_then(|rel| rel.components().next())
                    .is_some_and(|c| c.as_os_str() == controller)
            })
            .or(if Path::new(ROOT).join("cgroup.controllers").exists() {
                self.leaves.first()
            } else {
                None
            })
            .map(PathBuf::as_path)
    }

    /// Writes `value` to `file` of `controller`'s leaf.
    pub fn write(&self, controller: &str, file: &str, value: &str) -> std::io::Result<()> {
        let dir = self
            .dir(controller)
            .ok_or_else(|| std::io::Error::other(format!("no {controller} hierarchy")))?;
        fs::write(dir.join(file), value)
    }

    /// Moves a process into this cgroup in every hierarchy.
    pub fn add_pid(&self, pid: u32) -> std::io::Result<()> {
        for leaf in &self.leaves {
            fs::write(leaf.join("cgroup.procs"), pid.to_string())?;
        }
        Ok(())
    }

    /// Makes `cmd`'s process move itself into this cgroup between fork and exec, so its
    /// program never runs anywhere else (a process moved after `spawn` has already run in the
    /// caller's cgroup, where the agent may have placed it). Between fork and the move it is
    /// in the caller's cgroup, tens of ms under load: as runc's forks are, and the agent's
    /// /proc scan leaves processes that young to its next scan (crates/registry/src/discovery.rs).
    pub fn spawn_into(&self, cmd: &mut std::process::Command) {
        use std::os::unix::process::CommandExt;
        let procs = self.procs_files();
        // SAFETY: the closure runs in the forked child before exec; it only writes to files
        // (no allocation: the paths were built before the fork, the buffer is static).
        unsafe {
            cmd.pre_exec(move || {
                for p in &procs {
                    fs::write(p, b"0")?;
                }
                Ok(())
            });
        }
    }

    /// `/system.slice/sonde-<kind>-<test pid>.service` (a systemd-service-shaped path,
    /// exported under that container_id) with a long-lived `sleep` in it: a container whose
    /// short-lived processes come and go is never empty, so the agent keeps it (and its
    /// series) for the whole test.
    pub fn service_with_keeper(kind: &str) -> TestCgroup {
        let path = format!("/system.slice/sonde-{kind}-{}.service", std::process::id());
        let mut cg =
            TestCgroup::create(&path).unwrap_or_else(|e| panic!("create cgroup {path}: {e}"));
        let mut keeper = std::process::Command::new("sleep");
        keeper.arg("600");
        cg.spawn_into(&mut keeper);
        let child = keeper.spawn().expect("spawn sleep");
        cg.own(child);
        cg
    }

    /// This cgroup's `cgroup.procs` file in every hierarchy: what a process writes its pid to
    /// to move itself in (a shell's `echo $$ > ...`).
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.leaves.iter().map(|l| l.join("cgroup.procs")).collect()
    }

    /// Keeps a child process to kill on drop.
    pub fn own(&mut self, child: Child) {
        self.children.push(child);
    }

    /// Kills the owned children (the cgroup stays until drop).
    pub fn kill_children(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.children.clear();
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        self.kill_children();
        for leaf in &self.leaves {
            // Anything left (grandchildren) goes back to the root so the directory can go.
            if let Ok(procs) = fs::read_to_string(leaf.join("cgroup.procs")) {
                let root_procs = leaf
                    .ancestors()
                    .find(|a| a.parent() == Some(Path::new(ROOT)) || *a == Path::new(ROOT))
                    .map(|h| h.join("cgroup.procs"));
                for pid in procs.lines() {
                    // SAFETY: kill has no memory-safety preconditions.
                    if let Ok(p) = pid.parse::<i32>() {
                        unsafe { libc::kill(p, libc::SIGKILL) };
                    }
                    if let Some(rp) = &root_procs {
                        let _ = fs::write(rp, pid);
                    }
                }
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        for dir in self.created.iter().rev() {
            let _ = fs::remove_dir(dir);
        }
    }
}
