//! The skip policy of every sonde test that depends on the machine: root, a kernel feature, a
//! tool, or a data set outside the repository.
//!
//! One message format, `SKIPPED <test>: <reason>`, on stderr and appended to `$SONDE_SKIP_LOG`
//! when set. Cargo shows a passing test's stderr only with `--nocapture`, so a skip printed
//! there alone is invisible in a suite run: the file is what makes skips reportable.

use std::io::Write;

/// What a test needs that this machine may lack; decides whether a skip is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Root, or a kernel feature, daemon or tool that CI's machine has (scripts/test.sh
    /// installs it). A skip fails when `SONDE_REQUIRE_PRIVILEGED=1` (CI sets it).
    Privileged,
    /// A data set outside the repository (e.g. LogHub in ../shared/loghub). A skip fails when
    /// `SONDE_REQUIRE_DATA=1`, or `SONDE_REQUIRE_PRIVILEGED=1` (CI provides the data too).
    Data,
    /// A host property that legitimately differs between supported hosts (a pure cgroup v2
    /// host has no v1 hierarchy to test; a filesystem without birth times). Never fails; it
    /// is still reported.
    HostVariant,
}

impl Needs {
    /// The variables that turn this skip into a failure, when set to `1`.
    fn forbidding_vars(self) -> &'static [&'static str] {
        match self {
            Needs::Privileged => &["SONDE_REQUIRE_PRIVILEGED"],
            Needs::Data => &["SONDE_REQUIRE_DATA", "SONDE_REQUIRE_PRIVILEGED"],
            Needs::HostVariant => &[],
        }
    }
}

/// Whether the test process runs as root (euid 0).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// True when root; otherwise skips `test` (see [`skip`]) saying it needs root for `what`.
pub fn require_root(test: &str, what: &str) -> bool {
    is_root() || skip(test, Needs::Privileged, &format!("needs root ({what})"))
}

/// Skips `test` for `reason`: prints and logs `SKIPPED <test>: <reason>` and returns false, so
/// a test reads `if !cond && !skip(..) { return; }` or `return skip(..)`-style. Panics instead
/// when a variable of [`Needs`] forbids skipping.
pub fn skip(test: &str, needs: Needs, reason: &str) -> bool {
    let env = |v: &str| std::env::var(v).ok();
    if let Some(message) = skip_verdict(test, needs, reason, env) {
        panic!("{message}");
    }
    let line = format!("SKIPPED {test}: {reason}");
    eprintln!("{line}");
    if let Some(path) = std::env::var_os("SONDE_SKIP_LOG") {
        // A failure to log is said, never fatal to the test.
        if let Err(e) = append_line(std::path::Path::new(&path), &line) {
            eprintln!("cannot append to SONDE_SKIP_LOG {path:?}: {e}");
        }
    }
    false
}

/// Appends `line` and a newline in one write on an O_APPEND file, so lines of test processes
/// running at once do not interleave.
fn append_line(path: &std::path::Path, line: &str) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .write_all(format!("{line}\n").as_bytes())
}

/// The failure message when the environment (`env`) forbids skipping, else None. Pure, so the
/// policy is unit-tested without touching the process environment.
pub fn skip_verdict(
    test: &str,
    needs: Needs,
    reason: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Option<String> {
    let var = needs
        .forbidding_vars()
        .iter()
        .find(|v| env(v).as_deref() == Some("1"))?;
    Some(format!("{test}: cannot skip ({reason}) because {var}=1"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    #[test]
    fn privileged_skips_fail_only_under_require_privileged() {
        let t = |vars: &[(&str, &str)]| skip_verdict("t", Needs::Privileged, "r", env_of(vars));
        assert_eq!(t(&[]), None);
        assert_eq!(t(&[("SONDE_REQUIRE_PRIVILEGED", "0")]), None);
        assert_eq!(t(&[("SONDE_REQUIRE_DATA", "1")]), None);
        assert_eq!(
            t(&[("SONDE_REQUIRE_PRIVILEGED", "1")]).as_deref(),
            Some("t: cannot skip (r) because SONDE_REQUIRE_PRIVILEGED=1")
        );
    }

    #[test]
    fn data_skips_fail_under_either_variable() {
        let t = |vars: &[(&str, &str)]| skip_verdict("t", Needs::Data, "r", env_of(vars));
        assert_eq!(t(&[]), None);
        assert_eq!(
            t(&[("SONDE_REQUIRE_DATA", "1")]).as_deref(),
            Some("t: cannot skip (r) because SONDE_REQUIRE_DATA=1")
        );
        assert!(t(&[("SONDE_REQUIRE_PRIVILEGED", "1")]).is_some());
    }

    #[test]
    fn skip_lines_are_appended_whole() {
        let path = std::env::temp_dir().join(format!("sonde-skiplog-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        append_line(&path, "SKIPPED a: x").unwrap();
        append_line(&path, "SKIPPED b: y").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(text, "SKIPPED a: x\nSKIPPED b: y\n");
    }

    #[test]
    fn host_variant_skips_never_fail() {
        let all = env_of(&[
            ("SONDE_REQUIRE_PRIVILEGED", "1"),
            ("SONDE_REQUIRE_DATA", "1"),
        ]);
        assert_eq!(skip_verdict("t", Needs::HostVariant, "r", all), None);
    }
}
