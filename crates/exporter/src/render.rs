//! Scrape-time rendering of node_* and container_* metrics.
//!
//! Values are read at scrape time straight from /proc, /sys and cgroup files (as coroot does):
//! there is no background polling loop, and a container's series exist only while it does.

use prometheus::proto::MetricFamily;
use sonde_cgroup::{CgroupFs, PressureResource};
use sonde_node::NodeSnapshot;
use sonde_registry::{ExportedContainer, NodeLabels};
use sonde_taskstats::ContainerDelays;
use std::fmt::Write as _;
use std::net::SocketAddr;

use crate::catalogue as cat;
use crate::exposition::Family;
use crate::self_metrics::ScrapeStats;

/// A per-device metric: its definition and how to read its value.
type DiskField = (&'static cat::MetricDef, fn(&sonde_node::DiskStats) -> f64);
/// A per-interface metric: its definition and how to read its value.
type InterfaceField = (
    &'static cat::MetricDef,
    fn(&sonde_node::InterfaceStats) -> f64,
);

/// Renders every node_* metric (except node_cloud_info, rendered with the cloud state).
pub fn render_node(
    snap: &NodeSnapshot,
    version: &str,
    node: &NodeLabels,
    out: &mut Vec<MetricFamily>,
) {
    let mut f = Family::new(&cat::NODE_AGENT_INFO);
    f.add(&[("version", version)], 1.0);
    f.finish(node, out);

    // node_info must always be present: it creates the node in the backend.
    let mut f = Family::new(&cat::NODE_INFO);
    f.add(
        &[
            ("hostname", snap.hostname.as_deref().unwrap_or("")),
            (
                "kernel_version",
                snap.kernel_version.as_deref().unwrap_or(""),
            ),
        ],
        1.0,
    );
    f.finish(node, out);

    if let Some(uptime) = snap.uptime_seconds {
        single(&cat::NODE_UPTIME, uptime, node, out);
    }
    if let Some(cpu) = &snap.cpu {
        let mut f = Family::new(&cat::NODE_CPU_USAGE);
        for (mode, v) in [
            ("user", cpu.user),
            ("nice", cpu.nice),
            ("system", cpu.system),
            ("idle", cpu.idle),
            ("iowait", cpu.iowait),
            ("irq", cpu.irq),
            ("softirq", cpu.softirq),
            ("steal", cpu.steal),
        ] {
            f.add(&[("mode", mode)], v);
        }
        f.finish(node, out);
    }
    if let Some(cores) = snap.logical_cores {
        single(&cat::NODE_CPU_CORES, f64::from(cores), node, out);
    }
    if let Some(mem) = &snap.memory {
        single(&cat::NODE_MEM_TOTAL, mem.total_bytes as f64, node, out);
        single(&cat::NODE_MEM_FREE, mem.free_bytes as f64, node, out);
        single(
            &cat::NODE_MEM_AVAILABLE,
            mem.available_bytes as f64,
            node,
            out,
        );
        single(&cat::NODE_MEM_CACHED, mem.cached_bytes as f64, node, out);
    }

    let disk_defs: [DiskField; 7] = [
        (&cat::NODE_DISK_READS, |d| d.reads as f64),
        (&cat::NODE_DISK_WRITES, |d| d.writes as f64),
        (&cat::NODE_DISK_READ_BYTES, |d| d.read_bytes as f64),
        (&cat::NODE_DISK_WRITTEN_BYTES, |d| d.written_bytes as f64),
        (&cat::NODE_DISK_READ_TIME, |d| d.read_time_seconds),
        (&cat::NODE_DISK_WRITE_TIME, |d| d.write_time_seconds),
        (&cat::NODE_DISK_IO_TIME, |d| d.io_time_seconds),
    ];
    for (def, value) in disk_defs {
        let mut f = Family::new(def);
        for d in &snap.disks {
            f.add(&[("device", &d.device)], value(d));
        }
        f.finish(node, out);
    }

    let net_defs: [InterfaceField; 4] = [
        (&cat::NODE_NET_RX_BYTES, |i| i.rx_bytes as f64),
        (&cat::NODE_NET_TX_BYTES, |i| i.tx_bytes as f64),
        (&cat::NODE_NET_RX_PACKETS, |i| i.rx_packets as f64),
        (&cat::NODE_NET_TX_PACKETS, |i| i.tx_packets as f64),
    ];
    for (def, value) in net_defs {
        let mut f = Family::new(def);
        for i in &snap.interfaces {
            f.add(&[("interface", &i.name)], value(i));
        }
        f.finish(node, out);
    }
    let mut up = Family::new(&cat::NODE_NET_UP);
    let mut ips = Family::new(&cat::NODE_NET_IP);
    for i in &snap.interfaces {
        up.add(&[("interface", &i.name)], if i.up { 1.0 } else { 0.0 });
        for ip in &i.ips {
            ips.add(&[("interface", &i.name), ("ip", &ip.to_string())], 1.0);
        }
    }
    up.finish(node, out);
    ips.finish(node, out);
}

fn single(
    def: &'static cat::MetricDef,
    value: f64,
    node: &NodeLabels,
    out: &mut Vec<MetricFamily>,
) {
    let mut f = Family::new(def);
    f.add(&[], value);
    f.finish(node, out);
}

/// Per-container families, filled container by container.
struct ContainerFamilies {
    info: Family,
    cpu_usage: Family,
    cpu_throttled: Family,
    cpu_limit: Family,
    mem_rss: Family,
    mem_cache: Family,
    mem_limit: Family,
    cpu_pressure: Family,
    mem_pressure: Family,
    io_pressure: Family,
    cpu_delay: Family,
    disk_delay: Family,
    restarts: Family,
    oom_kills: Family,
    listen: Family,
    successful: Family,
    connection_time: Family,
    failed: Family,
    active: Family,
    retransmits: Family,
    bytes_sent: Family,
    bytes_received: Family,
    packets_sent: Family,
    packets_received: Family,
}

/// The node's availability zone and region, from the cloud probe (empty while unknown).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Zone {
    pub az: String,
    pub region: String,
}

