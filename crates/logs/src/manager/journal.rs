//! The journald reader thread: follows the journal, routes entries, joins, counts.

use super::files::deliver_leveled;
use super::{Shared, add};
use crate::level::Level;
use crate::source::SOURCE_JOURNALD;
use crate::source::journald::{JournalFollower, JournalJoiner};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

/// Wait between attempts to open a journal that is not there (or failed).
const RETRY: Duration = Duration::from_secs(5);

pub(super) fn run(shared: Arc<Shared>) {
    let cfg = &shared.cfg;
    let s = &shared.stats;
    let mut follower = JournalFollower::new(&cfg.host_root, cfg.poll_interval);
    let mut joiners: HashMap<String, JournalJoiner> = HashMap::new();
    let mut batch: HashMap<String, Vec<(String, Level)>> = HashMap::new();
    let mut retry_at: Option<Instant> = None;
    let mut warned = false;
    while !shared.stop.load(Ordering::Relaxed) {
        if let Some(t) = retry_at {
            let now = Instant::now();
            if now < t {
                std::thread::sleep((t - now).min(cfg.poll_interval));
                continue;
            }
            retry_at = None;
        }
        let was_open = follower.is_open();
        let mut entries = 0u64;
        let mut routed = 0u64;
        let now = Instant::now();
        let res = follower.poll(&mut |e| {
            entries += 1;
            let routes = shared.routes.read().unwrap_or_else(PoisonError::into_inner);
            let Some(key) = routes.route(e.unit, e.cgroup) else {
                return;
            };
            routed += 1;
            let msg = String::from_utf8_lossy(e.message);
            let out = batch.entry(key.to_owned()).or_default();
            joiners
                .entry(key.to_owned())
                .or_insert_with(|| JournalJoiner::new(cfg.max_message_bytes, cfg.max_message_lines))
                .push(&msg, e.priority, now, out);
        });
        add(&s.journal_entries, entries);
        add(&s.lines, entries);
        add(&s.journal_routed, routed);
        s.journal_open.store(follower.is_open(), Ordering::Relaxed);
        if let Err(e) = res {
            // No journal on this host is normal (debug); a journal that fails to read is not.
            if was_open || follower_exists(cfg) {
                add(&s.journal_errors, 1);
                if !warned {
                    tracing::warn!(error = %e, "Failed to read the journal; retrying");
                    warned = true;
                }
            } else {
                tracing::debug!(error = %e, "No journal found");
            }
            retry_at = Some(Instant::now() + RETRY);
        } else {
            warned = false;
        }

        let now = Instant::now();
        {
            let routes = shared.routes.read().unwrap_or_else(PoisonError::into_inner);
            joiners.retain(|key, j| {
                let out = batch.entry(key.clone()).or_default();
                if routes.contains(key) {
                    j.flush_idle(now, cfg.multiline_idle, out);
                    true
                } else {
                    j.flush(out);
                    false
                }
            });
        }
        for (key, msgs) in batch.iter_mut() {
            deliver_leveled(&shared, key, SOURCE_JOURNALD, msgs);
            msgs.clear();
        }
        batch.retain(|_, v| {
            v.shrink_to(64);
            false
        });
        let memory: usize = joiners
            .iter()
            .map(|(k, j)| k.capacity() + j.memory_bytes())
            .sum::<usize>();
        s.journal_memory.store(memory as u64, Ordering::Relaxed);
    }
}

fn follower_exists(cfg: &super::LogManagerConfig) -> bool {
    ["run/log/journal", "var/log/journal"]
        .iter()
        .any(|d| cfg.host_root.join(d).is_dir())
}
