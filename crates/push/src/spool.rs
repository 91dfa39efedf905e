//! The bounded on-disk spool: one file per gathered batch, holding exactly the bytes to POST,
//! sent oldest first and deleted once the receiver took it. It is what makes a receiver
//! outage lossless (up to its size) and survives an agent restart (the files are found again
//! at start).
//!
//! File names are `<timestamp ms, 16 digits>-<sequence, 8 digits>-<samples>.batch`, so a
//! directory listing sorts in gather order and the sample count needs no parsing of the
//! payload. A file is written as `.tmp` and renamed, so a crash never leaves half a batch
//! under a name the sender would pick up. The total size is bounded by `max_bytes`: adding a
//! batch beyond it deletes the oldest ones (never the one being sent) and counts them as
//! dropped, as coroot-node-agent's spool does.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use crate::Error;

/// One spooled batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub bytes: u64,
    pub samples: u64,
}

/// The spool of one push target.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    entries: VecDeque<Entry>,
    total: u64,
    seq: u64,
    /// The entry the sender is POSTing (never dropped under it).
    in_flight: Option<String>,
}

/// What adding a batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Added {
    /// Older batches deleted to make room.
    pub dropped_batches: u64,
    pub dropped_samples: u64,
    /// The new batch alone is larger than the spool: not kept.
    pub rejected: bool,
}

fn parse_name(name: &str) -> Option<(u64, u64, u64)> {
    let stem = name.strip_suffix(".batch")?;
    let mut it = stem.split('-');
    let ts = it.next()?.parse().ok()?;
    let seq = it.next()?.parse().ok()?;
    let samples = it.next()?.parse().ok()?;
    it.next().is_none().then_some((ts, seq, samples))
}