impl Zone {
    /// From the cloud probe's last answer, if any.
    pub fn from_cloud(info: Option<&sonde_cloud::CloudInfo>) -> Zone {
        info.map(|i| Zone {
            az: i.availability_zone.clone(),
            region: i.region.clone(),
        })
        .unwrap_or_default()
    }

    /// Whether either is known (then both labels are set, one possibly empty).
    pub fn known(&self) -> bool {
        !self.az.is_empty() || !self.region.is_empty()
    }
}

/// Renders container_* resource metrics, reading each container's cgroup files now.
/// A container whose cgroup vanished since the registry listed it is skipped silently; any other
/// read failure is counted in `sonde_cgroup_read_errors_total{resource}`.
pub fn render_containers(
    containers: &[ExportedContainer],
    delays: &[Option<ContainerDelays>],
    cgroupfs: Option<&CgroupFs>,
    zone: &Zone,
    metrics: &ScrapeStats,
    node: &NodeLabels,
    out: &mut Vec<MetricFamily>,
) {
    let mut fams = ContainerFamilies {
        info: Family::new(&cat::CONTAINER_INFO),
        cpu_usage: Family::new(&cat::CONTAINER_CPU_USAGE),
        cpu_throttled: Family::new(&cat::CONTAINER_CPU_THROTTLED),
        cpu_limit: Family::new(&cat::CONTAINER_CPU_LIMIT),
        mem_rss: Family::new(&cat::CONTAINER_MEM_RSS),
        mem_cache: Family::new(&cat::CONTAINER_MEM_CACHE),
        mem_limit: Family::new(&cat::CONTAINER_MEM_LIMIT),
        cpu_pressure: Family::new(&cat::CONTAINER_CPU_PRESSURE),
        mem_pressure: Family::new(&cat::CONTAINER_MEM_PRESSURE),
        io_pressure: Family::new(&cat::CONTAINER_IO_PRESSURE),
        cpu_delay: Family::new(&cat::CONTAINER_CPU_DELAY),
        disk_delay: Family::new(&cat::CONTAINER_DISK_DELAY),
        restarts: Family::new(&cat::CONTAINER_RESTARTS),
        oom_kills: Family::new(&cat::CONTAINER_OOM_KILLS),
        listen: Family::new(&cat::CONTAINER_NET_LISTEN_INFO),
        successful: Family::new(&cat::CONTAINER_NET_SUCCESSFUL_CONNECTS),
        connection_time: Family::new(&cat::CONTAINER_NET_CONNECTION_TIME),
        failed: Family::new(&cat::CONTAINER_NET_FAILED_CONNECTS),
        active: Family::new(&cat::CONTAINER_NET_ACTIVE),
        retransmits: Family::new(&cat::CONTAINER_NET_RETRANSMITS),
        bytes_sent: Family::new(&cat::CONTAINER_NET_BYTES_SENT),
        bytes_received: Family::new(&cat::CONTAINER_NET_BYTES_RECEIVED),
        packets_sent: Family::new(&cat::CONTAINER_NET_PACKETS_SENT),
        packets_received: Family::new(&cat::CONTAINER_NET_PACKETS_RECEIVED),
    };
    for (i, c) in containers.iter().enumerate() {
        let id: &[(&str, &str)] = &[("container_id", &c.container_id)];
        fams.info.add(
            &[
                ("container_id", &c.container_id),
                ("image", &c.image),
                ("systemd_triggered_by", &c.systemd.triggered_by),
                ("systemd_type", &c.systemd.unit_type),
            ],
            1.0,
        );
        fams.restarts.add(id, c.restarts as f64);
        fams.oom_kills.add(id, c.oom_kills as f64);
        render_net(c, zone, &mut fams);
        if let Some(Some(d)) = delays.get(i) {
            fams.cpu_delay.add(id, d.cpu_delay_seconds);
            fams.disk_delay.add(id, d.disk_delay_seconds);
        }
        let Some(fs) = cgroupfs else { continue };
        match fs.cpu(&c.cgroups) {
            Ok(cpu) => {
                fams.cpu_usage.add(id, cpu.usage_seconds);
                fams.cpu_throttled.add(id, cpu.throttled_seconds);
                if let Some(limit) = cpu.limit_cores {
                    fams.cpu_limit.add(id, limit);
                }
            }
            Err(e) => count_error(metrics, "cpu", &e),
        }
        match fs.memory(&c.cgroups) {
            Ok(mem) => {
                fams.mem_rss.add(id, mem.rss_bytes as f64);
                fams.mem_cache.add(id, mem.cache_bytes as f64);
                if let Some(limit) = mem.limit_bytes {
                    fams.mem_limit.add(id, limit as f64);
                }
            }
            Err(e) => count_error(metrics, "memory", &e),
        }
        for (resource, fam, label) in [
            (
                PressureResource::Cpu,
                &mut fams.cpu_pressure,
                "cpu_pressure",
            ),
            (
                PressureResource::Memory,
                &mut fams.mem_pressure,
                "memory_pressure",
            ),
            (PressureResource::Io, &mut fams.io_pressure, "io_pressure"),
        ] {
            match fs.pressure(&c.cgroups, resource) {
                Ok(Some(p)) => {
                    fam.add(
                        &[("container_id", &c.container_id), ("kind", "some")],
                        p.some_seconds,
                    );
                    if let Some(full) = p.full_seconds {
                        fam.add(&[("container_id", &c.container_id), ("kind", "full")], full);
                    }
                }
                Ok(None) => {}
                Err(e) => count_error(metrics, label, &e),
            }
        }
    }
    for f in [
        fams.info,
        fams.cpu_usage,
        fams.cpu_throttled,
        fams.cpu_limit,
        fams.mem_rss,
        fams.mem_cache,
        fams.mem_limit,
        fams.cpu_pressure,
        fams.mem_pressure,
        fams.io_pressure,
        fams.cpu_delay,
        fams.disk_delay,
        fams.restarts,
        fams.oom_kills,
        fams.listen,
        fams.successful,
        fams.connection_time,
        fams.failed,
        fams.active,
        fams.retransmits,
        fams.bytes_sent,
        fams.bytes_received,
        fams.packets_sent,
        fams.packets_received,
    ] {
        f.finish(node, out);
    }
}

