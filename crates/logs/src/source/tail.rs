//! Following one log file by its path, through rotations, without losing or double-counting a
//! line.
//!
//! A [`FileTailer`] is polled (the manager polls every tailer each `poll_interval`): it reads
//! what was appended since the last poll and hands out complete lines. What it handles:
//!
//! - **Start**: the first time the path is opened it starts at the end (history is not
//!   counted), unless the file was born after `new_file_after` (a container started after the
//!   agent: its first lines, often the interesting ones of a crash loop, are new) or a saved
//!   [`Position`] of the same file says where the last tailer of this source stopped. A path
//!   that does not exist yet, or appears later, is read from its start.
//! - **Partial lines** are held until their newline arrives; a line longer than
//!   `max_line_bytes` is cut: its head is handed out marked truncated, the rest is skipped up to
//!   the next newline. Memory per file is bounded by `max_line_bytes` plus one read buffer.
//! - **Rename rotation** and **deletion + re-creation** (another inode at the path, or no file
//!   at all): the old file is read to its end, then kept open and read for `rotate_grace` after
//!   its last growth (a writer keeps writing to the old file until it reopens: those lines are
//!   real), while the new file is read from its start. Holding the old descriptor also stops the
//!   inode from being reused under us.
//! - **Truncation** (copytruncate): the file is smaller than our offset, *or* the bytes just
//!   before our offset changed (a truncated file that already grew past our offset again: we
//!   keep the last 32 bytes read and compare them). Reading restarts at 0. Lines the writer
//!   wrote between our last read and the truncation exist only in the copy: that is the inherent
//!   race of copytruncate, which no tailer of the original path can close.
//!
//! All I/O here is blocking std file I/O; the manager runs tailers on its own thread.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// Bytes before the read offset remembered to detect an in-place rewrite (copytruncate).
const SIG: usize = 32;
/// Old files kept open after rotations, at most; beyond, the oldest is closed.
const MAX_DRAINING: usize = 4;
/// Read buffer size. One buffer per polling thread, shared by all its tailers (see
/// [`FileTailer::poll`]), so an idle file costs no buffer.
pub const CHUNK: usize = 64 * 1024;
/// A partial-line buffer larger than this is released after use.
const KEEP_CAPACITY: usize = 16 * 1024;

/// Tailer settings.
#[derive(Debug, Clone)]
pub struct TailConfig {
    /// Longest line handed out; longer lines are cut and marked truncated.
    pub max_line_bytes: usize,
    /// Bytes read per file per poll, for fairness between files (the manager polls again at
    /// once when a file had more).
    pub max_bytes_per_poll: usize,
    /// How long an old file is still read after its last growth, once rotated away.
    pub rotate_grace: Duration,
    /// Start at the end of a file that exists when the tailer first opens it.
    pub start_at_end: bool,
    /// Files born (statx btime) after this instant are read from the start even on the first
    /// open. `None`, or a filesystem without birth times, always applies `start_at_end`.
    pub new_file_after: Option<SystemTime>,
}

impl Default for TailConfig {
    fn default() -> Self {
        TailConfig {
            max_line_bytes: 128 * 1024,
            max_bytes_per_poll: 1024 * 1024,
            rotate_grace: Duration::from_secs(5),
            start_at_end: true,
            new_file_after: None,
        }
    }
}

/// One line out of a tailer, without its newline.
#[derive(Debug, Clone, Copy)]
pub struct Line<'a> {
    pub bytes: &'a [u8],
    /// The line was longer than `max_line_bytes`; `bytes` is its head.
    pub truncated: bool,
}

/// What one poll did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PollStats {
    pub bytes: u64,
    pub lines: u64,
    pub truncated_lines: u64,
    /// Rotations seen (another file, or none, at the path).
    pub rotations: u64,
    /// Truncations seen (copytruncate).
    pub truncations: u64,
    /// I/O errors other than "not found" (permission, ...).
    pub errors: u64,
    /// Stopped at `max_bytes_per_poll` with more to read.
    pub more: bool,
}

/// Where a tailer stands in a file: lets a new tailer of the same source resume exactly there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub dev: u64,
    pub ino: u64,
    /// Offset of the first byte not yet handed out in a complete line.
    pub offset: u64,
}

/// Follows one path. See the module documentation.
#[derive(Debug)]
pub struct FileTailer {
    path: PathBuf,
    cfg: TailConfig,
    current: Option<Reader>,
    draining: Vec<Draining>,
    first_open: bool,
    resume: Option<Position>,
    /// The thread's read buffer while polling; empty otherwise.
    buf: Vec<u8>,
}

