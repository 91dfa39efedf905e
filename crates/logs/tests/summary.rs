//! `summarize`, the core of `sonde patterns`.
#![allow(clippy::unwrap_used)]

use sonde_logs::{hash_hex, pattern_hash, summarize};

#[test]
fn per_line_prints_one_hash_per_input_line_in_order() {
    let input = b"user 1 logged in\n\nuser 2 logged in\r\nbad \xff utf8\nno newline at end";
    let mut out = Vec::new();
    summarize(&input[..], true, &mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[0], hash_hex(pattern_hash("user 1 logged in")));
    assert_eq!(lines[0], lines[2]);
    assert_eq!(lines[1], hash_hex(pattern_hash("")));
    assert_eq!(lines[3], hash_hex(pattern_hash("bad \u{fffd} utf8")));
    assert!(
        lines
            .iter()
            .all(|l| l.len() == 16 && l.bytes().all(|b| b.is_ascii_hexdigit()))
    );
}

#[test]
fn summary_lists_patterns_most_frequent_first() {
    let log = "\
2024-01-01 10:00:00 INFO request 1 served
2024-01-01 10:00:01 ERROR db timeout after 30s
java.sql.SQLTimeoutException: timeout
\tat a.b.C.d(C.java:1)
2024-01-01 10:00:02 INFO request 2 served
2024-01-01 10:00:03 INFO request 3 served
";
    let mut out = Vec::new();
    summarize(log.as_bytes(), false, &mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "4 messages, 2 patterns");
    assert!(lines[1].trim_start().starts_with("3 info"), "{out}");
    assert!(
        lines[1].ends_with("2024-01-01 10:00:00 INFO request 1 served"),
        "{out}"
    );
    assert!(
        lines[2]
            .trim_start()
            .starts_with("pattern: <*> request <*> served"),
        "{out}"
    );
    assert!(lines[3].trim_start().starts_with("1 error"), "{out}");
    assert!(
        out.contains("java.sql.SQLTimeoutException"),
        "multi-line message kept whole: {out}"
    );
}

#[test]
fn learned_patterns_are_summed_and_rendered_with_their_variables() {
    let hosts = [
        "db-primary",
        "db-replica",
        "cache-main",
        "search-node",
        "mq-broker",
    ];
    let mut log = String::new();
    for h in hosts {
        log += &format!("Connection to {h} refused\nConnection to {h} refused\n");
    }
    let mut out = Vec::new();
    summarize(log.as_bytes(), false, &mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "10 messages, 1 patterns", "{out}");
    assert!(lines[1].trim_start().starts_with("10 "), "{out}");
    assert!(
        lines[1].ends_with("Connection to db-primary refused"),
        "{out}"
    );
    assert!(
        lines[2].trim_start() == "pattern: Connection to <*> refused",
        "{out}"
    );
    // Per line: every line gets the learned pattern, the first ones included.
    let mut out = Vec::new();
    summarize(log.as_bytes(), true, &mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    let hashes: Vec<&str> = out.lines().collect();
    assert_eq!(hashes.len(), 10);
    assert!(hashes.iter().all(|h| *h == hashes[0]), "{out}");
}
