//! Per-cgroup resource readers over a cgroup v1, v2 or hybrid mount.
//!
//! Which hierarchy serves a resource: on V1 and Hybrid hosts CPU and memory come from the v1
//! controllers (on hybrid hosts the unified mount usually has no cpu/memory controller enabled:
//! systemd keeps them in v1), on V2 from the unified hierarchy. PSI only exists in the unified
//! hierarchy. If a process lacks the v1 line for a controller, the unified path is tried.

mod blkio;
mod parse;

pub use blkio::DeviceIo;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::{Error, ProcessCgroups};

/// How cgroups are mounted on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Only v1 hierarchies (`/sys/fs/cgroup/<controller>`).
    V1,
    /// Only the unified hierarchy (`/sys/fs/cgroup/cgroup.controllers` exists).
    V2,
    /// v1 controllers plus the unified hierarchy at `/sys/fs/cgroup/unified`.
    Hybrid,
}

/// CPU figures of one cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CpuStat {
    /// Total CPU time consumed, seconds.
    pub usage_seconds: f64,
    /// Total time throttled by the CFS quota, seconds.
    pub throttled_seconds: f64,
    /// CFS quota / period, in cores; None when unlimited.
    pub limit_cores: Option<f64>,
}

/// Memory figures of one cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemoryStat {
    /// Resident memory: anonymous + mapped file pages (see docs/cgroup-node.md).
    pub rss_bytes: u64,
    /// Page cache.
    pub cache_bytes: u64,
    /// Memory limit; None when unlimited.
    pub limit_bytes: Option<u64>,
}

/// The PSI resources a cgroup reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PressureResource {
    /// cpu.pressure
    Cpu,
    /// memory.pressure
    Memory,
    /// io.pressure
    Io,
}

impl PressureResource {
    fn file_name(self) -> &'static str {
        match self {
            PressureResource::Cpu => "cpu.pressure",
            PressureResource::Memory => "memory.pressure",
            PressureResource::Io => "io.pressure",
        }
    }
}

/// PSI totals of one cgroup and resource.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Pressure {
    /// Time some tasks were stalled, seconds.
    pub some_seconds: f64,
    /// Time all tasks were stalled, seconds; None when the kernel has no "full" line.
    pub full_seconds: Option<f64>,
}

/// v1 memory limits at or above this are "unlimited" (the kernel shows PAGE_COUNTER_MAX pages,
/// ~2^63 bytes; coroot uses the same 2^62 cut).
const V1_UNLIMITED: u64 = 1 << 62;

/// A cgroup mount root with its detected layout.
#[derive(Debug, Clone)]
pub struct CgroupFs {
    root: PathBuf,
    layout: Layout,
    /// Mount point of the unified hierarchy (the root on V2, root/unified on Hybrid).
    unified: Option<PathBuf>,
    /// v1 hierarchy directory per controller name (one entry per name of a combined mount).
    v1: Vec<(String, PathBuf)>,
}

