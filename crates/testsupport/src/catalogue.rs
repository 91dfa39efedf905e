//! The check that no metric is declared and never rendered.
//!
//! The catalogue (crates/exporter/src/catalogue.rs and catalogue/) declares each metric with `metric!(IDENT,
//! "name", Kind, "help")`. Declaring one does not make it exported: a static nobody renders
//! compiles without a warning (it is `pub`). Two checks catch that:
//! - [`unreferenced`]: every entry's identifier is used by some source other than the
//!   catalogue (the render code names the entry it renders). Needs no root.
//! - [`check_scrape`]: a real agent's scrape holds every entry of a prefix, except the entries
//!   whose `// scrape-condition: <when>` comment (the line before their `metric!(`) says when
//!   they appear; those must then be exactly the missing ones, so a stale comment fails too.
//!   An entry with a `// scrape-optional: <when>` comment appears once something happened that
//!   a test machine may or may not see (a runtime lookup, a read error): the scrape check leaves
//!   it out, and only [`unreferenced`] and the type system (its typed counters are rendered by
//!   an exhaustive destructuring) guard it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The comment that documents when an entry appears in a scrape, on the line(s) right before
/// its `metric!(`.
pub const CONDITION_MARKER: &str = "// scrape-condition:";

/// The comment of an entry that may or may not be in a test's scrape (see the module doc).
pub const OPTIONAL_MARKER: &str = "// scrape-optional:";

/// One `metric!` entry of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The static's name (`SONDE_LOG_ROTATIONS`).
    pub ident: String,
    /// The metric name (`sonde_log_rotations_total`).
    pub name: String,
    /// When the entry appears in a scrape, if not always.
    pub condition: Option<String>,
    /// Whether the condition is a `scrape-optional` one (not checked against a scrape).
    pub optional: bool,
}

/// The sonde workspace's root (this crate is crates/testsupport).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The catalogue source file.
pub fn catalogue_path() -> PathBuf {
    workspace_root().join("crates/exporter/src/catalogue.rs")
}

/// The catalogue's files: catalogue.rs and its submodules (catalogue/l7.rs ...), sorted.
pub fn catalogue_paths() -> std::io::Result<Vec<PathBuf>> {
    let mut paths = vec![catalogue_path()];
    let dir = workspace_root().join("crates/exporter/src/catalogue");
    if dir.is_dir() {
        let mut subs: Vec<PathBuf> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "rs"))
            .collect();
        subs.sort();
        paths.extend(subs);
    }
    Ok(paths)
}

/// The whole catalogue's source: its files one after the other.
pub fn catalogue_source() -> std::io::Result<String> {
    let mut src = String::new();
    for p in catalogue_paths()? {
        src.push_str(&std::fs::read_to_string(p)?);
        src.push('\n');
    }
    Ok(src)
}

/// The entries of a catalogue source, in order. Errors on an entry whose identifier or name
/// cannot be read and on a condition comment that is not followed by an entry.
pub fn parse(src: &str) -> Result<Vec<Entry>, String> {
    let mut entries = Vec::new();
    let mut condition: Option<String> = None;
    let mut optional = false;
    let mut lines = src.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        let trimmed = line.trim();
        let marked = match trimmed.strip_prefix(OPTIONAL_MARKER) {
            Some(c) => {
                optional = true;
                Some(c)
            }
            None => trimmed.strip_prefix(CONDITION_MARKER),
        };
        if let Some(c) = marked {
            // A condition may continue over several marker lines.
            let c = c.trim();
            condition = Some(match condition.take() {
                Some(prev) => format!("{prev} {c}"),
                None => c.to_owned(),
            });
            continue;
        }
        if !line.starts_with("metric!(") {
            if condition.is_some() && !trimmed.is_empty() && !trimmed.starts_with("//") {
                return Err(format!(
                    "line {}: a {CONDITION_MARKER} comment not followed by metric!(",
                    n + 1
                ));
            }
            continue;
        }
        let mut text = line.to_owned();
        while !text.trim_end().ends_with(");") {
            let Some((_, more)) = lines.next() else {
                return Err(format!("line {}: unterminated metric!(", n + 1));
            };
            text.push('\n');
            text.push_str(more);
        }
        let body = &text["metric!(".len()..];
        let ident = body.split(',').next().unwrap_or("").trim().to_owned();
        let name = body.split('"').nth(1).unwrap_or("").to_owned();
        if ident.is_empty() || !ident.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("line {}: cannot read the identifier", n + 1));
        }
        if name.is_empty() {
            return Err(format!("line {}: cannot read the metric name", n + 1));
        }
        entries.push(Entry {
            ident,
            name,
            condition: condition.take(),
            optional: std::mem::take(&mut optional),
        });
    }
    if condition.is_some() {
        return Err(format!("a trailing {CONDITION_MARKER} comment"));
    }
    Ok(entries)
}

