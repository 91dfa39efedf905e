//! The registry's one event queue: every change to the state arrives here, in batches, and
//! the registry task applies them in order.
//!
//! Bounded in events, not in items: a batch takes one permit of a semaphore per event, held
//! until the registry task has applied it, so at most `--event-queue-size` events wait at any
//! time, however they are batched. A batch is one queue item so that a source with many
//! events at once (the tracer bridge, one batch per read of the kernel's ring) pays the
//! queue's synchronisation once per batch, not per event (per event, it was most of the
//! bridge's cost).
//!
//! Sources that must never block (the tracer bridge) use [`EventSender::send`] and
//! [`EventSender::send_batch`]: a batch that does not fit is dropped whole and each of its
//! events counted in `sonde_events_dropped_total{queue="events"}`. The /proc scan, the
//! metadata resolver and the tracer bridge's connection dumps (which a scrape waits for, as
//! it used to wait for the dump it made itself) wait for room instead
//! ([`EventSender::send_waiting`]).

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::RegistryStats;
use crate::state::Event;

/// One item of the queue: events applied in this order.
#[derive(Debug)]
pub struct Batch {
    pub(crate) events: Vec<Event>,
    /// The batch's room in the queue, given back when the batch is dropped (applied).
    _room: OwnedSemaphorePermit,
    /// Told once the batch is applied (a scrape waiting for its connection dump,
    /// crate::tracer_bridge). Dropped unsent if the batch never is.
    pub(crate) applied: Vec<std::sync::mpsc::SyncSender<()>>,
}

impl Batch {
    /// Tells whoever waits for this batch that it has been applied.
    pub(crate) fn acknowledge(&mut self) {
        for ack in self.applied.drain(..) {
            // The waiter may have given up (its wait is bounded): nothing to tell then.
            let _ = ack.try_send(());
        }
    }
}

/// Sends events to the registry. Cheap to clone.
#[derive(Clone, Debug)]
pub struct EventSender {
    tx: mpsc::Sender<Batch>,
    room: Arc<Semaphore>,
    /// The queue's size in events (the semaphore's permits when empty).
    limit: usize,
    stats: Arc<RegistryStats>,
}

/// The queue: its sender, and the receiver the registry task reads. `limit` is
/// `--event-queue-size` (at least 1).
pub fn channel(limit: usize, stats: Arc<RegistryStats>) -> (EventSender, mpsc::Receiver<Batch>) {
    let limit = limit.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
    // Every batch holds at least one permit, so the channel's own bound is never the one
    // reached first; it is there so that nothing is unbounded.
    let (tx, rx) = mpsc::channel(limit);
    let sender = EventSender {
        tx,
        room: Arc::new(Semaphore::new(limit)),
        limit,
        stats,
    };
    (sender, rx)
}

/// The registry task is gone (the agent is stopping).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

impl EventSender {
    /// Queues one event without blocking; dropped and counted when the queue is full.
    pub fn send(&self, event: Event) {
        self.send_batch(vec![event]);
    }

    /// Queues `events` as one item, applied in order, without blocking. All or none: a batch
    /// that does not fit is dropped and each of its events counted.
    pub fn send_batch(&self, events: Vec<Event>) {
        let n = events.len();
        if n == 0 {
            return;
        }
        let Some(room) = u32::try_from(n)
            .ok()
            .and_then(|n| self.room.clone().try_acquire_many_owned(n).ok())
        else {
            return self.dropped(n);
        };
        let batch = Batch {
            events,
            _room: room,
            applied: Vec::new(),
        };
        if self.tx.try_send(batch).is_err() {
            self.dropped(n);
        }
    }

    /// Queues `events` in order, waiting for room (in batches no larger than the queue).
    pub async fn send_waiting(&self, events: Vec<Event>) -> Result<(), Closed> {
        self.send_waiting_acknowledged(events, Vec::new()).await
    }

    /// As [`EventSender::send_waiting`], and `applied` are told once the registry task has
    /// applied the last of the batches (an empty `events` is queued for them alone).
    pub(crate) async fn send_waiting_acknowledged(
        &self,
        mut events: Vec<Event>,
        mut applied: Vec<std::sync::mpsc::SyncSender<()>>,
    ) -> Result<(), Closed> {
        loop {
            let rest = events.split_off(events.len().min(self.limit));
            let n = u32::try_from(events.len()).map_err(|_| Closed)?;
            let room = self
                .room
                .clone()
                .acquire_many_owned(n)
                .await
                .map_err(|_| Closed)?;
            let batch = Batch {
                events,
                _room: room,
                applied: if rest.is_empty() {
                    std::mem::take(&mut applied)
                } else {
                    Vec::new()
                },
            };
            self.tx.send(batch).await.map_err(|_| Closed)?;
            if rest.is_empty() {
                return Ok(());
            }
            events = rest;
        }
    }

