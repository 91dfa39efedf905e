//! Level detection table.
#![allow(clippy::unwrap_used)]

use sonde_logs::{Level, detect_level};

#[test]
fn level_table() {
    use Level::*;
    let cases = [
        // klog / glog
        (
            "E0102 15:04:05.123456    1234 reflector.go:138] failed to list",
            Error,
        ),
        (
            "W0102 15:04:05.123456       1 warnings.go:70] deprecated",
            Warning,
        ),
        ("I0102 15:04:05.123456       1 main.go:10] started", Info),
        ("F0102 15:04:05.123456       1 main.go:10] fatal", Critical),
        // logfmt and JSON fields
        (
            "ts=2024-01-02T03:04:05Z level=warn msg=\"disk almost full\"",
            Warning,
        ),
        ("time=\"2024\" level=error msg=boom", Error),
        ("lvl=dbug msg=x", Unknown),
        ("lvl=debug msg=x", Debug),
        (r#"{"level":"error","msg":"failed","ts":1}"#, Error),
        (r#"{"ts":1,"severity":"WARNING","message":"x"}"#, Warning),
        (r#"{"log.level": "info", "message": "x"}"#, Info),
        (r#"{"levelname": "CRITICAL", "message": "x"}"#, Critical),
        // header words
        (
            "2015-10-18 18:01:47,978 INFO [main] org.apache.Foo: Created",
            Info,
        ),
        (
            "2015-07-29 19:04:29,071 - WARN  [SendWorker:1:Q@688] - Send worker leaving",
            Warning,
        ),
        (
            "081109 203615 148 INFO dfs.DataNode$PacketResponder: terminating",
            Info,
        ),
        (
            "- 1117838570 2005.06.03 R02 RAS KERNEL FATAL data TLB error interrupt",
            Critical,
        ),
        ("Jan 12 ERROR something", Error),
        ("[error] 1234#0: *5 open() failed", Error),
        ("<Warning> low memory", Warning),
        ("Error: connection refused", Error),
        ("ERROR:root:division by zero", Error),
        (
            "2024/01/02 03:04:05 [notice] 1#1: start worker processes",
            Info,
        ),
        ("SEVERE: Servlet.service() threw exception", Error),
        ("panic: runtime error: index out of range", Critical),
        ("[TRACE] entering", Debug),
        // no level, or words that are not levels
        ("no error found in 3 files", Unknown),
        ("connection closed", Unknown),
        ("ERROR_CODE=5 returned", Unknown),
        ("INFO2 thing", Unknown),
        ("", Unknown),
    ];
    for (msg, want) in cases {
        assert_eq!(detect_level(msg), want, "level of {msg:?}");
    }
}

#[test]
fn level_names_and_priorities() {
    assert_eq!(Level::from_syslog_priority(0), Level::Critical);
    assert_eq!(Level::from_syslog_priority(2), Level::Critical);
    assert_eq!(Level::from_syslog_priority(3), Level::Error);
    assert_eq!(Level::from_syslog_priority(4), Level::Warning);
    assert_eq!(Level::from_syslog_priority(5), Level::Info);
    assert_eq!(Level::from_syslog_priority(6), Level::Info);
    assert_eq!(Level::from_syslog_priority(7), Level::Debug);
    assert_eq!(Level::from_syslog_priority(8), Level::Unknown);
    let labels: Vec<&str> = Level::ALL.iter().map(|l| l.as_str()).collect();
    assert_eq!(
        labels,
        ["critical", "error", "warning", "info", "debug", "unknown"]
    );
    assert!(Level::Warning.keeps_patterns() && Level::Critical.keeps_patterns());
    assert!(!Level::Info.keeps_patterns() && !Level::Unknown.keeps_patterns());
    assert_eq!(Level::from_name("Warn"), Some(Level::Warning));
    assert_eq!(Level::from_name("verylongname"), None);
}