impl Spool {
    /// Opens (creating) `dir`, deletes leftover `.tmp` files, and picks up the batches a
    /// previous run left, oldest first.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Spool, Error> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Spool(dir.to_owned(), e))?;
        let mut found = Vec::new();
        let rd = std::fs::read_dir(dir).map_err(|e| Error::Spool(dir.to_owned(), e))?;
        for entry in rd.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") {
                let _ = std::fs::remove_file(entry.path());
                continue;
            }
            let Some((ts, seq, samples)) = parse_name(&name) else {
                continue;
            };
            let bytes = entry.metadata().map(|m| m.len()).unwrap_or(0);
            found.push((
                ts,
                seq,
                Entry {
                    name,
                    bytes,
                    samples,
                },
            ));
        }
        found.sort_by_key(|(ts, seq, _)| (*ts, *seq));
        let seq = found.last().map(|(_, s, _)| s + 1).unwrap_or(0);
        let entries: VecDeque<Entry> = found.into_iter().map(|(_, _, e)| e).collect();
        let total = entries.iter().map(|e| e.bytes).sum();
        Ok(Spool {
            dir: dir.to_owned(),
            max_bytes,
            entries,
            total,
            seq,
            in_flight: None,
        })
    }

    /// Adds a batch. Blocking file I/O: call from a blocking context.
    pub fn add(&mut self, timestamp_ms: i64, samples: u64, payload: &[u8]) -> Result<Added, Error> {
        let mut added = Added::default();
        let size = payload.len() as u64;
        if size > self.max_bytes {
            added.rejected = true;
            return Ok(added);
        }
        // Make room first: the oldest batches go, except one being sent.
        while self.total + size > self.max_bytes {
            let victim = self
                .entries
                .iter()
                .position(|e| Some(&e.name) != self.in_flight.as_ref());
            let Some(i) = victim else { break };
            let Some(e) = self.entries.remove(i) else {
                break;
            };
            let _ = std::fs::remove_file(self.dir.join(&e.name));
            self.total -= e.bytes;
            added.dropped_batches += 1;
            added.dropped_samples += e.samples;
        }
        let name = format!(
            "{:016}-{:08}-{samples}.batch",
            timestamp_ms.max(0),
            self.seq
        );
        self.seq += 1;
        let tmp = self.dir.join(format!("{name}.tmp"));
        let path = self.dir.join(&name);
        std::fs::write(&tmp, payload)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                Error::Spool(path.clone(), e)
            })?;
        self.total += size;
        self.entries.push_back(Entry {
            name,
            bytes: size,
            samples,
        });
        Ok(added)
    }

    /// The oldest batch, marked in flight, with its path.
    pub fn take_oldest(&mut self) -> Option<(Entry, PathBuf)> {
        let e = self.entries.front()?.clone();
        self.in_flight = Some(e.name.clone());
        let path = self.dir.join(&e.name);
        Some((e, path))
    }

    /// The sender is done with `entry`: delivered or refused for good (`remove`), or to be
    /// retried (`!remove`).
    pub fn finish(&mut self, entry: &Entry, remove: bool) {
        self.in_flight = None;
        if remove && let Some(i) = self.entries.iter().position(|e| e.name == entry.name) {
            let _ = std::fs::remove_file(self.dir.join(&entry.name));
            if let Some(e) = self.entries.remove(i) {
                self.total -= e.bytes;
            }
        }
    }

    /// Drops an entry whose file vanished or cannot be read (counted by the caller).
    pub fn forget(&mut self, entry: &Entry) {
        self.finish(entry, true);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn bytes(&self) -> u64 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn fifo_bounded_and_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), 100).unwrap();
        for i in 0..3 {
            let a = s.add(1000 + i, 5, &[b'x'; 30]).unwrap();
            assert_eq!(a, Added::default());
        }
        // 4 x 30 > 100: the oldest goes.
        let a = s.add(1003, 5, &[b'x'; 30]).unwrap();
        assert_eq!((a.dropped_batches, a.dropped_samples), (1, 5));
        assert_eq!(s.len(), 3);
        assert_eq!(s.bytes(), 90);
        let (oldest, path) = s.take_oldest().unwrap();
        assert!(oldest.name.starts_with("0000000000001001-00000001-5"));
        assert!(path.exists());
        // While it is in flight, room is made from the next oldest instead.
        let a = s.add(2000, 7, &[b'y'; 30]).unwrap();
        assert_eq!(a.dropped_batches, 1);
        assert_eq!(a.dropped_samples, 5);
        assert!(path.exists());
        s.finish(&oldest, true);
        assert!(!path.exists());
        assert_eq!(s.len(), 2);
        // Too big alone: refused, nothing dropped.
        let a = s.add(3000, 1, &[0; 101]).unwrap();
        assert!(a.rejected && a.dropped_batches == 0);

        // A crash leaves a .tmp: removed at reopen; the order and sequence carry on.
        std::fs::write(dir.path().join("junk.batch.tmp"), b"half").unwrap();
        std::fs::write(dir.path().join("README"), b"not ours").unwrap();
        drop(s);
        let mut s = Spool::open(dir.path(), 100).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s.bytes(), 60);
        assert!(!names(dir.path()).iter().any(|n| n.ends_with(".tmp")));
        let (first, _) = s.take_oldest().unwrap();
        assert!(first.name.starts_with("0000000000001003-"), "{first:?}");
        s.finish(&first, false);
        s.add(4000, 1, b"z").unwrap();
        assert!(names(dir.path()).iter().any(|n| n.contains("-00000005-")));
    }

    #[test]
    fn parses_only_its_names() {
        assert_eq!(
            parse_name("0000000000000012-00000003-77.batch"),
            Some((12, 3, 77))
        );
        assert_eq!(parse_name("12-3.batch"), None);
        assert_eq!(parse_name("a-b-c.batch"), None);
        assert_eq!(parse_name("1-2-3-4.batch"), None);
        assert_eq!(parse_name("1-2-3.done"), None);
    }
}
