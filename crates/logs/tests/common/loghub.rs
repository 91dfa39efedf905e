//! LogHub-2k loading and grouping accuracy, shared by tests/loghub.rs and examples/loghub_eval.rs.
//!
//! The data is ../shared/loghub beside the repository (CI puts /work/shared there), or
//! $SONDE_LOGHUB. When it is absent, [`systems`] says why and returns `None`, unless
//! `SONDE_REQUIRE_DATA=1` or `SONDE_REQUIRE_PRIVILEGED=1` is set: then a missing data set fails.
#![allow(dead_code, clippy::unwrap_used)]

use sonde_logs::{MinerConfig, PatternMiner};
use std::collections::HashMap;
use std::path::PathBuf;

pub fn data_dir() -> PathBuf {
    std::env::var_os("SONDE_LOGHUB")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/loghub"))
}

/// Splits CSV text into records of fields (RFC 4180 quoting).
pub fn csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let (mut row, mut field, mut quoted) = (Vec::new(), String::new(), false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => row.push(std::mem::take(&mut field)),
            ('\n', false) => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            ('\r', false) => {}
            _ => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

pub struct System {
    pub name: String,
    pub raw: Vec<String>,
    pub content: Vec<String>,
    pub truth: Vec<String>,
}

/// The 8 systems, sorted by name; `None` (after `test` is reported skipped, saying why) when
/// the data is absent and not required. Panics when it is required and absent.
pub fn systems(test: &str) -> Option<Vec<System>> {
    let dir = data_dir();
    if !dir.is_dir() {
        let why = format!(
            "LogHub data not found at {} (../shared/loghub beside the repository, or $SONDE_LOGHUB)",
            dir.display()
        );
        sonde_testsupport::skip(test, sonde_testsupport::Needs::Data, &why);
        return None;
    }
    let mut out = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .collect();
    names.sort_by_key(|e| e.file_name());
    for e in names {
        let name = e.file_name().to_string_lossy().into_owned();
        let structured =
            std::fs::read(e.path().join(format!("{name}_2k.log_structured.csv"))).unwrap();
        let rows = csv(&String::from_utf8_lossy(&structured));
        let header = &rows[0];
        let col = |n: &str| header.iter().position(|h| h == n).unwrap();
        let (ci, ei) = (col("Content"), col("EventId"));
        let rows = &rows[1..];
        let raw = std::fs::read(e.path().join(format!("{name}_2k.log"))).unwrap();
        let raw: Vec<String> = String::from_utf8_lossy(&raw)
            .lines()
            .take(rows.len())
            .map(str::to_owned)
            .collect();
        out.push(System {
            name,
            content: rows.iter().map(|r| r[ci].clone()).collect(),
            truth: rows.iter().map(|r| r[ei].clone()).collect(),
            raw,
        });
    }
    assert_eq!(
        out.len(),
        8,
        "expected the 8 LogHub-2k systems in {}",
        dir.display()
    );
    Some(out)
}

/// Grouping accuracy (Zhu et al. 2019): a line is right when its predicted group holds exactly
/// the lines of its true group.
pub fn ga(pred: &[u64], truth: &[String]) -> f64 {
    let mut pg: HashMap<u64, Vec<usize>> = HashMap::new();
    let mut tg: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, (p, t)) in pred.iter().zip(truth).enumerate() {
        pg.entry(*p).or_default().push(i);
        tg.entry(t).or_default().push(i);
    }
    let ok = pred
        .iter()
        .zip(truth)
        .filter(|(p, t)| pg[*p] == tg[t.as_str()])
        .count();
    ok as f64 / truth.len() as f64
}

/// Feeds `lines` in order to one fresh miner and returns each line's final pattern hash: the
/// hash of the cluster it was placed in, after every later merge (what the agent's counters
/// report once the whole log has been seen). Unplaced lines share hash 0 ("unclassified").
pub fn learned_hashes<S: AsRef<str>>(lines: &[S], cfg: MinerConfig) -> Vec<u64> {
    let mut m = PatternMiner::new(cfg);
    let ids: Vec<_> = lines.iter().map(|l| m.observe(l.as_ref())).collect();
    ids.iter().map(|id| id.map_or(0, |id| m.hash(id))).collect()
}

