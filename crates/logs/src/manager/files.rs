//! The file reader thread: reconciles tailers with the wanted specs, polls them, decodes,
//! joins, detects levels and counts.

use super::{Shared, add, lock};
use crate::level::{Level, detect_level};
use crate::source::pipeline::{Format, Pipeline};
use crate::source::tail::{FileTailer, Position, TailConfig};
use crate::source::{LogSpec, under_root};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Resume positions kept for sources stopped while their container lives, at most.
const MAX_RESUME: usize = 4096;
/// See `new_file_after` below.
const BIRTH_SLACK: Duration = Duration::from_millis(20);
/// Messages handed to a container's counters per lock.
const BATCH: usize = 4096;

type Id = (String, LogSpec);

struct Source {
    label: String,
    tailer: FileTailer,
    pipeline: Pipeline,
    /// The last poll stopped at its byte budget.
    more: bool,
}

pub(super) fn run(shared: Arc<Shared>) {
    let mut state = Files::default();
    let mut seen = None;
    let mut last_full: Option<Instant> = None;
    while !shared.stop.load(Ordering::Relaxed) {
        let generation = lock(&shared.wanted).generation;
        if seen != Some(generation) {
            state.reconcile(&shared);
            seen = Some(generation);
            last_full = None;
        }
        // Between full rounds (every poll interval), only files with more to read are polled
        // again at once, so one busy file does not make every other file be stat'ed in a loop.
        let full = last_full.is_none_or(|t| t.elapsed() >= shared.cfg.poll_interval);
        if full {
            last_full = Some(Instant::now());
        }
        let busy = state.poll_all(&shared, !full);
        if !busy {
            let wait = last_full
                .map(|t| shared.cfg.poll_interval.saturating_sub(t.elapsed()))
                .unwrap_or(shared.cfg.poll_interval);
            shared.sleep_files(wait);
        }
    }
}

#[derive(Default)]
struct Files {
    sources: BTreeMap<Id, Source>,
    resume: HashMap<Id, Position>,
    msgs: Vec<String>,
}

impl Files {
    fn reconcile(&mut self, shared: &Shared) {
        let cfg = &shared.cfg;
        let (wanted, removed) = {
            let mut w = lock(&shared.wanted);
            (w.specs.clone(), std::mem::take(&mut w.removed))
        };
        self.resume.retain(|(k, _), _| !removed.contains(k));

        // Caps: sources already followed keep their place; new ones in key order.
        let mut all: Vec<Id> = wanted
            .iter()
            .flat_map(|(k, specs)| specs.iter().map(move |s| (k.clone(), s.clone())))
            .collect();
        all.sort_by_key(|id| (!self.sources.contains_key(id), id.clone()));
        let mut want: BTreeSet<Id> = BTreeSet::new();
        let mut per_key: HashMap<&str, usize> = HashMap::new();
        let mut skipped = 0u64;
        for id in &all {
            let n = per_key.entry(id.0.as_str()).or_default();
            if *n >= cfg.max_sources_per_container || want.len() >= cfg.max_open_files {
                skipped += 1;
                continue;
            }
            *n += 1;
            want.insert(id.clone());
        }
        shared
            .stats
            .skipped_sources
            .store(skipped, Ordering::Relaxed);

        let stop: Vec<Id> = self
            .sources
            .keys()
            .filter(|id| !want.contains(*id))
            .cloned()
            .collect();
        for id in stop {
            if let Some(src) = self.sources.remove(&id) {
                self.stop_source(shared, &id, src, &removed);
            }
        }
        if self.resume.len() > MAX_RESUME {
            self.resume.clear();
        }

        let tail_cfg = TailConfig {
            max_line_bytes: cfg.max_line_bytes,
            max_bytes_per_poll: 1024 * 1024,
            rotate_grace: cfg.rotate_grace,
            start_at_end: true,
            // File birth times come from the kernel's coarse clock (up to a tick, 1-10 ms,
            // behind SystemTime::now()): allow for it, at the price of reading files born
            // within that slack before the start from their beginning.
            new_file_after: shared.started.checked_sub(BIRTH_SLACK),
        };
        for id in want {
            if self.sources.contains_key(&id) {
                continue;
            }
            let format = match &id.1 {
                LogSpec::DockerJson(_) => Format::DockerJson,
                LogSpec::Cri(_) => Format::Cri,
                LogSpec::File(_) => Format::Plain,
            };
            let path = under_root(&cfg.host_root, id.1.path());
            let resume = self.resume.remove(&id);
            let src = Source {
                label: id.1.source_label(),
                tailer: FileTailer::new(path, tail_cfg.clone(), resume),
                pipeline: Pipeline::new(format, cfg.max_message_bytes, cfg.max_message_lines),
                more: false,
            };
            self.sources.insert(id, src);
        }
    }

