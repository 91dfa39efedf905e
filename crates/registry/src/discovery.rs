//! Process discovery by scanning /proc: which process is in which cgroup.
//!
//! The scan runs at start and then periodically. It remembers what it reported, so a scan only
//! produces events for what changed: new processes, reused pids, processes that moved to
//! another cgroup, and processes that are gone. When the eBPF tracer reports process starts and
//! exits, this scan stays as the slow reconciliation that catches anything it missed.

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

/// Remembers the last reported state of every process.
#[derive(Debug)]
pub struct ProcScanner {
    procfs: PathBuf,
    known: HashMap<u32, (u64, ProcessCgroups)>,
    ticks_per_second: u64,
    buf: String,
}

impl ProcScanner {
    pub fn new(procfs: &Path) -> ProcScanner {
        ProcScanner {
            procfs: procfs.to_path_buf(),
            known: HashMap::new(),
            ticks_per_second: clock_ticks_per_second(),
            buf: String::with_capacity(4096),
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
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            match self.read_process(pid) {
                Ok(Some((start_ticks, cgroups))) => {
                    out.processes += 1;
                    let changed = self
                        .known
                        .get(&pid)
                        .is_none_or(|(s, c)| *s != start_ticks || *c != cgroups);
                    if changed {
                        let started_secs = start_ticks as f64 / self.ticks_per_second as f64;
                        let age = Duration::from_secs_f64((uptime - started_secs).max(0.0));
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

    #[test]
    fn missing_proc_is_an_error() {
        let mut scanner = ProcScanner::new(Path::new("/nonexistent/proc"));
        assert!(scanner.scan().is_err());
    }
}
