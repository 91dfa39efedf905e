//! The /metrics endpoint itself: gzip when asked (as Prometheus always asks), label order
//! stable across agent runs, the agent's own process_* metrics against what /proc says of
//! the agent's pid, and `sonde_scrape_duration_seconds` counting every response exactly once.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use sonde_integration_tests::{Agent, Scrape};

/// GET /metrics with an Accept-Encoding header; (headers lower-cased, raw body).
fn get_raw(port: u16, accept: &str) -> (String, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.0\r\nHost: x\r\nAccept-Encoding: {accept}\r\n\r\n"
    )
    .unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let split = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&resp[..split]).to_ascii_lowercase();
    (head, resp[split + 4..].to_vec())
}

fn gunzip(body: &[u8]) -> String {
    let mut out = String::new();
    flate2::read::GzDecoder::new(body)
        .read_to_string(&mut out)
        .unwrap();
    out
}

/// Series identity without the value: the line up to its last space.
fn series(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' ').map(|(s, _)| s.to_owned()))
        .collect();
    v.sort();
    v
}

#[test]
fn gzip_when_asked_identity_otherwise() {
    if !sonde_integration_tests::privileged("gzip_when_asked_identity_otherwise") {
        return;
    }
    let agent = Agent::start(&["--min-container-age", "0s", "--disable-log-parsing"]);
    // Wait for a full first scrape (containers found), then compare two back-to-back scrapes.
    agent.scrape_until("node_info", Duration::from_secs(30), |s| {
        s.has("node_info", &[])
    });
    let (head, gz) = get_raw(agent.port, "gzip");
    assert!(head.contains("content-encoding: gzip"), "{head}");
    assert!(head.contains("vary: accept-encoding"), "{head}");
    let unpacked = gunzip(&gz);
    let (head, plain) = get_raw(agent.port, "identity");
    assert!(!head.contains("content-encoding"), "{head}");
    let plain = String::from_utf8(plain).unwrap();
    eprintln!(
        "one scrape: {} bytes plain, {} bytes gzip ({:.1}x)",
        plain.len(),
        gz.len(),
        plain.len() as f64 / gz.len() as f64
    );
    assert!(
        gz.len() * 4 < plain.len(),
        "{} vs {}",
        gz.len(),
        plain.len()
    );
    // The same exposition either way (values move between scrapes; the series do not, except
    // for processes that come and go on a busy machine, so compare the node's own families).
    let stable = |t: &str| -> Vec<String> {
        series(t)
            .into_iter()
            .filter(|s| s.starts_with("node_") || s.starts_with("process_"))
            .collect()
    };
    assert_eq!(stable(&unpacked), stable(&plain));
    assert!(Scrape::parse(&unpacked).has("node_info", &[]));
    // q=0 refuses gzip.
    let (head, _) = get_raw(agent.port, "gzip;q=0");
    assert!(!head.contains("content-encoding"), "{head}");
}

/// Label names in the order they appear on each series line, keyed by metric name and the
/// sorted set of its label names.
fn label_orders(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((name, rest)) = line.split_once('{') else {
            continue;
        };
        let mut names = Vec::new();
        let mut chars = rest.chars().peekable();
        'pairs: loop {
            let mut label = String::new();
            for c in chars.by_ref() {
                if c == '=' {
                    break;
                }
                if c == '}' {
                    break 'pairs;
                }
                label.push(c);
            }
            // Skip the quoted value, honouring escapes.
            assert_eq!(chars.next(), Some('"'), "{line}");
            let mut escaped = false;
            for c in chars.by_ref() {
                match (escaped, c) {
                    (true, _) => escaped = false,
                    (false, '\\') => escaped = true,
                    (false, '"') => break,
                    _ => {}
                }
            }
            names.push(label.trim_start_matches(',').to_owned());
            if chars.peek() == Some(&'}') {
                break;
            }
        }
        let mut key_names = names.clone();
        key_names.sort();
        out.insert(format!("{name}{{{}}}", key_names.join(",")), names);
    }
    out
}

