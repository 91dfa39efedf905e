//! The L7 engine end to end (issue 15): real servers (Python http.server, nginx, nghttpd,
//! grpcio, PostgreSQL, Redis, a DNS responder) in one test cgroup, real clients (curl,
//! busybox wget, ab, nghttp, psql, redis-cli, dig, Python one-shots and keep-alive clients) in
//! another, and the agent's per-container request counters and latency histograms checked
//! against what the clients saw: exact counts per status, histogram counts equal, latencies
//! inside the clients' own measured bounds, the server's inbound twins equal.
//!
//! Every process of a "container" is forked by a runner already inside its cgroup
//! (tests/src/l7_servers.rs), so short-lived clients count from their first syscall. Servers
//! listen on 127.0.0.1 on ports outside the ephemeral range, DNS on 127.0.0.1:53 of a network
//! namespace of the test's own. The tests run one at a time (each starts its own agent and
//! servers; the machine has two cores).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sonde_integration_tests::l7_expect::{
    DNS_OUT, Expect, HTTP_IN, HTTP_OUT, POSTGRES_IN, POSTGRES_OUT, REDIS_IN, REDIS_OUT, Seen,
    assert_all, http_class, report, sum,
};
use sonde_integration_tests::l7_servers::{
    self as l7, Container, Netns, Ran, log_lines, script, venv_python_with,
};
use sonde_integration_tests::tools::require;
use sonde_integration_tests::{Agent, Scrape, privileged};

const TIMEOUT: Duration = Duration::from_secs(60);

/// The per-container opt-out (coroot's variable, docs/l7.md): a container whose processes carry
/// it is not traced.
const OPT_OUT_ENV: (&str, &str) = ("COROOT_EBPF_TRACES", "disabled");

/// The status label of a gRPC call with `grpc-status` `code` (crates/registry/src/l7.rs
/// `status_label`: OK as 2xx, any error as 5xx).
fn grpc_label(code: u64) -> String {
    if code == 0 {
        "2xx".to_owned()
    } else {
        "5xx".to_owned()
    }
}

static SERIAL: Mutex<()> = Mutex::new(());

/// One L7 test at a time: each runs its own agent and servers.
fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn start_agent(extra: &[&str]) -> Agent {
    let mut args = vec!["--min-container-age", "0s"];
    args.extend_from_slice(extra);
    let agent = Agent::start(&args);
    agent.scrape_until("the tracer up", TIMEOUT, |s| {
        s.value("sonde_subsystem_up", &[("subsystem", "tracer")]) == Some(1.0)
    });
    agent
}

/// Scrapes until every expectation's counter reached its total (or TIMEOUT), then once more
/// a moment later (a late or doubled request shows there), and checks them all.
fn settle_and_check(agent: &Agent, expects: &[Expect], containers: &[&str]) -> Scrape {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let s = agent.scrape();
        if expects.iter().all(|e| e.reached(&s)) || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let s = agent.scrape();
    assert_all(&s, expects, containers, &agent.log_text());
    s
}

fn tools(test: &str, list: &[(&str, &str)]) -> bool {
    list.iter()
        .all(|(tool, package)| require(test, tool, package).is_some())
}

fn py(argv: &[&str]) -> Vec<String> {
    let mut v = vec![
        "python3".to_owned(),
        script("l7_clients.py").to_str().unwrap().to_owned(),
    ];
    v.extend(argv.iter().map(|s| (*s).to_owned()));
    v
}

fn run_py(c: &mut Container, argv: &[&str]) -> serde_json::Value {
    let v = py(argv);
    let v: Vec<&str> = v.iter().map(String::as_str).collect();
    c.run_ok(&v).json()
}

/// Statuses and per-request times of an l7_clients.py HTTP client's answer.
fn http_answer(v: &serde_json::Value) -> Vec<(u16, Duration)> {
    let st = v["statuses"].as_array().unwrap();
    let ns = v["ns"].as_array().unwrap();
    st.iter()
        .zip(ns)
        .map(|(s, n)| {
            (
                s.as_u64().unwrap() as u16,
                Duration::from_nanos(n.as_u64().unwrap()),
            )
        })
        .collect()
}

