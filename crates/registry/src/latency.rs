//! `container_net_latency_seconds{destination_ip}`: ICMP round-trip time from inside each
//! container's network namespace to the upstreams it connects to (the `actual_destination`
//! IPs of its TCP connections), measured by a background thread so scrapes never wait on the
//! network.
//!
//! Bounds: at most [`MAX_TARGETS_PER_CONTAINER`] addresses per container and [`MAX_TARGETS`]
//! in all (the rest counted in `sonde_pinger_targets_dropped_total`); one echo request per
//! address per round, a round every [`INTERVAL`] (sooner when the set of targets changed), at
//! most [`PARALLEL`] namespaces pinged at once, each waiting [`TIMEOUT`] at most. A container's
//! namespace is pinged once however many containers share it.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::exported::ExportedContainer;
use crate::health::Health;

pub const MAX_TARGETS_PER_CONTAINER: usize = 32;
pub const MAX_TARGETS: usize = 2048;
pub const INTERVAL: Duration = Duration::from_secs(10);
/// coroot's ping timeout.
pub const TIMEOUT: Duration = Duration::from_millis(300);
pub const PARALLEL: usize = 16;

/// What to ping for one container: from the namespace of `pid`.
#[derive(Debug, Clone, PartialEq)]
struct Job {
    key: String,
    pid: u32,
    ips: Vec<Ipv4Addr>,
}

#[derive(Debug, Default)]
struct Shared {
    jobs: Mutex<Vec<Job>>,
    changed: AtomicBool,
    /// Per container key: (ip, rtt seconds) of the last round.
    results: Mutex<HashMap<String, Vec<(Ipv4Addr, f64)>>>,
    dropped: AtomicU64,
    errors: AtomicU64,
    ident: AtomicU16,
}

/// The pinger: a handle on its background thread's inputs and outputs.
#[derive(Debug)]
pub struct Latency {
    shared: Arc<Shared>,
}

impl Latency {
    /// Starts the pinger unless disabled; reports through `health` ("pinger").
    pub fn start(procfs: &Path, disabled: bool, health: &Health) -> Option<Latency> {
        if disabled {
            health.down("pinger", "the pinger is off (--disable-pinger)");
            return None;
        }
        // Probe: one echo to our own loopback (needs CAP_NET_RAW and setns).
        if let Err(e) = sonde_pinger::ping(
            Path::new("/proc/self/ns/net"),
            &[Ipv4Addr::LOCALHOST],
            TIMEOUT,
            0,
        ) {
            health.down(
                "pinger",
                format!("cannot send ICMP ({e}): container_net_latency_seconds is off; run the agent privileged (CAP_NET_RAW, CAP_SYS_ADMIN) or set --disable-pinger"),
            );
            return None;
        }
        let shared = Arc::new(Shared::default());
        let worker = shared.clone();
        let procfs = procfs.to_owned();
        let spawned = std::thread::Builder::new()
            .name("sonde-pinger".into())
            .spawn(move || run(&worker, &procfs));
        if let Err(e) = spawned {
            health.down("pinger", format!("cannot start the pinger thread: {e}"));
            return None;
        }
        health.up("pinger");
        Some(Latency { shared })
    }

    /// Hands this scrape's targets to the pinger and returns the last round's results, per
    /// container in the order of `containers` (empty when it has none).
    pub fn update(&self, containers: &[ExportedContainer]) -> LatencyReading {
        let (jobs, dropped) = jobs(containers);
        self.shared.dropped.fetch_add(dropped, Ordering::Relaxed);
        {
            let mut current = self
                .shared
                .jobs
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if *current != jobs {
                *current = jobs;
                self.shared.changed.store(true, Ordering::Release);
            }
        }
        let results = self
            .shared
            .results
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        LatencyReading {
            rtts: containers
                .iter()
                .map(|c| results.get(&c.key).cloned().unwrap_or_default())
                .collect(),
            targets_dropped: self.shared.dropped.load(Ordering::Relaxed),
            errors: self.shared.errors.load(Ordering::Relaxed),
        }
    }
}

/// The pinger's last results and its counters (`sonde_pinger_*`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LatencyReading {
    /// Per exported container: (upstream address, round-trip seconds) of the last round.
    pub rtts: Vec<Vec<(Ipv4Addr, f64)>>,
    /// Targets left out by the bounds, so far.
    pub targets_dropped: u64,
    /// Ping rounds that failed in a namespace (other than the container exiting), so far.
    pub errors: u64,
}

/// The ping jobs of the exported containers, and how many targets the bounds dropped.
fn jobs(containers: &[ExportedContainer]) -> (Vec<Job>, u64) {
    let mut total = 0usize;
    let mut dropped = 0u64;
    let mut out = Vec::new();
    for c in containers {
        let Some(&(pid, _)) = c.pids.iter().min() else {
            continue;
        };
        let mut ips: Vec<Ipv4Addr> = c
            .net
            .destinations
            .keys()
            // Keyed by (destination, actual_destination): the upstream really reached.
            .filter_map(|(_, actual)| match actual.ip() {
                IpAddr::V4(ip) if !ip.is_loopback() && !ip.is_unspecified() => Some(ip),
                // ICMPv6 is not implemented (coroot neither pings IPv6).
                _ => None,
            })
            .collect();
        ips.sort();
        ips.dedup();
        let room = MAX_TARGETS_PER_CONTAINER.min(MAX_TARGETS - total);
        if ips.len() > room {
            dropped += (ips.len() - room) as u64;
            ips.truncate(room);
        }
        if ips.is_empty() {
            continue;
        }
        total += ips.len();
        out.push(Job {
            key: c.key.clone(),
            pid,
            ips,
        });
    }
    (out, dropped)
}

