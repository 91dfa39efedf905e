//! Per-device block I/O of one cgroup: v1 `blkio.throttle.io_serviced` and
//! `blkio.throttle.io_service_bytes`, v2 `io.stat`.
//!
//! What the counters mean (docs/cgroup-node.md): bios the cgroup's tasks submitted to each
//! whole disk (`MAJ:MIN` of the disk, never of a partition). On v1 (and on hybrid hosts, where
//! the io controller stays in v1) buffered writeback is not attributed to the cgroup that
//! dirtied the pages: writes count there only when the task itself submits them (direct I/O,
//! and reads). On v2 with the io controller, writeback is attributed to the dirtying cgroup.

use super::{CgDir, CgroupFs, Layout, parse};
use crate::{Error, ProcessCgroups};

/// Block I/O of one cgroup on one device, since the cgroup was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeviceIo {
    /// The device's major number.
    pub major: u32,
    /// The device's minor number.
    pub minor: u32,
    /// Completed read operations.
    pub reads: u64,
    /// Completed write operations.
    pub writes: u64,
    /// Bytes read.
    pub read_bytes: u64,
    /// Bytes written.
    pub written_bytes: u64,
}

impl CgroupFs {
    /// Block I/O per device. v1 blkio is preferred (hybrid hosts keep io there); the unified
    /// `io.stat` is used on v2 or when the process has no blkio line. `Ok(empty)` when no
    /// hierarchy serves I/O for this process (v2 without the io controller enabled).
    pub fn io(&self, cg: &ProcessCgroups) -> Result<Vec<DeviceIo>, Error> {
        if self.layout != Layout::V2
            && let Some(dir) = self.v1_dir("blkio", cg)
        {
            return io_v1(dir);
        }
        match self.unified_dir(cg) {
            Some(dir) => io_v2(dir),
            None => Ok(Vec::new()),
        }
    }
}

impl CgroupFs {
    /// Makes v1 blkio count I/O on disk `major:minor` for every cgroup, by writing a rule with
    /// no limit ("MAJ:MIN 0") to the root's `blkio.throttle.read_bps_device`. Since Linux 6.10
    /// blk-throttle sets a disk up, and with it the v1 `blkio.throttle.io_service*` counters,
    /// only once some rule names it; a rule of 0 limits nothing. Ok(false) where v1 blkio is not
    /// in use (v2's io.stat always counts).
    pub fn activate_blkio_stats(&self, major: u32, minor: u32) -> Result<bool, Error> {
        if self.layout == Layout::V2 {
            return Ok(false);
        }
        let Some(mount) = self.v1_mount("blkio") else {
            return Ok(false);
        };
        let path = mount.join("blkio.throttle.read_bps_device");
        std::fs::write(&path, format!("{major}:{minor} 0\n"))
            .map_err(|e| Error::from_io(path, e))?;
        Ok(true)
    }

    /// Whether per-cgroup block I/O comes from v1 blkio here.
    pub fn uses_v1_blkio(&self) -> bool {
        self.layout != Layout::V2 && self.v1_mount("blkio").is_some()
    }
}

fn io_v1(mut dir: CgDir) -> Result<Vec<DeviceIo>, Error> {
    let mut out: Vec<DeviceIo> = Vec::new();
    for (file, ops) in [
        ("blkio.throttle.io_serviced", true),
        ("blkio.throttle.io_service_bytes", false),
    ] {
        let text = dir.read(file)?;
        parse_blkio_v1(&text, ops, &mut out).map_err(|r| dir.parse_error(file, r))?;
    }
    Ok(out)
}

fn io_v2(mut dir: CgDir) -> Result<Vec<DeviceIo>, Error> {
    // io.stat exists only where the io controller is enabled for the cgroup.
    let Some(text) = dir.read_optional("io.stat")? else {
        return if dir.path.is_dir() {
            Ok(Vec::new())
        } else {
            Err(Error::NotFound {
                path: dir.path.clone(),
            })
        };
    };
    parse_io_stat(&text).map_err(|r| dir.parse_error("io.stat", r))
}

fn device(out: &mut Vec<DeviceIo>, major: u32, minor: u32) -> &mut DeviceIo {
    let i = match out
        .iter()
        .position(|d| d.major == major && d.minor == minor)
    {
        Some(i) => i,
        None => {
            out.push(DeviceIo {
                major,
                minor,
                ..DeviceIo::default()
            });
            out.len() - 1
        }
    };
    &mut out[i]
}

fn parse_dev(s: &str) -> Result<(u32, u32), String> {
    let (major, minor) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?} is not MAJ:MIN"))?;
    let major = major.parse().map_err(|e| format!("major {major:?}: {e}"))?;
    let minor = minor.parse().map_err(|e| format!("minor {minor:?}: {e}"))?;
    Ok((major, minor))
}

