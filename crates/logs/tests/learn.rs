//! The learning miner on lines written for these tests: each failure class of issue 17, the
//! evidence threshold, how counts move when a pattern generalises, bounds and memory.
#![allow(clippy::unwrap_used)]

#[path = "common/classes.rs"]
mod classes;

use sonde_logs::learn::learned_hash;
use sonde_logs::{Level, MinerConfig, PatternCounter, PatternMiner, pattern_hash, template};
use std::collections::BTreeMap;

#[test]
fn every_failure_class_is_handled_by_the_default_configuration() {
    let cfg = MinerConfig::default();
    let mut failures = Vec::new();
    for case in classes::cases() {
        match classes::check(&case, cfg) {
            None => eprintln!("ok: {}", case.name),
            Some(why) => failures.push(why),
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn masking_alone_fails_the_word_classes() {
    // What the classes are about: without learning, each user name is its own pattern.
    let a = pattern_hash("Invalid user webmaster from 10.0.0.1");
    let b = pattern_hash("Invalid user admin from 10.0.0.2");
    assert_ne!(a, b);
    // Optional parts are masking's job and hold without learning.
    assert_eq!(
        template("close, 403 bytes sent, lifetime 00:01"),
        template("close, 18846 bytes (18.4 KB) sent, lifetime <1 sec")
    );
}

/// Feeds lines and returns the final hash of each.
fn final_hashes(m: &mut PatternMiner, lines: &[String]) -> Vec<u64> {
    let ids: Vec<_> = lines.iter().map(|l| m.observe(l).unwrap()).collect();
    ids.iter().map(|&id| m.hash(id)).collect()
}

#[test]
fn a_position_becomes_variable_at_min_values_distinct_values() {
    let hosts = [
        "db-primary",
        "db-replica",
        "cache-main",
        "search-node",
        "mq-broker",
    ];
    let lines: Vec<String> = hosts
        .iter()
        .map(|h| format!("Connection to {h} refused"))
        .collect();
    let cfg = MinerConfig::default();
    assert_eq!(cfg.min_values, 5);
    // Four values: four patterns, each still the pure hash of its message.
    let mut m = PatternMiner::new(cfg);
    let four = final_hashes(&mut m, &lines[..4]);
    for (h, l) in four.iter().zip(&lines) {
        assert_eq!(*h, pattern_hash(l));
    }
    assert_eq!(m.live_clusters(), 4);
    // The fifth: one pattern for all five, earlier lines included.
    let mut m = PatternMiner::new(cfg);
    let five = final_hashes(&mut m, &lines);
    assert!(five.iter().all(|h| *h == five[0]), "{five:x?}");
    assert_eq!(m.live_clusters(), 1);
    let id = m.observe("Connection to anything-else refused").unwrap();
    assert_eq!(m.hash(id), five[0]);
    assert_eq!(
        m.render(id, &template("Connection to db-primary refused")),
        "Connection to <*> refused"
    );
    // The learned hash is a function of what was learned: recomputable from the tokens.
    let mut fresh = PatternMiner::new(cfg);
    let again = final_hashes(&mut fresh, &lines.iter().rev().cloned().collect::<Vec<_>>());
    assert_eq!(again[0], five[0], "another order, same learned pattern");
    let _ = learned_hash; // public for anyone recomputing hashes (docs/logs.md)
}

#[test]
fn two_alternating_words_stay_two_patterns() {
    let mut m = PatternMiner::default();
    let mut lines = Vec::new();
    for i in 0..50 {
        let verb = if i % 2 == 0 { "Starting" } else { "Stopping" };
        lines.push(format!("{verb} worker pool {i}"));
    }
    let h = final_hashes(&mut m, &lines);
    assert_ne!(h[0], h[1]);
    assert!(h.iter().step_by(2).all(|x| *x == h[0]));
}

#[test]
fn a_key_learned_in_one_template_applies_to_others() {
    // "user" is a seed key: two values after it make a variable.
    let mut m = PatternMiner::default();
    let h = final_hashes(
        &mut m,
        &[
            "session opened for user cyrus".to_owned(),
            "session opened for user news".to_owned(),
        ],
    );
    assert_eq!(h[0], h[1]);
    // A learned key: five values after "via" in one template teach "via", then two values
    // after "via" suffice in another template.
    let mut m = PatternMiner::default();
    let routes = ["north", "south", "east", "west", "up"];
    let mut lines: Vec<String> = routes
        .iter()
        .map(|r| format!("packet sent via {r} link"))
        .collect();
    lines.push("reply lost via east gate".to_owned());
    lines.push("reply lost via west gate".to_owned());
    let h = final_hashes(&mut m, &lines);
    assert!(h[..5].iter().all(|x| *x == h[0]));
    assert_eq!(h[5], h[6]);
    assert_ne!(h[0], h[5]);
}

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
fn counts_move_into_the_generalised_pattern_and_the_total_stays_exact() {
    let hosts = [
        "db-primary",
        "db-replica",
        "cache-main",
        "search-node",
        "mq-broker",
    ];
    let mut c = PatternCounter::new(256, 1024);
    // Three messages each for four hosts: four patterns of 3.
    for _ in 0..3 {
        for h in &hosts[..4] {
            c.observe(&format!("Connection to {h} refused"), Level::Error);
        }
    }
    c.observe("Connection to db-primary refused", Level::Warning);
    let s = series(&c);
    assert_eq!(s.len(), 5);
    assert_eq!(
        s[&(
            Level::Error,
            Some(pattern_hash("Connection to db-replica refused"))
        )],
        ("Connection to db-replica refused".to_owned(), 3)
    );
    // The fifth host generalises the position: one pattern per level, every count carried
    // over, the sample the oldest message's.
    c.observe("Connection to mq-broker refused", Level::Error);
    let s = series(&c);
    assert_eq!(s.len(), 2, "{s:?}");
    let (k, v) = s.iter().find(|(k, _)| k.0 == Level::Error).unwrap();
    assert_eq!(v, &("Connection to db-primary refused".to_owned(), 13));
    assert_ne!(k.1, Some(pattern_hash("Connection to db-primary refused")));
    let w = s.iter().find(|(k, _)| k.0 == Level::Warning).unwrap();
    assert_eq!(w.1.1, 1);
    assert_eq!(w.0.1, k.1, "one pattern, one hash, at every level");
    let total: u64 = s.values().map(|v| v.1).sum();
    assert_eq!(total, 14);
    assert_eq!(c.patterns(), 2);
}

#[test]
fn the_miner_is_bounded_and_unplaced_messages_are_counted() {
    let cfg = MinerConfig {
        max_clusters: 10,
        max_shapes: 20,
        ..MinerConfig::default()
    };
    let mut m = PatternMiner::new(cfg);
    let mut placed = 0;
    for i in 0..1000u32 {
        // Three words vary together: never generalised, so each is a new cluster.
        let w: String = i
            .to_string()
            .bytes()
            .map(|b| (b'a' + b - b'0') as char)
            .collect();
        let line = format!("alpha{w} bravo{w} charlie{w} delta");
        placed += usize::from(m.observe(&line).is_some());
    }
    assert_eq!(placed, 10);
    assert_eq!(m.clusters(), 10);
    assert_eq!(m.unclassified(), 990);
    // Beyond the shape table, known clusters are still found (by scanning).
    let mut m = PatternMiner::new(cfg);
    for i in 0..100 {
        let host: String = ["aa", "bb", "cc", "dd", "ee", "ff", "gg"][i % 7].repeat(1 + i / 7);
        m.observe(&format!("Connection to {host} refused"));
    }
    assert_eq!(m.live_clusters(), 1);
    assert!(m.memory_bytes() < 16 * 1024, "{}", m.memory_bytes());
}

#[test]
fn memory_of_silent_and_busy_miners() {
    // Silent: nothing allocated until the first message.
    let silent = PatternCounter::new(256, 4096);
    let silent_bytes = silent.memory_bytes();
    assert!(silent_bytes <= 512, "{silent_bytes}");
    // Busy: 60 kinds of message (20 with a word variable), 100 each, warning level.
    let mut busy = PatternCounter::new(256, 4096);
    let names = ["ann", "ben", "cat", "dan", "eve", "fay", "gus", "hal"];
    for i in 0..6000usize {
        let kind = i % 60;
        let word: String = format!("{kind:02}")
            .bytes()
            .map(|b| (b'a' + b - b'0') as char)
            .collect();
        let msg = if kind < 20 {
            format!(
                "job{word} rejected for tenant {} after {i} ms",
                names[i % names.len()]
            )
        } else {
            format!("disk{word} check failed on {i} sectors with status {word}")
        };
        busy.observe(&msg, Level::Warning);
    }
    let total: u64 = series(&busy).values().map(|v| v.1).sum();
    assert_eq!(total, 6000);
    assert_eq!(busy.patterns(), 60);
    let busy_bytes = busy.memory_bytes();
    println!(
        "PatternCounter memory: silent {silent_bytes} bytes, busy (60 patterns) {busy_bytes} bytes"
    );
    assert!(busy_bytes < 60 * 1024, "{busy_bytes}");
}

/// Pseudo-random logs (xorshift, fixed seed) from a small vocabulary, 1 to 60 tokens (beyond
/// the 48 compared positions), with keys, brackets, numbers and repeats, so that merges, learned
/// keys, consolidation, tail folding and the caps all happen: no panic, every message counted
/// exactly once, the caps held.
#[test]
fn random_logs_are_counted_exactly_once_within_bounds() {
    const WORDS: [&str; 24] = [
        "user", "alice", "bob", "carol", "to", "from", "failed", "ok", "[a b]", "(x)", "=", "k=v",
        "db", "queue", "x1", "42", "host", "é", "\"q\"", "<1", "sec", "KB", "()", "node",
    ];
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let levels = [Level::Critical, Level::Error, Level::Warning, Level::Info];
    for cap in [1usize, 8, 256] {
        let mut c = PatternCounter::new(cap, 32);
        let mut templates: Vec<Vec<&str>> = Vec::new();
        let n = 20_000;
        for _ in 0..n {
            // Mostly repeats of earlier templates with one word changed, sometimes new ones.
            let r = next();
            let words = if !templates.is_empty() && r % 4 != 0 {
                let mut t = templates[(r as usize / 4) % templates.len()].clone();
                let p = (next() as usize) % t.len();
                t[p] = WORDS[(next() as usize) % WORDS.len()];
                t
            } else {
                let len = 1 + (next() as usize) % 60;
                let t: Vec<&str> = (0..len)
                    .map(|_| WORDS[(next() as usize) % WORDS.len()])
                    .collect();
                if templates.len() < 200 {
                    templates.push(t.clone());
                }
                t
            };
            c.observe(&words.join(" "), levels[(next() as usize) % levels.len()]);
        }
        let mut total = 0;
        let mut per_level = [0usize; 6];
        c.for_each(|l, h, s, k| {
            total += k;
            if h.is_some() {
                per_level[l as usize] += 1;
            }
            assert!(s.len() <= 32);
        });
        assert_eq!(total, n, "cap {cap}");
        assert!(
            per_level.iter().all(|&p| p <= cap),
            "cap {cap}: {per_level:?}"
        );
        assert!(c.miner().clusters() <= 3 * cap);
        println!(
            "cap {cap}: {} patterns, {} clusters ({} live), {} bytes",
            c.patterns(),
            c.miner().clusters(),
            c.miner().live_clusters(),
            c.memory_bytes()
        );
    }
}
