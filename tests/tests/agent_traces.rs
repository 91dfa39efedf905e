//! OTLP trace export end to end (issue 16, coroot-node-agent's `--traces-endpoint`): real
//! servers in one test cgroup, real clients in another, the agent started with
//! `--traces-endpoint` at a small OTLP/HTTP receiver of the harness (tests/src/otlp_receiver.rs,
//! which decodes the protobuf itself), and the spans checked against what the clients did:
//! exactly one span per request, of kind CLIENT, named and attributed as coroot names them
//! (http.url/method/status_code, db.system/statement/operation, net.peer.name/port), status
//! ERROR exactly on the requests that failed, the client's container as resource
//! (container.id, service.name), and times inside the test's own wall-clock window.
//! Also: `--traces-sampling 0` sends nothing; an endpoint that is down loses spans, counted,
//! while the agent keeps serving its metrics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sonde_integration_tests::agent::sonde_binary;
use sonde_integration_tests::cgroups::{TestCgroup, hierarchies};
use sonde_integration_tests::l7_db::{self as db, client_argv};
use sonde_integration_tests::l7_run::{TIMEOUT, curl, serial, start_agent, tools};
use sonde_integration_tests::l7_servers::{self as l7, Container, log_lines, venv_python_with};
use sonde_integration_tests::otlp_receiver::{Receiver, Span, Value};
use sonde_integration_tests::{Agent, privileged, skip};

fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// The agent exporting to `rx`, batches sent 200 ms after their first span.
fn traced_agent(rx: &Receiver, extra: &[&str]) -> Agent {
    let url = rx.url();
    let mut args = vec![
        "--traces-endpoint",
        url.as_str(),
        "--traces-batch-delay",
        "200ms",
    ];
    args.extend_from_slice(extra);
    let agent = start_agent(&args);
    agent.scrape_until("the traces subsystem up", TIMEOUT, |s| {
        s.value("sonde_subsystem_up", &[("subsystem", "traces")]) == Some(1.0)
    });
    agent
}

/// [`traced_agent`], born in `cg` (a shell moves itself there, then execs the agent), so the
/// registry never sees it anywhere else.
fn traced_agent_in(rx: &Receiver, cg: &TestCgroup) -> Agent {
    let procs: Vec<String> = hierarchies()
        .iter()
        .map(|h| {
            let p = h.join(cg.path.trim_start_matches('/')).join("cgroup.procs");
            format!("echo $$ > {}", p.display())
        })
        .collect();
    let script = format!("{} && exec \"$@\"", procs.join(" && "));
    let launcher: Vec<std::ffi::OsString> = vec![
        "sh".into(),
        "-c".into(),
        script.into(),
        "sh".into(),
        sonde_binary().into_os_string(),
    ];
    let url = rx.url();
    let agent = Agent::start_via(
        &launcher,
        &[
            "--min-container-age",
            "0s",
            "--traces-endpoint",
            url.as_str(),
            "--traces-batch-delay",
            "200ms",
        ],
    );
    agent.scrape_until("the tracer and trace export up", TIMEOUT, |s| {
        s.value("sonde_subsystem_up", &[("subsystem", "tracer")]) == Some(1.0)
            && s.value("sonde_subsystem_up", &[("subsystem", "traces")]) == Some(1.0)
    });
    agent
}

/// The spans of `container` once there are `n` of them (or TIMEOUT), then again 1.5 s later:
/// a late or doubled span shows there.
fn spans_of(rx: &Receiver, agent: &Agent, container: &str, n: usize) -> Vec<Span> {
    let mine = || -> Vec<Span> {
        rx.spans()
            .into_iter()
            .filter(|s| s.resource_str("container.id") == container)
            .collect()
    };
    let deadline = Instant::now() + TIMEOUT;
    while mine().len() < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let got = mine();
    let g = rx.lock();
    assert!(g.errors.is_empty(), "undecodable exports: {:?}", g.errors);
    for (method, path, ctype, _) in &g.requests {
        assert_eq!(
            (method.as_str(), path.as_str(), ctype.as_str()),
            ("POST", "/v1/traces", "application/x-protobuf")
        );
    }
    drop(g);
    assert_eq!(
        got.len(),
        n,
        "spans of {container}: {:#?}\n--- agent log ---\n{}",
        got,
        agent.log_text()
    );
    got
}

