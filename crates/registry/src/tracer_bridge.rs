//! The bridge from the eBPF tracer to the registry.
//!
//! One task (`run_bridge`) reads the kernel's ring in batches and is the only writer of
//! everything the tracer's side keeps: the connection table
//! (`sonde_tracer::connections::Connections`, which merges the ring's connection records and
//! the dumps of the kernel's open-connection map into exactly-once deltas), the cgroup id
//! map, the set of processes already placed. It filters TCP events to real destinations
//! (coroot's rules: no ephemeral ports, loopback only in the host netns, private ranges
//! always, public ranges per `--track-public-network`), makes sure the registry knows a
//! process's cgroup before its first event (one /proc read per process, not per event), and
//! forwards everything through the registry's event queue: one batch per read of the ring,
//! in order.
//!
//! A scrape changes nothing here: it asks the bridge for a dump of the open connections
//! ([`NetTracer::scrape`]), the bridge merges it between two reads of the ring and sends what
//! it found (connects, byte deltas, the active connections) as one batch, and the scrape
//! waits (bounded) until the registry task has applied that batch, so what it renders is as
//! of its own dump, as before, with one writer per state.
//!
//! New processes are looked up ~0.5 s after they start rather than at fork: at fork a process
//! is still in its parent's cgroup (runc moves a container's first process afterwards).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sonde_tracer::connections::{ConnectionDelta, Connections};
use sonde_tracer::filter::{Cidr, ConnectionFilter};
use sonde_tracer::{Event as KernelEvent, EventStream, Tracer, TracerConfig};
use tokio::sync::mpsc;

use crate::EventSender;
use crate::cgroup_ids::CgroupIds;
use crate::discovery::{NEW_PROCESS_SETTLE, ProcessClock, read_process};
use crate::health::Health;
use crate::net::{ActiveCount, NetEvent};
use crate::netns_ips::NetnsIps;
use crate::seeding;
use crate::state::Event;

/// Bound of the queue of new processes waiting for that read; beyond it the /proc scan
/// catches them.
const MAX_PENDING_PROCESSES: usize = 65_536;
/// Bound of the set of processes already announced to the registry.
const MAX_ANNOUNCED: usize = 1 << 20;
/// Scrapes waiting for a dump at once (HTTP and push); one more renders without waiting.
const MAX_DUMP_REQUESTS: usize = 8;
/// Longest a scrape waits for its dump to be applied; it renders what the state has then.
/// A dump costs O(open connections): the scrape that learned 100,000 of them took ~120 ms
/// (docs/benchmarks.md, "one scrape with 100,000 open connections").
const DUMP_WAIT: Duration = Duration::from_secs(5);

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
    /// Trace export of outbound requests (`--traces-endpoint`): the parsers keep each
    /// request's text, and the registry hands the requests to this hook.
    pub spans: Option<crate::SpanHook>,
}

/// The running tracer, as a scrape sees it: read-only figures, and a way to ask the bridge
/// for a dump of the open connections.
pub struct NetTracer {
    tracer: Tracer,
    /// Where connections really went (DNAT), see crate::nat_bridge.
    nat: Option<sonde_nat::Nat>,
    /// Dump requests to the bridge: each carries the acknowledgement the registry task sends
    /// once the dump's batch is applied.
    dumps: mpsc::Sender<std::sync::mpsc::SyncSender<()>>,
    stats: Arc<BridgeStats>,
}

impl std::fmt::Debug for NetTracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NetTracer")
    }
}

/// What only the bridge task owns, handed to [`run_bridge`] by [`NetTracer::start`].
pub struct BridgeParts {
    connections: Connections,
    /// Kernel cgroup ids -> paths, for events of processes gone before /proc was read.
    cgroup_ids: CgroupIds,
    /// Listeners open before the agent, reported once when the bridge starts.
    seeded_listeners: Vec<seeding::SeededListener>,
    /// The TLS uprobes' attacher (crate::tls_bridge).
    tls: Option<sonde_tracer::tls::TlsAttacher>,
    dumps: mpsc::Receiver<std::sync::mpsc::SyncSender<()>>,
}

