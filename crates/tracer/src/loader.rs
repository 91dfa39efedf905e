//! Loading and attaching the embedded object (I/O); see docs/tracer.md.

use std::io;
use std::os::fd::AsFd;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aya::maps::{Map, MapData, PerCpuArray, RingBuf};
use aya::programs::{ProgramError, RawTracePoint, TracePoint};
use aya::{Ebpf, EbpfError, EbpfLoader};
use tracing::{debug, info, warn};

use crate::decode::{self, CONNECTION_VALUE_SIZE, ConnectionBytes};
use crate::stream::EventStream;
use crate::{Error, OBJECT, TracerConfig, sys};

/// Attached programs: (function name, tracepoint category, tracepoint name).
/// Their order is the `lost` counter slot order of `ebpf/include/common.h`.
pub const PROGRAMS: [(&str, &str, &str); 5] = [
    ("task_newtask", "task", "task_newtask"),
    ("sched_process_exit", "sched", "sched_process_exit"),
    ("oom_mark_victim", "oom", "mark_victim"),
    ("inet_sock_set_state", "sock", "inet_sock_set_state"),
    ("tcp_retransmit_skb", "tcp", "tcp_retransmit_skb"),
];

const TRACEPOINTS: [&str; 5] = [
    "task/task_newtask",
    "sched/sched_process_exit",
    "oom/mark_victim",
    "sock/inet_sock_set_state",
    "tcp/tcp_retransmit_skb",
];

const SCAN_PROGRAM: &str = "scan_active";
const LOST_WARN_EVERY: Duration = Duration::from_secs(60);

struct LostWarn {
    last_total: u64,
    last_warn: Option<Instant>,
}

/// The loaded and attached programs. Dropping it detaches everything.
pub struct Tracer {
    ebpf: Ebpf,
    lost: PerCpuArray<MapData, u64>,
    scan_error: Option<String>,
    warn: Mutex<LostWarn>,
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

fn verifier_excerpt(e: &ProgramError) -> String {
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
        let wakeup = (f64::from(ring) * config.wakeup_fraction.clamp(0.0, 1.0)) as u64;
        let mut ebpf = EbpfLoader::new()
            .map_max_entries("events", ring)
            .map_max_entries("active", config.max_connections.max(1))
            .override_global("wakeup_bytes", &wakeup, true)
            .load(OBJECT)
            .map_err(object_error)?;

        for (i, (name, category, tp)) in PROGRAMS.iter().enumerate() {
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
        }

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
            warn!(reason = %reason, "Open-connection byte counters unavailable (needs kernel >= 5.13); closed connections are still counted");
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
                scan_error,
                warn,
            },
            stream,
        ))
    }

    /// Events dropped in the kernel because the ring buffer was full, per
    /// program (per-CPU counters summed), for
    /// `sonde_ebpf_events_lost_total{program}`. Logs a warning, at most once a
    /// minute, when the total grew.
    pub fn lost_events(&self) -> Vec<(&'static str, u64)> {
        let mut out = Vec::with_capacity(PROGRAMS.len());
        for (i, (name, _, _)) in PROGRAMS.iter().enumerate() {
            let n = match self.lost.get(&(i as u32), 0) {
                Ok(values) => values.iter().sum(),
                Err(e) => {
                    debug!(program = name, error = %e, "Cannot read lost-event counter");
                    0
                }
            };
            out.push((*name, n));
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
                    "eBPF events lost: the ring buffer was full (raise the ring buffer size or check the reader)"
                );
                w.last_total = total;
                w.last_warn = Some(Instant::now());
            }
        }
        out
    }

    /// Byte counters of every open tracked connection, read now.
    ///
    /// Runs the `scan_active` program once (BPF_PROG_TEST_RUN), which copies
    /// each socket's payload byte counters into the `active` map, then
    /// dumps that map with BPF_MAP_LOOKUP_BATCH. Cost is proportional to the
    /// number of open connections and paid only at scrape: nothing on the data
    /// path. Feed the result to [`crate::conntrack::ConnectionTable::update_open`].
    pub fn open_connection_bytes(&self) -> Result<Vec<ConnectionBytes>, Error> {
        if let Some(reason) = &self.scan_error {
            return Err(Error::ScanUnsupported {
                reason: reason.clone(),
            });
        }
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
                Ok(c) => out.push(c),
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
