//! statvfs(3) of a mounted file system.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::Error;

/// Space of one file system, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FsStat {
    /// Total size (`f_blocks * f_frsize`).
    pub capacity_bytes: u64,
    /// In use (`(f_blocks - f_bfree) * f_frsize`), as `df` counts it.
    pub used_bytes: u64,
    /// Free but kept for root (`(f_bfree - f_bavail) * f_frsize`), e.g. ext4's 5 %.
    pub reserved_bytes: u64,
}

impl FsStat {
    /// From statvfs's fields (pure, for tests).
    pub fn from_blocks(blocks: u64, bfree: u64, bavail: u64, frsize: u64) -> FsStat {
        FsStat {
            capacity_bytes: blocks.saturating_mul(frsize),
            used_bytes: blocks.saturating_sub(bfree).saturating_mul(frsize),
            reserved_bytes: bfree.saturating_sub(bavail).saturating_mul(frsize),
        }
    }
}

/// statvfs(path). Through `/proc/<pid>/root/<mount point>` this reaches a container's mount
/// from the host without entering its mount namespace.
pub fn statfs(path: &Path) -> Result<FsStat, Error> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| Error::NulInPath {
        path: path.to_owned(),
    })?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a valid NUL-terminated string and `st` points to writable memory of the
    // right size; statvfs initialises it when it returns 0.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(Error::Io {
            path: path.to_owned(),
            source: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: statvfs returned 0, so it filled `st`.
    let st = unsafe { st.assume_init() };
    #[allow(clippy::unnecessary_cast)] // the field types differ between libc targets
    Ok(FsStat::from_blocks(
        st.f_blocks as u64,
        st.f_bfree as u64,
        st.f_bavail as u64,
        st.f_frsize as u64,
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn arithmetic() {
        let s = FsStat::from_blocks(1000, 400, 350, 4096);
        assert_eq!(s.capacity_bytes, 4_096_000);
        assert_eq!(s.used_bytes, 600 * 4096);
        assert_eq!(s.reserved_bytes, 50 * 4096);
        // A racing or odd file system never underflows.
        assert_eq!(FsStat::from_blocks(1, 2, 3, 4096).used_bytes, 0);
    }

    #[test]
    fn statfs_of_a_real_directory_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let s = statfs(dir.path()).unwrap();
        assert!(s.capacity_bytes > 0 && s.used_bytes <= s.capacity_bytes);
        let err = statfs(&dir.path().join("missing")).unwrap_err();
        assert!(err.is_not_found());
        assert!(matches!(
            statfs(Path::new("a\0b")),
            Err(Error::NulInPath { .. })
        ));
    }
}
