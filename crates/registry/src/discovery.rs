//! Process discovery by scanning /proc: which process is in which cgroup.
//!
//! The scan runs at start and then periodically. It remembers what it reported, so a scan only
//! produces events for what changed: new processes, reused pids, processes that moved to
//! another cgroup, and processes that are gone. When the eBPF tracer reports process starts and
//! exits, this scan stays as the slow reconciliation that catches anything it missed.
//!
//! A process younger than [`NEW_PROCESS_SETTLE`] is left to the next scan (every scan but the
//! first): a fork runs in its parent's cgroup until it moves itself into its own and execs (runc
//! joins the container's cgroups between fork and exec, a test harness in `pre_exec`), and
//! under load that window lasts tens of ms. A process read inside it would be placed in its
//! parent's container, and the events of a short-lived one (a shell loop's `curl`, an exec
//! probe) counted there. The tracer's bridge reads a new process once it has settled, or at its
//! first network event; the kernel's cgroup id places one gone before either.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sonde_cgroup::ProcessCgroups;

use crate::state::Event;

/// Outcome of one scan.
#[derive(Debug, Default)]
pub struct ScanOutcome {
    pub events: Vec<Event>,
    /// Processes whose files could not be read or parsed (vanished ones are not errors).
    pub errors: u64,
    pub processes: usize,
    /// Processes left to the next scan: younger than [`NEW_PROCESS_SETTLE`].
    pub young: usize,
}

/// Failure to scan /proc at all.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("cannot list {path}: {source}")]
    ListProc {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read {path}: {reason}")]
    Uptime { path: PathBuf, reason: String },
}

/// How long after its start a new process's cgroup is trusted: the /proc scan skips younger
/// processes (see the module doc), and the tracer's bridge reads a new process this long after
/// its start event.
pub(crate) const NEW_PROCESS_SETTLE: Duration = Duration::from_millis(500);

/// Remembers the last reported state of every process.
#[derive(Debug)]
pub struct ProcScanner {
    procfs: PathBuf,
    known: HashMap<u32, (u64, ProcessCgroups)>,
    ticks_per_second: u64,
    buf: String,
    /// No scan has run yet: the first reports every process, young or not (there is no
    /// earlier placement, and readiness waits for it).
    first: bool,
}

impl ProcScanner {
    pub fn new(procfs: &Path) -> ProcScanner {
        ProcScanner {
            procfs: procfs.to_path_buf(),
            known: HashMap::new(),
            ticks_per_second: clock_ticks_per_second(),
            buf: String::with_capacity(4096),
            first: true,
        }
    }

    /// One pass over /proc.
    pub fn scan(&mut self) -> Result<ScanOutcome, ScanError> {
        let uptime = read_uptime(&self.procfs)?;
        let entries = fs::read_dir(&self.procfs).map_err(|source| ScanError::ListProc {
            path: self.procfs.clone(),
            source,
        })?;
        let mut out = ScanOutcome::default();
        let mut alive = HashMap::with_capacity(self.known.len());
        let first = std::mem::replace(&mut self.first, false);
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            match self.read_process(pid) {
                Ok(Some((start_ticks, cgroups))) => {
                    out.processes += 1;
                    let started_secs = start_ticks as f64 / self.ticks_per_second as f64;
                    let age = Duration::from_secs_f64((uptime - started_secs).max(0.0));
                    if !first && age < NEW_PROCESS_SETTLE {
                        // Not settled: read again by the next scan. A pid reused by it keeps
                        // its old entry meanwhile, so this scan reports no exit for it (the
                        // bridge may have placed the new process already).
                        out.young += 1;
                        if let Some(old) = self.known.remove(&pid) {
                            alive.insert(pid, old);
                        }
                        continue;
                    }
                    let changed = self
                        .known
                        .get(&pid)
                        .is_none_or(|(s, c)| *s != start_ticks || *c != cgroups);
                    if changed {
                        out.events.push(Event::ProcessSeen {
                            pid,
                            start_ticks,
                            age,
                            cgroups: cgroups.clone(),
                        });
                    }
                    alive.insert(pid, (start_ticks, cgroups));
                }
                Ok(None) => {} // Exited while we looked: the next scan reports it gone.
                Err(()) => out.errors += 1,
            }
        }
        for pid in self.known.keys() {
            if !alive.contains_key(pid) {
                out.events.push(Event::ProcessGone { pid: *pid });
            }
        }
        self.known = alive;
        Ok(out)
    }

    fn read_process(&mut self, pid: u32) -> Result<Option<(u64, ProcessCgroups)>, ()> {
        read_process(&self.procfs, pid, &mut self.buf)
    }
}

