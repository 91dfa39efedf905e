#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::Path;

use super::*;

const DOCKER: &str = "/docker/b43d92bf1e5c6f78bb9b7bc6f40721280299855ba692092716e3a1b6c0b86f3f";

fn write(root: &Path, rel: &str, content: &str) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

/// memory.stat as a 6.x v1 kernel writes it (trimmed), with distinct numbers per field.
const V1_MEMORY_STAT: &str = "\
cache 20480
rss 1015808
rss_huge 0
shmem 0
mapped_file 4096
dirty 12288
hierarchical_memory_limit 9223372036854771712
total_cache 40960
total_rss 2031616
total_rss_huge 0
total_shmem 0
total_mapped_file 8192
total_dirty 12288
";

const V2_MEMORY_STAT: &str = "\
anon 3145728
file 1048576
kernel 8192
kernel_stack 16384
sock 0
shmem 0
file_mapped 524288
file_dirty 0
";

const V2_CPU_STAT: &str = "\
usage_usec 2500000
user_usec 1500000
system_usec 1000000
nr_periods 10
nr_throttled 2
throttled_usec 750000
nr_bursts 0
burst_usec 0
";

const PSI: &str = "some avg10=0.00 avg60=0.00 avg300=0.00 total=1500000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=500000\n";

/// v1 tree: separate cpu and cpuacct mounts (as on this machine), memory, name=systemd.
fn v1_tree(root: &Path, combined_cpu: bool) {
    let (cpu, acct) = if combined_cpu {
        ("cpu,cpuacct", "cpu,cpuacct")
    } else {
        ("cpu", "cpuacct")
    };
    write(
        root,
        &format!("{acct}{DOCKER}/cpuacct.usage"),
        "3500000000\n",
    );
    write(
        root,
        &format!("{cpu}{DOCKER}/cpu.stat"),
        "nr_periods 5\nnr_throttled 1\nthrottled_time 250000000\nnr_bursts 0\nburst_time 0\n",
    );
    write(root, &format!("{cpu}{DOCKER}/cpu.cfs_quota_us"), "50000\n");
    write(
        root,
        &format!("{cpu}{DOCKER}/cpu.cfs_period_us"),
        "100000\n",
    );
    write(root, &format!("memory{DOCKER}/memory.stat"), V1_MEMORY_STAT);
    write(
        root,
        &format!("memory{DOCKER}/memory.limit_in_bytes"),
        "268435456\n",
    );
    fs::create_dir_all(root.join("systemd")).unwrap();
    if combined_cpu {
        std::os::unix::fs::symlink("cpu,cpuacct", root.join("cpu")).unwrap();
        std::os::unix::fs::symlink("cpu,cpuacct", root.join("cpuacct")).unwrap();
    }
}

fn docker_v1_process(with_unified: bool) -> ProcessCgroups {
    let mut text = format!(
        "12:pids:{DOCKER}\n11:cpu,cpuacct:{DOCKER}\n10:memory:{DOCKER}\n1:name=systemd:{DOCKER}\n"
    );
    if with_unified {
        text.push_str(&format!("0::{DOCKER}\n"));
    }
    ProcessCgroups::parse(&text).unwrap()
}

#[test]
fn v1_separate_mounts() {
    let tmp = tempfile::tempdir().unwrap();
    v1_tree(tmp.path(), false);
    let cgfs = CgroupFs::detect(tmp.path()).unwrap();
    assert_eq!(cgfs.layout(), Layout::V1);
    let cg = docker_v1_process(false);

    let cpu = cgfs.cpu(&cg).unwrap();
    assert_eq!(cpu.usage_seconds, 3.5);
    assert_eq!(cpu.throttled_seconds, 0.25);
    assert_eq!(cpu.limit_cores, Some(0.5));

    let mem = cgfs.memory(&cg).unwrap();
    assert_eq!(mem.rss_bytes, 2_031_616 + 8192);
    assert_eq!(mem.cache_bytes, 40960);
    assert_eq!(mem.limit_bytes, Some(268_435_456));

    // No unified hierarchy: no PSI, and that is not an error.
    assert_eq!(cgfs.pressure(&cg, PressureResource::Cpu).unwrap(), None);
}

