//! NVML for the GPU metrics (sonde-exporter renders them at scrape): `node_gpu_info` and `node_resources_gpu_*` per device, and
//! `container_resources_gpu_{usage,memory_usage}_percent{gpu_uuid}` summed over each
//! container's processes, from NVML (sonde-gpu).

use std::path::Path;
use std::sync::Mutex;

use sonde_gpu::Nvml;

use crate::health::Health;
use crate::resources::ResourcesConfig;

/// Loads NVML unless disabled; the outcome is reported once through `health` ("gpu").
pub fn start(config: &ResourcesConfig, host_root: &Path, health: &Health) -> Option<Mutex<Nvml>> {
    if config.disable_gpu_monitoring {
        health.down("gpu", "GPU monitoring is off (--disable-gpu-monitoring)");
        return None;
    }
    let Some(path) = config
        .nvml_library
        .clone()
        .or_else(|| sonde_gpu::find_library(host_root))
    else {
        health.down(
            "gpu",
            format!(
                "no NVML library (libnvidia-ml.so.1) under {}: no NVIDIA driver on this node, GPU metrics are off (on a GPU node, mount the host's root or set --nvml-library)",
                host_root.display()
            ),
        );
        return None;
    };
    match Nvml::load(&path) {
        Ok(nvml) => {
            let names: Vec<&str> = nvml.devices().map(|(_, name)| name).collect();
            tracing::info!(library = %path.display(), gpus = names.len(), names = ?names, "NVML loaded");
            health.up("gpu");
            Some(Mutex::new(nvml))
        }
        Err(e) => {
            health.down(
                "gpu",
                format!("cannot use NVML ({e}): GPU metrics are off; check the NVIDIA driver"),
            );
            None
        }
    }
}
