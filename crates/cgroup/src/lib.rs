//! cgroup knowledge for sonde: parsing `/proc/<pid>/cgroup`, classifying a cgroup path into a
//! container kind (mirroring coroot-node-agent's `containerByCgroup`), and reading per-cgroup
//! CPU, memory and PSI figures from cgroup v1, v2 or hybrid hierarchies.
//!
//! Everything here is synchronous and knows nothing about containers beyond their cgroup paths;
//! the registry composes it. All file system access goes through [`CgroupFs`], whose root is
//! injectable so tests build fake trees in temp dirs.

mod classify;
mod fs;
mod proc_cgroups;

use std::io;
use std::path::PathBuf;

pub use classify::{ContainerKind, Runtime, classify};
pub use fs::{CgroupFs, CpuStat, DeviceIo, Layout, MemoryStat, Pressure, PressureResource};
pub use proc_cgroups::ProcessCgroups;

/// Errors of this crate. [`Error::NotFound`] means "the cgroup (or process) is gone", which is
/// normal churn; every other variant means something is really wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `/proc/<pid>/cgroup` held no valid `id:controllers:/path` line (empty or garbage).
    #[error("no valid cgroup line in /proc/<pid>/cgroup content")]
    EmptyProcCgroup,
    /// Nothing that looks like a cgroup hierarchy is mounted under the given root.
    #[error("no cgroup v1 or v2 hierarchy found under {root}")]
    NoHierarchy {
        /// The root that was probed (normally /sys/fs/cgroup).
        root: PathBuf,
    },
    /// The process has no path in any hierarchy that can serve this resource on this host
    /// (e.g. no `memory` line in its /proc/<pid>/cgroup on a v1 host).
    #[error("process has no cgroup path for {controller} on this host")]
    NoController {
        /// The controller (or "unified") that was needed.
        controller: &'static str,
    },
    /// The file does not exist (ENOENT) or the cgroup was removed while reading (ENODEV):
    /// the cgroup vanished, the caller should drop it quietly.
    #[error("{path} not found (cgroup removed?)")]
    NotFound {
        /// The file that was missing.
        path: PathBuf,
    },
    /// Any other I/O error.
    #[error("failed to read {path}")]
    Io {
        /// The file that failed.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The file exists but its content is not what the kernel writes.
    #[error("malformed {path}: {reason}")]
    Parse {
        /// The file that was malformed.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
}

impl Error {
    /// True when the error only means that the cgroup (or its file) is gone.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    fn from_io(path: PathBuf, source: io::Error) -> Error {
        // ENODEV: the file was opened but the cgroup was rmdir'ed under us.
        if source.kind() == io::ErrorKind::NotFound || source.raw_os_error() == Some(19) {
            Error::NotFound { path }
        } else {
            Error::Io { path, source }
        }
    }
}
