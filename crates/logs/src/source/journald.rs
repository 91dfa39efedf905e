//! journald: following the journal files under the host root with the pure-Rust `sdjournal`
//! crate, and routing entries to containers by `_SYSTEMD_UNIT` / `_SYSTEMD_CGROUP`.
//!
//! [`JournalFollower`] opens `<root>/run/log/journal` and `<root>/var/log/journal` (whichever
//! hold journal files) and follows them with `sdjournal::LiveJournal`: inotify on the
//! directories and files (journald `ftruncate`s a file after writing to it precisely so that
//! inotify readers see `IN_MODIFY`; writes through mmap alone would not show), appended entries
//! read incrementally from the entry arrays, a full rescan on new/removed/rotated files that
//! resumes after the last entry seen. It starts at the end. When the journal is not there yet
//! (journald starts after the agent) it retries and then replays from the follower's creation
//! time, so entries written meanwhile are not lost; after a read error it reopens and resumes
//! after the last entry it handed out.
//!
//! journald sets `_SYSTEMD_CGROUP` (and `_SYSTEMD_UNIT`, `_SYSTEMD_SLICE`, derived from the
//! cgroup path) from the sender's `/proc/<pid>/cgroup` even without systemd as PID 1, but only
//! when the sender is still alive when journald reads its metadata: a `logger` that exits at once
//! may be stored without them (then the entry has only `_PID`, `_UID`, `SYSLOG_IDENTIFIER`, ...
//! and cannot be routed).

use super::Error;
use crate::decode::MultilineJoiner;
use crate::level::{Level, detect_level};
use sdjournal::{Journal, JournalConfig, LiveEntry, LiveJournal, LiveSubscription};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Which container each journal entry belongs to: by unit name, else by the longest routed
/// ancestor of its cgroup path. Pure.
#[derive(Debug, Default, Clone)]
pub struct Routes {
    by_unit: HashMap<String, String>,
    by_cgroup: HashMap<String, String>,
    by_key: HashMap<String, (Option<String>, Option<String>)>,
}

impl Routes {
    /// Routes `unit` and the cgroup subtree at `cgroup_prefix` to `key`, replacing the key's
    /// previous routes. Both `None` removes the key.
    pub fn set(&mut self, key: &str, unit: Option<String>, cgroup_prefix: Option<String>) {
        self.remove(key);
        let unit = unit.filter(|u| !u.is_empty());
        let cgroup = cgroup_prefix
            .map(|c| normalize_cgroup(&c))
            .filter(|c| !c.is_empty());
        if unit.is_none() && cgroup.is_none() {
            return;
        }
        if let Some(u) = &unit {
            self.by_unit.insert(u.clone(), key.to_owned());
        }
        if let Some(c) = &cgroup {
            self.by_cgroup.insert(c.clone(), key.to_owned());
        }
        self.by_key.insert(key.to_owned(), (unit, cgroup));
    }

    /// Forgets `key`'s routes.
    pub fn remove(&mut self, key: &str) {
        if let Some((unit, cgroup)) = self.by_key.remove(key) {
            if let Some(u) = unit
                && self.by_unit.get(&u).is_some_and(|k| k == key)
            {
                self.by_unit.remove(&u);
            }
            if let Some(c) = cgroup
                && self.by_cgroup.get(&c).is_some_and(|k| k == key)
            {
                self.by_cgroup.remove(&c);
            }
        }
    }

    /// Whether `key` has a route.
    pub fn contains(&self, key: &str) -> bool {
        self.by_key.contains_key(key)
    }

    /// Whether nothing is routed.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// The key an entry with these `_SYSTEMD_UNIT` and `_SYSTEMD_CGROUP` values goes to.
    pub fn route(&self, unit: Option<&[u8]>, cgroup: Option<&[u8]>) -> Option<&str> {
        if let Some(k) = unit
            .and_then(|u| std::str::from_utf8(u).ok())
            .and_then(|u| self.by_unit.get(u))
        {
            return Some(k);
        }
        let mut path = std::str::from_utf8(cgroup?).ok()?.trim_end_matches('/');
        // The most specific routed ancestor: /system.slice/a.service/x -> .../a.service.
        loop {
            if path.is_empty() {
                return self.by_cgroup.get("/").map(String::as_str);
            }
            if let Some(k) = self.by_cgroup.get(path) {
                return Some(k);
            }
            match path.rfind('/') {
                Some(i) => path = &path[..i],
                None => return None,
            }
        }
    }
}

