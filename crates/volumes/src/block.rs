//! Device numbers -> whole disks, through `/sys/dev/block/MAJ:MIN`.
//!
//! cgroups account block I/O per whole disk (the request queue), while a mount's `st_dev` is
//! its partition's number: the I/O of a mount on `vda1` is found under `vda`'s `254:0`.

use std::path::{Path, PathBuf};

/// The whole disk a device number belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    /// Kernel name ("vda", "nvme0n1", "loop0", "dm-0").
    pub name: String,
    pub major: u32,
    pub minor: u32,
}

/// Resolves device numbers under a sysfs root (injectable for tests).
#[derive(Debug, Clone)]
pub struct BlockDevices {
    sys: PathBuf,
}

impl BlockDevices {
    /// `sysfs_root` is normally `/sys`.
    pub fn new(sysfs_root: &Path) -> BlockDevices {
        BlockDevices {
            sys: sysfs_root.to_owned(),
        }
    }

    /// The whole disk of `major:minor`: itself when it is a disk, its parent when it is a
    /// partition. None when the number is no block device (e.g. an NFS or FUSE mount).
    pub fn disk(&self, major: u32, minor: u32) -> Option<Disk> {
        let link = self.sys.join(format!("dev/block/{major}:{minor}"));
        // The link points into /sys/devices/...; canonicalize resolves it against the root.
        let dir = std::fs::canonicalize(&link).ok()?;
        if dir.join("partition").is_file() {
            let parent = dir.parent()?;
            let (major, minor) = read_dev(&parent.join("dev"))?;
            return Some(Disk {
                name: parent.file_name()?.to_string_lossy().into_owned(),
                major,
                minor,
            });
        }
        Some(Disk {
            name: dir.file_name()?.to_string_lossy().into_owned(),
            major,
            minor,
        })
    }
}

fn read_dev(path: &Path) -> Option<(u32, u32)> {
    let text = std::fs::read_to_string(path).ok()?;
    let (major, minor) = text.trim().split_once(':')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn partitions_resolve_to_their_disk() {
        let tmp = tempfile::tempdir().unwrap();
        let sys = tmp.path();
        let disk = sys.join("devices/pci0000:00/virtio1/block/vda");
        std::fs::create_dir_all(disk.join("vda1")).unwrap();
        std::fs::write(disk.join("dev"), "254:0\n").unwrap();
        std::fs::write(disk.join("vda1/dev"), "254:1\n").unwrap();
        std::fs::write(disk.join("vda1/partition"), "1\n").unwrap();
        std::fs::create_dir_all(sys.join("devices/virtual/block/loop0")).unwrap();
        std::fs::create_dir_all(sys.join("dev/block")).unwrap();
        symlink(
            "../../devices/pci0000:00/virtio1/block/vda/vda1",
            sys.join("dev/block/254:1"),
        )
        .unwrap();
        symlink(
            "../../devices/pci0000:00/virtio1/block/vda",
            sys.join("dev/block/254:0"),
        )
        .unwrap();
        symlink(
            "../../devices/virtual/block/loop0",
            sys.join("dev/block/7:0"),
        )
        .unwrap();

        let b = BlockDevices::new(sys);
        let vda = Disk {
            name: "vda".into(),
            major: 254,
            minor: 0,
        };
        assert_eq!(b.disk(254, 1), Some(vda.clone()));
        assert_eq!(b.disk(254, 0), Some(vda));
        assert_eq!(b.disk(7, 0).unwrap().name, "loop0");
        assert_eq!(b.disk(0, 42), None);
    }
}
