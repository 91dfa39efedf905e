//! Snapshot tests on fake /proc and /sys trees.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::symlink;
use std::path::Path;

use super::*;

fn write(root: &Path, rel: &str, content: &str) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

struct FixedAddresses(Vec<(&'static str, &'static str)>);

impl AddressSource for FixedAddresses {
    fn addresses(&self) -> Result<Vec<(String, IpAddr)>, Error> {
        Ok(self
            .0
            .iter()
            .map(|(n, ip)| (n.to_string(), ip.parse().unwrap()))
            .collect())
    }
}

struct FailingAddresses;

impl AddressSource for FailingAddresses {
    fn addresses(&self) -> Result<Vec<(String, IpAddr)>, Error> {
        Err(Error::Addresses {
            source: Arc::new(io::Error::from_raw_os_error(libc::EMFILE)),
        })
    }
}

const NET_DEV: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    3193      29    0    0    0     0          0         0     3193      29    0    0    0     0       0          0
  eth0: 166448203    3539    0    0    0     0          0         0   215064    2154    0    0    0     0       0          0
  ifb0:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0
 bond0:     100       1    0    0    0     0          0         0      200       2    0    0    0     0       0          0
  lan0:     300       3    0    0    0     0          0         0      400       4    0    0    0     0       0          0
 uplnk:     500       5    0    0    0     0          0         0      600       6    0    0    0     0       0          0
docker0:    700       7    0    0    0     0          0         0      800       8    0    0    0     0       0          0
veth12ab:   900       9    0    0    0     0          0         0     1000      10    0    0    0     0       0          0
   wg0:     110      11    0    0    0     0          0         0      120      12    0    0    0     0       0          0
";

/// A fake host: /proc files copied from this machine, and a /sys/class/net with
/// eth0 (virtio, has device), ifb0 (virtual), bond0 (bonding), lan0 (physical NIC with an
/// unusual name), uplnk (bridge with lan0 as port), docker0 (bridge with a veth port), veth12ab,
/// wg0 (virtual, operstate unknown, IFF_UP set).
fn fake_host(root: &Path) -> NodePaths {
    let proc = root.join("proc");
    let sys = root.join("sys");
    write(&proc, "sys/kernel/hostname", "node-1\n");
    write(&proc, "sys/kernel/osrelease", "6.18.44-fc-v669\n");
    write(&proc, "uptime", "513.61 826.53\n");
    write(
        &proc,
        "stat",
        "cpu  13667 0 5115 82653 626 0 72 83 0 0\ncpu0 6218 0 2022 42736 82 0 12 38 0 0\ncpu1 7449 0 3093 39916 543 0 59 45 0 0\nintr 1 0\nctxt 444290\nprocesses 5000\n",
    );
    write(
        &proc,
        "vmstat",
        "pswpin 0\npswpout 0\npgfault 22545128\npgmajfault 2004\n",
    );
    write(
        &proc,
        "meminfo",
        "MemTotal:       24684084 kB\nMemFree:        22916680 kB\nMemAvailable:   24130996 kB\nBuffers:            9996 kB\nCached:          1369064 kB\n",
    );
    write(
        &proc,
        "diskstats",
        "   7       0 loop0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n 254       0 vda 30114 5968 2567186 17055 16882 8896 2559984 5427 0 6344 23115 6322 56 498872 517 2523 116\n 254       1 vda1 1 1 1 1 1 1 1 1 0 1 1 0 0 0 0 0 0\n",
    );
    write(&proc, "net/dev", NET_DEV);

    let net = sys.join("class/net");
    let iface = |name: &str, operstate: &str, flags: &str| {
        write(
            &net,
            &format!("{name}/operstate"),
            &format!("{operstate}\n"),
        );
        write(&net, &format!("{name}/flags"), &format!("{flags}\n"));
    };
    iface("lo", "unknown", "0x9");
    iface("eth0", "up", "0x1003");
    symlink("../../../virtio2", net.join("eth0/device")).unwrap();
    iface("ifb0", "down", "0x82");
    iface("bond0", "up", "0x1403");
    fs::create_dir_all(net.join("bond0/bonding")).unwrap();
    iface("lan0", "down", "0x1002");
    fs::create_dir_all(net.join("lan0/device")).unwrap();
    iface("uplnk", "up", "0x1003");
    fs::create_dir_all(net.join("uplnk/bridge")).unwrap();
    fs::create_dir_all(net.join("uplnk/brif/lan0")).unwrap();
    iface("docker0", "up", "0x1003");
    fs::create_dir_all(net.join("docker0/bridge")).unwrap();
    fs::create_dir_all(net.join("docker0/brif/veth12ab")).unwrap();
    iface("veth12ab", "up", "0x1003");
    iface("wg0", "unknown", "0x91");

    write(
        &sys,
        "class/dmi/id/product_uuid",
        "  EC2A1B2C-3D4E-5F60-7182-93A4B5C6D7E8\n",
    );
    write(
        root,
        "host/etc/machine-id",
        "3d1219c7c4c5404aaa1f6d2a48adfda4\n",
    );
    NodePaths {
        procfs: proc,
        sysfs: sys,
        host_root: root.join("host"),
    }
}