fn normalize_cgroup(c: &str) -> String {
    let t = c.trim_end_matches('/');
    if t.is_empty() && c.starts_with('/') {
        "/".to_owned()
    } else {
        t.to_owned()
    }
}

/// The fields of a journal entry the agent uses.
#[derive(Debug, Clone, Copy)]
pub struct JournalEntry<'a> {
    pub message: &'a [u8],
    pub priority: Option<u8>,
    pub unit: Option<&'a [u8]>,
    pub cgroup: Option<&'a [u8]>,
}

impl<'a> JournalEntry<'a> {
    fn from_live(e: &'a LiveEntry) -> Option<JournalEntry<'a>> {
        Some(JournalEntry {
            message: e.get("MESSAGE")?,
            priority: e.get("PRIORITY").and_then(parse_priority),
            unit: e.get("_SYSTEMD_UNIT"),
            cgroup: e.get("_SYSTEMD_CGROUP"),
        })
    }
}

fn parse_priority(p: &[u8]) -> Option<u8> {
    match p {
        [d @ b'0'..=b'7'] => Some(d - b'0'),
        _ => None,
    }
}

/// Follows the journal under a host root. See the module documentation.
pub struct JournalFollower {
    roots: Vec<PathBuf>,
    config: JournalConfig,
    live: Option<(LiveJournal, LiveSubscription)>,
    /// The last entry handed out: where to resume after reopening.
    last: Option<LiveEntry>,
    /// Microseconds since the epoch when the follower was created: the replay start when the
    /// journal only appears later.
    created_usec: u64,
    /// An open failed before the first success: replay from `created_usec` once open.
    missing_at_start: bool,
    opened_once: bool,
}

impl std::fmt::Debug for JournalFollower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalFollower")
            .field("roots", &self.roots)
            .field("open", &self.live.is_some())
            .finish()
    }
}

impl JournalFollower {
    /// A follower of `<host_root>/run/log/journal` and `<host_root>/var/log/journal`, waiting at
    /// most `poll_interval` per [`poll`](Self::poll).
    pub fn new(host_root: &Path, poll_interval: Duration) -> Self {
        let roots = ["run/log/journal", "var/log/journal"]
            .iter()
            .map(|d| host_root.join(d))
            .collect();
        Self::with_roots(roots, poll_interval)
    }

    /// A follower of journal directories given explicitly (each holding `*.journal` files or
    /// `<machine-id>/` directories of them).
    pub fn with_roots(roots: Vec<PathBuf>, poll_interval: Duration) -> Self {
        let config = JournalConfig {
            poll_interval,
            ..JournalConfig::default()
        };
        let created_usec = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        JournalFollower {
            roots,
            config,
            live: None,
            last: None,
            created_usec,
            missing_at_start: false,
            opened_once: false,
        }
    }

    /// Whether the journal is open.
    pub fn is_open(&self) -> bool {
        self.live.is_some()
    }