/// `MAJ:MIN Read|Write|Sync|Async|Discard|Total N` lines, and a final `Total N` line.
/// `ops` selects which counters the file fills (io_serviced: operations, else bytes).
pub(crate) fn parse_blkio_v1(text: &str, ops: bool, out: &mut Vec<DeviceIo>) -> Result<(), String> {
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let (Some(dev), Some(op), Some(value), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            continue; // "Total N" and blank lines
        };
        // 0..4: reads, writes, read_bytes, written_bytes.
        let field = match (op, ops) {
            ("Read", true) => 0,
            ("Write", true) => 1,
            ("Read", false) => 2,
            ("Write", false) => 3,
            _ => continue,
        };
        let (major, minor) = parse_dev(dev)?;
        let value = parse::parse_u64(op, value)?;
        let d = device(out, major, minor);
        match field {
            0 => d.reads = value,
            1 => d.writes = value,
            2 => d.read_bytes = value,
            _ => d.written_bytes = value,
        }
    }
    Ok(())
}

/// `MAJ:MIN rbytes=N wbytes=N rios=N wios=N dbytes=N dios=N` lines (v2 io.stat).
pub(crate) fn parse_io_stat(text: &str) -> Result<Vec<DeviceIo>, String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let Some(dev) = fields.next() else { continue };
        let (major, minor) = parse_dev(dev)?;
        let d = device(&mut out, major, minor);
        for kv in fields {
            let Some((k, v)) = kv.split_once('=') else {
                return Err(format!("{kv:?} is not key=value"));
            };
            let slot = match k {
                "rbytes" => &mut d.read_bytes,
                "wbytes" => &mut d.written_bytes,
                "rios" => &mut d.reads,
                "wios" => &mut d.writes,
                _ => continue,
            };
            *slot = parse::parse_u64(k, v)?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn v1_files_merge_per_device() {
        let mut out = Vec::new();
        let ops = "254:0 Read 12\n254:0 Write 34\n254:0 Sync 40\n254:0 Async 6\n254:0 Discard 0\n254:0 Total 46\n7:0 Read 1\n7:0 Write 2\nTotal 49\n";
        let bytes = "254:0 Read 49152\n254:0 Write 8388608\n254:0 Total 8437760\n7:0 Write 4096\nTotal 8441856\n";
        parse_blkio_v1(ops, true, &mut out).unwrap();
        parse_blkio_v1(bytes, false, &mut out).unwrap();
        assert_eq!(
            out,
            [
                DeviceIo {
                    major: 254,
                    minor: 0,
                    reads: 12,
                    writes: 34,
                    read_bytes: 49152,
                    written_bytes: 8388608
                },
                DeviceIo {
                    major: 7,
                    minor: 0,
                    reads: 1,
                    writes: 2,
                    read_bytes: 0,
                    written_bytes: 4096
                },
            ]
        );
    }

    #[test]
    fn v1_empty_cgroup_and_garbage() {
        let mut out = Vec::new();
        parse_blkio_v1("Total 0\n", true, &mut out).unwrap();
        assert!(out.is_empty());
        assert!(parse_blkio_v1("254 Read 1\n", true, &mut out).is_err());
        assert!(parse_blkio_v1("254:0 Read x\n", true, &mut out).is_err());
    }

    #[test]
    fn v2_io_stat() {
        let out = parse_io_stat(
            "259:0 rbytes=1048576 wbytes=2097152 rios=10 wios=20 dbytes=0 dios=0\n8:16 rbytes=5 wbytes=6 rios=1 wios=2 dbytes=0 dios=0\n",
        )
        .unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(
            out[0],
            DeviceIo {
                major: 259,
                minor: 0,
                reads: 10,
                writes: 20,
                read_bytes: 1048576,
                written_bytes: 2097152
            }
        );
        assert_eq!(out[1].written_bytes, 6);
        assert!(parse_io_stat("259:0 rbytes\n").is_err());
        assert!(parse_io_stat("").unwrap().is_empty());
    }

    #[test]
    fn reads_v1_blkio_of_the_process_and_v2_io_stat() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let write = |rel: &str, text: &str| {
            let p = root.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        write(
            "blkio/docker/abc/blkio.throttle.io_serviced",
            "7:0 Write 3\nTotal 3\n",
        );
        write(
            "blkio/docker/abc/blkio.throttle.io_service_bytes",
            "7:0 Write 12288\nTotal 12288\n",
        );
        write("unified/cgroup.controllers", "hugetlb\n");
        std::fs::create_dir_all(root.join("unified/docker/abc")).unwrap();
        let fs = CgroupFs::detect(root).unwrap();
        let cg = ProcessCgroups::parse("9:blkio:/docker/abc\n0::/docker/abc\n").unwrap();
        let io = fs.io(&cg).unwrap();
        assert_eq!(io.len(), 1);
        assert_eq!((io[0].writes, io[0].written_bytes), (3, 12288));
        // Only a unified line: io.stat absent (io controller off) is empty, not an error.
        let cg = ProcessCgroups::parse("0::/docker/abc\n").unwrap();
        assert!(fs.io(&cg).unwrap().is_empty());
        // A vanished cgroup is NotFound.
        let cg = ProcessCgroups::parse("0::/docker/gone\n").unwrap();
        assert!(fs.io(&cg).unwrap_err().is_not_found());
        let cg = ProcessCgroups::parse("9:blkio:/docker/gone\n").unwrap();
        assert!(fs.io(&cg).unwrap_err().is_not_found());
    }
}
