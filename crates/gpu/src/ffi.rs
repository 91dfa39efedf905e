//! NVML's C ABI: the few types and functions sonde calls (nvml.h), resolved with dlsym.

use std::ffi::{CStr, c_char, c_uint, c_ulonglong, c_void};

pub type NvmlDevice = *mut c_void;

pub const ERROR_INSUFFICIENT_SIZE: i32 = 7;
pub const TEMPERATURE_GPU: i32 = 0;
pub const GPU_UTILIZATION_SAMPLES: i32 = 1;
pub const MEMORY_UTILIZATION_SAMPLES: i32 = 2;

/// nvmlMemory_t
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct Memory {
    pub total: c_ulonglong,
    pub free: c_ulonglong,
    pub used: c_ulonglong,
}

/// nvmlSample_t: a timestamp and an 8-byte nvmlValue_t union, read by `value`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct Sample {
    pub time_stamp: c_ulonglong,
    pub value: [u8; 8],
}

/// nvmlProcessUtilizationSample_t
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessSample {
    pub pid: c_uint,
    pub time_stamp: c_ulonglong,
    pub sm_util: c_uint,
    pub mem_util: c_uint,
    pub enc_util: c_uint,
    pub dec_util: c_uint,
}

/// An nvmlValue_t of type `vt` (nvmlValueType_t) as f64.
pub fn value(vt: i32, v: [u8; 8]) -> Option<f64> {
    let u32v = || u32::from_ne_bytes([v[0], v[1], v[2], v[3]]);
    Some(match vt {
        0 => f64::from_ne_bytes(v),
        1 => f64::from(u32v()),
        2 | 3 => u64::from_ne_bytes(v) as f64,
        4 => i64::from_ne_bytes(v) as f64,
        5 => f64::from(u32v() as i32),
        _ => return None,
    })
}

type InitFn = unsafe extern "C" fn() -> i32;
type CountFn = unsafe extern "C" fn(*mut c_uint) -> i32;
type ByIndexFn = unsafe extern "C" fn(c_uint, *mut NvmlDevice) -> i32;
type DeviceStringFn = unsafe extern "C" fn(NvmlDevice, *mut c_char, c_uint) -> i32;
type StringFn = unsafe extern "C" fn(*mut c_char, c_uint) -> i32;
type MemoryFn = unsafe extern "C" fn(NvmlDevice, *mut Memory) -> i32;
type TemperatureFn = unsafe extern "C" fn(NvmlDevice, i32, *mut c_uint) -> i32;
type PowerFn = unsafe extern "C" fn(NvmlDevice, *mut c_uint) -> i32;
type SamplesFn =
    unsafe extern "C" fn(NvmlDevice, i32, c_ulonglong, *mut i32, *mut c_uint, *mut Sample) -> i32;
type ProcessFn =
    unsafe extern "C" fn(NvmlDevice, *mut ProcessSample, *mut c_uint, c_ulonglong) -> i32;

pub struct Fns {
    pub init: InitFn,
    pub shutdown: InitFn,
    pub device_count: CountFn,
    pub device_by_index: ByIndexFn,
    pub uuid: DeviceStringFn,
    pub name: DeviceStringFn,
    pub driver_version: StringFn,
    pub memory: MemoryFn,
    pub temperature: TemperatureFn,
    pub power: PowerFn,
    pub samples: SamplesFn,
    pub process_utilization: ProcessFn,
}

impl Fns {
    /// Resolves every function, or names the first one missing.
    pub fn resolve(lib: *mut c_void) -> Result<Fns, &'static str> {
        macro_rules! sym {
            ($name:literal, $ty:ty) => {{
                let name = concat!($name, "\0");
                // SAFETY: `lib` is a live dlopen handle and `name` NUL-terminated.
                let p = unsafe { libc::dlsym(lib, name.as_ptr().cast()) };
                if p.is_null() {
                    return Err($name);
                }
                // SAFETY: the symbol is NVML's function of that name, whose C signature is
                // `$ty` (nvml.h).
                unsafe { std::mem::transmute::<*mut c_void, $ty>(p) }
            }};
        }
        Ok(Fns {
            init: sym!("nvmlInit_v2", InitFn),
            shutdown: sym!("nvmlShutdown", InitFn),
            device_count: sym!("nvmlDeviceGetCount_v2", CountFn),
            device_by_index: sym!("nvmlDeviceGetHandleByIndex_v2", ByIndexFn),
            uuid: sym!("nvmlDeviceGetUUID", DeviceStringFn),
            name: sym!("nvmlDeviceGetName", DeviceStringFn),
            driver_version: sym!("nvmlSystemGetDriverVersion", StringFn),
            memory: sym!("nvmlDeviceGetMemoryInfo", MemoryFn),
            temperature: sym!("nvmlDeviceGetTemperature", TemperatureFn),
            power: sym!("nvmlDeviceGetPowerUsage", PowerFn),
            samples: sym!("nvmlDeviceGetSamples", SamplesFn),
            process_utilization: sym!("nvmlDeviceGetProcessUtilization", ProcessFn),
        })
    }
}

/// The last dlopen/dlsym error message.
pub fn dlerror() -> String {
    // SAFETY: dlerror returns NULL or a NUL-terminated string valid until the next dl call.
    let p = unsafe { libc::dlerror() };
    if p.is_null() {
        return "unknown dlopen error".into();
    }
    // SAFETY: non-NULL, NUL-terminated (above).
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}
