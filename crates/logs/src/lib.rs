//! sonde-logs: the log pattern miner (pure), log decoders (pure) and level detection.
//!
//! The parts know nothing of each other: [`miner`] turns a message into a stable pattern hash,
//! [`decode`] turns container runtime log lines into messages and joins multi-line ones,
//! [`level`] guesses a message's severity. [`PatternCounter`] is the bounded per-container table
//! the agent keeps, [`summarize`] the pure core of the `sonde patterns` command. Sources (file
//! tailing, journald) live elsewhere and feed these.

mod counter;
pub mod decode;
pub mod level;
pub mod miner;
mod summary;

pub use counter::{PatternCounter, truncate};
pub use level::{Level, detect_level};
pub use miner::{hash_hex, hash_template, pattern_hash, template};
pub use summary::summarize;