impl CgroupFs {
    /// Detect the layout under `root` (normally /sys/fs/cgroup). Error if nothing is mounted there.
    ///
    /// v1 hierarchies are found as directories (or symlinks to them) named after their
    /// controllers, including comma-joined mounts like `cpu,cpuacct`; named hierarchies such as
    /// `name=systemd` are found by their directory name (`systemd`).
    pub fn detect(root: &Path) -> Result<CgroupFs, Error> {
        if root.join("cgroup.controllers").is_file() {
            return Ok(CgroupFs {
                root: root.to_path_buf(),
                layout: Layout::V2,
                unified: Some(root.to_path_buf()),
                v1: Vec::new(),
            });
        }
        let entries = match fs::read_dir(root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NoHierarchy {
                    root: root.to_path_buf(),
                });
            }
            Err(source) => {
                return Err(Error::Io {
                    path: root.to_path_buf(),
                    source,
                });
            }
        };
        let mut v1 = Vec::new();
        for entry in entries.flatten() {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if name == "unified" {
                continue;
            }
            // metadata() follows symlinks: `cpu -> cpu,cpuacct` counts as a directory.
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            for controller in name.split(',').filter(|c| !c.is_empty()) {
                v1.push((controller.to_owned(), path.clone()));
            }
        }
        // Exact-name directories (`cpu`) sort before comma-joined ones so lookups prefer them.
        v1.sort_by_key(|(_, path)| {
            path.file_name()
                .is_some_and(|n| n.to_string_lossy().contains(','))
        });
        let unified_dir = root.join("unified");
        let unified = unified_dir
            .join("cgroup.controllers")
            .is_file()
            .then_some(unified_dir);
        let has_v1 = v1.iter().any(|(c, _)| KNOWN_V1.contains(&c.as_str()));
        let layout = match (has_v1, unified.is_some()) {
            (true, true) => Layout::Hybrid,
            (true, false) => Layout::V1,
            (false, true) => Layout::V2,
            (false, false) => {
                return Err(Error::NoHierarchy {
                    root: root.to_path_buf(),
                });
            }
        };
        if !has_v1 {
            v1.clear();
        }
        Ok(CgroupFs {
            root: root.to_path_buf(),
            layout,
            unified,
            v1,
        })
    }

    /// The detected layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The root this was detected under.
    /// The unified (v2) hierarchy's mount: the root on v2, `unified/` on hybrid hosts.
    pub fn unified_root(&self) -> Option<&Path> {
        self.unified.as_deref()
    }

    /// The path (e.g. "/docker/<id>") of the unified-hierarchy cgroup whose id is `id`, as
    /// `bpf_get_current_cgroup_id()` reports it (the directory's inode number). Walks the
    /// hierarchy, at most `MAX_LOOKUP_DIRS` directories: meant for rare events (an OOM kill
    /// whose process is already gone), never for a hot path.
    pub fn find_unified_by_id(&self, id: u64) -> Option<String> {
        use std::os::unix::fs::MetadataExt;
        let root = self.unified.as_deref()?;
        let mut stack = vec![root.to_path_buf()];
        let mut visited = 0usize;
        while let Some(dir) = stack.pop() {
            visited += 1;
            if visited > MAX_LOOKUP_DIRS {
                return None;
            }
            let Ok(meta) = std::fs::metadata(&dir) else {
                continue;
            };
            if meta.ino() == id {
                let rel = dir.strip_prefix(root).ok()?;
                return Some(format!("/{}", rel.to_string_lossy()));
            }
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(entry.path());
                }
            }
        }
        None
    }

    /// Every unified-hierarchy cgroup as (id, path), for seeding an id -> path map once at
    /// start (cgroups made later are learned from the tracer's cgroup_mkdir events). At most
    /// `MAX_LOOKUP_DIRS` directories; empty without a unified hierarchy.
    pub fn unified_cgroups(&self) -> Vec<(u64, String)> {
        use std::os::unix::fs::MetadataExt;
        let Some(root) = self.unified.as_deref() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            if out.len() >= MAX_LOOKUP_DIRS {
                break;
            }
            let Ok(meta) = std::fs::metadata(&dir) else {
                continue;
            };
            if let Ok(rel) = dir.strip_prefix(root) {
                out.push((meta.ino(), format!("/{}", rel.to_string_lossy())));
            }
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(entry.path());
                }
            }
        }
        out
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// v1: cpuacct.usage (ns), cpu.stat throttled_time (ns), cpu.cfs_quota_us/cpu.cfs_period_us.
    /// v2: cpu.stat usage_usec, throttled_usec, cpu.max ("max 100000" = no limit).
    pub fn cpu(&self, cg: &ProcessCgroups) -> Result<CpuStat, Error> {
        if self.layout != Layout::V2
            && let Some(acct) = self.v1_dir("cpuacct", cg)
        {
            return cpu_v1(acct, self.v1_dir("cpu", cg));
        }
        match self.unified_dir(cg) {
            Some(dir) => cpu_v2(dir),
            None => Err(Error::NoController {
                controller: "cpuacct",
            }),
        }
    }

    /// v1 memory.stat: rss = total_rss + total_mapped_file (fall back to rss + mapped_file if no total_*),
    /// cache = total_cache (or cache); limit from memory.limit_in_bytes (absent when >= ~2^62 i.e. unlimited).
    /// v2 memory.stat: rss = anon + file_mapped, cache = file; limit from memory.max ("max" = none).
    pub fn memory(&self, cg: &ProcessCgroups) -> Result<MemoryStat, Error> {
        if self.layout != Layout::V2
            && let Some(dir) = self.v1_dir("memory", cg)
        {
            return memory_v1(dir);
        }
        match self.unified_dir(cg) {
            Some(dir) => memory_v2(dir),
            None => Err(Error::NoController {
                controller: "memory",
            }),
        }
    }

    /// PSI from the unified hierarchy (v2 or hybrid's unified mount): cpu.pressure, memory.pressure,
    /// io.pressure "some ... total=<usec>" / "full ... total=<usec>". Ok(None) when the files don't exist (v1-only host, PSI off).
    ///
    /// A missing file in an existing cgroup directory is Ok(None); a missing directory is
    /// [`Error::NotFound`] (the cgroup is gone).
    pub fn pressure(
        &self,
        cg: &ProcessCgroups,
        resource: PressureResource,
    ) -> Result<Option<Pressure>, Error> {
        let Some(mut dir) = self.unified_dir(cg) else {
            return Ok(None);
        };
        let text = match dir.read(resource.file_name()) {
            Ok(text) => text,
            Err(Error::NotFound { path }) => {
                return if dir.path.is_dir() {
                    Ok(None)
                } else {
                    Err(Error::NotFound { path })
                };
            }
            Err(e) => return Err(e),
        };
        let (some, full) =
            parse::parse_pressure(&text).map_err(|r| dir.parse_error(resource.file_name(), r))?;
        Ok(Some(Pressure {
            some_seconds: some as f64 / 1e6,
            full_seconds: full.map(|f| f as f64 / 1e6),
        }))
    }

    fn v1_mount(&self, controller: &str) -> Option<&Path> {
        let bare = controller.strip_prefix("name=");
        self.v1
            .iter()
            .find(|(c, _)| c == controller || Some(c.as_str()) == bare)
            .map(|(_, p)| p.as_path())
    }

    /// The process's directory in a v1 controller; None when it is in that controller's root
    /// (the root's files describe the whole node, never one container).
    fn v1_dir(&self, controller: &str, cg: &ProcessCgroups) -> Option<CgDir> {
        let mount = self.v1_mount(controller)?;
        let path = cg.v1_path(controller).filter(|p| !is_root(p))?;
        Some(CgDir::new(mount, path))
    }

    /// The process's directory in the unified hierarchy; None in its root (see `v1_dir`).
    fn unified_dir(&self, cg: &ProcessCgroups) -> Option<CgDir> {
        let mount = self.unified.as_deref()?;
        let path = cg.unified_path().filter(|p| !is_root(p))?;
        Some(CgDir::new(mount, path))
    }
}