/// What every span must be, whatever its protocol.
fn check_common(spans: &[Span], container: &str, port: u16, from: u64, to: u64) {
    for s in spans {
        assert_eq!(s.kind, 3, "kind CLIENT: {s:?}");
        assert_eq!(s.scope, "sonde");
        assert_eq!(s.schema_url, "https://opentelemetry.io/schemas/1.18.0");
        assert_eq!(s.resource_str("container.id"), container);
        // A systemd service's container is its own service (coroot's rule names only
        // Kubernetes workloads).
        assert_eq!(s.resource_str("service.name"), container);
        assert!(s.resource.contains_key("host.name") && s.resource.contains_key("host.id"));
        assert_eq!(s.trace_id.len(), 16);
        assert_eq!(s.span_id.len(), 8);
        assert_eq!(s.attr_str("net.peer.name"), "127.0.0.1", "{s:?}");
        assert_eq!(s.attr_int("net.peer.port"), Some(i64::from(port)), "{s:?}");
        // The kernel's times, in the test's own window.
        assert!(
            from <= s.start_ns && s.start_ns <= s.end_ns && s.end_ns <= to,
            "span times {}..{} outside the test's {from}..{to}: {s:?}",
            s.start_ns,
            s.end_ns
        );
    }
    let ids: std::collections::BTreeSet<_> = spans.iter().map(|s| s.span_id.clone()).collect();
    assert_eq!(ids.len(), spans.len(), "span ids are unique");
}

/// (name, key attribute, error) of every span, sorted: compared as a whole.
fn summary(spans: &[Span], key: &str) -> Vec<(String, String, bool)> {
    let mut v: Vec<_> = spans
        .iter()
        .map(|s| {
            let k = match s.attr(key) {
                Some(Value::Str(x)) => x.clone(),
                Some(Value::Int(i)) => i.to_string(),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|x| x.str().unwrap_or("?").to_owned())
                    .collect::<Vec<_>>()
                    .join(","),
                _ => String::new(),
            };
            (s.name.clone(), k, s.is_error())
        })
        .collect();
    v.sort();
    v
}

fn owned(v: &[(&str, &str, bool)]) -> Vec<(String, String, bool)> {
    let mut v: Vec<_> = v
        .iter()
        .map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), *c))
        .collect();
    v.sort();
    v
}

// ---------------------------------------------------------------------------------------------