/// Start time (clock ticks since boot) and cgroups of one process; Ok(None) when it is gone,
/// Err(()) when its files are unreadable or malformed. `buf` is reused between calls.
pub(crate) fn read_process(
    procfs: &Path,
    pid: u32,
    buf: &mut String,
) -> Result<Option<(u64, ProcessCgroups)>, ()> {
    let dir = procfs.join(pid.to_string());
    let start_ticks = match read_into(&dir.join("stat"), buf) {
        Ok(()) => sonde_node::procfs::parse_pid_start_ticks(buf).ok_or(())?,
        Err(e) if is_gone(&e) => return Ok(None),
        Err(_) => return Err(()),
    };
    match read_into(&dir.join("cgroup"), buf) {
        Ok(()) => ProcessCgroups::parse(buf).map(Some).map_err(|_| ()),
        Err(e) if is_gone(&e) => Ok(None),
        Err(_) => Err(()),
    }
    .map(|c| c.map(|c| (start_ticks, c)))
}

/// Converts process start times (clock ticks since boot) into ages, with the boot time read once.
#[derive(Debug, Clone, Copy)]
pub struct ProcessClock {
    boot: std::time::Instant,
    ticks_per_second: u64,
}

impl ProcessClock {
    pub fn new(procfs: &Path) -> Result<ProcessClock, ScanError> {
        let uptime = read_uptime(procfs)?;
        let now = std::time::Instant::now();
        Ok(ProcessClock {
            boot: now
                .checked_sub(Duration::from_secs_f64(uptime))
                .unwrap_or(now),
            ticks_per_second: clock_ticks_per_second(),
        })
    }

    /// How long a process that started `start_ticks` after boot has been running.
    pub fn age(&self, start_ticks: u64) -> Duration {
        let started =
            self.boot + Duration::from_secs_f64(start_ticks as f64 / self.ticks_per_second as f64);
        std::time::Instant::now().saturating_duration_since(started)
    }
}

fn read_into(path: &Path, buf: &mut String) -> io::Result<()> {
    use std::io::Read;
    buf.clear();
    fs::File::open(path)?.read_to_string(buf)?;
    Ok(())
}

/// ENOENT/ESRCH: the process exited between listing and reading.
fn is_gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH)
}