fn addresses() -> FixedAddresses {
    FixedAddresses(vec![
        ("lo", "127.0.0.1"),
        ("eth0", "192.0.2.2"),
        ("eth0", "fd00::2"),
        ("eth0", "fe80::fc:ff:fe00:1"),
        ("eth0:1", "192.0.2.3"),
        ("eth0", "192.0.2.2"),
        ("uplnk", "198.51.100.7"),
        ("docker0", "172.17.0.1"),
    ])
}

#[test]
fn full_snapshot_from_fake_host() {
    let tmp = tempfile::tempdir().unwrap();
    let paths = fake_host(tmp.path());
    let snap = read_snapshot_with(&paths, &addresses());
    assert!(snap.errors.is_empty(), "{:?}", snap.errors);
    assert_eq!(snap.hostname.as_deref(), Some("node-1"));
    assert_eq!(snap.kernel_version.as_deref(), Some("6.18.44-fc-v669"));
    assert_eq!(snap.uptime_seconds, Some(513.61));
    assert_eq!(snap.cpu.unwrap().idle, 826.53);
    assert_eq!(snap.logical_cores, Some(2));
    assert_eq!(snap.memory.unwrap().total_bytes, 24_684_084 * 1024);
    let disks: Vec<&str> = snap.disks.iter().map(|d| d.device.as_str()).collect();
    assert_eq!(disks, ["vda"]);

    let names: Vec<&str> = snap.interfaces.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["eth0", "bond0", "lan0", "uplnk"]);
    let eth0 = &snap.interfaces[0];
    assert!(eth0.up);
    assert_eq!(
        (
            eth0.rx_bytes,
            eth0.rx_packets,
            eth0.tx_bytes,
            eth0.tx_packets
        ),
        (166_448_203, 3539, 215_064, 2154)
    );
    let ips: Vec<String> = eth0.ips.iter().map(ToString::to_string).collect();
    assert_eq!(
        ips,
        ["192.0.2.2", "fd00::2", "192.0.2.3"],
        "link-local dropped, alias folded, deduped"
    );
    assert!(!snap.interfaces[2].up, "lan0 operstate down");
    assert_eq!(
        snap.interfaces[3].ips,
        vec!["198.51.100.7".parse::<IpAddr>().unwrap()]
    );

    assert_eq!(
        machine_id(&paths).as_deref(),
        Some("3d1219c7c4c5404aaa1f6d2a48adfda4")
    );
    assert_eq!(
        system_uuid(&paths).as_deref(),
        Some("ec2a1b2c-3d4e-5f60-7182-93a4b5c6d7e8")
    );
}

#[test]
fn up_falls_back_to_iff_up_when_operstate_unknown() {
    let tmp = tempfile::tempdir().unwrap();
    let paths = fake_host(tmp.path());
    assert!(net::is_up(&paths.sysfs, "wg0"), "unknown + IFF_UP");
    assert!(!net::is_up(&paths.sysfs, "ifb0"));
    write(&paths.sysfs, "class/net/wg0/flags", "0x90\n");
    assert!(!net::is_up(&paths.sysfs, "wg0"), "unknown without IFF_UP");
    write(&paths.sysfs, "class/net/wg0/flags", "garbage\n");
    assert!(!net::is_up(&paths.sysfs, "wg0"));
    assert!(!net::is_up(&paths.sysfs, "missing0"));
}

#[test]
fn interface_filter_without_sysfs_uses_names() {
    let tmp = tempfile::tempdir().unwrap();
    let none = tmp.path().join("nosys");
    assert!(net::is_reported_interface(&none, "eth0"));
    assert!(net::is_reported_interface(&none, "ens5"));
    assert!(!net::is_reported_interface(&none, "lan0"));
    assert!(!net::is_reported_interface(&none, "lo"));
    assert!(!net::is_reported_interface(&none, "../x"));
}