thread_local! {
    /// The read buffer the tailers polled on this thread share: a tailer holds it only during
    /// its poll, so 200 idle log files cost one buffer, not 200 (they cost 64 KiB each before).
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

#[derive(Debug)]
struct Draining {
    reader: Reader,
    last_data: Instant,
}

#[derive(Debug)]
struct Reader {
    file: File,
    dev: u64,
    ino: u64,
    /// Bytes consumed from the file (its read position).
    offset: u64,
    partial: Vec<u8>,
    /// Inside an over-long line whose head was already handed out.
    discarding: bool,
    sig: [u8; SIG],
    sig_len: usize,
}

type Emit<'e> = dyn FnMut(Line<'_>) + 'e;

impl FileTailer {
    /// A tailer of `path` (not opened until the first [`poll`](Self::poll)). `resume`, from
    /// [`position`](Self::position) of a previous tailer of the same source, is used when it
    /// names the same file.
    pub fn new(path: impl Into<PathBuf>, cfg: TailConfig, resume: Option<Position>) -> Self {
        FileTailer {
            path: path.into(),
            cfg,
            current: None,
            draining: Vec::new(),
            first_open: true,
            resume,
            buf: Vec::new(),
        }
    }

    /// The followed path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the current file stands (offset before any held partial line), if one is open.
    pub fn position(&self) -> Option<Position> {
        let r = self.current.as_ref()?;
        let held = if r.discarding {
            0
        } else {
            r.partial.len() as u64
        };
        Some(Position {
            dev: r.dev,
            ino: r.ino,
            offset: r.offset.saturating_sub(held),
        })
    }

    /// Open file descriptors held (the current file and old ones being drained).
    pub fn open_files(&self) -> usize {
        usize::from(self.current.is_some()) + self.draining.len()
    }

    /// Heap bytes held (partial lines; the read buffer is the thread's, [`CHUNK`] bytes, held
    /// only while polling).
    pub fn memory_bytes(&self) -> usize {
        let readers = self
            .current
            .iter()
            .chain(self.draining.iter().map(|d| &d.reader))
            .map(|r| std::mem::size_of::<Reader>() + r.partial.capacity())
            .sum::<usize>();
        std::mem::size_of::<Self>() + self.buf.capacity() + readers
    }

    /// Reads what is new and calls `emit` for every complete line, oldest first.
    pub fn poll(&mut self, now: Instant, emit: &mut Emit<'_>) -> PollStats {
        // Borrow the thread's buffer (a nested poll from `emit` would find it taken and use a
        // buffer of its own: correct, merely not shared).
        self.buf = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
        let st = self.poll_with_buffer(now, emit);
        let buf = std::mem::take(&mut self.buf);
        SCRATCH.with(|s| *s.borrow_mut() = buf);
        st
    }

    fn poll_with_buffer(&mut self, now: Instant, emit: &mut Emit<'_>) -> PollStats {
        let mut st = PollStats::default();
        if self.buf.len() != CHUNK {
            self.buf.resize(CHUNK, 0);
        }
        let max_line = self.cfg.max_line_bytes.max(1);
        let budget = self.cfg.max_bytes_per_poll.max(1);

        // Old files first: their lines were written before the new file's.
        let mut i = 0;
        while i < self.draining.len() {
            let d = &mut self.draining[i];
            let before = st.bytes;
            let more = match d
                .reader
                .read(&mut self.buf, budget, max_line, &mut st, emit)
            {
                Ok(more) => more,
                Err(_) => {
                    st.errors += 1;
                    false
                }
            };
            if st.bytes > before {
                d.last_data = now;
            }
            st.more |= more;
            if !more && now.saturating_duration_since(d.last_data) >= self.cfg.rotate_grace {
                let d = self.draining.remove(i);
                d.reader.finish(max_line, &mut st, emit);
            } else {
                i += 1;
            }
        }

        if self.current.is_none() && !self.open(false, &mut st, emit) {
            return st;
        }
        let Some(cur) = self.current.as_mut() else {
            return st;
        };
        cur.check_truncated(max_line, &mut st, emit);
        match cur.read(&mut self.buf, budget, max_line, &mut st, emit) {
            Ok(true) => {
                // More to read: rotation checks wait until we have caught up, so that the old
                // file is always read to its end first.
                st.more = true;
                return st;
            }
            Ok(false) => {}
            Err(_) => st.errors += 1,
        }

        match std::fs::metadata(&self.path) {
            Ok(m) if m.dev() == cur.dev && m.ino() == cur.ino => {}
            Ok(_) => {
                // Replaced. Read what was appended between our read and the stat, keep the old
                // file for stragglers, and read the new one from its start.
                self.rotate_current(now, budget, max_line, &mut st, emit);
                self.open(true, &mut st, emit);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.rotate_current(now, budget, max_line, &mut st, emit);
            }
            Err(_) => st.errors += 1,
        }
        st
    }

