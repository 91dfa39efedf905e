//! Pure parsers for /proc files. Each returns values or a human-readable reason; the caller
//! attaches the path. Line-oriented files (diskstats, net/dev) return good entries and a list of
//! reasons for bad lines, so one broken line never hides the others.

use crate::{CpuTimes, DiskStats, MemInfo};

/// USER_HZ: /proc/stat counts in 1/100 s on every Linux architecture sonde targets
/// (the kernel fixes USER_HZ at 100 for userspace ABI, whatever CONFIG_HZ is).
const USER_HZ: f64 = 100.0;

/// /proc/uptime: "<uptime seconds> <idle seconds>".
pub fn parse_uptime(text: &str) -> Result<f64, String> {
    let first = text
        .split_ascii_whitespace()
        .next()
        .ok_or_else(|| "empty".to_owned())?;
    first
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| format!("uptime {first:?} is not a number"))
}

/// /proc/stat: the aggregate "cpu" line (seconds per mode) and the number of "cpuN" lines.
pub fn parse_stat(text: &str) -> (Result<CpuTimes, String>, Result<u32, String>) {
    let mut cpu = Err("no \"cpu\" line".to_owned());
    let mut cores = 0u32;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("cpu") else {
            continue;
        };
        if rest.starts_with(|c: char| c.is_ascii_digit()) {
            cores += 1;
        } else if rest.starts_with(' ') {
            cpu = parse_cpu_line(rest);
        }
    }
    let cores = if cores > 0 {
        Ok(cores)
    } else {
        Err("no \"cpuN\" lines".to_owned())
    };
    (cpu, cores)
}

fn parse_cpu_line(rest: &str) -> Result<CpuTimes, String> {
    let mut v = [0f64; 8];
    let mut fields = rest.split_ascii_whitespace();
    for (i, slot) in v.iter_mut().enumerate() {
        let f = fields
            .next()
            .ok_or_else(|| format!("\"cpu\" line has {i} fields, need 8"))?;
        let ticks: u64 = f
            .parse()
            .map_err(|_| format!("\"cpu\" field {f:?} is not a number"))?;
        *slot = ticks as f64 / USER_HZ;
    }
    Ok(CpuTimes {
        user: v[0],
        nice: v[1],
        system: v[2],
        idle: v[3],
        iowait: v[4],
        irq: v[5],
        softirq: v[6],
        steal: v[7],
    })
}

/// Kernel activity counters since boot, from /proc/stat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatCounters {
    /// `ctxt`: context switches.
    pub context_switches: u64,
    /// `intr`, first field: interrupts serviced (all sources).
    pub interrupts: u64,
    /// `processes`: forks (processes and threads created).
    pub forks: u64,
}

/// /proc/stat: the `ctxt`, `intr` (total) and `processes` lines, all required.
pub fn parse_stat_counters(text: &str) -> Result<StatCounters, String> {
    let mut v: [Option<u64>; 3] = [None; 3];
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let i = match fields.next() {
            Some("ctxt") => 0,
            Some("intr") => 1,
            Some("processes") => 2,
            _ => continue,
        };
        let value = fields.next().unwrap_or("");
        v[i] = Some(value.parse().map_err(|_| {
            format!(
                "{:?} value {value:?} is not a number",
                ["ctxt", "intr", "processes"][i]
            )
        })?);
    }
    let [Some(context_switches), Some(interrupts), Some(forks)] = v else {
        let missing: Vec<&str> = ["ctxt", "intr", "processes"]
            .iter()
            .zip(v)
            .filter(|(_, v)| v.is_none())
            .map(|(n, _)| *n)
            .collect();
        return Err(format!("no {} line", missing.join(", ")));
    };
    Ok(StatCounters {
        context_switches,
        interrupts,
        forks,
    })
}

/// Paging and swapping counters since boot, from /proc/vmstat (in pages for swap, in events for
/// faults, as the kernel counts them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VmStat {
    /// `pgfault`: page faults, minor and major.
    pub page_faults: u64,
    /// `pgmajfault`: major page faults (the page had to be read from disk).
    pub major_page_faults: u64,
    /// `pswpin`: pages swapped in.
    pub swap_in_pages: u64,
    /// `pswpout`: pages swapped out.
    pub swap_out_pages: u64,
}

