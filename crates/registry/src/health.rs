//! Subsystem health: which parts of the agent are working, and why not.
//!
//! Every subsystem (discovery, cgroup readers, docker, node, cloud, ...) reports here. A change of
//! state is logged once (a warning with the reason and the fix when a subsystem goes down, an
//! info line when it comes back), never on every check, and `sonde_subsystem_up{subsystem}`
//! renders the current state.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Shared subsystem status board. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Health {
    inner: Arc<Mutex<BTreeMap<&'static str, Status>>>,
}

/// The last reported state of one subsystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub up: bool,
    /// Why it is down and how to fix it; empty when up.
    pub reason: String,
}

impl Health {
    pub fn new() -> Health {
        Health::default()
    }

    /// Marks a subsystem up. Logs when it was previously down.
    pub fn up(&self, subsystem: &'static str) {
        let mut map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let previous = map.insert(
            subsystem,
            Status {
                up: true,
                reason: String::new(),
            },
        );
        if let Some(prev) = previous
            && !prev.up
        {
            tracing::info!(subsystem, "Subsystem is working again");
        }
    }

    /// Marks a subsystem down with a reason that says what is off and how to turn it on. Logs a
    /// warning only when the state or the reason changed, so a persistent problem is said once.
    pub fn down(&self, subsystem: &'static str, reason: impl Into<String>) {
        let reason = reason.into();
        let mut map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let changed = map
            .get(subsystem)
            .is_none_or(|s| s.up || s.reason != reason);
        if changed {
            tracing::warn!(subsystem, reason = %reason, "Subsystem is down");
        }
        map.insert(subsystem, Status { up: false, reason });
    }

    /// A snapshot of every subsystem's state, sorted by name.
    pub fn snapshot(&self) -> Vec<(&'static str, Status)> {
        let map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        map.iter().map(|(k, v)| (*k, v.clone())).collect()
    }

    pub fn is_up(&self, subsystem: &str) -> Option<bool> {
        let map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(subsystem).map(|s| s.up)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_transitions() {
        let h = Health::new();
        assert_eq!(h.is_up("docker"), None);
        h.down("docker", "no socket");
        assert_eq!(h.is_up("docker"), Some(false));
        h.up("docker");
        assert_eq!(h.is_up("docker"), Some(true));
        let snap = h.snapshot();
        assert_eq!(snap.len(), 1);
        assert!(snap[0].1.reason.is_empty());
    }
}