#[test]
fn v1_combined_cpu_cpuacct_mount() {
    let tmp = tempfile::tempdir().unwrap();
    v1_tree(tmp.path(), true);
    let cgfs = CgroupFs::detect(tmp.path()).unwrap();
    assert_eq!(cgfs.layout(), Layout::V1);
    let cpu = cgfs.cpu(&docker_v1_process(false)).unwrap();
    assert_eq!(cpu.usage_seconds, 3.5);
    assert_eq!(cpu.limit_cores, Some(0.5));
}

#[test]
fn v1_combined_mount_without_symlinks() {
    let tmp = tempfile::tempdir().unwrap();
    v1_tree(tmp.path(), true);
    fs::remove_file(tmp.path().join("cpu")).unwrap();
    fs::remove_file(tmp.path().join("cpuacct")).unwrap();
    let cgfs = CgroupFs::detect(tmp.path()).unwrap();
    let cpu = cgfs.cpu(&docker_v1_process(false)).unwrap();
    assert_eq!(cpu.throttled_seconds, 0.25);
}

#[test]
fn v1_unlimited_and_missing_cfs_files() {
    let tmp = tempfile::tempdir().unwrap();
    v1_tree(tmp.path(), false);
    let root = tmp.path();
    write(
        root,
        &format!("memory{DOCKER}/memory.limit_in_bytes"),
        "9223372036854771712\n",
    );
    write(root, &format!("cpu{DOCKER}/cpu.cfs_quota_us"), "-1\n");
    let cgfs = CgroupFs::detect(root).unwrap();
    let cg = docker_v1_process(false);
    assert_eq!(cgfs.memory(&cg).unwrap().limit_bytes, None);
    assert_eq!(cgfs.cpu(&cg).unwrap().limit_cores, None);
    // Kernel without CFS bandwidth control: files absent, no limit, no error.
    fs::remove_file(root.join(format!("cpu{DOCKER}/cpu.cfs_quota_us"))).unwrap();
    fs::remove_file(root.join(format!("cpu{DOCKER}/cpu.cfs_period_us"))).unwrap();
    assert_eq!(cgfs.cpu(&cg).unwrap().limit_cores, None);
}

#[test]
fn v1_memory_without_total_fields_falls_back() {
    let tmp = tempfile::tempdir().unwrap();
    v1_tree(tmp.path(), false);
    write(
        tmp.path(),
        &format!("memory{DOCKER}/memory.stat"),
        "cache 20480\nrss 1015808\nmapped_file 4096\n",
    );
    let cgfs = CgroupFs::detect(tmp.path()).unwrap();
    let mem = cgfs.memory(&docker_v1_process(false)).unwrap();
    assert_eq!(mem.rss_bytes, 1_015_808 + 4096);
    assert_eq!(mem.cache_bytes, 20480);
}

#[test]
fn v1_malformed_files_are_parse_errors() {
    let tmp = tempfile::tempdir().unwrap();
    v1_tree(tmp.path(), false);
    let root = tmp.path();
    let cgfs = CgroupFs::detect(root).unwrap();
    let cg = docker_v1_process(false);

    write(root, &format!("cpuacct{DOCKER}/cpuacct.usage"), "lots\n");
    assert!(matches!(cgfs.cpu(&cg), Err(Error::Parse { .. })));
    write(root, &format!("cpuacct{DOCKER}/cpuacct.usage"), "");
    assert!(matches!(cgfs.cpu(&cg), Err(Error::Parse { .. })));
    write(root, &format!("cpuacct{DOCKER}/cpuacct.usage"), "1\n");
    write(
        root,
        &format!("cpu{DOCKER}/cpu.stat"),
        "throttled_time -5\n",
    );
    assert!(matches!(cgfs.cpu(&cg), Err(Error::Parse { .. })));

    write(
        root,
        &format!("memory{DOCKER}/memory.stat"),
        "total_rss 12x\n",
    );
    assert!(matches!(cgfs.memory(&cg), Err(Error::Parse { .. })));
    write(root, &format!("memory{DOCKER}/memory.stat"), "");
    let err = cgfs.memory(&cg).unwrap_err();
    assert!(matches!(err, Error::Parse { .. }), "{err:?}");
    assert!(err.to_string().contains("memory.stat"), "{err}");
}

