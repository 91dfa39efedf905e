//! No metric is declared and never rendered: every catalogue entry is named by some code
//! outside the catalogue (the code that renders it). A real scrape's check of the `sonde_*`
//! entries is in tests/tests/agent_node.rs.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use sonde_testsupport::catalogue;

fn real_catalogue() -> String {
    catalogue::catalogue_source().unwrap()
}

#[test]
fn the_catalogue_parses_into_unique_entries() {
    let entries = catalogue::parse(&real_catalogue()).unwrap();
    // The source parser sees what the compiler sees: the statics exist with these names.
    let checked = [
        (&sonde_exporter::catalogue::NODE_UPTIME, "NODE_UPTIME"),
        (
            &sonde_exporter::catalogue::SONDE_LOG_ROTATIONS,
            "SONDE_LOG_ROTATIONS",
        ),
        (
            &sonde_exporter::catalogue::SONDE_JOURNAL_OPEN,
            "SONDE_JOURNAL_OPEN",
        ),
        (
            &sonde_exporter::catalogue::SONDE_SCRAPE_DURATION,
            "SONDE_SCRAPE_DURATION",
        ),
        (
            &sonde_exporter::catalogue::CONTAINER_NET_LATENCY,
            "CONTAINER_NET_LATENCY",
        ),
        (
            &sonde_exporter::catalogue::CONTAINER_DISK_SIZE,
            "CONTAINER_DISK_SIZE",
        ),
        (&sonde_exporter::catalogue::l7::IP_TO_FQDN, "IP_TO_FQDN"),
    ];
    for (def, ident) in checked {
        let e = entries.iter().find(|e| e.ident == ident).unwrap();
        assert_eq!(e.name, def.name);
    }
    assert!(entries.len() > 100, "{} entries", entries.len());
    let names: BTreeSet<_> = entries.iter().map(|e| &e.name).collect();
    let idents: BTreeSet<_> = entries.iter().map(|e| &e.ident).collect();
    assert_eq!(names.len(), entries.len(), "a metric name declared twice");
    assert_eq!(idents.len(), entries.len(), "an identifier declared twice");
}

#[test]
fn every_catalogue_entry_is_named_by_rendering_code() {
    let entries = catalogue::parse(&real_catalogue()).unwrap();
    let sources = catalogue::rendering_sources().unwrap();
    let missing: Vec<_> = catalogue::unreferenced(&entries, &sources)
        .iter()
        .map(|e| format!("{} ({})", e.ident, e.name))
        .collect();
    assert!(
        missing.is_empty(),
        "declared in crates/exporter/src/catalogue and never rendered: {missing:?}"
    );
}

/// The check above fails when an entry is never rendered: the real catalogue with one entry
/// more, which no code names, is reported, and only it.
#[test]
fn an_entry_never_rendered_is_caught() {
    let mut src = real_catalogue();
    src.push_str(
        "\nmetric!(\n    SONDE_FAKE_NEVER_RENDERED,\n    \"sonde_fake_never_rendered_total\",\n    Counter,\n    \"A test entry\"\n);\n",
    );
    let entries = catalogue::parse(&src).unwrap();
    let sources = catalogue::rendering_sources().unwrap();
    let missing: Vec<_> = catalogue::unreferenced(&entries, &sources)
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(missing, ["sonde_fake_never_rendered_total"]);
}

/// The catalogue stays split by area: no file of it grows past the project's ~800 lines.
#[test]
fn every_catalogue_file_stays_small() {
    let paths = catalogue::catalogue_paths().unwrap();
    assert!(paths.len() >= 6, "{paths:?}");
    for p in paths {
        let lines = std::fs::read_to_string(&p).unwrap().lines().count();
        assert!(lines <= 800, "{} has {lines} lines: split it", p.display());
    }
}
