//! Scrape-time reading of a container's volumes (`container_resources_disk_*{mount_point,device,
//! volume}`) and of its application types (`container_application_type{application_type}`),
//! with the state kept between scrapes; sonde-exporter renders the readings.
//!
//! Volumes: the writable block-device mounts of the container's mount namespace (read from one
//! of its processes' `/proc/<pid>/mountinfo`), sized with statvfs through
//! `/proc/<pid>/root/<mount point>`; the exporter adds the cgroup's I/O on the mount's whole
//! disk (cgroups account per disk; see docs/cgroup-node.md). Processes in the host's mount namespace (systemd
//! services, host processes) get none: every host mount would be "theirs".
//!
//! Application types: guessed once per process (pid and start time) from its command line,
//! its binary failing that; an unknown process is looked at again on its next
//! [`APPTYPE_CHECKS`] - 1 scrapes, since a process found as `sh` may exec postgres a moment later.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::PoisonError;
use std::sync::atomic::{AtomicU64, Ordering};

use sonde_cgroup::CgroupFs;
use sonde_volumes::{BlockDevices, Mount};

use crate::exported::ExportedContainer;

/// Data mounts rendered per container; more are dropped and counted (a container with
/// hundreds of block-device mounts would otherwise make hundreds of series).
pub const MAX_MOUNTS_PER_CONTAINER: usize = 64;
/// Times an unknown process is looked at before it is settled as having no type.
pub const APPTYPE_CHECKS: u8 = 3;
/// Processes whose type is remembered; beyond it a process is classified on every scrape
/// (correct, only slower) and counted.
pub const MAX_APPTYPE_CACHE: usize = 65_536;

/// Disks whose v1 blkio accounting was switched on (at most this many are remembered).
const MAX_ACTIVATED_DISKS: usize = 4096;

/// Settings of this module, from the CLI.
#[derive(Debug, Clone, Default)]
pub struct ResourcesConfig {
    /// `--enable-blkio-accounting`: on cgroup v1 blkio, switch on per-cgroup I/O counting of the
    /// disks container volumes live on (see [`CgroupFs::activate_blkio_stats`]).
    pub enable_blkio_accounting: bool,
    /// `--disable-gpu-monitoring`: do not load NVML.
    pub disable_gpu_monitoring: bool,
    /// `--nvml-library`: NVML's path instead of the driver's usual places under the host root.
    pub nvml_library: Option<PathBuf>,
    /// `--disable-pinger`: no ICMP, no container_net_latency_seconds.
    pub disable_pinger: bool,
}

/// State kept between scrapes, and the counters of what went wrong.
#[derive(Debug)]
pub struct Resources {
    config: ResourcesConfig,
    /// Disks whose blkio accounting this agent switched on (or tried to).
    activated: Mutex<std::collections::HashSet<(u32, u32)>>,
    procfs: PathBuf,
    devices: BlockDevices,
    /// systemd unit files under the host root, and what they said per container key.
    units: sonde_systemd::UnitFiles,
    systemd: Mutex<HashMap<String, sonde_systemd::UnitInfo>>,
    /// NVML, when this node has it and GPU monitoring is on.
    gpu: Option<Mutex<sonde_gpu::Nvml>>,
    /// The upstream pinger (latency.rs).
    latency: Option<crate::latency::Latency>,
    apptypes: Mutex<HashMap<(u32, u64), AppTypeEntry>>,
    /// Data mounts beyond [`MAX_MOUNTS_PER_CONTAINER`], per scrape.
    pub mounts_dropped: AtomicU64,
    /// mountinfo or statvfs failures other than a vanished process.
    pub volume_errors: AtomicU64,
    /// Processes not cached because the cache was full, per scrape.
    pub apptype_uncached: AtomicU64,
}

#[derive(Debug, Clone, Copy)]
struct AppTypeEntry {
    app: Option<&'static str>,
    checks: u8,
    seen: bool,
}

