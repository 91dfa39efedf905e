//! The bridge from the eBPF tracer to the registry.
//!
//! Kernel events arrive in batches from the ring buffer. The bridge filters TCP events to real
//! destinations (coroot's rules: no ephemeral ports, loopback only in the host netns, private
//! ranges always, public ranges per `--track-public-network`), keeps the connection table that
//! turns the kernel's per-socket byte totals into exactly-once deltas, makes sure the registry
//! knows a process's cgroup before its first event (one /proc read per process, not per
//! event), and forwards everything through the registry's non-blocking sender: one
//! `Event::Batch` per read of the ring, in order.
//!
//! New processes are looked up ~0.5 s after they start rather than at fork: at fork a process
//! is still in its parent's cgroup (runc moves a container's first process afterwards).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sonde_tracer::conntrack::{ByteDelta, Connected, ConnectionTable, OpenUpdate};
use sonde_tracer::filter::{Cidr, ConnectionFilter};
use sonde_tracer::{Event as KernelEvent, EventStream, Tracer, TracerConfig};

use crate::EventSender;
use crate::cgroup_ids::CgroupIds;
use crate::discovery::{ProcessClock, read_process};
use crate::health::Health;
use crate::net::NetEvent;
use crate::netns_ips::NetnsIps;
use crate::seeding;
use crate::state::Event;

/// How long after its start a new process's cgroup is read.
const NEW_PROCESS_SETTLE: Duration = Duration::from_millis(500);
/// Bound of the queue of new processes waiting for that read; beyond it the /proc scan
/// catches them.
const MAX_PENDING_PROCESSES: usize = 65_536;
/// Bound of the set of processes already announced to the registry.
const MAX_ANNOUNCED: usize = 1 << 20;

/// Tracer settings from the CLI.
#[derive(Debug, Clone)]
pub struct TracerSettings {
    pub enabled: bool,
    pub ephemeral_ports: sonde_tracer::filter::EphemeralPorts,
    pub public_networks: Vec<Cidr>,
    /// NAT resolution from conntrack; None: `--disable-conntrack`.
    pub conntrack: Option<sonde_nat::NatConfig>,
    /// Application-protocol tracing (ebpf/src/l7.c); false: `--disable-l7-tracing`.
    pub l7: bool,
    /// `--exclude-http-requests-by-path`.
    pub exclude_http_paths: Vec<String>,
    /// `--max-fqdns-per-container`.
    pub max_fqdns_per_container: usize,
}

/// The running tracer and the state the scrape needs from it.
pub struct NetTracer {
    tracer: Tracer,
    table: Mutex<ConnectionTable>,
    filter: ConnectionFilter,
    /// For placing a process first seen in a scrape-time dump (see [`NetTracer::place`]).
    procfs: PathBuf,
    clock: Option<ProcessClock>,
    /// Kernel cgroup ids -> paths, for events of processes gone before /proc was read.
    /// Used by the bridge and by the scrape (a connection first seen in a dump).
    cgroup_ids: Mutex<CgroupIds>,
    /// Listeners open before the agent, reported once when the bridge starts.
    seeded_listeners: Mutex<Vec<seeding::SeededListener>>,
    /// Where connections really went (DNAT), see crate::nat_bridge.
    nat: Option<sonde_nat::Nat>,
    /// The TLS uprobes' attacher until the bridge task takes it (crate::tls_bridge).
    tls: Mutex<Option<sonde_tracer::tls::TlsAttacher>>,
}

impl std::fmt::Debug for NetTracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NetTracer")
    }
}

/// Open connections of (pid, cgroup path the kernel saw at connect) to (destination, actual
/// destination): how many.
pub type ActiveCount = ((u32, Option<String>), SocketAddr, SocketAddr, u64);

