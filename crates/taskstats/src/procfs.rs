//! procfs readers: the schedstat CPU-delay fallback, process start times, and the
//! `kernel.task_delayacct` sysctl. The procfs root is injected so tests use fake trees.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::Error;

/// The fix to print when delay accounting is off, for the agent's one warning.
pub const DELAYACCT_FIX_HINT: &str = "delay accounting is off (kernel.task_delayacct=0, the \
default since Linux 5.14): container disk delay stays 0 and CPU delay falls back to \
/proc/<pid>/task/*/schedstat. Fix: run `sysctl -w kernel.task_delayacct=1` on the node (or boot \
with `delayacct`), or start the agent with --enable-delay-accounting";

fn is_gone(e: &io::Error) -> bool {
    // ENOENT: the pid is gone; ESRCH: it went away while the file was open.
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH)
}

/// Reads a file that belongs to a process; `Ok(None)` when the process is gone.
fn read_proc_file(path: &Path) -> Result<Option<String>, Error> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if is_gone(&e) => Ok(None),
        Err(source) => Err(Error::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Field 2 of a schedstat line: nanoseconds spent runnable on a run queue, not running.
fn parse_schedstat_wait(text: &str, path: &Path) -> Result<u64, Error> {
    let field = text
        .split_ascii_whitespace()
        .nth(1)
        .ok_or_else(|| Error::Parse {
            path: path.to_path_buf(),
            reason: "fewer than 2 fields".to_string(),
        })?;
    field.parse::<u64>().map_err(|e| Error::Parse {
        path: path.to_path_buf(),
        reason: format!("run-queue wait {field:?}: {e}"),
    })
}

/// CPU run-queue wait of a whole process in nanoseconds, for when delay accounting is off:
/// the sum of field 2 of `/proc/<pid>/task/<tid>/schedstat` over its live threads.
///
/// Why the threads and not `/proc/<pid>/schedstat`: that file is the main thread alone, and
/// multi-threaded servers (JVM, Go, thread pools) wait in their worker threads. Threads that
/// already exited are missing from the sum (taskstats keeps them, schedstat cannot), so the sum
/// can drop when a thread exits; [`crate::DelayAccumulator`] turns drops into zero deltas.
///
/// `Ok(None)` when the process is gone. Threads vanishing during the walk are skipped.
pub fn schedstat_cpu_delay_ns(procfs: &Path, pid: u32) -> Result<Option<u64>, Error> {
    let task_dir = procfs.join(pid.to_string()).join("task");
    let entries = match fs::read_dir(&task_dir) {
        Ok(entries) => entries,
        Err(e) if is_gone(&e) => return Ok(None),
        Err(source) => {
            return Err(Error::Read {
                path: task_dir,
                source,
            });
        }
    };
    let mut total: u64 = 0;
    let mut threads = 0usize;
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) if is_gone(&e) => continue,
            Err(source) => {
                return Err(Error::Read {
                    path: task_dir,
                    source,
                });
            }
        };
        // Only numeric entries are threads.
        if !entry
            .file_name()
            .to_str()
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        {
            continue;
        }
        let path = entry.path().join("schedstat");
        let Some(text) = read_proc_file(&path)? else {
            continue;
        };
        total = total.saturating_add(parse_schedstat_wait(&text, &path)?);
        threads += 1;
    }
    // A process whose every thread vanished mid-walk is gone (a live one has >= 1 thread).
    if threads == 0 {
        return Ok(None);
    }
    Ok(Some(total))
}

/// Start time of a process (field 22 of `/proc/<pid>/stat`, clock ticks since boot): with the
/// pid, the key that tells a reused pid from the process that had it before.
/// `Ok(None)` when the process is gone.
pub fn process_start_time(procfs: &Path, pid: u32) -> Result<Option<u64>, Error> {
    let path = procfs.join(pid.to_string()).join("stat");
    let Some(text) = read_proc_file(&path)? else {
        return Ok(None);
    };
    parse_stat_start_time(&text, &path).map(Some)
}

fn parse_stat_start_time(text: &str, path: &Path) -> Result<u64, Error> {
    // comm (field 2) may hold spaces and ')': fields resume after the last ')'.
    let close = text.rfind(')').ok_or_else(|| Error::Parse {
        path: path.to_path_buf(),
        reason: "no ')' after comm".to_string(),
    })?;
    // After ')' come fields 3.. ; field 22 is the 20th of them.
    let field = text[close + 1..]
        .split_ascii_whitespace()
        .nth(19)
        .ok_or_else(|| Error::Parse {
            path: path.to_path_buf(),
            reason: "fewer than 22 fields".to_string(),
        })?;
    field.parse::<u64>().map_err(|e| Error::Parse {
        path: path.to_path_buf(),
        reason: format!("starttime {field:?}: {e}"),
    })
}

fn delayacct_path(procfs: &Path) -> PathBuf {
    procfs.join("sys/kernel/task_delayacct")
}

