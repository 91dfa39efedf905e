//! sonde-gpu against a fake NVML (tests/fake_nvml.c, built with gcc here): loading, device
//! figures, sample windows, per-process usage, and the failures a node without a GPU shows.
//! The fake reads its settings from the environment, so every case runs in its own process
//! (this file's tests are driven through `run_case`, which re-executes the test binary).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use sonde_gpu::{Error, Nvml};

/// Builds the fake library once per test process into a temp dir.
fn fake_library(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake_nvml.c");
    let out = dir.join("libnvidia-ml.so.1");
    let status = Command::new("gcc")
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .expect("gcc is needed to build the fake NVML (apt-get install -y gcc)");
    assert!(status.success(), "gcc failed");
    out
}

/// Runs the test `name` of this binary in a child process with `env` (the fake reads the
/// environment once per process, and NVML itself is process-global).
fn run_case(name: &str, env: &[(&str, &str)]) {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args([name, "--exact", "--ignored", "--nocapture"])
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{name} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "{name} did not run"
    );
}

#[test]
fn fake_nvml_cases() {
    let pid = std::process::id().to_string();
    run_case(
        "case_two_devices",
        &[("FAKE_NVML_DEVICES", "2"), ("FAKE_NVML_PID", &pid)],
    );
    run_case("case_no_devices", &[("FAKE_NVML_DEVICES", "0")]);
    run_case("case_init_fails", &[("FAKE_NVML_INIT_FAIL", "1")]);
}

#[test]
#[ignore = "run by fake_nvml_cases with its environment"]
fn case_two_devices() {
    let dir = tempfile::tempdir().unwrap();
    let mut nvml = Nvml::load(&fake_library(dir.path())).unwrap();
    assert_eq!(nvml.driver_version(), "535.104.05");
    let devices: Vec<(String, String)> = nvml
        .devices()
        .map(|(u, n)| (u.to_owned(), n.to_owned()))
        .collect();
    assert_eq!(
        devices,
        [
            ("GPU-fake-0".to_owned(), "Fake Tesla T4".to_owned()),
            ("GPU-fake-1".to_owned(), "Fake Tesla T4".to_owned())
        ]
    );
    let stats = nvml.scrape();
    assert_eq!(stats.len(), 2);
    let d = &stats[1];
    assert_eq!(d.memory_total_bytes, Some(16 << 30));
    assert_eq!(d.memory_used_bytes, Some(2 << 30));
    assert_eq!(d.temperature_celsius, Some(56.0));
    assert_eq!(d.power_watts, Some(70.5));
    assert_eq!(d.utilization, Some((40.0, 70.0)));
    assert_eq!(d.memory_utilization, Some((15.0, 25.0)));
    // The next scrape asks for samples after the newest seen (the fake returns new ones).
    assert_eq!(nvml.scrape()[0].utilization, Some((40.0, 70.0)));

    let usage = nvml.process_usage();
    assert_eq!(usage.len(), 1);
    assert_eq!(usage[0].uuid, "GPU-fake-0");
    let pid: u32 = std::env::var("FAKE_NVML_PID").unwrap().parse().unwrap();
    assert_eq!(usage[0].pid, pid);
    assert_eq!(
        (usage[0].gpu_percent, usage[0].memory_percent),
        (42.0, 17.0)
    );
}

#[test]
#[ignore = "run by fake_nvml_cases with its environment"]
fn case_no_devices() {
    let dir = tempfile::tempdir().unwrap();
    let mut nvml = Nvml::load(&fake_library(dir.path())).unwrap();
    assert_eq!(nvml.devices().count(), 0);
    assert!(nvml.scrape().is_empty());
    assert!(nvml.process_usage().is_empty());
}

#[test]
#[ignore = "run by fake_nvml_cases with its environment"]
fn case_init_fails() {
    let dir = tempfile::tempdir().unwrap();
    let err = Nvml::load(&fake_library(dir.path())).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Call {
                call: "nvmlInit_v2",
                code: 9
            }
        ),
        "{err}"
    );
}

#[test]
fn missing_and_foreign_libraries_are_clear_errors() {
    let err = Nvml::load(Path::new("/nonexistent/libnvidia-ml.so.1")).unwrap_err();
    assert!(matches!(err, Error::Open { .. }), "{err}");
    // A real shared library that is not NVML.
    let libc = [
        "/lib/x86_64-linux-gnu/libm.so.6",
        "/usr/lib/x86_64-linux-gnu/libm.so.6",
        "/lib/aarch64-linux-gnu/libm.so.6",
    ]
    .into_iter()
    .map(Path::new)
    .find(|p| p.exists());
    if let Some(lib) = libc {
        let err = Nvml::load(lib).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Symbol {
                    symbol: "nvmlInit_v2",
                    ..
                }
            ),
            "{err}"
        );
    }
    assert_eq!(sonde_gpu::find_library(Path::new("/nonexistent")), None);
}