    /// Closes the tailer: hands out held partial lines of the files being drained (the current
    /// file's partial line is not: [`position`](Self::position) points before it, so a
    /// resuming tailer reads it again).
    pub fn close(mut self, emit: &mut Emit<'_>) -> PollStats {
        let mut st = PollStats::default();
        let max_line = self.cfg.max_line_bytes.max(1);
        for d in self.draining.drain(..) {
            d.reader.finish(max_line, &mut st, emit);
        }
        st
    }

    fn rotate_current(
        &mut self,
        now: Instant,
        budget: usize,
        max_line: usize,
        st: &mut PollStats,
        emit: &mut Emit<'_>,
    ) {
        let Some(mut old) = self.current.take() else {
            return;
        };
        st.rotations += 1;
        let more = old
            .read(&mut self.buf, budget, max_line, st, emit)
            .unwrap_or_else(|_| {
                st.errors += 1;
                false
            });
        st.more |= more;
        self.draining.push(Draining {
            reader: old,
            last_data: now,
        });
        while self.draining.len() > MAX_DRAINING {
            let d = self.draining.remove(0);
            d.reader.finish(max_line, st, emit);
        }
    }

    /// Opens the path into `current` and, when `read_now`, reads it. Returns whether a file is
    /// open.
    fn open(&mut self, read_now: bool, st: &mut PollStats, emit: &mut Emit<'_>) -> bool {
        let mut r = match Reader::open(&self.path) {
            Ok(r) => r,
            Err(e) => {
                if e.kind() == io::ErrorKind::NotFound {
                    // A file that appears later is new: read it from its start.
                    self.first_open = false;
                } else {
                    st.errors += 1;
                }
                return false;
            }
        };
        // The same file came back (renamed away and back): continue where we were.
        if let Some(i) = self
            .draining
            .iter()
            .position(|d| d.reader.dev == r.dev && d.reader.ino == r.ino)
        {
            self.current = Some(self.draining.remove(i).reader);
        } else {
            let first = std::mem::replace(&mut self.first_open, false);
            let resume = self
                .resume
                .take()
                .filter(|p| p.dev == r.dev && p.ino == r.ino);
            let start = match resume {
                Some(p) => Some(p.offset),
                None if first && self.cfg.start_at_end && !self.born_after_start(&r) => {
                    r.file.metadata().ok().map(|m| m.len())
                }
                None => None,
            };
            if let Some(off) = start
                && r.seek_to(off).is_err()
            {
                st.errors += 1;
                return false;
            }
            self.current = Some(r);
        }
        if read_now && let Some(cur) = self.current.as_mut() {
            let max_line = self.cfg.max_line_bytes.max(1);
            let budget = self.cfg.max_bytes_per_poll.max(1);
            match cur.read(&mut self.buf, budget, max_line, st, emit) {
                Ok(more) => st.more |= more,
                Err(_) => st.errors += 1,
            }
        }
        true
    }

    fn born_after_start(&self, r: &Reader) -> bool {
        let Some(after) = self.cfg.new_file_after else {
            return false;
        };
        r.file
            .metadata()
            .and_then(|m| m.created())
            .is_ok_and(|born| born > after)
    }
}

impl Reader {
    fn open(path: &Path) -> io::Result<Reader> {
        let file = File::open(path)?;
        let m = file.metadata()?;
        Ok(Reader {
            file,
            dev: m.dev(),
            ino: m.ino(),
            offset: 0,
            partial: Vec::new(),
            discarding: false,
            sig: [0; SIG],
            sig_len: 0,
        })
    }

    /// Positions the reader at `off` (clamped to the file size), remembering the bytes before
    /// it for rewrite detection.
    fn seek_to(&mut self, off: u64) -> io::Result<()> {
        let size = self.file.metadata()?.len();
        // Beyond the end: the file was truncated since that position was taken.
        let off = if off > size { 0 } else { off };
        self.file.seek(SeekFrom::Start(off))?;
        self.offset = off;
        let n = (off as usize).min(SIG);
        let mut sig = [0u8; SIG];
        self.file.read_exact_at(&mut sig[..n], off - n as u64)?;
        self.sig = sig;
        self.sig_len = n;
        Ok(())
    }

