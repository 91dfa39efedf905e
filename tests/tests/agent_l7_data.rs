//! The L7 engine end to end (issue 15), databases and DNS: a real PostgreSQL cluster, Redis and
//! a DNS responder in one test cgroup, real clients (psql, a hand-written extended-protocol
//! client, redis-cli, a pipelining client, dig, a Python resolver) in another, and the agent's
//! per-container query counters and latency histograms checked against what the clients saw
//! (harness: tests/src/l7_servers.rs, l7_expect.rs, l7_run.rs; HTTP in agent_l7.rs).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use sonde_integration_tests::l7_expect::{
    DNS_OUT, Expect, POSTGRES_IN, POSTGRES_OUT, REDIS_IN, REDIS_OUT, Seen, report, sum,
};
use sonde_integration_tests::l7_run::{
    TIMEOUT, run_py, serial, settle_and_check, start_agent, tools,
};
use sonde_integration_tests::l7_servers::{self as l7, Container, Netns, Ran, log_lines, script};
use sonde_integration_tests::privileged;

// ---------------------------------------------------------------------------------------------
// Postgres and Redis

#[test]
fn postgres_simple_and_extended_queries_one_failing_are_exact() {
    const TEST: &str = "postgres_simple_and_extended_queries_one_failing_are_exact";
    let _serial = serial();
    if !privileged(TEST)
        || !tools(
            TEST,
            &[("psql", "postgresql-client"), ("setpriv", "util-linux")],
        )
    {
        return;
    }
    let Some(bin) = l7::postgres_bin() else {
        sonde_integration_tests::skip(TEST, "no PostgreSQL server (apt-get install -y postgresql)");
        return;
    };
    let mut srv = Container::create("pgsrv", &[]);
    let mut cli = Container::create("pgcli", &[]);
    let pg = l7::postgres(&mut srv, &bin);
    let agent = start_agent(&[]);
    let port = pg.port.to_string();
    let dest = format!("127.0.0.1:{port}");
    let mut seen = Seen::default();
    // psql: the simple query protocol, one process (and connection) per query.
    for sql in ["SELECT 1", "SELECT 2", "SELECT 1/0", "SELECT 3", "SELECT 4"] {
        let r = cli.run(&[
            "psql",
            "-X",
            "-A",
            "-t",
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-c",
            sql,
        ]);
        let status = if sql.contains("1/0") {
            assert!(r.rc != 0 && r.stderr.contains("division by zero"), "{r:?}");
            "failed"
        } else {
            assert_eq!(r.rc, 0, "{r:?}");
            "ok"
        };
        seen.process(&[status], r.wall, true);
    }
    // The extended protocol (Parse/Bind/Describe/Execute/Sync), six queries on one connection.
    let v = run_py(
        &mut cli,
        &["pg-extended", "127.0.0.1", &port, "postgres", "6"],
    );
    assert_eq!(
        (v["ok"].as_u64(), v["failed"].as_u64()),
        (Some(6), Some(0)),
        "{v}"
    );
    for ns in v["ns"].as_array().unwrap() {
        seen.measured("ok", Duration::from_nanos(ns.as_u64().unwrap()));
    }
    assert_eq!(seen.statuses.get("failed"), Some(&1));
    let (sid, cid) = (srv.id.clone(), cli.id.clone());
    settle_and_check(
        &agent,
        &[
            Expect {
                what: "psql+extended client (outbound)",
                family: POSTGRES_OUT,
                labels: vec![("container_id", &cid), ("destination", &dest)],
                seen: &seen,
            },
            Expect {
                what: "postgres (inbound)",
                family: POSTGRES_IN,
                labels: vec![("container_id", &sid)],
                seen: &seen,
            },
        ],
        &[&sid, &cid],
    );
}

/// Redis's own count of the commands it ran (INFO commandstats): (calls, failed calls).
fn redis_commandstats(port: u16) -> (u64, u64) {
    let out = sonde_integration_tests::tools::run(std::process::Command::new("redis-cli").args([
        "-p",
        &port.to_string(),
        "INFO",
        "commandstats",
    ]));
    let field = |l: &str, k: &str| -> u64 {
        l.split([':', ','])
            .find_map(|kv| kv.strip_prefix(k))
            .map(|v| v.trim().parse().unwrap())
            .unwrap_or(0)
    };
    out.lines()
        .filter(|l| l.starts_with("cmdstat_"))
        .fold((0, 0), |(c, f), l| {
            (c + field(l, "calls="), f + field(l, "failed_calls="))
        })
}

