//! Accuracy on LogHub-2k (../shared/loghub beside the repository, or $SONDE_LOGHUB): grouping
//! accuracy >= 0.90 on raw lines and on message content, with one configuration for all systems,
//! and hash stability across input orders. Skips, saying why, when the data is absent.
#![allow(clippy::unwrap_used)]

use sonde_logs::pattern_hash;
use std::collections::HashMap;
use std::path::PathBuf;

fn data_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("SONDE_LOGHUB")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/loghub")
        });
    dir.is_dir().then_some(dir)
}

/// Splits CSV text into records of fields (RFC 4180 quoting).
fn csv(text: &str) -> Vec<Vec<String>> {
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

struct System {
    name: String,
    raw: Vec<String>,
    content: Vec<String>,
    truth: Vec<String>,
}

fn systems() -> Option<Vec<System>> {
    let dir = data_dir()?;
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
    Some(out)
}

/// Grouping accuracy (Zhu et al. 2019): a line is right when its predicted group holds exactly
/// the lines of its true group.
fn ga(pred: &[u64], truth: &[String]) -> f64 {
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

#[test]
fn grouping_accuracy_on_loghub() {
    let Some(systems) = systems() else {
        eprintln!("skipping: LogHub data not found (../shared/loghub or $SONDE_LOGHUB)");
        return;
    };
    assert!(!systems.is_empty());
    let (mut raw_sum, mut content_sum) = (0.0, 0.0);
    for s in &systems {
        let raw: Vec<u64> = s.raw.iter().map(|l| pattern_hash(l)).collect();
        let content: Vec<u64> = s.content.iter().map(|l| pattern_hash(l)).collect();
        let (gr, gc) = (ga(&raw, &s.truth), ga(&content, &s.truth));
        eprintln!("{:12} GA raw {gr:.3} content {gc:.3}", s.name);
        raw_sum += gr;
        content_sum += gc;
    }
    let n = systems.len() as f64;
    eprintln!(
        "average GA raw {:.3} content {:.3}",
        raw_sum / n,
        content_sum / n
    );
    assert!(
        raw_sum / n >= 0.90,
        "average GA on raw lines {:.3}",
        raw_sum / n
    );
    assert!(
        content_sum / n >= 0.90,
        "average GA on content {:.3}",
        content_sum / n
    );
}

#[test]
fn hashes_do_not_depend_on_order() {
    let Some(systems) = systems() else {
        eprintln!("skipping: LogHub data not found (../shared/loghub or $SONDE_LOGHUB)");
        return;
    };
    let lines: Vec<&str> = systems
        .iter()
        .flat_map(|s| s.raw.iter().map(String::as_str))
        .collect();
    let forward: Vec<u64> = lines.iter().map(|l| pattern_hash(l)).collect();
    // A deterministic shuffle (xorshift Fisher-Yates), then hash in that order.
    let mut order: Vec<usize> = (0..lines.len()).collect();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for i in (1..order.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, (x % (i as u64 + 1)) as usize);
    }
    let mut shuffled = vec![0u64; lines.len()];
    for &i in &order {
        shuffled[i] = pattern_hash(lines[i]);
    }
    let same = forward
        .iter()
        .zip(&shuffled)
        .filter(|(a, b)| a == b)
        .count();
    let share = same as f64 / lines.len() as f64;
    eprintln!(
        "same hash in both orders: {same}/{} = {share:.4}",
        lines.len()
    );
    assert!(share >= 0.99, "{share}");
}
