//! `sonde record`: node, container and per-process samples appended to a CSV file every
//! interval, for experiments (kubemon-style recordings) without a Prometheus.
//!
//! Each interval is one scrape of the agent (node and container figures, exactly as /metrics
//! said at that moment) plus one pass over /proc for the processes of the recorded containers.
//! Rows of an interval are built in memory and written with one `write_all`: SIGINT or SIGTERM
//! only set a flag that the loop checks between intervals, so a stop never leaves a torn row.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use regex::Regex;

use crate::model::Snapshot;
use crate::procs::{Process, read_processes};
use crate::{AgentUrl, Error, exposition};

/// The CSV header; every row has exactly these columns. Empty cells: not known for that kind
/// of row (e.g. no per-process network) or not exported by the agent.
pub const HEADER: &str = "time,kind,id,pid,comm,cpu_seconds,memory_bytes,cache_bytes,disk_read_bytes,disk_written_bytes,net_rx_bytes,net_tx_bytes,net_rx_packets,net_tx_packets,tcp_connects,tcp_active_connections,tcp_sent_bytes,tcp_received_bytes,tcp_sent_packets,tcp_received_packets";

/// What to record and where.
#[derive(Debug, Clone)]
pub struct RecordConfig {
    /// The agent's metrics endpoint.
    pub url: AgentUrl,
    /// Time between samples.
    pub interval: Duration,
    /// The CSV file (appended to; created with a header).
    pub output: PathBuf,
    /// Only containers whose container_id matches (and processes whose cgroup id matches).
    pub containers: Option<Regex>,
    /// Where /proc is (for per-process samples).
    pub procfs: PathBuf,
    /// Bound on one scrape.
    pub timeout: Duration,
}

/// What a recording did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordStats {
    /// Intervals sampled and written.
    pub intervals: u64,
    /// Rows written.
    pub rows: u64,
    /// Intervals skipped because the agent could not be scraped.
    pub failed_scrapes: u64,
}

/// Records until SIGINT or SIGTERM.
pub fn run(config: &RecordConfig) -> Result<RecordStats, Error> {
    let stop = Arc::new(AtomicBool::new(false));
    for (signal, name) in [
        (signal_hook::consts::SIGINT, "SIGINT"),
        (signal_hook::consts::SIGTERM, "SIGTERM"),
    ] {
        signal_hook::flag::register(signal, Arc::clone(&stop)).map_err(|source| Error::Signal {
            signal: name,
            source,
        })?;
    }
    run_until(config, &stop)
}

/// Records until `stop` is set.
pub fn run_until(config: &RecordConfig, stop: &AtomicBool) -> Result<RecordStats, Error> {
    let mut file = open_output(&config.output)?;
    let mut stats = RecordStats::default();
    let start = Instant::now();
    let mut buf = String::with_capacity(64 * 1024);
    let mut last_error = String::new();
    for n in 0u32.. {
        // Ticks are start + n x interval, so a slow scrape does not shift later samples.
        let due = start + config.interval.saturating_mul(n);
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            if now >= due {
                break;
            }
            std::thread::sleep((due - now).min(Duration::from_millis(50)));
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let body = match config.url.get(config.timeout) {
            Ok(b) => b,
            Err(e) => {
                stats.failed_scrapes += 1;
                let msg = format!(
                    "{e}: {}",
                    std::error::Error::source(&e)
                        .map(|s| s.to_string())
                        .unwrap_or_default()
                );
                if msg != last_error {
                    eprintln!("sonde record: interval skipped: {msg}");
                    last_error = msg;
                }
                continue;
            }
        };
        let snap = Snapshot::from_samples(&exposition::parse(&body).samples);
        let procs = processes(&snap, config);
        buf.clear();
        stats.rows += rows(time, &snap, &procs, config.containers.as_ref(), &mut buf);
        file.write_all(buf.as_bytes())
            .and_then(|()| file.flush())
            .map_err(|source| Error::Output {
                path: config.output.clone(),
                source,
            })?;
        stats.intervals += 1;
    }
    Ok(stats)
}

