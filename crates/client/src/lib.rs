//! Clients of a running sonde agent, reading nothing but its `/metrics` endpoint (so they cost
//! the node nothing the agent does not already do for its scraper):
//! - [`exposition`]: the Prometheus text format parser;
//! - [`fetch`]: a small bounded HTTP GET;
//! - [`model`]: node, container and upstream figures out of one scrape, and rates between two;
//! - [`top`]: `sonde top`, a terminal view refreshed every second;
//! - [`record`]: `sonde record`, node, container and per-process samples appended to a CSV file.

mod error;
pub mod exposition;
pub mod fetch;
pub mod model;
pub mod procs;
pub mod record;
pub mod top;

pub use error::Error;
pub use fetch::AgentUrl;
