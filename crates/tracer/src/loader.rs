//! Loading and attaching the embedded object (I/O); see docs/tracer.md.

use std::io;
use std::os::fd::AsFd;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aya::maps::{Map, MapData, PerCpuArray, RingBuf};
use aya::programs::tp_btf::BtfTracePointLinkId;
use aya::programs::{BtfTracePoint, ProgramError, RawTracePoint, TracePoint};
use aya::{Btf, Ebpf, EbpfError, EbpfLoader};
use tracing::{debug, info, warn};

use crate::decode::{self, CONNECTION_VALUE_SIZE, ConnectionBytes};
use crate::stream::EventStream;
use crate::{Error, OBJECT, TracerConfig, sys};

/// Attached programs: (function name, tracepoint category, tracepoint name).
/// Their function names are the `program` names of [`Tracer::lost_events`], in
/// this order; their `lost` counter slots are `enum lost_slot` of
/// `ebpf/include/common.h` (0-4, then 6 for `cgroup_mkdir`). For `oom_mark_victim` the loader prefers the raw
/// tracepoint variant `oom_mark_victim_task` (victim's own cgroup); the slot
/// name stays the same. Likewise the others prefer their tp_btf variants
/// ([`BTF_VARIANTS`]: `<name>_btf`, cheaper per run and skipped by the kernel
/// only when nested in themselves), with the classic programs as fallbacks.
pub const PROGRAMS: [(&str, &str, &str); 6] = [
    ("task_newtask", "task", "task_newtask"),
    ("sched_process_exit", "sched", "sched_process_exit"),
    ("oom_mark_victim", "oom", "mark_victim"),
    ("inet_sock_set_state", "sock", "inet_sock_set_state"),
    ("tcp_retransmit_skb", "tcp", "tcp_retransmit_skb"),
    ("cgroup_mkdir", "cgroup", "cgroup_mkdir"),
];

const TRACEPOINTS: [&str; 6] = [
    "task/task_newtask",
    "sched/sched_process_exit",
    "oom/mark_victim",
    "sock/inet_sock_set_state",
    "tcp/tcp_retransmit_skb",
    "cgroup/cgroup_mkdir",
];

/// `lost` counter slot of each [`PROGRAMS`] entry (`enum lost_slot`).
/// `cgroup_mkdir` came after `tcp_untracked` (slot 5), which kept its slot so
/// the TCP programs did not change.
const PROGRAM_SLOTS: [u32; 6] = [0, 1, 2, 3, 4, 6];

/// Name, in [`Tracer::lost_events`], of the count of outbound TCP connects whose
/// kernel tracking state was lost (a failed map update, or a connect's end seen
/// without its start): they are still reported, with pid 0 when the connecting
/// process is unknown. Slot `LOST_TCP_UNTRACKED` of `ebpf/include/common.h`.
pub const LOST_TCP_UNTRACKED: &str = "tcp_untracked";
const LOST_TCP_UNTRACKED_SLOT: u32 = 5;
/// `LOST_L7_EVENT` and `LOST_L7_SOCKETS` of `ebpf/include/common.h`.
const L7_LOST_EVENT_SLOT: u32 = 7;
const L7_LOST_SOCKETS_SLOT: u32 = 8;

/// Raw-tracepoint variant of `oom_mark_victim`, reading the victim task itself.
const OOM_PROGRAM: &str = "oom_mark_victim";
const OOM_RAW_PROGRAM: &str = "oom_mark_victim_task";
const SCAN_PROGRAM: &str = "scan_active";
/// The classic TCP state-change program and its preferred BTF-enabled raw
/// tracepoint variant (ebpf/src/tcp.c: cheaper per run, same events).
const SOCK_STATE_PROGRAM: &str = "inet_sock_set_state";
const SOCK_STATE_BTF_PROGRAM: &str = "inet_sock_set_state_btf";
/// Why the classic fallbacks below cost more: the kernel skips a classic
/// tracepoint program whenever any BPF program or BPF map syscall holds the
/// CPU (a scrape's dump, another BPF user's), and builds a trace record for
/// every run; a tp_btf run is skipped only when the same program is already
/// running on that CPU.
const CLASSIC_COST: &str =
    "same events, skipped while any BPF program or map syscall holds the CPU";

