//! Per-process samples for `sonde record`, read from /proc (the agent exports no per-process
//! series, and a recording is not a scrape target): CPU, resident memory and storage I/O of
//! each process, with the cgroup id the agent would key it by.
//!
//! Network is not attributed per process here: interface counters are per network namespace
//! (the container rows carry them) and the agent's TCP counters are per container.

use std::path::Path;

/// USER_HZ: /proc/<pid>/stat counts CPU time in 1/100 s on every Linux architecture.
const USER_HZ: f64 = 100.0;

/// One process now.
#[derive(Debug, Clone, PartialEq)]
pub struct Process {
    /// Process id.
    pub pid: u32,
    /// `comm` (the kernel's 15-byte name).
    pub comm: String,
    /// The cgroup id (see `sonde_cgroup::ProcessCgroups::id`), e.g. `/docker/<id>`.
    pub cgroup: String,
    /// utime + stime, seconds.
    pub cpu_seconds: f64,
    /// VmRSS, bytes (None for kernel threads).
    pub rss_bytes: Option<u64>,
    /// /proc/<pid>/io read_bytes (storage reads; needs root or the same user).
    pub read_bytes: Option<u64>,
    /// /proc/<pid>/io write_bytes.
    pub write_bytes: Option<u64>,
}

/// `comm` and utime+stime (seconds) of /proc/<pid>/stat.
pub fn parse_stat(text: &str) -> Option<(String, f64)> {
    // comm may hold spaces and parentheses: it ends at the last ')'.
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_owned();
    let fields: Vec<&str> = text.get(close + 1..)?.split_ascii_whitespace().collect();
    // After the comm: state(0) ppid(1) ... utime(11) stime(12).
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((comm, (utime + stime) as f64 / USER_HZ))
}

/// VmRSS of /proc/<pid>/status, bytes.
pub fn parse_status_rss(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_ascii_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

/// read_bytes and write_bytes of /proc/<pid>/io.
pub fn parse_io(text: &str) -> (Option<u64>, Option<u64>) {
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse().ok())
    };
    (field("read_bytes:"), field("write_bytes:"))
}

/// One process under `procfs`; None when it is gone or not readable.
pub fn read_process(procfs: &Path, pid: u32) -> Option<Process> {
    let dir = procfs.join(pid.to_string());
    let cgroups = std::fs::read_to_string(dir.join("cgroup")).ok()?;
    let cgroup = sonde_cgroup::ProcessCgroups::parse(&cgroups)
        .ok()?
        .id()
        .unwrap_or("/")
        .to_owned();
    let (comm, cpu_seconds) = parse_stat(&std::fs::read_to_string(dir.join("stat")).ok()?)?;
    let rss_bytes = std::fs::read_to_string(dir.join("status"))
        .ok()
        .and_then(|t| parse_status_rss(&t));
    let (read_bytes, write_bytes) = std::fs::read_to_string(dir.join("io"))
        .map(|t| parse_io(&t))
        .unwrap_or((None, None));
    Some(Process {
        pid,
        comm,
        cgroup,
        cpu_seconds,
        rss_bytes,
        read_bytes,
        write_bytes,
    })
}

/// Every process under `procfs` whose cgroup id `keep` accepts, by pid. Processes that exit
/// while being read are skipped.
pub fn read_processes(procfs: &Path, keep: impl Fn(&str) -> bool) -> Vec<Process> {
    let Ok(dir) = std::fs::read_dir(procfs) else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    pids.into_iter()
        .filter_map(|pid| read_process(procfs, pid))
        .filter(|p| keep(&p.cgroup))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const STAT: &str = "4242 (my (odd) prog) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 1 0 500 1000000 300 18446744073709551615\n";

    #[test]
    fn stat_status_io() {
        let (comm, cpu) = parse_stat(STAT).unwrap();
        assert_eq!(comm, "my (odd) prog");
        assert_eq!(cpu, 3.25);
        assert!(parse_stat("1 (x) S 1 2").is_none());
        assert!(parse_stat("garbage").is_none());
        assert_eq!(
            parse_status_rss("Name:\tx\nVmRSS:\t    1234 kB\nThreads: 1\n"),
            Some(1234 * 1024)
        );
        assert_eq!(parse_status_rss("Name:\tkthreadd\n"), None);
        assert_eq!(
            parse_io(
                "rchar: 5\nwchar: 6\nread_bytes: 4096\nwrite_bytes: 8192\ncancelled_write_bytes: 0\n"
            ),
            (Some(4096), Some(8192))
        );
        assert_eq!(parse_io(""), (None, None));
    }

    #[test]
    fn fake_procfs() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("4242");
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(p.join("cgroup"), "0::/system.slice/x.service\n").unwrap();
        std::fs::write(p.join("stat"), STAT).unwrap();
        std::fs::write(p.join("status"), "VmRSS: 8 kB\n").unwrap();
        std::fs::create_dir_all(tmp.path().join("77")).unwrap(); // gone: no files
        std::fs::create_dir_all(tmp.path().join("self")).unwrap();
        let all = read_processes(tmp.path(), |_| true);
        assert_eq!(all.len(), 1);
        let x = &all[0];
        assert_eq!(
            (x.pid, x.cgroup.as_str()),
            (4242, "/system.slice/x.service")
        );
        assert_eq!((x.rss_bytes, x.read_bytes), (Some(8192), None));
        assert!(read_processes(tmp.path(), |c| c == "/other").is_empty());
        assert!(read_processes(&tmp.path().join("none"), |_| true).is_empty());
    }
}