/// What a scrape learns from the tracer.
#[derive(Debug, Default)]
pub struct TracerScrape {
    /// Open connections seen for the first time (counted as connects now).
    pub connected: Vec<Connected>,
    pub bytes: Vec<ByteDelta>,
    /// Open connections per (pid, cgroup path the kernel saw at connect), destination and
    /// actual destination.
    pub active: Vec<ActiveCount>,
    pub lost: Vec<(&'static str, u64)>,
    pub tracked_connections: usize,
    pub table_overflow: u64,
    pub stale_connections: u64,
    pub nat: Option<sonde_nat::NatStats>,
    /// Whether the L7 programs are attached (their self-metrics are rendered then).
    pub l7_attached: bool,
}

impl NetTracer {
    /// Loads the eBPF programs. On failure the `tracer` subsystem is down with the reason and
    /// discovery stays on the /proc scan.
    pub fn start(
        settings: &TracerSettings,
        procfs: &std::path::Path,
        cgroupfs: Option<sonde_cgroup::CgroupFs>,
        health: &Health,
    ) -> Option<(Arc<NetTracer>, EventStream)> {
        if !settings.enabled {
            health.down(
                "tracer",
                "disabled by --disable-ebpf: no TCP, OOM or restart metrics; discovery polls /proc",
            );
            return None;
        }
        let config = TracerConfig {
            l7: settings.l7,
            l7_parsing: sonde_l7::Config {
                exclude_http_paths: settings.exclude_http_paths.clone(),
            },
            ..TracerConfig::default()
        };
        let capacity = config.max_connections as usize;
        let btf_path = config.btf_path.clone();
        let (mut tracer, stream) = match Tracer::start(config) {
            Ok(t) => t,
            Err(e) => {
                health.down(
                    "tracer",
                    format!("eBPF tracer not loaded: {}. TCP, OOM and restart metrics are off; discovery polls /proc", e.reason()),
                );
                return None;
            }
        };
        // pid 1's netns is the host's; where it cannot be read (no CAP_SYS_PTRACE over pid 1),
        // the agent's own, which is the host's when it runs with hostNetwork as it must.
        let host_netns = sonde_tracer::filter::host_netns(procfs)
            .ok()
            .or_else(|| {
                let link = std::fs::read_link(procfs.join("self/ns/net")).ok()?;
                sonde_tracer::filter::parse_netns_link(&link.to_string_lossy())
            })
            .unwrap_or(0);
        health.up("tracer");
        match (settings.l7, tracer.l7_error()) {
            (false, _) => health.down(
                "l7",
                "disabled by --disable-l7-tracing: no HTTP, gRPC, database or DNS request metrics",
            ),
            (true, Some(reason)) => health.down(
                "l7",
                format!("L7 programs not attached ({reason}): no HTTP, gRPC, database or DNS request metrics; the rest of the tracer runs"),
            ),
            (true, None) => health.up("l7"),
        }
        let tls = if tracer.l7_attached() {
            crate::tls_bridge::load(&mut tracer, procfs, health)
        } else {
            None
        };
        let filter = ConnectionFilter::new(
            settings.ephemeral_ports.clone(),
            settings.public_networks.clone(),
            host_netns,
        );
        let mut table = ConnectionTable::new(capacity);
        // After the programs attached, so a socket is either seen here or by them.
        let seeded = seeding::seed(&mut tracer, &btf_path, procfs, &filter, &mut table);
        let nat = crate::nat_bridge::start(settings.conntrack.as_ref(), health);
        Some((
            Arc::new(NetTracer {
                tracer,
                table: Mutex::new(table),
                filter,
                seeded_listeners: Mutex::new(seeded.listeners),
                procfs: procfs.to_path_buf(),
                clock: ProcessClock::new(procfs).ok(),
                // Seeded after the tracer started, so a cgroup made in between is in the
                // walk or in a cgroup_mkdir event.
                cgroup_ids: Mutex::new(CgroupIds::seeded(cgroupfs)),
                nat,
                tls: Mutex::new(tls),
            }),
            stream,
        ))
    }

