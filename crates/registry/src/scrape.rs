//! What one scrape takes from the registry: the exported containers with their delays and
//! resources, the tracer's figures, and handles on what the exporter reads itself (cgroupfs,
//! logs, NVML, cloud). The state half of a scrape; sonde-exporter renders it.

use std::net::IpAddr;
use std::sync::PoisonError;
use std::sync::atomic::Ordering::Relaxed;

use sonde_taskstats::ContainerDelays;

use crate::delays::DelayStats;
use crate::exported::ExportedContainer;
use crate::latency::LatencyReading;
use crate::metadata::MetadataCounts;
use crate::resources::{ContainerResources, ResourcesCounts};
use crate::stats::RegistryCounts;
use crate::{Registry, RegistryConfig};

/// One scrape's copy of the registry's state. Vectors indexed like `containers`.
#[derive(Debug)]
pub struct Scrape {
    pub containers: Vec<ExportedContainer>,
    /// Each container's CPU and disk delays (None: taskstats could not tell).
    pub delays: Vec<Option<ContainerDelays>>,
    /// Each container's volumes and application types.
    pub resources: Vec<ContainerResources>,
    /// The pinger's results (None: the pinger is off).
    pub latency: Option<LatencyReading>,
    /// The node-wide `ip_to_fqdn` map.
    pub ip_to_fqdn: Vec<(IpAddr, String)>,
    /// The eBPF tracer's self-metrics (None: the tracer is not loaded).
    pub tracer: Option<TracerFigures>,
    pub registry: RegistryCounts,
    pub metadata: MetadataCounts,
    pub delay_stats: DelayStats,
    pub resource_stats: ResourcesCounts,
}

/// The tracer's and its bridge's counters, as of this scrape.
#[derive(Debug, Clone)]
pub struct TracerFigures {
    /// Events lost in the kernel, per program.
    pub lost: Vec<(&'static str, u64)>,
    pub decode_errors: u64,
    /// New processes not placed because the pending queue was full.
    pub new_processes_dropped: u64,
    /// Events of processes no container could be found for.
    pub unattributed: u64,
    pub tracked_connections: usize,
    pub table_overflow: u64,
    pub stale_connections: u64,
    /// The conntrack subsystem's counters (None: NAT resolution is off).
    pub nat: Option<sonde_nat::NatStats>,
    /// The L7 engine's counters (None: the L7 programs are not attached).
    pub l7: Option<sonde_tracer::l7::L7Stats>,
    /// The TLS attacher's counters (None: the TLS uprobes are not loaded).
    pub tls: Option<sonde_tracer::tls::TlsStats>,
}

impl Registry {
    /// Copies out what this scrape exports: reads the kernel's connection map (applying what
    /// it found), lists the exported containers, reads their delays, volumes and application
    /// types, and hands the pinger its targets. Reads files: call it from a blocking context.
    pub fn scrape(&self) -> Scrape {
        let inner = &*self.inner;
        let tracer_scrape = inner.net.as_ref().map(|n| n.scrape());
        let mut containers = self.exported_containers();
        inner.resources.fill_systemd(&mut containers);
        let tracer = tracer_scrape.map(|t| {
            let stats = &inner.bridge_stats;
            let unattributed = inner
                .state
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .unattributed_events;
            TracerFigures {
                lost: t.lost,
                decode_errors: stats.decode_errors.load(Relaxed),
                new_processes_dropped: stats.pending_dropped.load(Relaxed),
                unattributed,
                tracked_connections: t.tracked_connections,
                table_overflow: t.table_overflow,
                stale_connections: t.stale_connections,
                nat: t.nat,
                l7: t
                    .l7_attached
                    .then(|| *stats.l7.lock().unwrap_or_else(PoisonError::into_inner)),
                tls: stats
                    .tls
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone(),
            }
        });
        let (delays, delay_stats) = {
            let mut d = inner.delays.lock().unwrap_or_else(PoisonError::into_inner);
            (d.update(&containers), d.stats)
        };
        let resources = inner.resources.read(&containers, inner.cgroupfs.as_ref());
        let latency = inner.resources.latency().map(|l| l.update(&containers));
        Scrape {
            delays,
            resources,
            latency,
            ip_to_fqdn: self.ip_to_fqdn(),
            tracer,
            registry: inner.stats.counts(),
            metadata: inner.metadata_stats.counts(),
            delay_stats,
            resource_stats: inner.resources.counts(),
            containers,
        }
    }

    /// The node-wide `ip_to_fqdn` map, copied out under the registry lock.
    fn ip_to_fqdn(&self) -> Vec<(IpAddr, String)> {
        let state = self
            .inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        state
            .ip_to_fqdn
            .iter()
            .map(|(ip, name)| (*ip, name.to_owned()))
            .collect()
    }

    /// The configuration the registry was started with (paths, version, cloud handle).
    pub fn config(&self) -> &RegistryConfig {
        &self.inner.config
    }

    /// The cgroup filesystem (None: cgroupfs is unusable and the `cgroup` subsystem down).
    pub fn cgroupfs(&self) -> Option<&sonde_cgroup::CgroupFs> {
        self.inner.cgroupfs.as_ref()
    }

    /// The log manager (None: --disable-log-parsing).
    pub fn logs(&self) -> Option<&sonde_logs::LogManager> {
        self.inner.logs.as_deref()
    }

    /// NVML (None: no GPU, or GPU monitoring off).
    pub fn gpu(&self) -> Option<&std::sync::Mutex<sonde_gpu::Nvml>> {
        self.inner.resources.gpu()
    }
}
