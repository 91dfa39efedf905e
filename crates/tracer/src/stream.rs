//! Batched, async reading of the ring buffer.
//!
//! The programs submit with BPF_RB_NO_WAKEUP unless the ring is more than
//! `wakeup_fraction` full, so the common case costs no wakeup at all: the reader
//! drains on a short timer (`poll_interval`), and an epoll wakeup (tokio
//! `AsyncFd`) only arrives under bursts, before the ring can overflow.

use std::io;
use std::time::Duration;

use aya::maps::{MapData, RingBuf};
use tokio::io::unix::AsyncFd;

use crate::decode::{self, Event};
use crate::l7::{EVENT_L7_CLOSE, EVENT_L7_DATA, L7Engine, L7Stats, MAX_SESSIONS};
use crate::{Error, TracerConfig};

/// Async stream of decoded events. Independent of [`crate::Tracer`]: after the
/// tracer is dropped it simply yields nothing more.
pub struct EventStream {
    ring: AsyncFd<RingBuf<MapData>>,
    poll_interval: Duration,
    max_batch: usize,
    decode_errors: u64,
    events: u64,
    /// Per-connection parsers of the L7 records.
    l7: L7Engine,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream")
            .field("decode_errors", &self.decode_errors)
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

impl EventStream {
    /// Must be called inside a tokio runtime (AsyncFd registers with its reactor).
    pub(crate) fn new(ring: RingBuf<MapData>, config: &TracerConfig) -> io::Result<Self> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(io::Error::other(
                "Tracer::start must run inside a tokio runtime",
            ));
        }
        // SAFETY: the RingBuf owns its map fd, never replaces it, and closes it
        // only when dropped, which happens when the AsyncFd is dropped.
        let ring = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
            .map_err(io::Error::from)?;
        Ok(EventStream {
            ring,
            poll_interval: config.poll_interval,
            max_batch: config.max_batch.max(1),
            decode_errors: 0,
            events: 0,
            l7: L7Engine::new(config.l7_parsing.clone(), MAX_SESSIONS),
        })
    }

    fn drain(&mut self, out: &mut Vec<Event>) -> usize {
        let mut n = 0;
        let ring = self.ring.get_mut();
        while n < self.max_batch {
            let Some(item) = ring.next() else { break };
            n += 1;
            let kind = item
                .get(..4)
                .map(|k| u32::from_ne_bytes([k[0], k[1], k[2], k[3]]));
            if matches!(kind, Some(EVENT_L7_DATA | EVENT_L7_CLOSE)) {
                self.l7.handle(&item, out);
                continue;
            }
            match decode::decode(&item) {
                Ok(e) => {
                    if let Event::ProcessExit { pid, .. } = e {
                        self.l7.process_exited(pid);
                    }
                    out.push(e);
                }
                Err(_) => self.decode_errors += 1,
            }
        }
        self.events += n as u64;
        n
    }

    /// Waits until events are available and appends up to `max_batch` of them
    /// to `out` (which is not cleared). Returns after at least one record was
    /// consumed (a record that fails to decode is counted in
    /// [`EventStream::decode_errors`], not returned).
    pub async fn next_batch(&mut self, out: &mut Vec<Event>) -> Result<(), Error> {
        loop {
            if self.drain(out) > 0 {
                return Ok(());
            }
            tokio::select! {
                guard = self.ring.readable_mut() => {
                    let mut guard = guard.map_err(|source| Error::Poll { source })?;
                    // Edge-triggered: clear, then drain on the next loop turn;
                    // data arriving after this is caught by the timer or the next edge.
                    guard.clear_ready();
                }
                () = tokio::time::sleep(self.poll_interval) => {}
            }
        }
    }

    /// Records that could not be decoded (truncated or unknown type).
    pub fn decode_errors(&self) -> u64 {
        self.decode_errors
    }

    /// The L7 engine's counters (records, requests, sessions, parse errors).
    pub fn l7_stats(&self) -> L7Stats {
        self.l7.stats()
    }

    /// Connections of process `pid` with L7 parser state now: what its closes and exit have
    /// not ended yet (for tests and diagnostics).
    pub fn l7_sessions_of(&self, pid: u32) -> usize {
        self.l7.sessions_of(pid)
    }

    /// Records consumed so far (decoded or not).
    pub fn records(&self) -> u64 {
        self.events
    }
}
