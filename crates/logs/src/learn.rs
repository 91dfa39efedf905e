//! The learning miner: masked templates ([`crate::miner`]) grouped into clusters whose variable
//! positions are learned from the data.
//!
//! Masking judges each token alone, so it cannot know that `alice` in `session opened for user
//! alice` is a variable. This layer learns it the way Drain and Brain do, from messages that are
//! otherwise equal, but with a stricter rule that keeps the result independent of arrival order
//! once enough has been seen:
//!
//! - Messages are compared only with messages of the same token count (masking already collapsed
//!   runs of variables, so most variable-length parts are one token).
//! - A cluster *covers* a message when every position is a wildcard in the cluster or equal.
//! - A position becomes a wildcard when `min_values` distinct messages agree everywhere else and
//!   differ there (at most `max_diff` positions at once), and the result keeps at least
//!   `min_constant_share` of its tokens constant. Two values (`opened`/`closed`) never merge when
//!   `min_values` is 3; many values (user names, hosts) do.
//! - Two values suffice after a *key*: a token that precedes a learned variable elsewhere in the
//!   log (`for user <*>` teaches `user`), or one of a few words that name a variable in most
//!   software (`user`, `database`, `queue`, `host` ...: [`SEED_KEYS`]).
//! - A cluster's hash is the pure [`crate::pattern_hash`] of its first message while nothing was
//!   learned, and [`learned_hash`] of its tokens and wildcard positions after: a function of what
//!   was learned, so two nodes that learned the same positions give the same hash.
//!
//! Counts never move here: the caller counts per cluster id, and [`PatternMiner::root`] says which
//! cluster an id was merged into. Everything is bounded: `max_clusters` clusters (merged ones
//! included) and `max_shapes` remembered templates; nothing is allocated before the first message.

use crate::miner::{MAX_TOKENS, Tokens, WILDCARD, pattern_hash, tokenize};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Tuning of the learning miner. One configuration for every log.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MinerConfig {
    /// Distinct values at a position (among otherwise equal messages) that make it a variable.
    pub min_values: usize,
    /// Most positions that may become variables in one step.
    pub max_diff: usize,
    /// Least share of constant tokens a generalised template keeps.
    pub min_constant_share: f64,
    /// Most clusters (live and merged) kept; messages of new templates beyond are unclassified.
    pub max_clusters: usize,
    /// Most distinct masked templates remembered (a fast path); beyond, lookups scan.
    pub max_shapes: usize,
}

impl Default for MinerConfig {
    fn default() -> Self {
        MinerConfig {
            min_values: 5,
            max_diff: 1,
            min_constant_share: 0.6,
            max_clusters: 1024,
            max_shapes: 4096,
        }
    }
}

/// A cluster's index in its miner. Stable for the miner's life; may be merged into another one
/// ([`PatternMiner::root`]).
pub type ClusterId = u32;

#[derive(Debug, Clone)]
struct Cluster {
    tokens: Box<[u64]>,
    wild: u64,
    /// [`pattern_hash`] of its first message while nothing was learned; then [`learned_hash`].
    hash: u64,
    /// Itself while live; the cluster it was merged into otherwise (always a live one).
    parent: ClusterId,
}

impl Cluster {
    fn constants(&self) -> usize {
        self.tokens.len() - self.wild.count_ones() as usize
    }
}

/// The shape keys are already well mixed 64-bit hashes: hashing them again is wasted time.
#[derive(Default, Clone, Copy)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Most learned keys (tokens in front of variables) per miner.
const MAX_KEYS: usize = 64;

/// Words that name the variable that follows them in most software ("for user alice", "database
/// orders", "queue emails", "host db-1"): keys known before any log is seen, from the issue's
/// failure classes (user, database, queue and host names), not from any data set. Two values
/// after one of these make a variable, as after a learned key.
const SEED_KEYS: [&str; 24] = [
    "user", "User", "username", "login", "account", "group", "role", "tenant", "project",
    "database", "Database", "db", "table", "schema", "queue", "Queue", "topic", "bucket", "host",
    "Host", "hostname", "node", "service", "domain",
];

/// Token hashes of [`SEED_KEYS`], computed once.
fn seed_keys() -> &'static [u64; SEED_KEYS.len()] {
    static KEYS: std::sync::OnceLock<[u64; SEED_KEYS.len()]> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| SEED_KEYS.map(|k| tokenize(k).0.hashes[0]))
}

type ShapeMap = HashMap<u64, ClusterId, BuildHasherDefault<IdHasher>>;

