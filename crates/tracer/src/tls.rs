//! TLS plaintext capture: attaching the uprobes of `ebpf/src/tls.c` to the
//! OpenSSL libraries and Go binaries that processes run (docs/l7.md, "TLS").
//!
//! [`Tracer::tls_attacher`] loads the programs once; the [`TlsAttacher`] it
//! returns is then told about processes ([`TlsAttacher::scan_process`] for
//! every process at start, [`TlsAttacher::process_started`] for each new one)
//! and finds, through
//! `/proc/<pid>/maps` and `/proc/<pid>/exe`:
//! - `libssl.so*` (OpenSSL 1.1, 3): probes on `SSL_write`, `SSL_write_ex`,
//!   `SSL_read`, `SSL_read_ex` (entry and return: OpenSSL is C);
//! - a Go executable (a `.go.buildinfo` section, Go >= 1.17, a symbol table
//!   with `crypto/tls.(*Conn).Write/Read`): probes on both entries and on
//!   every RET of `Read` (never a uretprobe: they corrupt Go stacks).
//!
//! A file is probed once, for all processes (a uprobe belongs to an inode):
//! files are keyed by the device and inode `/proc/<pid>/maps` shows, and
//! reached through `/proc/<pid>/root/<path>` (`/proc/<pid>/exe` for the
//! executable), so files inside containers work. At most
//! [`TlsConfig::max_targets`] files are probed; every file that gets no probe
//! is counted by reason ([`TlsStats::skipped`]) and logged once.

mod elf;
mod host;
mod procmaps;
mod rescan;
mod uprobe;

use std::collections::{BTreeMap, HashMap};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Instant;

use aya::maps::{HashMap as BpfHashMap, MapData};
use aya::programs::{ProgramFd, UProbe};
use tracing::{debug, info, warn};

pub use elf::SkipReason;
use elf::{GoOffsets, Inspection, OpenSslOffsets};
use procmaps::{Candidate, FileKey, Kind};
use rescan::RescanQueue;
use uprobe::UprobePmu;

use crate::decode::ExecFile;
use crate::loader::verifier_excerpt;
use crate::{Error, Tracer};

/// `struct exec_file_key` of ebpf/src/l7.c: the key of `tls_exec_files`.
#[repr(C)]
#[derive(Clone, Copy)]
struct ExecFileKey {
    ino: u64,
    dev: u32,
    _pad: u32,
}

// SAFETY: plain old data, `#[repr(C)]`, no padding the kernel would not zero
// (the explicit `_pad` is written as 0).
unsafe impl aya::Pod for ExecFileKey {}

/// `TLS_EXEC_FILE_DONE` of ebpf/src/l7.c: the attacher has looked at the file.
const EXEC_FILE_DONE: u64 = u64::MAX;

/// The uprobe programs of `ebpf/src/tls.c`, in [`Prog`] order.
const PROGRAMS: [&str; 10] = [
    "tls_ssl_write_enter",
    "tls_ssl_write_ret",
    "tls_ssl_read_enter",
    "tls_ssl_read_ret",
    "tls_ssl_readx_enter",
    "tls_ssl_readx_ret",
    "tls_go_write_enter",
    "tls_go_read_enter",
    "tls_go_read_ret",
    "tls_ssl_set_fd",
];

#[derive(Clone, Copy)]
enum Prog {
    SslWriteEnter = 0,
    SslWriteRet,
    SslReadEnter,
    SslReadRet,
    SslReadExEnter,
    SslReadExRet,
    GoWriteEnter,
    GoReadEnter,
    GoReadRet,
    SslSetFd,
}

/// TLS attacher settings.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// procfs (`/proc`; the host's, so container processes are visible).
    pub proc_root: PathBuf,
    /// sysfs (`/sys`), for the kernel's uprobe PMU.
    pub sysfs_root: PathBuf,
    /// Most files (libraries and executables) probed at once. Default 256.
    pub max_targets: usize,
    /// Most processes waiting for a rescan. Default 8192.
    pub max_pending_rescans: usize,
    /// Most files remembered as "nothing to probe" before the memory is
    /// cleared (they are then looked at again). Default 16384.
    pub max_known_files: usize,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            proc_root: PathBuf::from("/proc"),
            sysfs_root: PathBuf::from("/sys"),
            max_targets: 256,
            max_pending_rescans: 8192,
            max_known_files: 16384,
        }
    }
}

