//! Reads this machine's real /proc and /sys and checks the snapshot against independent sources
//! (uname, /sys/block, /sys/devices/system/cpu/online, a hand parse of /proc/meminfo).
#![allow(clippy::unwrap_used)]

use std::ffi::CStr;
use std::path::Path;

use sonde_node::{NodePaths, machine_id, procfs, read_snapshot, system_uuid};

/// Skips `test` for `reason`, or fails it when SONDE_REQUIRE_PRIVILEGED=1 (sonde-testsupport's
/// policy).
fn skip(test: &str, reason: &str) {
    sonde_testsupport::skip(test, sonde_testsupport::Needs::Privileged, reason);
}

fn uname() -> (String, String) {
    // SAFETY: utsname is plain old data; uname fills it with NUL-terminated strings.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::uname(&mut u) }, 0);
    let s = |f: &[libc::c_char]| {
        unsafe { CStr::from_ptr(f.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    };
    (s(&u.nodename), s(&u.release))
}

/// Number of CPUs in a sysfs list such as "0-1,4,6-7".
fn count_cpu_list(list: &str) -> u32 {
    list.trim()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|r| match r.split_once('-') {
            Some((a, b)) => b.parse::<u32>().unwrap() - a.parse::<u32>().unwrap() + 1,
            None => 1,
        })
        .sum()
}

#[test]
fn snapshot_of_this_machine_is_consistent() {
    if !Path::new("/proc/stat").exists() || !Path::new("/sys/class/net").exists() {
        return skip("snapshot_of_this_machine_is_consistent", "no /proc or /sys");
    }
    let paths = NodePaths::default();
    let snap = read_snapshot(&paths);
    assert!(snap.errors.is_empty(), "{:?}", snap.errors);

    let (nodename, release) = uname();
    assert_eq!(snap.hostname.as_deref(), Some(nodename.as_str()));
    assert_eq!(snap.kernel_version.as_deref(), Some(release.as_str()));
    assert!(snap.uptime_seconds.unwrap() > 0.0);

    // Memory: MemTotal parsed by hand, kB = 1024 bytes.
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kb: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    let mem = snap.memory.unwrap();
    assert_eq!(mem.total_bytes, kb * 1024);
    assert!(mem.available_bytes <= mem.total_bytes && mem.free_bytes <= mem.total_bytes);

    // CPU: /proc/stat lists online CPUs.
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
    let cores = snap.logical_cores.unwrap();
    assert_eq!(cores, count_cpu_list(&online));
    let nproc = std::thread::available_parallelism().unwrap().get() as u32;
    assert!(nproc <= cores, "available_parallelism {nproc} > {cores}");
    let cpu = snap.cpu.unwrap();
    assert!(cpu.idle > 0.0 && cpu.user + cpu.system > 0.0, "{cpu:?}");
    // Counters only grow.
    let again = read_snapshot(&paths).cpu.unwrap();
    assert!(again.idle >= cpu.idle && again.user >= cpu.user);

    // Disks: exactly the physical-named entries of /sys/block (partitions are not there).
    let mut expected: Vec<String> = std::fs::read_dir("/sys/block")
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| procfs::is_physical_disk(n))
        .collect();
    expected.sort();
    let mut got: Vec<String> = snap.disks.iter().map(|d| d.device.clone()).collect();
    got.sort();
    assert_eq!(got, expected);

    // Interfaces: never lo, each exists in sysfs; every interface with a device link is there.
    for i in &snap.interfaces {
        assert_ne!(i.name, "lo");
        assert!(
            Path::new("/sys/class/net").join(&i.name).exists(),
            "{}",
            i.name
        );
        for ip in &i.ips {
            assert!(!ip.is_loopback() && !ip.is_multicast(), "{ip}");
        }
    }
    for entry in std::fs::read_dir("/sys/class/net").unwrap() {
        let entry = entry.unwrap();
        if entry.path().join("device").exists() {
            let name = entry.file_name().into_string().unwrap();
            assert!(
                snap.interfaces.iter().any(|i| i.name == name),
                "physical {name} missing"
            );
        }
    }
    println!("interfaces: {:?}", snap.interfaces);

    // Identity.
    match std::fs::read_to_string("/etc/machine-id") {
        Ok(id) if !id.trim().is_empty() => {
            assert_eq!(machine_id(&paths).as_deref(), Some(id.trim()))
        }
        _ => {}
    }
    let dmi = Path::new("/sys/class/dmi/id/product_uuid");
    assert_eq!(
        system_uuid(&paths).is_some(),
        dmi.exists() && std::fs::read(dmi).is_ok()
    );
}
