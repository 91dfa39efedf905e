//! [`LogManager`]: every container's log sources and pattern counters, behind a small API the
//! registry drives (`set_sources`, `set_journald_route`, `remove`, `for_each`, `stats`).
//!
//! Threads: the manager runs two dedicated OS threads, not tokio tasks, because all of its I/O
//! is blocking file I/O (and the journal reader blocks in `poll(2)` on inotify): `sonde-logs-files`
//! polls every file tailer each `poll_interval` (at once again when a file had more than its
//! per-poll budget), `sonde-logs-journald` follows the journal. Neither needs a runtime, so
//! [`LogManager::start`] may be called from anywhere. Dropping the manager stops and joins them
//! (within one poll interval).
//!
//! State shared with the API: one `Mutex<ContainerLogs>` per container (the counters of each of
//! its sources), looked up by key in a map under its own short lock, so a scrape of one
//! container never waits for another's reader and the readers lock a container once per batch.

mod files;
mod journal;

use crate::counter::PatternCounter;
use crate::level::Level;
use crate::source::LogSpec;
use crate::source::journald::Routes;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

/// Settings of the [`LogManager`]; `Default` gives the agent's defaults.
#[derive(Debug, Clone)]
pub struct LogManagerConfig {
    /// `--log-patterns-per-container`: patterns kept per container, source and level (warning
    /// and above); further new patterns count under the level's "unclassified" series.
    pub max_patterns_per_level: usize,
    /// `--max-label-length`: samples are cut to this many bytes (on a char boundary).
    pub max_sample_len: usize,
    /// The host's root as the agent sees it ("/" on the host, "/host" in a container): log
    /// paths and the journal directories (`run/log/journal`, `var/log/journal`) are under it.
    pub host_root: PathBuf,
    /// How often files are polled for new data; also the journal reader's wait.
    pub poll_interval: Duration,
    /// Files followed at most, over all containers; specs beyond are skipped (stats).
    pub max_open_files: usize,
    /// Sources (files + journald) per container at most; beyond, new sources are skipped.
    pub max_sources_per_container: usize,
    /// Longest raw line read; longer lines are cut (counted in `truncated_lines`).
    pub max_line_bytes: usize,
    /// Longest message after joining split and multi-line messages.
    pub max_message_bytes: usize,
    /// Most lines joined into one multi-line message.
    pub max_message_lines: usize,
    /// A multi-line message in progress is handed out after this long without a new line
    /// (coroot-node-agent: 1 s).
    pub multiline_idle: Duration,
    /// How long a rotated-away file is still read after its last growth.
    pub rotate_grace: Duration,
    /// Follow the journal (routes from `set_journald_route`).
    pub journald: bool,
    /// `--disable-log-parsing`: no threads, nothing read, every call a no-op.
    pub disabled: bool,
}

impl Default for LogManagerConfig {
    fn default() -> Self {
        LogManagerConfig {
            max_patterns_per_level: 256,
            max_sample_len: 4096,
            host_root: PathBuf::from("/"),
            poll_interval: Duration::from_millis(250),
            max_open_files: 1024,
            max_sources_per_container: 16,
            max_line_bytes: 128 * 1024,
            max_message_bytes: 16 * 1024,
            max_message_lines: 128,
            multiline_idle: Duration::from_secs(1),
            rotate_grace: Duration::from_secs(5),
            journald: true,
            disabled: false,
        }
    }
}

/// Self-metrics of the log subsystem (totals since start unless noted).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LogStats {
    /// Raw lines read from files and entries read from the journal.
    pub lines: u64,
    /// Bytes read from files.
    pub bytes: u64,
    /// Messages counted (after joining).
    pub messages: u64,
    /// Lines a decoder rejected (malformed Docker JSON / CRI lines).
    pub decode_errors: u64,
    /// Lines longer than `max_line_bytes`, cut.
    pub truncated_lines: u64,
    /// Rotations (rename, delete) and truncations (copytruncate) seen.
    pub rotations: u64,
    pub truncations: u64,
    /// File read errors other than "not found"; journal open/read errors.
    pub read_errors: u64,
    pub journal_errors: u64,
    /// Journal entries read, and those routed to a container.
    pub journal_entries: u64,
    pub journal_routed: u64,
    /// Gauge: whether the journal is open and followed (false: none on this host, or failing).
    pub journal_open: bool,
    /// Gauge: open file descriptors of tailers.
    pub open_files: u64,
    /// Gauge: sources not followed because of `max_open_files` / `max_sources_per_container`.
    pub skipped_sources: u64,
    /// Gauge: containers with counters.
    pub containers: u64,
    /// Gauge: bytes held by counters, tailers and pipelines (approximate).
    pub memory_bytes: u64,
}