fn read_uptime(procfs: &Path) -> Result<f64, ScanError> {
    let path = procfs.join("uptime");
    let text = fs::read_to_string(&path).map_err(|e| ScanError::Uptime {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    sonde_node::procfs::parse_uptime(&text).map_err(|reason| ScanError::Uptime { path, reason })
}

fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions; it returns -1 for an unknown name.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as u64 } else { 100 }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn write_proc(root: &Path, pid: u32, start: u64, cgroup: &str) {
        let dir = root.join(pid.to_string());
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("stat"),
            format!("{pid} (sleep) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 {start} 0 0\n"),
        )
        .unwrap();
        fs::write(dir.join("cgroup"), cgroup).unwrap();
    }

    #[test]
    fn scan_reports_only_changes() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        fs::write(root.join("uptime"), "1000.00 1900.00\n").unwrap();
        fs::create_dir_all(root.join("self")).unwrap();
        write_proc(root, 10, 50_000, "0::/system.slice/a.service\n");
        write_proc(root, 11, 90_000, "0::/system.slice/b.service\n");
        let mut scanner = ProcScanner::new(root);
        scanner.ticks_per_second = 100;

        let first = scanner.scan().unwrap();
        assert_eq!(first.processes, 2);
        assert_eq!(first.events.len(), 2);
        let age_of_10 = first.events.iter().find_map(|e| match e {
            Event::ProcessSeen { pid: 10, age, .. } => Some(*age),
            _ => None,
        });
        assert_eq!(age_of_10, Some(Duration::from_secs(500)));

        assert!(scanner.scan().unwrap().events.is_empty(), "nothing changed");

        // pid 11 exits, pid 10 is reused by another process, pid 12 is malformed.
        fs::remove_dir_all(root.join("11")).unwrap();
        write_proc(root, 10, 99_000, "0::/system.slice/c.service\n");
        fs::create_dir_all(root.join("12")).unwrap();
        fs::write(root.join("12/stat"), "12 (x) S").unwrap();
        fs::write(root.join("12/cgroup"), "").unwrap();
        let third = scanner.scan().unwrap();
        assert_eq!(third.errors, 1);
        let mut kinds: Vec<String> = third
            .events
            .iter()
            .map(|e| match e {
                Event::ProcessSeen {
                    pid, start_ticks, ..
                } => format!("seen {pid} {start_ticks}"),
                Event::ProcessGone { pid } => format!("gone {pid}"),
                _ => "other".into(),
            })
            .collect();
        kinds.sort();
        assert_eq!(kinds, vec!["gone 11", "seen 10 99000"]);
    }

    /// A process younger than NEW_PROCESS_SETTLE may not be in its own cgroup yet (between
    /// fork and exec): every scan but the first leaves it to the next one, and a pid reused by
    /// such a process is not reported gone meanwhile.
    #[test]
    fn young_processes_wait_for_the_next_scan() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        fs::write(root.join("uptime"), "1000.00 1900.00\n").unwrap();
        // Started 0.1 s ago, in its parent's cgroup.
        write_proc(root, 20, 99_990, "0::/system.slice/parent.service\n");
        write_proc(root, 21, 50_000, "0::/system.slice/a.service\n");
        let mut scanner = ProcScanner::new(root);
        scanner.ticks_per_second = 100;

        let first = scanner.scan().unwrap();
        assert_eq!(
            first.events.len(),
            2,
            "the first scan reports young ones too"
        );
        assert_eq!(first.young, 0);

        // pid 21 is reused by a process started 0.2 s ago; pid 22 is new and young.
        write_proc(root, 21, 99_980, "0::/system.slice/parent.service\n");
        write_proc(root, 22, 99_995, "0::/system.slice/parent.service\n");
        let second = scanner.scan().unwrap();
        assert_eq!(
            second.young, 3,
            "20 (reported by the first scan), 21 and 22"
        );
        assert!(second.events.is_empty(), "{:?}", second.events);

        // Settled: both moved to their own cgroup, and are reported there.
        fs::write(root.join("uptime"), "1001.00 1900.00\n").unwrap();
        write_proc(root, 21, 99_980, "0::/system.slice/b.service\n");
        write_proc(root, 22, 99_995, "0::/system.slice/c.service\n");
        let third = scanner.scan().unwrap();
        assert_eq!(third.young, 0);
        let mut seen: Vec<String> = third
            .events
            .iter()
            .map(|e| match e {
                Event::ProcessSeen { pid, cgroups, .. } => {
                    format!("seen {pid} {:?}", cgroups.id())
                }
                other => format!("{other:?}"),
            })
            .collect();
        seen.sort();
        assert_eq!(
            seen,
            vec![
                "seen 21 Some(\"/system.slice/b.service\")",
                "seen 22 Some(\"/system.slice/c.service\")"
            ]
        );
    }

    #[test]
    fn missing_proc_is_an_error() {
        let mut scanner = ProcScanner::new(Path::new("/nonexistent/proc"));
        assert!(scanner.scan().is_err());
    }
}