#[test]
fn http_postgres_and_redis_requests_become_one_span_each() {
    const TEST: &str = "http_postgres_and_redis_requests_become_one_span_each";
    let _serial = serial();
    if !privileged(TEST)
        || !tools(
            TEST,
            &[
                ("curl", "curl"),
                ("psql", "postgresql-client"),
                ("setpriv", "util-linux"),
                ("redis-server", "redis-server"),
                ("redis-cli", "redis-tools"),
            ],
        )
    {
        return;
    }
    let Some(bin) = l7::postgres_bin() else {
        skip(TEST, "no PostgreSQL server (apt-get install -y postgresql)");
        return;
    };
    // A collector's kind of port: the agent's own exports are requests the tracer sees.
    let rx = Receiver::start_outside_ephemeral();
    let mut srv = Container::create("trsrv", &[]);
    let mut cli = Container::create("trcli", &[]);
    let http = l7::http_server(&mut srv);
    let pg = l7::postgres(&mut srv, &bin);
    let redis = l7::redis(&mut srv);
    // The agent in a container of its own (as in a DaemonSet): its exports are then requests
    // of a named container to a tracked port, counted in its metrics, but never spans.
    let agent_cg = TestCgroup::create(&format!(
        "/system.slice/sonde-l7tragent-{}.service",
        std::process::id()
    ))
    .unwrap();
    let agent = traced_agent_in(&rx, &agent_cg);
    let from = unix_ns();

    // HTTP/1.1: curl, one process per request, known statuses.
    let mut want_http = Vec::new();
    for code in [200u16, 404, 500, 200] {
        let path = format!("/status/{code}");
        let (got, _) = curl(
            &mut cli,
            &[],
            &format!("http://127.0.0.1:{}{path}", http.port),
        );
        assert_eq!(got, code);
        want_http.push((
            "GET".to_owned(),
            format!("http://127.0.0.1:{}{path}", http.port),
            code >= 400,
        ));
    }
    // Postgres: psql, the simple protocol, one failing.
    let port = pg.port.to_string();
    let queries = ["SELECT 1", "SELECT 1/0", "SELECT 'sonde'"];
    for sql in queries {
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
        assert_eq!(r.rc == 0, !sql.contains("1/0"), "{r:?}");
    }
    // Redis: redis-cli, one process per command; INCR of a string fails.
    let rport = redis.port.to_string();
    let commands: [&[&str]; 4] = [
        &["SET", "k", "v"],
        &["GET", "k"],
        &["INCR", "k"],
        &["DEL", "k", "x", "y"],
    ];
    for cmd in commands {
        let mut argv = vec!["redis-cli", "-p", &rport];
        argv.extend_from_slice(cmd);
        cli.run_ok(&argv);
    }
    let to_mark = unix_ns();

    let spans = spans_of(&rx, &agent, &cli.id, 4 + 3 + 4);
    let to = unix_ns().max(to_mark);
    let by_port = |p: u16| -> Vec<Span> {
        spans
            .iter()
            .filter(|s| s.attr_int("net.peer.port") == Some(i64::from(p)))
            .cloned()
            .collect()
    };
    let h = by_port(http.port);
    check_common(&h, &cli.id, http.port, from, to);
    let mut got_http: Vec<_> = h
        .iter()
        .map(|s| {
            assert_eq!(s.attr_str("http.method"), "GET");
            let code = s.attr_int("http.status_code").unwrap();
            assert_eq!(s.is_error(), code >= 400);
            (
                s.name.clone(),
                s.attr_str("http.url").to_owned(),
                s.is_error(),
            )
        })
        .collect();
    got_http.sort();
    want_http.sort();
    assert_eq!(got_http, want_http);

    let p = by_port(pg.port);
    check_common(&p, &cli.id, pg.port, from, to);
    for s in &p {
        assert_eq!(s.attr_str("db.system"), "postgresql");
    }
    assert_eq!(
        summary(&p, "db.statement"),
        owned(&[
            ("query", "SELECT 1", false),
            ("query", "SELECT 1/0", true),
            ("query", "SELECT 'sonde'", false),
        ])
    );

    let r = by_port(redis.port);
    check_common(&r, &cli.id, redis.port, from, to);
    for s in &r {
        assert_eq!(s.attr_str("db.system"), "redis");
        assert_eq!(s.attr_str("db.operation"), s.name);
    }
    assert_eq!(
        summary(&r, "db.statement"),
        owned(&[
            ("SET", "SET k ...", false),
            ("GET", "GET k", false),
            ("INCR", "INCR k", true),
            ("DEL", "DEL k ...", false),
        ])
    );
    // The agent's own exports (HTTP POSTs to a tracked port) are requests of its container,
    // and made no span.
    let rx_dest = format!("127.0.0.1:{}", rx.port);
    agent.scrape_until(
        "the agent's exports counted as its requests",
        TIMEOUT,
        |s| {
            s.value(
                "container_http_requests_total",
                &[
                    ("container_id", &agent_cg.path),
                    ("destination", &rx_dest),
                    ("status", "2xx"),
                ],
            )
            .is_some_and(|v| v >= 1.0)
        },
    );
    std::thread::sleep(Duration::from_millis(1000));
    let own: Vec<_> = rx
        .spans()
        .into_iter()
        .filter(|s| s.attr_int("net.peer.port") == Some(i64::from(rx.port)))
        .collect();
    assert!(own.is_empty(), "spans of the agent's own exports: {own:#?}");
    // The agent's counters agree: these spans (and any other container's on the node) were
    // exported, none dropped.
    let s = agent.scrape();
    assert!(s.value("sonde_traces_spans_exported_total", &[]).unwrap() >= 11.0);
    assert_eq!(
        s.value(
            "sonde_traces_spans_dropped_total",
            &[("reason", "queue_full")]
        ),
        Some(0.0)
    );
}