/// Network families of one container. `actual_destination` is where a connection really went
/// (from conntrack: e.g. a Service IP's pod), `destination` where it was dialled; a failed
/// connect has only the latter. `app_id` is the container's Kubernetes workload (empty
/// elsewhere).
fn render_net(c: &ExportedContainer, zone: &Zone, fams: &mut ContainerFamilies) {
    let id = c.container_id.as_str();
    // The node's zone and region ride on the connection series once the cloud probe knows
    // them (the server weighs cross-zone traffic with them); before, the labels are absent.
    let zone_labels = zone.known() as usize * 2;
    let mut addr = String::with_capacity(48);
    // Two listeners may expand to one address (0.0.0.0:80 and 10.0.0.7:80): one series, open
    // if either is.
    let mut listens: Vec<(SocketAddr, bool)> = Vec::with_capacity(c.net.listens.len());
    for (listen_addr, l) in &c.net.listens {
        for a in l.exported_addrs(*listen_addr) {
            match listens.iter_mut().find(|(x, _)| *x == a) {
                Some((_, open)) => *open |= l.open,
                None => listens.push((a, l.open)),
            }
        }
    }
    for (listen_addr, open) in listens {
        addr.clear();
        let _ = write!(addr, "{listen_addr}");
        fams.listen.add(
            &[("container_id", id), ("listen_addr", &addr), ("proxy", "")],
            if open { 1.0 } else { 0.0 },
        );
    }
    for listen_addr in &c.proxied_listens {
        addr.clear();
        let _ = write!(addr, "{listen_addr}");
        fams.listen.add(
            &[
                ("container_id", id),
                ("listen_addr", &addr),
                ("proxy", "dockerd"),
            ],
            1.0,
        );
    }
    let mut actual_addr = String::with_capacity(48);
    for (key @ (dst, actual), d) in &c.net.destinations {
        addr.clear();
        let _ = write!(addr, "{dst}");
        actual_addr.clear();
        let _ = write!(actual_addr, "{actual}");
        let all = [
            ("container_id", id),
            ("destination", &addr),
            ("actual_destination", &actual_addr),
            ("app_id", &c.app_id),
            ("az", &zone.az),
            ("region", &zone.region),
        ];
        let labels: &[(&str, &str)] = &all[..4 + zone_labels];
        let active = c.active.get(key).copied().unwrap_or(0);
        if d.successful_connects > 0 {
            fams.successful.add(labels, d.successful_connects as f64);
            fams.connection_time.add(labels, d.connection_time_seconds);
        }
        // 0 once every connection closed, so "K open, then 0" reads as such. A connection
        // older than the agent has no connect here, only bytes and its active count.
        let used = d.successful_connects > 0 || d.bytes_sent > 0 || d.bytes_received > 0;
        if used || active > 0 {
            fams.active.add(labels, active as f64);
        }
        if d.failed_connects > 0 {
            let all = [
                ("container_id", id),
                ("destination", &addr),
                ("app_id", &c.app_id),
                ("az", &zone.az),
                ("region", &zone.region),
            ];
            fams.failed
                .add(&all[..3 + zone_labels], d.failed_connects as f64);
        }
        if d.retransmits > 0 {
            fams.retransmits.add(labels, d.retransmits as f64);
        }
        if used || active > 0 {
            fams.bytes_sent.add(labels, d.bytes_sent as f64);
            fams.bytes_received.add(labels, d.bytes_received as f64);
            fams.packets_sent.add(labels, d.packets_sent as f64);
            fams.packets_received.add(labels, d.packets_received as f64);
        }
    }
    // Open connections to a destination with nothing counted yet (a connection older than
    // the agent that has moved no byte since): active, with zero bytes.
    for (key @ (dst, actual), n) in &c.active {
        if c.net.destinations.contains_key(key) {
            continue;
        }
        addr.clear();
        let _ = write!(addr, "{dst}");
        actual_addr.clear();
        let _ = write!(actual_addr, "{actual}");
        let all = [
            ("container_id", id),
            ("destination", &addr),
            ("actual_destination", &actual_addr),
            ("app_id", &c.app_id),
            ("az", &zone.az),
            ("region", &zone.region),
        ];
        let labels: &[(&str, &str)] = &all[..4 + zone_labels];
        fams.active.add(labels, *n as f64);
        for f in [
            &mut fams.bytes_sent,
            &mut fams.bytes_received,
            &mut fams.packets_sent,
            &mut fams.packets_received,
        ] {
            f.add(labels, 0.0);
        }
    }
}