    /// Stops a source: hands out what it holds and remembers where it stood (unless its
    /// container is gone).
    fn stop_source(&mut self, shared: &Shared, id: &Id, src: Source, removed: &HashSet<String>) {
        let Source {
            label,
            tailer,
            mut pipeline,
            ..
        } = src;
        if !removed.contains(&id.0)
            && let Some(p) = tailer.position()
        {
            self.resume.insert(id.clone(), p);
        }
        let now = Instant::now();
        let msgs = &mut self.msgs;
        let mut errors = 0u64;
        let st = tailer.close(&mut |line| {
            if pipeline.push_line(line.bytes, now, msgs).is_err() {
                errors += 1;
            }
        });
        pipeline.flush(msgs);
        add(&shared.stats.lines, st.lines);
        add(&shared.stats.decode_errors, errors);
        deliver(shared, &id.0, &label, msgs);
    }

    /// Polls every source once (`only_more`: only those whose last poll stopped at the
    /// budget). Returns whether one had more to read right away.
    fn poll_all(&mut self, shared: &Shared, only_more: bool) -> bool {
        let cfg = &shared.cfg;
        let s = &shared.stats;
        let now = Instant::now();
        let mut busy = false;
        let mut open = 0usize;
        // The tailers of this thread share one read buffer.
        let mut memory = std::mem::size_of::<Self>() + crate::source::tail::CHUNK;
        for ((key, _), src) in self.sources.iter_mut() {
            let Source {
                label,
                tailer,
                pipeline,
                more,
            } = src;
            open += tailer.open_files();
            memory += tailer.memory_bytes() + pipeline.memory_bytes() + label.capacity();
            if only_more && !*more {
                continue;
            }
            let msgs = &mut self.msgs;
            let mut errors = 0u64;
            let st = tailer.poll(now, &mut |line| {
                if pipeline.push_line(line.bytes, now, msgs).is_err() {
                    errors += 1;
                }
                if msgs.len() >= BATCH {
                    deliver(shared, key, label, msgs);
                }
            });
            pipeline.flush_idle(now, cfg.multiline_idle, msgs);
            deliver(shared, key, label, msgs);
            add(&s.lines, st.lines);
            add(&s.bytes, st.bytes);
            add(&s.truncated_lines, st.truncated_lines);
            add(&s.rotations, st.rotations);
            add(&s.truncations, st.truncations);
            add(&s.read_errors, st.errors);
            add(&s.decode_errors, errors);
            busy |= st.more;
            *more = st.more;
        }
        if self.msgs.capacity() > BATCH * 2 {
            self.msgs = Vec::new();
        }
        memory += self.msgs.capacity() * std::mem::size_of::<String>();
        s.open_files.store(open as u64, Ordering::Relaxed);
        s.files_memory.store(memory as u64, Ordering::Relaxed);
        busy
    }
}

/// Detects levels and counts `msgs` (drained) into container `key`'s counter for `source`.
fn deliver(shared: &Shared, key: &str, source: &str, msgs: &mut Vec<String>) {
    if msgs.is_empty() {
        return;
    }
    let leveled: Vec<(String, Level)> = msgs
        .drain(..)
        .map(|m| {
            let l = detect_level(&m);
            (m, l)
        })
        .collect();
    deliver_leveled(shared, key, source, &leveled);
}

/// Counts messages with known levels into container `key`'s counter for `source`.
pub(super) fn deliver_leveled(shared: &Shared, key: &str, source: &str, msgs: &[(String, Level)]) {
    if msgs.is_empty() {
        return;
    }
    let Some(c) = shared.container(key) else {
        return;
    };
    let n = lock(&c).observe(&shared.cfg, source, msgs);
    add(&shared.stats.messages, n);
}