#[test]
fn http2_and_grpc_requests_become_spans_with_their_status() {
    const TEST: &str = "http2_and_grpc_requests_become_spans_with_their_status";
    let _serial = serial();
    if !privileged(TEST) || !tools(TEST, &[("curl", "curl"), ("nghttpd", "nghttp2-server")]) {
        return;
    }
    let python = venv_python_with("grpc");
    let rx = Receiver::start();
    let mut srv = Container::create("trh2srv", &[]);
    let mut cli = Container::create("trh2cli", &[]);
    let h2 = l7::nghttpd(&mut srv);
    let grpc = python.as_ref().map(|p| l7::grpc_server(&mut srv, p));
    let agent = traced_agent(&rx, &[]);
    let from = unix_ns();
    let dest = format!("127.0.0.1:{}", h2.port);
    for (path, code) in [("/index.html", 200), ("/missing", 404), ("/a.html", 200)] {
        let (got, _) = curl(
            &mut cli,
            &["--http2-prior-knowledge"],
            &format!("http://{dest}{path}"),
        );
        assert_eq!(got, code, "{path}");
    }
    let mut n = 3;
    if let (Some(python), Some(grpc)) = (&python, &grpc) {
        for (method, count) in [("Ok", 2), ("Missing", 1)] {
            let clients = l7::script("l7_clients.py");
            cli.run_ok(&[
                python.to_str().unwrap(),
                clients.to_str().unwrap(),
                "grpc",
                "127.0.0.1",
                &grpc.port.to_string(),
                method,
                &count.to_string(),
            ]);
        }
        assert_eq!(log_lines(&grpc.log, "GRPC ").len(), 3);
        n += 3;
    } else {
        skip(
            TEST,
            "no Python with grpcio at /var/tmp/sonde-venv (scripts/install-test-tools.sh): the gRPC half is not run",
        );
    }
    let spans = spans_of(&rx, &agent, &cli.id, n);
    let to = unix_ns();
    let h: Vec<Span> = spans
        .iter()
        .filter(|s| s.attr_int("net.peer.port") == Some(i64::from(h2.port)))
        .cloned()
        .collect();
    check_common(&h, &cli.id, h2.port, from, to);
    let url = |p: &str| format!("http://{dest}{p}");
    let (index, missing, a) = (url("/index.html"), url("/missing"), url("/a.html"));
    assert_eq!(
        summary(&h, "http.url"),
        owned(&[
            ("GET", index.as_str(), false),
            ("GET", missing.as_str(), true),
            ("GET", a.as_str(), false),
        ])
    );
    if let Some(grpc) = &grpc {
        let g: Vec<Span> = spans
            .iter()
            .filter(|s| s.attr_int("net.peer.port") == Some(i64::from(grpc.port)))
            .cloned()
            .collect();
        check_common(&g, &cli.id, grpc.port, from, to);
        let ok = format!("http://127.0.0.1:{}/sonde.Test/Ok", grpc.port);
        let missing = format!("http://127.0.0.1:{}/sonde.Test/Missing", grpc.port);
        assert_eq!(
            summary(&g, "http.url"),
            owned(&[
                ("POST", ok.as_str(), false),
                ("POST", ok.as_str(), false),
                ("POST", missing.as_str(), true),
            ])
        );
        let mut codes: Vec<_> = g
            .iter()
            .map(|s| s.attr_int("rpc.grpc.status_code").unwrap())
            .collect();
        codes.sort();
        assert_eq!(codes, [0, 0, 5]);
    }
}

/// Runs l7_db_clients.py `proto` against `port` in `cli`.
fn db_client(cli: &mut Container, proto: &str, port: u16) {
    let argv = client_argv(&[proto, &port.to_string()]);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    cli.run_ok(&argv);
}

