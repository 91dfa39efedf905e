//! LogHub-2k accuracy of the learning miner: per-system GA of one configuration, and the
//! leave-one-system-out table (tune on 7 systems, score the 8th, for each).
//!
//! `cargo run --release -p sonde-logs --example loghub_eval [K D SHARE]`
//! (data: ../shared/loghub beside the repository, or $SONDE_LOGHUB).
#![allow(clippy::unwrap_used)]

#[path = "../tests/common/classes.rs"]
mod classes;
#[path = "../tests/common/loghub.rs"]
mod loghub;

use sonde_logs::MinerConfig;

fn main() {
    let Some(systems) = loghub::systems("loghub_eval") else {
        return;
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cfg = if args.len() == 3 {
        loghub::eval_config(
            args[0].parse().unwrap(),
            args[1].parse().unwrap(),
            args[2].parse().unwrap(),
        )
    } else {
        let d = MinerConfig::default();
        loghub::eval_config(d.min_values, d.max_diff, d.min_constant_share)
    };
    println!("config {cfg:?}");
    let (mut r, mut c) = (0.0, 0.0);
    for s in &systems {
        let gr = loghub::ga(&loghub::learned_hashes(&s.raw, cfg), &s.truth);
        let gc = loghub::ga(&loghub::learned_hashes(&s.content, cfg), &s.truth);
        let gm = loghub::ga(
            &s.raw
                .iter()
                .map(|l| sonde_logs::pattern_hash(l))
                .collect::<Vec<_>>(),
            &s.truth,
        );
        println!(
            "{:12} raw {gr:.3} content {gc:.3}  (masking only, raw {gm:.3})",
            s.name
        );
        r += gr;
        c += gc;
    }
    let n = systems.len() as f64;
    println!("average      raw {:.3} content {:.3}", r / n, c / n);
    if std::env::var_os("HALVES").is_some() {
        halves(&systems, cfg);
        return;
    }
    if std::env::var_os("DEBUG").is_some() {
        debug(&systems, cfg);
        return;
    }
    let grid = if std::env::var_os("FULL").is_some() {
        loghub::full_grid()
    } else {
        loghub::grid()
    };
    for c in classes::cases() {
        if let Some(why) = classes::check(&c, cfg) {
            println!("failure class not handled: {why}");
        }
    }
    let scores = loghub::score_grid(&systems, &grid);
    if std::env::var_os("GRID").is_some() {
        for (g, row) in grid.iter().zip(&scores) {
            let a = row.iter().fold((0.0, 0.0), |a, x| (a.0 + x.0, a.1 + x.1));
            let per: Vec<String> = row
                .iter()
                .map(|x| format!("{:.2}/{:.2}", x.0, x.1))
                .collect();
            println!(
                "K={} D={} share={}: raw {:.3} content {:.3}  {}",
                g.min_values,
                g.max_diff,
                g.min_constant_share,
                a.0 / n,
                a.1 / n,
                per.join(" ")
            );
        }
    }
    let l = loghub::loso(&systems, &grid, &scores);
    println!("\nleave-one-system-out over {} configs:", grid.len());
    for (name, ci, r, c) in &l.rows {
        let g = grid[*ci];
        let ins = scores[*ci]
            .iter()
            .fold((0.0, 0.0), |a, x| (a.0 + x.0, a.1 + x.1));
        println!(
            "{name:12} chosen K={} D={} share={}: held-out raw {r:.3} content {c:.3} | same config in-sample avg raw {:.3} content {:.3}",
            g.min_values,
            g.max_diff,
            g.min_constant_share,
            ins.0 / n,
            ins.1 / n
        );
    }
    println!(
        "held-out average raw {:.3} content {:.3}",
        l.held_out_raw, l.held_out_content
    );
    let best = scores
        .iter()
        .enumerate()
        .map(|(i, row)| (i, row.iter().map(|x| x.0 + x.1).sum::<f64>()))
        .fold((0, f64::MIN), |a, b| if b.1 > a.1 + 1e-12 { b } else { a });
    let ins = scores[best.0]
        .iter()
        .fold((0.0, 0.0), |a, x| (a.0 + x.0, a.1 + x.1));
    println!(
        "in-sample best config {:?}: average raw {:.3} content {:.3}",
        grid[best.0],
        ins.0 / n,
        ins.1 / n
    );
}

/// `DEBUG=System`: prints the true groups the configuration gets wrong, with sample lines.
#[allow(dead_code)]
fn debug(systems: &[loghub::System], cfg: MinerConfig) {
    use std::collections::BTreeMap;
    let Ok(name) = std::env::var("DEBUG") else {
        return;
    };
    let Some(s) = systems.iter().find(|s| s.name == name) else {
        return;
    };
    let lines = if std::env::var_os("CONTENT").is_some() {
        &s.content
    } else {
        &s.raw
    };
    let pred = loghub::learned_hashes(lines, cfg);
    let mut by_truth: BTreeMap<&str, BTreeMap<u64, Vec<usize>>> = BTreeMap::new();
    let mut by_pred: BTreeMap<u64, std::collections::BTreeSet<&str>> = BTreeMap::new();
    for (i, (p, t)) in pred.iter().zip(&s.truth).enumerate() {
        by_truth
            .entry(t)
            .or_default()
            .entry(*p)
            .or_default()
            .push(i);
        by_pred.entry(*p).or_default().insert(t);
    }
    for (t, groups) in &by_truth {
        let merged = groups.keys().any(|p| by_pred[p].len() > 1);
        if groups.len() > 1 || merged {
            let n: usize = groups.values().map(Vec::len).sum();
            println!(
                "== {t} ({n} lines) split into {} merged={merged}",
                groups.len()
            );
            for (p, idx) in groups.iter().take(4) {
                println!(
                    "   {p:016x} x{} others={:?}: {}",
                    idx.len(),
                    by_pred[p]
                        .iter()
                        .filter(|x| *x != t)
                        .take(3)
                        .collect::<Vec<_>>(),
                    lines[idx[0]]
                );
            }
        }
    }
}

/// `HALVES=System`: per template, the hashes each half gives (for the stability rule).
#[allow(dead_code)]
fn halves(systems: &[loghub::System], cfg: MinerConfig) {
    use std::collections::BTreeMap;
    let Ok(name) = std::env::var("HALVES") else {
        return;
    };
    let Some(s) = systems.iter().find(|s| s.name == name) else {
        return;
    };
    let half = s.raw.len() / 2;
    let a = loghub::learned_hashes(&s.raw[..half], cfg);
    let b = loghub::learned_hashes(&s.raw[half..], cfg);
    type Halves = (BTreeMap<u64, usize>, BTreeMap<u64, usize>, usize);
    let mut t: BTreeMap<&str, Halves> = BTreeMap::new();
    for (i, h) in a.iter().chain(&b).enumerate() {
        let e = t.entry(&s.truth[i]).or_default();
        if i < half {
            *e.0.entry(*h).or_default() += 1
        } else {
            *e.1.entry(*h).or_default() += 1
        }
        e.2 = i;
    }
    for (k, (x, y, i)) in t {
        if !x.is_empty()
            && !y.is_empty()
            && (x.keys().any(|k| !y.contains_key(k)) || y.keys().any(|k| !x.contains_key(k)))
        {
            println!("{k}: A {x:x?} B {y:x?}  {}", s.raw[i]);
        }
    }
}
