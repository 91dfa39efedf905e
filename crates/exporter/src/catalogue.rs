//! The metric catalogue: every metric sonde exports, in one place (coroot-node-agent's
//! metrics.go), split by area: `node` (node_*), `container` (container resources, logs, volumes,
//! GPUs), `net` (container network), `l7` (application layer) and `agent` (the agent's own
//! `sonde_*`). Names, types and labels follow ../shared/METRICS.md exactly; docs/metrics.md
//! documents them.
//!
//! Every entry must be rendered: crates/exporter/tests/catalogue_rendered.rs fails on an entry
//! no code names, and tests/tests/agent_node.rs on a `sonde_*` entry missing from a real scrape,
//! unless a `// scrape-condition: <when>` comment right before its `metric!(` says when it
//! appears (then it must be missing from that test's plain agent), or a
//! `// scrape-optional: <when>` comment says it appears once something happened that a test
//! machine may or may not see (then the scrape check leaves it out).

/// Prometheus metric type of a catalogue entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Counter,
    /// Rendered with `Family::add_histogram` (buckets of `sonde_registry::l7::BUCKETS` for L7).
    Histogram,
}

/// One metric's name, help text and type.
#[derive(Debug)]
pub struct MetricDef {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
}

macro_rules! metric {
    ($id:ident, $name:literal, $kind:ident, $help:literal) => {
        pub static $id: MetricDef = MetricDef {
            name: $name,
            help: $help,
            kind: Kind::$kind,
        };
    };
}

/// The agent's own `sonde_*` metrics.
pub mod agent;
/// Container resources, logs, volumes and GPUs.
pub mod container;
/// The application-layer families.
pub mod l7;
/// Container network: TCP, upstream latency, interfaces.
pub mod net;
/// The node's metrics.
pub mod node;
/// Trace export's `sonde_traces_*` (crates/traces).
pub mod traces;

// One namespace for the areas but l7 (whose names are used as `catalogue::l7::...`).
pub use agent::*;
pub use container::*;
pub use net::*;
pub use node::*;
pub use traces::*;