#[test]
fn mysql_memcached_and_zookeeper_requests_become_one_span_each() {
    const TEST: &str = "mysql_memcached_and_zookeeper_requests_become_one_span_each";
    let _serial = serial();
    if !privileged(TEST)
        || !tools(
            TEST,
            &[
                ("mariadbd", "mariadb-server"),
                ("mariadb-install-db", "mariadb-server"),
                ("memcached", "memcached"),
                ("java", "zookeeper"),
            ],
        )
    {
        return;
    }
    if !std::path::Path::new("/usr/share/java/zookeeper.jar").exists() {
        skip(
            TEST,
            "ZooKeeper is not installed (apt-get install -y zookeeper)",
        );
        return;
    }
    let rx = Receiver::start();
    let mut srv = Container::create("trdbsrv", &[]);
    let mut cli = Container::create("trdbcli", &[]);
    let mysql = db::mariadb(&mut srv);
    let mc = db::memcached(&mut srv);
    let zk = db::zookeeper(&mut srv);
    let agent = traced_agent(&rx, &[]);
    let from = unix_ns();
    db_client(&mut cli, "mysql", mysql.port);
    db_client(&mut cli, "memcached-text", mc.port);
    db_client(&mut cli, "memcached-binary", mc.port);
    db_client(&mut cli, "zookeeper", zk.port);
    let spans = spans_of(&rx, &agent, &cli.id, 14 + 18 + 8);
    let to = unix_ns();
    let of = |p: u16| -> Vec<Span> {
        spans
            .iter()
            .filter(|s| s.attr_int("net.peer.port") == Some(i64::from(p)))
            .cloned()
            .collect()
    };

    let m = of(mysql.port);
    check_common(&m, &cli.id, mysql.port, from, to);
    assert!(m.iter().all(|s| s.attr_str("db.system") == "mysql"));
    // The prepared statement's id is the server's: read it from the PREPARE span.
    let prepared = m
        .iter()
        .map(|s| s.attr_str("db.statement"))
        .find(|t| t.starts_with("PREPARE ") && t.ends_with(" FROM SELECT 1"))
        .unwrap_or_else(|| panic!("no PREPARE span: {m:#?}"))
        .to_owned();
    let mut want = vec![
        ("query", "CREATE DATABASE sonde", false),
        (
            "query",
            "CREATE TABLE sonde.t (id INT PRIMARY KEY, v VARCHAR(20))",
            false,
        ),
        (
            "query",
            "INSERT INTO sonde.t VALUES (1, 'a'), (2, 'b')",
            false,
        ),
        ("query", "SELECT id, v FROM sonde.t ORDER BY id", false),
        ("query", "INSERT INTO sonde.t VALUES (1, 'duplicate')", true),
        ("query", "UPDATE sonde.t SET v = 'c' WHERE id = 2", false),
        ("query", "SELEC 1", true),
        ("query", "SELECT COUNT(*) FROM sonde.t", false),
        ("query", "SELECT * FROM sonde.missing", true),
        ("query", "DROP DATABASE sonde", false),
        ("query", "PREPARE SELEC ?", true),
        ("query", "SELECT 1", false),
        ("query", "SELECT 1", false),
    ];
    want.push(("query", prepared.as_str(), false));
    assert_eq!(summary(&m, "db.statement"), owned(&want));

    let c = of(mc.port);
    check_common(&c, &cli.id, mc.port, from, to);
    assert!(c.iter().all(|s| s.attr_str("db.system") == "memcached"));
    assert!(c.iter().all(|s| s.attr_str("db.operation") == s.name));
    assert_eq!(
        summary(&c, "db.memcached.item"),
        owned(&[
            ("set", "greeting", false),
            ("get", "greeting", false),
            ("get", "nosuchkey", false),
            ("add", "greeting", false),
            ("set", "counter", false),
            ("incr", "counter", false),
            ("incr", "greeting", true),
            ("append", "greeting", false),
            ("gets", "greeting,counter", false),
            ("touch", "greeting", false),
            ("delete", "greeting", false),
            ("delete", "greeting", false),
            // binary
            ("set", "bin-key", false),
            ("get", "bin-key", false),
            ("get", "bin-missing", false),
            ("add", "bin-key", false),
            ("incr", "bin-key", true),
            ("delete", "bin-key", false),
        ])
    );

    let z = of(zk.port);
    check_common(&z, &cli.id, zk.port, from, to);
    assert!(z.iter().all(|s| s.attr_str("db.system") == "zookeeper"));
    assert_eq!(
        summary(&z, "db.statement"),
        owned(&[
            ("create", "create /sonde-test", false),
            ("create", "create /sonde-test", true),
            ("getData", "getData /sonde-test", false),
            ("exists", "exists /sonde-missing", true),
            ("setData", "setData /sonde-test", false),
            ("getChildren", "getChildren /", false),
            ("getData", "getData /sonde-missing", true),
            ("delete", "delete /sonde-test", false),
        ])
    );
}

