//! The pure core of `sonde patterns`: a log in, its patterns out.

use crate::decode::MultilineJoiner;
use crate::level::{Level, detect_level};
use crate::miner::{hash_hex, pattern_hash, template};
use std::collections::HashMap;
use std::io::{self, BufRead, Write};

/// Longest message the summary joins (multi-line) and longest sample it prints.
const MAX_MESSAGE: usize = 64 * 1024;
const MAX_SAMPLE: usize = 1024;
const MAX_LINES: usize = 1000;
/// Distinct patterns the summary keeps; beyond, messages count as "unclassified".
const MAX_PATTERNS: usize = 100_000;

struct Pattern {
    count: u64,
    levels: [u64; 6],
    sample: String,
    template: String,
}

/// Reads a log and writes its patterns.
///
/// `per_line`: every input line is one message; writes one line per input line, in order, with
/// its pattern hash as 16 hex digits and nothing else (for scripts and evaluations).
/// Otherwise: multi-line messages are joined, and each pattern is written as
/// `count level hash sample` then an indented `pattern: template` line, most frequent first.
/// Invalid UTF-8 is replaced, never an error; only I/O errors are returned.
pub fn summarize(mut input: impl BufRead, per_line: bool, mut out: impl Write) -> io::Result<()> {
    let mut line = Vec::with_capacity(4096);
    if per_line {
        let mut hex = *b"0000000000000000\n";
        loop {
            line.clear();
            if input.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            let text = String::from_utf8_lossy(trim_nl(&line));
            let h = pattern_hash(&text);
            for (i, d) in hex[..16].iter_mut().enumerate() {
                *d = b"0123456789abcdef"[((h >> (60 - 4 * i)) & 0xf) as usize];
            }
            out.write_all(&hex)?;
        }
        return out.flush();
    }
    let mut patterns: HashMap<u64, Pattern> = HashMap::new();
    let mut unclassified = Pattern {
        count: 0,
        levels: [0; 6],
        sample: String::new(),
        template: String::new(),
    };
    let mut joiner = MultilineJoiner::new(MAX_MESSAGE, MAX_LINES);
    let mut add = |msg: String| {
        let level = detect_level(&msg);
        let h = pattern_hash(&msg);
        let full = patterns.len() >= MAX_PATTERNS;
        let p = match patterns.get_mut(&h) {
            Some(p) => p,
            None if full => &mut unclassified,
            None => patterns.entry(h).or_insert_with(|| Pattern {
                count: 0,
                levels: [0; 6],
                sample: crate::counter::truncate(&msg, MAX_SAMPLE).to_owned(),
                template: crate::counter::truncate(&template(&msg), MAX_SAMPLE).to_owned(),
            }),
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
            add(m);
        }
    }
    if let Some(m) = joiner.flush() {
        add(m);
    }
    let mut sorted: Vec<(&u64, &Pattern)> = patterns.iter().collect();
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