    /// Reads the open connections (new ones are connects now), their byte counters and the
    /// active-connection counts. The table stays locked from the dump until it is applied, so a
    /// connection's close record (the kernel deletes the entry before writing it) is always
    /// applied after a dump that showed the connection.
    pub fn scrape(&self) -> TracerScrape {
        crate::nat_bridge::sync(self.nat.as_ref());
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        let OpenUpdate { connected, bytes } = match self.tracer.open_connection_bytes() {
            Ok(mut snapshot) => {
                snapshot.retain(|c| self.filter.is_destination(c.dst, c.netns));
                table.update_open(&snapshot, Instant::now())
            }
            Err(e) => {
                tracing::debug!(error = %e, "Cannot read open connections");
                OpenUpdate::default()
            }
        };
        let active = {
            let mut ids = self
                .cgroup_ids
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let mut by_key = std::collections::HashMap::new();
            for (pid, cgroup_id, _netns, src, dst) in table.active_connections() {
                *by_key
                    .entry((pid, cgroup_id, dst, self.actual(src, dst)))
                    .or_insert(0u64) += 1;
            }
            by_key
                .into_iter()
                .map(|((pid, cgroup_id, dst, actual), n)| {
                    (
                        (pid, ids.resolve(cgroup_id).map(str::to_owned)),
                        dst,
                        actual,
                        n,
                    )
                })
                .collect()
        };
        TracerScrape {
            connected,
            bytes,
            active,
            lost: self.tracer.lost_events(),
            l7_attached: self.tracer.l7_attached(),
            tracked_connections: table.len(),
            table_overflow: table.overflow(),
            stale_connections: table.stale(),
            nat: self.nat.as_ref().map(sonde_nat::Nat::stats),
        }
    }

    /// Where the connection `src -> dst` really went (its NAT upstream, else `dst`).
    pub fn actual(&self, src: SocketAddr, dst: SocketAddr) -> SocketAddr {
        crate::nat_bridge::actual_destination(self.nat.as_ref(), src, dst)
    }

    /// The path of the cgroup the kernel knows by `id` (None for 0 and unknown ids).
    pub fn cgroup_path(&self, id: u64) -> Option<String> {
        self.cgroup_ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .resolve(id)
            .map(str::to_owned)
    }