/// Whether `ident` occurs in `text` as a whole identifier.
fn mentions(text: &str, ident: &str) -> bool {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(ident).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + ident.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

/// `text` without its `//` comments: a comment naming an entry renders nothing.
fn code_only(text: &str) -> String {
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The entries no source in `sources` names outside comments: declared, never rendered.
pub fn unreferenced<'a>(entries: &'a [Entry], sources: &[String]) -> Vec<&'a Entry> {
    let code: Vec<String> = sources.iter().map(|s| code_only(s)).collect();
    entries
        .iter()
        .filter(|e| !code.iter().any(|s| mentions(s, &e.ident)))
        .collect()
}

/// Every `.rs` file under `crates/*/src` of the workspace except the catalogue's files and this
/// crate (the code that could render an entry).
pub fn rendering_sources() -> std::io::Result<Vec<String>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        for e in std::fs::read_dir(dir)? {
            let p = e?.path();
            if p.is_dir() {
                walk(&p, out)?;
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
        Ok(())
    }
    let catalogue: Vec<PathBuf> = catalogue_paths()?
        .iter()
        .filter_map(|p| p.canonicalize().ok())
        .collect();
    let mut files = Vec::new();
    for krate in std::fs::read_dir(workspace_root().join("crates"))? {
        let krate = krate?.path();
        let src = krate.join("src");
        if src.is_dir() && !krate.ends_with("testsupport") {
            walk(&src, &mut files)?;
        }
    }
    files
        .into_iter()
        .filter(|p| {
            p.canonicalize()
                .ok()
                .is_none_or(|c| !catalogue.contains(&c))
        })
        .map(std::fs::read_to_string)
        .collect()
}

