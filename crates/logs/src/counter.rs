//! The bounded per-container pattern table behind `container_log_messages_total`.

use crate::learn::{ClusterId, MinerConfig, PatternMiner};
use crate::level::Level;
use std::collections::{BTreeMap, HashMap};

/// Counts per (level, pattern) for one container and source, bounded.
///
/// Levels warning and above are mined into patterns by a [`PatternMiner`] (which learns variable
/// positions) and counted per (level, cluster) with the first message seen as sample, at most
/// `max_patterns_per_level` of them per level; messages beyond that, or that the miner could not
/// place (its table full), count under the level's "unclassified" bucket. Lower levels are
/// counted per level only, without patterns (METRICS.md: `pattern_hash=""`).
///
/// Counts never move when the miner generalises: each message is counted once, in the cluster
/// it was placed in, and [`Self::for_each`] adds up the clusters merged into one live pattern
/// under that pattern's (new) hash. So a pattern's series can be renamed while the miner learns
/// (its count carried over into the generalised pattern), and the total is always exact. A
/// merged pattern keeps its slot, so the per-level cap counts patterns ever kept at that level.
/// Memory is bounded by the miner's caps (3 x and 4 x `max_patterns_per_level` clusters and
/// templates) plus `3 * max_patterns_per_level * (max_sample_len + overhead)` whatever the input.
#[derive(Debug, Clone)]
pub struct PatternCounter {
    max_patterns: usize,
    max_sample_len: usize,
    miner: PatternMiner,
    patterns: HashMap<(Level, ClusterId), Entry>,
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
    /// most `max_sample_len` bytes, with the default miner tuning.
    pub fn new(max_patterns_per_level: usize, max_sample_len: usize) -> Self {
        let cfg = MinerConfig {
            max_clusters: max_patterns_per_level.saturating_mul(3),
            max_shapes: max_patterns_per_level.saturating_mul(4),
            ..MinerConfig::default()
        };
        Self::with_miner(max_patterns_per_level, max_sample_len, cfg)
    }

    /// As [`Self::new`] with an explicit miner configuration.
    pub fn with_miner(
        max_patterns_per_level: usize,
        max_sample_len: usize,
        cfg: MinerConfig,
    ) -> Self {
        PatternCounter {
            max_patterns: max_patterns_per_level,
            max_sample_len,
            miner: PatternMiner::new(cfg),
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
        // A level at its cap keeps no new pattern: the miner must not spend clusters on it.
        let id = if self.per_level_patterns[li] < self.max_patterns {
            self.miner.observe(message)
        } else {
            self.miner.observe_existing(message)
        };
        let Some(id) = id else {
            self.unpatterned[li] += 1;
            return;
        };
        if let Some(e) = self.patterns.get_mut(&(level, id)) {
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
            .insert((level, id), Entry { sample, count: 1 });
    }

    /// Calls `f(level, hash, sample, count)` for every non-zero series: `Some(hash)` with its
    /// sample for a pattern (the clusters merged into one pattern summed, the sample of the
    /// oldest); `None` with an empty sample for a level's messages without a pattern (below
    /// warning: `pattern_hash=""`; warning and above: the "unclassified" overflow).
    /// Patterns come out sorted by (level, hash), so output is deterministic.
    pub fn for_each(&self, mut f: impl FnMut(Level, Option<u64>, &str, u64)) {
        for ((level, hash), (_, sample, count)) in self.merged() {
            f(level, Some(hash), sample, count);
        }
        for level in Level::ALL {
            let n = self.unpatterned[level as usize];
            if n > 0 {
                f(level, None, "", n);
            }
        }
    }

    /// Live patterns by (level, hash): (oldest cluster id, its sample, summed count).
    fn merged(&self) -> BTreeMap<(Level, u64), (ClusterId, &str, u64)> {
        let mut out: BTreeMap<(Level, u64), (ClusterId, &str, u64)> = BTreeMap::new();
        for (&(level, id), e) in &self.patterns {
            let hash = self.miner.hash(id);
            let slot = out.entry((level, hash)).or_insert((id, &e.sample, 0));
            if id < slot.0 {
                slot.0 = id;
                slot.1 = &e.sample;
            }
            slot.2 += e.count;
        }
        out
    }

    /// Number of distinct patterns now (all levels; merged clusters count once).
    pub fn patterns(&self) -> usize {
        self.merged().len()
    }

    /// The miner behind the counter (for its statistics).
    pub fn miner(&self) -> &PatternMiner {
        &self.miner
    }

    /// Approximate heap and inline bytes used, for the self-metric.
    pub fn memory_bytes(&self) -> usize {
        let slot = std::mem::size_of::<((Level, ClusterId), Entry)>() + 1;
        let samples: usize = self.patterns.values().map(|e| e.sample.len()).sum();
        std::mem::size_of::<Self>() - std::mem::size_of::<PatternMiner>()
            + self.miner.memory_bytes()
            + self.patterns.capacity() * slot
            + samples
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
