//! Where a TCP connection really went: the host's conntrack table through ctnetlink.
//!
//! A connection to a Kubernetes Service IP, a Docker published port or any DNAT rule reaches
//! another address than the one its socket dialled. The kernel's connection tracker knows
//! both: an entry's original tuple is what the socket sent (`src -> dst`), its reply tuple's
//! source is the real upstream. [`Nat`] keeps the translated entries of the host network
//! namespace in a bounded [`NatTable`]: a dump at start, then the NEW and DESTROY event groups;
//! lost events (ENOBUFS) are counted and a new dump fills the gaps.
//!
//! - [`decode`]: ctnetlink messages (pure; unit-tested on captured kernel bytes).
//! - [`filter`]: the socket filter that keeps untranslated connections' events in the kernel.
//! - [`table`]: the bounded table (pure).
//! - [`client`]: the sockets.
//!
//! A leaf crate: it knows nothing of containers or of the tracer. See docs/nat.md.

pub mod client;
pub mod decode;
pub mod filter;
pub mod table;
#[cfg(test)]
mod test_fixtures;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

pub use table::{NatTable, TableStats};

use client::EventSocket;
use decode::Message;

/// Errors of the conntrack client.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot {step} a NETLINK_NETFILTER socket: {source}")]
    Socket {
        step: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("reading conntrack messages failed: {source}")]
    Recv {
        #[source]
        source: io::Error,
    },
    #[error("the kernel refused the conntrack dump: {source}")]
    Refused {
        #[source]
        source: io::Error,
    },
    #[error("no answer to the conntrack dump within {0:?}")]
    DumpTimeout(Duration),
    #[error("a conntrack dump datagram of {len} bytes did not fit the buffer")]
    Truncated { len: usize },
    #[error("cannot start the conntrack reader thread: {source}")]
    Thread {
        #[source]
        source: io::Error,
    },
}

impl From<sonde_netlink::Error> for Error {
    fn from(e: sonde_netlink::Error) -> Error {
        Error::Socket {
            step: e.step,
            source: e.source,
        }
    }
}

impl Error {
    /// What is off and how to fix it, for the one warning of a degraded agent.
    pub fn reason(&self) -> String {
        let errno = match self {
            Error::Socket { source, .. } | Error::Recv { source } | Error::Refused { source } => {
                source.raw_os_error()
            }
            _ => None,
        };
        let fix = match errno {
            Some(libc::EPERM | libc::EACCES) => {
                " (needs CAP_NET_ADMIN in the host network namespace: run privileged with hostNetwork)"
            }
            Some(libc::EPROTONOSUPPORT | libc::EOPNOTSUPP | libc::ENOENT | libc::EAFNOSUPPORT) => {
                " (the kernel lacks nf_conntrack / nf_conntrack_netlink: `modprobe nf_conntrack_netlink`, or build with CONFIG_NF_CT_NETLINK)"
            }
            _ => "",
        };
        format!("{self}{fix}")
    }
}

/// Settings of the NAT resolver.
#[derive(Debug, Clone)]
pub struct NatConfig {
    /// Most translated connections kept (`--conntrack-table-size`).
    pub table_size: usize,
    /// How long an entry conntrack destroyed still answers.
    pub grace: Duration,
    /// Receive buffer asked for the event socket.
    pub rcvbuf: usize,
    /// Bound of one read of a dump.
    pub dump_timeout: Duration,
    /// Attach [`filter::dst_nat_only`] to the event socket (off: every event reaches the
    /// agent, as for benchmarks that compare).
    pub kernel_filter: bool,
}

impl Default for NatConfig {
    fn default() -> Self {
        NatConfig {
            table_size: 65_536,
            grace: Duration::from_secs(30),
            rcvbuf: 8 << 20,
            dump_timeout: Duration::from_secs(5),
            kernel_filter: true,
        }
    }
}