/// Checks a scrape's metric names (`scraped`) against the entries whose name starts with
/// `prefix`: the missing entries must be exactly those with a scrape condition (`optional`
/// ones are not checked). A histogram is in the scrape by its `_count` sample. The error lists
/// every mismatch.
pub fn check_scrape(
    entries: &[Entry],
    prefix: &str,
    scraped: &BTreeSet<String>,
) -> Result<(), String> {
    let mut problems = Vec::new();
    for e in entries
        .iter()
        .filter(|e| e.name.starts_with(prefix) && !e.optional)
    {
        let present = scraped.contains(&e.name) || scraped.contains(&format!("{}_count", e.name));
        match (&e.condition, present) {
            (None, false) => problems.push(format!(
                "{} ({}) is not in the scrape: render it, or document when it appears with a \
                 `{CONDITION_MARKER}` comment before its metric!(",
                e.name, e.ident
            )),
            (Some(c), true) => problems.push(format!(
                "{} ({}) is in the scrape although its {CONDITION_MARKER} says only {c:?}: \
                 correct the comment or the test's setup",
                e.name, e.ident
            )),
            _ => {}
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const FAKE: &str = r#"
macro_rules! metric {
    ($id:ident, $name:literal, $kind:ident, $help:literal) => {};
}
metric!(
    SONDE_A,
    "sonde_a_total",
    Counter,
    "A, always"
);
// scrape-condition: with --push-url,
// scrape-condition: once a batch was sent
metric!(
    SONDE_B,
    "sonde_b_total",
    Counter,
    "B"
);
metric!(NODE_C, "node_c", Gauge, "short, \"quoted\", one line");
metric!(
    SONDE_NEVER_RENDERED,
    "sonde_never_rendered_total",
    Counter,
    "declared and never rendered"
);
// scrape-optional: once a runtime failed
metric!(
    SONDE_D,
    "sonde_d_total",
    Counter,
    "D, sometimes"
);
metric!(SONDE_H, "sonde_h_seconds", Histogram, "a histogram");
"#;

    fn names(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn parses_entries_and_conditions() {
        let e = parse(FAKE).unwrap();
        let got: Vec<_> = e
            .iter()
            .map(|e| (e.ident.as_str(), e.name.as_str(), e.condition.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("SONDE_A", "sonde_a_total", None),
                (
                    "SONDE_B",
                    "sonde_b_total",
                    Some("with --push-url, once a batch was sent")
                ),
                ("NODE_C", "node_c", None),
                ("SONDE_NEVER_RENDERED", "sonde_never_rendered_total", None),
                ("SONDE_D", "sonde_d_total", Some("once a runtime failed")),
                ("SONDE_H", "sonde_h_seconds", None),
            ]
        );
        let optional: Vec<_> = e.iter().filter(|e| e.optional).map(|e| &e.ident).collect();
        assert_eq!(optional, ["SONDE_D"]);
    }

    #[test]
    fn a_misplaced_condition_is_an_error() {
        assert!(
            parse("// scrape-condition: x\nfn f() {}\nmetric!(A, \"a\", Gauge, \"h\");").is_err()
        );
        assert!(parse("metric!(A, \"a\", Gauge, \"h\");\n// scrape-condition: x\n").is_err());
        assert!(parse("metric!(\n    A,\n").is_err());
        assert!(
            parse("// scrape-optional: x\nfn f() {}\nmetric!(A, \"a\", Gauge, \"h\");").is_err()
        );
    }

    #[test]
    fn an_entry_never_rendered_fails_the_scrape_check() {
        let e = parse(FAKE).unwrap();
        // The scrape has everything but the never-rendered entry (and B, conditional).
        // The optional D is never checked; the histogram H is there by its _count.
        let scraped = names(&["sonde_a_total", "node_c", "sonde_h_seconds_count"]);
        let err = check_scrape(&e, "sonde_", &scraped).unwrap_err();
        assert!(err.contains("sonde_never_rendered_total"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        // Rendered, it passes; other prefixes are not checked.
        let all = names(&[
            "sonde_a_total",
            "sonde_never_rendered_total",
            "sonde_h_seconds_count",
        ]);
        assert_eq!(check_scrape(&e, "sonde_", &all), Ok(()));
        let with_d = names(&[
            "sonde_a_total",
            "sonde_d_total",
            "sonde_never_rendered_total",
            "sonde_h_seconds_count",
        ]);
        assert_eq!(check_scrape(&e, "sonde_", &with_d), Ok(()));
        // A histogram without its samples is missing.
        let err = check_scrape(
            &e,
            "sonde_",
            &names(&["sonde_a_total", "sonde_never_rendered_total"]),
        )
        .unwrap_err();
        assert!(err.contains("sonde_h_seconds"), "{err}");
    }

    #[test]
    fn a_conditional_entry_present_fails_the_scrape_check() {
        let e = parse(FAKE).unwrap();
        let scraped = names(&[
            "sonde_a_total",
            "sonde_b_total",
            "sonde_never_rendered_total",
            "sonde_h_seconds_count",
        ]);
        let err = check_scrape(&e, "sonde_", &scraped).unwrap_err();
        assert!(
            err.contains("sonde_b_total") && err.contains("--push-url"),
            "{err}"
        );
    }

    #[test]
    fn an_entry_never_named_by_code_is_unreferenced() {
        let e = parse(FAKE).unwrap();
        let sources = vec![
            "f.add(&cat::SONDE_A, 1.0); let x = SONDE_B; (SONDE_D, SONDE_H)".to_owned(),
            // Prefixes and longer names do not count as a mention of NODE_C.
            "NODE_C_TOTAL; MY_NODE_C; catalogue::NODE_C".to_owned(),
            // Nor do comments.
            "SONDE_NEVER_RENDERED_X; // renders SONDE_NEVER_RENDERED\n/// SONDE_NEVER_RENDERED"
                .to_owned(),
        ];
        let missing: Vec<_> = unreferenced(&e, &sources)
            .iter()
            .map(|e| e.ident.as_str())
            .collect();
        assert_eq!(missing, ["SONDE_NEVER_RENDERED"]);
    }
}