/// Opens `path` for appending: a new or empty file gets the header; an existing one must start
/// with it (rows of another layout are not mixed in).
fn open_output(path: &Path) -> Result<File, Error> {
    let err = |source| Error::Output {
        path: path.to_owned(),
        source,
    };
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(path)
        .map_err(err)?;
    let len = file.metadata().map_err(err)?.len();
    if len == 0 {
        file.write_all(format!("{HEADER}\n").as_bytes())
            .map_err(err)?;
        return Ok(file);
    }
    let mut first = String::new();
    BufReader::new(File::open(path).map_err(err)?)
        .read_line(&mut first)
        .map_err(err)?;
    if first.trim_end() != HEADER {
        return Err(Error::HeaderMismatch {
            path: path.to_owned(),
        });
    }
    Ok(file)
}

/// The processes of recorded containers: cgroup id equal to a recorded container_id (Docker,
/// containerd and systemd ids are cgroup paths), or matching the regex.
fn processes(snap: &Snapshot, config: &RecordConfig) -> Vec<Process> {
    let recorded = |id: &str| config.containers.as_ref().is_none_or(|re| re.is_match(id));
    read_processes(&config.procfs, |cgroup| {
        (snap.containers.contains_key(cgroup) && recorded(cgroup))
            || config
                .containers
                .as_ref()
                .is_some_and(|re| re.is_match(cgroup))
    })
}

/// Appends one interval's rows to `out`; returns how many.
pub fn rows(
    time: f64,
    snap: &Snapshot,
    procs: &[Process],
    containers: Option<&Regex>,
    out: &mut String,
) -> u64 {
    let mut n = 0;
    let node = &snap.node;
    let used = match (node.memory_total_bytes, node.memory_available_bytes) {
        (Some(t), Some(a)) => Some(t - a),
        _ => None,
    };
    row(
        out,
        time,
        "node",
        &node.hostname,
        None,
        "",
        &[
            node.cpu_busy_seconds,
            used,
            node.memory_cached_bytes,
            node.disk_read_bytes,
            node.disk_written_bytes,
            node.net_rx_bytes,
            node.net_tx_bytes,
            node.net_rx_packets,
            node.net_tx_packets,
            None,
            None,
            None,
            None,
            None,
            None,
        ],
    );
    n += 1;
    for (id, c) in &snap.containers {
        if containers.is_some_and(|re| !re.is_match(id)) {
            continue;
        }
        let tcp = !c.upstreams.is_empty();
        row(
            out,
            time,
            "container",
            id,
            None,
            "",
            &[
                c.cpu_seconds,
                c.rss_bytes,
                c.cache_bytes,
                c.disk_read_bytes,
                c.disk_written_bytes,
                c.if_rx_bytes,
                c.if_tx_bytes,
                c.if_rx_packets,
                c.if_tx_packets,
                tcp.then(|| c.tcp_connects()),
                tcp.then(|| c.tcp_active()),
                tcp.then(|| c.tcp_sent_bytes()),
                tcp.then(|| c.tcp_received_bytes()),
                c.tcp_sent_packets(),
                c.tcp_received_packets(),
            ],
        );
        n += 1;
    }
    for p in procs {
        let v = |x: Option<u64>| x.map(|b| b as f64);
        row(
            out,
            time,
            "process",
            &p.cgroup,
            Some(p.pid),
            &p.comm,
            &[
                Some(p.cpu_seconds),
                v(p.rss_bytes),
                None,
                v(p.read_bytes),
                v(p.write_bytes),
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
            ],
        );
        n += 1;
    }
    n
}

#[allow(clippy::too_many_arguments)]
fn row(
    out: &mut String,
    time: f64,
    kind: &str,
    id: &str,
    pid: Option<u32>,
    comm: &str,
    values: &[Option<f64>; 15],
) {
    let _ = write!(out, "{time:.3},{kind},");
    field(out, id);
    out.push(',');
    if let Some(pid) = pid {
        let _ = write!(out, "{pid}");
    }
    out.push(',');
    field(out, comm);
    for v in values {
        out.push(',');
        if let Some(v) = v {
            let _ = write!(out, "{v}");
        }
    }
    out.push('\n');
}