fn run(shared: &Shared, procfs: &Path) {
    let mut last_round: Option<Instant> = None;
    loop {
        let due = last_round.is_none_or(|t| t.elapsed() >= INTERVAL);
        if !(due || shared.changed.swap(false, Ordering::AcqRel)) {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        let jobs = shared
            .jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        last_round = Some(Instant::now());
        let results = round(shared, procfs, &jobs);
        *shared
            .results
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = results;
    }
}

/// Pings every job's targets, one namespace once, [`PARALLEL`] namespaces at a time.
fn round(shared: &Shared, procfs: &Path, jobs: &[Job]) -> HashMap<String, Vec<(Ipv4Addr, f64)>> {
    // Namespace inode -> (namespace path, targets, the keys of the containers in it).
    let mut by_ns: HashMap<u64, (PathBuf, Vec<Ipv4Addr>, Vec<&str>)> = HashMap::new();
    for j in jobs {
        let path = procfs.join(j.pid.to_string()).join("ns/net");
        let Ok(meta) = std::fs::metadata(&path) else {
            continue; // exited since the scrape
        };
        let e = by_ns
            .entry(meta.ino())
            .or_insert_with(|| (path, Vec::new(), Vec::new()));
        e.1.extend(&j.ips);
        e.2.push(&j.key);
    }
    let work: Vec<_> = by_ns
        .into_values()
        .map(|(path, mut ips, keys)| {
            ips.sort();
            ips.dedup();
            (path, ips, keys)
        })
        .collect();
    let mut results: HashMap<String, Vec<(Ipv4Addr, f64)>> = HashMap::new();
    for chunk in work.chunks(PARALLEL) {
        let answers: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|(path, ips, _)| {
                    let ident = shared.ident.fetch_add(1, Ordering::Relaxed);
                    s.spawn(move || sonde_pinger::ping(path, ips, TIMEOUT, ident))
                })
                .collect();
            handles.into_iter().map(|h| h.join()).collect()
        });
        for ((_, _, keys), answer) in chunk.iter().zip(answers) {
            let rtts = match answer {
                Ok(Ok(r)) => r,
                Ok(Err(e)) if e.is_not_found() => continue,
                _ => {
                    shared.errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            };
            for key in keys {
                let Some(job) = jobs.iter().find(|j| j.key == *key) else {
                    continue;
                };
                let mine: Vec<(Ipv4Addr, f64)> = rtts
                    .iter()
                    .filter(|(ip, _)| job.ips.contains(ip))
                    .map(|(ip, d)| (*ip, d.as_secs_f64()))
                    .collect();
                results.insert((*key).to_owned(), mine);
            }
        }
    }
    results
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::net::SocketAddr;

    fn container(key: &str, pids: &[u32], dsts: &[&str]) -> ExportedContainer {
        let mut net = crate::net::ContainerNet::default();
        for d in dsts {
            let d = d.parse::<SocketAddr>().unwrap();
            net.destinations.insert((d, d), Default::default());
        }
        ExportedContainer {
            key: key.into(),
            container_id: key.into(),
            pids: pids.iter().map(|&p| (p, 0)).collect(),
            app_id: String::new(),
            restarts: 0,
            oom_kills: 0,
            net,
            active: Default::default(),
            image: String::new(),
            cgroups: sonde_cgroup::ProcessCgroups::parse("0::/x\n").unwrap(),
            volumes: Default::default(),
            systemd: Default::default(),
            proxied_listens: Vec::new(),
        }
    }

    #[test]
    fn targets_are_upstream_ipv4_addresses_deduplicated_and_bounded() {
        let many: Vec<String> = (0..40).map(|i| format!("10.1.0.{i}:80")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let (jobs, dropped) = jobs(&[
            container(
                "/a",
                &[30, 20],
                &[
                    "10.0.0.2:5432",
                    "10.0.0.2:6379",
                    "127.0.0.1:80",
                    "[fd00::1]:80",
                    "0.0.0.0:1",
                ],
            ),
            container("/b", &[40], &many),
            container("/c", &[50], &[]),
            container("/d", &[], &["10.0.0.9:80"]),
        ]);
        assert_eq!(
            jobs[0],
            Job {
                key: "/a".into(),
                pid: 20,
                ips: vec![Ipv4Addr::new(10, 0, 0, 2)]
            }
        );
        assert_eq!(jobs[1].ips.len(), MAX_TARGETS_PER_CONTAINER);
        assert_eq!(jobs.len(), 2, "no targets or no process: no job");
        assert_eq!(dropped, 40 - MAX_TARGETS_PER_CONTAINER as u64);
    }
}