    /// The registry event that places `pid` in its cgroup, for a process first seen through
    /// a scrape-time dump (the bridge places processes at their first ring event, but an open
    /// connection's first report may be the dump). None when it is gone or unreadable.
    pub fn place(&self, pid: u32, buf: &mut String) -> Option<Event> {
        let clock = self.clock.as_ref()?;
        let (start_ticks, cgroups) = read_process(&self.procfs, pid, buf).ok()??;
        Some(Event::ProcessSeen {
            pid,
            start_ticks,
            age: clock.age(start_ticks),
            cgroups,
        })
    }
}

/// Counters of the bridge, for self-metrics.
#[derive(Debug, Default)]
pub struct BridgeStats {
    pub decode_errors: std::sync::atomic::AtomicU64,
    pub pending_dropped: std::sync::atomic::AtomicU64,
    /// The L7 engine's counters, copied every 250 ms (they sum over live sessions).
    pub l7: Mutex<sonde_tracer::l7::L7Stats>,
    /// The TLS attacher's counters (None: TLS uprobes not loaded), copied every 250 ms.
    pub tls: Mutex<Option<sonde_tracer::tls::TlsStats>>,
}

/// Moves kernel events into the registry until the stream fails.
pub async fn run_bridge(
    net: Arc<NetTracer>,
    mut stream: EventStream,
    events: EventSender,
    procfs: PathBuf,
    health: Health,
    stats: Arc<BridgeStats>,
) {
    let clock = match ProcessClock::new(&procfs) {
        Ok(c) => c,
        Err(e) => {
            health.down(
                "tracer",
                format!("cannot read the boot time ({e}); process events ignored"),
            );
            return;
        }
    };
    let opt_outs = crate::l7_optout::OptOuts::new(&procfs);
    let mut tls = net
        .tls
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    if let Some(t) = &mut tls {
        crate::tls_bridge::scan_existing(t, &procfs);
    }
    let mut bridge = Bridge {
        tls,
        netns_ips: NetnsIps::new(&procfs),
        net,
        events,
        procfs,
        clock,
        announced: foldhash::HashSet::default(),
        pending: VecDeque::new(),
        buf: String::with_capacity(4096),
        stats,
        out: Vec::new(),
        opt_outs,
    };
    // Listeners older than the agent, as if they had just opened.
    let seeded = std::mem::take(
        &mut *bridge
            .net
            .seeded_listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner),
    );
    {
        let net = bridge.net.clone();
        let mut table = LazyTable {
            table: &net.table,
            guard: None,
        };
        for l in seeded {
            bridge.handle(
                KernelEvent::ListenOpen {
                    pid: l.pid,
                    netns: l.netns,
                    addr: l.addr,
                    cgroup_id: 0,
                },
                &mut table,
            );
        }
    }
    bridge.flush();
    let mut batch = Vec::with_capacity(1024);
    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            result = stream.next_batch(&mut batch) => {
                if let Err(e) = result {
                    health.down("tracer", format!("reading eBPF events failed: {}", e.reason()));
                    return;
                }
                // One lock of the connection table and one queue item per read of the ring,
                // not one per event: per event, those atomics were most of the bridge's cost.
                let net = bridge.net.clone();
                crate::nat_bridge::sync(net.nat.as_ref());
                let mut table = LazyTable { table: &net.table, guard: None };
                for event in batch.drain(..) {
                    bridge.handle(event, &mut table);
                }
                drop(table);
                bridge.flush();
                bridge.stats.decode_errors.store(stream.decode_errors(), std::sync::atomic::Ordering::Relaxed);
            }
            _ = ticker.tick() => {
                bridge.resolve_settled(Instant::now());
                bridge.flush();
                *bridge.stats.l7.lock().unwrap_or_else(PoisonError::into_inner) = stream.l7_stats();
                if let Some(t) = &mut bridge.tls {
                    t.rescan_due(Instant::now());
                    *bridge.stats.tls.lock().unwrap_or_else(PoisonError::into_inner) = Some(t.stats().clone());
                }
            }
        }
    }
}

struct Bridge {
    /// Places the TLS uprobes on the files of new processes (crate::tls_bridge).
    tls: Option<sonde_tracer::tls::TlsAttacher>,
    net: Arc<NetTracer>,
    events: EventSender,
    procfs: PathBuf,
    clock: ProcessClock,
    /// Processes whose cgroup the registry has been told about by the bridge.
    announced: foldhash::HashSet<u32>,
    /// New processes waiting to settle into their cgroup.
    pending: VecDeque<(Instant, u32)>,
    buf: String,
    stats: Arc<BridgeStats>,
    /// Addresses of network namespaces, for wildcard listeners.
    netns_ips: NetnsIps,
    /// Registry events of the batch being handled, in order; sent by `flush`.
    out: Vec<Event>,
    /// Processes opted out of L7 tracing by their environment.
    opt_outs: crate::l7_optout::OptOuts,
}

/// The connection table for one read of the ring: locked at its first TCP event and held to
/// the end of the read (a scrape waits meanwhile), released early around slow lookups.
struct LazyTable<'a> {
    table: &'a Mutex<ConnectionTable>,
    guard: Option<std::sync::MutexGuard<'a, ConnectionTable>>,
}

