//! The host's own OpenSSL libraries, probed at start so short-lived
//! processes that load them are covered before any scan sees them.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use super::procmaps::{self, FileKey};

/// Library directories looked in, relative to the host's root.
const LIB_DIRS: [&str; 7] = [
    "usr/lib/x86_64-linux-gnu",
    "lib/x86_64-linux-gnu",
    "usr/lib64",
    "lib64",
    "usr/lib",
    "lib",
    "usr/local/lib",
];

/// `libssl.so*` files (symlinks followed) in the library directories under `root`.
pub(crate) fn libssl_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in LIB_DIRS {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if procmaps::is_libssl(&name.to_string_lossy()) {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    out
}

/// The device and inode `/proc/<pid>/maps` shows for `path`, found by
/// mapping its first page here and reading this process's own maps. Why not
/// stat(): on some filesystems (btrfs subvolumes) stat's st_dev is not the
/// device maps shows, and a file keyed twice would be probed twice (every
/// request counted twice).
pub(crate) fn mapped_key(path: &Path) -> io::Result<FileKey> {
    let file = File::open(path)?;
    let len = 4096;
    // SAFETY: a fresh read-only private mapping of an open file; unmapped below
    // and never dereferenced.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_PRIVATE,
            file.as_raw_fd(),
            0,
        )
    };
    if addr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    let maps = std::fs::read_to_string("/proc/self/maps");
    // SAFETY: the mapping made above, of that length.
    unsafe { libc::munmap(addr, len) };
    let prefix = format!("{:x}-", addr as usize);
    maps?
        .lines()
        .find(|l| l.starts_with(&prefix))
        .and_then(procmaps::key_of_line)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "own mapping not in /proc/self/maps",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn key_of_a_mapped_file_is_its_inode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("libssl.so.3");
        std::fs::write(&path, vec![0u8; 8192]).unwrap();
        let key = mapped_key(&path).unwrap();
        assert_eq!(key.inode, std::fs::metadata(&path).unwrap().ino());
        assert!(mapped_key(&dir.path().join("absent")).is_err());
    }

    #[test]
    fn libssl_files_in_a_fake_root() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("usr/lib/x86_64-linux-gnu");
        std::fs::create_dir_all(&lib).unwrap();
        for name in ["libssl.so.3", "libssl3.so", "libcrypto.so.3", "libssl.so"] {
            std::fs::write(lib.join(name), b"").unwrap();
        }
        let found = libssl_files(dir.path());
        assert_eq!(found, vec![lib.join("libssl.so"), lib.join("libssl.so.3")]);
    }
}
