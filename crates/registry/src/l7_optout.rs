//! The per-process opt-out of application-layer tracing: `COROOT_EBPF_TRACES=disabled` in a
//! process's environment (coroot-node-agent's variable), read once per process from
//! `/proc/<pid>/environ` at its first L7 request and cached (bounded; forgotten at exit).
//!
//! A process gone before its environment could be read counts as not opted out, unless its
//! container already showed the variable in another process (the registry remembers that per
//! container): containers share their environment across processes.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The variable and the value that opts a process out (coroot's; the value is matched as a
/// substring, as coroot does).
pub const OPT_OUT_VAR: &[u8] = b"COROOT_EBPF_TRACES=";
const OPT_OUT_VALUE: &[u8] = b"disabled";
/// Most processes whose answer is cached; beyond it the cache starts over.
const MAX_CACHED: usize = 65_536;
/// How much of an environment is read (the kernel's limit for a whole environment is far
/// larger; a variable past 256 KiB is not seen).
const MAX_ENVIRON: u64 = 256 * 1024;

/// Whether an environment block (NUL-separated `KEY=value` entries) opts out.
pub fn environ_opts_out(environ: &[u8]) -> bool {
    environ.split(|b| *b == 0).any(|entry| {
        entry.starts_with(OPT_OUT_VAR)
            && entry[OPT_OUT_VAR.len()..]
                .windows(OPT_OUT_VALUE.len())
                .any(|w| w == OPT_OUT_VALUE)
    })
}

/// Whether any of these processes' environment opts out (a few processes at most are read:
/// the first readable one answers for its container, which shares one environment).
pub fn any_opts_out<'a>(procfs: &Path, pids: impl IntoIterator<Item = &'a u32>) -> bool {
    let mut buf = Vec::new();
    for pid in pids.into_iter().take(8) {
        buf.clear();
        let read = std::fs::File::open(procfs.join(pid.to_string()).join("environ"))
            .and_then(|f| f.take(MAX_ENVIRON).read_to_end(&mut buf));
        if read.is_ok() {
            return environ_opts_out(&buf);
        }
    }
    false
}

/// Per-process answers.
#[derive(Debug)]
pub struct OptOuts {
    procfs: PathBuf,
    cache: HashMap<u32, Option<bool>, foldhash::fast::RandomState>,
    buf: Vec<u8>,
}

impl OptOuts {
    pub fn new(procfs: &Path) -> OptOuts {
        OptOuts {
            procfs: procfs.to_path_buf(),
            cache: HashMap::default(),
            buf: Vec::new(),
        }
    }

    /// Some(true): the process opted out; Some(false): it did not; None: its environment
    /// could not be read (gone, or not ours to read).
    pub fn of(&mut self, pid: u32) -> Option<bool> {
        if let Some(v) = self.cache.get(&pid) {
            return *v;
        }
        if self.cache.len() >= MAX_CACHED {
            self.cache.clear();
        }
        self.buf.clear();
        let answer = std::fs::File::open(self.procfs.join(pid.to_string()).join("environ"))
            .and_then(|f| f.take(MAX_ENVIRON).read_to_end(&mut self.buf))
            .ok()
            .map(|_| environ_opts_out(&self.buf));
        self.cache.insert(pid, answer);
        answer
    }

    pub fn forget(&mut self, pid: u32) {
        self.cache.remove(&pid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_variable_among_others() {
        assert!(environ_opts_out(
            b"PATH=/bin\0COROOT_EBPF_TRACES=disabled\0HOME=/"
        ));
        assert!(environ_opts_out(b"COROOT_EBPF_TRACES=disabled"));
        assert!(!environ_opts_out(b"COROOT_EBPF_TRACES=enabled\0"));
        assert!(!environ_opts_out(b"X_COROOT_EBPF_TRACES=disabled\0"));
        assert!(!environ_opts_out(b""));
    }

    #[test]
    fn reads_a_real_environment_and_answers_none_for_a_missing_process() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(dir.path().join("7")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(
            dir.path().join("7/environ"),
            b"A=1\0COROOT_EBPF_TRACES=disabled\0",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let mut o = OptOuts::new(dir.path());
        assert_eq!(o.of(7), Some(true));
        assert_eq!(o.of(8), None);
        o.forget(7);
        assert_eq!(o.of(7), Some(true));
    }
}
