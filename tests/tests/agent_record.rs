//! `sonde record` against the real agent: it scrapes through a recording proxy of this test, so
//! the test knows exactly which /metrics response each interval saw, and every node and
//! container row must equal that response; process rows must equal the kernel's /proc files of
//! a sleeping process. SIGINT stops it cleanly: whole rows only, one interval per scrape.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sonde_integration_tests::agent::{http_get, sonde_binary};
use sonde_integration_tests::cgroups::TestCgroup;
use sonde_integration_tests::{Agent, Scrape, privileged, wait_for};

const HEADER: &str = "time,kind,id,pid,comm,cpu_seconds,memory_bytes,cache_bytes,disk_read_bytes,disk_written_bytes,net_rx_bytes,net_tx_bytes,net_rx_packets,net_tx_packets,tcp_connects,tcp_active_connections,tcp_sent_bytes,tcp_received_bytes,tcp_sent_packets,tcp_received_packets";

/// A loopback HTTP server that answers each GET with a fresh scrape of the agent and keeps it.
fn recording_proxy(agent_port: u16) -> (u16, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let served = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&served);
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.ends_with(b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let (code, body) = http_get(agent_port, "/metrics").unwrap();
            assert_eq!(code, 200);
            // Kept before it is sent: the recorder cannot write a row the log lacks.
            log.lock().unwrap().push(body.clone());
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, served)
}

fn start_record(proxy: u16, interval: &str, out: &Path, containers: &str) -> Child {
    Command::new(sonde_binary())
        .args(["record", "--url", &format!("127.0.0.1:{proxy}")])
        .args(["--interval", interval, "--containers", containers])
        .arg("--output")
        .arg(out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn sigint_and_wait(mut child: Child) -> String {
    // SAFETY: kill has no memory-safety preconditions; the pid is our child's.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "record exited {status}: {err}");
    err
}

/// Rows of the file (without the header), after checking the header and that no row is torn.
fn read_rows(path: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.ends_with('\n'), "the last row is whole");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(HEADER));
    let columns = HEADER.split(',').count();
    lines
        .map(|l| {
            // Ids of these tests hold no comma or quote, so a plain split is exact.
            let cells: Vec<String> = l.split(',').map(str::to_owned).collect();
            assert_eq!(cells.len(), columns, "torn or malformed row {l:?}");
            cells
        })
        .collect()
}

fn cell(v: &str) -> Option<f64> {
    (!v.is_empty()).then(|| v.parse().unwrap())
}

fn sum(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = s.find(name, labels).peekable();
    found.peek()?;
    Some(found.map(|x| x.value).sum())
}

