//! Load run: the agent's scrape latency, CPU and RSS with many containers on the node.
//!
//! Creates N real cgroups shaped like systemd services (a `sleep` in each), starts the release
//! agent, scrapes it repeatedly, and prints the figures recorded in docs/benchmarks.md.
//! Needs root. Run: cargo build --release -p sonde && cargo bench -p sonde-integration-tests --bench scrape
//! (`SONDE_BIN=<binary>` runs another build, e.g. the static one of scripts/build-static.sh).
//! A second table compares the response size and the agent's CPU with and without gzip.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

use sonde_integration_tests::Agent;
use sonde_integration_tests::cgroups::TestCgroup;

fn proc_field(pid: u32, file: &str, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}

/// GET /metrics asking for gzip; the body's length (compressed) in bytes.
fn gzip_scrape(port: u16) -> usize {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.0\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n"
    )
    .unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let head_end = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(
        String::from_utf8_lossy(&resp[..head_end]).contains("content-encoding: gzip"),
        "no gzip response"
    );
    resp.len() - head_end
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("scrape bench needs root (it creates cgroups); skipped");
        return;
    }
    let sizes: Vec<usize> = std::env::var("SONDE_BENCH_CONTAINERS")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_else(|| vec![10, 100, 500]);
    println!(
        "| containers | scrape p50 | scrape p99 | series | agent CPU per scrape | agent RSS |"
    );
    println!("|---|---|---|---|---|---|");
    let mut gzip_rows = Vec::new();
    for n in sizes {
        let mut groups = Vec::with_capacity(n);
        for i in 0..n {
            let mut cg =
                TestCgroup::create(&format!("/system.slice/sonde-bench-{i}.service")).unwrap();
            let child = Command::new("sleep").arg("600").spawn().unwrap();
            cg.add_pid(child.id()).unwrap();
            cg.own(child);
            groups.push(cg);
        }
        let agent = Agent::start(&["--min-container-age", "0s"]);
        agent.scrape_until("all bench containers", Duration::from_secs(30), |s| {
            s.find("container_info", &[])
                .filter(|x| x.labels["container_id"].contains("sonde-bench-"))
                .count()
                == n
        });
        let scrapes = 50;
        let cpu_before = cpu_seconds(agent.pid());
        let mut times = Vec::with_capacity(scrapes);
        let mut series = 0;
        for _ in 0..scrapes {
            let t = Instant::now();
            let (code, body) = agent.get("/metrics");
            times.push(t.elapsed());
            assert_eq!(code, 200);
            series = body.lines().filter(|l| !l.starts_with('#')).count();
        }
        let cpu = (cpu_seconds(agent.pid()) - cpu_before) / scrapes as f64;
        times.sort();
        let rss_kib = proc_field(agent.pid(), "status", "VmRSS:");
        println!(
            "| {n} | {:.1} ms | {:.1} ms | {series} | {:.1} ms | {:.1} MiB |",
            times[scrapes / 2].as_secs_f64() * 1e3,
            times[scrapes * 99 / 100].as_secs_f64() * 1e3,
            cpu * 1e3,
            rss_kib as f64 / 1024.0
        );
        let mut plain_bytes = 0;
        let cpu_before = cpu_seconds(agent.pid());
        for _ in 0..scrapes {
            plain_bytes = agent.get("/metrics").1.len();
        }
        let plain_cpu = (cpu_seconds(agent.pid()) - cpu_before) / scrapes as f64;
        let mut gz_bytes = 0;
        let cpu_before = cpu_seconds(agent.pid());
        for _ in 0..scrapes {
            gz_bytes = gzip_scrape(agent.port);
        }
        let gz_cpu = (cpu_seconds(agent.pid()) - cpu_before) / scrapes as f64;
        gzip_rows.push(format!(
            "| {n} | {plain_bytes} | {gz_bytes} ({:.1}x smaller) | {:.1} ms | {:.1} ms |",
            plain_bytes as f64 / gz_bytes as f64,
            plain_cpu * 1e3,
            gz_cpu * 1e3
        ));
        drop(agent);
        drop(groups);
    }
    println!();
    println!(
        "| containers | response bytes, identity | response bytes, gzip | agent CPU per scrape, identity | agent CPU per scrape, gzip |"
    );
    println!("|---|---|---|---|---|");
    for row in gzip_rows {
        println!("{row}");
    }
}