#[test]
fn redis_commands_one_error_and_a_pipeline_are_exact() {
    const TEST: &str = "redis_commands_one_error_and_a_pipeline_are_exact";
    let _serial = serial();
    if !privileged(TEST)
        || !tools(
            TEST,
            &[
                ("redis-server", "redis-server"),
                ("redis-cli", "redis-tools"),
            ],
        )
    {
        return;
    }
    let mut srv = Container::create("redissrv", &[]);
    let mut cli = Container::create("rediscli", &[]);
    let redis = l7::redis(&mut srv);
    let agent = start_agent(&[]);
    let port = redis.port.to_string();
    let dest = format!("127.0.0.1:{port}");
    let mut seen = Seen::default();
    // redis-cli, one process per command; INCR of a string is the one error.
    let commands: [&[&str]; 9] = [
        &["SET", "k", "v"],
        &["GET", "k"],
        &["SET", "k", "w"],
        &["INCR", "n"],
        &["INCR", "n"],
        &["SET", "s", "text"],
        &["INCR", "s"],
        &["GET", "n"],
        &["DEL", "k"],
    ];
    for cmd in commands {
        let mut argv = vec!["redis-cli", "-p", &port];
        argv.extend_from_slice(cmd);
        let r = cli.run_ok(&argv);
        let failed = r.stdout.starts_with("ERR") || r.stdout.contains("(error)");
        assert_eq!(failed, cmd == ["INCR", "s"], "{cmd:?}: {r:?}");
        seen.process(&[if failed { "failed" } else { "ok" }], r.wall, true);
    }
    // Ten commands written at once on one connection.
    let v = run_py(&mut cli, &["redis-pipeline", "127.0.0.1", &port, "10"]);
    assert_eq!(
        (v["ok"].as_u64(), v["errors"].as_u64()),
        (Some(10), Some(0)),
        "{v}"
    );
    seen.process(
        &["ok"; 10],
        Duration::from_nanos(v["ns"].as_u64().unwrap()),
        false,
    );

    let (sid, cid) = (srv.id.clone(), cli.id.clone());
    let expects = [
        Expect {
            what: "redis-cli+pipeline (outbound)",
            family: REDIS_OUT,
            labels: vec![("container_id", &cid), ("destination", &dest)],
            seen: &seen,
        },
        Expect {
            what: "redis-server (inbound)",
            family: REDIS_IN,
            labels: vec![("container_id", &sid)],
            seen: &seen,
        },
    ];
    settle_and_check(&agent, &expects, &[&sid, &cid]);
    // Redis's own count agrees with the clients' (read after the agent's, as this INFO is a
    // request to the server too).
    assert_eq!(redis_commandstats(redis.port), (seen.total(), 1));
}

// ---------------------------------------------------------------------------------------------
// DNS

/// dig's answer status (NOERROR, NXDOMAIN ...).
fn dig_status(r: &Ran) -> String {
    r.stdout
        .lines()
        .find_map(|l| {
            l.split_once("status: ")
                .map(|(_, s)| s.split(',').next().unwrap().to_owned())
        })
        .unwrap_or_else(|| panic!("no status in dig's answer: {r:?}"))
}

