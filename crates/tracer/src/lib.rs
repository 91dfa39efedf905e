//! sonde's eBPF tracer: loads the C programs of `ebpf/` (embedded, compiled
//! and committed) with aya, and streams process, OOM, cgroup creation and TCP events decoded
//! from one ring buffer.
//!
//! - [`Tracer::start`] loads and attaches everything, or fails with an
//!   [`Error`] that says why (no BTF, no tracefs, verifier rejection, EPERM).
//! - [`EventStream::next_batch`] yields decoded [`Event`]s in batches.
//! - [`Tracer::lost_events`] is read at scrape time; [`Tracer::open_connection_bytes`]
//!   is read by [`connections::Connections::dump`], in the task that reads the ring.
//! - [`connections`] owns the open-connection table: it merges the ring's
//!   connection records and on-demand dumps of the kernel's `active` map into
//!   exactly-once per-process deltas, built on the pure halves [`filter`]
//!   (which endpoints are destinations) and [`conntrack`] (byte/active
//!   accounting per connection).
//!
//! See docs/tracer.md for the design (hooks, map sizes, wakeup policy).

mod l7_loader;
mod l7_table;
mod loader;
mod stream;
mod sys;

pub mod connections;
pub mod conntrack;
pub mod decode;
pub mod filter;
pub mod l7;
pub mod seed;
pub mod tls;

use std::path::PathBuf;
use std::time::Duration;

pub use decode::{ConnectionBytes, DecodeError, Event};
pub use loader::{LOST_TCP_UNTRACKED, PROGRAMS, Tracer};
pub use stream::EventStream;

/// The compiled eBPF object (built by `make -C ebpf`, committed).
pub(crate) static OBJECT: &[u8] = aya::include_bytes_aligned!("../../../ebpf/tracer.bpf.o");

/// Tracer settings; [`TracerConfig::default`] suits a node agent.
#[derive(Debug, Clone)]
pub struct TracerConfig {
    /// Ring buffer size in bytes; rounded up to a power of two of at least the
    /// page size. Default 8 MiB (~95,000 TCP events of 88 bytes).
    pub ring_buffer_bytes: usize,
    /// Wake the reader early once this fraction of the ring is filled; below it
    /// the reader polls every `poll_interval`. Default 1/8.
    pub wakeup_fraction: f64,
    /// How often the reader drains the ring without a wakeup. Default 100 ms.
    pub poll_interval: Duration,
    /// Most events returned by one [`EventStream::next_batch`]. Default 8192.
    pub max_batch: usize,
    /// Capacity of the kernel map of open tracked connections. Default 131,072.
    pub max_connections: u32,
    /// Where tracefs may be mounted, in order. If none is, tracefs is mounted
    /// at the first one. aya only looks at `/sys/kernel/tracing` and
    /// `/sys/kernel/debug/tracing`, so the list should start with one of those.
    pub tracefs_candidates: Vec<PathBuf>,
    /// Kernel BTF, needed for CO-RE relocations.
    pub btf_path: PathBuf,
    /// Attach TCP state changes with the BTF-enabled raw tracepoint (cheaper
    /// per run) when the kernel allows it, else the classic tracepoint.
    /// Default true; false forces the classic program (tests of the fallback).
    pub prefer_tp_btf: bool,
    /// Attach the L7 programs (ebpf/src/l7.c: application-protocol reads and
    /// writes). Default true. When they cannot attach, the rest of the tracer
    /// runs without them ([`Tracer::l7_error`] says why).
    pub l7: bool,
    /// What the L7 parsers are told (`--exclude-http-requests-by-path`).
    pub l7_parsing: sonde_l7::Config,
    /// Which hooks carry the L7 programs. Default: [`L7Hooks::from_env`], which is
    /// [`L7Hooks::Best`] unless `SONDE_L7_HOOKS` pins a tier.
    pub l7_hooks: L7Hooks,
}

/// The hooks the L7 programs ride on, best first (docs/l7.md, "Hooks").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L7Hooks {
    /// The best the kernel allows, in the order below.
    Best,
    /// tp_btf on sock/sock_send_length and sock/sock_recv_length (kernel >= 6.3): socket
    /// calls only, nothing on syscalls.
    Socket,
    /// tp_btf on raw_syscalls sys_enter/sys_exit (kernel >= 5.5): every syscall.
    Syscalls,
    /// The classic per-syscall tracepoints (any kernel with CONFIG_FTRACE_SYSCALLS).
    Tracepoints,
}

impl L7Hooks {
    /// The environment variable that pins a tier: `socket`, `syscalls` or `tracepoints`.
    /// For the tests of the fallbacks and for benchmarks that compare them.
    pub const ENV: &'static str = "SONDE_L7_HOOKS";