impl Resources {
    pub fn new(procfs: &Path, sysfs: &Path, config: ResourcesConfig) -> Resources {
        Resources {
            config,
            activated: Mutex::new(Default::default()),
            procfs: procfs.to_owned(),
            devices: BlockDevices::new(sysfs),
            units: sonde_systemd::UnitFiles::new(Path::new("/")),
            systemd: Mutex::new(HashMap::new()),
            gpu: None,
            latency: None,
            apptypes: Mutex::new(HashMap::new()),
            mounts_dropped: AtomicU64::new(0),
            volume_errors: AtomicU64::new(0),
            apptype_uncached: AtomicU64::new(0),
        }
    }

    /// Reads unit files under `host_root` (default "/") for systemd services.
    pub fn with_host_root(mut self, host_root: &Path) -> Resources {
        self.units = sonde_systemd::UnitFiles::new(host_root);
        self
    }

    /// Adds the GPU collector (see gpu.rs).
    pub fn with_gpu(mut self, gpu: Option<Mutex<sonde_gpu::Nvml>>) -> Resources {
        self.gpu = gpu;
        self
    }

    /// Adds the pinger (see latency.rs).
    pub fn with_latency(mut self, latency: Option<crate::latency::Latency>) -> Resources {
        self.latency = latency;
        self
    }

    /// Sets `systemd` of every systemd-service container: looked up in the unit files once per
    /// container (its unit does not change under it), forgotten with the container.
    pub fn fill_systemd(&self, containers: &mut [ExportedContainer]) {
        let mut cache = self.systemd.lock().unwrap_or_else(PoisonError::into_inner);
        // Bounded by the exported containers: entries of vanished ones go at every scrape.
        let live: std::collections::HashSet<&str> =
            containers.iter().map(|c| c.key.as_str()).collect();
        cache.retain(|key, _| live.contains(key.as_str()));
        for c in containers.iter_mut() {
            let Some(unit) = sonde_systemd::unit_of_cgroup(&c.key) else {
                continue;
            };
            c.systemd = cache
                .entry(c.key.clone())
                .or_insert_with(|| self.units.info(unit).unwrap_or_default())
                .clone();
        }
    }

