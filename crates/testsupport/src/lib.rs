//! Helpers for sonde's tests, used as a dev-dependency by the crates' own tests and by the
//! integration-test harness (`tests/`), so a policy lives in one place:
//!
//! - [`skip`]: the one skip policy. A test that cannot run here says why in one format
//!   (`SKIPPED <test>: <reason>`), appends that line to the file named by `SONDE_SKIP_LOG`
//!   (scripts/test.sh prints it at the end: cargo captures a passing test's stderr), and fails
//!   instead when `SONDE_REQUIRE_PRIVILEGED=1` / `SONDE_REQUIRE_DATA=1` forbid the skip.
//! - [`catalogue`]: reads the metric catalogue's source and checks that every entry is
//!   referenced by rendering code and present in a real scrape, except the entries whose
//!   comment says under which condition they appear.

pub mod catalogue;
pub mod skip;

pub use skip::{Needs, is_root, require_root, skip};