impl std::fmt::Debug for BridgeParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BridgeParts")
    }
}

/// What a scrape reads from the tracer (it changes nothing).
#[derive(Debug, Default)]
pub struct TracerScrape {
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
        stats: Arc<BridgeStats>,
    ) -> Option<(Arc<NetTracer>, EventStream, BridgeParts)> {
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
                capture: settings.spans.is_some(),
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
        let mut connections = Connections::new(capacity, filter);
        // After the programs attached, so a socket is either seen here or by them.
        let seeded = seeding::seed(&mut tracer, &btf_path, procfs, &mut connections);
        stats.publish(&connections);
        let nat = crate::nat_bridge::start(settings.conntrack.as_ref(), health);
        let (dumps_tx, dumps_rx) = mpsc::channel(MAX_DUMP_REQUESTS);
        let parts = BridgeParts {
            connections,
            // Seeded after the tracer started, so a cgroup made in between is in the walk or
            // in a cgroup_mkdir event.
            cgroup_ids: CgroupIds::seeded(cgroupfs),
            seeded_listeners: seeded.listeners,
            tls,
            dumps: dumps_rx,
        };
        Some((
            Arc::new(NetTracer {
                tracer,
                nat,
                dumps: dumps_tx,
                stats,
            }),
            stream,
            parts,
        ))
    }

    /// What a scrape needs from the tracer. First asks the bridge for a dump of the open
    /// connections and waits until the registry task has applied it (at most [`DUMP_WAIT`]),
    /// so the state then holds every connect and byte of the connections open now and their
    /// active counts. Blocks: call it from a blocking context, holding no registry lock.
    pub fn scrape(&self) -> TracerScrape {
        let (ack, applied) = std::sync::mpsc::sync_channel(1);
        match self.dumps.try_send(ack) {
            Ok(()) => {
                // Err: the dump's batch was dropped (queue full, counted there) or is late;
                // the state is rendered as it is.
                if applied.recv_timeout(DUMP_WAIT).is_err() {
                    tracing::debug!("The open-connection dump was not applied in time");
                }
            }
            // Full: as many scrapes are waiting already; closed: the bridge stopped.
            Err(_) => tracing::debug!("No open-connection dump for this scrape"),
        }
        TracerScrape {
            lost: self.tracer.lost_events(),
            l7_attached: self.tracer.l7_attached(),
            tracked_connections: self.stats.tracked_connections.load(Relaxed) as usize,
            table_overflow: self.stats.table_overflow.load(Relaxed),
            stale_connections: self.stats.stale_connections.load(Relaxed),
            nat: self.nat.as_ref().map(sonde_nat::Nat::stats),
        }
    }
}

/// Counters of the bridge, for self-metrics: written by the bridge task, read by scrapes.
#[derive(Debug, Default)]
pub struct BridgeStats {
    pub decode_errors: AtomicU64,
    pub pending_dropped: AtomicU64,
    /// The connection table's figures, as of the bridge's latest change to it.
    pub tracked_connections: AtomicU64,
    pub table_overflow: AtomicU64,
    pub stale_connections: AtomicU64,
    /// The L7 engine's counters, copied every 250 ms (they sum over live sessions).
    pub l7: Mutex<sonde_tracer::l7::L7Stats>,
    /// The TLS attacher's counters (None: TLS uprobes not loaded), copied every 250 ms.
    pub tls: Mutex<Option<sonde_tracer::tls::TlsStats>>,
}

impl BridgeStats {
    fn publish(&self, connections: &Connections) {
        let c = connections.stats();
        self.tracked_connections.store(c.tracked as u64, Relaxed);
        self.table_overflow.store(c.overflow, Relaxed);
        self.stale_connections.store(c.stale, Relaxed);
    }
}