/// [`PROGRAMS`] entries with a preferred tp_btf variant (ebpf/src): the
/// classic name, the variant, and what falling back to the classic costs.
const BTF_VARIANTS: [(&str, &str, &str); 5] = [
    ("task_newtask", "task_newtask_btf", CLASSIC_COST),
    ("sched_process_exit", "sched_process_exit_btf", CLASSIC_COST),
    (
        SOCK_STATE_PROGRAM,
        SOCK_STATE_BTF_PROGRAM,
        "same events, higher cost per TCP state change",
    ),
    ("tcp_retransmit_skb", "tcp_retransmit_skb_btf", CLASSIC_COST),
    ("cgroup_mkdir", "cgroup_mkdir_btf", CLASSIC_COST),
];
const LOST_WARN_EVERY: Duration = Duration::from_secs(60);

struct LostWarn {
    last_total: u64,
    last_warn: Option<Instant>,
}

/// The loaded and attached programs. Dropping it detaches everything.
pub struct Tracer {
    pub(crate) ebpf: Ebpf,
    lost: PerCpuArray<MapData, u64>,
    /// The loaded function behind each [`PROGRAMS`] slot (the OOM slot may be
    /// the raw tracepoint variant), for its kernel `recursion_misses`.
    attached: Vec<&'static str>,
    scan_error: Option<String>,
    warn: Mutex<LostWarn>,
    /// The tp_btf TCP program's link while attached (see [`Tracer::set_tcp_state_tracing`]).
    sock_state_link: Option<BtfTracePointLinkId>,
    /// Why the L7 programs are not attached (None: they are, or were not asked for).
    l7_error: Option<String>,
    l7_attached: bool,
    /// The attached L7 programs (the tp_btf pair, or the classic per-syscall ones).
    l7_programs: Vec<&'static str>,
}

impl std::fmt::Debug for Tracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracer")
            .field("scan_error", &self.scan_error)
            .finish_non_exhaustive()
    }
}

fn is_eperm(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES))
}

pub(crate) fn verifier_excerpt(e: &ProgramError) -> String {
    let text = e.to_string();
    // The useful part of a verifier log is its end (the failing instruction and
    // the reason); keep the last lines, bounded.
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(8)..].join(" | ");
    if tail.len() > 1200 {
        tail[tail.len() - 1200..].to_owned()
    } else {
        tail
    }
}

fn program_error(program: &'static str, e: ProgramError) -> Error {
    match &e {
        ProgramError::LoadError { io_error, .. } if is_eperm(io_error) => Error::Permission {
            source: Box::new(e),
        },
        _ => Error::Verifier {
            program,
            excerpt: verifier_excerpt(&e),
            source: Box::new(e),
        },
    }
}

fn object_error(e: EbpfError) -> Error {
    if let EbpfError::MapError(aya::maps::MapError::CreateError { io_error, .. }) = &e
        && is_eperm(io_error)
    {
        return Error::Permission {
            source: Box::new(e),
        };
    }
    Error::Object {
        source: Box::new(e),
    }
}

fn ensure_tracefs(config: &TracerConfig) -> Result<(), Error> {
    if config
        .tracefs_candidates
        .iter()
        .any(|p| sys::tracefs_mounted(p))
    {
        return Ok(());
    }
    let Some(first) = config.tracefs_candidates.first() else {
        return Err(Error::NoTracefs {
            path: "(no candidate)".into(),
            source: io::Error::new(io::ErrorKind::NotFound, "no tracefs candidate configured"),
        });
    };
    sys::mount_tracefs(first).map_err(|source| Error::NoTracefs {
        path: first.clone(),
        source,
    })?;
    info!(path = %first.display(), "Mounted tracefs");
    Ok(())
}

