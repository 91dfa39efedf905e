//! Container resources beyond CPU and memory, rendered from the registry's reading
//! (`sonde_registry::resources`, `latency`): application types, volumes with the disk I/O of
//! their cgroup (read here, now), upstream latency, and their counters.

use prometheus::proto::MetricFamily;
use sonde_cgroup::{CgroupFs, DeviceIo};
use sonde_registry::latency::LatencyReading;
use sonde_registry::resources::{ContainerResources, ResourcesCounts};
use sonde_registry::{ExportedContainer, NodeLabels};

use crate::catalogue as cat;
use crate::exposition::Family;
use crate::self_metrics::ScrapeStats;

/// Renders the disk and application-type families of every exported container (`readings`
/// in the order of `containers`).
pub fn render_resources(
    containers: &[ExportedContainer],
    readings: &[ContainerResources],
    cgroupfs: Option<&CgroupFs>,
    stats: &ScrapeStats,
    node: &NodeLabels,
    out: &mut Vec<MetricFamily>,
) {
    let mut app_types = Family::new(&cat::CONTAINER_APPLICATION_TYPE);
    let mut size = Family::new(&cat::CONTAINER_DISK_SIZE);
    let mut used = Family::new(&cat::CONTAINER_DISK_USED);
    let mut reserved = Family::new(&cat::CONTAINER_DISK_RESERVED);
    let mut reads = Family::new(&cat::CONTAINER_DISK_READS);
    let mut writes = Family::new(&cat::CONTAINER_DISK_WRITES);
    let mut read_bytes = Family::new(&cat::CONTAINER_DISK_READ_BYTES);
    let mut written_bytes = Family::new(&cat::CONTAINER_DISK_WRITTEN_BYTES);
    for (c, r) in containers.iter().zip(readings) {
        let id = c.container_id.as_str();
        for app in &r.app_types {
            app_types.add(&[("container_id", id), ("application_type", app)], 1.0);
        }
        if r.volumes.is_empty() {
            continue;
        }
        let io: Vec<DeviceIo> = match cgroupfs.map(|fs| fs.io(&c.cgroups)) {
            Some(Ok(io)) => io,
            Some(Err(e)) => {
                if !e.is_not_found() {
                    stats.read_error("io");
                    tracing::debug!(error = %e, "Failed to read cgroup block I/O");
                }
                Vec::new()
            }
            None => Vec::new(),
        };
        for v in &r.volumes {
            let labels: &[(&str, &str)] = &[
                ("container_id", id),
                ("mount_point", &v.mount_point),
                ("device", &v.device),
                ("volume", &v.volume),
            ];
            size.add(labels, v.fs.capacity_bytes as f64);
            used.add(labels, v.fs.used_bytes as f64);
            reserved.add(labels, v.fs.reserved_bytes as f64);
            if let Some(d) = io.iter().find(|d| (d.major, d.minor) == v.dev) {
                reads.add(labels, d.reads as f64);
                writes.add(labels, d.writes as f64);
                read_bytes.add(labels, d.read_bytes as f64);
                written_bytes.add(labels, d.written_bytes as f64);
            }
        }
    }
    for f in [
        app_types,
        size,
        used,
        reserved,
        reads,
        writes,
        read_bytes,
        written_bytes,
    ] {
        f.finish(node, out);
    }
}

/// `sonde_volume_*` and `sonde_apptype_uncached_total`.
pub fn render_resource_counts(c: &ResourcesCounts, node: &NodeLabels, out: &mut Vec<MetricFamily>) {
    let ResourcesCounts {
        mounts_dropped,
        volume_errors,
        apptype_uncached,
    } = *c;
    for (def, value) in [
        (&cat::SONDE_VOLUME_MOUNTS_DROPPED, mounts_dropped),
        (&cat::SONDE_VOLUME_READ_ERRORS, volume_errors),
        (&cat::SONDE_APPTYPE_UNCACHED, apptype_uncached),
    ] {
        let mut f = Family::new(def);
        f.add(&[], value as f64);
        f.finish(node, out);
    }
}