    /// The application type of one process, from the cache or its /proc files.
    fn app_type(
        &self,
        cache: &mut HashMap<(u32, u64), AppTypeEntry>,
        pid: u32,
        start: u64,
        buf: &mut PathBuf,
    ) -> Option<&'static str> {
        if let Some(e) = cache.get_mut(&(pid, start)) {
            e.seen = true;
            if e.app.is_some() || e.checks >= APPTYPE_CHECKS {
                return e.app;
            }
        }
        let app = self.classify(pid, buf);
        let full = cache.len() >= MAX_APPTYPE_CACHE;
        match cache.get_mut(&(pid, start)) {
            Some(e) => {
                e.app = app;
                e.checks = e.checks.saturating_add(1);
            }
            None if !full => {
                cache.insert(
                    (pid, start),
                    AppTypeEntry {
                        app,
                        checks: 1,
                        seen: true,
                    },
                );
            }
            None => {
                self.apptype_uncached.fetch_add(1, Ordering::Relaxed);
            }
        }
        app
    }

    fn classify(&self, pid: u32, buf: &mut PathBuf) -> Option<&'static str> {
        buf.clear();
        buf.push(&self.procfs);
        component(buf, format_args!("{pid}/cmdline"));
        let cmdline = std::fs::read(&*buf).ok()?;
        if cmdline.is_empty() {
            return None; // kernel thread or zombie
        }
        if let Some(app) = sonde_apptype::guess_by_cmdline(&cmdline) {
            return Some(app);
        }
        buf.set_file_name("exe");
        let exe = std::fs::read_link(&*buf).ok()?;
        sonde_apptype::guess_by_exe(exe.as_os_str().as_bytes())
    }

    /// Switches on v1 blkio accounting of a disk once (when enabled and needed).
    fn activate(&self, fs: &CgroupFs, dev: (u32, u32)) {
        if !self.config.enable_blkio_accounting || !fs.uses_v1_blkio() {
            return;
        }
        let mut done = self
            .activated
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if done.contains(&dev) || done.len() >= MAX_ACTIVATED_DISKS {
            return;
        }
        done.insert(dev);
        match fs.activate_blkio_stats(dev.0, dev.1) {
            Ok(_) => tracing::info!(
                device = %format_args!("{}:{}", dev.0, dev.1),
                "Switched on cgroup v1 blkio accounting (a rule with no limit)"
            ),
            Err(e) => tracing::warn!(
                device = %format_args!("{}:{}", dev.0, dev.1),
                error = %e,
                "Cannot switch on cgroup v1 blkio accounting: container disk I/O of this disk stays absent"
            ),
        }
    }

    /// The host's mount namespace: pid 1's in the procfs root, else the agent's own (pid 1's
    /// namespace links can be closed even to root, as on this project's VMs; an agent that
    /// cannot read them runs in the host's namespace in every deployment sonde supports, and
    /// one in a namespace of its own is given the host's /proc with pid 1 readable).
    fn host_mnt_ns(&self) -> Option<u64> {
        ["1/ns/mnt", "self/ns/mnt"]
            .iter()
            .find_map(|p| std::fs::metadata(self.procfs.join(p)).ok())
            .map(|m| m.ino())
    }

    /// The data mounts of a container, from the first of its processes that answers, and that
    /// process's pid; None when it shares the host's mount namespace or all its processes are
    /// gone.
    fn mounts(&self, pids: &[(u32, u64)], host_ns: Option<u64>) -> Option<(u32, Vec<Mount>)> {
        for &(pid, _) in pids {
            let dir = self.procfs.join(pid.to_string());
            let Ok(ns) = std::fs::metadata(dir.join("ns/mnt")) else {
                continue; // exited
            };
            if Some(ns.ino()) == host_ns {
                return None;
            }
            let text = match std::fs::read_to_string(dir.join("mountinfo")) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(_) => {
                    self.volume_errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            };
            let (all, bad) = sonde_volumes::parse_mountinfo(&text);
            self.volume_errors.fetch_add(bad as u64, Ordering::Relaxed);
            let mut data: Vec<Mount> = Vec::new();
            for m in all.into_iter().filter(sonde_volumes::is_data_mount) {
                // A later mount on the same point hides the earlier one.
                data.retain(|d| d.mount_point != m.mount_point);
                data.push(m);
            }
            if data.len() > MAX_MOUNTS_PER_CONTAINER {
                let extra = data.len() - MAX_MOUNTS_PER_CONTAINER;
                self.mounts_dropped
                    .fetch_add(extra as u64, Ordering::Relaxed);
                data.truncate(MAX_MOUNTS_PER_CONTAINER);
            }
            return Some((pid, data));
        }
        None
    }
}

/// At start: on cgroup v1 blkio with Linux >= 6.10 and `--enable-blkio-accounting` off,
/// warns once that per-container disk I/O will be absent and how to fix it.
pub fn warn_if_blkio_inactive(fs: &CgroupFs, procfs: &Path, config: &ResourcesConfig) {
    if config.enable_blkio_accounting || !fs.uses_v1_blkio() {
        return;
    }
    let release = std::fs::read_to_string(procfs.join("sys/kernel/osrelease")).unwrap_or_default();
    if lazy_blk_throttle(&release) {
        tracing::warn!(
            kernel = release.trim(),
            "cgroup v1 blkio counts a container's disk I/O only on disks with a throttle rule (Linux >= 6.10): container_resources_disk_{{reads,writes,read_bytes,written_bytes}}_total stay absent. Fix: start the agent with --enable-blkio-accounting (adds a rule with no limit per volume disk) or move the node to cgroup v2"
        );
    }
}

/// Whether a kernel release ("6.18.44-fc") sets up blk-throttle lazily (6.10 and later).
fn lazy_blk_throttle(release: &str) -> bool {
    let mut parts = release.trim().split(['.', '-']);
    let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (major, minor) >= (6, 10)
}

/// `write!` into a PathBuf as one more component (`write!` calls `write_str` in pieces, so the
/// separator is added once, by [`component`]).
struct PathWriter<'a>(&'a mut PathBuf);

impl std::fmt::Write for PathWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.as_mut_os_string().push(s);
        Ok(())
    }
}

/// Appends `/` and a formatted component to `path` without a temporary String.
fn component(path: &mut PathBuf, args: std::fmt::Arguments<'_>) {
    path.as_mut_os_string().push("/");
    let _ = PathWriter(path).write_fmt(args);
}