/// Loads and attaches the raw-tracepoint OOM program; false (with the reason
/// logged) if this kernel refuses it, and the classic tracepoint is used.
fn attach_oom_raw(ebpf: &mut Ebpf) -> bool {
    let Some(prog) = ebpf
        .program_mut(OOM_RAW_PROGRAM)
        .and_then(|p| <&mut RawTracePoint>::try_from(p).ok())
    else {
        warn!(
            program = OOM_RAW_PROGRAM,
            "Program missing from the object; OOM kills attributed by the allocating task's cgroup"
        );
        return false;
    };
    let result = prog
        .load()
        .map_err(|e| verifier_excerpt(&e))
        .and_then(|()| {
            prog.attach("mark_victim")
                .map(|_| ())
                .map_err(|e| e.to_string())
        });
    match result {
        Ok(()) => true,
        Err(reason) => {
            // Leave nothing half-loaded: the classic program takes over.
            let _ = prog.unload();
            warn!(reason = %reason, "raw_tp oom/mark_victim unavailable; OOM kills attributed by the allocating task's cgroup");
            false
        }
    }
}

/// The kernel's BTF, for the tp_btf programs; None (logged) if it cannot be
/// parsed, and the classic tracepoint programs are used instead.
fn kernel_btf(btf_path: &std::path::Path) -> Option<Btf> {
    match Btf::parse_file(btf_path, aya::Endianness::default()) {
        Ok(btf) => Some(btf),
        Err(e) => {
            warn!(error = %e, path = %btf_path.display(), "Cannot parse kernel BTF for tp_btf; using the classic tracepoints");
            None
        }
    }
}

/// Loads and attaches a tp_btf program on `tracepoint`; None (with the reason
/// logged) if this kernel refuses it, and the caller attaches the classic
/// tracepoint program instead (same events; `why` says what that costs).
fn attach_btf(
    ebpf: &mut Ebpf,
    btf: &Btf,
    program: &'static str,
    tracepoint: &'static str,
    why: &'static str,
) -> Option<BtfTracePointLinkId> {
    let Some(prog) = ebpf
        .program_mut(program)
        .and_then(|p| <&mut BtfTracePoint>::try_from(p).ok())
    else {
        warn!(
            program,
            "Program missing from the object; using the classic {tracepoint} tracepoint"
        );
        return None;
    };
    let result = prog
        .load(tracepoint, btf)
        .map_err(|e| verifier_excerpt(&e))
        .and_then(|()| prog.attach().map_err(|e| e.to_string()));
    match result {
        Ok(link) => Some(link),
        Err(reason) => {
            // Leave nothing half-loaded: the classic program takes over.
            let _ = prog.unload();
            warn!(reason = %reason, "tp_btf {tracepoint} unavailable; using the classic tracepoint ({why})");
            None
        }
    }
}

fn ring_size(bytes: usize) -> u32 {
    let page = 4096usize;
    let size = bytes.max(page).next_power_of_two();
    u32::try_from(size).unwrap_or(1 << 30)
}

