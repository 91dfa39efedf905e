//! Log sources: file tailing ([`tail`]), the per-source decoding pipeline ([`pipeline`]),
//! journald ([`journald`]) and discovery of the log files a process writes ([`open_log_files`]).
//!
//! Everything here does I/O on paths it is given; the roots (`/proc`, the host root) are always
//! injected so tests run on temp-dir trees. [`crate::LogManager`] ties the parts together.

pub mod journald;
mod openfiles;
pub mod pipeline;
pub mod tail;

pub use openfiles::open_log_files;

use std::path::{Path, PathBuf};

/// The `source` label of container stdout/stderr logs (Docker json-file and CRI), as
/// coroot-node-agent names it.
pub const SOURCE_STDOUT_STDERR: &str = "stdout/stderr";
/// The `source` label of journald entries.
pub const SOURCE_JOURNALD: &str = "journald";

/// One log source of a container.
///
/// Paths are as the host sees them (`/var/lib/docker/containers/<id>/<id>-json.log`,
/// `/var/log/pods/...`, `/var/log/nginx/error.log`); the manager opens them under
/// [`crate::LogManagerConfig::host_root`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LogSpec {
    /// Docker's json-file log (path from the container's metadata, `LogPath`).
    DockerJson(PathBuf),
    /// A CRI log file (containerd, CRI-O; path from the runtime).
    Cri(PathBuf),
    /// A plain text file (source label = the path).
    File(PathBuf),
}

impl LogSpec {
    /// The path of the log file, as given.
    pub fn path(&self) -> &Path {
        match self {
            LogSpec::DockerJson(p) | LogSpec::Cri(p) | LogSpec::File(p) => p,
        }
    }

    /// The `source` label of the messages it yields: "stdout/stderr" for container runtime
    /// logs, the path for plain files (coroot-node-agent's values).
    pub fn source_label(&self) -> String {
        match self {
            LogSpec::DockerJson(_) | LogSpec::Cri(_) => SOURCE_STDOUT_STDERR.to_owned(),
            LogSpec::File(p) => p.to_string_lossy().into_owned(),
        }
    }
}

/// `path` under `root`: `/host` + `/var/log/x` = `/host/var/log/x` (a relative `path` is taken
/// as relative to `root` too).
pub fn under_root(root: &Path, path: &Path) -> PathBuf {
    let rel = path.strip_prefix("/").unwrap_or(path);
    root.join(rel)
}

/// Errors of the log sources.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading a file or directory failed.
    #[error("reading {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The journal could not be opened or read.
    #[error("reading the journal under {roots:?}")]
    Journal {
        roots: Vec<PathBuf>,
        #[source]
        source: sdjournal::SdJournalError,
    },
}
