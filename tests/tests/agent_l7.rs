//! The L7 engine end to end (issue 15), HTTP: real servers (Python http.server, nginx, nghttpd,
//! grpcio) in one test cgroup, real clients (curl, busybox wget, ab, nghttp, Python and Go
//! one-shots and keep-alive clients, over TLS too) in another, and the agent's per-container request counters and latency histograms checked
//! against what the clients saw: exact counts per status, histogram counts equal, latencies
//! inside the clients' own measured bounds, the server's inbound twins equal.
//!
//! Every process of a "container" is forked by a runner already inside its cgroup
//! (tests/src/l7_servers.rs), so short-lived clients count from their first syscall. Servers
//! listen on 127.0.0.1 on ports outside the ephemeral range, DNS on 127.0.0.1:53 of a network
//! namespace of the test's own. Postgres, Redis and DNS are in agent_l7_data.rs. The tests run
//! one at a time (each starts its own agent and
//! servers; the machine has two cores).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use sonde_integration_tests::l7_expect::{Expect, HTTP_IN, HTTP_OUT, Seen, http_class, sum};
use sonde_integration_tests::l7_run::{
    TIMEOUT, curl, http_answer, run_py, serial, settle_and_check, start_agent, tools,
};
use sonde_integration_tests::l7_servers::{
    self as l7, Container, log_lines, script, venv_python_with,
};
use sonde_integration_tests::privileged;

/// The per-container opt-out (coroot's variable, docs/l7.md): a container whose processes carry
/// it is not traced.
const OPT_OUT_ENV: (&str, &str) = ("COROOT_EBPF_TRACES", "disabled");

/// The status label of a gRPC call with `grpc-status` `code`: the class of the HTTP status
/// the code stands for (gRPC gateways' mapping, docs/l7.md): OK is `2xx`, NOT_FOUND (404)
/// `4xx`. The test's calls end OK or NOT_FOUND.
fn grpc_label(code: u64) -> String {
    match code {
        0 => "2xx".to_owned(),
        5 => "4xx".to_owned(),
        other => panic!("the test makes no call ending with grpc-status {other}"),
    }
}

/// nginx's own access log ("STATUS URI" lines) holds exactly the requests the clients saw.
fn nginx_log_agrees(access_log: &std::path::Path, seen: &Seen) {
    // It is written after the response: wait for it.
    sonde_integration_tests::wait_for("nginx's access log", Duration::from_secs(10), || {
        (std::fs::read_to_string(access_log)
            .unwrap_or_default()
            .lines()
            .count() as u64
            == seen.total())
        .then_some(())
    });
    let log = std::fs::read_to_string(access_log).unwrap();
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
    nginx_log_agrees(&nginx.aux, &seen);
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
// HTTPS: the plaintext from the TLS libraries (OpenSSL's libssl, Go's crypto/tls)

#[test]
fn https_through_openssl_is_counted_like_plain_http() {
    const TEST: &str = "https_through_openssl_is_counted_like_plain_http";
    let _serial = serial();
    if !privileged(TEST)
        || !tools(
            TEST,
            &[("nginx", "nginx"), ("curl", "curl"), ("openssl", "openssl")],
        )
    {
        return;
    }
    let mut srv = Container::create("tlssrv", &[]);
    let mut cli = Container::create("tlscli", &[]);
    let nginx = l7::nginx_tls(&mut srv);
    let agent = start_agent(&[]);
    let dest = format!("127.0.0.1:{}", nginx.port);
    let port = nginx.port.to_string();
    let mut seen = Seen::default();
    // curl (libssl), one process per request.
    for (path, code) in [
        ("/status/200", 200),
        ("/missing", 404),
        ("/status/500", 500),
        ("/file.txt", 200),
    ] {
        let (got, r) = curl(&mut cli, &["-k"], &format!("https://{dest}{path}"));
        assert_eq!(got, code, "{path}");
        seen.process(&[http_class(code)], r.wall, true);
    }
    // Python's ssl (libssl): a one-shot, then five requests on one keep-alive connection.
    let v = run_py(&mut cli, &["https-once", "127.0.0.1", &port, "/status/500"]);
    let mut answers = http_answer(&v);
    let mut argv = vec!["https-keepalive", "127.0.0.1", &port];
    argv.extend([
        "/status/200",
        "/missing",
        "/status/200",
        "/status/500",
        "/file.txt",
    ]);
    answers.extend(http_answer(&run_py(&mut cli, &argv)));
    assert_eq!(answers.len(), 6);
    for (code, took) in answers {
        seen.measured(http_class(code), took);
    }
    nginx_log_agrees(&nginx.aux, &seen);
    let (sid, cid) = (srv.id.clone(), cli.id.clone());
    settle_and_check(
        &agent,
        &[
            Expect {
                what: "curl+python over OpenSSL (outbound)",
                family: HTTP_OUT,
                labels: vec![("container_id", &cid), ("destination", &dest)],
                seen: &seen,
            },
            Expect {
                what: "nginx over OpenSSL (inbound)",
                family: HTTP_IN,
                labels: vec![("container_id", &sid)],
                seen: &seen,
            },
        ],
        &[&sid, &cid],
    );
}

/// tests/scripts/l7_goclient.go built with the system's Go, offline, into `dir`.
fn build_go_client(dir: &std::path::Path) -> std::path::PathBuf {
    let out = dir.join("l7_goclient");
    sonde_integration_tests::tools::run(
        std::process::Command::new("go")
            .args(["build", "-o", out.to_str().unwrap(), "l7_goclient.go"])
            .current_dir(script(""))
            .env("GOCACHE", dir.join("gocache"))
            .env("GOPATH", dir.join("gopath"))
            .env("GOPROXY", "off")
            .env("GOFLAGS", "")
            .env("GO111MODULE", "off"),
    );
    out
}

#[test]
fn https_from_a_go_client_is_counted_like_plain_http() {
    const TEST: &str = "https_from_a_go_client_is_counted_like_plain_http";
    let _serial = serial();
    if !privileged(TEST)
        || !tools(
            TEST,
            &[
                ("nginx", "nginx"),
                ("go", "golang-go"),
                ("openssl", "openssl"),
            ],
        )
    {
        return;
    }
    let build = tempfile::tempdir().unwrap();
    let go_client = build_go_client(build.path());
    let mut srv = Container::create("gotlssrv", &[]);
    let mut cli = Container::create("gotlscli", &[]);
    let nginx = l7::nginx_tls(&mut srv);
    let agent = start_agent(&[]);
    let dest = format!("127.0.0.1:{}", nginx.port);
    let mut seen = Seen::default();
    // Two processes, each one keep-alive connection of Go's crypto/tls.
    for paths in [
        &["/status/200", "/missing", "/status/500", "/status/200"][..],
        &["/file.txt", "/status/500", "/status/200"][..],
    ] {
        let base = format!("https://{dest}");
        let mut argv = vec![go_client.to_str().unwrap(), base.as_str()];
        argv.extend_from_slice(paths);
        let answers = http_answer(&cli.run_ok(&argv).json());
        assert_eq!(answers.len(), paths.len());
        for (code, took) in answers {
            seen.measured(http_class(code), took);
        }
    }
    nginx_log_agrees(&nginx.aux, &seen);
    let (sid, cid) = (srv.id.clone(), cli.id.clone());
    settle_and_check(
        &agent,
        &[
            Expect {
                what: "Go crypto/tls client (outbound)",
                family: HTTP_OUT,
                labels: vec![("container_id", &cid), ("destination", &dest)],
                seen: &seen,
            },
            Expect {
                what: "nginx over OpenSSL (inbound)",
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
