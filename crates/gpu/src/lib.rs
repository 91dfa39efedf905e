//! sonde-gpu: NVIDIA GPU figures through NVML (`libnvidia-ml.so.1`), loaded with dlopen at run
//! time so the agent builds and runs without the driver; on a node without it the subsystem is
//! off, said once.
//!
//! What is read (coroot-node-agent's `gpu` collector): per device its UUID, name, memory, temperature,
//! power and the utilisation samples NVML keeps (`nvmlDeviceGetSamples`: average and peak since
//! the previous scrape), and per process the SM and memory utilisation
//! (`nvmlDeviceGetProcessUtilization`) that the registry sums per container.
//!
//! Only the NVML calls below are used, all present since driver R450; each is resolved once.

mod ffi;

use std::collections::HashMap;
use std::ffi::{CString, c_char, c_uint, c_ulonglong};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use ffi::{Fns, NvmlDevice, ProcessSample, Sample};

/// Where the NVIDIA driver installs NVML, under the host's root (coroot's list: GPU operator,
/// GKE, distributions).
pub const LIBRARY_PATHS: &[&str] = &[
    "run/nvidia/driver/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1",
    "run/nvidia/driver/usr/lib64/libnvidia-ml.so.1",
    "home/kubernetes/bin/nvidia/lib64/libnvidia-ml.so.1",
    "usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1",
    "usr/lib64/libnvidia-ml.so.1",
    "usr/local/cuda/lib64/libnvidia-ml.so.1",
    "usr/lib/libnvidia-ml.so.1",
    "usr/lib/aarch64-linux-gnu/libnvidia-ml.so.1",
    "run/nvidia/driver/usr/lib/aarch64-linux-gnu/libnvidia-ml.so.1",
    "home/kubernetes/bin/nvidia/lib64-aarch64/libnvidia-ml.so.1",
];

/// Devices handled, at most (NVML's own limit per node is far lower).
const MAX_DEVICES: u32 = 64;
/// Samples read per device and call, at most.
const MAX_SAMPLES: u32 = 1024;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// dlopen failed.
    #[error("cannot load {path}: {reason}")]
    Open { path: PathBuf, reason: String },
    /// The library lacks a function sonde needs (not NVML, or too old).
    #[error("{path} has no {symbol} (not NVML, or a driver older than R450)")]
    Symbol { path: PathBuf, symbol: &'static str },
    /// An NVML call failed.
    #[error("{call} failed with NVML error {code}")]
    Call { call: &'static str, code: i32 },
}

/// The first NVML library found under `host_root`.
pub fn find_library(host_root: &Path) -> Option<PathBuf> {
    LIBRARY_PATHS
        .iter()
        .map(|p| host_root.join(p))
        .find(|p| p.is_file())
}

/// One GPU's figures at a scrape.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceStats {
    pub uuid: String,
    pub name: String,
    pub memory_total_bytes: Option<u64>,
    pub memory_used_bytes: Option<u64>,
    pub temperature_celsius: Option<f64>,
    pub power_watts: Option<f64>,
    /// Core utilisation (percent): average and peak of the samples since the last scrape.
    pub utilization: Option<(f64, f64)>,
    /// Memory-controller utilisation (percent): average and peak since the last scrape.
    pub memory_utilization: Option<(f64, f64)>,
}

/// A process's average utilisation of one GPU since the last scrape.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessUsage {
    pub uuid: String,
    pub pid: u32,
    pub gpu_percent: f64,
    pub memory_percent: f64,
}

struct Device {
    handle: NvmlDevice,
    uuid: String,
    name: String,
    /// Last sample timestamp seen, per sampling type (GPU, memory) and for processes.
    last: [u64; 3],
}

/// A loaded and initialised NVML. Dropping it shuts NVML down and unloads it.
pub struct Nvml {
    lib: *mut libc::c_void,
    f: Fns,
    devices: Vec<Device>,
    driver_version: String,
}

// SAFETY: NVML is thread-safe (documented), the handles are plain pointers it owns, and sonde
// uses one Nvml behind a Mutex.
unsafe impl Send for Nvml {}

impl std::fmt::Debug for Nvml {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nvml")
            .field("devices", &self.devices.len())
            .field("driver_version", &self.driver_version)
            .finish()
    }
}