/// A CSV field, quoted when it holds a comma, quote or line break (RFC 4180).
fn field(out: &mut String, s: &str) {
    if s.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::exposition::parse;

    const SCRAPE: &str = "node_info{hostname=\"n1\"} 1\nnode_resources_memory_total_bytes 1000\nnode_resources_memory_available_bytes 400\nnode_resources_cpu_usage_seconds_total{mode=\"user\"} 2.5\ncontainer_resources_cpu_usage_seconds_total{container_id=\"/a\"} 1.5\ncontainer_resources_memory_rss_bytes{container_id=\"/a\"} 4096\ncontainer_net_tcp_bytes_sent_total{container_id=\"/a\",destination=\"1.2.3.4:80\"} 10\ncontainer_net_tcp_packets_sent_total{container_id=\"/a\",destination=\"1.2.3.4:80\"} 2\ncontainer_resources_cpu_usage_seconds_total{container_id=\"/b,\\\"x\\\"\"} 7\n";

    #[test]
    fn rows_have_every_column() {
        let snap = Snapshot::from_samples(&parse(SCRAPE).samples);
        let procs = [Process {
            pid: 42,
            comm: "sh".into(),
            cgroup: "/a".into(),
            cpu_seconds: 0.25,
            rss_bytes: Some(8192),
            read_bytes: None,
            write_bytes: Some(0),
        }];
        let mut out = String::new();
        assert_eq!(rows(12.5, &snap, &procs, None, &mut out), 4);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "12.500,node,n1,,,2.5,600,,,,,,,,,,,,,");
        assert_eq!(
            lines[1],
            "12.500,container,/a,,,1.5,4096,,,,,,,,0,0,10,0,2,"
        );
        assert_eq!(
            lines[2],
            "12.500,container,\"/b,\"\"x\"\"\",,,7,,,,,,,,,,,,,,"
        );
        assert_eq!(lines[3], "12.500,process,/a,42,sh,0.25,8192,,,0,,,,,,,,,,");
        let columns = HEADER.split(',').count();
        assert_eq!(lines[0].split(',').count(), columns);
        assert_eq!(lines[3].split(',').count(), columns);
        out.clear();
        let re = Regex::new("^/a$").unwrap();
        assert_eq!(rows(1.0, &snap, &[], Some(&re), &mut out), 2);
    }

    #[test]
    fn output_header_is_written_once_and_checked() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("r.csv");
        drop(open_output(&path).unwrap());
        let mut f = open_output(&path).unwrap();
        f.write_all(b"x\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{HEADER}\nx\n")
        );
        std::fs::write(&path, "other,header\n").unwrap();
        assert!(matches!(
            open_output(&path),
            Err(Error::HeaderMismatch { .. })
        ));
        assert!(open_output(&tmp.path().join("no/such/dir.csv")).is_err());
    }

    #[test]
    fn unreachable_agent_skips_intervals_and_stops_on_the_flag() {
        let tmp = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = RecordConfig {
            url: AgentUrl::parse(&format!("127.0.0.1:{port}")).unwrap(),
            interval: Duration::from_millis(20),
            output: tmp.path().join("r.csv"),
            containers: None,
            procfs: "/proc".into(),
            timeout: Duration::from_secs(1),
        };
        let stop = AtomicBool::new(false);
        let stats = std::thread::scope(|s| {
            let h = s.spawn(|| run_until(&config, &stop));
            std::thread::sleep(Duration::from_millis(200));
            stop.store(true, Ordering::Relaxed);
            h.join().unwrap().unwrap()
        });
        assert_eq!((stats.intervals, stats.rows), (0, 0));
        assert!(stats.failed_scrapes > 0);
        assert_eq!(
            std::fs::read_to_string(&config.output).unwrap(),
            format!("{HEADER}\n")
        );
    }
}
