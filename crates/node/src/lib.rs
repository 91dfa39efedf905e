//! Node-level readers for sonde's `node_*` metrics: CPU, memory, disks, network interfaces,
//! uptime, hostname and kernel from /proc and /sys, plus the machine id and DMI system uuid the
//! backend joins on.
//!
//! Every reader takes its roots from [`NodePaths`], so tests point them at fake trees. Pure
//! parsers live in [`procfs`]; sysfs and interface-address logic in [`net`].

pub mod net;
pub mod procfs;

use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use net::{AddressSource, SystemAddresses};

/// Where to read: procfs root (default /proc), sysfs root (default /sys), host root (default "/", used
/// for /etc/machine-id). In a container the agent is given the host's /proc; host root = <procfs>/1/root.
#[derive(Debug, Clone)]
pub struct NodePaths {
    /// procfs mount (the host's, when the agent runs in a container).
    pub procfs: PathBuf,
    /// sysfs mount.
    pub sysfs: PathBuf,
    /// The host's root file system (for /etc/machine-id).
    pub host_root: PathBuf,
}

impl Default for NodePaths {
    fn default() -> Self {
        NodePaths {
            procfs: PathBuf::from("/proc"),
            sysfs: PathBuf::from("/sys"),
            host_root: PathBuf::from("/"),
        }
    }
}

impl NodePaths {
    /// Paths for an agent given the host's procfs at `procfs` (e.g. /host/proc): the host's root
    /// file system is reached through pid 1's root, sysfs stays /sys.
    pub fn with_host_procfs(procfs: impl Into<PathBuf>) -> NodePaths {
        let procfs = procfs.into();
        let host_root = procfs.join("1/root");
        NodePaths {
            procfs,
            sysfs: PathBuf::from("/sys"),
            host_root,
        }
    }
}

/// Errors of the node readers. Clone so a [`NodeSnapshot`] (which keeps them) is Clone.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// A file could not be read (missing, permission, ...).
    #[error("failed to read {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: Arc<io::Error>,
    },
    /// A file's content is not what the kernel writes.
    #[error("malformed {path}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// Listing interface addresses (getifaddrs) failed.
    #[error("failed to list interface addresses")]
    Addresses {
        /// The underlying error.
        #[source]
        source: Arc<io::Error>,
    },
}

/// One full read of everything node_* needs. Each part is independent: a part that fails is None/empty
/// and its error is in `errors` (so one bad file never blanks the rest).
#[derive(Debug, Clone, Default)]
pub struct NodeSnapshot {
    /// /proc/sys/kernel/hostname
    pub hostname: Option<String>,
    /// /proc/sys/kernel/osrelease
    pub kernel_version: Option<String>,
    /// /proc/uptime, first field.
    pub uptime_seconds: Option<f64>,
    /// /proc/stat "cpu" line, USER_HZ=100 -> seconds.
    pub cpu: Option<CpuTimes>,
    /// Count of cpuN lines in /proc/stat.
    pub logical_cores: Option<u32>,
    /// /proc/meminfo.
    pub memory: Option<MemInfo>,
    /// /proc/diskstats, whole physical disks only (see [`procfs::is_physical_disk`]).
    pub disks: Vec<DiskStats>,
    /// /proc/net/dev for the interfaces [`net::is_reported_interface`] accepts.
    pub interfaces: Vec<InterfaceStats>,
    /// Kernel activity counters of /proc/stat (ctxt, intr, processes).
    pub activity: Option<procfs::StatCounters>,
    /// Paging and swapping counters of /proc/vmstat.
    pub vmstat: Option<procfs::VmStat>,
    /// Everything that failed during this read.
    pub errors: Vec<Error>,
}

/// Node CPU time per mode since boot, seconds.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[allow(missing_docs)]
pub struct CpuTimes {
    pub user: f64,
    pub nice: f64,
    pub system: f64,
    pub idle: f64,
    pub iowait: f64,
    pub irq: f64,
    pub softirq: f64,
    pub steal: f64,
}

/// Node memory, bytes (/proc/meminfo kB x 1024).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemInfo {
    /// MemTotal
    pub total_bytes: u64,
    /// MemFree
    pub free_bytes: u64,
    /// MemAvailable
    pub available_bytes: u64,
    /// Cached (page cache, without Buffers)
    pub cached_bytes: u64,
}

/// Counters of one physical disk since boot.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DiskStats {
    /// Kernel device name, e.g. "vda", "nvme0n1", "dm-0".
    pub device: String,
    /// Reads completed.
    pub reads: u64,
    /// Writes completed.
    pub writes: u64,
    /// Bytes read (sectors x 512, the kernel's fixed diskstats unit).
    pub read_bytes: u64,
    /// Bytes written (sectors x 512).
    pub written_bytes: u64,
    /// Time spent reading, seconds.
    pub read_time_seconds: f64,
    /// Time spent writing, seconds.
    pub write_time_seconds: f64,
    /// Time the device had I/O in flight, seconds.
    pub io_time_seconds: f64,
}