impl Tracer {
    /// Loads and attaches every program. On error nothing stays attached and the
    /// error says why (no BTF, no tracefs, verifier log excerpt, EPERM).
    pub fn start(config: TracerConfig) -> Result<(Tracer, EventStream), Error> {
        if !config.btf_path.exists() {
            return Err(Error::NoBtf {
                path: config.btf_path.clone(),
            });
        }
        ensure_tracefs(&config)?;
        if let Err(e) = sys::raise_memlock() {
            // >= 5.11 charges BPF memory to the memcg: the rlimit is irrelevant.
            match sys::kernel_version() {
                Some(v) if v < (5, 11) => {
                    warn!(error = %e, "Cannot raise RLIMIT_MEMLOCK; eBPF maps may fail to load on this kernel")
                }
                _ => {
                    debug!(error = %e, "RLIMIT_MEMLOCK not raised (not needed on kernels >= 5.11)")
                }
            }
        }

        let ring = ring_size(config.ring_buffer_bytes);
        // The kernel counts unwoken bytes per CPU (ebpf/include/common.h, wakeup_flags): each
        // CPU's share of the wakeup fraction, so all of them together stay under it.
        let cpus = aya::util::nr_cpus().map_or(1, |n| n.max(1)) as u64;
        let wakeup = (f64::from(ring) * config.wakeup_fraction.clamp(0.0, 1.0)) as u64 / cpus;
        let mut ebpf = EbpfLoader::new()
            .map_max_entries("events", ring)
            .map_max_entries("active", config.max_connections.max(1))
            .override_global("wakeup_bytes", &wakeup, true)
            .load(OBJECT)
            .map_err(object_error)?;

        let mut attached = Vec::with_capacity(PROGRAMS.len());
        let mut sock_state_link = None;
        let btf = if config.prefer_tp_btf {
            kernel_btf(&config.btf_path)
        } else {
            None
        };
        for (i, (name, category, tp)) in PROGRAMS.iter().enumerate() {
            if *name == OOM_PROGRAM && attach_oom_raw(&mut ebpf) {
                attached.push(OOM_RAW_PROGRAM);
                continue;
            }
            let variant = BTF_VARIANTS.iter().find(|(classic, _, _)| classic == name);
            if let (Some(btf), Some((_, btf_name, why))) = (&btf, variant) {
                // The link stays with the program until the tracer is dropped;
                // the TCP state program's is kept to toggle it.
                if let Some(link) = attach_btf(&mut ebpf, btf, btf_name, tp, why) {
                    if *name == SOCK_STATE_PROGRAM {
                        sock_state_link = Some(link);
                    }
                    attached.push(btf_name);
                    continue;
                }
            }
            let prog: &mut TracePoint = ebpf
                .program_mut(name)
                .and_then(|p| p.try_into().ok())
                .ok_or(Error::Missing {
                    kind: "program",
                    name,
                })?;
            prog.load().map_err(|e| program_error(name, e))?;
            prog.attach(category, tp).map_err(|e| Error::Attach {
                program: name,
                tracepoint: TRACEPOINTS[i],
                source: Box::new(e),
            })?;
            attached.push(*name);
        }

        // Optional: without them only the application-protocol metrics are missing.
        let mut l7_programs = Vec::new();
        let (l7_attached, l7_error) = if config.l7 {
            match crate::l7_loader::attach(&mut ebpf, btf.as_ref(), config.l7_hooks) {
                Ok(names) => {
                    l7_programs = names;
                    (true, None)
                }
                Err(reason) => (false, Some(reason)),
            }
        } else {
            (false, None)
        };

        // Optional: without it only open_connection_bytes degrades.
        let scan_error = match ebpf
            .program_mut(SCAN_PROGRAM)
            .map(<&mut RawTracePoint>::try_from)
        {
            Some(Ok(p)) => match p.load() {
                Ok(()) => None,
                Err(e) => Some(verifier_excerpt(&e)),
            },
            _ => Some(format!("program {SCAN_PROGRAM} missing from the object")),
        };
        if let Some(reason) = &scan_error {
            warn!(reason = %reason, "Open-connection byte counters unavailable (needs kernel >= 5.13); open connections are still counted, their bytes at close");
        }

        let lost = ebpf
            .take_map("lost")
            .and_then(|m| PerCpuArray::try_from(m).ok())
            .ok_or(Error::Missing {
                kind: "map",
                name: "lost",
            })?;
        let events = ebpf
            .take_map("events")
            .and_then(|m| RingBuf::try_from(m).ok())
            .ok_or(Error::Missing {
                kind: "map",
                name: "events",
            })?;
        let stream = EventStream::new(events, &config).map_err(|source| Error::Poll { source })?;

        info!(
            ring_bytes = ring,
            wakeup_bytes = wakeup,
            "eBPF tracer attached"
        );
        let warn = Mutex::new(LostWarn {
            last_total: 0,
            last_warn: None,
        });
        Ok((
            Tracer {
                ebpf,
                lost,
                attached,
                scan_error,
                warn,
                sock_state_link,
                l7_error,
                l7_attached,
                l7_programs,
            },
            stream,
        ))
    }

