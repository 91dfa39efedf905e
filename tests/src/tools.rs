//! Small helpers around external commands used by the tests.

use std::path::PathBuf;
use std::process::Command;

/// The full path of `name` on PATH (or the usual sbin directories), if installed.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"])
        .map(|d| PathBuf::from(d).join(name))
        .find(|p| p.is_file())
}

/// Runs a command, panicking with its output when it fails.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A tool a test needs: returns its path, or skips (false via `crate::skip`) with an install hint.
pub fn require(test: &str, name: &str, package: &str) -> Option<PathBuf> {
    match which(name) {
        Some(p) => Some(p),
        None => {
            crate::skip(
                test,
                &format!("{name} is not installed (apt-get install -y {package})"),
            );
            None
        }
    }
}
