//! Everything a scrape shows: the metric catalogue (every name, type and help text), the
//! exposition model (`Family`, text encoding), the rendering of the registry's scrape into
//! `node_*`, `container_*` and `sonde_*` families, and the stateless reads made at that moment
//! (node files, cgroup files, a container's net/dev, NVML).
//!
//! It depends on the registry and never the reverse: the registry keeps state and names
//! containers; [`Exporter::gather`] asks it for one [`sonde_registry::Scrape`] and renders it.

pub mod catalogue;
pub mod exposition;
mod gpu;
pub mod interfaces;
pub mod node_activity;
pub mod render;
pub mod render_l7;
mod resources;
pub mod self_metrics;
mod subsystems;
mod tracer_metrics;

use std::sync::Arc;
use std::time::Duration;

use prometheus::proto::MetricFamily;
use sonde_registry::{NodeLabels, Registry};

pub use exposition::Family;
pub use self_metrics::ScrapeStats;

/// Failure to produce the /metrics text.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot encode metrics: {0}")]
    Encode(#[source] prometheus::Error),
}

/// Renders the registry's scrapes. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Exporter {
    registry: Registry,
    stats: Arc<ScrapeStats>,
}

impl Exporter {
    pub fn new(registry: Registry) -> Exporter {
        Exporter {
            registry,
            stats: Arc::default(),
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Renders the whole /metrics response. Reads files: call it from a blocking context.
    /// `extra` lets the binary add families of subsystems wired outside the registry.
    pub fn render(
        &self,
        extra: impl FnOnce(&NodeLabels, &mut Vec<MetricFamily>),
    ) -> Result<String, Error> {
        exposition::encode_text(self.gather(extra)).map_err(Error::Encode)
    }

    /// Records how long one whole /metrics response took (render, encoding, compression):
    /// the HTTP server measures it, since only it sees the response end to end.
    pub fn observe_scrape(&self, elapsed: Duration) {
        self.stats.observe(elapsed.as_secs_f64());
    }

    /// Every metric family of a scrape, unencoded (the text renderer and push delivery both
    /// start from it). Reads files: call it from a blocking context.
    pub fn gather(
        &self,
        extra: impl FnOnce(&NodeLabels, &mut Vec<MetricFamily>),
    ) -> Vec<MetricFamily> {
        let registry = &self.registry;
        let config = registry.config();
        let node = registry.node_labels();
        let stats = &*self.stats;
        let mut families = Vec::with_capacity(64);

        let snapshot = sonde_node::read_snapshot(&config.node_paths);
        if !snapshot.errors.is_empty() {
            stats.node_read_errors(snapshot.errors.len() as u64);
            for e in &snapshot.errors {
                tracing::debug!(error = %e, "Failed to read a node metric source");
            }
        }
        render::render_node(&snapshot, &config.version, node, &mut families);
        node_activity::render_node_activity(&snapshot, node, &mut families);

        let scrape = registry.scrape();
        let containers = &scrape.containers;
        if let Some(t) = &scrape.tracer {
            tracer_metrics::render_tracer(t, node, &mut families);
        }
        let zone = render::Zone::from_cloud(
            config
                .cloud
                .as_ref()
                .and_then(sonde_cloud::CloudHandle::current)
                .as_ref(),
        );
        render::render_containers(
            containers,
            &scrape.delays,
            registry.cgroupfs(),
            &zone,
            stats,
            node,
            &mut families,
        );
        interfaces::render_interfaces(
            containers,
            &config.node_paths.procfs,
            stats,
            node,
            &mut families,
        );
        resources::render_resources(
            containers,
            &scrape.resources,
            registry.cgroupfs(),
            stats,
            node,
            &mut families,
        );
        if let Some(latency) = &scrape.latency {
            resources::render_latency(containers, latency, node, &mut families);
        }
        if let Some(nvml) = registry.gpu() {
            gpu::render_gpu(nvml, containers, node, &mut families);
        }
        resources::render_resource_counts(&scrape.resource_stats, node, &mut families);
        render_l7::render_l7(containers, &scrape.ip_to_fqdn, node, &mut families);
        if let Some(logs) = registry.logs() {
            render::render_logs(containers, logs, node, &mut families);
        }
        if let Some(cloud) = &config.cloud {
            render::render_cloud(cloud, node, &mut families);
        }
        extra(node, &mut families);

        self_metrics::render_agent(&config.version, registry.health(), node, &mut families);
        self_metrics::render_registry(&scrape.registry, node, &mut families);
        self_metrics::render_metadata(&scrape.metadata, node, &mut families);
        self_metrics::render_delays(&scrape.delay_stats, node, &mut families);
        stats.render(node, &mut families);
        families
    }
}