#[test]
fn vanished_cgroup_is_not_found() {
    let tmp = tempfile::tempdir().unwrap();
    v1_tree(tmp.path(), false);
    let cgfs = CgroupFs::detect(tmp.path()).unwrap();
    let gone =
        ProcessCgroups::parse("4:memory:/docker/gone\n3:cpu,cpuacct:/docker/gone\n").unwrap();
    let err = cgfs.memory(&gone).unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    assert!(cgfs.cpu(&gone).unwrap_err().is_not_found());
}

#[test]
fn process_without_controller_line() {
    let tmp = tempfile::tempdir().unwrap();
    v1_tree(tmp.path(), false);
    let cgfs = CgroupFs::detect(tmp.path()).unwrap();
    let cg = ProcessCgroups::parse("12:pids:/x\n").unwrap();
    assert!(matches!(
        cgfs.memory(&cg),
        Err(Error::NoController {
            controller: "memory"
        })
    ));
    assert!(matches!(cgfs.cpu(&cg), Err(Error::NoController { .. })));
}

fn v2_tree(root: &Path, cg: &str) {
    write(
        root,
        "cgroup.controllers",
        "cpuset cpu io memory hugetlb pids rdma misc\n",
    );
    let dir = cg.trim_start_matches('/');
    write(root, &format!("{dir}/cpu.stat"), V2_CPU_STAT);
    write(root, &format!("{dir}/cpu.max"), "200000 100000\n");
    write(root, &format!("{dir}/memory.stat"), V2_MEMORY_STAT);
    write(root, &format!("{dir}/memory.max"), "536870912\n");
    write(root, &format!("{dir}/cpu.pressure"), PSI);
    write(root, &format!("{dir}/memory.pressure"), PSI);
    write(
        root,
        &format!("{dir}/io.pressure"),
        "some avg10=0.00 avg60=0.00 avg300=0.00 total=42\n",
    );
}

const K8S: &str = "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod8712f785_1a3e_41ec_a00b_e2dcc77431cb.slice/cri-containerd-73051af271105c07e1f493b34856a77e665e3b0b4fc72f76c807dfbffeb881bd.scope";

#[test]
fn v2_reads() {
    let tmp = tempfile::tempdir().unwrap();
    v2_tree(tmp.path(), K8S);
    let cgfs = CgroupFs::detect(tmp.path()).unwrap();
    assert_eq!(cgfs.layout(), Layout::V2);
    let cg = ProcessCgroups::parse(&format!("0::{K8S}\n")).unwrap();

    let cpu = cgfs.cpu(&cg).unwrap();
    assert_eq!(cpu.usage_seconds, 2.5);
    assert_eq!(cpu.throttled_seconds, 0.75);
    assert_eq!(cpu.limit_cores, Some(2.0));

    let mem = cgfs.memory(&cg).unwrap();
    assert_eq!(mem.rss_bytes, 3_145_728 + 524_288);
    assert_eq!(mem.cache_bytes, 1_048_576);
    assert_eq!(mem.limit_bytes, Some(536_870_912));

    let p = cgfs
        .pressure(&cg, PressureResource::Memory)
        .unwrap()
        .unwrap();
    assert_eq!(p.some_seconds, 1.5);
    assert_eq!(p.full_seconds, Some(0.5));
    let io = cgfs.pressure(&cg, PressureResource::Io).unwrap().unwrap();
    assert_eq!(io.some_seconds, 42e-6);
    assert_eq!(io.full_seconds, None);
}

#[test]
fn v2_unlimited_and_optional_fields() {
    let tmp = tempfile::tempdir().unwrap();
    v2_tree(tmp.path(), "/system.slice/foo.service");
    let root = tmp.path();
    let dir = "system.slice/foo.service";
    write(root, &format!("{dir}/cpu.max"), "max 100000\n");
    write(root, &format!("{dir}/memory.max"), "max\n");
    // cpu controller not enabled: no throttled_usec, no cpu.max.
    write(
        root,
        &format!("{dir}/cpu.stat"),
        "usage_usec 10\nuser_usec 5\nsystem_usec 5\n",
    );
    let cgfs = CgroupFs::detect(root).unwrap();
    let cg = ProcessCgroups::parse("0::/system.slice/foo.service\n").unwrap();
    let cpu = cgfs.cpu(&cg).unwrap();
    assert_eq!(
        (cpu.usage_seconds, cpu.throttled_seconds, cpu.limit_cores),
        (10e-6, 0.0, None)
    );
    assert_eq!(cgfs.memory(&cg).unwrap().limit_bytes, None);
    fs::remove_file(root.join(format!("{dir}/cpu.max"))).unwrap();
    fs::remove_file(root.join(format!("{dir}/memory.max"))).unwrap();
    assert_eq!(cgfs.cpu(&cg).unwrap().limit_cores, None);
    assert_eq!(cgfs.memory(&cg).unwrap().limit_bytes, None);
}