/// What the attacher did, for self-metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsStats {
    /// OpenSSL libraries probed now (`sonde_tls_uprobes_attached{kind="openssl"}`).
    pub openssl_targets: u64,
    /// Go binaries probed now (`kind="go"`).
    pub go_targets: u64,
    /// Uprobes attached now (every entry, return and RET offset).
    pub uprobes: u64,
    /// Files that got no probe, by reason, since start (each file counted
    /// once; unreadable files, often a process gone while scanned, each time).
    pub skipped: BTreeMap<SkipReason, u64>,
    /// Processes not queued for a rescan because the queue was full.
    pub rescans_dropped: u64,
    /// Processes scanned (first scans and rescans).
    pub scans: u64,
    /// New executables reported by the kernel at exec and looked at then
    /// ([`TlsAttacher::exec_seen`]).
    pub exec_scans: u64,
}

enum FileState {
    /// Probed; the links stay attached while the fds live.
    Attached { _links: Vec<OwnedFd> },
    /// Looked at: nothing to probe, or refused (counted once).
    Done,
}

/// Attaches TLS uprobes to the files processes run. Not shared: one task owns
/// it and feeds it pids.
pub struct TlsAttacher {
    progs: Vec<ProgramFd>,
    pmu: UprobePmu,
    config: TlsConfig,
    files: HashMap<FileKey, FileState>,
    targets: usize,
    rescans: RescanQueue,
    stats: TlsStats,
    /// `tls_exec_files`: executables looked at, marked done here so the
    /// kernel stops reporting them (None: the map could not be taken; every
    /// new file is then reported at most once a second, which costs only
    /// scans).
    exec_files: Option<BpfHashMap<MapData, ExecFileKey, u64>>,
}

impl std::fmt::Debug for TlsAttacher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsAttacher")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Tracer {
    /// Loads the TLS uprobe programs and returns the attacher that places
    /// them. Call once, before sharing the tracer; requires the L7 programs
    /// (the TLS probes hand their plaintext to them). Fails as a whole (the
    /// reason logged by the caller): HTTPS is then not seen, plain protocols
    /// still are.
    pub fn tls_attacher(&mut self, config: TlsConfig) -> Result<TlsAttacher, Error> {
        let pmu = UprobePmu::detect(&config.sysfs_root).map_err(|e| Error::Tls {
            reason: format!("the kernel's uprobe PMU is unavailable (kernel >= 4.17 with CONFIG_UPROBE_EVENTS): {e}"),
        })?;
        let mut progs = Vec::with_capacity(PROGRAMS.len());
        for name in PROGRAMS {
            let prog: &mut UProbe = self
                .ebpf
                .program_mut(name)
                .and_then(|p| p.try_into().ok())
                .ok_or(Error::Missing {
                    kind: "program",
                    name,
                })?;
            if prog.fd().is_err() {
                prog.load().map_err(|e| Error::Verifier {
                    program: name,
                    excerpt: verifier_excerpt(&e),
                    source: Box::new(e),
                })?;
            }
            let fd = prog
                .fd()
                .and_then(|fd| fd.try_clone().map_err(Into::into))
                .map_err(|e| Error::Verifier {
                    program: name,
                    excerpt: e.to_string(),
                    source: Box::new(e),
                })?;
            progs.push(fd);
        }
        let rescans = RescanQueue::new(config.max_pending_rescans);
        let exec_files = self
            .ebpf
            .take_map("tls_exec_files")
            .and_then(|m| BpfHashMap::try_from(m).ok());
        if exec_files.is_none() {
            warn!(
                "TLS: the tls_exec_files map is missing: new executables are looked at again each second"
            );
        }
        Ok(TlsAttacher {
            exec_files,
            progs,
            pmu,
            config,
            files: HashMap::new(),
            targets: 0,
            rescans,
            stats: TlsStats::default(),
        })
    }
}

impl TlsAttacher {
    /// Looks at `pid`'s libssl mappings and executable now, attaching to any
    /// file not seen before. For the processes that exist at start (already
    /// running their program, their libraries loaded).
    pub fn scan_process(&mut self, pid: u32) {
        self.scan(pid);
    }

    /// A new process (seen at fork): queued to be looked at 0.2 s, 1 s and
    /// 5 s from now ([`Self::rescan_due`]), not now. At fork the child is a
    /// copy of its parent (nothing new to find) and has not exec'd its
    /// program yet; reading its maps now would cost ~50-300 us for nothing,
    /// on every fork. A process gone before its first look costs one stat.
    pub fn process_started(&mut self, pid: u32) {
        self.queue(pid);
    }

