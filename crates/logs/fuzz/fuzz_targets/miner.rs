//! The miner on arbitrary text: no panic, hash == hash of template, template bounded, and the
//! counter stays within its caps.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sonde_logs::miner::{MAX_SCAN, hash_template};
use sonde_logs::{Level, PatternCounter, detect_level, pattern_hash, template};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let t = template(&text);
    assert!(t.len() <= 2 * MAX_SCAN, "template {} bytes", t.len());
    assert_eq!(pattern_hash(&text), hash_template(&t));
    let _ = detect_level(&text);
    let mut c = PatternCounter::new(4, 16);
    for (i, line) in text.split('\n').enumerate() {
        c.observe(line, Level::ALL[i % Level::ALL.len()]);
    }
    assert!(c.patterns() <= 4 * 6);
    c.for_each(|_, _, sample, _| assert!(sample.len() <= 16));
});
