//! sonde-volumes: the mounts a container writes its data to, and what backs them.
//!
//! - [`parse_mountinfo`]: `/proc/<pid>/mountinfo` lines -> [`Mount`]s (pure).
//! - [`is_data_mount`]: which of them carry data worth a `container_resources_disk_*` series:
//!   writable mounts of a block device, not the runtime's bind-mounted `/etc/hosts` and friends.
//! - [`statfs`]: capacity, used and reserved bytes of a mounted file system.
//! - [`BlockDevices`]: a device number (`MAJ:MIN` of a partition or a whole disk) -> the whole
//!   disk's name and number under `/sys/dev/block`, which is how cgroups account block I/O.
//!
//! A leaf crate: it knows nothing of containers or cgroups; the registry composes it.

mod block;
mod mountinfo;
mod statfs;

pub use block::{BlockDevices, Disk};
pub use mountinfo::{Mount, is_data_mount, parse_mountinfo};
pub use statfs::{FsStat, statfs};

use std::io;
use std::path::PathBuf;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or mount could not be read or stat'ed.
    #[error("cannot read {path}")]
    Io {
        /// What was read.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The path holds a NUL byte and cannot be passed to the kernel.
    #[error("path {path:?} contains a NUL byte")]
    NulInPath {
        /// The offending path.
        path: PathBuf,
    },
}

impl Error {
    /// True when the file is gone (the process exited, the mount went away): normal churn.
    pub fn is_not_found(&self) -> bool {
        match self {
            Error::Io { source, .. } => {
                source.kind() == io::ErrorKind::NotFound
                    || source.raw_os_error() == Some(libc::ESRCH)
            }
            Error::NulInPath { .. } => false,
        }
    }
}