/// Owns every tailer and every container's pattern counters; runs its own threads.
pub struct LogManager {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for LogManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogManager")
            .field("config", &self.shared.cfg)
            .finish()
    }
}

/// One container's counters, per source label.
#[derive(Debug)]
pub(crate) struct ContainerLogs {
    sources: BTreeMap<String, PatternCounter>,
}

impl ContainerLogs {
    /// Counts `messages` of `source` (skipped when the container already has the maximum of
    /// sources). Returns how many were counted.
    pub(crate) fn observe(
        &mut self,
        cfg: &LogManagerConfig,
        source: &str,
        messages: &[(String, Level)],
    ) -> u64 {
        if !self.sources.contains_key(source) {
            if self.sources.len() >= cfg.max_sources_per_container {
                return 0;
            }
            self.sources.insert(
                source.to_owned(),
                PatternCounter::new(cfg.max_patterns_per_level, cfg.max_sample_len),
            );
        }
        let Some(c) = self.sources.get_mut(source) else {
            return 0;
        };
        for (m, l) in messages {
            c.observe(m, *l);
        }
        messages.len() as u64
    }

    fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self
                .sources
                .iter()
                .map(|(k, c)| k.capacity() + c.memory_bytes() + 64)
                .sum::<usize>()
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub lines: AtomicU64,
    pub bytes: AtomicU64,
    pub messages: AtomicU64,
    pub decode_errors: AtomicU64,
    pub truncated_lines: AtomicU64,
    pub rotations: AtomicU64,
    pub truncations: AtomicU64,
    pub read_errors: AtomicU64,
    pub journal_errors: AtomicU64,
    pub journal_entries: AtomicU64,
    pub journal_routed: AtomicU64,
    pub journal_open: AtomicBool,
    pub open_files: AtomicU64,
    pub skipped_sources: AtomicU64,
    /// Tailer and pipeline bytes (set by the files thread), journal joiners' (journald thread).
    pub files_memory: AtomicU64,
    pub journal_memory: AtomicU64,
}

