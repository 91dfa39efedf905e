//! The registry's side of NAT resolution (crate `sonde-nat`): starting it as the `conntrack`
//! subsystem, resolving a connection's actual destination, and its self-metrics.
//!
//! Kept apart from the tracer bridge so that the bridge only holds a field and calls
//! [`actual_destination`].

use std::net::SocketAddr;

use sonde_nat::{Nat, NatConfig};

use crate::health::Health;

/// Starts the resolver (None: disabled, or conntrack unusable here, which the `conntrack`
/// subsystem's health says with the fix; `actual_destination` is then `destination`).
pub fn start(config: Option<&NatConfig>, health: &Health) -> Option<Nat> {
    let Some(config) = config else {
        health.down(
            "conntrack",
            "disabled by --disable-conntrack: actual_destination is the dialled destination (NAT not resolved)",
        );
        return None;
    };
    match Nat::start(config.clone()) {
        Ok(nat) => {
            health.up("conntrack");
            Some(nat)
        }
        Err(e) => {
            health.down(
                "conntrack",
                format!(
                    "conntrack unavailable: {}; actual_destination is the dialled destination (NAT not resolved)",
                    e.reason()
                ),
            );
            None
        }
    }
}

/// Where `src -> dst` really went: its conntrack upstream when translated, else `dst`. The
/// caller has called [`sync`] since it learned of the connection (its conntrack entry was
/// created at its first packet, so the event is queued by then).
pub fn actual_destination(nat: Option<&Nat>, src: SocketAddr, dst: SocketAddr) -> SocketAddr {
    nat.and_then(|n| n.lookup(src, dst)).unwrap_or(dst)
}

/// Applies the conntrack events queued now: by the tracer bridge, once per batch of kernel
/// events and once per connection dump.
pub fn sync(nat: Option<&Nat>) {
    if let Some(n) = nat {
        n.sync();
    }
}