/// One container's volumes and application types, as one scrape read them.
#[derive(Debug, Clone, Default)]
pub struct ContainerResources {
    /// The application types of its processes (sorted, each once).
    pub app_types: BTreeSet<&'static str>,
    /// Its data mounts that could be measured.
    pub volumes: Vec<VolumeReading>,
}

/// One data mount of a container: where, on which disk, how full.
#[derive(Debug, Clone)]
pub struct VolumeReading {
    pub mount_point: String,
    /// The disk's name (empty when the partition's disk is unknown).
    pub device: String,
    /// The disk's (major, minor): the key of the cgroup's block I/O counters.
    pub dev: (u32, u32),
    /// The volume's name (the `volume` label; empty when the runtime named none).
    pub volume: String,
    pub fs: sonde_volumes::FsStat,
}

/// What went wrong reading resources (`sonde_volume_*`, `sonde_apptype_uncached_total`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResourcesCounts {
    pub mounts_dropped: u64,
    pub volume_errors: u64,
    pub apptype_uncached: u64,
}

impl Resources {
    /// Reads the volumes and application types of every exported container (in their order),
    /// keeping the application-type cache and switching on blkio accounting of their disks.
    /// The cgroup's block I/O counters are the exporter's to read (per container with volumes).
    pub fn read(
        &self,
        containers: &[ExportedContainer],
        cgroupfs: Option<&CgroupFs>,
    ) -> Vec<ContainerResources> {
        let host_ns = self.host_mnt_ns();
        let mut disks: HashMap<(u32, u32), Option<sonde_volumes::Disk>> = HashMap::new();
        let mut path = PathBuf::new();
        let mut cache = self.apptypes.lock().unwrap_or_else(PoisonError::into_inner);
        for e in cache.values_mut() {
            e.seen = false;
        }
        let mut out = Vec::with_capacity(containers.len());
        for c in containers {
            let mut reading = ContainerResources::default();
            for &(pid, start) in &c.pids {
                if let Some(app) = self.app_type(&mut cache, pid, start, &mut path) {
                    reading.app_types.insert(app);
                }
            }
            let mounts = match self.mounts(&c.pids, host_ns) {
                Some((pid, mounts)) => mounts.into_iter().map(move |m| (pid, m)).collect(),
                None => Vec::new(),
            };
            for (pid, m) in mounts {
                path.clear();
                path.push(&self.procfs);
                component(&mut path, format_args!("{pid}/root"));
                path.push(m.mount_point.trim_start_matches('/'));
                let fs = match sonde_volumes::statfs(&path) {
                    Ok(fs) => fs,
                    Err(e) => {
                        if !e.is_not_found() {
                            self.volume_errors.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(error = %e, "Failed to statfs a container mount");
                        }
                        continue;
                    }
                };
                let disk = disks
                    .entry((m.major, m.minor))
                    .or_insert_with(|| self.devices.disk(m.major, m.minor));
                let (device, dev) = match disk {
                    Some(d) => (d.name.clone(), (d.major, d.minor)),
                    None => (String::new(), (m.major, m.minor)),
                };
                if let Some(fs) = cgroupfs {
                    self.activate(fs, dev);
                }
                let volume = c.volumes.get(&m.mount_point).cloned().unwrap_or_default();
                reading.volumes.push(VolumeReading {
                    mount_point: m.mount_point,
                    device,
                    dev,
                    volume,
                    fs,
                });
            }
            out.push(reading);
        }
        // Forget processes no exported container has any more.
        cache.retain(|_, e| e.seen);
        out
    }

    /// The counters of what went wrong so far.
    pub fn counts(&self) -> ResourcesCounts {
        ResourcesCounts {
            mounts_dropped: self.mounts_dropped.load(Ordering::Relaxed),
            volume_errors: self.volume_errors.load(Ordering::Relaxed),
            apptype_uncached: self.apptype_uncached.load(Ordering::Relaxed),
        }
    }

    /// The pinger, when it runs.
    pub fn latency(&self) -> Option<&crate::latency::Latency> {
        self.latency.as_ref()
    }

