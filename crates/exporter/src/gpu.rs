//! GPU metrics at scrape time: `node_gpu_info` and `node_resources_gpu_*` per device, and
//! `container_resources_gpu_{usage,memory_usage}_percent{gpu_uuid}` summed over each
//! container's processes, read from NVML (loaded by the registry) now.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};

use prometheus::proto::MetricFamily;
use sonde_gpu::Nvml;
use sonde_registry::{ExportedContainer, NodeLabels};

use crate::catalogue as cat;
use crate::exposition::Family;

/// Renders the node's GPUs and the containers' shares of them.
pub fn render_gpu(
    nvml: &Mutex<Nvml>,
    containers: &[ExportedContainer],
    node: &NodeLabels,
    out: &mut Vec<MetricFamily>,
) {
    let mut nvml = nvml.lock().unwrap_or_else(PoisonError::into_inner);
    let stats = nvml.scrape();
    let usage = nvml.process_usage();
    let driver = nvml.driver_version().to_owned();
    drop(nvml);

    let mut info = Family::new(&cat::NODE_GPU_INFO);
    let mut mem_total = Family::new(&cat::NODE_GPU_MEMORY_TOTAL);
    let mut mem_used = Family::new(&cat::NODE_GPU_MEMORY_USED);
    let mut temperature = Family::new(&cat::NODE_GPU_TEMPERATURE);
    let mut power = Family::new(&cat::NODE_GPU_POWER);
    let mut util_avg = Family::new(&cat::NODE_GPU_UTILIZATION_AVG);
    let mut util_peak = Family::new(&cat::NODE_GPU_UTILIZATION_PEAK);
    let mut mem_util_avg = Family::new(&cat::NODE_GPU_MEMORY_UTILIZATION_AVG);
    let mut mem_util_peak = Family::new(&cat::NODE_GPU_MEMORY_UTILIZATION_PEAK);
    for d in &stats {
        let uuid: &[(&str, &str)] = &[("gpu_uuid", &d.uuid)];
        info.add(
            &[
                ("gpu_uuid", &d.uuid),
                ("name", &d.name),
                ("driver_version", &driver),
            ],
            1.0,
        );
        let fields = [
            (&mut mem_total, d.memory_total_bytes.map(|v| v as f64)),
            (&mut mem_used, d.memory_used_bytes.map(|v| v as f64)),
            (&mut temperature, d.temperature_celsius),
            (&mut power, d.power_watts),
            (&mut util_avg, d.utilization.map(|u| u.0)),
            (&mut util_peak, d.utilization.map(|u| u.1)),
            (&mut mem_util_avg, d.memory_utilization.map(|u| u.0)),
            (&mut mem_util_peak, d.memory_utilization.map(|u| u.1)),
        ];
        for (family, value) in fields {
            if let Some(v) = value {
                family.add(uuid, v);
            }
        }
    }
    for f in [
        info,
        mem_total,
        mem_used,
        temperature,
        power,
        util_avg,
        util_peak,
        mem_util_avg,
        mem_util_peak,
    ] {
        f.finish(node, out);
    }

    // pid -> container, then (container, gpu) -> summed percentages.
    let by_pid: HashMap<u32, usize> = containers
        .iter()
        .enumerate()
        .flat_map(|(i, c)| c.pids.iter().map(move |&(pid, _)| (pid, i)))
        .collect();
    let mut sums: BTreeMap<(usize, &str), (f64, f64)> = BTreeMap::new();
    for u in &usage {
        if let Some(&i) = by_pid.get(&u.pid) {
            let e = sums.entry((i, u.uuid.as_str())).or_default();
            e.0 += u.gpu_percent;
            e.1 += u.memory_percent;
        }
    }
    let mut gpu = Family::new(&cat::CONTAINER_GPU_USAGE);
    let mut gpu_mem = Family::new(&cat::CONTAINER_GPU_MEMORY_USAGE);
    for ((i, uuid), (g, m)) in sums {
        let labels: &[(&str, &str)] = &[
            ("container_id", &containers[i].container_id),
            ("gpu_uuid", uuid),
        ];
        gpu.add(labels, g);
        gpu_mem.add(labels, m);
    }
    gpu.finish(node, out);
    gpu_mem.finish(node, out);
}