#[test]
fn dns_requests_by_type_and_status_and_ip_to_fqdn_are_exact() {
    const TEST: &str = "dns_requests_by_type_and_status_and_ip_to_fqdn_are_exact";
    let _serial = serial();
    if !privileged(TEST) || !tools(TEST, &[("ip", "iproute2"), ("dig", "bind9-dnsutils")]) {
        return;
    }
    let ns = Netns::create("dns");
    let mut srv = Container::create("dnssrv", &[]);
    let mut cli = Container::create("dnscli", &[]);
    let dns = l7::dns_server(&mut srv, &ns);
    let agent = start_agent(&[]);
    // (request_type, domain, status) -> count, and the latency bounds of all of them.
    let mut want: std::collections::BTreeMap<(&str, &str, &str), u64> = Default::default();
    let mut all = Seen::default();
    let dig_cases = [
        ("A", "dig-a.sonde.test", false, "NOERROR", 3),
        ("AAAA", "dig-a.sonde.test", false, "NOERROR", 1),
        ("A", "dig-nx.sonde.test", false, "NXDOMAIN", 2),
        ("A", "tcp-a.sonde.test", true, "NOERROR", 2),
    ];
    for (qtype, name, tcp, status, n) in dig_cases {
        for _ in 0..n {
            let mut argv = ns.exec(&["dig", "@127.0.0.1", "+tries=1", "+time=5", name, qtype]);
            if tcp {
                argv.push("+tcp");
            }
            let r = cli.run_ok(&argv);
            assert_eq!(dig_status(&r), status, "{r:?}");
            let label = if status == "NOERROR" {
                "ok"
            } else {
                "nxdomain"
            };
            *want.entry((qtype, name, label)).or_default() += 1;
            all.process(&[label], r.wall, true);
        }
    }
    let clients = script("l7_clients.py");
    for (qtype, name, rcode, n) in [
        ("A", "py-a.sonde.test", 0, 2),
        ("AAAA", "py-a.sonde.test", 0, 1),
        ("A", "py-nx.sonde.test", 3, 1),
    ] {
        for _ in 0..n {
            let argv = ns.exec(&[
                "python3",
                clients.to_str().unwrap(),
                "dns",
                "127.0.0.1",
                "53",
                name,
                qtype,
            ]);
            let v = cli.run_ok(&argv).json();
            assert_eq!(v["rcode"].as_u64(), Some(rcode), "{v}");
            let label = if rcode == 0 { "ok" } else { "nxdomain" };
            *want.entry((qtype, name, label)).or_default() += 1;
            all.measured(label, Duration::from_nanos(v["ns"].as_u64().unwrap()));
        }
    }
    assert_eq!(log_lines(&dns.log, "DNS ").len() as u64, all.total());

    let cid = cli.id.clone();
    let total = all.total() as f64;
    let deadline = Instant::now() + TIMEOUT;
    let mut s = agent.scrape();
    while sum(&s, DNS_OUT.total, &[("container_id", &cid)]) < total && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        s = agent.scrape();
    }
    std::thread::sleep(Duration::from_millis(1500));
    let s = agent.scrape();
    let mut errors = Vec::new();
    for ((qtype, domain, status), n) in &want {
        let rt = format!("Type{qtype}");
        let got = sum(
            &s,
            DNS_OUT.total,
            &[
                ("container_id", &cid),
                ("request_type", &rt),
                ("domain", domain),
                ("status", status),
            ],
        );
        if got != *n as f64 {
            errors.push(format!("{}{{request_type=\"{rt}\",domain=\"{domain}\",status=\"{status}\"}} = {got}, clients saw {n}", DNS_OUT.total));
        }
    }
    // By status over all domains, and the histogram (coroot's has no label but the
    // container's) against the clients' own times.
    Expect {
        what: "DNS client",
        family: DNS_OUT,
        labels: vec![("container_id", &cid)],
        seen: &all,
    }
    .check(&s, &mut errors);
    for (ip, fqdn) in [
        ("192.0.2.10", "dig-a.sonde.test"),
        ("2001:db8::10", "dig-a.sonde.test"),
        ("192.0.2.11", "py-a.sonde.test"),
        ("2001:db8::11", "py-a.sonde.test"),
        ("192.0.2.12", "tcp-a.sonde.test"),
    ] {
        if sum(&s, "ip_to_fqdn", &[("ip", ip), ("fqdn", fqdn)]) < 1.0 {
            errors.push(format!("no ip_to_fqdn{{ip=\"{ip}\",fqdn=\"{fqdn}\"}}"));
        }
    }
    for sample in s.find("ip_to_fqdn", &[]) {
        let fqdn = &sample.labels["fqdn"];
        if fqdn.ends_with("nx.sonde.test") {
            errors.push(format!(
                "ip_to_fqdn for a name that does not exist: {sample:?}"
            ));
        }
    }
    report(&s, errors, &[&cid, &srv.id], &agent.log_text());
}
