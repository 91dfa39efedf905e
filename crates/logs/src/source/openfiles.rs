//! Which files under /var/log a process holds open for writing (coroot-node-agent's rule for
//! "log files of a container": `resolveFd` in containers/container.go).

use super::Error;
use std::path::{Path, PathBuf};

/// Directories under /var/log that hold other sources' files (container runtime logs, which
/// come through Docker/CRI metadata; the journal, read as a journal).
const EXCLUDED: [&str; 3] = [
    "/var/log/pods/",
    "/var/log/containers/",
    "/var/log/journal/",
];
/// Binary accounting files that live under /var/log but are not text logs.
const BINARY: [&str; 5] = ["wtmp", "btmp", "lastlog", "faillog", "utmp"];

/// Files under `/var/log` that process `pid` holds open for writing, as the process sees them
/// (the `/proc/<pid>/fd/N` link target, e.g. `/var/log/nginx/error.log`), sorted, without
/// duplicates.
///
/// Reads `<procfs>/<pid>/fd/*` links and `<procfs>/<pid>/fdinfo/*` flags. A file counts when it
/// is open write-only (`O_WRONLY`, as coroot-node-agent) or read-write in append mode
/// (`O_RDWR|O_APPEND`, as `fopen(.., "a+")`); not under /var/log/{pods,containers,journal}/,
/// not deleted, not a binary accounting file (wtmp, btmp, lastlog, faillog). Descriptors that
/// vanish while scanning are skipped; a vanished process is an error.
pub fn open_log_files(procfs: &Path, pid: u32) -> Result<Vec<PathBuf>, Error> {
    let fd_dir = procfs.join(pid.to_string()).join("fd");
    let entries = std::fs::read_dir(&fd_dir).map_err(|source| Error::Io {
        path: fd_dir.clone(),
        source,
    })?;
    let fdinfo_dir = procfs.join(pid.to_string()).join("fdinfo");
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        if !is_log_path(&target) {
            continue;
        }
        let Ok(info) = std::fs::read_to_string(fdinfo_dir.join(entry.file_name())) else {
            continue;
        };
        if parse_flags(&info).is_some_and(writes_log) {
            out.push(target);
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn is_log_path(p: &Path) -> bool {
    let Some(s) = p.to_str() else {
        return false;
    };
    s.starts_with("/var/log/")
        && !s.ends_with(" (deleted)")
        && !EXCLUDED.iter().any(|e| s.starts_with(e))
        && !p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
            BINARY
                .iter()
                .any(|b| n == *b || n.starts_with(&format!("{b}.")))
        })
}

/// The `flags:` line of an fdinfo file (octal).
fn parse_flags(fdinfo: &str) -> Option<u32> {
    fdinfo
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
}

fn writes_log(flags: u32) -> bool {
    let acc = flags & libc::O_ACCMODE as u32;
    acc == libc::O_WRONLY as u32
        || (acc == libc::O_RDWR as u32 && flags & libc::O_APPEND as u32 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags() {
        assert_eq!(
            parse_flags("pos:\t0\nflags:\t0102001\nmnt_id:\t1\n"),
            Some(0o102001)
        );
        assert!(writes_log(0o102001)); // O_WRONLY|O_APPEND|O_LARGEFILE
        assert!(writes_log(0o1)); // O_WRONLY
        assert!(!writes_log(0o2)); // O_RDWR without O_APPEND
        assert!(writes_log(0o2002)); // O_RDWR|O_APPEND
        assert!(!writes_log(0o100000)); // O_RDONLY
    }

    #[test]
    fn paths() {
        assert!(is_log_path(Path::new("/var/log/nginx/error.log")));
        assert!(!is_log_path(Path::new("/var/log/pods/x/0.log")));
        assert!(!is_log_path(Path::new("/var/log/journal/m/system.journal")));
        assert!(!is_log_path(Path::new("/var/log/app.log (deleted)")));
        assert!(!is_log_path(Path::new("/var/log/wtmp")));
        assert!(!is_log_path(Path::new("/var/log/btmp.1")));
        assert!(!is_log_path(Path::new("/tmp/app.log")));
        assert!(!is_log_path(Path::new("/var/logs/app.log")));
    }
}
