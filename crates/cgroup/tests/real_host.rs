//! Reads this machine's real /sys/fs/cgroup for the current process and checks the figures
//! against independent sources (/proc/self/mountinfo, /proc/self/stat).
#![allow(clippy::unwrap_used)]

use std::path::Path;

use sonde_cgroup::{CgroupFs, Layout, PressureResource, ProcessCgroups};

/// Skips `test` for `reason`, or fails it when SONDE_REQUIRE_PRIVILEGED=1 (sonde-testsupport's
/// policy).
fn skip(test: &str, reason: &str) {
    sonde_testsupport::skip(test, sonde_testsupport::Needs::Privileged, reason);
}

/// Own CPU time (user + system) in seconds from /proc/self/stat, USER_HZ = 100.
fn own_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // Fields 14 and 15 of the man page; index 11/12 after "pid (comm) ".
    let utime: f64 = fields[11].parse().unwrap();
    let stime: f64 = fields[12].parse().unwrap();
    (utime + stime) / 100.0
}

fn burn_cpu() -> u64 {
    let start = std::time::Instant::now();
    let mut x = 0u64;
    while start.elapsed().as_millis() < 200 {
        for i in 0..10_000u64 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
        }
    }
    x
}

#[test]
fn reads_own_cgroup_on_this_host() {
    let root = Path::new("/sys/fs/cgroup");
    let Ok(text) = std::fs::read_to_string("/proc/self/cgroup") else {
        return skip("reads_own_cgroup_on_this_host", "no /proc/self/cgroup");
    };
    if !root.is_dir() {
        return skip("reads_own_cgroup_on_this_host", "no /sys/fs/cgroup");
    }
    let cg = ProcessCgroups::parse(&text).unwrap();
    let cgfs = CgroupFs::detect(root).unwrap();

    // Layout must agree with the mount table.
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let has_v2 = mountinfo.lines().any(|l| l.contains(" - cgroup2 "));
    let has_v1 = mountinfo.lines().any(|l| l.contains(" - cgroup "));
    let expected = match (has_v1, has_v2) {
        (true, true) => Layout::Hybrid,
        (true, false) => Layout::V1,
        (false, true) => Layout::V2,
        (false, false) => return skip("reads_own_cgroup_on_this_host", "no cgroup mounted"),
    };
    assert_eq!(
        cgfs.layout(),
        expected,
        "mountinfo says v1={has_v1} v2={has_v2}"
    );
    println!("layout {:?}, id {:?}", cgfs.layout(), cg.id());

    // A controller where this process sits in the root is never read (the root describes the
    // whole node, not a container): the readers must say so rather than return node totals.
    let cpu_path = if cgfs.layout() == Layout::V2 {
        cg.unified_path()
    } else {
        cg.v1_path("cpuacct")
    };
    if cpu_path.is_none_or(|p| p == "/") {
        assert!(cgfs.cpu(&cg).is_err(), "root cgroup read as a container");
        // Not a skip of a privileged check: there is simply nothing per-container to compare.
        println!("this process is in the root cpu cgroup; checked that it is not read");
        return;
    }

    // CPU: the cgroup holds this process, so its usage is at least our own CPU time, and grows.
    let before = cgfs.cpu(&cg).unwrap();
    let _ = std::hint::black_box(burn_cpu());
    let own = own_cpu_seconds();
    let after = cgfs.cpu(&cg).unwrap();
    assert!(
        after.usage_seconds > before.usage_seconds,
        "{before:?} -> {after:?}"
    );
    // 0.02 s slack: /proc/self/stat is in 10 ms ticks.
    assert!(
        after.usage_seconds + 0.02 >= own,
        "cgroup usage {} < own cpu time {own}",
        after.usage_seconds
    );

    // Memory: the v2 root cgroup has no memory.stat; every other cgroup holding us has rss > 0.
    let in_v2_root = cgfs.layout() == Layout::V2 && cg.unified_path() == Some("/");
    let in_v1_root = cgfs.layout() != Layout::V2 && cg.v1_path("memory").is_none_or(|p| p == "/");
    if !in_v2_root && !in_v1_root {
        let mem = cgfs.memory(&cg).unwrap();
        assert!(mem.rss_bytes > 0, "{mem:?}");
        println!("memory {mem:?}");
    }

    // PSI: whenever the unified cgroup dir has cpu.pressure, it must parse.
    if let Some(p) = cg.unified_path() {
        let unified = if cgfs.layout() == Layout::V2 {
            root.to_path_buf()
        } else {
            root.join("unified")
        };
        let file = unified.join(p.trim_start_matches('/')).join("cpu.pressure");
        let got = cgfs.pressure(&cg, PressureResource::Cpu).unwrap();
        assert_eq!(got.is_some(), p != "/" && file.exists(), "{file:?}");
        if let Some(p) = got {
            assert!(p.some_seconds >= 0.0);
        }
    }
}