    /// Events lost in the kernel, per program, for
    /// `sonde_ebpf_events_lost_total{program}`: one entry per [`PROGRAMS`] name
    /// (events dropped because the ring buffer was full, plus runs the kernel
    /// skipped because another BPF program or map syscall was active on that
    /// CPU, its `recursion_misses`; for `cgroup_mkdir` also cgroups whose path
    /// was longer than [`crate::decode::CGROUP_PATH_MAX`], never reported),
    /// then [`LOST_TCP_UNTRACKED`] (connects whose
    /// tracking state was lost; still reported, possibly with pid 0). Per-CPU
    /// counters are summed. Logs a warning, at most once a minute, when the
    /// total grew.
    pub fn lost_events(&self) -> Vec<(&'static str, u64)> {
        let mut out = Vec::with_capacity(PROGRAMS.len() + 1);
        for (i, ((name, _, _), slot)) in PROGRAMS.iter().zip(PROGRAM_SLOTS).enumerate() {
            let mut n = self.lost_slot(slot, name);
            if let Some(function) = self.attached.get(i) {
                n += self.recursion_misses(function);
            }
            out.push((*name, n));
        }
        out.push((
            LOST_TCP_UNTRACKED,
            self.lost_slot(LOST_TCP_UNTRACKED_SLOT, LOST_TCP_UNTRACKED),
        ));
        if self.l7_attached {
            out.extend(self.l7_lost());
        }
        let total: u64 = out.iter().map(|(_, n)| n).sum();
        if let Ok(mut w) = self.warn.lock()
            && total > w.last_total
        {
            let due = w.last_warn.is_none_or(|t| t.elapsed() >= LOST_WARN_EVERY);
            if due {
                warn!(
                    lost_since_last_warning = total - w.last_total,
                    lost_total = total,
                    "eBPF events lost or unattributed: ring buffer full (raise its size or check the reader), program runs skipped by the kernel, or connection tracking state lost (see docs/tracer.md)"
                );
                w.last_total = total;
                w.last_warn = Some(Instant::now());
            }
        }
        out
    }

    fn lost_slot(&self, slot: u32, name: &str) -> u64 {
        match self.lost.get(&slot, 0) {
            Ok(values) => values.iter().sum(),
            Err(e) => {
                debug!(program = name, error = %e, "Cannot read lost-event counter");
                0
            }
        }
    }

    fn recursion_misses(&self, function: &str) -> u64 {
        let Some(fd) = self.ebpf.program(function).and_then(|p| p.fd().ok()) else {
            return 0;
        };
        match sys::prog_recursion_misses(fd.as_fd()) {
            Ok(n) => n.unwrap_or(0),
            Err(e) => {
                debug!(program = function, error = %e, "Cannot read program recursion misses");
                0
            }
        }
    }

    /// Which OOM program is attached: true when it is the raw tracepoint one,
    /// whose `OomKill::cgroup_id` is the victim's own cgroup; false for the
    /// classic-tracepoint fallback, where it is the allocating task's.
    pub fn oom_cgroup_is_victims(&self) -> bool {
        self.attached.contains(&OOM_RAW_PROGRAM)
    }

    /// Detaches (`false`) or re-attaches (`true`) the tp_btf TCP state program,
    /// everything else staying as it is. While detached no TCP state change is
    /// seen: connections opened then are never reported. For benchmarks that
    /// alternate with and without TCP tracing many times a second, without
    /// reloading the tracer; an agent never calls it. Fails with
    /// [`Error::Missing`] when the classic fallback runs instead.
    pub fn set_tcp_state_tracing(&mut self, on: bool) -> Result<(), Error> {
        let missing = Error::Missing {
            kind: "program",
            name: SOCK_STATE_BTF_PROGRAM,
        };
        if !self.sock_state_is_tp_btf() {
            return Err(missing);
        }
        let prog: &mut BtfTracePoint = self
            .ebpf
            .program_mut(SOCK_STATE_BTF_PROGRAM)
            .and_then(|p| p.try_into().ok())
            .ok_or(missing)?;
        let attach_error = |source| Error::Attach {
            program: SOCK_STATE_BTF_PROGRAM,
            tracepoint: "sock/inet_sock_set_state",
            source: Box::new(source),
        };
        match (on, self.sock_state_link.take()) {
            (true, None) => self.sock_state_link = Some(prog.attach().map_err(attach_error)?),
            (false, Some(link)) => prog.detach(link).map_err(attach_error)?,
            (_, link) => self.sock_state_link = link, // already as asked
        }
        Ok(())
    }

