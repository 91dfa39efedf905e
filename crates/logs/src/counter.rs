//! The bounded per-container pattern table behind `container_log_messages_total`.

use crate::level::Level;
use crate::miner::pattern_hash;
use std::collections::HashMap;

/// Counts per (level, pattern) for one container and source, bounded.
///
/// Levels warning and above keep a pattern per distinct hash (with the first message seen as
/// its sample), at most `max_patterns_per_level` of them per level; messages of new patterns
/// beyond that count under the level's "unclassified" bucket. Lower levels are counted per level
/// only, without patterns (METRICS.md: `pattern_hash=""`). Memory is therefore bounded by
/// `4 * max_patterns_per_level * (max_sample_len + overhead)` whatever the input.
#[derive(Debug, Clone)]
pub struct PatternCounter {
    max_patterns: usize,
    max_sample_len: usize,
    patterns: HashMap<(Level, u64), Entry>,
    /// Per level: messages without a pattern (below warning) or beyond the cap (unclassified).
    unpatterned: [u64; 6],
    per_level_patterns: [usize; 6],
}

#[derive(Debug, Clone)]
struct Entry {
    sample: Box<str>,
    count: u64,
}

impl PatternCounter {
    /// A counter keeping at most `max_patterns_per_level` patterns per level and samples of at
    /// most `max_sample_len` bytes.
    pub fn new(max_patterns_per_level: usize, max_sample_len: usize) -> Self {
        PatternCounter {
            max_patterns: max_patterns_per_level,
            max_sample_len,
            patterns: HashMap::new(),
            unpatterned: [0; 6],
            per_level_patterns: [0; 6],
        }
    }

    /// Counts one message of `level` (from the decoder or [`crate::detect_level`]).
    pub fn observe(&mut self, message: &str, level: Level) {
        let li = level as usize;
        if !level.keeps_patterns() {
            self.unpatterned[li] += 1;
            return;
        }
        let hash = pattern_hash(message);
        if let Some(e) = self.patterns.get_mut(&(level, hash)) {
            e.count += 1;
            return;
        }
        if self.per_level_patterns[li] >= self.max_patterns {
            self.unpatterned[li] += 1;
            return;
        }
        self.per_level_patterns[li] += 1;
        let sample = truncate(message.trim_end(), self.max_sample_len).into();
        self.patterns
            .insert((level, hash), Entry { sample, count: 1 });
    }

    /// Calls `f(level, hash, sample, count)` for every non-zero series: `Some(hash)` with its
    /// sample for a pattern; `None` with an empty sample for a level's messages without a pattern
    /// (below warning: `pattern_hash=""`; warning and above: the "unclassified" overflow).
    /// Patterns come out sorted by (level, hash), so output is deterministic.
    pub fn for_each(&self, mut f: impl FnMut(Level, Option<u64>, &str, u64)) {
        let mut keys: Vec<&(Level, u64)> = self.patterns.keys().collect();
        keys.sort_unstable();
        for k in keys {
            if let Some(e) = self.patterns.get(k) {
                f(k.0, Some(k.1), &e.sample, e.count);
            }
        }
        for level in Level::ALL {
            let n = self.unpatterned[level as usize];
            if n > 0 {
                f(level, None, "", n);
            }
        }
    }

    /// Number of distinct patterns kept (all levels).
    pub fn patterns(&self) -> usize {
        self.patterns.len()
    }

    /// Approximate heap and inline bytes used, for the self-metric.
    pub fn memory_bytes(&self) -> usize {
        let slot = std::mem::size_of::<((Level, u64), Entry)>() + 1;
        let samples: usize = self.patterns.values().map(|e| e.sample.len()).sum();
        std::mem::size_of::<Self>() + self.patterns.capacity() * slot + samples
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char boundary.
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