pub(crate) fn add(c: &AtomicU64, n: u64) {
    if n > 0 {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

/// The file sources wanted, as set by the API; the files thread reconciles its tailers with it.
#[derive(Debug, Default)]
pub(crate) struct Wanted {
    pub specs: HashMap<String, Vec<LogSpec>>,
    /// Keys removed since the files thread last looked (their resume positions are dropped).
    pub removed: HashSet<String>,
    pub generation: u64,
}

pub(crate) struct Shared {
    pub cfg: LogManagerConfig,
    pub started: SystemTime,
    containers: Mutex<HashMap<String, Arc<Mutex<ContainerLogs>>>>,
    pub wanted: Mutex<Wanted>,
    pub routes: RwLock<Routes>,
    pub stats: Counters,
    pub stop: AtomicBool,
    /// Wakes the files thread early (set_sources, stop).
    pub wake: (Mutex<bool>, Condvar),
}

/// Locks, ignoring poisoning: the data are counters, still consistent after a panic elsewhere.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// The container's counters, if the container is known.
    pub(crate) fn container(&self, key: &str) -> Option<Arc<Mutex<ContainerLogs>>> {
        lock(&self.containers).get(key).cloned()
    }

    fn container_or_insert(&self, key: &str) {
        lock(&self.containers)
            .entry(key.to_owned())
            .or_insert_with(|| {
                Arc::new(Mutex::new(ContainerLogs {
                    sources: BTreeMap::new(),
                }))
            });
    }

    pub(crate) fn wake_files(&self) {
        let (m, cv) = &self.wake;
        *lock(m) = true;
        cv.notify_all();
    }

    /// Sleeps up to `d` or until woken.
    pub(crate) fn sleep_files(&self, d: Duration) {
        let (m, cv) = &self.wake;
        let mut woken = lock(m);
        if !*woken {
            woken = cv
                .wait_timeout(woken, d)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        *woken = false;
    }
}

impl LogManager {
    /// Starts the manager's threads (none when `config.disabled`).
    pub fn start(config: LogManagerConfig) -> LogManager {
        let shared = Arc::new(Shared {
            cfg: config,
            started: SystemTime::now(),
            containers: Mutex::new(HashMap::new()),
            wanted: Mutex::new(Wanted::default()),
            routes: RwLock::new(Routes::default()),
            stats: Counters::default(),
            stop: AtomicBool::new(false),
            wake: (Mutex::new(false), Condvar::new()),
        });
        let mut threads = Vec::new();
        if !shared.cfg.disabled {
            let s = shared.clone();
            match std::thread::Builder::new()
                .name("sonde-logs-files".into())
                .spawn(move || files::run(s))
            {
                Ok(h) => threads.push(h),
                Err(e) => tracing::warn!(error = %e, "Failed to start the log file reader thread"),
            }
            if shared.cfg.journald {
                let s = shared.clone();
                match std::thread::Builder::new()
                    .name("sonde-logs-journald".into())
                    .spawn(move || journal::run(s))
                {
                    Ok(h) => threads.push(h),
                    Err(e) => {
                        tracing::warn!(error = %e, "Failed to start the journald reader thread")
                    }
                }
            }
        }
        LogManager {
            shared,
            threads: Mutex::new(threads),
        }
    }

    /// Sets exactly which file sources feed container `key` (idempotent; call again when they
    /// change; an empty vec stops them). Counters of sources no longer fed stay until
    /// [`remove`](Self::remove), so counters never go backwards while the container lives; a
    /// source set again later resumes where its reader stopped (same file) without loss or
    /// double count.
    pub fn set_sources(&self, key: &str, specs: Vec<LogSpec>) {
        if self.shared.cfg.disabled {
            return;
        }
        let mut specs = specs;
        specs.sort();
        specs.dedup();
        {
            let mut w = lock(&self.shared.wanted);
            let same = match w.specs.get(key) {
                Some(old) => *old == specs,
                None => specs.is_empty(),
            };
            if same {
                return;
            }
            if specs.is_empty() {
                w.specs.remove(key);
            } else {
                self.shared.container_or_insert(key);
                w.specs.insert(key.to_owned(), specs);
            }
            w.generation += 1;
        }
        self.shared.wake_files();
    }

    /// Journald: routes entries whose `_SYSTEMD_UNIT` is `unit` (e.g. "nginx.service") or whose
    /// `_SYSTEMD_CGROUP` is `cgroup_prefix` or below it (path components, the most specific
    /// route wins) to container `key`, under the source "journald". Both `None` removes the
    /// route.
    pub fn set_journald_route(
        &self,
        key: &str,
        unit: Option<String>,
        cgroup_prefix: Option<String>,
    ) {
        if self.shared.cfg.disabled || !self.shared.cfg.journald {
            return;
        }
        if unit.is_some() || cgroup_prefix.is_some() {
            self.shared.container_or_insert(key);
        }
        self.shared
            .routes
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .set(key, unit, cgroup_prefix);
    }

    /// Forgets a container: stops its tailers and journald route, drops its counters.
    pub fn remove(&self, key: &str) {
        if self.shared.cfg.disabled {
            return;
        }
        {
            let mut w = lock(&self.shared.wanted);
            w.specs.remove(key);
            w.removed.insert(key.to_owned());
            w.generation += 1;
        }
        self.shared
            .routes
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
        lock(&self.shared.containers).remove(key);
        self.shared.wake_files();
    }

    /// Calls `f(source, level, pattern_hash, sample, count)` for every series of container
    /// `key`: `Some(hash)` with its sample for a pattern (warning and above), `None` with an
    /// empty sample for a level's messages without a pattern (below warning:
    /// `pattern_hash=""`; warning and above: the "unclassified" overflow). Sources in label
    /// order, then as [`PatternCounter::for_each`].
    pub fn for_each(&self, key: &str, mut f: impl FnMut(&str, Level, Option<u64>, &str, u64)) {
        let Some(c) = self.shared.container(key) else {
            return;
        };
        let c = lock(&c);
        for (source, counter) in &c.sources {
            counter.for_each(|level, hash, sample, n| f(source, level, hash, sample, n));
        }
    }

    /// Self-metrics.
    pub fn stats(&self) -> LogStats {
        let s = &self.shared.stats;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let containers: Vec<_> = lock(&self.shared.containers).values().cloned().collect();
        let counters_memory: usize = containers.iter().map(|c| lock(c).memory_bytes()).sum();
        LogStats {
            lines: g(&s.lines),
            bytes: g(&s.bytes),
            messages: g(&s.messages),
            decode_errors: g(&s.decode_errors),
            truncated_lines: g(&s.truncated_lines),
            rotations: g(&s.rotations),
            truncations: g(&s.truncations),
            read_errors: g(&s.read_errors),
            journal_errors: g(&s.journal_errors),
            journal_entries: g(&s.journal_entries),
            journal_routed: g(&s.journal_routed),
            journal_open: s.journal_open.load(Ordering::Relaxed),
            open_files: g(&s.open_files),
            skipped_sources: g(&s.skipped_sources),
            containers: containers.len() as u64,
            memory_bytes: counters_memory as u64 + g(&s.files_memory) + g(&s.journal_memory),
        }
    }

    /// Bytes held by container `key`'s counters (for tests and debugging).
    pub fn container_memory_bytes(&self, key: &str) -> usize {
        self.shared
            .container(key)
            .map(|c| lock(&c).memory_bytes())
            .unwrap_or(0)
    }
}

impl Drop for LogManager {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.wake_files();
        for h in lock(&self.threads).drain(..) {
            let _ = h.join();
        }
    }
}