/// `container_net_latency_seconds{destination_ip}` from the pinger's last round, and its
/// counters.
pub fn render_latency(
    containers: &[ExportedContainer],
    reading: &LatencyReading,
    node: &NodeLabels,
    out: &mut Vec<MetricFamily>,
) {
    let LatencyReading {
        rtts,
        targets_dropped,
        errors,
    } = reading;
    let mut f = Family::new(&cat::CONTAINER_NET_LATENCY);
    let mut ip = String::with_capacity(16);
    for (c, results) in containers.iter().zip(rtts) {
        for (addr, rtt) in results {
            use std::fmt::Write as _;
            ip.clear();
            let _ = write!(ip, "{addr}");
            f.add(
                &[("container_id", &c.container_id), ("destination_ip", &ip)],
                *rtt,
            );
        }
    }
    f.finish(node, out);
    for (def, v) in [
        (&cat::SONDE_PINGER_TARGETS_DROPPED, *targets_dropped),
        (&cat::SONDE_PINGER_ERRORS, *errors),
    ] {
        let mut f = Family::new(def);
        f.add(&[], v as f64);
        f.finish(node, out);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use sonde_registry::resources::VolumeReading;

    fn write(root: &std::path::Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn container() -> ExportedContainer {
        ExportedContainer {
            key: "/docker/db".into(),
            container_id: "/docker/db".into(),
            pids: vec![(10, 100)],
            app_id: String::new(),
            restarts: 0,
            oom_kills: 0,
            net: Default::default(),
            active: Default::default(),
            image: String::new(),
            systemd: Default::default(),
            proxied_listens: Vec::new(),
            cgroups: sonde_cgroup::ProcessCgroups::parse(
                "9:blkio:/docker/db\n4:memory:/docker/db\n",
            )
            .unwrap(),
            volumes: Default::default(),
        }
    }

    #[test]
    fn renders_volumes_with_their_disk_io_and_types() {
        let tmp = tempfile::tempdir().unwrap();
        let cg = tmp.path();
        write(
            cg,
            "blkio/docker/db/blkio.throttle.io_serviced",
            "7:0 Read 2\n7:0 Write 8\nTotal 10\n",
        );
        write(
            cg,
            "blkio/docker/db/blkio.throttle.io_service_bytes",
            "7:0 Read 8192\n7:0 Write 8388608\nTotal 8396800\n",
        );
        write(cg, "memory/docker/db/memory.stat", "rss 1\n");
        let cgfs = CgroupFs::detect(cg).unwrap();
        let reading = ContainerResources {
            app_types: ["postgres"].into_iter().collect(),
            volumes: vec![VolumeReading {
                mount_point: "/data".into(),
                device: "loop0".into(),
                dev: (7, 0),
                volume: "pgdata".into(),
                fs: sonde_volumes::FsStat::from_blocks(100, 40, 30, 4096),
            }],
        };
        let stats = ScrapeStats::default();
        let mut out = Vec::new();
        render_resources(
            &[container()],
            &[reading],
            Some(&cgfs),
            &stats,
            &NodeLabels::default(),
            &mut out,
        );
        let text = crate::exposition::encode_text(out).unwrap();
        let l = r#"container_id="/docker/db",mount_point="/data",device="loop0",volume="pgdata",machine_id="",system_uuid="""#;
        for want in [
            format!("container_resources_disk_written_bytes_total{{{l}}} 8388608"),
            format!("container_resources_disk_writes_total{{{l}}} 8"),
            format!("container_resources_disk_read_bytes_total{{{l}}} 8192"),
            format!("container_resources_disk_reads_total{{{l}}} 2"),
            format!("container_resources_disk_size_bytes{{{l}}} 409600"),
            format!("container_resources_disk_used_bytes{{{l}}} 245760"),
            format!("container_resources_disk_reserved_bytes{{{l}}} 40960"),
            r#"container_application_type{container_id="/docker/db",application_type="postgres",machine_id="",system_uuid=""} 1"#.to_owned(),
        ] {
            assert!(text.contains(&want), "missing {want}\n{text}");
        }
    }
}