fn is_root(path: &str) -> bool {
    path.trim_end_matches('/').is_empty()
}

/// Bound of the cgroup-id lookup walk.
const MAX_LOOKUP_DIRS: usize = 100_000;

/// Controllers that make a directory under the root a v1 hierarchy (rather than, say, a stray
/// directory in a fake tree or a v2 child cgroup).
const KNOWN_V1: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "blkio",
    "pids",
    "devices",
    "freezer",
    "net_cls",
    "net_prio",
    "perf_event",
    "hugetlb",
    "rdma",
    "misc",
];

/// One cgroup directory; reads files by pushing/popping their name on a single PathBuf.
struct CgDir {
    path: PathBuf,
}

impl CgDir {
    fn new(mount: &Path, cgroup_path: &str) -> CgDir {
        // ProcessCgroups cleans paths, so there is no ".." that could escape the mount.
        let rel = cgroup_path.trim_start_matches('/');
        let path = if rel.is_empty() {
            mount.to_path_buf()
        } else {
            mount.join(rel)
        };
        CgDir { path }
    }

    fn read(&mut self, file: &str) -> Result<String, Error> {
        self.path.push(file);
        let result =
            fs::read_to_string(&self.path).map_err(|e| Error::from_io(self.path.clone(), e));
        self.path.pop();
        result
    }

