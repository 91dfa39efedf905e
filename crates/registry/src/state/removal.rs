//! Removal checks: a container its runtime no longer has is dropped at once.
//!
//! A container whose processes are all gone is normally kept for `--container-gc-grace`, so a
//! restart is seen as one container. But one the user removed (`docker rm`, a pod deleted)
//! will never run again, and its series should go within a scrape interval, not linger for the
//! grace period. So once a named container is empty, the runtime that named it is asked
//! whether it still has it, every [`RECHECK`] while it stays empty: "not found" drops it at the
//! next housekeeping (its restarts and OOM kills stay with its name, as for any collected
//! container); "still there" (stopped, restarting, waiting for the kubelet) keeps it.

use std::time::{Duration, Instant};

use sonde_cgroup::ContainerKind;

use super::{LookupRequest, MetadataSource, State};
use crate::container::{Container, Naming};

/// How often an empty container is asked about while it stays empty.
pub(super) const RECHECK: Duration = Duration::from_secs(2);

/// The container just emptied: ask its runtime now, if it has one.
pub(super) fn schedule(c: &mut Container, now: Instant) {
    if c.runtime_id.is_some()
        && c.lookup_source.is_some()
        && matches!(c.naming, Naming::Named { .. })
    {
        c.removal_check = Some((now, false));
    }
}

/// The removal check of `c` to start now, if one is due; marks it in flight.
pub(super) fn due(
    c: &mut Container,
    now: Instant,
    available: &impl Fn(MetadataSource) -> bool,
) -> Option<LookupRequest> {
    let (next, in_flight) = c.removal_check.as_mut()?;
    let source = c.lookup_source?;
    if c.empty_since.is_none() || c.removed {
        c.removal_check = None; // Running again, or already going.
        return None;
    }
    if *in_flight || *next > now || !available(source) {
        return None;
    }
    *in_flight = true;
    Some(LookupRequest {
        cgroup_id: c.cgroup_id.clone(),
        source,
        runtime_id: c.runtime_id.clone()?,
        namespace: match &c.kind {
            ContainerKind::ContainerdNamespace { namespace, .. } => Some(namespace.clone()),
            _ => None,
        },
        removal_check: true,
    })
}

impl State {
    /// The runtime's answer to a removal check.
    pub(super) fn removal_checked(&mut self, cgroup_id: &str, exists: Option<bool>, now: Instant) {
        let Some(c) = self.containers.get_mut(cgroup_id) else {
            return;
        };
        if c.empty_since.is_none() {
            c.removal_check = None; // A process came back meanwhile.
            return;
        }
        match exists {
            Some(false) => {
                c.removed = true;
                c.removal_check = None;
            }
            // Still there (stopped, restarting), or not answered: ask again later.
            _ => c.removal_check = Some((now + RECHECK, false)),
        }
    }
}
