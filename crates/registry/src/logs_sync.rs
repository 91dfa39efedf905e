//! Keeps the log manager's sources in step with the registry's containers.
//!
//! Every [`SYNC_INTERVAL`] the registry's named containers are listed; each gets the sources
//! its runtime says (Docker json-file, CRI log file), the files under /var/log its processes
//! hold open for writing (re-read every [`OPEN_FILES_INTERVAL`]), and, for systemd services, a
//! journald route by unit and cgroup. The manager is told only about changes, and forgets
//! containers the registry dropped. A file created after the agent started is read from its
//! beginning, so a new container's first lines are counted even though naming it took a moment.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use sonde_cgroup::ContainerKind;
use sonde_logs::{LogManager, LogSpec, open_log_files};

use crate::Inner;

/// How often sources are reconciled.
pub const SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// How often the open files of containers' processes are looked at (a /proc/<pid>/fd walk).
pub const OPEN_FILES_INTERVAL: Duration = Duration::from_secs(15);

/// What the manager was last told about one container.
#[derive(Debug, Default, PartialEq)]
struct Applied {
    specs: Vec<LogSpec>,
    route: Option<(Option<String>, Option<String>)>,
}

/// One container's wishes, copied out of the registry.
struct Wanted {
    key: String,
    runtime_spec: Option<LogSpec>,
    route: Option<(Option<String>, Option<String>)>,
    pids: Vec<u32>,
}

/// Runs until the registry goes away.
pub(crate) async fn run(inner: Arc<Inner>, manager: Arc<LogManager>) {
    let mut applied: HashMap<String, Applied> = HashMap::new();
    let mut open_files: HashMap<String, Vec<PathBuf>> = HashMap::new();
    // The previous scan's findings: a file is dropped only after two scans without it, so a
    // writer still holding a just-renamed file (x.log.1) does not cost the x.log source.
    let mut previous_scan: HashMap<String, Vec<PathBuf>> = HashMap::new();
    let mut last_open_scan: Option<Instant> = None;
    let mut ticker = tokio::time::interval(SYNC_INTERVAL);
    loop {
        ticker.tick().await;
        let wanted = wanted(&inner);
        let scan_files = last_open_scan.is_none_or(|t| t.elapsed() >= OPEN_FILES_INTERVAL);
        let procfs = inner.config.node_paths.procfs.clone();
        let manager = manager.clone();
        let mut state = (applied, open_files, previous_scan);
        let done = tokio::task::spawn_blocking(move || {
            let (applied, open_files, previous) = &mut state;
            if scan_files {
                let found = scan_open_files(&procfs, &wanted);
                *open_files = union(&found, previous);
                *previous = found;
            }
            reconcile(&manager, &wanted, open_files, applied);
            state
        })
        .await;
        match done {
            Ok((a, o, p)) => {
                applied = a;
                open_files = o;
                previous_scan = p;
                if scan_files {
                    last_open_scan = Some(Instant::now());
                }
            }
            Err(_) => {
                inner
                    .health
                    .down("logs", "the log source sync task panicked");
                return;
            }
        }
    }
}

fn wanted(inner: &Inner) -> Vec<Wanted> {
    let state = inner.state.lock().unwrap_or_else(PoisonError::into_inner);
    let filters = &inner.config.filters;
    state
        .containers()
        .filter_map(|c| {
            let name = c.container_id()?;
            if !filters.allows(name) {
                return None;
            }
            let runtime_spec = match (c.log_driver.as_deref(), &c.log_path) {
                (Some("json-file"), Some(p)) => Some(LogSpec::DockerJson(p.clone())),
                (Some("cri"), Some(p)) => Some(LogSpec::Cri(p.clone())),
                _ => None,
            };
            let route = match &c.kind {
                ContainerKind::SystemdService { container_id } => Some((
                    container_id.rsplit('/').next().map(str::to_owned),
                    Some(c.cgroup_id.clone()),
                )),
                _ => None,
            };
            Some(Wanted {
                key: c.cgroup_id.clone(),
                runtime_spec,
                route,
                pids: c.pids.iter().copied().collect(),
            })
        })
        .collect()
}

/// Files under /var/log held open for writing by each container's processes.
fn scan_open_files(procfs: &Path, wanted: &[Wanted]) -> HashMap<String, Vec<PathBuf>> {
    let mut out = HashMap::new();
    for w in wanted {
        let mut files = Vec::new();
        for &pid in &w.pids {
            // A process that exited or whose fds we may not read simply adds nothing.
            if let Ok(found) = open_log_files(procfs, pid) {
                files.extend(found);
            }
        }
        files.sort();
        files.dedup();
        if !files.is_empty() {
            out.insert(w.key.clone(), files);
        }
    }
    out
}

/// Per container, the files found now or by the previous scan.
fn union(
    now: &HashMap<String, Vec<PathBuf>>,
    before: &HashMap<String, Vec<PathBuf>>,
) -> HashMap<String, Vec<PathBuf>> {
    let mut out = now.clone();
    for (key, files) in before {
        let entry = out.entry(key.clone()).or_default();
        entry.extend(files.iter().cloned());
        entry.sort();
        entry.dedup();
    }
    out
}

fn reconcile(
    manager: &LogManager,
    wanted: &[Wanted],
    open_files: &HashMap<String, Vec<PathBuf>>,
    applied: &mut HashMap<String, Applied>,
) {
    let mut seen = std::collections::HashSet::with_capacity(wanted.len());
    for w in wanted {
        seen.insert(w.key.as_str());
        let mut specs: Vec<LogSpec> = w.runtime_spec.iter().cloned().collect();
        if let Some(files) = open_files.get(&w.key) {
            specs.extend(files.iter().cloned().map(LogSpec::File));
        }
        specs.sort();
        let next = Applied {
            specs,
            route: w.route.clone(),
        };
        let prev = applied.get(&w.key);
        if prev.map(|p| &p.specs) != Some(&next.specs) {
            manager.set_sources(&w.key, next.specs.clone());
        }
        if prev.map(|p| &p.route) != Some(&next.route)
            && let Some((unit, prefix)) = &next.route
        {
            manager.set_journald_route(&w.key, unit.clone(), prefix.clone());
        }
        applied.insert(w.key.clone(), next);
    }
    applied.retain(|key, _| {
        let keep = seen.contains(key.as_str());
        if !keep {
            manager.remove(key);
        }
        keep
    });
}