/// /proc/vmstat: `pgfault`, `pgmajfault`, `pswpin` and `pswpout`, all required (every kernel
/// since 2.6 writes them, swap or not).
pub fn parse_vmstat(text: &str) -> Result<VmStat, String> {
    const NAMES: [&str; 4] = ["pgfault", "pgmajfault", "pswpin", "pswpout"];
    let mut v: [Option<u64>; 4] = [None; 4];
    for line in text.lines() {
        let Some((key, value)) = line.split_once(' ') else {
            continue;
        };
        let Some(i) = NAMES.iter().position(|n| *n == key) else {
            continue;
        };
        let value = value.trim();
        v[i] = Some(
            value
                .parse()
                .map_err(|_| format!("{key} {value:?} is not a number"))?,
        );
    }
    let [
        Some(page_faults),
        Some(major_page_faults),
        Some(swap_in_pages),
        Some(swap_out_pages),
    ] = v
    else {
        let missing: Vec<&str> = NAMES
            .iter()
            .zip(v)
            .filter(|(_, v)| v.is_none())
            .map(|(n, _)| *n)
            .collect();
        return Err(format!("no {}", missing.join(", ")));
    };
    Ok(VmStat {
        page_faults,
        major_page_faults,
        swap_in_pages,
        swap_out_pages,
    })
}

/// /proc/meminfo: MemTotal, MemFree, MemAvailable and Cached, all required (kB x 1024).
pub fn parse_meminfo(text: &str) -> Result<MemInfo, String> {
    // [MemTotal, MemFree, MemAvailable, Cached]
    let mut v: [Option<u64>; 4] = [None; 4];
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let (Some(key), Some(value)) = (fields.next(), fields.next()) else {
            continue;
        };
        let i = match key {
            "MemTotal:" => 0,
            "MemFree:" => 1,
            "MemAvailable:" => 2,
            "Cached:" => 3,
            _ => continue,
        };
        let n: u64 = value
            .parse()
            .map_err(|_| format!("{key} {value:?} is not a number"))?;
        // coroot multiplies kB by 1000; the kernel's kB is KiB (PAGE_SIZE >> 10), hence 1024.
        let bytes = match fields.next() {
            Some("kB") => n
                .checked_mul(1024)
                .ok_or_else(|| format!("{key} overflows"))?,
            None => n,
            Some(unit) => return Err(format!("{key} has unknown unit {unit:?}")),
        };
        v[i] = Some(bytes);
    }
    let names = ["MemTotal", "MemFree", "MemAvailable", "Cached"];
    let mut out = [0u64; 4];
    for ((o, value), name) in out.iter_mut().zip(v).zip(names) {
        *o = value.ok_or_else(|| format!("no {name}"))?;
    }
    Ok(MemInfo {
        total_bytes: out[0],
        free_bytes: out[1],
        available_bytes: out[2],
        cached_bytes: out[3],
    })
}

/// Whether a /proc/diskstats device is a whole physical (or RAID/LVM/network) disk, as
/// coroot's `^(dm-\d+|(s|h|xv|v)d[a-z]|md\d+|mmcblk\d+|nvme\d+n\d+|rbd\d+)` matched in full;
/// `[a-z]+` instead of `[a-z]` so disks past the 26th (sdaa) count too. Partitions (sda1,
/// nvme0n1p1, mmcblk0p1), loop, zram, sr are excluded.
pub fn is_physical_disk(name: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let letters = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase());
    if let Some(rest) = name.strip_prefix("nvme") {
        return rest
            .split_once('n')
            .is_some_and(|(ctrl, ns)| digits(ctrl) && digits(ns));
    }
    for prefix in ["dm-", "md", "mmcblk", "rbd"] {
        if let Some(rest) = name.strip_prefix(prefix) {
            return digits(rest);
        }
    }
    for prefix in ["xvd", "sd", "hd", "vd"] {
        if let Some(rest) = name.strip_prefix(prefix) {
            return letters(rest);
        }
    }
    false
}

