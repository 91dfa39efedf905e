//! sonde-pinger: the round-trip time to a set of IPv4 addresses, measured with ICMP echo from
//! inside a given network namespace (a container's), as `container_net_latency_seconds` needs.
//!
//! How: a short-lived thread enters the namespace (`setns(CLONE_NEWNET)` affects only the
//! calling thread, so the agent's other threads stay where they are), opens a raw ICMP socket
//! there (a socket keeps the namespace it was created in), sends one echo request per target
//! and collects the replies until all came or the timeout passed. The receive time is the
//! kernel's (`SO_TIMESTAMPNS`), so the agent's own scheduling delay after the reply arrived is
//! not counted; the send time is taken just before `sendto`.
//!
//! Needs CAP_NET_RAW and CAP_SYS_ADMIN (setns), which the privileged agent has.

mod icmp;

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Duration;

pub use icmp::{checksum, echo_packet, parse_reply};

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The namespace file could not be opened (the process exited).
    #[error("cannot open {path}")]
    Namespace {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A system call failed (setns, socket, sendto, ...).
    #[error("{call} failed")]
    Sys {
        call: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The pinging thread could not be started or panicked.
    #[error("the pinging thread failed")]
    Thread,
}

impl Error {
    /// True when the namespace is gone (its process exited): normal churn.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Namespace { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

fn sys(call: &'static str) -> Error {
    Error::Sys {
        call,
        source: std::io::Error::last_os_error(),
    }
}

/// Pings every target once from the network namespace `netns` (e.g. `/proc/<pid>/ns/net`),
/// waiting up to `timeout` for the replies. Returns the RTT of each target that answered, in
/// the order of `targets`; `ident` tells this round's replies from others' (use a different
/// one per concurrent round).
pub fn ping(
    netns: &Path,
    targets: &[Ipv4Addr],
    timeout: Duration,
    ident: u16,
) -> Result<Vec<(Ipv4Addr, Duration)>, Error> {
    if targets.is_empty() {
        return Ok(Vec::new());
    }
    let ns = File::open(netns).map_err(|source| Error::Namespace {
        path: netns.to_owned(),
        source,
    })?;
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: a valid namespace fd; only this thread moves.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(sys("setns"));
            }
            let sock = icmp::RawSocket::open()?;
            icmp::round(&sock, targets, timeout, ident)
        })
        .join()
        .map_err(|_| Error::Thread)?
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Real ICMP on loopback from this process's own namespace (root only: raw sockets).
    #[test]
    fn pings_loopback_in_own_namespace() {
        if !sonde_testsupport::require_root("pings_loopback_in_own_namespace", "raw sockets") {
            return;
        }
        let lo = Ipv4Addr::LOCALHOST;
        let r = ping(
            Path::new("/proc/self/ns/net"),
            &[lo],
            Duration::from_millis(300),
            0x5eed,
        )
        .unwrap();
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(r[0].0, lo);
        assert!(r[0].1 > Duration::ZERO);
        let gone = ping(
            Path::new("/proc/0/ns/net"),
            &[lo],
            Duration::from_millis(10),
            1,
        );
        assert!(gone.unwrap_err().is_not_found());
    }
}
