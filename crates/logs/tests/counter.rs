//! PatternCounter: levels, caps, unclassified overflow, sample bounds, memory.
#![allow(clippy::unwrap_used)]

use sonde_logs::{Level, PatternCounter, pattern_hash};
use std::collections::BTreeMap;

type Series = BTreeMap<(Level, Option<u64>), (String, u64)>;

fn series(c: &PatternCounter) -> Series {
    let mut m = BTreeMap::new();
    c.for_each(|l, h, s, n| {
        assert!(
            m.insert((l, h), (s.to_owned(), n)).is_none(),
            "duplicate series"
        );
    });
    m
}

#[test]
fn warning_and_above_keep_patterns_lower_levels_only_count() {
    let mut c = PatternCounter::new(256, 1024);
    c.observe("disk /dev/sda1 is 91% full", Level::Warning);
    c.observe("disk /dev/sdb2 is 95% full", Level::Warning);
    c.observe("disk /dev/sdb2 is 95% full", Level::Error);
    c.observe("request 1 served", Level::Info);
    c.observe("request 2 served", Level::Info);
    c.observe("x", Level::Debug);
    c.observe("y", Level::Unknown);
    let s = series(&c);
    let h = pattern_hash("disk /dev/sda1 is 91% full");
    assert_eq!(
        s[&(Level::Warning, Some(h))],
        ("disk /dev/sda1 is 91% full".to_owned(), 2)
    );
    assert_eq!(s[&(Level::Error, Some(h))].1, 1);
    assert_eq!(s[&(Level::Info, None)], (String::new(), 2));
    assert_eq!(s[&(Level::Debug, None)].1, 1);
    assert_eq!(s[&(Level::Unknown, None)].1, 1);
    assert_eq!(s.len(), 5);
    assert_eq!(c.patterns(), 2);
}

#[test]
fn cap_per_level_overflows_to_unclassified() {
    let mut c = PatternCounter::new(3, 64);
    let words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"];
    for w in words {
        c.observe(&format!("{w} failed"), Level::Error);
        c.observe(&format!("{w} failed"), Level::Error);
    }
    for w in &words[..3] {
        c.observe(&format!("{w} failed"), Level::Critical);
    }
    let s = series(&c);
    let errors: Vec<_> = s
        .iter()
        .filter(|(k, _)| k.0 == Level::Error && k.1.is_some())
        .collect();
    assert_eq!(errors.len(), 3);
    assert!(errors.iter().all(|(_, v)| v.1 == 2));
    // The first three patterns are kept and still counted; the rest count as unclassified.
    assert_eq!(s[&(Level::Error, None)], (String::new(), 6));
    c.observe("alpha failed", Level::Error);
    assert_eq!(
        series(&c)[&(Level::Error, Some(pattern_hash("alpha failed")))].1,
        3
    );
    // The cap is per level: critical has its own three.
    assert_eq!(
        s.iter()
            .filter(|(k, _)| k.0 == Level::Critical && k.1.is_some())
            .count(),
        3
    );
    assert!(!s.contains_key(&(Level::Critical, None)));
}

#[test]
fn samples_are_truncated_on_char_boundaries_and_memory_is_bounded() {
    let mut c = PatternCounter::new(256, 10);
    c.observe("ééééééééééééé", Level::Error); // 26 bytes
    let s = series(&c);
    let sample = &s.values().next().unwrap().0;
    assert_eq!(sample, "ééééé");
    let mut c = PatternCounter::new(256, 200);
    let empty = c.memory_bytes();
    for i in 0..100_000u32 {
        // Distinct words make distinct patterns: the worst case for memory.
        let w: String = i
            .to_string()
            .bytes()
            .map(|b| (b'a' + (b - b'0')) as char)
            .collect();
        c.observe(&format!("{w} {}", "z".repeat(1000)), Level::Critical);
        c.observe(&format!("{w} warn"), Level::Warning);
    }
    // Two-token messages never generalise (one constant of two is under the constant share),
    // so these stay distinct patterns: the worst case.
    assert_eq!(c.patterns(), 512);
    let used = c.memory_bytes();
    assert!(used > empty);
    // 512 patterns, each a sample of at most 200 bytes plus bookkeeping, plus the miner's
    // tables (768 clusters of 2 tokens, 1024 remembered templates).
    assert!(used < 512 * (200 + 128) + 160 * 1024, "memory {used}");
}

#[test]
fn order_does_not_change_the_result() {
    let msgs: Vec<String> = (0..500)
        .map(|i| format!("job {} failed with code {}", ["a", "b", "c"][i % 3], i))
        .collect();
    let mut a = PatternCounter::new(2, 100);
    let mut b = PatternCounter::new(2, 100);
    for m in &msgs {
        a.observe(m, Level::Error);
    }
    for m in msgs.iter().rev() {
        b.observe(m, Level::Error);
    }
    let (sa, sb) = (series(&a), series(&b));
    let keys = |s: &Series| s.iter().map(|(k, v)| (*k, v.1)).collect::<Vec<_>>();
    // Counts per pattern agree; only which message became the sample may differ.
    assert_eq!(keys(&sa), keys(&sb));
}