impl Nvml {
    /// dlopens `path`, initialises NVML and lists its devices.
    pub fn load(path: &Path) -> Result<Nvml, Error> {
        let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| Error::Open {
            path: path.to_owned(),
            reason: "path contains a NUL byte".into(),
        })?;
        // SAFETY: a valid C string; RTLD_NOW resolves everything at once so a broken library
        // fails here, not at a later call.
        let lib = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if lib.is_null() {
            return Err(Error::Open {
                path: path.to_owned(),
                reason: ffi::dlerror(),
            });
        }
        let f = match Fns::resolve(lib) {
            Ok(f) => f,
            Err(symbol) => {
                // SAFETY: `lib` came from dlopen and nothing from it is in use.
                unsafe { libc::dlclose(lib) };
                return Err(Error::Symbol {
                    path: path.to_owned(),
                    symbol,
                });
            }
        };
        let mut nvml = Nvml {
            lib,
            f,
            devices: Vec::new(),
            driver_version: String::new(),
        };
        // From here Drop shuts down and closes.
        // SAFETY: resolved from the library with NVML's signature.
        check("nvmlInit_v2", unsafe { (nvml.f.init)() })?;
        nvml.driver_version = nvml
            .string(|buf, len| unsafe { (nvml.f.driver_version)(buf, len) })
            .unwrap_or_default();
        let mut count: c_uint = 0;
        // SAFETY: `count` is a valid out pointer.
        check("nvmlDeviceGetCount_v2", unsafe {
            (nvml.f.device_count)(&mut count)
        })?;
        for i in 0..count.min(MAX_DEVICES) {
            let mut handle: NvmlDevice = std::ptr::null_mut();
            // SAFETY: valid out pointer; index below the count NVML gave.
            check("nvmlDeviceGetHandleByIndex_v2", unsafe {
                (nvml.f.device_by_index)(i, &mut handle)
            })?;
            let uuid = nvml.string(|buf, len| unsafe { (nvml.f.uuid)(handle, buf, len) })?;
            let name = nvml.string(|buf, len| unsafe { (nvml.f.name)(handle, buf, len) })?;
            nvml.devices.push(Device {
                handle,
                uuid,
                name,
                last: [0; 3],
            });
        }
        Ok(nvml)
    }

    /// (uuid, name) of every device.
    pub fn devices(&self) -> impl Iterator<Item = (&str, &str)> {
        self.devices
            .iter()
            .map(|d| (d.uuid.as_str(), d.name.as_str()))
    }

    /// The driver's version ("535.104.05"), empty if NVML would not say.
    pub fn driver_version(&self) -> &str {
        &self.driver_version
    }

    /// Calls an NVML string getter into a stack buffer.
    fn string(&self, call: impl FnOnce(*mut c_char, c_uint) -> i32) -> Result<String, Error> {
        let mut buf = [0 as c_char; 128];
        check("string getter", call(buf.as_mut_ptr(), buf.len() as c_uint))?;
        // SAFETY: NVML NUL-terminates on success; the last byte is forced to NUL regardless.
        buf[buf.len() - 1] = 0;
        let s = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
        Ok(s.to_string_lossy().into_owned())
    }

    /// Every device's figures now; a figure NVML refuses (not supported on this GPU) is None.
    pub fn scrape(&mut self) -> Vec<DeviceStats> {
        let f = &self.f;
        let mut out = Vec::with_capacity(self.devices.len());
        for d in &mut self.devices {
            let mut mem = ffi::Memory::default();
            // SAFETY (all calls below): handles from NVML, valid out pointers.
            let mem_ok = unsafe { (f.memory)(d.handle, &mut mem) } == 0;
            let mut temp: c_uint = 0;
            let temp_ok =
                unsafe { (f.temperature)(d.handle, ffi::TEMPERATURE_GPU, &mut temp) } == 0;
            let mut mw: c_uint = 0;
            let power_ok = unsafe { (f.power)(d.handle, &mut mw) } == 0;
            let utilization = samples(f, d.handle, ffi::GPU_UTILIZATION_SAMPLES, &mut d.last[0]);
            let memory_utilization =
                samples(f, d.handle, ffi::MEMORY_UTILIZATION_SAMPLES, &mut d.last[1]);
            out.push(DeviceStats {
                uuid: d.uuid.clone(),
                name: d.name.clone(),
                memory_total_bytes: mem_ok.then_some(mem.total),
                memory_used_bytes: mem_ok.then_some(mem.used),
                temperature_celsius: temp_ok.then_some(f64::from(temp)),
                power_watts: power_ok.then(|| f64::from(mw) / 1000.0),
                utilization,
                memory_utilization,
            });
        }
        out
    }

    /// Per process and device, the average utilisation over the samples NVML took since the
    /// last call (processes with no sample are absent: idle on that GPU).
    pub fn process_usage(&mut self) -> Vec<ProcessUsage> {
        let f = &self.f;
        let mut out = Vec::new();
        for d in &mut self.devices {
            let mut n: c_uint = 0;
            // SAFETY: a NULL buffer asks for the count (NVML answers INSUFFICIENT_SIZE).
            let rc = unsafe {
                (f.process_utilization)(d.handle, std::ptr::null_mut(), &mut n, d.last[2])
            };
            if (rc != 0 && rc != ffi::ERROR_INSUFFICIENT_SIZE) || n == 0 {
                continue;
            }
            let mut buf = vec![ProcessSample::default(); n.min(MAX_SAMPLES) as usize];
            let mut n = buf.len() as c_uint;
            // SAFETY: `buf` holds `n` samples.
            let rc =
                unsafe { (f.process_utilization)(d.handle, buf.as_mut_ptr(), &mut n, d.last[2]) };
            if rc != 0 {
                continue;
            }
            // (sum sm, sum mem, count) per pid.
            let mut per_pid: HashMap<u32, (f64, f64, f64)> = HashMap::new();
            for s in buf
                .iter()
                .take(n as usize)
                .filter(|s| s.time_stamp > d.last[2])
            {
                let e = per_pid.entry(s.pid).or_default();
                e.0 += f64::from(s.sm_util);
                e.1 += f64::from(s.mem_util);
                e.2 += 1.0;
            }
            if let Some(max) = buf.iter().take(n as usize).map(|s| s.time_stamp).max() {
                d.last[2] = d.last[2].max(max);
            }
            let mut pids: Vec<_> = per_pid.into_iter().collect();
            pids.sort_by_key(|(pid, _)| *pid);
            for (pid, (sm, mem, count)) in pids {
                out.push(ProcessUsage {
                    uuid: d.uuid.clone(),
                    pid,
                    gpu_percent: sm / count,
                    memory_percent: mem / count,
                });
            }
        }
        out
    }
}