/// /proc/diskstats: whole physical disks (see [`is_physical_disk`]) and reasons for bad lines.
pub fn parse_diskstats(text: &str) -> (Vec<DiskStats>, Vec<String>) {
    let mut disks = Vec::new();
    let mut bad = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        let Some(&name) = fields.get(2) else {
            bad.push(format!("short line {line:?}"));
            continue;
        };
        if !is_physical_disk(name) {
            continue;
        }
        match parse_disk_fields(name, &fields[3..]) {
            Ok(d) => disks.push(d),
            Err(r) => bad.push(format!("{name}: {r}")),
        }
    }
    (disks, bad)
}

fn parse_disk_fields(name: &str, f: &[&str]) -> Result<DiskStats, String> {
    // Fields after the name (Documentation/admin-guide/iostats.rst): 0 reads, 2 sectors read,
    // 3 ms reading, 4 writes, 6 sectors written, 7 ms writing, 9 ms doing I/O.
    if f.len() < 11 {
        return Err(format!("{} counters, need 11", f.len()));
    }
    let n = |i: usize| -> Result<u64, String> {
        f[i].parse::<u64>()
            .map_err(|_| format!("counter {} {:?} is not a number", i + 1, f[i]))
    };
    Ok(DiskStats {
        device: name.to_owned(),
        reads: n(0)?,
        read_bytes: n(2)?.saturating_mul(512),
        read_time_seconds: n(3)? as f64 / 1000.0,
        writes: n(4)?,
        written_bytes: n(6)?.saturating_mul(512),
        write_time_seconds: n(7)? as f64 / 1000.0,
        io_time_seconds: n(9)? as f64 / 1000.0,
    })
}

/// Counters of one /proc/net/dev line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetDevCounters {
    /// Interface name.
    pub name: String,
    /// Receive bytes.
    pub rx_bytes: u64,
    /// Receive packets.
    pub rx_packets: u64,
    /// Transmit bytes.
    pub tx_bytes: u64,
    /// Transmit packets.
    pub tx_packets: u64,
    /// Receive errors (`errs`).
    pub rx_errors: u64,
    /// Received packets dropped (`drop`).
    pub rx_dropped: u64,
    /// Transmit errors (`errs`).
    pub tx_errors: u64,
    /// Packets dropped on transmit (`drop`).
    pub tx_dropped: u64,
}

/// /proc/net/dev: every interface's counters (no filtering) and reasons for bad lines.
pub fn parse_net_dev(text: &str) -> (Vec<NetDevCounters>, Vec<String>) {
    let mut out = Vec::new();
    let mut bad = Vec::new();
    for line in text.lines() {
        // The two header lines contain '|'; data lines are "name: 16 counters".
        if line.contains('|') || line.trim().is_empty() {
            continue;
        }
        let Some((name, counters)) = line.split_once(':') else {
            bad.push(format!("no ':' in {line:?}"));
            continue;
        };
        let name = name.trim();
        let f: Vec<&str> = counters.split_ascii_whitespace().collect();
        if name.is_empty() || f.len() < 16 {
            bad.push(format!("short line {line:?}"));
            continue;
        }
        // Receive: bytes packets errs drop ...; transmit (from field 8): the same four first.
        let mut v = [0u64; 8];
        let parsed = [0usize, 1, 2, 3, 8, 9, 10, 11]
            .iter()
            .zip(v.iter_mut())
            .all(|(&i, slot)| f[i].parse().map(|n| *slot = n).is_ok());
        if !parsed {
            bad.push(format!("{name}: non-numeric counters"));
            continue;
        }
        out.push(NetDevCounters {
            name: name.to_owned(),
            rx_bytes: v[0],
            rx_packets: v[1],
            rx_errors: v[2],
            rx_dropped: v[3],
            tx_bytes: v[4],
            tx_packets: v[5],
            tx_errors: v[6],
            tx_dropped: v[7],
        });
    }
    (out, bad)
}

/// Field `n` (numbered from 1 as in proc(5), `n >= 3`) of /proc/<pid>/stat. The command name
/// (field 2) may hold spaces and parentheses, so fields are counted after its last ')'.
/// Allocates nothing: the /proc scan calls it for every process.
pub fn pid_stat_field(stat: &str, n: usize) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_ascii_whitespace()
        .nth(n.checked_sub(3)?)?
        .parse()
        .ok()
}