    /// The tier `SONDE_L7_HOOKS` names; [`L7Hooks::Best`] when it is unset or names none
    /// (an unknown value is ignored: the variable is a test and benchmark switch).
    pub fn from_env() -> L7Hooks {
        match std::env::var(Self::ENV).as_deref() {
            Ok("socket") => L7Hooks::Socket,
            Ok("syscalls") => L7Hooks::Syscalls,
            Ok("tracepoints") => L7Hooks::Tracepoints,
            _ => L7Hooks::Best,
        }
    }
}

impl Default for TracerConfig {
    fn default() -> Self {
        TracerConfig {
            ring_buffer_bytes: 8 << 20,
            wakeup_fraction: 0.125,
            poll_interval: Duration::from_millis(100),
            max_batch: 8192,
            max_connections: 131_072,
            tracefs_candidates: vec![
                PathBuf::from("/sys/kernel/tracing"),
                PathBuf::from("/sys/kernel/debug/tracing"),
            ],
            btf_path: PathBuf::from("/sys/kernel/btf/vmlinux"),
            prefer_tp_btf: true,
            l7: true,
            l7_parsing: sonde_l7::Config::default(),
            l7_hooks: L7Hooks::from_env(),
        }
    }
}

/// Why the tracer could not start or a read failed. [`Error::reason`] gives a
/// one-line reason with the fix, for the "subsystem down" warning.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kernel exposes no BTF: CO-RE relocation is impossible.
    #[error("kernel BTF not found at {path} (needs CONFIG_DEBUG_INFO_BTF=y)")]
    NoBtf {
        /// Path looked at.
        path: PathBuf,
    },
    /// tracefs is not mounted and mounting it failed.
    #[error(
        "tracefs is not mounted and mounting it at {path} failed (mount -t tracefs tracefs {path}, or mount /sys/kernel/tracing into the container)"
    )]
    NoTracefs {
        /// Mount point tried.
        path: PathBuf,
        /// The mount error.
        #[source]
        source: std::io::Error,
    },
    /// Not allowed to load BPF programs.
    #[error(
        "not permitted to load eBPF programs (run as root or with CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN)"
    )]
    Permission {
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Parsing, relocating or creating maps of the object failed.
    #[error("loading the eBPF object failed: {source}")]
    Object {
        /// The aya error.
        #[source]
        source: Box<aya::EbpfError>,
    },
    /// The verifier (or the kernel) rejected a program.
    #[error("the kernel rejected eBPF program {program}: {excerpt}")]
    Verifier {
        /// Program (function) name.
        program: &'static str,
        /// The tail of the verifier log.
        excerpt: String,
        /// The aya error.
        #[source]
        source: Box<aya::programs::ProgramError>,
    },
    /// Attaching a program to its tracepoint failed.
    #[error("attaching {program} to tracepoint {tracepoint} failed: {source}")]
    Attach {
        /// Program name.
        program: &'static str,
        /// `category/name`.
        tracepoint: &'static str,
        /// The aya error.
        #[source]
        source: Box<aya::programs::ProgramError>,
    },
    /// A program or map expected in the object is missing or of the wrong type.
    #[error("the eBPF object has no {kind} named {name} of the expected type")]
    Missing {
        /// "program" or "map".
        kind: &'static str,
        /// Name looked up.
        name: &'static str,
    },
    /// A map operation failed.
    #[error("eBPF map {map}: {source}")]
    Map {
        /// Map name.
        map: &'static str,
        /// The aya error.
        #[source]
        source: Box<aya::maps::MapError>,
    },
    /// The kernel lacks the program that reads open connections (needs >= 5.13).
    #[error("reading open connections is unsupported on this kernel: {reason}")]
    ScanUnsupported {
        /// Why the scan program did not load.
        reason: String,
    },
    /// Running the connection scan program failed.
    #[error("running the connection scan program failed")]
    Scan {
        /// The syscall error.
        #[source]
        source: std::io::Error,
    },
    /// The socket iterator that finds sockets older than the tracer could not run (needs
    /// kernel >= 5.9 with iter/tcp).
    #[error("listing the TCP sockets open before the tracer failed: {reason}")]
    Seed {
        /// The verifier, attach or read error.
        reason: String,
    },
    /// The TLS uprobes cannot be placed on this kernel (no uprobe PMU).
    #[error("TLS uprobes unavailable: {reason}")]
    Tls {
        /// What is missing.
        reason: String,
    },
    /// Waiting on the ring buffer failed.
    #[error("polling the eBPF ring buffer failed")]
    Poll {
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// A one-line reason, for logs and the subsystem status.
    pub fn reason(&self) -> String {
        self.to_string()
    }
}
