//! The failure classes of issue 17, on lines written for this test (not LogHub): variables that
//! are plain words, host names, optional parts. Each case lists groups of lines; fed in order to
//! one miner, lines of one group must end with one pattern, lines of different groups with
//! different ones. Shared by tests/learn.rs (the default configuration passes every case) and the
//! LogHub tuning grid (only configurations that pass every case are candidates).
#![allow(dead_code)]

use sonde_logs::{MinerConfig, PatternMiner};

pub struct Case {
    pub name: &'static str,
    pub groups: Vec<Vec<String>>,
}

const USERS: [&str; 6] = ["webmaster", "admin", "oracle", "postgres", "guest", "test"];
const PEOPLE: [&str; 5] = ["alice", "bob", "carol", "dave", "erin"];
const HOSTS: [&str; 5] = [
    "db-primary",
    "db-replica",
    "cache-main",
    "search-node",
    "mq-broker",
];
const NODES: [&str; 5] = ["alpha", "bravo", "charlie", "delta", "echo"];

fn lines(f: impl Fn(usize, &str) -> String, values: &[&str]) -> Vec<String> {
    values.iter().enumerate().map(|(i, v)| f(i, v)).collect()
}

/// Interleaves groups line by line, so that learning sees them mixed as a real log would.
pub fn interleaved(groups: &[Vec<String>]) -> Vec<(usize, &str)> {
    let longest = groups.iter().map(Vec::len).max().unwrap_or(0);
    let mut out = Vec::new();
    for i in 0..longest {
        for (g, lines) in groups.iter().enumerate() {
            if let Some(l) = lines.get(i) {
                out.push((g, l.as_str()));
            }
        }
    }
    out
}

pub fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "user names (sshd, content only)",
            groups: vec![
                lines(|i, u| format!("Invalid user {u} from 10.0.{i}.1"), &USERS),
                lines(
                    |i, u| format!("Accepted password for {u} from 10.0.0.{i} port 4{i}22 ssh2"),
                    &PEOPLE,
                ),
            ],
        },
        Case {
            name: "user names, two verbs stay apart (opened/closed)",
            groups: vec![
                lines(|_, u| format!("session opened for user {u}"), &PEOPLE),
                lines(|_, u| format!("session closed for user {u}"), &PEOPLE),
            ],
        },
        Case {
            name: "database and queue names",
            groups: vec![
                lines(
                    |_, d| format!("FATAL: database \"{d}\" does not exist"),
                    &["orders", "billing", "users", "inventory", "audit"],
                ),
                lines(
                    |_, q| format!("consumer cancelled for queue {q}"),
                    &["emails", "invoices", "payments", "reports", "webhooks"],
                ),
            ],
        },
        Case {
            name: "host names inside the message",
            groups: vec![lines(|_, h| format!("Connection to {h} refused"), &HOSTS)],
        },
        Case {
            name: "host names as the first token (syslog-style prefix)",
            groups: vec![
                lines(
                    |i, h| format!("{h} sshd[{i}0{i}]: Server listening on 0.0.0.0 port 22."),
                    &NODES,
                ),
                lines(
                    |i, h| format!("{h} kernel: Out of memory: Killed process {i}42 (java)"),
                    &NODES,
                ),
            ],
        },
        Case {
            name: "FQDNs with and without ports",
            groups: vec![
                lines(
                    |i, h| format!("{h}.example.com:443 open through proxy proxy{i}.corp.local:8080 HTTPS"),
                    &NODES,
                ),
                lines(
                    |i, h| format!("Resolved {h}.internal.example.org to 10.1.2.{i}"),
                    &NODES,
                ),
            ],
        },
        Case {
            name: "optional and variable-length parts",
            groups: vec![
                vec![
                    "proxy.example.com:5070 close, 403 bytes sent, 426 bytes received, lifetime 00:01".into(),
                    "proxy.example.com:5070 close, 18846 bytes (18.4 KB) sent, 1054 bytes (1.02 KB) received, lifetime <1 sec".into(),
                    "proxy.example.com:5070 close, 0 bytes sent, 0 bytes received, lifetime 02:15".into(),
                    "proxy.example.com:5070 close, 451 bytes sent, 18846 bytes (18.4 KB) received, lifetime <1 sec".into(),
                ],
                vec![
                    "connection from 10.0.0.1 () at Fri Jun 17 07:07:00 2005".into(),
                    "connection from 10.0.0.2 (host-2.example.net) at Mon Jun 20 03:40:59 2005".into(),
                ],
            ],
        },
    ]
}

/// Final pattern hash of each line of the case (fed interleaved), by group.
pub fn run(case: &Case, cfg: MinerConfig) -> Vec<Vec<u64>> {
    let mut m = PatternMiner::new(cfg);
    let fed: Vec<(usize, Option<u32>)> = interleaved(&case.groups)
        .into_iter()
        .map(|(g, l)| (g, m.observe(l)))
        .collect();
    let mut out = vec![Vec::new(); case.groups.len()];
    for (g, id) in fed {
        out[g].push(id.map_or(0, |id| m.hash(id)));
    }
    out
}

/// Why the case fails under `cfg`, or `None` when it passes.
pub fn check(case: &Case, cfg: MinerConfig) -> Option<String> {
    let got = run(case, cfg);
    for (g, hashes) in got.iter().enumerate() {
        if hashes.iter().any(|h| *h != hashes[0]) {
            return Some(format!("{}: group {g} split: {hashes:x?}", case.name));
        }
        for (g2, other) in got.iter().enumerate().skip(g + 1) {
            if other[0] == hashes[0] {
                return Some(format!("{}: groups {g} and {g2} merged", case.name));
            }
        }
    }
    None
}

/// Whether `cfg` passes every failure class.
pub fn all_pass(cfg: MinerConfig) -> bool {
    cases().iter().all(|c| check(c, cfg).is_none())
}