#[test]
fn label_order_is_stable_across_runs() {
    if !sonde_integration_tests::privileged("label_order_is_stable_across_runs") {
        return;
    }
    let mut runs = Vec::new();
    for _ in 0..2 {
        let agent = Agent::start(&["--min-container-age", "0s", "--disable-log-parsing"]);
        let s = agent.scrape_until("node_info", Duration::from_secs(30), |s| {
            s.has("node_info", &[])
        });
        runs.push(label_orders(&s.text));
    }
    let mut compared = 0;
    for (key, order) in &runs[0] {
        if let Some(other) = runs[1].get(key) {
            assert_eq!(order, other, "label order of {key} changed between runs");
            compared += 1;
        }
    }
    eprintln!("{compared} label sets compared across two agent runs");
    assert!(compared >= 20, "only {compared} label sets in common");
    // Node labels come last (before the encoder's own `le`), in one order, on every series.
    for (key, order) in &runs[0] {
        let order: Vec<&String> = order.iter().filter(|l| *l != "le").collect();
        if order.iter().any(|l| *l == "machine_id") {
            let n = order.len();
            assert_eq!(
                &order[n - 2..],
                ["machine_id", "system_uuid"],
                "{key}: {order:?}"
            );
        }
    }
}

fn proc_field(pid: u32, file: &str, key: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with(key))
        .unwrap()[key.len()..]
        .trim()
        .to_owned()
}

#[test]
fn process_metrics_and_scrape_duration() {
    if !sonde_integration_tests::privileged("process_metrics_and_scrape_duration") {
        return;
    }
    let agent = Agent::start(&["--disable-log-parsing"]);
    let pid = agent.pid();

    // Each response is observed once, after it is complete: the k-th scrape shows k-1.
    let mut counts = Vec::new();
    let mut last = None;
    for i in 0..5 {
        let s = if i == 2 {
            // A compressed response counts like any other.
            Scrape::parse(&gunzip(&get_raw(agent.port, "gzip").1))
        } else {
            agent.scrape()
        };
        counts.push(s.value("sonde_scrape_duration_seconds_count", &[]).unwrap());
        last = Some(s);
    }
    assert_eq!(counts, [0.0, 1.0, 2.0, 3.0, 4.0]);
    let s = last.unwrap();
    let inf = s
        .value("sonde_scrape_duration_seconds_bucket", &[("le", "+Inf")])
        .unwrap();
    assert_eq!(inf, 4.0);
    assert!(s.value("sonde_scrape_duration_seconds_sum", &[]).unwrap() > 0.0);

    // process_* against /proc/<agent pid>.
    let rss_kib: f64 = proc_field(pid, "status", "VmRSS:")
        .trim_end_matches(" kB")
        .parse()
        .unwrap();
    let rss = s.value("process_resident_memory_bytes", &[]).unwrap();
    assert!(
        rss > rss_kib * 1024.0 * 0.5 && rss < rss_kib * 1024.0 * 1.5,
        "rss {rss} vs VmRSS {rss_kib} KiB"
    );
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count() as f64;
    let open = s.value("process_open_fds", &[]).unwrap();
    assert!((open - fds).abs() <= 8.0, "open fds {open} vs /proc {fds}");
    let limit: f64 = proc_field(pid, "limits", "Max open files")
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(s.value("process_max_fds", &[]), Some(limit));
    // Start time: btime + starttime ticks, to the tick.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let start_ticks: f64 = fields[19].parse().unwrap();
    let cpu_ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    let btime: f64 = proc_field(pid, "../stat", "btime ").parse().unwrap();
    let start = s.value("process_start_time_seconds", &[]).unwrap();
    assert!(
        (start - (btime + start_ticks / 100.0)).abs() < 0.011,
        "start {start}"
    );
    let cpu = s.value("process_cpu_seconds_total", &[]).unwrap();
    assert!(
        cpu > 0.0 && cpu <= cpu_ticks / 100.0 + 0.011,
        "cpu {cpu} vs {cpu_ticks} ticks"
    );
    let threads: f64 = proc_field(pid, "status", "Threads:").parse().unwrap();
    let reported = s.value("process_threads", &[]).unwrap();
    assert!((reported - threads).abs() <= 4.0, "{reported} vs {threads}");
}