impl LazyTable<'_> {
    fn get(&mut self) -> &mut ConnectionTable {
        self.guard
            .get_or_insert_with(|| self.table.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn release(&mut self) {
        self.guard = None;
    }
}

impl Bridge {
    fn handle(&mut self, event: KernelEvent, table: &mut LazyTable<'_>) {
        let filter = &self.net.filter;
        match event {
            KernelEvent::ProcessStart { pid, .. } => {
                if let Some(t) = &mut self.tls {
                    t.process_started(pid);
                }
                if self.pending.len() < MAX_PENDING_PROCESSES {
                    self.pending.push_back((Instant::now(), pid));
                } else {
                    self.stats
                        .pending_dropped
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
            KernelEvent::ProcessExec { pid, file } => {
                if let Some(t) = &mut self.tls {
                    t.exec_seen(pid, file);
                }
            }
            KernelEvent::ProcessExit { pid, cgroup_id, .. } => {
                self.opt_outs.forget(pid);
                if self.announced.remove(&pid) {
                    self.out.push(Event::ProcessGone { pid });
                    return;
                }
                // Never placed: gone before its /proc could be read (or before it settled).
                // The cgroup it ended in still places it, as a run of that container.
                table.release();
                match self.net.cgroup_path(cgroup_id) {
                    Some(cgroup_path) => {
                        self.out
                            .push(Event::ProcessExitInCgroup { pid, cgroup_path });
                    }
                    // The registry may still know it from the /proc scan.
                    None => self.out.push(Event::ProcessGone { pid }),
                }
            }
            KernelEvent::CgroupCreated { cgroup_id, path } => {
                // The registry counts a container's runs by its directory's id.
                self.out.push(Event::CgroupCreated {
                    cgroup_path: path.clone(),
                    cgroup_inode: cgroup_id,
                });
                self.net
                    .cgroup_ids
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(cgroup_id, path);
            }
            KernelEvent::OomKill { pid, cgroup_id } => {
                // /proc, then maybe a walk of the cgroup hierarchy: not with the table held.
                table.release();
                if self.announce(pid) {
                    self.out.push(Event::OomKill { pid });
                } else {
                    // Killed and gone before we could read its cgroup (a container whose only
                    // process was the victim), and runc may already have removed the cgroup
                    // directory: the path remembered from its creation or the start's walk.
                    match self.net.cgroup_path(cgroup_id) {
                        Some(cgroup_path) => {
                            self.out.push(Event::OomKillInCgroup { pid, cgroup_path });
                        }
                        // The registry may still know the pid from the /proc scan.
                        None => self.out.push(Event::OomKill { pid }),
                    }
                }
            }
            KernelEvent::ListenOpen {
                pid,
                addr,
                cgroup_id,
                netns,
            } if filter.is_tracked_listen(addr) => {
                let host_netns = filter.is_host_netns(netns);
                let ns_ips = if addr.ip().is_unspecified() {
                    // /proc reads: not with the table held. Listeners are rare.
                    table.release();
                    self.netns_ips.get(netns, pid, Instant::now())
                } else {
                    std::sync::Arc::from([])
                };
                let event = NetEvent::ListenOpen {
                    addr,
                    ns_ips,
                    host_netns,
                };
                self.net_event(pid, cgroup_id, event, table);
            }
            KernelEvent::ListenClose {
                pid,
                addr,
                cgroup_id,
                ..
            } if filter.is_tracked_listen(addr) => {
                self.net_event(pid, cgroup_id, NetEvent::ListenClose { addr }, table);
            }
            KernelEvent::ConnectOk { netns, dst, .. }
            | KernelEvent::ConnectionClosed { netns, dst, .. }
                if filter.is_destination(dst, netns) =>
            {
                let applied = table.get().apply(&event);
                let connect_duration = applied
                    .connected
                    .map(|c| Duration::from_nanos(c.duration_ns));
                match (applied.bytes, applied.connected) {
                    // A close: one event for its connect (if not counted yet) and its bytes.
                    (Some(d), _) => self.net_event(
                        d.pid,
                        d.cgroup_id,
                        NetEvent::Closed {
                            dst: d.dst,
                            actual: self.net.actual(d.src, d.dst),
                            connect_duration,
                            sent: d.sent,
                            received: d.received,
                            segs_out: d.segs_out,
                            segs_in: d.segs_in,
                        },
                        table,
                    ),
                    // A ConnectOk: the connect alone (the kernel keeps nothing to close).
                    (None, Some(c)) => self.net_event(
                        c.pid,
                        c.cgroup_id,
                        NetEvent::Connected {
                            dst: c.dst,
                            actual: self.net.actual(c.src, c.dst),
                            duration: connect_duration.unwrap_or_default(),
                        },
                        table,
                    ),
                    (None, None) => {}
                }
            }
            KernelEvent::ConnectFailed {
                pid,
                netns,
                dst,
                cgroup_id,
                ..
            } if filter.is_destination(dst, netns) => {
                self.net_event(pid, cgroup_id, NetEvent::ConnectFailed { dst }, table);
            }
            KernelEvent::Retransmit {
                pid,
                netns,
                src,
                dst,
                cgroup_id,
                ..
            } if filter.is_destination(dst, netns) => {
                let actual = self.net.actual(src, dst);
                self.net_event(pid, cgroup_id, NetEvent::Retransmit { dst, actual }, table);
            }
            KernelEvent::L7Request {
                pid,
                cgroup_id,
                netns,
                role,
                src,
                dst,
                request,
            } => {
                let inbound = role == sonde_l7::Role::Server;
                // Requests made count per destination under the same rules as connections
                // (so the two sets of series agree); DNS is counted by name, whatever the
                // resolver's address (a loopback stub resolver included).
                if !inbound
                    && request.protocol != sonde_l7::Protocol::Dns
                    && !filter.is_destination(dst, netns)
                {
                    return;
                }
                let actual = if inbound {
                    dst
                } else {
                    self.net.actual(src, dst)
                };
                let event = NetEvent::L7 {
                    dst,
                    actual,
                    inbound,
                    request: Box::new(request),
                    opted_out: self.opt_outs.of(pid),
                };
                self.net_event(pid, cgroup_id, event, table);
            }
            _ => {} // Not a destination, or an ephemeral listener.
        }
    }

    /// Sends the events handled since the last flush, as one batch.
    fn flush(&mut self) {
        if !self.out.is_empty() {
            let capacity = self.out.capacity();
            let events = std::mem::replace(&mut self.out, Vec::with_capacity(capacity));
            self.events.send_batch(events);
        }
    }

    /// Forwards a TCP happening of `pid`, which the kernel saw in cgroup `cgroup_id`: by pid
    /// when the process can be placed from /proc (or is placed already), else by the cgroup
    /// (a process gone before it could be read: a shell loop's `nc` or `curl`).
    fn net_event(&mut self, pid: u32, cgroup_id: u64, event: NetEvent, table: &mut LazyTable<'_>) {
        if pid == 0 || self.announced.contains(&pid) {
            self.out.push(Event::Net { pid, event });
            return;
        }
        // /proc and maybe a cgroup walk: not with the table held.
        table.release();
        if !self.announce(pid)
            && let Some(cgroup_path) = self.net.cgroup_path(cgroup_id)
        {
            self.out.push(Event::NetInCgroup {
                pid,
                cgroup_path,
                event,
            });
            return;
        }
        self.out.push(Event::Net { pid, event });
    }

    /// Tells the registry which cgroup `pid` is in, once per process. False when the process
    /// could not be read (gone).
    fn announce(&mut self, pid: u32) -> bool {
        if self.announced.contains(&pid) {
            return true;
        }
        if self.announced.len() >= MAX_ANNOUNCED {
            // Exits normally keep this small; a flood of forks without exits is bounded here.
            self.announced.clear();
        }
        // Gone or unreadable: the registry may still know it from the /proc scan.
        if let Ok(Some((start_ticks, cgroups))) = read_process(&self.procfs, pid, &mut self.buf) {
            self.out.push(Event::ProcessSeen {
                pid,
                start_ticks,
                age: self.clock.age(start_ticks),
                cgroups,
            });
            self.announced.insert(pid);
            return true;
        }
        false
    }

    /// Announces new processes that had time to settle into their cgroup.
    fn resolve_settled(&mut self, now: Instant) {
        while let Some(&(started, pid)) = self.pending.front() {
            if now.saturating_duration_since(started) < NEW_PROCESS_SETTLE {
                break;
            }
            self.pending.pop_front();
            self.announced.remove(&pid);
            let _ = self.announce(pid);
        }
    }
}
