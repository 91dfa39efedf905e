//! Readiness at start: `/healthz` answers "not ready" until the containers the start scan
//! found have had their runtime's first answer, so the first scrape after a ready answer has
//! every one of them under its real name (bounded by [`READY_TIMEOUT`]).

use std::time::Duration;

use crate::Registry;

/// Longest the agent reports "not ready" at start while containers of the start scan wait for
/// their runtime's first answer (a runtime that never answers must not hold it forever).
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);

impl Registry {
    /// Whether the first scrapes are whole: Ok once every container found at start has had
    /// its runtime's first answer (named, skipped, or a failed lookup counted), or
    /// [`READY_TIMEOUT`] after start; Err says what it waits for. Latches: containers that
    /// appear later never make a running agent "not ready" again.
    pub fn readiness(&self) -> Result<(), String> {
        use std::sync::atomic::Ordering::Relaxed;
        let inner = &*self.inner;
        if inner.ready.load(Relaxed) {
            return Ok(());
        }
        let timed_out = inner.started.elapsed() >= READY_TIMEOUT;
        if !inner.availability.probed() && !timed_out {
            return Err("starting: the container runtimes are being probed".into());
        }
        // Containers no runtime can name (theirs does not answer) are not waited for.
        let waiting = {
            let state = inner
                .state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            state
                .containers()
                .filter(|c| match c.naming {
                    crate::container::Naming::Pending {
                        attempts: 0,
                        source,
                        ..
                    } => inner.availability.is_available(source),
                    _ => false,
                })
                .count()
        };
        if waiting == 0 || timed_out {
            inner.ready.store(true, Relaxed);
            return Ok(());
        }
        Err(format!(
            "starting: {waiting} containers wait for their runtime's first answer"
        ))
    }
}