/// Counters and state of one reported network interface.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InterfaceStats {
    /// Interface name.
    pub name: String,
    /// operstate "up" (or IFF_UP when operstate is "unknown").
    pub up: bool,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes transmitted.
    pub tx_bytes: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Packets transmitted.
    pub tx_packets: u64,
    /// Addresses on it (no link-local, no multicast), from [`AddressSource`].
    pub ips: Vec<IpAddr>,
}

/// Reads everything, listing interface addresses with getifaddrs in the current network
/// namespace (the agent runs with the host network).
pub fn read_snapshot(paths: &NodePaths) -> NodeSnapshot {
    read_snapshot_with(paths, &SystemAddresses)
}

/// Like [`read_snapshot`] with an injectable address source (tests use a fixed list).
pub fn read_snapshot_with(paths: &NodePaths, addresses: &dyn AddressSource) -> NodeSnapshot {
    let mut snap = NodeSnapshot::default();
    let errors = &mut snap.errors;
    let proc = &paths.procfs;

    snap.hostname = keep(errors, read_word(&proc.join("sys/kernel/hostname")));
    snap.kernel_version = keep(errors, read_word(&proc.join("sys/kernel/osrelease")));
    snap.uptime_seconds = keep(
        errors,
        parse_file(&proc.join("uptime"), procfs::parse_uptime),
    );

    let stat_path = proc.join("stat");
    if let Some(text) = keep(errors, read(&stat_path)) {
        let (cpu, cores) = procfs::parse_stat(&text);
        snap.cpu = keep(errors, cpu.map_err(|r| parse_error(&stat_path, r)));
        snap.logical_cores = keep(errors, cores.map_err(|r| parse_error(&stat_path, r)));
        snap.activity = keep(
            errors,
            procfs::parse_stat_counters(&text).map_err(|r| parse_error(&stat_path, r)),
        );
    }
    snap.vmstat = keep(
        errors,
        parse_file(&proc.join("vmstat"), procfs::parse_vmstat),
    );
    snap.memory = keep(
        errors,
        parse_file(&proc.join("meminfo"), procfs::parse_meminfo),
    );

    let disk_path = proc.join("diskstats");
    if let Some(text) = keep(errors, read(&disk_path)) {
        let (disks, bad) = procfs::parse_diskstats(&text);
        snap.disks = disks;
        errors.extend(bad.into_iter().map(|r| parse_error(&disk_path, r)));
    }

    let dev_path = proc.join("net/dev");
    if let Some(text) = keep(errors, read(&dev_path)) {
        let (counters, bad) = procfs::parse_net_dev(&text);
        errors.extend(bad.into_iter().map(|r| parse_error(&dev_path, r)));
        snap.interfaces = net::interfaces(&paths.sysfs, counters, addresses, errors);
    }
    snap
}

/// /etc/machine-id, else /var/lib/dbus/machine-id, under host_root (trimmed). None if neither.
pub fn machine_id(paths: &NodePaths) -> Option<String> {
    ["etc/machine-id", "var/lib/dbus/machine-id"]
        .iter()
        .find_map(|rel| read_word(&paths.host_root.join(rel)).ok())
}

/// <sysfs>/class/dmi/id/product_uuid (lowercased, trimmed); None where there is no DMI (this VM has none).
pub fn system_uuid(paths: &NodePaths) -> Option<String> {
    read_word(&paths.sysfs.join("class/dmi/id/product_uuid"))
        .ok()
        .map(|s| s.to_lowercase())
}

fn keep<T>(errors: &mut Vec<Error>, r: Result<T, Error>) -> Option<T> {
    r.map_err(|e| errors.push(e)).ok()
}

fn read(path: &Path) -> Result<String, Error> {
    fs::read_to_string(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: Arc::new(e),
    })
}

fn parse_error(path: &Path, reason: String) -> Error {
    Error::Parse {
        path: path.to_path_buf(),
        reason,
    }
}

fn parse_file<T>(path: &Path, parse: fn(&str) -> Result<T, String>) -> Result<T, Error> {
    let text = read(path)?;
    parse(&text).map_err(|r| parse_error(path, r))
}

/// A one-value file (hostname, osrelease, machine-id): trimmed, must not be empty.
fn read_word(path: &Path) -> Result<String, Error> {
    let text = read(path)?;
    let word = text.trim();
    if word.is_empty() {
        return Err(parse_error(path, "empty".to_owned()));
    }
    Ok(word.to_owned())
}

#[cfg(test)]
mod tests;