    /// Like `read`, but a missing file is Ok(None) (optional files such as cpu.max).
    fn read_optional(&mut self, file: &str) -> Result<Option<String>, Error> {
        match self.read(file) {
            Ok(text) => Ok(Some(text)),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn parse_error(&self, file: &str, reason: String) -> Error {
        Error::Parse {
            path: self.path.join(file),
            reason,
        }
    }
}

fn cpu_v1(mut acct: CgDir, cpu: Option<CgDir>) -> Result<CpuStat, Error> {
    let text = acct.read("cpuacct.usage")?;
    let usage_ns = parse::parse_single_i64(&text)
        .and_then(|v| u64::try_from(v).map_err(|_| format!("negative usage {v}")))
        .map_err(|r| acct.parse_error("cpuacct.usage", r))?;
    let mut stat = CpuStat {
        usage_seconds: usage_ns as f64 / 1e9,
        ..CpuStat::default()
    };
    let Some(mut cpu) = cpu else {
        return Ok(stat);
    };
    let text = cpu.read("cpu.stat")?;
    let mut throttled = Ok(0);
    parse::for_each_pair(&text, |k, v| {
        if k == "throttled_time" {
            throttled = parse::parse_u64(k, v);
        }
    });
    stat.throttled_seconds = throttled.map_err(|r| cpu.parse_error("cpu.stat", r))? as f64 / 1e9;
    // CFS bandwidth files are absent on kernels without CONFIG_CFS_BANDWIDTH: no limit then.
    if let Some(text) = cpu.read_optional("cpu.cfs_quota_us")? {
        let quota =
            parse::parse_single_i64(&text).map_err(|r| cpu.parse_error("cpu.cfs_quota_us", r))?;
        if quota > 0
            && let Some(text) = cpu.read_optional("cpu.cfs_period_us")?
        {
            let period = parse::parse_single_i64(&text)
                .map_err(|r| cpu.parse_error("cpu.cfs_period_us", r))?;
            if period > 0 {
                stat.limit_cores = Some(quota as f64 / period as f64);
            }
        }
    }
    Ok(stat)
}

fn cpu_v2(mut dir: CgDir) -> Result<CpuStat, Error> {
    let text = dir.read("cpu.stat")?;
    let mut usage = None;
    let mut throttled = Ok(0);
    parse::for_each_pair(&text, |k, v| match k {
        "usage_usec" => usage = Some(parse::parse_u64(k, v)),
        // Only present when the cpu controller is enabled for this cgroup.
        "throttled_usec" => throttled = parse::parse_u64(k, v),
        _ => {}
    });
    let usage = usage
        .unwrap_or_else(|| Err("no usage_usec".to_owned()))
        .map_err(|r| dir.parse_error("cpu.stat", r))?;
    let throttled = throttled.map_err(|r| dir.parse_error("cpu.stat", r))?;
    let limit_cores = match dir.read_optional("cpu.max")? {
        Some(text) => parse::parse_cpu_max(&text).map_err(|r| dir.parse_error("cpu.max", r))?,
        None => None,
    };
    Ok(CpuStat {
        usage_seconds: usage as f64 / 1e6,
        throttled_seconds: throttled as f64 / 1e6,
        limit_cores,
    })
}

fn memory_v1(mut dir: CgDir) -> Result<MemoryStat, Error> {
    let text = dir.read("memory.stat")?;
    // [total_rss, total_mapped_file, total_cache] and the non-hierarchical fallbacks.
    let mut total: [Option<Result<u64, String>>; 3] = [None, None, None];
    let mut local: [Option<Result<u64, String>>; 3] = [None, None, None];
    parse::for_each_pair(&text, |k, v| {
        let slot = match k {
            "total_rss" => &mut total[0],
            "total_mapped_file" => &mut total[1],
            "total_cache" => &mut total[2],
            "rss" => &mut local[0],
            "mapped_file" => &mut local[1],
            "cache" => &mut local[2],
            _ => return,
        };
        *slot = Some(parse::parse_u64(k, v));
    });
    // total_* include descendants (use_hierarchy=1, always on since 5.x): that is what a
    // container with nested cgroups uses.
    let values = if total[0].is_some() { total } else { local };
    if values[0].is_none() {
        return Err(dir.parse_error("memory.stat", "no rss or total_rss".to_owned()));
    }
    let mut out = [0u64; 3];
    for (o, v) in out.iter_mut().zip(values) {
        *o = match v {
            Some(r) => r.map_err(|r| dir.parse_error("memory.stat", r))?,
            None => 0,
        };
    }
    let text = dir.read("memory.limit_in_bytes")?;
    let limit = parse::parse_single_i64(&text)
        .and_then(|v| u64::try_from(v).map_err(|_| format!("negative limit {v}")))
        .map_err(|r| dir.parse_error("memory.limit_in_bytes", r))?;
    Ok(MemoryStat {
        rss_bytes: out[0].saturating_add(out[1]),
        cache_bytes: out[2],
        limit_bytes: (limit < V1_UNLIMITED).then_some(limit),
    })
}

fn memory_v2(mut dir: CgDir) -> Result<MemoryStat, Error> {
    let text = dir.read("memory.stat")?;
    let mut anon = None;
    let mut file_mapped = Ok(0);
    let mut file = Ok(0);
    parse::for_each_pair(&text, |k, v| match k {
        "anon" => anon = Some(parse::parse_u64(k, v)),
        "file_mapped" => file_mapped = parse::parse_u64(k, v),
        "file" => file = parse::parse_u64(k, v),
        _ => {}
    });
    let anon = anon
        .unwrap_or_else(|| Err("no anon".to_owned()))
        .map_err(|r| dir.parse_error("memory.stat", r))?;
    let file_mapped = file_mapped.map_err(|r| dir.parse_error("memory.stat", r))?;
    let file = file.map_err(|r| dir.parse_error("memory.stat", r))?;
    // The root cgroup has no memory.max.
    let limit_bytes = match dir.read_optional("memory.max")? {
        Some(text) => {
            parse::parse_memory_max(&text).map_err(|r| dir.parse_error("memory.max", r))?
        }
        None => None,
    };
    Ok(MemoryStat {
        rss_bytes: anon.saturating_add(file_mapped),
        cache_bytes: file,
        limit_bytes,
    })
}

#[cfg(test)]
mod tests;
