//! Shared helpers of the privileged tests: the skip/fail policy and event collection.
#![allow(dead_code, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use sonde_tracer::{Event, EventStream, L7Hooks, Tracer, TracerConfig};

/// True when the test may run. Without root it prints why it skips, unless
/// SONDE_REQUIRE_PRIVILEGED=1, where a skip is a failure.
pub fn privileged(test: &str) -> bool {
    sonde_testsupport::require_root(test, "loads eBPF programs")
}

/// Skips `test` for `reason` (something CI's machine has is missing), or fails it when
/// SONDE_REQUIRE_PRIVILEGED=1.
pub fn skip(test: &str, reason: &str) {
    sonde_testsupport::skip(test, sonde_testsupport::Needs::Privileged, reason);
}

/// Which variant of the programs runs: the tp_btf ones, or the classic
/// tracepoint fallbacks (`TracerConfig::prefer_tp_btf`). Named for the TCP
/// state program, the first to have both; it selects every program's variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SockState {
    /// The BTF-enabled raw tracepoints: the default, and what this kernel must
    /// accept (../shared/ENVIRONMENT.md: tp_btf works here).
    TpBtf,
    /// The classic tracepoints, the fallback on kernels that refuse tp_btf.
    Classic,
}

/// Starts the tracer with a short poll interval (tests wait less).
pub fn start() -> (Tracer, EventStream) {
    start_with(SockState::TpBtf)
}

/// Like [`start`], with the given TCP state program, and checks that it is
/// the one attached (a silent fallback would test the wrong program).
pub fn start_with(program: SockState) -> (Tracer, EventStream) {
    start_with_l7(program, L7Hooks::Best)
}

/// Like [`start_with`], with the L7 programs on the given hooks.
pub fn start_with_l7(program: SockState, l7_hooks: L7Hooks) -> (Tracer, EventStream) {
    let config = TracerConfig {
        poll_interval: Duration::from_millis(20),
        prefer_tp_btf: program == SockState::TpBtf,
        l7_hooks,
        ..TracerConfig::default()
    };
    let (tracer, stream) = match Tracer::start(config) {
        Ok(t) => t,
        Err(e) => panic!("tracer failed to start: {}", e.reason()),
    };
    assert_eq!(
        tracer.sock_state_is_tp_btf(),
        program == SockState::TpBtf,
        "the {program:?} inet_sock_set_state program is attached (see the log for why not)"
    );
    (tracer, stream)
}

/// Collects events matching `keep` until `done(&kept)` holds, then keeps
/// collecting for `settle` more to catch any extra (wrong) event. Gives up at
/// `limit` (a liveness bound, not a timing assertion).
pub async fn collect(
    stream: &mut EventStream,
    mut keep: impl FnMut(&Event) -> bool,
    mut done: impl FnMut(&[Event]) -> bool,
) -> Vec<Event> {
    let limit = Duration::from_secs(20);
    let settle = Duration::from_millis(300);
    let start = Instant::now();
    let mut kept = Vec::new();
    let mut done_at: Option<Instant> = None;
    let mut batch = Vec::new();
    loop {
        if let Some(t) = done_at {
            if t.elapsed() >= settle {
                return kept;
            }
        } else if start.elapsed() >= limit {
            return kept;
        }
        batch.clear();
        let _ =
            tokio::time::timeout(Duration::from_millis(50), stream.next_batch(&mut batch)).await;
        kept.extend(batch.drain(..).filter(|e| keep(e)));
        if done_at.is_none() && done(&kept) {
            done_at = Some(Instant::now());
        }
    }
}

/// This process's cgroup v2 id, as `bpf_get_current_cgroup_id()` reports it: the inode of
/// its unified-hierarchy cgroup directory (`/sys/fs/cgroup/unified` on hybrid hosts, the
/// root itself on pure v2).
pub fn own_cgroup_v2_id() -> u64 {
    use std::os::unix::fs::MetadataExt;
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let path = cgroups
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .expect("a unified-hierarchy line in /proc/self/cgroup");
    let root = if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "/sys/fs/cgroup"
    } else {
        "/sys/fs/cgroup/unified"
    };
    std::fs::metadata(format!("{root}{path}")).unwrap().ino()
}

/// The kernel's segment counters of a TCP socket (`tcpi_segs_out`, `tcpi_segs_in` of
/// `struct tcp_info`, what `ss -ti` shows), read with getsockopt(TCP_INFO).
pub fn tcp_segments(fd: std::os::fd::RawFd) -> (u32, u32) {
    // Offsets in the uapi struct tcp_info (stable: fields are only ever appended).
    const SEGS_OUT: usize = 136;
    const SEGS_IN: usize = 140;
    let mut info = [0u8; 256];
    let mut len = info.len() as libc::socklen_t;
    // SAFETY: the buffer and its length are valid for the call.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0, "getsockopt(TCP_INFO)");
    assert!(len as usize >= SEGS_IN + 4, "tcp_info of {len} bytes");
    let at = |o: usize| u32::from_ne_bytes([info[o], info[o + 1], info[o + 2], info[o + 3]]);
    (at(SEGS_OUT), at(SEGS_IN))
}