    /// Detects a truncation (copytruncate) and restarts at 0.
    fn check_truncated(&mut self, max_line: usize, st: &mut PollStats, emit: &mut Emit<'_>) {
        let Ok(size) = self.file.metadata().map(|m| m.len()) else {
            st.errors += 1;
            return;
        };
        let truncated = size < self.offset || (size > self.offset && self.rewritten());
        if !truncated {
            return;
        }
        st.truncations += 1;
        // The held partial line was cut by the truncation: hand out what we have of it.
        self.flush_partial(max_line, st, emit);
        self.discarding = false;
        if self.file.seek(SeekFrom::Start(0)).is_err() {
            st.errors += 1;
        }
        self.offset = 0;
        self.sig_len = 0;
    }

    /// Whether the bytes just before our offset differ from those we read there.
    fn rewritten(&self) -> bool {
        if self.sig_len == 0 {
            return false;
        }
        let mut now = [0u8; SIG];
        let at = self.offset - self.sig_len as u64;
        match self.file.read_exact_at(&mut now[..self.sig_len], at) {
            Ok(()) => now[..self.sig_len] != self.sig[..self.sig_len],
            Err(_) => true,
        }
    }

    /// Reads up to `budget` bytes, emitting complete lines. Returns whether it stopped at the
    /// budget with more possibly available.
    fn read(
        &mut self,
        buf: &mut [u8],
        budget: usize,
        max_line: usize,
        st: &mut PollStats,
        emit: &mut Emit<'_>,
    ) -> io::Result<bool> {
        let mut total = 0usize;
        loop {
            if total >= budget {
                return Ok(true);
            }
            let n = match self.file.read(buf) {
                Ok(0) => return Ok(false),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            total += n;
            self.offset += n as u64;
            st.bytes += n as u64;
            let data = &buf[..n];
            self.update_sig(data);
            self.split(data, max_line, st, emit);
        }
    }

    fn split(&mut self, mut data: &[u8], max_line: usize, st: &mut PollStats, emit: &mut Emit<'_>) {
        while let Some(nl) = data.iter().position(|&b| b == b'\n') {
            let seg = &data[..nl];
            data = &data[nl + 1..];
            if self.discarding {
                self.discarding = false;
                continue;
            }
            if self.partial.is_empty() {
                let cut = seg.len() > max_line;
                out(&seg[..seg.len().min(max_line)], cut, st, emit);
            } else {
                let room = max_line.saturating_sub(self.partial.len());
                let cut = seg.len() > room;
                self.partial.extend_from_slice(&seg[..seg.len().min(room)]);
                out(&self.partial, cut, st, emit);
                self.clear_partial();
            }
        }
        if self.discarding || data.is_empty() {
            return;
        }
        let room = max_line.saturating_sub(self.partial.len());
        if data.len() > room {
            self.partial.extend_from_slice(&data[..room]);
            out(&self.partial, true, st, emit);
            self.clear_partial();
            self.discarding = true;
        } else {
            self.partial.extend_from_slice(data);
        }
    }

    fn clear_partial(&mut self) {
        self.partial.clear();
        if self.partial.capacity() > KEEP_CAPACITY {
            self.partial = Vec::new();
        }
    }

    fn flush_partial(&mut self, _max_line: usize, st: &mut PollStats, emit: &mut Emit<'_>) {
        if !self.partial.is_empty() {
            out(&self.partial, false, st, emit);
            self.clear_partial();
        }
    }

    /// Closes a file that will not be read again: its unterminated last line is a line.
    fn finish(mut self, max_line: usize, st: &mut PollStats, emit: &mut Emit<'_>) {
        self.flush_partial(max_line, st, emit);
    }

    fn update_sig(&mut self, data: &[u8]) {
        if data.len() >= SIG {
            self.sig.copy_from_slice(&data[data.len() - SIG..]);
            self.sig_len = SIG;
            return;
        }
        let keep = (SIG - data.len()).min(self.sig_len);
        self.sig.copy_within(self.sig_len - keep..self.sig_len, 0);
        self.sig[keep..keep + data.len()].copy_from_slice(data);
        self.sig_len = keep + data.len();
    }
}

fn out(bytes: &[u8], truncated: bool, st: &mut PollStats, emit: &mut Emit<'_>) {
    st.lines += 1;
    if truncated {
        st.truncated_lines += 1;
    }
    emit(Line { bytes, truncated });
}