    /// Whether the L7 programs are attached.
    pub fn l7_attached(&self) -> bool {
        self.l7_attached
    }

    /// The attached L7 programs: `l7_sock_send`/`l7_sock_recv` (the socket tracepoints),
    /// `l7_sys_enter`/`l7_sys_exit` (raw syscall tracepoints) or the classic per-syscall ones.
    pub fn l7_programs(&self) -> &[&'static str] {
        &self.l7_programs
    }

    /// Why the L7 programs could not be attached, when they were asked for.
    pub fn l7_error(&self) -> Option<&str> {
        self.l7_error.as_deref()
    }

    /// L7 records and sockets lost in the kernel: (`l7_events`, ring full),
    /// (`l7_sockets`, sockets that could not be registered).
    pub fn l7_lost(&self) -> [(&'static str, u64); 2] {
        [
            ("l7_events", self.lost_slot(L7_LOST_EVENT_SLOT, "l7_events")),
            (
                "l7_sockets",
                self.lost_slot(L7_LOST_SOCKETS_SLOT, "l7_sockets"),
            ),
        ]
    }

    /// The names of the attached programs (the variants, where one was
    /// preferred: `task_newtask_btf`, `oom_mark_victim_task`, ...).
    pub fn attached_programs(&self) -> &[&'static str] {
        &self.attached
    }

    /// Which `inet_sock_set_state` program is attached: true for the tp_btf
    /// one, false for the classic-tracepoint fallback. Both emit the same events.
    pub fn sock_state_is_tp_btf(&self) -> bool {
        self.attached.contains(&SOCK_STATE_BTF_PROGRAM)
    }

    /// Every open tracked connection with its byte counters, read now: how
    /// userspace learns connections that have not closed yet (the kernel writes
    /// no record when a connection opens, only when it closes).
    ///
    /// Runs the `scan_active` program once (BPF_PROG_TEST_RUN), which copies
    /// each socket's payload byte counters into the `active` map, then
    /// dumps that map with BPF_MAP_LOOKUP_BATCH. Cost is proportional to the
    /// number of open connections and paid only at scrape: nothing on the data
    /// path. Feed the result to [`crate::conntrack::ConnectionTable::update_open`].
    /// Where `scan_active` cannot run (kernel < 5.13) the map is still dumped:
    /// connections are reported with the bytes last copied (0), and their
    /// bytes are counted in full at close.
    pub fn open_connection_bytes(&self) -> Result<Vec<ConnectionBytes>, Error> {
        if self.scan_error.is_none() {
            let prog: &RawTracePoint = self
                .ebpf
                .program(SCAN_PROGRAM)
                .and_then(|p| p.try_into().ok())
                .ok_or(Error::Missing {
                    kind: "program",
                    name: SCAN_PROGRAM,
                })?;
            let fd = prog.fd().map_err(|e| Error::ScanUnsupported {
                reason: e.to_string(),
            })?;
            sys::prog_test_run(fd.as_fd()).map_err(|source| Error::Scan { source })?;
        }

        let map = match self.ebpf.map("active") {
            Some(Map::LruHashMap(data)) => data,
            _ => {
                return Err(Error::Missing {
                    kind: "map",
                    name: "active",
                });
            }
        };
        let mut out = Vec::new();
        let mut bad = 0u64;
        sys::map_dump_batch(map.fd().as_fd(), 8, CONNECTION_VALUE_SIZE, |k, v| {
            let mut key = [0u8; 8];
            key.copy_from_slice(k);
            match decode::decode_connection(u64::from_ne_bytes(key), v) {
                Ok(Some(c)) => out.push(c),
                Ok(None) => {} // a connect in progress
                Err(_) => bad += 1,
            }
        })
        .map_err(|source| Error::Scan { source })?;
        if bad > 0 {
            debug!(
                entries = bad,
                "Undecodable entries in the active connection map"
            );
        }
        Ok(out)
    }
}