    /// Opens the journal if needed, waits up to the poll interval for new entries and calls
    /// `f` for each (entries without `MESSAGE` are skipped). Returns the number of entries
    /// handed out. An error means the journal could not be opened or read: call again later.
    pub fn poll(&mut self, f: &mut dyn FnMut(&JournalEntry<'_>)) -> Result<usize, Error> {
        if self.live.is_none() {
            self.open()?;
        }
        let Some((live, sub)) = self.live.as_mut() else {
            return Ok(0);
        };
        let polled = live.poll_once();
        // Entries queued before a failure are still good: hand them out first.
        let mut n = 0;
        loop {
            match sub.try_recv() {
                Ok(Ok(entry)) => {
                    if let Some(e) = JournalEntry::from_live(&entry) {
                        f(&e);
                        n += 1;
                    }
                    self.last = Some(entry);
                }
                Ok(Err(source)) => {
                    self.live = None;
                    return Err(self.err(source));
                }
                Err(_) => break,
            }
        }
        if let Err(source) = polled {
            self.live = None;
            return Err(self.err(source));
        }
        Ok(n)
    }

    fn err(&self, source: sdjournal::SdJournalError) -> Error {
        Error::Journal {
            roots: self.roots.clone(),
            source,
        }
    }

    fn open(&mut self) -> Result<(), Error> {
        let roots: Vec<PathBuf> = self.roots.iter().filter(|r| r.is_dir()).cloned().collect();
        if roots.is_empty() {
            self.missing_at_start |= !self.opened_once;
            return Err(self.err(sdjournal::SdJournalError::NotFound));
        }
        let journal = match Journal::open_dirs_with_config(&roots, self.config.clone()) {
            Ok(j) => j,
            Err(e) => {
                self.missing_at_start |= !self.opened_once;
                return Err(self.err(e));
            }
        };
        let mut live = journal.live().map_err(|e| self.err(e))?;
        let filter = live.filter();
        let mut opts = sdjournal::SubscriptionOptions::new(filter);
        if let Some(last) = &self.last {
            let cursor = last.cursor().map_err(|e| self.err(e))?;
            opts.after_cursor(cursor);
        } else if self.missing_at_start {
            opts.since_realtime(self.created_usec);
        }
        let sub = live.subscribe_with_options(opts).map_err(|e| self.err(e))?;
        self.opened_once = true;
        self.live = Some((live, sub));
        Ok(())
    }
}

/// Multi-line joining of one container's journal messages, keeping the level (from
/// `PRIORITY`, else detected from the text) of each message's first entry.
#[derive(Debug)]
pub struct JournalJoiner {
    joiner: MultilineJoiner,
    level: Option<Level>,
    last_push: Option<Instant>,
    pending: usize,
    max_bytes: usize,
}

impl JournalJoiner {
    /// A joiner producing messages of at most `max_bytes` bytes and `max_lines` lines.
    pub fn new(max_bytes: usize, max_lines: usize) -> Self {
        JournalJoiner {
            joiner: MultilineJoiner::new(max_bytes, max_lines),
            level: None,
            last_push: None,
            pending: 0,
            max_bytes,
        }
    }

    /// Feeds one entry's message; a completed message (the previous one) is appended to `out`.
    pub fn push(
        &mut self,
        message: &str,
        priority: Option<u8>,
        now: Instant,
        out: &mut Vec<(String, Level)>,
    ) {
        let level = priority.map(Level::from_syslog_priority);
        let was_pending = self.joiner.is_pending();
        let done = self.joiner.push(message);
        let len = message.len().min(self.max_bytes);
        if done.is_some() || !was_pending {
            let prev = std::mem::replace(&mut self.level, level);
            if let Some(m) = done {
                let l = prev.unwrap_or_else(|| detect_level(&m));
                out.push((m, l));
            }
            self.pending = len;
        } else {
            self.pending = (self.pending + len + 1).min(self.max_bytes);
        }
        self.last_push = Some(now);
    }

    /// Hands out the message in progress if nothing came for `idle`.
    pub fn flush_idle(&mut self, now: Instant, idle: Duration, out: &mut Vec<(String, Level)>) {
        if self
            .last_push
            .is_some_and(|t| now.saturating_duration_since(t) >= idle)
        {
            self.flush(out);
        }
    }

    /// Hands out the message in progress.
    pub fn flush(&mut self, out: &mut Vec<(String, Level)>) {
        if let Some(m) = self.joiner.flush() {
            let l = self.level.take().unwrap_or_else(|| detect_level(&m));
            out.push((m, l));
        }
        self.last_push = None;
        self.pending = 0;
    }

    /// Approximate heap bytes held.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.pending
    }
}
