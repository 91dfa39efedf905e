//! Attaching a loaded BPF program as a uprobe on a file offset, for every
//! process (perf_event_open on the `uprobe` PMU, then PERF_EVENT_IOC_SET_BPF).
//!
//! Why not aya's `UProbe::attach`: it needs `&mut Ebpf`, and the tracer is
//! shared (`Arc`) once started. A program fd is all the kernel needs; the
//! returned perf event fd is the link (closing it detaches the probe).

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 1 << 3;
/// _IO('$', 0) and _IOW('$', 8, __u32).
const PERF_EVENT_IOC_ENABLE: libc::c_ulong = 0x2400;
const PERF_EVENT_IOC_SET_BPF: libc::c_ulong = 0x4004_2408;

/// `struct perf_event_attr` up to `config2` and the fields after it that
/// PERF_ATTR_SIZE_VER5 (112 bytes) covers; all zero but what a probe needs.
#[repr(C)]
#[derive(Default)]
struct PerfEventAttr {
    type_: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    config1: u64,
    config2: u64,
    branch_sample_type: u64,
    sample_regs_user: u64,
    sample_stack_user: u32,
    clockid: i32,
    sample_regs_intr: u64,
    aux_watermark: u32,
    sample_max_stack: u16,
    _reserved: u16,
}

/// The kernel's `uprobe` PMU: its type number and the config bit that makes
/// a probe a return probe.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UprobePmu {
    type_: u32,
    retprobe_bit: u32,
}

impl UprobePmu {
    /// Reads `/sys/bus/event_source/devices/uprobe/{type,format/retprobe}`
    /// (kernel >= 4.17).
    pub(crate) fn detect(sysfs: &Path) -> io::Result<UprobePmu> {
        let dir = sysfs.join("bus/event_source/devices/uprobe");
        let type_ = fs::read_to_string(dir.join("type"))?
            .trim()
            .parse()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let format = fs::read_to_string(dir.join("format/retprobe"))?;
        let retprobe_bit = parse_config_bit(&format).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unexpected uprobe retprobe format {format:?}"),
            )
        })?;
        Ok(UprobePmu {
            type_,
            retprobe_bit,
        })
    }

    /// Attaches `prog` at file offset `offset` of `target` for all processes.
    /// The returned fd keeps the probe attached until it is closed.
    pub(crate) fn attach(
        &self,
        prog: BorrowedFd<'_>,
        target: &Path,
        offset: u64,
        retprobe: bool,
    ) -> io::Result<OwnedFd> {
        let path = CString::new(target.as_os_str().as_bytes())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let attr = PerfEventAttr {
            type_: self.type_,
            size: std::mem::size_of::<PerfEventAttr>() as u32,
            config: if retprobe { 1 << self.retprobe_bit } else { 0 },
            config1: path.as_ptr() as u64,
            config2: offset,
            ..Default::default()
        };
        // pid -1, cpu 0: every process (a uprobe's BPF program runs on
        // whichever CPU hits it; the cpu argument only satisfies the API).
        // SAFETY: attr is a valid, initialised perf_event_attr whose path
        // pointer outlives the call; the kernel copies what it needs.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_perf_event_open,
                &attr as *const PerfEventAttr,
                -1 as libc::c_int,
                0 as libc::c_int,
                -1 as libc::c_int,
                PERF_FLAG_FD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the syscall returned a new fd that nothing else owns.
        let event = unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) };
        // SAFETY: plain ioctls on the fd just opened, with an int argument.
        let rc = unsafe {
            libc::ioctl(
                event.as_raw_fd(),
                PERF_EVENT_IOC_SET_BPF as _,
                prog.as_raw_fd(),
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: as above.
        let rc = unsafe { libc::ioctl(event.as_raw_fd(), PERF_EVENT_IOC_ENABLE as _, 0) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(event)
    }
}

/// "config:0" -> 0 (the sysfs format of a single-bit PMU field).
fn parse_config_bit(format: &str) -> Option<u32> {
    format.trim().strip_prefix("config:")?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attr_is_version_5_sized() {
        assert_eq!(std::mem::size_of::<PerfEventAttr>(), 112);
        assert_eq!(std::mem::offset_of!(PerfEventAttr, config1), 56);
        assert_eq!(std::mem::offset_of!(PerfEventAttr, config2), 64);
    }

    #[test]
    fn config_bit() {
        assert_eq!(parse_config_bit("config:0\n"), Some(0));
        assert_eq!(parse_config_bit("config:63"), Some(63));
        assert_eq!(parse_config_bit("config:0-3"), None);
        assert_eq!(parse_config_bit(""), None);
    }

    #[test]
    fn pmu_from_a_fake_sysfs() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("bus/event_source/devices/uprobe/format");
        fs::create_dir_all(&d).unwrap();
        fs::write(d.parent().unwrap().join("type"), "8\n").unwrap();
        fs::write(d.join("retprobe"), "config:0\n").unwrap();
        let pmu = UprobePmu::detect(dir.path()).unwrap();
        assert_eq!((pmu.type_, pmu.retprobe_bit), (8, 0));
        fs::write(d.join("retprobe"), "bogus").unwrap();
        assert!(UprobePmu::detect(dir.path()).is_err());
    }
}