    /// A process exec'd `file`, an executable not looked at before (the
    /// kernel reports each new file once, with a forced wakeup: src/l7.c,
    /// `l7_report_exec`). Looked at now, through an fd opened first: a Go
    /// client that finishes within milliseconds is gone before its fork's
    /// first rescan (0.2 s), and its binary would never be probed; the fd
    /// keeps the file reachable even if the process exits mid-scan. Its own
    /// first TLS calls may still precede the probes; the next runs of the
    /// file are seen. A process already gone is not marked done: the
    /// kernel reports the file again at a later exec.
    pub fn exec_seen(&mut self, pid: u32, file: ExecFile) {
        self.stats.exec_scans += 1;
        let key = ExecFileKey {
            ino: file.ino,
            dev: file.dev,
            _pad: 0,
        };
        let dir = self.config.proc_root.join(pid.to_string());
        let Ok(exe) = std::fs::File::open(dir.join("exe")) else {
            // Gone already (or the agent was busy): forget the report, so the
            // file's very next exec is reported, not only a second later.
            if let Some(map) = &mut self.exec_files {
                let _ = map.remove(&key);
            }
            return;
        };
        let held = PathBuf::from(format!("/proc/self/fd/{}", exe.as_raw_fd()));
        self.scan_with(pid, Some(&held));
        drop(exe);
        if let Some(map) = &mut self.exec_files
            && let Err(e) = map.insert(key, EXEC_FILE_DONE, 0)
        {
            debug!(pid, error = %e, "TLS: could not mark an executable done");
        }
    }

    fn queue(&mut self, pid: u32) {
        if !self.rescans.push(pid, Instant::now()) {
            self.stats.rescans_dropped += 1;
        }
    }

    /// Rescans the processes whose time has come (see [`Self::scan_process`]).
    /// Call it every few hundred milliseconds; cheap when nothing is due.
    pub fn rescan_due(&mut self, now: Instant) {
        for pid in self.rescans.take_due(now) {
            if self.config.proc_root.join(pid.to_string()).exists() {
                self.scan(pid);
            }
        }
    }

    /// Counters for self-metrics.
    pub fn stats(&self) -> &TlsStats {
        &self.stats
    }

    fn scan(&mut self, pid: u32) {
        self.scan_with(pid, None);
    }

    /// Scans `pid`; its executable is read through `exe_path` when given
    /// (an fd held open), else through `/proc/<pid>/exe`.
    fn scan_with(&mut self, pid: u32, exe_path: Option<&Path>) {
        self.stats.scans += 1;
        let dir = self.config.proc_root.join(pid.to_string());
        let Ok(maps) = std::fs::read_to_string(dir.join("maps")) else {
            return; // gone, or a kernel thread's empty maps
        };
        let exe = std::fs::read_link(dir.join("exe")).ok();
        let exe = exe.as_deref().and_then(Path::to_str);
        for c in procmaps::candidates(&maps, exe) {
            if self.files.contains_key(&c.key) {
                continue;
            }
            let target = match c.kind {
                Kind::Exe => exe_path.map_or_else(|| dir.join("exe"), Path::to_path_buf),
                Kind::LibSsl => dir.join("root").join(c.path.trim_start_matches('/')),
            };
            self.consider(pid, target, c);
        }
    }

    /// Probes the OpenSSL libraries in the host's usual library directories
    /// (through `/proc/1/root`), whether or not a process maps them yet: a
    /// short-lived process (a `curl` or a script making one request) may load
    /// libssl, do its TLS and exit between two scans. Files found are keyed as
    /// `/proc/<pid>/maps` would show them (see [`host::mapped_key`]), so a
    /// later scan of a process mapping them does not probe them twice.
    pub fn scan_host_libraries(&mut self) {
        // The host's root as pid 1 sees it (an agent in a container with the
        // host's pid namespace), and the agent's own (pid 1's may be closed
        // to it, as in a VM whose init is another user's).
        for root in [self.config.proc_root.join("1/root"), PathBuf::from("/")] {
            self.scan_libraries_under(&root);
        }
    }

    fn scan_libraries_under(&mut self, root: &Path) {
        for path in host::libssl_files(root) {
            let key = match host::mapped_key(&path) {
                Ok(k) => k,
                Err(e) => {
                    debug!(path = %path.display(), error = %e, "TLS: cannot map a host library to key it");
                    continue;
                }
            };
            if self.files.contains_key(&key) {
                continue;
            }
            let shown = path
                .strip_prefix(root)
                .map(|p| Path::new("/").join(p))
                .unwrap_or_else(|_| path.clone());
            let c = Candidate {
                key,
                path: shown.to_string_lossy().into_owned(),
                kind: Kind::LibSsl,
            };
            self.consider(0, path, c);
        }
    }