#[test]
fn record_rows_agree_with_the_scrapes_they_came_from() {
    let test = "record_rows_agree_with_the_scrapes_they_came_from";
    if !privileged(test) {
        return;
    }
    let id = format!("/system.slice/sonde-record-{}.service", std::process::id());
    let mut cg = TestCgroup::create(&id).unwrap();
    let sleeper = Command::new("sleep").arg("100000").spawn().unwrap();
    let pid = sleeper.id();
    cg.add_pid(pid).unwrap();
    cg.own(sleeper);

    let agent = Agent::start(&["--min-container-age", "0s", "--disable-ebpf"]);
    let id_label: &[(&str, &str)] = &[("container_id", &id)];
    agent.scrape_until("the test container", Duration::from_secs(30), |s| {
        s.has("container_resources_memory_rss_bytes", id_label)
    });
    let (proxy, log) = recording_proxy(agent.port);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rec.csv");
    let regex = format!("^{}$", regex_escape(&id));

    // N = 4 intervals of 1 s, then SIGINT in the quiet second before the fifth.
    const N: usize = 4;
    let child = start_record(proxy, "1s", &out, &regex);
    wait_for("4 intervals written", Duration::from_secs(30), || {
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        (text.lines().filter(|l| l.contains(",node,")).count() >= N).then_some(())
    });
    sigint_and_wait(child);
    let rows = read_rows(&out);
    let served = log.lock().unwrap().clone();
    // N, or N + 1 when a slow machine let the next tick come before the signal.
    assert!(served.len() >= N, "{} scrapes", served.len());
    assert_eq!(
        rows.len(),
        3 * served.len(),
        "node, container and process rows for every interval scraped"
    );

    let proc_stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_comm: Vec<&str> = proc_stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let cpu = (after_comm[11].parse::<u64>().unwrap() + after_comm[12].parse::<u64>().unwrap())
        as f64
        / 100.0;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss_kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();

    let mut last_time = 0.0;
    for (i, body) in served.iter().enumerate() {
        let s = Scrape::parse(body);
        let interval = &rows[3 * i..3 * i + 3];
        let time: f64 = interval[0][0].parse().unwrap();
        assert!(time > last_time, "times increase");
        last_time = time;
        for r in interval {
            assert_eq!(r[0], interval[0][0], "one time per interval");
        }
        // Node row.
        let node = &interval[0];
        assert_eq!(node[1], "node");
        let hostname = s.find("node_info", &[]).next().unwrap().labels["hostname"].clone();
        assert_eq!(node[2], hostname);
        let busy: f64 = s
            .find("node_resources_cpu_usage_seconds_total", &[])
            .filter(|x| !["idle", "iowait"].contains(&x.labels["mode"].as_str()))
            .map(|x| x.value)
            .sum();
        assert_eq!(cell(&node[5]), Some(busy), "node cpu, interval {i}");
        let total = s.value("node_resources_memory_total_bytes", &[]).unwrap();
        let available = s
            .value("node_resources_memory_available_bytes", &[])
            .unwrap();
        assert_eq!(cell(&node[6]), Some(total - available));
        assert_eq!(
            cell(&node[7]),
            s.value("node_resources_memory_cached_bytes", &[])
        );
        for (col, metric) in [
            (8, "node_resources_disk_read_bytes_total"),
            (9, "node_resources_disk_written_bytes_total"),
            (10, "node_net_received_bytes_total"),
            (11, "node_net_transmitted_bytes_total"),
            (12, "node_net_received_packets_total"),
            (13, "node_net_transmitted_packets_total"),
        ] {
            assert_eq!(
                cell(&node[col]),
                sum(&s, metric, &[]),
                "{metric}, interval {i}"
            );
        }
        // Container row.
        let c = &interval[1];
        assert_eq!((c[1].as_str(), c[2].as_str()), ("container", id.as_str()));
        assert_eq!(
            cell(&c[5]),
            s.value("container_resources_cpu_usage_seconds_total", id_label)
        );
        assert_eq!(
            cell(&c[6]),
            s.value("container_resources_memory_rss_bytes", id_label)
        );
        assert_eq!(
            cell(&c[7]),
            s.value("container_resources_memory_cache_bytes", id_label)
        );
        // (Its RSS may read 0: pages charged before the move stay with the old cgroup on v1.)
        assert!(cell(&c[5]).is_some() && cell(&c[6]).is_some());
        // Process row: the sleeper, as the kernel counts it.
        let p = &interval[2];
        assert_eq!(p[1], "process");
        assert_eq!(p[2], id);
        assert_eq!(p[3], pid.to_string());
        assert_eq!(p[4], "sleep");
        assert_eq!(cell(&p[5]), Some(cpu));
        assert_eq!(cell(&p[6]), Some(rss_kb * 1024.0));
        assert!(cell(&p[8]).is_some(), "read_bytes from /proc/<pid>/io");
    }

    // Appending to the same file keeps one header; a fast recording stopped at an arbitrary
    // moment still ends on a whole row, with one interval per scrape.
    let before = read_rows(&out).len();
    let served_before = served.len();
    let child = start_record(proxy, "30ms", &out, &regex);
    std::thread::sleep(Duration::from_millis(1700));
    sigint_and_wait(child);
    let new_rows = read_rows(&out).len() - before;
    let scrapes = log.lock().unwrap().len() - served_before;
    assert!(scrapes > 1, "{scrapes} scrapes in 1.7 s");
    assert_eq!(
        new_rows,
        3 * scrapes,
        "every scraped interval written whole, no other"
    );
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text.matches("time,kind").count(), 1, "one header");
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if "\\.+*?()|[]{}^$".contains(c) {
                vec!['\\', c]
            } else {
                vec![c]
            }
        })
        .collect()
}