/// `kernel.task_delayacct`: `Some(true/false)` from `/proc/sys/kernel/task_delayacct`, `None`
/// when the file does not exist (kernels before 5.14, where delay accounting is on unless the
/// `nodelayacct` boot parameter turned it off).
pub fn delayacct_enabled(procfs: &Path) -> Result<Option<bool>, Error> {
    let path = delayacct_path(procfs);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(Error::Read { path, source }),
    };
    match text.trim() {
        "0" => Ok(Some(false)),
        "1" => Ok(Some(true)),
        other => Err(Error::Parse {
            path,
            reason: format!("expected 0 or 1, found {other:?}"),
        }),
    }
}

/// Sets `kernel.task_delayacct=1` (needs root in the host's /proc with a writable /proc/sys;
/// in a container, /proc/sys is read-only unless the pod is privileged). Already-running
/// tasks start being accounted from then on; their CPU delay includes the past anyway
/// (it comes from the scheduler's `run_delay`, which is always kept).
pub fn enable_delayacct(procfs: &Path) -> Result<(), Error> {
    let path = delayacct_path(procfs);
    fs::write(&path, b"1\n").map_err(|source| Error::Write { path, source })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn fake_proc() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    fn write(root: &Path, rel: &str, text: &str) {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    #[test]
    fn schedstat_sums_threads_not_main_thread_only() {
        let dir = fake_proc();
        let root = dir.path();
        // The main thread's own file says 100; the threads say 100 + 2500 + 40.
        write(root, "42/schedstat", "9000 100 7\n");
        write(root, "42/task/42/schedstat", "9000 100 7\n");
        write(root, "42/task/43/schedstat", "123 2500 9\n");
        write(root, "42/task/44/schedstat", "5 40 1\n");
        write(root, "42/task/not-a-tid", "garbage");
        assert_eq!(schedstat_cpu_delay_ns(root, 42).unwrap(), Some(2640));
    }

    #[test]
    fn schedstat_gone_process_and_vanished_threads() {
        let dir = fake_proc();
        let root = dir.path();
        assert_eq!(schedstat_cpu_delay_ns(root, 7).unwrap(), None);
        // A task dir whose threads all vanished: gone too.
        fs::create_dir_all(root.join("8/task/9")).unwrap();
        assert_eq!(schedstat_cpu_delay_ns(root, 8).unwrap(), None);
    }

    #[test]
    fn schedstat_malformed_is_an_error() {
        let dir = fake_proc();
        let root = dir.path();
        write(root, "5/task/5/schedstat", "12\n");
        assert!(matches!(
            schedstat_cpu_delay_ns(root, 5),
            Err(Error::Parse { .. })
        ));
        write(root, "6/task/6/schedstat", "12 -3 4\n");
        assert!(matches!(
            schedstat_cpu_delay_ns(root, 6),
            Err(Error::Parse { .. })
        ));
    }

    #[test]
    fn start_time_is_field_22_even_with_odd_comm() {
        let dir = fake_proc();
        let root = dir.path();
        // comm with spaces and a ')' inside; starttime (field 22) = 987654.
        let stat = "77 (a) b (c)) S 1 77 77 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 1 0 987654 \
                    1000000 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
        write(root, "77/stat", stat);
        assert_eq!(process_start_time(root, 77).unwrap(), Some(987654));
        assert_eq!(process_start_time(root, 78).unwrap(), None);
        write(root, "79/stat", "79 (x) S 1 2 3\n");
        assert!(matches!(
            process_start_time(root, 79),
            Err(Error::Parse { .. })
        ));
        write(root, "80/stat", "80 no paren\n");
        assert!(process_start_time(root, 80).is_err());
    }

    #[test]
    fn start_time_of_this_process_matches_proc() {
        let me = std::process::id();
        let a = process_start_time(Path::new("/proc"), me).unwrap().unwrap();
        let b = process_start_time(Path::new("/proc"), me).unwrap().unwrap();
        assert_eq!(a, b);
        // Our parent started no later than we did.
        let parent = std::os::unix::process::parent_id();
        let p = process_start_time(Path::new("/proc"), parent)
            .unwrap()
            .unwrap();
        assert!(p <= a, "parent start {p} after ours {a}");
    }

    #[test]
    fn delayacct_sysctl_read_and_write() {
        let dir = fake_proc();
        let root = dir.path();
        assert_eq!(delayacct_enabled(root).unwrap(), None);
        write(root, "sys/kernel/task_delayacct", "0\n");
        assert_eq!(delayacct_enabled(root).unwrap(), Some(false));
        enable_delayacct(root).unwrap();
        assert_eq!(delayacct_enabled(root).unwrap(), Some(true));
        write(root, "sys/kernel/task_delayacct", "maybe\n");
        assert!(matches!(delayacct_enabled(root), Err(Error::Parse { .. })));
    }

    #[test]
    fn enable_without_sysctl_file_is_an_error() {
        let dir = fake_proc();
        assert!(matches!(
            enable_delayacct(dir.path()),
            Err(Error::Write { .. })
        ));
    }
}