/// Counters of the resolver, for self-metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NatStats {
    pub table: TableStats,
    /// Conntrack event messages read (TCP or not).
    pub events: u64,
    /// Times the kernel dropped events because the socket buffer was full (ENOBUFS); each
    /// is one or more events, and is followed by a resync dump.
    pub events_lost: u64,
    /// Messages that could not be decoded.
    pub decode_errors: u64,
    /// Dumps made after lost events.
    pub resyncs: u64,
    /// Dumps that failed.
    pub dump_errors: u64,
}

struct State {
    table: NatTable,
    events: EventSocket,
}

struct Shared {
    state: Mutex<State>,
    config: NatConfig,
    stop: AtomicBool,
    resync: AtomicBool,
    events: AtomicU64,
    events_lost: AtomicU64,
    decode_errors: AtomicU64,
    resyncs: AtomicU64,
    dump_errors: AtomicU64,
}

/// The running resolver: a reader thread keeps the table current; lookups come from any
/// thread. Dropping it stops the thread (within its poll period).
pub struct Nat {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Nat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nat").field("stats", &self.stats()).finish()
    }
}

/// How often the reader thread wakes without events (expiry, resync, stop).
const POLL_PERIOD: Duration = Duration::from_millis(500);
/// Datagrams the reader thread reads per hold of the lock, so lookups interleave with a flood.
const THREAD_DRAIN: usize = 1024;
/// How long the reader thread lets events gather after the socket became readable. Lookups do
/// not depend on it (callers sync first); it only keeps the buffer from overflowing, and makes
/// one wakeup per batch: a wakeup per event was most of the thread's cost (5.8 us per
/// translated connection, measured with examples/nat_cost.rs).
const GATHER: Duration = Duration::from_millis(20);
/// Datagrams a sync reads at most: everything queued (an 8 MiB buffer holds ~10,000 events),
/// bounded so that a flood arriving faster than it is read cannot hold the caller forever.
const SYNC_DRAIN: usize = 65_536;

impl Nat {
    /// Subscribes to events, then dumps the table (in that order, so nothing falls between),
    /// and starts the reader thread. Fails where conntrack is absent or not permitted.
    pub fn start(config: NatConfig) -> Result<Nat, Error> {
        let events = EventSocket::open(config.rcvbuf, config.kernel_filter)?;
        let mut table = NatTable::new(config.table_size, config.grace);
        let dumped = client::dump(config.dump_timeout, |e| table.apply(e, Instant::now()))?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State { table, events }),
            config,
            stop: AtomicBool::new(false),
            resync: AtomicBool::new(false),
            events: AtomicU64::new(0),
            events_lost: AtomicU64::new(0),
            decode_errors: AtomicU64::new(dumped.decode_errors),
            resyncs: AtomicU64::new(0),
            dump_errors: AtomicU64::new(0),
        });
        let worker = shared.clone();
        std::thread::Builder::new()
            .name("sonde-conntrack".into())
            .spawn(move || worker.run())
            .map_err(|source| Error::Thread { source })?;
        Ok(Nat { shared })
    }

    /// The address the connection `src -> dst` (as its socket sees it) really reached, when
    /// conntrack translated it; None when it was not translated (or is unknown).
    ///
    /// Events queued before the call are applied first, so a connection whose connect the
    /// caller has seen is always known: its conntrack entry was created at its first packet.
    pub fn actual_destination(&self, src: SocketAddr, dst: SocketAddr) -> Option<SocketAddr> {
        let mut state = self.shared.lock();
        if state.table.peek(src, dst).is_none() {
            self.shared.drain(&mut state, SYNC_DRAIN);
        }
        state.table.lookup(src, dst)
    }

    /// Applies the events queued now. A caller that handles connections in batches calls it
    /// once per batch (after reading the batch), then [`Nat::lookup`] per connection: one
    /// syscall per batch instead of one per untranslated connection.
    pub fn sync(&self) {
        let mut state = self.shared.lock();
        self.shared.drain(&mut state, SYNC_DRAIN);
    }

    /// As [`Nat::actual_destination`] without applying queued events first: exact for every
    /// connection whose first packet went out before the last [`Nat::sync`].
    pub fn lookup(&self, src: SocketAddr, dst: SocketAddr) -> Option<SocketAddr> {
        self.shared.lock().table.lookup(src, dst)
    }

    pub fn stats(&self) -> NatStats {
        let s = &self.shared;
        NatStats {
            table: s.lock().table.stats(),
            events: s.events.load(Relaxed),
            events_lost: s.events_lost.load(Relaxed),
            decode_errors: s.decode_errors.load(Relaxed),
            resyncs: s.resyncs.load(Relaxed),
            dump_errors: s.dump_errors.load(Relaxed),
        }
    }
}