/// The learning miner of one log stream (container and source). See the module docs.
#[derive(Debug, Clone)]
pub struct PatternMiner {
    cfg: MinerConfig,
    shapes: ShapeMap,
    clusters: Vec<Cluster>,
    /// Live clusters per token count.
    buckets: HashMap<u8, Vec<ClusterId>>,
    /// Tokens that precede a learned variable ("user" in "for user <*>"): a value after one of
    /// these is a variable on the evidence of two values instead of `min_values`, in any
    /// template of the log. At most [`MAX_KEYS`].
    keys: Vec<u64>,
    /// Messages whose template could not get a cluster (cluster table full).
    unclassified: u64,
}

impl Default for PatternMiner {
    fn default() -> Self {
        Self::new(MinerConfig::default())
    }
}

impl PatternMiner {
    /// An empty miner; allocates nothing until the first message.
    pub fn new(cfg: MinerConfig) -> Self {
        PatternMiner {
            cfg,
            shapes: ShapeMap::default(),
            clusters: Vec::new(),
            buckets: HashMap::new(),
            unclassified: 0,
            keys: Vec::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &MinerConfig {
        &self.cfg
    }

    /// Learns from `message` and returns the live cluster it belongs to now, or `None` when the
    /// cluster table is full and no cluster covers it. The fast path (a template seen before) is
    /// one walk and one table lookup, without allocating.
    pub fn observe(&mut self, message: &str) -> Option<ClusterId> {
        self.observe_inner(message, true)
    }

    /// As [`Self::observe`], but never creates a cluster: a message no cluster covers (or can
    /// generalise to cover) gets `None`. For callers whose own table is full, so that messages
    /// they would not keep do not use up the miner's clusters.
    pub fn observe_existing(&mut self, message: &str) -> Option<ClusterId> {
        self.observe_inner(message, false)
    }

    fn observe_inner(&mut self, message: &str, create: bool) -> Option<ClusterId> {
        let (t, shape) = tokenize(message);
        if let Some(&id) = self.shapes.get(&shape) {
            return Some(self.root(id));
        }
        let id = self.learn(message, &t, create);
        match id {
            Some(id) if self.shapes.len() < self.cfg.max_shapes => {
                self.shapes.insert(shape, id);
            }
            Some(_) => {}
            None => self.unclassified += 1,
        }
        id
    }

    /// The live cluster `id` was merged into (itself when live). Merges re-point every merged
    /// cluster straight to the live one, so this is one step.
    pub fn root(&self, id: ClusterId) -> ClusterId {
        self.clusters.get(id as usize).map_or(id, |c| c.parent)
    }

    /// The pattern hash of the (live cluster of) `id`: the [`pattern_hash`] of its first message
    /// while no position was learned, the [`learned_hash`] of its tokens and wildcards after.
    pub fn hash(&self, id: ClusterId) -> u64 {
        self.cluster(id).map_or(0, |c| c.hash)
    }

    /// Renders the template of (the live cluster of) `id`, given the masked [`crate::template`]
    /// of any of its messages: learned variables become wildcards. The miner keeps no text
    /// (memory), so the caller supplies it, for display.
    pub fn render(&self, id: ClusterId, masked_template: &str) -> String {
        match self.cluster(id) {
            Some(c) if c.wild != 0 => render(masked_template, c.wild, c.tokens.len()),
            _ => masked_template.to_owned(),
        }
    }

    fn cluster(&self, id: ClusterId) -> Option<&Cluster> {
        self.clusters.get(self.root(id) as usize)
    }

    /// Clusters ever created (live and merged).
    pub fn clusters(&self) -> usize {
        self.clusters.len()
    }

    /// Live clusters (patterns now).
    pub fn live_clusters(&self) -> usize {
        self.buckets.values().map(Vec::len).sum()
    }

    /// Messages that got no cluster because the table was full.
    pub fn unclassified(&self) -> u64 {
        self.unclassified
    }

    /// Approximate heap and inline bytes used.
    pub fn memory_bytes(&self) -> usize {
        let clusters: usize = self.clusters.iter().map(|c| c.tokens.len() * 8).sum();
        let buckets: usize = self
            .buckets
            .values()
            .map(|b| b.capacity() * 4 + 8 + std::mem::size_of::<Vec<u32>>())
            .sum();
        std::mem::size_of::<Self>()
            + self.shapes.capacity() * (std::mem::size_of::<(u64, ClusterId)>() + 1)
            + self.clusters.capacity() * std::mem::size_of::<Cluster>()
            + clusters
            + buckets
    }

    /// Whether cluster `c` covers the tokens `t` (every position wild in `c` or equal), and
    /// keeps enough constants to cover anything but its own shape.
    fn covers(&self, c: &Cluster, t: &[u64]) -> bool {
        c.tokens
            .iter()
            .zip(t)
            .enumerate()
            .all(|(p, (a, b))| c.wild >> p & 1 == 1 || a == b)
    }

    /// Whether a template of `n` tokens with wildcards `wild` keeps enough constants to cover
    /// messages other than its own: at least one, and at least `min_constant_share` of its
    /// tokens (Drain's similarity threshold, on the template rather than on a pair).
    fn general_enough(&self, n: usize, wild: u64) -> bool {
        let constants = n - wild.count_ones() as usize;
        constants >= 1 && constants as f64 + 1e-9 >= self.cfg.min_constant_share * n as f64
    }

    fn learn(&mut self, message: &str, t: &Tokens, create: bool) -> Option<ClusterId> {
        let n = t.len();
        let toks = &t.hashes[..n];
        let bucket = self
            .buckets
            .get(&(n as u8))
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        // 1. A cluster that covers it: the most specific one.
        let mut best: Option<(ClusterId, usize)> = None;
        for &id in bucket {
            let c = &self.clusters[id as usize];
            if self.covers(c, toks)
                && (c.wild == 0 || self.general_enough(n, c.wild))
                && best.is_none_or(|(_, k)| c.constants() > k)
            {
                best = Some((id, c.constants()));
            }
        }
        if let Some((id, _)) = best {
            return Some(id);
        }
        // 2. Generalise: clusters that differ from it at the same few positions.
        let mut tally: Vec<(u64, usize, u64)> = Vec::new(); // (diff mask, members, wild union)
        for &id in bucket {
            let c = &self.clusters[id as usize];
            let mut diff = 0u64;
            for (p, (a, b)) in c.tokens.iter().zip(toks).enumerate() {
                if c.wild >> p & 1 == 0 && a != b {
                    diff |= 1 << p;
                }
            }
            if diff == 0 || diff.count_ones() as usize > self.cfg.max_diff {
                continue;
            }
            match tally.iter_mut().find(|e| e.0 == diff) {
                Some(e) => {
                    e.1 += 1;
                    e.2 |= c.wild;
                }
                None => tally.push((diff, 1, c.wild)),
            }
        }
        let chosen = tally
            .iter()
            .filter(|e| {
                let needed = if self.after_key(e.0, toks) {
                    2
                } else {
                    self.cfg.min_values
                };
                e.1 + 1 >= needed && self.general_enough(n, e.0 | e.2 | t.wild)
            })
            .min_by_key(|e| (std::cmp::Reverse(e.1), e.0.count_ones(), e.0))
            .copied();
        if let Some((diff, _, _)) = chosen {
            let members: Vec<ClusterId> =
                bucket
                    .iter()
                    .copied()
                    .filter(|&id| {
                        let c = &self.clusters[id as usize];
                        c.tokens.iter().zip(toks).enumerate().all(|(p, (a, b))| {
                            (diff >> p & 1 == 1) || c.wild >> p & 1 == 1 || a == b
                        })
                    })
                    .collect();
            let wild = members
                .iter()
                .fold(diff | t.wild, |w, &id| w | self.clusters[id as usize].wild);
            let root = members.iter().copied().min().unwrap_or(0);
            self.generalise(root, wild, n);
            return Some(root);
        }
        // 3. A new cluster.
        if !create || self.clusters.len() >= self.cfg.max_clusters {
            return None;
        }
        let id = self.clusters.len() as ClusterId;
        self.clusters.push(Cluster {
            tokens: toks.into(),
            wild: t.wild,
            hash: pattern_hash(message),
            parent: id,
        });
        self.buckets.entry(n as u8).or_default().push(id);
        if t.wild != 0 && self.general_enough(n, t.wild) {
            // A template variable by shape where an older cluster has a word ("user <*>" after
            // "user alice"): the older one was the same kind, seen before its variable showed.
            self.absorb(id, n);
        }
        Some(id)
    }

    /// Whether `diff` is one position that follows a learned key in `toks`.
    fn after_key(&self, diff: u64, toks: &[u64]) -> bool {
        let p = diff.trailing_zeros() as usize;
        diff.count_ones() == 1
            && p >= 1
            && (self.keys.contains(&toks[p - 1]) || seed_keys().contains(&toks[p - 1]))
    }

    /// Makes `wild` the wildcard positions of `root`, merges every cluster it now covers, and
    /// learns the keys in front of its new variables.
    fn generalise(&mut self, root: ClusterId, wild: u64, n: usize) {
        let c = &mut self.clusters[root as usize];
        let new = wild & !c.wild;
        let mut learned = Vec::new();
        for p in 1..n.min(MAX_TOKENS) {
            if new >> p & 1 == 1 && c.wild >> (p - 1) & 1 == 0 && wild >> (p - 1) & 1 == 0 {
                learned.push(c.tokens[p - 1]);
            }
        }
        c.wild = wild;
        for (p, tok) in c.tokens.iter_mut().enumerate() {
            if wild >> p & 1 == 1 {
                *tok = 0;
            }
        }
        c.hash = learned_hash(&c.tokens, wild);
        self.absorb(root, n);
        for key in learned {
            if !self.keys.contains(&key) && self.keys.len() < MAX_KEYS {
                self.keys.push(key);
                self.consolidate(key);
            }
        }
    }

    /// After learning `key`: merges the live clusters that differ only at one position following
    /// it (clusters created before the key was known, which would otherwise stay apart).
    fn consolidate(&mut self, key: u64) {
        let mut lens: Vec<u8> = self.buckets.keys().copied().collect();
        lens.sort_unstable();
        for len in lens {
            let n = usize::from(len);
            for p in 1..n.min(MAX_TOKENS) {
                let mut groups: HashMap<u64, Vec<ClusterId>> = HashMap::new();
                for &id in self.buckets.get(&len).map(Vec::as_slice).unwrap_or(&[]) {
                    let c = &self.clusters[id as usize];
                    if c.tokens[p - 1] != key || c.wild >> (p - 1) & 3 != 0 {
                        continue;
                    }
                    let mut h = c.wild;
                    for (q, t) in c.tokens.iter().enumerate() {
                        if q != p {
                            h = (h ^ t).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29);
                        }
                    }
                    groups.entry(h).or_default().push(id);
                }
                let mut merges: Vec<(ClusterId, u64)> = groups
                    .into_values()
                    .filter(|g| g.len() >= 2)
                    .filter_map(|g| {
                        let wild = self.clusters[g[0] as usize].wild | 1 << p;
                        let root = g.iter().copied().min()?;
                        self.general_enough(n, wild).then_some((root, wild))
                    })
                    .collect();
                merges.sort_unstable();
                for (root, wild) in merges {
                    if self.clusters[root as usize].parent == root {
                        self.generalise(root, wild, n);
                    }
                }
            }
        }
    }

    /// Merges into `root` every other live cluster of its bucket that it covers.
    fn absorb(&mut self, root: ClusterId, n: usize) {
        let Some(bucket) = self.buckets.get(&(n as u8)) else {
            return;
        };
        let r = &self.clusters[root as usize];
        let merged: Vec<ClusterId> = bucket
            .iter()
            .copied()
            .filter(|&id| {
                let c = &self.clusters[id as usize];
                id != root
                    && c.tokens
                        .iter()
                        .zip(r.tokens.iter())
                        .enumerate()
                        .all(|(p, (a, b))| r.wild >> p & 1 == 1 || (c.wild >> p & 1 == 0 && a == b))
            })
            .collect();
        if merged.is_empty() {
            return;
        }
        for c in &mut self.clusters {
            if merged.contains(&c.parent) {
                c.parent = root;
            }
        }
        if let Some(b) = self.buckets.get_mut(&(n as u8)) {
            b.retain(|id| !merged.contains(id));
        }
    }
}

/// The hash of a template with learned variables: its token hashes, a fixed marker at each
/// wildcard position, the token count and the wildcard positions. A pure function of what was
/// learned, so two nodes that learned the same positions of the same kind of message agree.
pub fn learned_hash(tokens: &[u64], wild: u64) -> u64 {
    const WILD: u64 = 0x5eed_0f5a_17ed_c0de;
    let mut h = 0x6c62_272e_07bb_0142u64 ^ wild.rotate_left(17) ^ (tokens.len() as u64);
    for (p, &t) in tokens.iter().enumerate() {
        let t = if wild >> p & 1 == 1 { WILD } else { t };
        h = (h ^ t).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

/// `template` with the tokens at the positions of `wild` replaced by the wildcard; the last
/// position stands for every token from there on (see [`MAX_TOKENS`]).
fn render(template: &str, wild: u64, n: usize) -> String {
    if n == 0 {
        return template.to_owned();
    }
    let mut out = String::with_capacity(template.len());
    for (i, tok) in template.split(' ').enumerate() {
        let p = i.min(MAX_TOKENS - 1);
        let is_wild = wild >> p & 1 == 1;
        if is_wild && i > p {
            // The folded tail is one wildcard, already written.
            continue;
        }
        if i > 0 {
            out.push(' ');
        }
        out.push_str(if is_wild { WILDCARD } else { tok });
    }
    out
}