    /// NVML, when this node has it and GPU monitoring is on.
    pub fn gpu(&self) -> Option<&Mutex<sonde_gpu::Nvml>> {
        self.gpu.as_ref()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::fs;

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    /// A fake host: /proc with pid 1 (host) and pids 10 (postgres) and 11 (a shell that turns
    /// into redis), /sys with loop0, a v1 blkio tree.
    fn host(root: &Path) -> (PathBuf, PathBuf, PathBuf) {
        let (procfs, sysfs, cg) = (root.join("proc"), root.join("sys"), root.join("cgroup"));
        write(&procfs, "1/ns/mnt", "host");
        write(&procfs, "10/ns/mnt", "container");
        write(&procfs, "10/cmdline", "postgres: checkpointer \0");
        write(
            &procfs,
            "10/mountinfo",
            "1 0 0:50 / / rw - overlay overlay rw\n2 1 7:0 / /data rw,relatime - ext4 /dev/loop0 rw\n3 1 254:0 /x/hosts /etc/hosts rw - ext4 /dev/vda rw\n4 1 7:0 / /ro ro - ext4 /dev/loop0 rw\n",
        );
        fs::create_dir_all(procfs.join("10/root/data")).unwrap();
        write(&procfs, "11/ns/mnt", "container");
        write(&procfs, "11/cmdline", "sh\0-c\0exec redis-server\0");
        fs::create_dir_all(sysfs.join("devices/virtual/block/loop0")).unwrap();
        fs::create_dir_all(sysfs.join("dev/block")).unwrap();
        std::os::unix::fs::symlink(
            "../../devices/virtual/block/loop0",
            sysfs.join("dev/block/7:0"),
        )
        .unwrap();
        write(
            &cg,
            "blkio/docker/db/blkio.throttle.io_serviced",
            "7:0 Read 2\n7:0 Write 8\nTotal 10\n",
        );
        write(
            &cg,
            "blkio/docker/db/blkio.throttle.io_service_bytes",
            "7:0 Read 8192\n7:0 Write 8388608\nTotal 8396800\n",
        );
        write(&cg, "memory/docker/db/memory.stat", "rss 1\n");
        (procfs, sysfs, cg)
    }

    fn container(volumes: &[(&str, &str)]) -> ExportedContainer {
        ExportedContainer {
            key: "/docker/db".into(),
            container_id: "/docker/db".into(),
            pids: vec![(10, 100), (11, 200)],
            app_id: String::new(),
            restarts: 0,
            oom_kills: 0,
            net: Default::default(),
            active: Default::default(),
            image: String::new(),
            systemd: Default::default(),
            proxied_listens: Vec::new(),
            cgroups: sonde_cgroup::ProcessCgroups::parse(
                "9:blkio:/docker/db\n4:memory:/docker/db\n",
            )
            .unwrap(),
            volumes: std::sync::Arc::new(
                volumes
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
        }
    }

    /// One scrape's reading, written out as the exported label sets would read.
    fn render(res: &Resources, cg: &CgroupFs, c: &[ExportedContainer]) -> String {
        let mut text = String::new();
        for r in res.read(c, Some(cg)) {
            for app in &r.app_types {
                text.push_str(&format!("application_type=\"{app}\"\n"));
            }
            for v in &r.volumes {
                text.push_str(&format!(
                    "container_resources_disk{{mount_point=\"{}\",device=\"{}\",volume=\"{}\"}} {:?} {}\n",
                    v.mount_point, v.device, v.volume, v.dev, v.fs.capacity_bytes
                ));
            }
        }
        text
    }

    #[test]
    fn reads_volumes_and_types() {
        let tmp = tempfile::tempdir().unwrap();
        let (procfs, sysfs, cg) = host(tmp.path());
        let res = Resources::new(&procfs, &sysfs, ResourcesConfig::default());
        let cgfs = CgroupFs::detect(&cg).unwrap();
        let text = render(&res, &cgfs, &[container(&[("/data", "pgdata")])]);
        // The cgroup's block I/O of loop0 (7:0) is the exporter's to read and render.
        let want = r#"container_resources_disk{mount_point="/data",device="loop0",volume="pgdata"} (7, 0) "#;
        assert!(text.contains(want), "missing {want}\n{text}");
        assert!(text.contains(r#"application_type="postgres""#), "{text}");
        // Only /data: not the overlay root, the hosts file or the read-only mount.
        assert_eq!(text.matches("container_resources_disk{").count(), 1);
        assert!(!text.contains("redis"), "{text}");

        // The shell execs redis: its type is found on a later scrape.
        write(&procfs, "11/cmdline", "redis-server *:6379\0");
        let text = render(&res, &cgfs, &[container(&[])]);
        assert!(text.contains(r#"application_type="redis""#), "{text}");
        assert!(text.contains(r#"volume="""#), "{text}");
    }

    #[test]
    fn an_unknown_process_is_settled_after_a_few_checks_and_forgotten_when_gone() {
        let tmp = tempfile::tempdir().unwrap();
        let (procfs, sysfs, cg) = host(tmp.path());
        let res = Resources::new(&procfs, &sysfs, ResourcesConfig::default());
        let cgfs = CgroupFs::detect(&cg).unwrap();
        for _ in 0..APPTYPE_CHECKS {
            render(&res, &cgfs, &[container(&[])]);
        }
        write(&procfs, "11/cmdline", "redis-server\0");
        let text = render(&res, &cgfs, &[container(&[])]);
        assert!(!text.contains("redis"), "settled as untyped: {text}");
        assert_eq!(res.apptypes.lock().unwrap().len(), 2);
        render(&res, &cgfs, &[]);
        assert!(res.apptypes.lock().unwrap().is_empty());
    }

    #[test]
    fn kernels_with_lazy_blk_throttle() {
        assert!(lazy_blk_throttle("6.18.44-fc-v1098\n"));
        assert!(lazy_blk_throttle("6.10.0"));
        assert!(!lazy_blk_throttle("6.9.12-arch1"));
        assert!(!lazy_blk_throttle("5.15.0-105-generic"));
        assert!(!lazy_blk_throttle("garbage"));
    }

    #[test]
    fn blkio_accounting_is_switched_on_once_per_disk_when_enabled() {
        let tmp = tempfile::tempdir().unwrap();
        let (procfs, sysfs, cg) = host(tmp.path());
        let rule = cg.join("blkio/blkio.throttle.read_bps_device");
        let cgfs = CgroupFs::detect(&cg).unwrap();
        let off = Resources::new(&procfs, &sysfs, ResourcesConfig::default());
        render(&off, &cgfs, &[container(&[])]);
        assert!(!rule.exists());
        let on = Resources::new(
            &procfs,
            &sysfs,
            ResourcesConfig {
                enable_blkio_accounting: true,
                ..Default::default()
            },
        );
        render(&on, &cgfs, &[container(&[])]);
        assert_eq!(std::fs::read_to_string(&rule).unwrap(), "7:0 0\n");
        std::fs::remove_file(&rule).unwrap();
        render(&on, &cgfs, &[container(&[])]);
        assert!(!rule.exists(), "written once per disk");
    }

    #[test]
    fn host_namespace_processes_have_no_volumes() {
        let tmp = tempfile::tempdir().unwrap();
        let (procfs, sysfs, cg) = host(tmp.path());
        // Make pid 10's mount namespace the host's (the same file).
        fs::remove_file(procfs.join("10/ns/mnt")).unwrap();
        fs::hard_link(procfs.join("1/ns/mnt"), procfs.join("10/ns/mnt")).unwrap();
        let res = Resources::new(&procfs, &sysfs, ResourcesConfig::default());
        let cgfs = CgroupFs::detect(&cg).unwrap();
        let text = render(&res, &cgfs, &[container(&[])]);
        assert!(!text.contains("container_resources_disk"), "{text}");
        assert!(text.contains("postgres"));

        // pid 1's namespace unreadable: the agent's own (`self`) is the host's.
        fs::remove_file(procfs.join("1/ns/mnt")).unwrap();
        let text = render(&res, &cgfs, &[container(&[])]);
        assert!(text.contains("container_resources_disk"), "{text}");
        fs::create_dir_all(procfs.join("self/ns")).unwrap();
        fs::hard_link(procfs.join("10/ns/mnt"), procfs.join("self/ns/mnt")).unwrap();
        let text = render(&res, &cgfs, &[container(&[])]);
        assert!(!text.contains("container_resources_disk"), "{text}");
    }
}