impl Drop for Nvml {
    fn drop(&mut self) {
        // SAFETY: NVML was initialised by load (or init failed, where shutdown is harmless), and
        // nothing from the library outlives self.
        unsafe {
            (self.f.shutdown)();
            libc::dlclose(self.lib);
        }
    }
}

fn check(call: &'static str, code: i32) -> Result<(), Error> {
    if code == 0 {
        Ok(())
    } else {
        Err(Error::Call { call, code })
    }
}

/// Average and peak of the samples of `kind` newer than `last`, which moves to the newest.
fn samples(f: &Fns, dev: NvmlDevice, kind: i32, last: &mut c_ulonglong) -> Option<(f64, f64)> {
    let mut n: c_uint = 0;
    let mut vt: i32 = 0;
    // SAFETY: a NULL buffer asks for the count.
    if unsafe { (f.samples)(dev, kind, *last, &mut vt, &mut n, std::ptr::null_mut()) } != 0
        || n == 0
    {
        return None;
    }
    let mut buf = vec![Sample::default(); n.min(MAX_SAMPLES) as usize];
    let mut n = buf.len() as c_uint;
    // SAFETY: `buf` holds `n` samples.
    if unsafe { (f.samples)(dev, kind, *last, &mut vt, &mut n, buf.as_mut_ptr()) } != 0 {
        return None;
    }
    let values: Vec<(u64, f64)> = buf
        .iter()
        .take(n as usize)
        .filter(|s| s.time_stamp > *last)
        .filter_map(|s| Some((s.time_stamp, ffi::value(vt, s.value)?)))
        .collect();
    if let Some(max) = values.iter().map(|(t, _)| *t).max() {
        *last = max;
    }
    if values.is_empty() {
        return None;
    }
    let sum: f64 = values.iter().map(|(_, v)| v).sum();
    let peak = values.iter().map(|(_, v)| *v).fold(0.0, f64::max);
    Some((sum / values.len() as f64, peak))
}