/// `starttime` (field 22) of /proc/<pid>/stat: clock ticks after boot at which the process
/// started; with the pid, what tells a reused pid from the process that had it before.
pub fn parse_pid_start_ticks(stat: &str) -> Option<u64> {
    pid_stat_field(stat, 22)
}

/// The figures of /proc/<pid>/stat the agent reports about a process (its own, for process_*).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PidStat {
    /// `utime + stime` (fields 14, 15), in clock ticks.
    pub cpu_ticks: u64,
    /// `num_threads` (field 20).
    pub threads: u64,
    /// `starttime` (field 22), clock ticks after boot.
    pub start_ticks: u64,
    /// `vsize` (field 23), bytes.
    pub vsize_bytes: u64,
    /// `rss` (field 24), pages.
    pub rss_pages: u64,
}

/// /proc/<pid>/stat: the fields of [`PidStat`]; None when one is missing or not a number.
pub fn parse_pid_stat(stat: &str) -> Option<PidStat> {
    let field = |n| pid_stat_field(stat, n);
    Some(PidStat {
        cpu_ticks: field(14)? + field(15)?,
        threads: field(20)?,
        start_ticks: field(22)?,
        vsize_bytes: field(23)?,
        rss_pages: field(24)?,
    })
}

/// `btime` of /proc/stat: the boot time, seconds since the epoch.
pub fn parse_btime(stat: &str) -> Option<f64> {
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    // A real /proc/<pid>/stat line, with a command name holding ") (" to check the parser
    // anchors on the last parenthesis.
    const PID_STAT: &str = "4242 (so) (nde) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 7 0 123456 104857600 2560 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0";

    #[test]
    fn pid_stat_fields() {
        assert_eq!(
            parse_pid_stat(PID_STAT),
            Some(PidStat {
                cpu_ticks: 300,
                threads: 7,
                start_ticks: 123456,
                vsize_bytes: 104857600,
                rss_pages: 2560,
            })
        );
        assert_eq!(parse_pid_stat("garbage"), None);
        assert_eq!(parse_pid_stat("1 (x) S 1 2"), None);
        assert_eq!(pid_stat_field(PID_STAT, 3), None, "the state is a letter");
        assert_eq!(
            pid_stat_field(PID_STAT, 2),
            None,
            "the command is not a field after ')'"
        );
    }

    #[test]
    fn start_ticks_survive_odd_command_names() {
        let stat =
            "1234 (a) b (c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 50";
        assert_eq!(parse_pid_start_ticks(stat), Some(98765));
        assert_eq!(parse_pid_start_ticks("garbage"), None);
        assert_eq!(parse_pid_start_ticks("1 (x) S 1 2"), None);
        // Only up to field 22 is needed.
        assert_eq!(
            parse_pid_start_ticks("9 (x) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 77"),
            Some(77)
        );
    }

    #[test]
    fn btime() {
        assert_eq!(parse_btime("cpu  1 2 3\nbtime 1700000000\n"), Some(1.7e9));
        assert_eq!(parse_btime("cpu  1 2 3\n"), None);
        assert_eq!(parse_btime("btime x\n"), None);
    }

    const STAT: &str = "\
cpu  13667 0 5115 82653 626 0 72 83 0 0
cpu0 6218 0 2022 42736 82 0 12 38 0 0
cpu1 7449 0 3093 39916 543 0 59 45 0 0
intr 271484 0 0 0
ctxt 444290
btime 1763910000
processes 5000
procs_running 1
";

    #[test]
    fn stat_real_format() {
        let (cpu, cores) = parse_stat(STAT);
        let cpu = cpu.unwrap();
        assert_eq!(cpu.user, 136.67);
        assert_eq!(cpu.system, 51.15);
        assert_eq!(cpu.idle, 826.53);
        assert_eq!(cpu.iowait, 6.26);
        assert_eq!(cpu.softirq, 0.72);
        assert_eq!(cpu.steal, 0.83);
        assert_eq!(cores, Ok(2));
    }

    #[test]
    fn stat_malformed() {
        let (cpu, cores) = parse_stat("cpu  1 2 3\ncpu0 1 2 3 4 5 6 7 8\n");
        assert!(cpu.is_err());
        assert_eq!(cores, Ok(1));
        let (cpu, cores) = parse_stat("cpu  1 2 x 4 5 6 7 8\n");
        assert!(cpu.unwrap_err().contains("\"x\""));
        assert!(cores.is_err());
        let (cpu, cores) = parse_stat("");
        assert!(cpu.is_err() && cores.is_err());
    }

    #[test]
    fn stat_counters() {
        assert_eq!(
            parse_stat_counters(STAT),
            Ok(StatCounters {
                context_switches: 444_290,
                interrupts: 271_484,
                forks: 5000,
            })
        );
        let missing = parse_stat_counters("cpu  1 2 3\nintr 5 0 0\n").unwrap_err();
        assert!(
            missing.contains("ctxt") && missing.contains("processes"),
            "{missing}"
        );
        assert!(!missing.contains("intr"), "{missing}");
        assert!(parse_stat_counters("ctxt x\nintr 1\nprocesses 2\n").is_err());
        assert!(parse_stat_counters("ctxt\nintr 1\nprocesses 2\n").is_err());
    }

    #[test]
    fn vmstat_real_format() {
        let text = "nr_free_pages 5000\npgpgin 10\npswpin 3\npswpout 4\npgfault 22545128\npgmajfault 2004\npgfault_extra 9\n";
        assert_eq!(
            parse_vmstat(text),
            Ok(VmStat {
                page_faults: 22_545_128,
                major_page_faults: 2004,
                swap_in_pages: 3,
                swap_out_pages: 4,
            })
        );
        assert_eq!(
            parse_vmstat("pgfault 1\npgmajfault 2\n").unwrap_err(),
            "no pswpin, pswpout"
        );
        assert!(parse_vmstat("pgfault -1\npgmajfault 2\npswpin 0\npswpout 0\n").is_err());
        assert!(parse_vmstat("").is_err());
    }

    #[test]
    fn uptime() {
        assert_eq!(parse_uptime("513.61 826.53\n"), Ok(513.61));
        assert!(parse_uptime("").is_err());
        assert!(parse_uptime("abc 1").is_err());
        assert!(parse_uptime("NaN 1").is_err());
    }

    const MEMINFO: &str = "\
MemTotal:       24684084 kB
MemFree:        22916680 kB
MemAvailable:   24130996 kB
Buffers:            9996 kB
Cached:          1369064 kB
SwapCached:            0 kB
HugePages_Total:       0
Hugepagesize:       2048 kB
";

    #[test]
    fn meminfo_real_format() {
        let m = parse_meminfo(MEMINFO).unwrap();
        assert_eq!(m.total_bytes, 24_684_084 * 1024);
        assert_eq!(m.free_bytes, 22_916_680 * 1024);
        assert_eq!(m.available_bytes, 24_130_996 * 1024);
        assert_eq!(m.cached_bytes, 1_369_064 * 1024);
    }

    #[test]
    fn meminfo_malformed() {
        assert!(parse_meminfo("").unwrap_err().contains("MemTotal"));
        let missing = MEMINFO.replace("MemAvailable:   24130996 kB\n", "");
        assert!(
            parse_meminfo(&missing)
                .unwrap_err()
                .contains("MemAvailable")
        );
        let bad = MEMINFO.replace("24684084", "24x84084");
        assert!(parse_meminfo(&bad).is_err());
        let truncated = MEMINFO.replace("MemFree:        22916680 kB", "MemFree:");
        assert!(parse_meminfo(&truncated).unwrap_err().contains("MemFree"));
        assert!(parse_meminfo(&MEMINFO.replace("24684084 kB", "24684084 MB")).is_err());
    }

    #[test]
    fn disk_names() {
        for yes in [
            "sda", "sdaa", "hdb", "vda", "xvdf", "nvme0n1", "nvme12n3", "dm-0", "md127", "mmcblk0",
            "rbd0",
        ] {
            assert!(is_physical_disk(yes), "{yes}");
        }
        for no in [
            "sda1",
            "vda1",
            "xvdf1",
            "nvme0n1p1",
            "nvme0c0n1",
            "mmcblk0p1",
            "mmcblk0boot0",
            "loop0",
            "zram0",
            "sr0",
            "dm-",
            "md",
            "nvme0",
            "nvmen1",
            "ram0",
            "",
            "sd",
            "sdA",
        ] {
            assert!(!is_physical_disk(no), "{no}");
        }
    }

    const DISKSTATS: &str = "\
   7       0 loop0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
 254       0 vda 30114 5968 2567186 17055 16882 8896 2559984 5427 0 6344 23115 6322 56 498872 517 2523 116
 254       1 vda1 30000 5968 2567000 17000 16800 8896 2559900 5400 0 6300 23000 0 0 0 0 0 0
 253       0 zram0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
 259       0 nvme0n1 10 0 20 30 40 0 60 70 0 90 100
";

    #[test]
    fn diskstats_real_format() {
        let (disks, bad) = parse_diskstats(DISKSTATS);
        assert!(bad.is_empty(), "{bad:?}");
        let names: Vec<&str> = disks.iter().map(|d| d.device.as_str()).collect();
        assert_eq!(names, ["vda", "nvme0n1"]);
        let vda = &disks[0];
        assert_eq!(vda.reads, 30114);
        assert_eq!(vda.read_bytes, 2_567_186 * 512);
        assert_eq!(vda.read_time_seconds, 17.055);
        assert_eq!(vda.writes, 16882);
        assert_eq!(vda.written_bytes, 2_559_984 * 512);
        assert_eq!(vda.write_time_seconds, 5.427);
        assert_eq!(vda.io_time_seconds, 6.344);
        // Pre-4.18 kernels: 11 counters only.
        assert_eq!(disks[1].io_time_seconds, 0.09);
    }

    #[test]
    fn diskstats_malformed_lines_do_not_hide_others() {
        let text = format!("{DISKSTATS} 8 0 sda 1 2 3\n 8 16 sdb 1 2 x 4 5 6 7 8 9 10 11\n 8\n\n");
        let (disks, bad) = parse_diskstats(&text);
        assert_eq!(disks.len(), 2);
        assert_eq!(bad.len(), 3, "{bad:?}");
        assert!(bad.iter().any(|b| b.starts_with("sda")));
        assert!(bad.iter().any(|b| b.starts_with("sdb")));
    }

    const NET_DEV: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    3193      29    0    0    0     0          0         0     3193      29    0    0    0     0       0          0
  ifb0:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0
  eth0: 166448203    3539    0    0    0     0          0         0   215064    2154    0    0    0     0       0          0
";

    #[test]
    fn net_dev_real_format() {
        let (devs, bad) = parse_net_dev(NET_DEV);
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(devs.len(), 3);
        assert_eq!(
            devs[2],
            NetDevCounters {
                name: "eth0".into(),
                rx_bytes: 166_448_203,
                rx_packets: 3539,
                tx_bytes: 215_064,
                tx_packets: 2154,
                ..Default::default()
            }
        );
    }

    #[test]
    fn net_dev_malformed_lines() {
        // Old kernels print "eth0:123" without a space; a truncated and a garbage line follow.
        let text = format!(
            "{NET_DEV}eth1:10 1 0 0 0 0 0 0 20 2 0 0 0 0 0 0\neth2: 1 2 3\neth3: a b c d e f g h i j k l m n o p\nnocolon\n"
        );
        let (devs, bad) = parse_net_dev(&text);
        assert_eq!(devs.len(), 4);
        assert_eq!(devs[3].name, "eth1");
        assert_eq!(devs[3].tx_bytes, 20);
        assert_eq!(bad.len(), 3, "{bad:?}");
    }

    #[test]
    fn net_dev_errors_and_drops() {
        let text = "Inter-|\n face |\n  eth0: 10 2 3 4 0 0 0 0 20 5 6 7 0 0 0 0\n";
        let (devs, bad) = parse_net_dev(text);
        assert!(bad.is_empty(), "{bad:?}");
        let d = &devs[0];
        assert_eq!(
            (d.rx_bytes, d.rx_packets, d.rx_errors, d.rx_dropped),
            (10, 2, 3, 4)
        );
        assert_eq!(
            (d.tx_bytes, d.tx_packets, d.tx_errors, d.tx_dropped),
            (20, 5, 6, 7)
        );
    }
}
