//! The few system calls aya 0.14 does not wrap: BPF_PROG_TEST_RUN (to run the
//! connection scan on demand), BPF_MAP_LOOKUP_BATCH (to dump 100k connections
//! in a handful of syscalls), a program's `recursion_misses`
//! (BPF_OBJ_GET_INFO_BY_FD), mounting tracefs and the memlock rlimit.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;

/// Offset of `recursion_misses` in `struct bpf_prog_info` (uapi, kernel >= 5.12).
const PROG_INFO_RECURSION_MISSES: usize = 208;
/// Bytes of `struct bpf_prog_info` asked for: up to and including `recursion_misses`.
const PROG_INFO_LEN: usize = PROG_INFO_RECURSION_MISSES + 8;

/// `union bpf_attr` as used by BPF_OBJ_GET_INFO_BY_FD (the `info` member).
#[repr(C, align(8))]
#[derive(Default)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// `union bpf_attr` as used by BPF_PROG_TEST_RUN (the `test` member).
#[repr(C, align(8))]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    _pad: u32,
}

/// `union bpf_attr` as used by the BPF_MAP_*_BATCH commands (the `batch` member).
#[repr(C, align(8))]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

fn sys_bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<()> {
    // SAFETY: `attr` is a live, properly sized and aligned bpf_attr prefix; the
    // kernel reads/writes at most size_of::<T>() bytes of it, and every pointer
    // inside it refers to a buffer that outlives this call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Runs a loaded raw tracepoint program once, with an empty context.
pub(crate) fn prog_test_run(prog: BorrowedFd<'_>) -> io::Result<()> {
    let mut attr = TestRunAttr {
        prog_fd: prog.as_raw_fd() as u32,
        ..Default::default()
    };
    sys_bpf(BPF_PROG_TEST_RUN, &mut attr)
}

/// How many times the kernel skipped running this program because another BPF
/// program (or a BPF map syscall) was active on the same CPU: events the
/// program never saw. `Ok(None)` on kernels without the counter (< 5.12).
pub(crate) fn prog_recursion_misses(prog: BorrowedFd<'_>) -> io::Result<Option<u64>> {
    // u64 words: 8-byte aligned as the kernel's struct; zeroed, so every
    // pointer member is NULL and the kernel copies no arrays.
    let mut info = [0u64; PROG_INFO_LEN / 8];
    let mut attr = InfoAttr {
        bpf_fd: prog.as_raw_fd() as u32,
        info_len: PROG_INFO_LEN as u32,
        info: info.as_mut_ptr() as u64,
    };
    sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    // The kernel writes back how much it filled (less on older kernels).
    if (attr.info_len as usize) < PROG_INFO_LEN {
        return Ok(None);
    }
    Ok(Some(info[PROG_INFO_RECURSION_MISSES / 8]))
}

/// Dumps a hash map with BPF_MAP_LOOKUP_BATCH; calls `f(key, value)` per entry.
/// `key_size`/`value_size` must be the map's.
pub(crate) fn map_dump_batch(
    map: BorrowedFd<'_>,
    key_size: usize,
    value_size: usize,
    mut f: impl FnMut(&[u8], &[u8]),
) -> io::Result<()> {
    let mut chunk: usize = 4096;
    let mut keys = vec![0u8; chunk * key_size];
    let mut values = vec![0u8; chunk * value_size];
    let mut token = [0u64; 1];
    let mut first = true;
    loop {
        let mut out_token = [0u64; 1];
        let mut attr = BatchAttr {
            in_batch: if first { 0 } else { token.as_mut_ptr() as u64 },
            out_batch: out_token.as_mut_ptr() as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: chunk as u32,
            map_fd: map.as_raw_fd() as u32,
            ..Default::default()
        };
        let res = sys_bpf(BPF_MAP_LOOKUP_BATCH, &mut attr);
        let done = match res {
            Ok(()) => false,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => true,
            // One hash bucket holds more entries than the chunk: grow and retry.
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) && chunk < (1 << 20) => {
                chunk *= 4;
                keys.resize(chunk * key_size, 0);
                values.resize(chunk * value_size, 0);
                continue;
            }
            Err(e) => return Err(e),
        };
        let n = (attr.count as usize).min(chunk);
        for i in 0..n {
            f(
                &keys[i * key_size..(i + 1) * key_size],
                &values[i * value_size..(i + 1) * value_size],
            );
        }
        if done {
            return Ok(());
        }
        token = out_token;
        first = false;
    }
}

/// Whether a tracefs is mounted at `path` (it has an `events` directory).
pub(crate) fn tracefs_mounted(path: &Path) -> bool {
    path.join("events").is_dir()
}

/// `mount -t tracefs tracefs <path>`.
pub(crate) fn mount_tracefs(path: &Path) -> io::Result<()> {
    let target = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let fstype = c"tracefs";
    // SAFETY: all pointers are valid NUL-terminated strings for the call's duration.
    let ret = unsafe {
        libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Raises RLIMIT_MEMLOCK as far as allowed. Kernels >= 5.11 account BPF memory
/// to the memory cgroup instead, so a failure only matters on older kernels.
pub(crate) fn raise_memlock() -> io::Result<()> {
    let mut cur = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `cur` is a valid rlimit to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut cur) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let want = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: `want` is a valid rlimit.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &want) } == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    // Without CAP_SYS_RESOURCE only the soft limit can move, up to the hard one.
    let soft = libc::rlimit {
        rlim_cur: cur.rlim_max,
        rlim_max: cur.rlim_max,
    };
    // SAFETY: `soft` is a valid rlimit.
    unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &soft) };
    Err(err)
}

/// Kernel release as (major, minor), from uname.
pub(crate) fn kernel_version() -> Option<(u32, u32)> {
    // SAFETY: utsname is plain old data; uname fills it.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid utsname.
    if unsafe { libc::uname(&mut u) } != 0 {
        return None;
    }
    let release: Vec<u8> = u
        .release
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    let release = String::from_utf8_lossy(&release);
    let mut parts = release.split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}