/// Caps large enough that no LogHub-2k system reaches them: accuracy, not bounds, is measured.
pub fn eval_config(min_values: usize, max_diff: usize, min_constant_share: f64) -> MinerConfig {
    MinerConfig {
        min_values,
        max_diff,
        min_constant_share,
        max_clusters: 100_000,
        max_shapes: 100_000,
    }
}

/// Every configuration tried: min_values 2..5 (and "never"), max_diff 1..3, share 0.4..0.7.
pub fn full_grid() -> Vec<MinerConfig> {
    let mut g = Vec::new();
    for k in [2, 3, 4, 5, 100_000] {
        for d in [1, 2, 3] {
            for s in [0.4, 0.5, 0.6, 0.7] {
                g.push(eval_config(k, d, s));
            }
        }
    }
    g
}

/// The tuning grid of the leave-one-system-out evaluation: the configurations of
/// [`full_grid`] that pass every failure class of the issue (tests/common/classes.rs, lines
/// written for the test, not LogHub). Requirements first, then the data chooses among the rest.
pub fn grid() -> Vec<MinerConfig> {
    full_grid()
        .into_iter()
        .filter(|c| crate::classes::all_pass(*c))
        .collect()
}

/// GA of every (config, system) on raw lines and on content: `scores[c][s] = (raw, content)`.
pub fn score_grid(systems: &[System], grid: &[MinerConfig]) -> Vec<Vec<(f64, f64)>> {
    grid.iter()
        .map(|&cfg| {
            systems
                .iter()
                .map(|s| {
                    (
                        ga(&learned_hashes(&s.raw, cfg), &s.truth),
                        ga(&learned_hashes(&s.content, cfg), &s.truth),
                    )
                })
                .collect()
        })
        .collect()
}

pub struct Loso {
    /// Per held-out system: (name, chosen config index, held-out raw, held-out content).
    pub rows: Vec<(String, usize, f64, f64)>,
    pub held_out_raw: f64,
    pub held_out_content: f64,
}

/// Leave-one-system-out: for each system, the config with the best mean of raw and content GA
/// over the other systems, scored on the held-out system.
pub fn loso(systems: &[System], grid: &[MinerConfig], scores: &[Vec<(f64, f64)>]) -> Loso {
    let n = systems.len();
    let mut rows = Vec::new();
    for held in 0..n {
        let mut best = (f64::MIN, 0);
        for (ci, row) in scores.iter().enumerate() {
            let m: f64 = (0..n)
                .filter(|&s| s != held)
                .map(|s| row[s].0 + row[s].1)
                .sum::<f64>();
            // Ties go to the more conservative configuration (merges less): decided before
            // looking at any score, since a wrong merge hides a kind of message and a split
            // only costs a series.
            let (g, b) = (&grid[ci], &grid[best.1]);
            let more_conservative = (g.min_values, std::cmp::Reverse(g.max_diff))
                > (b.min_values, std::cmp::Reverse(b.max_diff))
                || ((g.min_values, g.max_diff) == (b.min_values, b.max_diff)
                    && g.min_constant_share > b.min_constant_share);
            if m > best.0 + 1e-9 || ((m - best.0).abs() <= 1e-9 && more_conservative) {
                best = (m, ci);
            }
        }
        let (r, c) = scores[best.1][held];
        rows.push((systems[held].name.clone(), best.1, r, c));
    }
    let held_out_raw = rows.iter().map(|r| r.2).sum::<f64>() / n as f64;
    let held_out_content = rows.iter().map(|r| r.3).sum::<f64>() / n as f64;
    Loso {
        rows,
        held_out_raw,
        held_out_content,
    }
}
