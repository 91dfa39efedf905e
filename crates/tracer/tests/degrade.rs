//! Degradation without privileges: clear errors, never a panic.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use sonde_tracer::{Error, Tracer, TracerConfig};

#[tokio::test]
async fn missing_btf_is_a_clear_error() {
    let config = TracerConfig {
        btf_path: PathBuf::from("/nonexistent/btf/vmlinux"),
        ..TracerConfig::default()
    };
    let err = Tracer::start(config).unwrap_err();
    assert!(matches!(err, Error::NoBtf { .. }), "{err:?}");
    assert!(
        err.reason().contains("CONFIG_DEBUG_INFO_BTF"),
        "{}",
        err.reason()
    );
}

#[tokio::test]
async fn unmountable_tracefs_is_a_clear_error() {
    // No candidate is a mounted tracefs, and mounting on a missing path fails.
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such/dir");
    let config = TracerConfig {
        tracefs_candidates: vec![missing.clone()],
        ..TracerConfig::default()
    };
    if !PathBuf::from("/sys/kernel/btf/vmlinux").exists() {
        sonde_testsupport::skip(
            "unmountable_tracefs_is_a_clear_error",
            sonde_testsupport::Needs::Privileged,
            "no kernel BTF here",
        );
        return;
    }
    let err = Tracer::start(config).unwrap_err();
    match &err {
        Error::NoTracefs { path, .. } => assert_eq!(path, &missing),
        other => panic!("expected NoTracefs, got {other:?}"),
    }
    assert!(
        err.reason().contains("mount -t tracefs"),
        "{}",
        err.reason()
    );
}
