//! The pure core of `sonde patterns`: a log in, its patterns out.

use crate::decode::MultilineJoiner;
use crate::learn::{ClusterId, MinerConfig, PatternMiner};
use crate::level::{Level, detect_level};
use crate::miner::{hash_hex, template};
use std::collections::HashMap;
use std::io::{self, BufRead, Write};

/// Longest message the summary joins (multi-line) and longest sample it prints.
const MAX_MESSAGE: usize = 64 * 1024;
const MAX_SAMPLE: usize = 1024;
const MAX_LINES: usize = 1000;
/// Distinct patterns the summary keeps; beyond, messages count as "unclassified".
const MAX_PATTERNS: usize = 100_000;

fn miner() -> PatternMiner {
    PatternMiner::new(MinerConfig {
        max_clusters: MAX_PATTERNS,
        max_shapes: 4 * MAX_PATTERNS,
        ..MinerConfig::default()
    })
}

struct Pattern {
    count: u64,
    levels: [u64; 6],
    sample: String,
    template: String,
}

/// Reads a log and writes its patterns, mined by the learning [`PatternMiner`] (default
/// configuration, the agent's).
///
/// `per_line`: every input line is one message; writes one line per input line, in order, with
/// its pattern hash as 16 hex digits and nothing else (for scripts and evaluations). The hash is
/// the line's pattern after the whole input was learned (as the agent's counters report it once
/// it has seen the log), so the output starts after the input ends and holds 8 bytes per line.
/// Otherwise: multi-line messages are joined, and each pattern is written as
/// `count level hash sample` then an indented `pattern: template` line, most frequent first.
/// Invalid UTF-8 is replaced, never an error; only I/O errors are returned.
pub fn summarize(mut input: impl BufRead, per_line: bool, mut out: impl Write) -> io::Result<()> {
    let mut line = Vec::with_capacity(4096);
    let mut miner = miner();
    if per_line {
        let mut ids: Vec<Option<ClusterId>> = Vec::new();
        loop {
            line.clear();
            if input.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            ids.push(miner.observe(&String::from_utf8_lossy(trim_nl(&line))));
        }
        let mut hex = *b"0000000000000000\n";
        for id in ids {
            // Unplaced lines (the table full) share hash 0, as the agent's "unclassified".
            let h = id.map_or(0, |id| miner.hash(id));
            for (i, d) in hex[..16].iter_mut().enumerate() {
                *d = b"0123456789abcdef"[((h >> (60 - 4 * i)) & 0xf) as usize];
            }
            out.write_all(&hex)?;
        }
        return out.flush();
    }
    let mut patterns: HashMap<ClusterId, Pattern> = HashMap::new();
    let mut unclassified = Pattern {
        count: 0,
        levels: [0; 6],
        sample: String::new(),
        template: String::new(),
    };
    let mut joiner = MultilineJoiner::new(MAX_MESSAGE, MAX_LINES);
    let mut add = |msg: String, miner: &mut PatternMiner| {
        let level = detect_level(&msg);
        let p = match miner.observe(&msg) {
            Some(id) => patterns.entry(id).or_insert_with(|| Pattern {
                count: 0,
                levels: [0; 6],
                sample: crate::counter::truncate(&msg, MAX_SAMPLE).to_owned(),
                template: crate::counter::truncate(&template(&msg), MAX_SAMPLE).to_owned(),
            }),
            None => &mut unclassified,
        };
        p.count += 1;
        p.levels[level as usize] += 1;
    };
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        let text = String::from_utf8_lossy(trim_nl(&line));
        if let Some(m) = joiner.push(&text) {
            add(m, &mut miner);
        }
    }
    if let Some(m) = joiner.flush() {
        add(m, &mut miner);
    }
    // Clusters merged while learning are one pattern now: add them up under the live one (the
    // oldest cluster's sample and template, rendered with what was learned).
    let mut merged: HashMap<u64, (ClusterId, Pattern)> = HashMap::new();
    let mut ids: Vec<ClusterId> = patterns.keys().copied().collect();
    ids.sort_unstable();
    for id in ids {
        let Some(p) = patterns.remove(&id) else {
            continue;
        };
        match merged.entry(miner.hash(id)) {
            std::collections::hash_map::Entry::Occupied(mut e) => {
                let q = &mut e.get_mut().1;
                q.count += p.count;
                for (a, b) in q.levels.iter_mut().zip(p.levels) {
                    *a += b;
                }
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert((id, p));
            }
        }
    }
    for (id, p) in merged.values_mut() {
        p.template = miner.render(*id, &p.template);
    }
    let mut sorted: Vec<(&u64, &Pattern)> = merged.iter().map(|(h, (_, p))| (h, p)).collect();
    sorted.sort_by(|a, b| b.1.count.cmp(&a.1.count).then(a.0.cmp(b.0)));
    let total: u64 = sorted.iter().map(|p| p.1.count).sum::<u64>() + unclassified.count;
    writeln!(out, "{} messages, {} patterns", total, sorted.len())?;
    for (h, p) in sorted {
        write_pattern(&mut out, &hash_hex(*h), p)?;
    }
    if unclassified.count > 0 {
        write_pattern(&mut out, "unclassified", &unclassified)?;
    }
    out.flush()
}

fn write_pattern(out: &mut impl Write, hash: &str, p: &Pattern) -> io::Result<()> {
    // The level shown is the most frequent among the pattern's messages.
    let mut level = Level::Unknown;
    let mut best = 0;
    for l in Level::ALL {
        if p.levels[l as usize] > best {
            best = p.levels[l as usize];
            level = l;
        }
    }
    let sample = p
        .sample
        .replace('\n', "\n                                       ");
    writeln!(
        out,
        "{:>9} {:<8} {:>16}  {}",
        p.count,
        level.as_str(),
        hash,
        sample
    )?;
    if !p.template.is_empty() {
        writeln!(
            out,
            "{:>9} {:<8} {:>16}  pattern: {}",
            "", "", "", p.template
        )?;
    }
    Ok(())
}

fn trim_nl(mut line: &[u8]) -> &[u8] {
    while let [rest @ .., b'\n' | b'\r'] = line {
        line = rest;
    }
    line
}