    fn consider(&mut self, pid: u32, target: PathBuf, c: Candidate) {
        let inspection = elf::inspect(&target, c.kind == Kind::LibSsl);
        let result = match &inspection {
            Inspection::NotTls => {
                self.remember(c.key, FileState::Done);
                return;
            }
            Inspection::Skip(SkipReason::Unreadable) => {
                // Often a process gone mid-scan: not remembered, tried again
                // with the next process that maps it.
                self.count_skip(SkipReason::Unreadable);
                debug!(pid, path = %c.path, "TLS: cannot read the file to probe");
                return;
            }
            Inspection::Skip(reason) => Err(*reason),
            _ if self.targets >= self.config.max_targets => Err(SkipReason::TooManyTargets),
            Inspection::OpenSsl(o) => self.attach_openssl(&target, o),
            Inspection::Go(g) => self.attach_go(&target, g),
        };
        match result {
            Ok(links) => {
                let n = links.len() as u64;
                let (kind, version) = match &inspection {
                    Inspection::Go(g) => {
                        self.stats.go_targets += 1;
                        ("go", g.version.as_str())
                    }
                    _ => {
                        self.stats.openssl_targets += 1;
                        ("openssl", "")
                    }
                };
                self.stats.uprobes += n;
                self.targets += 1;
                info!(pid, path = %c.path, kind, version, uprobes = n, "TLS uprobes attached");
                self.files
                    .insert(c.key, FileState::Attached { _links: links });
            }
            Err(reason) => {
                self.count_skip(reason);
                if matches!(reason, SkipReason::GoNoTls) {
                    debug!(pid, path = %c.path, "TLS: Go binary without crypto/tls");
                } else {
                    warn!(pid, path = %c.path, reason = reason.label(), "TLS: file not probed; its TLS traffic is not seen");
                }
                if reason != SkipReason::TooManyTargets {
                    self.remember(c.key, FileState::Done);
                }
            }
        }
    }

    /// Remembers a file; "nothing to probe" entries are forgotten all at
    /// once when there are too many (probed files are always kept).
    fn remember(&mut self, key: FileKey, state: FileState) {
        if self.files.len() >= self.config.max_known_files + self.targets {
            self.files
                .retain(|_, s| matches!(s, FileState::Attached { .. }));
        }
        self.files.insert(key, state);
    }

    fn count_skip(&mut self, reason: SkipReason) {
        *self.stats.skipped.entry(reason).or_default() += 1;
    }

    fn attach_openssl(
        &self,
        target: &Path,
        o: &OpenSslOffsets,
    ) -> Result<Vec<OwnedFd>, SkipReason> {
        let mut points = vec![
            (Prog::SslWriteEnter, o.ssl_write, false),
            (Prog::SslWriteRet, o.ssl_write, true),
            (Prog::SslReadEnter, o.ssl_read, false),
            (Prog::SslReadRet, o.ssl_read, true),
        ];
        if o.ssl_write_ex != 0 {
            points.push((Prog::SslWriteEnter, o.ssl_write_ex, false));
            points.push((Prog::SslWriteRet, o.ssl_write_ex, true));
        }
        if o.ssl_set_fd != 0 {
            points.push((Prog::SslSetFd, o.ssl_set_fd, false));
        }
        if o.ssl_read_ex != 0 {
            points.push((Prog::SslReadExEnter, o.ssl_read_ex, false));
            points.push((Prog::SslReadExRet, o.ssl_read_ex, true));
        }
        self.attach_all(target, &points)
    }

    fn attach_go(&self, target: &Path, g: &GoOffsets) -> Result<Vec<OwnedFd>, SkipReason> {
        let mut points = vec![
            (Prog::GoWriteEnter, g.write, false),
            (Prog::GoReadEnter, g.read, false),
        ];
        points.extend(g.read_rets.iter().map(|&off| (Prog::GoReadRet, off, false)));
        self.attach_all(target, &points)
    }

    /// All the probes of one file, or none (links already made are closed,
    /// which detaches them).
    fn attach_all(
        &self,
        target: &Path,
        points: &[(Prog, u64, bool)],
    ) -> Result<Vec<OwnedFd>, SkipReason> {
        let mut links = Vec::with_capacity(points.len());
        for &(prog, offset, retprobe) in points {
            let fd = self.progs[prog as usize].as_fd();
            match self.pmu.attach(fd, target, offset, retprobe) {
                Ok(link) => links.push(link),
                Err(e) => {
                    warn!(path = %target.display(), program = PROGRAMS[prog as usize], offset, error = %e, "TLS uprobe attach failed");
                    return Err(SkipReason::AttachFailed);
                }
            }
        }
        Ok(links)
    }
}