#[test]
fn address_failure_keeps_interfaces() {
    let tmp = tempfile::tempdir().unwrap();
    let paths = fake_host(tmp.path());
    let snap = read_snapshot_with(&paths, &FailingAddresses);
    assert_eq!(snap.interfaces.len(), 4);
    assert!(snap.interfaces.iter().all(|i| i.ips.is_empty()));
    assert_eq!(snap.errors.len(), 1);
    assert!(matches!(snap.errors[0], Error::Addresses { .. }));
}

#[test]
fn each_part_fails_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let paths = fake_host(tmp.path());
    let proc = &paths.procfs;
    write(
        proc,
        "stat",
        "cpu  1 2 three 4 5 6 7 8\ncpu0 1 2 3 4 5 6 7 8\n",
    );
    write(proc, "meminfo", "");
    fs::remove_file(proc.join("uptime")).unwrap();
    write(proc, "sys/kernel/hostname", "\n");
    write(
        proc,
        "diskstats",
        " 254 0 vda 1 2\n 254 16 vdb 1 2 3 4 5 6 7 8 9 10 11\n",
    );
    let snap = read_snapshot_with(&paths, &addresses());

    assert_eq!(snap.hostname, None);
    assert_eq!(snap.kernel_version.as_deref(), Some("6.18.44-fc-v669"));
    assert_eq!(snap.uptime_seconds, None);
    assert_eq!(snap.cpu, None);
    assert_eq!(snap.logical_cores, Some(1), "cores still counted");
    assert_eq!(snap.memory, None);
    assert_eq!(snap.disks.len(), 1, "vdb survives vda's truncated line");
    assert_eq!(snap.interfaces.len(), 4);

    let rendered: Vec<String> = snap.errors.iter().map(ToString::to_string).collect();
    // /stat twice: its cpu line and its missing ctxt/intr/processes lines.
    assert_eq!(snap.errors.len(), 6, "{rendered:#?}");
    let has = |file: &str| rendered.iter().any(|e| e.contains(file));
    for file in ["hostname", "uptime", "/stat", "meminfo", "diskstats"] {
        assert!(has(file), "no error for {file}: {rendered:#?}");
    }
    assert!(matches!(
        snap.errors
            .iter()
            .find(|e| e.to_string().contains("uptime")),
        Some(Error::Io { .. })
    ));
}

#[test]
fn empty_roots_give_errors_not_panics() {
    let tmp = tempfile::tempdir().unwrap();
    let paths = NodePaths {
        procfs: tmp.path().join("proc"),
        sysfs: tmp.path().join("sys"),
        host_root: tmp.path().join("host"),
    };
    let snap = read_snapshot_with(&paths, &addresses());
    assert!(snap.hostname.is_none() && snap.cpu.is_none() && snap.memory.is_none());
    assert!(snap.disks.is_empty() && snap.interfaces.is_empty());
    // hostname, osrelease, uptime, stat, vmstat, meminfo, diskstats, net/dev.
    assert_eq!(snap.errors.len(), 8, "{:?}", snap.errors);
    assert_eq!(machine_id(&paths), None);
    assert_eq!(system_uuid(&paths), None);
}

#[test]
fn machine_id_falls_back_to_dbus() {
    let tmp = tempfile::tempdir().unwrap();
    let paths = fake_host(tmp.path());
    write(&paths.host_root, "etc/machine-id", "\n");
    assert_eq!(machine_id(&paths), None);
    write(&paths.host_root, "var/lib/dbus/machine-id", "abc123\n");
    assert_eq!(machine_id(&paths).as_deref(), Some("abc123"));
    write(&paths.sysfs, "class/dmi/id/product_uuid", "   \n");
    assert_eq!(system_uuid(&paths), None);
}

#[test]
fn host_procfs_paths() {
    let p = NodePaths::with_host_procfs("/host/proc");
    assert_eq!(p.host_root, Path::new("/host/proc/1/root"));
    assert_eq!(p.sysfs, Path::new("/sys"));
    let d = NodePaths::default();
    assert_eq!(
        (d.procfs.as_path(), d.host_root.as_path()),
        (Path::new("/proc"), Path::new("/"))
    );
}
