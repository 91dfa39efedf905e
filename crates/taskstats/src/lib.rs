//! Delay accounting for sonde: how long processes waited for a CPU and for block I/O.
//!
//! Three sources, all leaves with no knowledge of containers:
//! - [`TaskstatsClient`]: the generic-netlink `TASKSTATS` family, queried per thread group
//!   (`TASKSTATS_CMD_ATTR_TGID`). Needs root, the host pid namespace (pids are resolved in the
//!   caller's), and on older kernels the host network namespace (the family is registered
//!   only there; [`TaskstatsClient::new_in_netns`] opens the socket in pid 1's).
//! - [`schedstat_cpu_delay_ns`]: the CPU run-queue wait from `/proc/<pid>/task/*/schedstat`,
//!   available even when delay accounting is off (`kernel.task_delayacct=0`).
//! - [`delayacct_enabled`] / [`enable_delayacct`]: the `kernel.task_delayacct` sysctl.
//! - [`DelayReader`]: the per-process read policy over the two sources.
//!
//! [`DelayAccumulator`] turns per-process readings into per-container monotonic totals
//! (pure, no I/O). See docs/taskstats.md for the accounting rules and their loss bounds.

mod accumulator;
mod client;
mod decode;
mod procfs;
mod reader;

use std::io;
use std::path::PathBuf;
use std::time::Duration;

pub use accumulator::{ContainerDelays, DelayAccumulator};
pub use client::{DEFAULT_TIMEOUT, TaskstatsClient};
pub use decode::decode_taskstats;
pub use procfs::{
    DELAYACCT_FIX_HINT, delayacct_enabled, enable_delayacct, process_start_time,
    schedstat_cpu_delay_ns,
};
pub use reader::DelayReader;

/// Delay totals of one process (thread group), in nanoseconds since it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TaskDelays {
    /// Time runnable but waiting for a CPU (`cpu_delay_total`).
    pub cpu_delay_ns: u64,
    /// Time waiting for synchronous block I/O (`blkio_delay_total`).
    pub blkio_delay_ns: u64,
    /// `struct taskstats` version the values were decoded from (0 when not from taskstats,
    /// e.g. the schedstat fallback).
    pub version: u16,
}

/// Errors of this crate. Every variant names what was being done.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The netlink socket could not be created, bound or connected.
    #[error("opening the NETLINK_GENERIC socket ({step})")]
    Socket {
        /// Which step failed (`open`, `bind`, `connect`, `set SO_RCVTIMEO on`).
        step: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Entering a network namespace to open the socket there failed.
    #[error("entering network namespace {path}")]
    Netns {
        /// The namespace file (e.g. `/proc/1/ns/net`).
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Sending a request failed.
    #[error("sending the {what} request")]
    Send {
        /// `family lookup` or `taskstats tgid <n>`.
        what: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Receiving a reply failed.
    #[error("receiving the {what} reply")]
    Recv {
        /// `family lookup` or `taskstats tgid <n>`.
        what: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// No reply within the socket's receive timeout.
    #[error("no reply to the {what} request within {timeout:?}")]
    Timeout {
        /// `family lookup` or `taskstats tgid <n>`.
        what: String,
        /// The receive timeout in force.
        timeout: Duration,
    },
    /// The kernel has no `TASKSTATS` generic-netlink family in this network namespace.
    #[error(
        "generic netlink family TASKSTATS not found: the kernel lacks CONFIG_TASKSTATS, or the \
         socket is not in the host network namespace (run with hostNetwork, or open it after \
         setns to /proc/1/ns/net)"
    )]
    FamilyNotFound,
    /// The kernel answered with a netlink error other than "no such process".
    #[error("the kernel answered the {what} request with error {errno}")]
    Kernel {
        /// `family lookup` or `taskstats tgid <n>`.
        what: String,
        /// The positive errno value.
        errno: i32,
        /// The errno as an I/O error, for its text.
        #[source]
        source: io::Error,
    },
    /// A reply did not have the expected netlink / generic-netlink shape.
    #[error("malformed reply to the {what} request: {reason}")]
    Malformed {
        /// `family lookup` or `taskstats tgid <n>`.
        what: String,
        /// What was wrong.
        reason: String,
    },
    /// A `struct taskstats` payload shorter than its version's delay fields.
    #[error("taskstats payload of version {version} is {len} bytes, needs at least {needed}")]
    Truncated {
        /// The version field of the payload (0 when even that was missing).
        version: u16,
        /// Bytes received.
        len: usize,
        /// Bytes the version's layout needs.
        needed: usize,
    },
    /// A `struct taskstats` payload whose version field is 0 or implausibly large (garbage).
    #[error("taskstats payload has an implausible version {version}")]
    BadVersion {
        /// The version field read.
        version: u16,
    },
    /// Reading a procfs file failed (other than the process being gone).
    #[error("reading {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Writing a procfs file failed.
    #[error("writing {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A procfs file did not have the expected format.
    #[error("parsing {path}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
}

impl From<sonde_netlink::Error> for Error {
    fn from(e: sonde_netlink::Error) -> Error {
        Error::Socket {
            step: e.step,
            source: e.source,
        }
    }
}