/// Moves kernel events into the registry until the stream fails.
pub async fn run_bridge(
    net: Arc<NetTracer>,
    mut stream: EventStream,
    parts: BridgeParts,
    events: EventSender,
    procfs: PathBuf,
    health: Health,
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
    let BridgeParts {
        connections,
        cgroup_ids,
        seeded_listeners,
        mut tls,
        mut dumps,
    } = parts;
    let opt_outs = crate::l7_optout::OptOuts::new(&procfs);
    if let Some(t) = &mut tls {
        crate::tls_bridge::scan_existing(t, &procfs);
    }
    let mut bridge = Bridge {
        tls,
        netns_ips: NetnsIps::new(&procfs),
        stats: net.stats.clone(),
        net,
        connections,
        cgroup_ids,
        events,
        procfs,
        clock,
        announced: foldhash::HashSet::default(),
        pending: VecDeque::new(),
        buf: String::with_capacity(4096),
        out: Vec::new(),
        deltas: Vec::new(),
        opt_outs,
    };
    // Listeners older than the agent, as if they had just opened.
    for l in seeded_listeners {
        bridge.handle(KernelEvent::ListenOpen {
            pid: l.pid,
            netns: l.netns,
            addr: l.addr,
            cgroup_id: 0,
        });
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
                // One queue item per read of the ring, not one per event: per event, the
                // queue's atomics were most of the bridge's cost.
                crate::nat_bridge::sync(bridge.net.nat.as_ref());
                for event in batch.drain(..) {
                    bridge.handle(event);
                }
                bridge.flush();
                bridge.stats.publish(&bridge.connections);
                bridge.stats.decode_errors.store(stream.decode_errors(), Relaxed);
            }
            Some(ack) = dumps.recv() => {
                // Scrapes that asked meanwhile share this dump.
                let mut acks = vec![ack];
                while let Ok(ack) = dumps.try_recv() {
                    acks.push(ack);
                }
                bridge.dump(acks).await;
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
    /// The open-connection table; only this task touches it.
    connections: Connections,
    /// Kernel cgroup ids -> paths, for events of processes gone before /proc was read.
    cgroup_ids: CgroupIds,
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
    /// A dump's connection deltas (kept for its capacity).
    deltas: Vec<ConnectionDelta>,
    /// Processes opted out of L7 tracing by their environment.
    opt_outs: crate::l7_optout::OptOuts,
}

impl Bridge {
    fn handle(&mut self, event: KernelEvent) {
        let filter = self.connections.filter();
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
                match self.cgroup_path(cgroup_id) {
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
                self.cgroup_ids.insert(cgroup_id, path);
            }
            KernelEvent::OomKill { pid, cgroup_id } => {
                if self.announce(pid) {
                    self.out.push(Event::OomKill { pid });
                } else {
                    // Killed and gone before we could read its cgroup (a container whose only
                    // process was the victim), and runc may already have removed the cgroup
                    // directory: the path remembered from its creation or the start's walk.
                    match self.cgroup_path(cgroup_id) {
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
                    self.netns_ips.get(netns, pid, Instant::now())
                } else {
                    std::sync::Arc::from([])
                };
                let event = NetEvent::ListenOpen {
                    addr,
                    ns_ips,
                    host_netns,
                };
                self.net_event(pid, cgroup_id, event);
            }
            KernelEvent::ListenClose {
                pid,
                addr,
                cgroup_id,
                ..
            } if filter.is_tracked_listen(addr) => {
                self.net_event(pid, cgroup_id, NetEvent::ListenClose { addr });
            }
            KernelEvent::ConnectOk { .. } | KernelEvent::ConnectionClosed { .. } => {
                // Filtered to destinations and merged with the dumps by the table.
                if let Some(delta) = self.connections.apply(&event) {
                    self.connection(delta);
                }
            }
            KernelEvent::ConnectFailed {
                pid,
                netns,
                dst,
                cgroup_id,
                ..
            } if filter.is_destination(dst, netns) => {
                self.net_event(pid, cgroup_id, NetEvent::ConnectFailed { dst });
            }
            KernelEvent::Retransmit {
                pid,
                netns,
                src,
                dst,
                cgroup_id,
                ..
            } if filter.is_destination(dst, netns) => {
                let actual = self.actual(src, dst);
                self.net_event(pid, cgroup_id, NetEvent::Retransmit { dst, actual });
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
                let actual = if inbound { dst } else { self.actual(src, dst) };
                let event = NetEvent::L7 {
                    dst,
                    actual,
                    inbound,
                    request: Box::new(request),
                    opted_out: self.opt_outs.of(pid),
                };
                self.net_event(pid, cgroup_id, event);
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

    /// Forwards what one report of a connection adds.
    fn connection(&mut self, d: ConnectionDelta) {
        let event = NetEvent::Connection {
            dst: d.dst,
            actual: self.actual(d.src, d.dst),
            connect: d.connect,
            sent: d.sent,
            received: d.received,
            segs_out: d.segs_out,
            segs_in: d.segs_in,
        };
        self.net_event(d.pid, d.cgroup_id, event);
    }

    /// Dumps the open connections into the table and sends what the dump adds (connects,
    /// byte deltas) and the active connections; `acks` are told once the registry task has
    /// applied it all. Waits for room in the queue rather than dropping: a scrape waits for
    /// this (a first dump of 100,000 connections is 100,000 connects), and while it waits
    /// the ring fills, within its bound, as it did when the scrape merged the dump itself.
    async fn dump(&mut self, acks: Vec<std::sync::mpsc::SyncSender<()>>) {
        // Before looking connections up: a connection the dump shows had its conntrack
        // entry created at its first packet, so that event is queued by now.
        crate::nat_bridge::sync(self.net.nat.as_ref());
        let mut deltas = std::mem::take(&mut self.deltas);
        if let Err(e) = self
            .connections
            .dump(&self.net.tracer, Instant::now(), &mut deltas)
        {
            tracing::debug!(error = %e, "Cannot read open connections");
        }
        for d in deltas.drain(..) {
            self.connection(d);
        }
        self.deltas = deltas;
        // Active connections per (pid, cgroup id, destination, actual destination).
        let nat = self.net.nat.as_ref();
        let mut by_key: foldhash::HashMap<(u32, u64, SocketAddr, SocketAddr), u64> =
            foldhash::HashMap::default();
        for a in self.connections.active() {
            let actual = crate::nat_bridge::actual_destination(nat, a.src, a.dst);
            *by_key
                .entry((a.pid, a.cgroup_id, a.dst, actual))
                .or_insert(0) += 1;
        }
        let counts = by_key
            .into_iter()
            .map(|((pid, cgroup_id, dst, actual), count)| ActiveCount {
                pid,
                cgroup_path: self.cgroup_path(cgroup_id),
                dst,
                actual,
                count,
            })
            .collect();
        self.out.push(Event::ActiveConnections(counts));
        self.stats.publish(&self.connections);
        let events = std::mem::take(&mut self.out);
        // Err: the registry task is gone (the agent is stopping); the acks go with the batch.
        let _ = self.events.send_waiting_acknowledged(events, acks).await;
    }

    /// Where the connection `src -> dst` really went (its NAT upstream, else `dst`).
    fn actual(&self, src: SocketAddr, dst: SocketAddr) -> SocketAddr {
        crate::nat_bridge::actual_destination(self.net.nat.as_ref(), src, dst)
    }

    /// The path of the cgroup the kernel knows by `id` (None for 0 and unknown ids).
    fn cgroup_path(&mut self, id: u64) -> Option<String> {
        self.cgroup_ids.resolve(id).map(str::to_owned)
    }

    /// Forwards a TCP happening of `pid`, which the kernel saw in cgroup `cgroup_id`: by pid
    /// when the process can be placed from /proc (or is placed already), else by the cgroup
    /// (a process gone before it could be read: a shell loop's `nc` or `curl`).
    fn net_event(&mut self, pid: u32, cgroup_id: u64, event: NetEvent) {
        if pid == 0 || self.announced.contains(&pid) {
            self.out.push(Event::Net { pid, event });
            return;
        }
        if !self.announce(pid)
            && let Some(cgroup_path) = self.cgroup_path(cgroup_id)
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