impl Drop for Nat {
    fn drop(&mut self) {
        self.shared.stop.store(true, Relaxed);
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads and applies what the event socket holds. Called with the lock held, so every
    /// message is applied in the order the kernel queued it.
    fn drain(&self, state: &mut State, max_datagrams: usize) {
        let now = Instant::now();
        let State { table, events } = state;
        let (mut n, mut errors) = (0u64, 0u64);
        let result = events.drain(max_datagrams, |msg| match msg {
            Ok(Message::Entry(e)) => {
                n += 1;
                table.apply(&e, now);
            }
            Ok(Message::OtherProtocol) => n += 1,
            Ok(_) => {}
            Err(_) => errors += 1,
        });
        table.expire(now);
        self.events.fetch_add(n, Relaxed);
        self.decode_errors.fetch_add(errors, Relaxed);
        match result {
            Ok(d) if d.overflowed => {
                self.events_lost.fetch_add(1, Relaxed);
                self.resync.store(true, Relaxed);
            }
            Ok(_) => {}
            Err(e) => {
                // Not expected after a successful start; the next drain tries again.
                tracing::debug!(error = %e, "Reading conntrack events failed");
            }
        }
    }

    fn run(self: Arc<Self>) {
        let fd_wait = {
            // The fd is stable for the socket's life; poll without holding the lock.
            let state = self.lock();
            state.events.fd()
        };
        while !self.stop.load(Relaxed) {
            if poll_readable(fd_wait, POLL_PERIOD) {
                std::thread::sleep(GATHER);
                let mut state = self.lock();
                self.drain(&mut state, THREAD_DRAIN);
            } else {
                self.lock().table.expire(Instant::now());
            }
            if self.resync.swap(false, Relaxed) {
                self.resync_dump();
            }
        }
    }

    /// A dump made without the lock (it may take long on a big table), merged after: only
    /// translated entries are collected, so the buffer is the size of the NAT'd part.
    fn resync_dump(&self) {
        let mut found = Vec::new();
        match client::dump(self.config.dump_timeout, |e| {
            if found.len() < self.config.table_size && e.translated_destination().is_some() {
                found.push(*e);
            }
        }) {
            Ok(stats) => {
                self.decode_errors.fetch_add(stats.decode_errors, Relaxed);
                self.resyncs.fetch_add(1, Relaxed);
                let mut state = self.lock();
                // Events queued during the dump are older than what follows them: apply them
                // first, then fill only the gaps.
                self.drain(&mut state, SYNC_DRAIN);
                for e in &found {
                    state.table.merge_dumped(e);
                }
            }
            Err(e) => {
                self.dump_errors.fetch_add(1, Relaxed);
                tracing::warn!(error = %e, "Conntrack resync dump failed; retrying at the next lost event");
            }
        }
    }
}

fn poll_readable(fd: i32, timeout: Duration) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: one valid pollfd, count 1.
    let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
    rc > 0 && pfd.revents & (libc::POLLIN | libc::POLLERR) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_name_the_fix() {
        let eperm = Error::Socket {
            step: "subscribe to conntrack events of",
            source: io::Error::from_raw_os_error(libc::EPERM),
        };
        assert!(
            eperm.reason().contains("CAP_NET_ADMIN"),
            "{}",
            eperm.reason()
        );
        let absent = Error::Refused {
            source: io::Error::from_raw_os_error(libc::EOPNOTSUPP),
        };
        assert!(
            absent.reason().contains("nf_conntrack_netlink"),
            "{}",
            absent.reason()
        );
        let other = Error::DumpTimeout(Duration::from_secs(5));
        assert_eq!(other.reason(), other.to_string());
    }
}