#[test]
fn replayed_mongo_and_clickhouse_requests_become_one_span_each() {
    const TEST: &str = "replayed_mongo_and_clickhouse_requests_become_one_span_each";
    let _serial = serial();
    if !privileged(TEST) {
        return;
    }
    let rx = Receiver::start();
    let mut srv = Container::create("trrpsrv", &[]);
    let mut cli = Container::create("trrpcli", &[]);
    let mongo = db::replay(&mut srv, "mongo");
    let ch = db::replay(&mut srv, "clickhouse");
    let agent = traced_agent(&rx, &[]);
    let from = unix_ns();
    db_client(&mut cli, "mongo", mongo.port);
    db_client(&mut cli, "clickhouse", ch.port);
    for s in [&mongo, &ch] {
        assert!(log_lines(&s.log, "MISMATCH").is_empty());
    }
    let spans = spans_of(&rx, &agent, &cli.id, 6 + 3);
    let to = unix_ns();
    let of = |p: u16| -> Vec<Span> {
        spans
            .iter()
            .filter(|s| s.attr_int("net.peer.port") == Some(i64::from(p)))
            .cloned()
            .collect()
    };
    let m = of(mongo.port);
    check_common(&m, &cli.id, mongo.port, from, to);
    assert!(m.iter().all(|s| s.attr_str("db.system") == "mongodb"));
    assert_eq!(
        summary(&m, "db.statement"),
        owned(&[
            ("query", r#"{"isMaster": 1}"#, false),
            ("query", r#"{"ping": 1, "$db": "admin"}"#, false),
            ("query", r#"{"find": "t", "$db": "test"}"#, false),
            ("query", r#"{"bogus": 1, "$db": "test"}"#, true),
            ("query", r#"{"bogus": 1}"#, true),
            ("query", r#"{"insert": "t", "$db": "test"}"#, false),
        ])
    );
    let c = of(ch.port);
    check_common(&c, &cli.id, ch.port, from, to);
    assert!(c.iter().all(|s| s.attr_str("db.system") == "clickhouse"));
    assert_eq!(
        summary(&c, "db.statement"),
        owned(&[
            ("query", "SELECT 1", false),
            ("query", "SELEC 1", true),
            ("query", "SELECT 1", false),
        ])
    );
}

#[test]
fn sampling_zero_sends_no_spans() {
    const TEST: &str = "sampling_zero_sends_no_spans";
    let _serial = serial();
    if !privileged(TEST) || !tools(TEST, &[("curl", "curl")]) {
        return;
    }
    let rx = Receiver::start();
    let mut srv = Container::create("trs0srv", &[]);
    let mut cli = Container::create("trs0cli", &[]);
    let http = l7::http_server(&mut srv);
    let agent = traced_agent(&rx, &["--traces-sampling", "0"]);
    for _ in 0..5 {
        curl(
            &mut cli,
            &[],
            &format!("http://127.0.0.1:{}/status/200", http.port),
        );
    }
    // The requests are seen (the metric counts them) ...
    let dest = format!("127.0.0.1:{}", http.port);
    let cid = cli.id.clone();
    agent.scrape_until("5 HTTP requests counted", TIMEOUT, |s| {
        s.value(
            "container_http_requests_total",
            &[
                ("container_id", &cid),
                ("destination", &dest),
                ("status", "2xx"),
            ],
        ) == Some(5.0)
    });
    // ... each left out by the sampler (other containers' requests on the node too), and no
    // span is sent.
    agent.scrape_until("5 requests sampled out", TIMEOUT, |s| {
        s.value("sonde_traces_requests_sampled_out_total", &[])
            .is_some_and(|v| v >= 5.0)
    });
    std::thread::sleep(Duration::from_secs(1));
    assert!(rx.spans().is_empty(), "{:#?}", rx.spans());
    assert_eq!(
        agent.scrape().value("sonde_traces_spans_queued_total", &[]),
        Some(0.0)
    );
}

#[test]
fn a_down_endpoint_loses_spans_counted_and_the_agent_keeps_serving() {
    const TEST: &str = "a_down_endpoint_loses_spans_counted_and_the_agent_keeps_serving";
    let _serial = serial();
    if !privileged(TEST) || !tools(TEST, &[("curl", "curl")]) {
        return;
    }
    // Nobody listens there: every export is refused.
    let port = sonde_integration_tests::free_port();
    let url = format!("http://127.0.0.1:{port}/v1/traces");
    let mut srv = Container::create("trdnsrv", &[]);
    let mut cli = Container::create("trdncli", &[]);
    let http = l7::http_server(&mut srv);
    let agent = start_agent(&[
        "--traces-endpoint",
        &url,
        "--traces-batch-delay",
        "100ms",
        "--traces-queue-size",
        "4",
        "--traces-retry-min",
        "100ms",
        "--traces-retry-max",
        "200ms",
        "--traces-max-attempts",
        "3",
    ]);
    const N: f64 = 20.0;
    for _ in 0..N as usize {
        curl(
            &mut cli,
            &[],
            &format!("http://127.0.0.1:{}/status/200", http.port),
        );
    }
    let dest = format!("127.0.0.1:{}", http.port);
    let cid = cli.id.clone();
    // Every request is counted as a metric; every span is either queued or dropped at the
    // full queue (these 20, and any other container's on the node); the queued ones are
    // dropped when their batch fails its 3 attempts; none is exported; the subsystem is down
    // with the reason, the rest of the agent up.
    let s = agent.scrape_until("every span accounted for", TIMEOUT, |s| {
        let v = |n: &str, l: &[(&str, &str)]| s.value(n, l).unwrap_or(-1.0);
        v(
            "container_http_requests_total",
            &[
                ("container_id", &cid),
                ("destination", &dest),
                ("status", "2xx"),
            ],
        ) == N
            && v("sonde_traces_spans_queued_total", &[])
                + v(
                    "sonde_traces_spans_dropped_total",
                    &[("reason", "queue_full")],
                )
                >= N
            && v(
                "sonde_traces_spans_dropped_total",
                &[("reason", "export_failed")],
            ) == v("sonde_traces_spans_queued_total", &[])
            && v("sonde_traces_queue_spans", &[]) == 0.0
    });
    assert_eq!(s.value("sonde_traces_spans_exported_total", &[]), Some(0.0));
    assert!(s.value("sonde_traces_export_failures_total", &[]).unwrap() >= 3.0);
    assert!(
        s.value(
            "sonde_traces_spans_dropped_total",
            &[("reason", "queue_full")]
        )
        .unwrap()
            > 0.0,
        "a queue of 4 took all 20 spans"
    );
    assert_eq!(
        s.value("sonde_subsystem_up", &[("subsystem", "traces")]),
        Some(0.0)
    );
    assert_eq!(
        s.value("sonde_subsystem_up", &[("subsystem", "tracer")]),
        Some(1.0)
    );
    assert_eq!(agent.get("/healthz").0, 200);
    assert!(
        agent.log_text().contains("cannot reach"),
        "{}",
        agent.log_text()
    );
}