/// Kills the workload and removes the test cgroups even when an assertion fails.
struct Cleanup {
    child: Option<std::process::Child>,
    dirs: Vec<std::path::PathBuf>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
        for d in &self.dirs {
            // The kernel needs a moment to uncharge a just-exited task.
            for _ in 0..50 {
                if std::fs::remove_dir(d).is_ok() || !d.exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
    }
}

/// Privileged: a real v1 cgroup with a memory limit and a CPU quota, a real workload (dd with an
/// 8 MiB buffer, throttled to 0.2 cores) moved in before exec, read through CgroupFs.
#[test]
fn real_v1_cgroup_with_limits() {
    let root = Path::new("/sys/fs/cgroup");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return skip("real_v1_cgroup_with_limits", "needs root to create cgroups");
    }
    let Ok(cgfs) = CgroupFs::detect(root) else {
        return skip("real_v1_cgroup_with_limits", "no cgroup mount");
    };
    if cgfs.layout() == Layout::V2 {
        sonde_testsupport::skip(
            "real_v1_cgroup_with_limits",
            sonde_testsupport::Needs::HostVariant,
            "v1 cgroup test on a pure v2 host",
        );
        return;
    }
    let name = format!("sonde-cgroup-test-{}", std::process::id());
    let mut cleanup = Cleanup {
        child: None,
        dirs: Vec::new(),
    };
    let mut procs_files = Vec::new();
    for controller in ["memory", "cpu", "cpuacct"] {
        let dir = root.join(controller).join(&name);
        if !dir.exists() {
            std::fs::create_dir(&dir).unwrap();
            cleanup.dirs.push(dir.clone());
        }
        procs_files.push(dir.join("cgroup.procs"));
    }
    let mem_dir = root.join("memory").join(&name);
    let cpu_dir = root.join("cpu").join(&name);
    std::fs::write(mem_dir.join("memory.limit_in_bytes"), "67108864").unwrap();
    std::fs::write(cpu_dir.join("cpu.cfs_period_us"), "100000").unwrap();
    std::fs::write(cpu_dir.join("cpu.cfs_quota_us"), "20000").unwrap();

    let moves: Vec<String> = procs_files
        .iter()
        .map(|p| format!("echo $$ > {}", p.display()))
        .collect();
    let script = format!(
        // exec: the child pid is dd itself, so killing it leaves nothing behind; the count bounds
        // it to ~35 s at 0.2 cores (dd copies ~24 GB/s per core here) should the kill never come.
        "{} && exec dd if=/dev/zero of=/dev/null bs=8M count=20000",
        moves.join(" && ")
    );
    let child = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    cleanup.child = Some(child);
    std::thread::sleep(std::time::Duration::from_millis(1500));

    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let cg = ProcessCgroups::parse(&text).unwrap();
    let expected_path = format!("/{name}");
    assert_eq!(cg.v1_path("memory"), Some(expected_path.as_str()));
    assert_eq!(cg.v1_path("cpuacct"), Some(expected_path.as_str()));

    let mem = cgfs.memory(&cg).unwrap();
    assert_eq!(mem.limit_bytes, Some(64 << 20));
    assert!(
        mem.rss_bytes >= 8 << 20,
        "dd's 8 MiB buffer must be charged: {mem:?}"
    );
    let cpu = cgfs.cpu(&cg).unwrap();
    assert_eq!(cpu.limit_cores, Some(0.2));
    assert!(cpu.usage_seconds > 0.05, "{cpu:?}");
    assert!(
        cpu.throttled_seconds > 0.0,
        "a busy dd at 0.2 cores is throttled: {cpu:?}"
    );
    println!("real v1 cgroup: {mem:?} {cpu:?}");

    // Once the cgroup is removed, reads say NotFound (normal churn), not a hard error.
    drop(cleanup);
    let err = cgfs.memory(&cg).unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    assert!(cgfs.cpu(&cg).unwrap_err().is_not_found());
}

/// The unified-hierarchy lookup by id finds a real cgroup directory from its inode.
#[test]
fn finds_a_unified_cgroup_by_its_id() {
    use std::os::unix::fs::MetadataExt;
    let root = Path::new("/sys/fs/cgroup");
    let Ok(cgfs) = CgroupFs::detect(root) else {
        return skip(
            "finds_a_unified_cgroup_by_its_id",
            "no cgroupfs at /sys/fs/cgroup",
        );
    };
    let Some(unified) = cgfs.unified_root() else {
        return skip(
            "finds_a_unified_cgroup_by_its_id",
            "no unified (v2) hierarchy mounted",
        );
    };
    // Any child directory of the unified root will do; make one when we may.
    let dir = unified.join(format!("sonde-lookup-{}", std::process::id()));
    if std::fs::create_dir(&dir).is_err() {
        return skip(
            "finds_a_unified_cgroup_by_its_id",
            "cannot create a cgroup (needs root)",
        );
    }
    let id = std::fs::metadata(&dir).unwrap().ino();
    let found = cgfs.find_unified_by_id(id);
    let _ = std::fs::remove_dir(&dir);
    assert_eq!(found, Some(format!("/sonde-lookup-{}", std::process::id())));
    assert_eq!(cgfs.find_unified_by_id(u64::MAX), None);
}