#[test]
fn v2_malformed_and_missing() {
    let tmp = tempfile::tempdir().unwrap();
    v2_tree(tmp.path(), "/a");
    let root = tmp.path();
    let cgfs = CgroupFs::detect(root).unwrap();
    let cg = ProcessCgroups::parse("0::/a\n").unwrap();

    write(root, "a/cpu.max", "lots\n");
    assert!(matches!(cgfs.cpu(&cg), Err(Error::Parse { .. })));
    write(root, "a/cpu.stat", "user_usec 5\n");
    assert!(matches!(cgfs.cpu(&cg), Err(Error::Parse { .. })));
    write(root, "a/memory.max", "-1\n");
    assert!(matches!(cgfs.memory(&cg), Err(Error::Parse { .. })));
    write(root, "a/memory.stat", "file 1\n");
    assert!(matches!(cgfs.memory(&cg), Err(Error::Parse { .. })));
    write(root, "a/cpu.pressure", "some avg10=0.00 total=x\n");
    assert!(matches!(
        cgfs.pressure(&cg, PressureResource::Cpu),
        Err(Error::Parse { .. })
    ));

    // PSI off (file absent, cgroup present) vs cgroup gone.
    fs::remove_file(root.join("a/cpu.pressure")).unwrap();
    assert_eq!(cgfs.pressure(&cg, PressureResource::Cpu).unwrap(), None);
    let gone = ProcessCgroups::parse("0::/gone\n").unwrap();
    assert!(
        cgfs.pressure(&gone, PressureResource::Cpu)
            .unwrap_err()
            .is_not_found()
    );
    assert!(cgfs.memory(&gone).unwrap_err().is_not_found());
}

#[test]
fn hybrid_reads_v1_for_resources_and_unified_for_psi() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    v1_tree(root, false);
    // The unified mount holds only PSI and core files for this cgroup (no memory controller).
    write(root, "unified/cgroup.controllers", "hugetlb\n");
    write(
        root,
        &format!("unified{DOCKER}/cpu.stat"),
        "usage_usec 999\n",
    );
    write(root, &format!("unified{DOCKER}/cpu.pressure"), PSI);
    let cgfs = CgroupFs::detect(root).unwrap();
    assert_eq!(cgfs.layout(), Layout::Hybrid);
    let cg = docker_v1_process(true);
    assert_eq!(
        cgfs.cpu(&cg).unwrap().usage_seconds,
        3.5,
        "must read v1 cpuacct, not unified"
    );
    assert_eq!(cgfs.memory(&cg).unwrap().cache_bytes, 40960);
    let p = cgfs.pressure(&cg, PressureResource::Cpu).unwrap().unwrap();
    assert_eq!(p.some_seconds, 1.5);
    assert_eq!(cgfs.pressure(&cg, PressureResource::Io).unwrap(), None);

    // A process with only the unified line (e.g. v1 lines missing) falls back to unified.
    let only_v2 = ProcessCgroups::parse(&format!("0::{DOCKER}\n")).unwrap();
    assert_eq!(cgfs.cpu(&only_v2).unwrap().usage_seconds, 999e-6);
}

#[test]
fn detect_errors() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(matches!(
        CgroupFs::detect(tmp.path()),
        Err(Error::NoHierarchy { .. })
    ));
    assert!(matches!(
        CgroupFs::detect(&tmp.path().join("missing")),
        Err(Error::NoHierarchy { .. })
    ));
    // Unknown directories alone do not make a v1 host.
    fs::create_dir_all(tmp.path().join("something")).unwrap();
    assert!(matches!(
        CgroupFs::detect(tmp.path()),
        Err(Error::NoHierarchy { .. })
    ));
    // Only a unified mount at root/unified.
    write(tmp.path(), "unified/cgroup.controllers", "");
    assert_eq!(CgroupFs::detect(tmp.path()).unwrap().layout(), Layout::V2);
}