fn count_error(metrics: &ScrapeStats, resource: &str, e: &sonde_cgroup::Error) {
    if e.is_not_found() {
        return; // The container went away between listing and reading.
    }
    metrics.read_error(resource);
    tracing::debug!(resource, error = %e, "Failed to read cgroup file");
}

/// `node_cloud_info` from the cloud subsystem's last good answer (absent until one is known, and
/// on machines that are not in a recognised cloud and have no overrides).
pub fn render_cloud(
    cloud: &sonde_cloud::CloudHandle,
    node: &NodeLabels,
    out: &mut Vec<MetricFamily>,
) {
    if let Some(info) = cloud.current() {
        let mut f = Family::new(&cat::NODE_CLOUD_INFO);
        f.add(&info.labels(), 1.0);
        f.finish(node, out);
    }
    let errors = cloud.errors_total();
    if !errors.is_empty() {
        let mut f = Family::new(&cat::SONDE_CLOUD_METADATA_ERRORS);
        for (provider, n) in &errors {
            f.add(&[("provider", provider)], *n as f64);
        }
        f.finish(node, out);
    }
}

/// `container_log_messages_total{source,level,pattern_hash,sample}` of every exported container,
/// and the log subsystem's own counters. Below warning, messages count under `pattern_hash=""`;
/// at warning and above, the patterns beyond `--log-patterns-per-container` count under one
/// `pattern_hash="unclassified"` series per source and level.
pub fn render_logs(
    containers: &[ExportedContainer],
    logs: &sonde_logs::LogManager,
    node: &NodeLabels,
    out: &mut Vec<MetricFamily>,
) {
    let mut f = Family::new(&cat::CONTAINER_LOG_MESSAGES);
    let mut hash = String::with_capacity(16);
    for c in containers {
        logs.for_each(&c.key, |source, level, pattern, sample, count| {
            hash.clear();
            match pattern {
                Some(h) => {
                    let _ = write!(hash, "{h:016x}");
                }
                None if level.keeps_patterns() => hash.push_str("unclassified"),
                None => {}
            }
            f.add(
                &[
                    ("container_id", &c.container_id),
                    ("source", source),
                    ("level", level.as_str()),
                    ("pattern_hash", &hash),
                    ("sample", sample),
                ],
                count as f64,
            );
        });
    }
    f.finish(node, out);

    // Every field is named, none is skipped with `..`: a counter added to LogStats does not
    // compile until it is rendered here or left out with the reason (a metric declared in the
    // catalogue and never rendered is the bug this prevents).
    let sonde_logs::LogStats {
        lines,
        bytes,
        // container_log_messages_total carries the messages, per container.
        messages: _,
        decode_errors,
        truncated_lines,
        rotations,
        truncations,
        read_errors,
        journal_errors,
        journal_entries,
        // Routed entries are container_log_messages_total{source="journald"}.
        journal_routed: _,
        journal_open,
        open_files,
        skipped_sources,
        // sonde_containers_tracked counts containers; this is only the log side's view.
        containers: _,
        memory_bytes,
    } = logs.stats();
    for (def, value) in [
        (&cat::SONDE_LOG_LINES, lines as f64),
        (&cat::SONDE_LOG_BYTES, bytes as f64),
        (&cat::SONDE_LOG_DECODE_ERRORS, decode_errors as f64),
        (&cat::SONDE_LOG_TRUNCATED_LINES, truncated_lines as f64),
        (
            &cat::SONDE_LOG_READ_ERRORS,
            (read_errors + journal_errors) as f64,
        ),
        (&cat::SONDE_LOG_SKIPPED_SOURCES, skipped_sources as f64),
        (&cat::SONDE_LOG_OPEN_FILES, open_files as f64),
        (&cat::SONDE_LOG_MEMORY, memory_bytes as f64),
        (&cat::SONDE_LOG_ROTATIONS, rotations as f64),
        (&cat::SONDE_LOG_TRUNCATIONS, truncations as f64),
        (&cat::SONDE_JOURNAL_ENTRIES, journal_entries as f64),
        (&cat::SONDE_JOURNAL_OPEN, f64::from(u8::from(journal_open))),
    ] {
        let mut f = Family::new(def);
        f.add(&[], value);
        f.finish(node, out);
    }
}