    fn dropped(&self, n: usize) {
        self.stats
            .events_dropped
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn gone(pid: u32) -> Event {
        Event::ProcessGone { pid }
    }

    fn pids(batch: &Batch) -> Vec<u32> {
        batch
            .events
            .iter()
            .map(|e| match e {
                Event::ProcessGone { pid } => *pid,
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    fn dropped(stats: &RegistryStats) -> u64 {
        stats.counts().events_dropped
    }

    #[test]
    fn the_queue_is_bounded_in_events_and_a_batch_that_does_not_fit_is_dropped_whole() {
        let metrics = Arc::new(RegistryStats::default());
        let (sender, mut rx) = channel(3, metrics.clone());
        sender.send_batch(vec![gone(1), gone(2)]);
        // 2 + 2 events would exceed the bound of 3: dropped whole, each counted.
        sender.send_batch(vec![gone(3), gone(4)]);
        // One more fits.
        sender.send(gone(5));
        // Full now.
        sender.send(gone(6));
        sender.send_batch(Vec::new());
        assert_eq!(dropped(&metrics), 3);

        let first = rx.try_recv().unwrap();
        assert_eq!(pids(&first), [1, 2]);
        // Applied (dropped): its room is given back.
        drop(first);
        sender.send_batch(vec![gone(7), gone(8)]);
        assert_eq!(pids(&rx.try_recv().unwrap()), [5]);
        assert_eq!(pids(&rx.try_recv().unwrap()), [7, 8]);
        assert!(rx.try_recv().is_err(), "nothing else was queued");
        assert_eq!(dropped(&metrics), 3);
    }

    #[test]
    fn a_batch_larger_than_the_queue_is_dropped_and_counted() {
        let metrics = Arc::new(RegistryStats::default());
        let (sender, mut rx) = channel(2, metrics.clone());
        sender.send_batch(vec![gone(1), gone(2), gone(3)]);
        assert_eq!(dropped(&metrics), 3);
        assert!(rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn an_acknowledged_send_tells_its_waiter_once_its_last_batch_is_applied() {
        let metrics = Arc::new(RegistryStats::default());
        let (sender, mut rx) = channel(2, metrics.clone());
        let (ack, applied) = std::sync::mpsc::sync_channel(1);
        let task = tokio::spawn(async move {
            sender
                .send_waiting_acknowledged((1..=3).map(gone).collect(), vec![ack])
                .await
        });
        let mut first = rx.recv().await.unwrap();
        assert_eq!(pids(&first), [1, 2]);
        first.acknowledge();
        assert!(applied.try_recv().is_err(), "only the last batch tells");
        drop(first);
        let mut last = rx.recv().await.unwrap();
        assert_eq!(pids(&last), [3]);
        assert!(applied.try_recv().is_err(), "not applied yet");
        last.acknowledge();
        assert_eq!(applied.try_recv(), Ok(()));
        assert_eq!(task.await.unwrap(), Ok(()));

        // Nothing to apply: queued for the acknowledgement alone.
        let (sender, mut rx) = channel(2, metrics.clone());
        let (ack, applied) = std::sync::mpsc::sync_channel(1);
        sender
            .send_waiting_acknowledged(Vec::new(), vec![ack])
            .await
            .unwrap();
        let mut empty = rx.recv().await.unwrap();
        assert!(empty.events.is_empty());
        empty.acknowledge();
        assert_eq!(applied.try_recv(), Ok(()));

        // A batch never applied (the registry task gone): its waiter learns at once.
        let (sender, rx) = channel(2, metrics.clone());
        drop(rx);
        let (ack, applied) = std::sync::mpsc::sync_channel(1);
        assert_eq!(
            sender
                .send_waiting_acknowledged(vec![gone(1)], vec![ack])
                .await,
            Err(Closed)
        );
        assert_eq!(
            applied.try_recv(),
            Err(std::sync::mpsc::TryRecvError::Disconnected)
        );
        assert_eq!(dropped(&metrics), 0);
    }

    #[tokio::test]
    async fn waiting_senders_queue_everything_in_order_in_batches_no_larger_than_the_queue() {
        let metrics = Arc::new(RegistryStats::default());
        let (sender, mut rx) = channel(2, metrics.clone());
        let task = tokio::spawn(async move {
            sender
                .send_waiting((1..=5).map(gone).collect())
                .await
                .unwrap();
        });
        let mut seen = Vec::new();
        while seen.len() < 5 {
            let batch = rx.recv().await.unwrap();
            assert!(batch.events.len() <= 2);
            seen.extend(pids(&batch));
        }
        task.await.unwrap();
        assert_eq!(seen, [1, 2, 3, 4, 5]);
        assert_eq!(dropped(&metrics), 0);
    }
}