/// curl, one process per request: (status code, the whole process's time).
fn curl(c: &mut Container, extra: &[&str], url: &str) -> (u16, Ran) {
    let mut argv = vec!["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}"];
    argv.extend_from_slice(extra);
    argv.push(url);
    let r = c.run_ok(&argv);
    (r.stdout.trim().parse().unwrap(), r)
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.1

#[test]
fn http1_short_lived_and_keepalive_clients_are_exact_on_both_sides() {
    const TEST: &str = "http1_short_lived_and_keepalive_clients_are_exact_on_both_sides";
    let _serial = serial();
    if !privileged(TEST) || !tools(TEST, &[("curl", "curl"), ("busybox", "busybox-static")]) {
        return;
    }
    let mut srv = Container::create("h1srv", &[]);
    let mut cli = Container::create("h1cli", &[]);
    let http = l7::http_server(&mut srv);
    let agent = start_agent(&[]);
    let dest = format!("127.0.0.1:{}", http.port);
    let url = |code: u16| format!("http://{dest}/status/{code}");
    let mut seen = Seen::default();

    // Short-lived: each request its own process.
    for code in [200, 404, 500, 200, 404] {
        let (got, r) = curl(&mut cli, &[], &url(code));
        assert_eq!(got, code);
        seen.process(&[http_class(code)], r.wall, true);
    }
    for code in [200, 404] {
        let r = cli.run(&["busybox", "wget", "-q", "-O", "/dev/null", &url(code)]);
        let got = if r.rc == 0 {
            200
        } else {
            assert!(r.stderr.contains("404"), "busybox wget: {r:?}");
            404
        };
        assert_eq!(got, code);
        seen.process(&[http_class(code)], r.wall, true);
    }
    for code in [200, 500] {
        let v = run_py(
            &mut cli,
            &[
                "http-once",
                "127.0.0.1",
                &http.port.to_string(),
                &format!("/status/{code}"),
            ],
        );
        for (got, took) in http_answer(&v) {
            assert_eq!(got, code);
            seen.measured(http_class(got), took);
        }
    }
    // One keep-alive connection, requests one after the other.
    let paths = [200, 404, 200, 500, 200, 404, 200, 500, 200, 200].map(|c| format!("/status/{c}"));
    let mut argv = vec![
        "http-keepalive".to_owned(),
        "127.0.0.1".to_owned(),
        http.port.to_string(),
    ];
    argv.extend(paths.iter().cloned());
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let v = run_py(&mut cli, &argv);
    let answers = http_answer(&v);
    assert_eq!(answers.len(), paths.len());
    for (got, took) in answers {
        seen.measured(http_class(got), took);
    }
    // The harness's own truth: the server answered exactly what the clients saw.
    assert_eq!(log_lines(&http.log, "REQ ").len() as u64, seen.total());

    let (sid, cid) = (srv.id.clone(), cli.id.clone());
    settle_and_check(
        &agent,
        &[
            Expect {
                what: "client (outbound)",
                family: HTTP_OUT,
                labels: vec![
                    ("container_id", &cid),
                    ("destination", &dest),
                    ("actual_destination", &dest),
                ],
                seen: &seen,
            },
            Expect {
                what: "server (inbound)",
                family: HTTP_IN,
                labels: vec![("container_id", &sid)],
                seen: &seen,
            },
        ],
        &[&sid, &cid],
    );
}

#[test]
fn http1_pipelined_requests_are_each_counted() {
    const TEST: &str = "http1_pipelined_requests_are_each_counted";
    let _serial = serial();
    if !privileged(TEST) {
        return;
    }
    let mut srv = Container::create("h1psrv", &[]);
    let mut cli = Container::create("h1pcli", &[]);
    let http = l7::http_server(&mut srv);
    let agent = start_agent(&[]);
    let dest = format!("127.0.0.1:{}", http.port);
    let mut seen = Seen::default();
    // Two connections, each writing three requests at once.
    for _ in 0..2 {
        let v = run_py(
            &mut cli,
            &[
                "http-pipeline",
                "127.0.0.1",
                &http.port.to_string(),
                "/status/200",
                "/status/404",
                "/status/500",
            ],
        );
        let answers = http_answer(&v);
        let statuses: Vec<&str> = answers.iter().map(|(c, _)| http_class(*c)).collect();
        assert_eq!(statuses, ["2xx", "4xx", "5xx"]);
        seen.process(&statuses, answers[0].1, false);
    }
    assert_eq!(log_lines(&http.log, "REQ ").len(), 6);
    let (sid, cid) = (srv.id.clone(), cli.id.clone());
    settle_and_check(
        &agent,
        &[
            Expect {
                what: "pipelining client (outbound)",
                family: HTTP_OUT,
                labels: vec![("container_id", &cid), ("destination", &dest)],
                seen: &seen,
            },
            Expect {
                what: "server (inbound)",
                family: HTTP_IN,
                labels: vec![("container_id", &sid)],
                seen: &seen,
            },
        ],
        &[&sid, &cid],
    );
}

#[test]
fn nginx_requests_are_exact_on_both_sides() {
    const TEST: &str = "nginx_requests_are_exact_on_both_sides";
    let _serial = serial();
    if !privileged(TEST)
        || !tools(
            TEST,
            &[
                ("nginx", "nginx"),
                ("curl", "curl"),
                ("ab", "apache2-utils"),
            ],
        )
    {
        return;
    }
    let mut srv = Container::create("ngxsrv", &[]);
    let mut cli = Container::create("ngxcli", &[]);
    let nginx = l7::nginx(&mut srv);
    let agent = start_agent(&[]);
    let dest = format!("127.0.0.1:{}", nginx.port);
    let mut seen = Seen::default();
    // curl, one process each: `return`s (writev), a missing file, a static file (sendfile).
    for (path, code) in [
        ("/status/200", 200),
        ("/missing", 404),
        ("/status/500", 500),
        ("/file.txt", 200),
    ] {
        let (got, r) = curl(&mut cli, &[], &format!("http://{dest}{path}"));
        assert_eq!(got, code, "{path}");
        seen.process(&[http_class(code)], r.wall, true);
    }
    // ab: 200 requests on one keep-alive connection, then 50 on a connection each.
    for (keepalive, n, path) in [(true, 200, "/status/200"), (false, 50, "/file.txt")] {
        let n_s = n.to_string();
        let url = format!("http://{dest}{path}");
        let mut argv = vec!["ab", "-q", "-n", &n_s, "-c", "1"];
        if keepalive {
            argv.push("-k");
        }
        argv.push(&url);
        let r = cli.run_ok(&argv);
        assert!(
            r.stdout.contains(&format!("Complete requests:      {n}"))
                && r.stdout.contains("Failed requests:        0")
                && !r.stdout.contains("Non-2xx"),
            "ab: {}",
            r.stdout
        );
        seen.process(&vec!["2xx"; n], r.wall, true);
    }
    // nginx's own access log agrees (it is written after the response: wait for it).
    sonde_integration_tests::wait_for("nginx's access log", Duration::from_secs(10), || {
        (std::fs::read_to_string(&nginx.aux)
            .unwrap_or_default()
            .lines()
            .count() as u64
            == seen.total())
        .then_some(())
    });
    let log = std::fs::read_to_string(&nginx.aux).unwrap();
    for (class, n) in &seen.statuses {
        let logged = log
            .lines()
            .filter(|l| {
                l.split(' ')
                    .next()
                    .and_then(|c| c.parse().ok())
                    .map(http_class)
                    == Some(class.as_str())
            })
            .count() as u64;
        assert_eq!(logged, *n, "nginx logged {logged} {class}");
    }
    let (sid, cid) = (srv.id.clone(), cli.id.clone());
    settle_and_check(
        &agent,
        &[
            Expect {
                what: "curl+ab (outbound)",
                family: HTTP_OUT,
                labels: vec![("container_id", &cid), ("destination", &dest)],
                seen: &seen,
            },
            Expect {
                what: "nginx (inbound)",
                family: HTTP_IN,
                labels: vec![("container_id", &sid)],
                seen: &seen,
            },
        ],
        &[&sid, &cid],
    );
}

// ---------------------------------------------------------------------------------------------
// HTTP/2 and gRPC

#[test]
fn http2_prior_knowledge_streams_are_exact_on_both_sides() {
    const TEST: &str = "http2_prior_knowledge_streams_are_exact_on_both_sides";
    let _serial = serial();
    if !privileged(TEST)
        || !tools(
            TEST,
            &[
                ("curl", "curl"),
                ("nghttpd", "nghttp2-server"),
                ("nghttp", "nghttp2-client"),
            ],
        )
    {
        return;
    }
    let mut srv = Container::create("h2srv", &[]);
    let mut cli = Container::create("h2cli", &[]);
    let h2 = l7::nghttpd(&mut srv);
    let agent = start_agent(&[]);
    let dest = format!("127.0.0.1:{}", h2.port);
    let mut seen = Seen::default();
    // curl with prior knowledge: one process, one connection, one stream each.
    for (path, code) in [
        ("/index.html", 200),
        ("/missing", 404),
        ("/index.html", 200),
        ("/index.html", 200),
        ("/nope", 404),
    ] {
        let (got, r) = curl(
            &mut cli,
            &["--http2-prior-knowledge"],
            &format!("http://{dest}{path}"),
        );
        assert_eq!(got, code, "{path}");
        seen.process(&[http_class(code)], r.wall, true);
    }
    // nghttp: four concurrent streams on one connection.
    // (nghttp requests each distinct URI once: three files and one missing path.)
    let urls: Vec<String> = ["/index.html", "/missing", "/a.html", "/b.html"]
        .iter()
        .map(|p| format!("http://{dest}{p}"))
        .collect();
    let mut argv = vec!["nghttp", "-n", "-v"];
    argv.extend(urls.iter().map(String::as_str));
    let r = cli.run_ok(&argv);
    let mut statuses: Vec<&str> = r
        .stdout
        .lines()
        .filter_map(|l| {
            l.split_once(":status: ")
                .map(|(_, c)| http_class(c.trim().parse().unwrap()))
        })
        .collect();
    statuses.sort();
    assert_eq!(
        statuses,
        ["2xx", "2xx", "2xx", "4xx"],
        "nghttp: {}",
        r.stdout
    );
    seen.process(&statuses, r.wall, false);

    let (sid, cid) = (srv.id.clone(), cli.id.clone());
    settle_and_check(
        &agent,
        &[
            Expect {
                what: "h2c clients (outbound)",
                family: HTTP_OUT,
                labels: vec![("container_id", &cid), ("destination", &dest)],
                seen: &seen,
            },
            Expect {
                what: "nghttpd (inbound)",
                family: HTTP_IN,
                labels: vec![("container_id", &sid)],
                seen: &seen,
            },
        ],
        &[&sid, &cid],
    );
}

#[test]
fn grpc_calls_are_counted_by_grpc_status() {
    const TEST: &str = "grpc_calls_are_counted_by_grpc_status";
    let _serial = serial();
    if !privileged(TEST) {
        return;
    }
    let Some(python) = venv_python_with("grpc") else {
        sonde_integration_tests::skip(
            TEST,
            "no Python with grpcio at /var/tmp/sonde-venv (scripts/install-test-tools.sh installs it; or set SONDE_TEST_PYTHON)",
        );
        return;
    };
    let mut srv = Container::create("grpcsrv", &[]);
    let mut cli = Container::create("grpccli", &[]);
    let grpc = l7::grpc_server(&mut srv, &python);
    let agent = start_agent(&[]);
    let dest = format!("127.0.0.1:{}", grpc.port);
    let mut seen = Seen::default();
    let clients = script("l7_clients.py");
    for (method, count) in [("Ok", 4), ("Missing", 2)] {
        let r = cli.run_ok(&[
            python.to_str().unwrap(),
            clients.to_str().unwrap(),
            "grpc",
            "127.0.0.1",
            &grpc.port.to_string(),
            method,
            &count.to_string(),
        ]);
        let v = r.json();
        for (code, ns) in v["codes"]
            .as_array()
            .unwrap()
            .iter()
            .zip(v["ns"].as_array().unwrap())
        {
            let code = code.as_u64().unwrap();
            assert_eq!(code, if method == "Ok" { 0 } else { 5 });
            seen.measured(
                &grpc_label(code),
                Duration::from_nanos(ns.as_u64().unwrap()),
            );
        }
    }
    assert_eq!(log_lines(&grpc.log, "GRPC ").len(), 6);
    let (sid, cid) = (srv.id.clone(), cli.id.clone());
    settle_and_check(
        &agent,
        &[
            Expect {
                what: "gRPC client (outbound)",
                family: HTTP_OUT,
                labels: vec![("container_id", &cid), ("destination", &dest)],
                seen: &seen,
            },
            Expect {
                what: "gRPC server (inbound)",
                family: HTTP_IN,
                labels: vec![("container_id", &sid)],
                seen: &seen,
            },
        ],
        &[&sid, &cid],
    );
}

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

// ---------------------------------------------------------------------------------------------
// What must not be counted

#[test]
fn opted_out_containers_and_excluded_paths_are_not_counted() {
    const TEST: &str = "opted_out_containers_and_excluded_paths_are_not_counted";
    let _serial = serial();
    if !privileged(TEST) || !tools(TEST, &[("curl", "curl")]) {
        return;
    }
    let mut srv = Container::create("exsrv", &[]);
    let mut cli = Container::create("excli", &[]);
    let mut quiet = Container::create("exoptout", &[OPT_OUT_ENV]);
    let http = l7::http_server(&mut srv);
    let agent = start_agent(&["--exclude-http-requests-by-path", "/healthz"]);
    let dest = format!("127.0.0.1:{}", http.port);
    let mut seen = Seen::default();
    let mut served = Seen::default();
    for path in [
        "/status/200",
        "/healthz",
        "/status/404",
        "/healthz",
        "/status/200",
    ] {
        let (code, r) = curl(&mut cli, &[], &format!("http://{dest}{path}"));
        if path != "/healthz" {
            seen.process(&[http_class(code)], r.wall, true);
        }
    }
    let v = run_py(
        &mut cli,
        &[
            "http-keepalive",
            "127.0.0.1",
            &http.port.to_string(),
            "/healthz",
            "/status/500",
            "/healthz",
        ],
    );
    for (code, took) in http_answer(&v) {
        if code == 500 {
            seen.measured(http_class(code), took);
        }
    }
    served.merge(&seen);
    for path in ["/status/200", "/status/404", "/status/200"] {
        let (code, r) = curl(&mut quiet, &[], &format!("http://{dest}{path}"));
        served.process(&[http_class(code)], r.wall, true);
    }
    assert_eq!(
        log_lines(&http.log, "REQ ").len(),
        11,
        "every request was served"
    );
    let (sid, cid, qid) = (srv.id.clone(), cli.id.clone(), quiet.id.clone());
    let s = settle_and_check(
        &agent,
        &[
            Expect {
                what: "client, /healthz excluded (outbound)",
                family: HTTP_OUT,
                labels: vec![("container_id", &cid), ("destination", &dest)],
                seen: &seen,
            },
            Expect {
                what: "server, /healthz excluded, the opted-out client's requests included (inbound)",
                family: HTTP_IN,
                labels: vec![("container_id", &sid)],
                seen: &served,
            },
        ],
        &[&sid, &cid, &qid],
    );
    let leaked: Vec<String> = s
        .samples
        .iter()
        .filter(|x| x.labels.get("container_id") == Some(&qid))
        .filter(|x| x.name.contains("_requests") || x.name.contains("_queries"))
        .map(|x| format!("{} {:?} {}", x.name, x.labels, x.value))
        .collect();
    assert!(
        leaked.is_empty(),
        "{}={} container has L7 series: {leaked:#?}",
        OPT_OUT_ENV.0,
        OPT_OUT_ENV.1
    );
    // The opted-out container is still a container: its TCP connects are counted.
    assert_eq!(
        sum(
            &s,
            "container_net_tcp_successful_connects_total",
            &[("container_id", &qid), ("destination", &dest)]
        ),
        3.0,
        "{}",
        s.text
    );
}

#[test]
fn disable_l7_tracing_exports_no_l7_series() {
    const TEST: &str = "disable_l7_tracing_exports_no_l7_series";
    let _serial = serial();
    if !privileged(TEST) || !tools(TEST, &[("curl", "curl")]) {
        return;
    }
    let mut srv = Container::create("offsrv", &[]);
    let mut cli = Container::create("offcli", &[]);
    let http = l7::http_server(&mut srv);
    let agent = start_agent(&["--disable-l7-tracing"]);
    let dest = format!("127.0.0.1:{}", http.port);
    for code in [200, 404, 500] {
        let (got, _) = curl(&mut cli, &[], &format!("http://{dest}/status/{code}"));
        assert_eq!(got, code);
    }
    // TCP tracing still works: the three connects arrive; no L7 series ever does.
    let s = agent.scrape_until("the client's connects", TIMEOUT, |s| {
        sum(
            s,
            "container_net_tcp_successful_connects_total",
            &[("container_id", &cli.id), ("destination", &dest)],
        ) >= 3.0
    });
    std::thread::sleep(Duration::from_millis(1500));
    let s2 = agent.scrape();
    for scrape in [&s, &s2] {
        let l7: Vec<&str> = scrape
            .text
            .lines()
            .filter(|l| {
                (l.contains(&cli.id) || l.contains(&srv.id))
                    && (l.contains("_requests") || l.contains("_queries"))
            })
            .collect();
        assert!(
            l7.is_empty(),
            "L7 series with --disable-l7-tracing: {l7:#?}"
        );
    }
}
