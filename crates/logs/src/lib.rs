//! sonde-logs: the log pattern miner (pure), log decoders (pure) and level detection.
//!
//! The parts know nothing of each other: [`miner`] turns a message into a stable pattern hash,
//! [`decode`] turns container runtime log lines into messages and joins multi-line ones,
//! [`level`] guesses a message's severity. [`PatternCounter`] is the bounded per-container table
//! the agent keeps, [`summarize`] the pure core of the `sonde patterns` command. [`source`]
//! reads logs (file tailing with rotation, Docker json-file, CRI, journald) and
//! [`LogManager`] runs the sources of every container and keeps their pattern counts.

mod counter;
pub mod decode;
pub mod learn;
pub mod level;
mod manager;
pub mod miner;
pub mod source;
mod summary;

pub use counter::{PatternCounter, truncate};
pub use learn::{ClusterId, MinerConfig, PatternMiner};
pub use level::{Level, detect_level};
pub use manager::{LogManager, LogManagerConfig, LogStats};
pub use miner::{hash_hex, hash_template, pattern_hash, template};
pub use source::{Error, LogSpec, open_log_files};
pub use summary::summarize;
