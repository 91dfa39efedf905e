//! The L7 engine on issue 16's protocols end to end: real servers from Debian packages
//! (MariaDB, memcached, RabbitMQ, ZooKeeper, nats-server) in one test cgroup, raw-socket
//! clients (tests/scripts/l7_db_clients.py) in another, and the agent's per-container counters
//! checked against what the clients saw: exact counts per status, the latency histogram's count
//! equal to the requests, its sum within the clients' own measured time, the server side's
//! inbound twins where coroot exports them, and the `method` label of NATS and RabbitMQ
//! messages. Kafka, MongoDB, Cassandra, Dubbo2, ClickHouse and FoundationDB have no Debian
//! server: a conversation replay server (tests/scripts/l7_replay.py, docs/testing-l7.md)
//! answers them.
//!
//! Each client writes every request with one write and reads its whole answer before the
//! next, so every count is exact. The tests run one at a time (each starts its own agent and
//! servers; the machine has two cores).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sonde_integration_tests::l7_db::{
    self as db, MEMCACHED_IN, MEMCACHED_OUT, MYSQL_IN, MYSQL_OUT, NATS_MESSAGES, RABBITMQ_MESSAGES,
    REPLAYED, ZOOKEEPER_IN, ZOOKEEPER_OUT, client_argv,
};
use sonde_integration_tests::l7_expect::{Expect, Family, Seen, report, sum};
use sonde_integration_tests::l7_servers::{Container, Server, log_lines};
use sonde_integration_tests::tools::require;
use sonde_integration_tests::{Agent, Scrape, privileged, skip};

const TIMEOUT: Duration = Duration::from_secs(60);

static SERIAL: Mutex<()> = Mutex::new(());

/// One test at a time: each runs its own agent and servers.
fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn start_agent() -> Agent {
    let agent = Agent::start(&["--min-container-age", "0s"]);
    agent.scrape_until("the tracer up", TIMEOUT, |s| {
        s.value("sonde_subsystem_up", &[("subsystem", "tracer")]) == Some(1.0)
    });
    agent
}

fn tools(test: &str, list: &[(&str, &str)]) -> bool {
    list.iter()
        .all(|(tool, package)| require(test, tool, package).is_some())
}

/// Messages of one `method` a container's clients sent to or received from a destination
/// (NATS and RabbitMQ: counted, no latency).
struct Messages<'a> {
    what: &'a str,
    metric: &'static str,
    labels: Vec<(&'a str, &'a str)>,
    method: &'static str,
    n: u64,
}

impl Messages<'_> {
    fn labels(&self) -> Vec<(&str, &str)> {
        let mut l = self.labels.clone();
        l.push(("method", self.method));
        l
    }

    fn reached(&self, s: &Scrape) -> bool {
        sum(s, self.metric, &self.labels()) >= self.n as f64
    }

    fn check(&self, s: &Scrape, errors: &mut Vec<String>) {
        // coroot's status for a message: `unknown` (its kernel code leaves it unset).
        let mut unknown = self.labels();
        unknown.push(("status", "unknown"));
        let got_unknown = sum(s, self.metric, &unknown);
        let got_all = sum(s, self.metric, &self.labels());
        if got_unknown != self.n as f64 || got_all != self.n as f64 {
            errors.push(format!(
                "{}: {}{{method=\"{}\"}} = {got_all} ({got_unknown} with status unknown), the client {} {}",
                self.what,
                self.metric,
                self.method,
                if self.method == "produce" {
                    "published"
                } else {
                    "received"
                },
                self.n
            ));
        }
    }
}

/// Scrapes until every expectation reached its total (or TIMEOUT), then once more a moment
/// later (a late or doubled request shows there), and checks them all.
fn settle_and_check(agent: &Agent, expects: &[Expect], messages: &[Messages], containers: &[&str]) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let s = agent.scrape();
        let done = expects.iter().all(|e| e.reached(&s)) && messages.iter().all(|m| m.reached(&s));
        if done || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let s = agent.scrape();
    let mut errors = Vec::new();
    for e in expects {
        e.check(&s, &mut errors);
    }
    for m in messages {
        m.check(&s, &mut errors);
    }
    report(&s, errors, containers, &agent.log_text());
}

/// Runs an l7_db_clients.py client in `c`; its JSON answer.
fn client(c: &mut Container, args: &[&str]) -> serde_json::Value {
    let argv = client_argv(args);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    c.run_ok(&argv).json()
}

/// What a request/response client saw: statuses and its own time per request.
fn seen_of(v: &serde_json::Value, seen: &mut Seen) {
    for r in v["requests"].as_array().unwrap() {
        let status = r[0].as_str().unwrap();
        seen.measured(status, Duration::from_nanos(r[1].as_u64().unwrap()));
    }
}

/// A request/response protocol against one real server: `start` runs the server in its
/// container, `clients` the clients' arguments (the port appended), `out`/`inbound` the
/// families; `expect` the statuses the clients must have seen (the test's own truth).
fn request_response(
    kind: &str,
    start: impl FnOnce(&mut Container) -> Server,
    clients: &[&[&str]],
    out: Family,
    inbound: Option<Family>,
    expect: &[(&str, u64)],
) {
    let mut srv = Container::create(&format!("{kind}srv"), &[]);
    let mut cli = Container::create(&format!("{kind}cli"), &[]);
    let server = start(&mut srv);
    let agent = start_agent();
    let port = server.port.to_string();
    let mut seen = Seen::default();
    for args in clients {
        let mut a = args.to_vec();
        a.insert(1, &port);
        seen_of(&client(&mut cli, &a), &mut seen);
    }
    let truth: Vec<(String, u64)> = expect.iter().map(|(s, n)| ((*s).to_owned(), *n)).collect();
    let saw: Vec<(String, u64)> = seen.statuses.clone().into_iter().collect();
    assert_eq!(
        saw, truth,
        "{kind}: the server did not answer as the test expects"
    );
    let dest = format!("127.0.0.1:{}", server.port);
    let (sid, cid) = (srv.id.clone(), cli.id.clone());
    let mut expects = vec![Expect {
        what: "client (outbound)",
        family: out,
        labels: vec![
            ("container_id", &cid),
            ("destination", &dest),
            ("actual_destination", &dest),
        ],
        seen: &seen,
    }];
    if let Some(f) = inbound {
        expects.push(Expect {
            what: "server (inbound)",
            family: f,
            labels: vec![("container_id", &sid)],
            seen: &seen,
        });
    }
    settle_and_check(&agent, &expects, &[], &[&sid, &cid]);
}

// ---------------------------------------------------------------------------------------------

#[test]
fn mysql_queries_on_mariadb_are_exact_by_status_on_both_sides() {
    const TEST: &str = "mysql_queries_on_mariadb_are_exact_by_status_on_both_sides";
    let _serial = serial();
    if !privileged(TEST)
        || !tools(
            TEST,
            &[
                ("mariadbd", "mariadb-server"),
                ("mariadb-install-db", "mariadb-server"),
            ],
        )
    {
        return;
    }
    // 10 COM_QUERYs (a duplicate key, a syntax error and a missing table fail), 2
    // COM_STMT_PREPAREs (one a syntax error) and 2 COM_STMT_EXECUTEs; COM_STMT_CLOSE and
    // COM_QUIT have no answer and are no queries.
    request_response(
        "mysql",
        db::mariadb,
        &[&["mysql"]],
        MYSQL_OUT,
        Some(MYSQL_IN),
        &[("failed", 4), ("ok", 10)],
    );
}

#[test]
fn memcached_text_and_binary_commands_are_exact_by_status_on_both_sides() {
    const TEST: &str = "memcached_text_and_binary_commands_are_exact_by_status_on_both_sides";
    let _serial = serial();
    if !privileged(TEST) || !tools(TEST, &[("memcached", "memcached")]) {
        return;
    }
    // Text: 12 commands (a miss, NOT_STORED and NOT_FOUND are answers: ok), `incr` of a
    // non-numeric value fails. Binary: 6, the same failure (status 6).
    request_response(
        "memcached",
        db::memcached,
        &[&["memcached-text"], &["memcached-binary"]],
        MEMCACHED_OUT,
        Some(MEMCACHED_IN),
        &[("failed", 2), ("ok", 16)],
    );
}

#[test]
fn memcached_pipelined_gets_are_exact_on_both_sides() {
    const TEST: &str = "memcached_pipelined_gets_are_exact_on_both_sides";
    let _serial = serial();
    if !privileged(TEST) || !tools(TEST, &[("memcached", "memcached")]) {
        return;
    }
    // A set, then three gets in one write. The client reads the answers with plain reads.
    // memcached answers each get with one sendmsg of three iovecs (VALUE line, data, END):
    // the kernel gathers the iovecs into the record (ebpf/src/l7.c, l7_gather), so the
    // server's parser sees where each answer ends and its inbound twin is exact too.
    request_response(
        "mcpipe",
        db::memcached,
        &[&["memcached-pipelined"]],
        MEMCACHED_OUT,
        Some(MEMCACHED_IN),
        &[("ok", 4)],
    );
}

#[test]
fn zookeeper_requests_are_exact_by_status_on_both_sides() {
    const TEST: &str = "zookeeper_requests_are_exact_by_status_on_both_sides";
    let _serial = serial();
    if !privileged(TEST) || !tools(TEST, &[("java", "zookeeper")]) {
        return;
    }
    if !std::path::Path::new("/usr/share/java/zookeeper.jar").exists() {
        skip(
            TEST,
            "ZooKeeper is not installed (apt-get install -y zookeeper)",
        );
        return;
    }
    // 8 requests: create twice (NodeExists), exists and getData of a missing node (NoNode)
    // fail. The server reads each packet's 4-byte length apart from its body: the kernel
    // holds a first 4-byte read and classifies the connection with the next (ebpf/src/l7.c,
    // l7_ready), so the inbound twin is exact too.
    request_response(
        "zk",
        db::zookeeper,
        &[&["zookeeper"]],
        ZOOKEEPER_OUT,
        Some(ZOOKEEPER_IN),
        &[("failed", 3), ("ok", 5)],
    );
}

/// NATS and RabbitMQ: messages published and delivered back to the same client.
fn messages_test(
    kind: &str,
    srv: &mut Container,
    cli: &mut Container,
    server: &Server,
    agent: &Agent,
    metric: &'static str,
) {
    const N: u64 = 20;
    let port = server.port.to_string();
    let v = client(cli, &[kind, &port, &N.to_string()]);
    // N one by one, then a batch in one write (NATS 5, AMQP 3), each delivered back.
    let batch = if kind == "nats" { 5 } else { 3 };
    assert_eq!(v["produce"].as_u64(), Some(N + batch), "{kind} client: {v}");
    assert_eq!(v["consume"].as_u64(), Some(N + batch), "{kind} client: {v}");
    let n = N + batch;
    let dest = format!("127.0.0.1:{}", server.port);
    let labels = vec![
        ("container_id", cli.id.as_str()),
        ("destination", dest.as_str()),
        ("actual_destination", dest.as_str()),
    ];
    settle_and_check(
        agent,
        &[],
        &[
            Messages {
                what: "client published",
                metric,
                labels: labels.clone(),
                method: "produce",
                n,
            },
            Messages {
                what: "client received",
                metric,
                labels,
                method: "consume",
                n,
            },
        ],
        &[&srv.id, &cli.id],
    );
    // coroot counts the clients' messages only: the server's side has no series.
    let s = agent.scrape();
    let server_side = sum(&s, metric, &[("container_id", &srv.id)]);
    assert_eq!(server_side, 0.0, "{metric} of the server's container");
}

#[test]
fn nats_messages_are_counted_by_method() {
    const TEST: &str = "nats_messages_are_counted_by_method";
    let _serial = serial();
    if !privileged(TEST) || !tools(TEST, &[("nats-server", "nats-server")]) {
        return;
    }
    let mut srv = Container::create("natssrv", &[]);
    let mut cli = Container::create("natscli", &[]);
    let server = db::nats(&mut srv);
    let agent = start_agent();
    messages_test("nats", &mut srv, &mut cli, &server, &agent, NATS_MESSAGES);
}

#[test]
fn rabbitmq_messages_are_counted_by_method() {
    const TEST: &str = "rabbitmq_messages_are_counted_by_method";
    let _serial = serial();
    if !privileged(TEST)
        || !tools(
            TEST,
            &[
                ("rabbitmq-server", "rabbitmq-server"),
                ("setpriv", "util-linux"),
            ],
        )
    {
        return;
    }
    let mut srv = Container::create("amqpsrv", &[]);
    let mut cli = Container::create("amqpcli", &[]);
    let server = match db::rabbitmq(&mut srv) {
        Ok(s) => s,
        Err(why) => {
            skip(TEST, &why);
            return;
        }
    };
    let agent = start_agent();
    messages_test(
        "amqp",
        &mut srv,
        &mut cli,
        &server,
        &agent,
        RABBITMQ_MESSAGES,
    );
}

#[test]
fn replayed_protocols_are_exact_by_status_on_both_sides() {
    const TEST: &str = "replayed_protocols_are_exact_by_status_on_both_sides";
    let _serial = serial();
    if !privileged(TEST) {
        return;
    }
    let mut srv = Container::create("replaysrv", &[]);
    let mut cli = Container::create("replaycli", &[]);
    let servers: Vec<Server> = REPLAYED
        .iter()
        .map(|(proto, _, _)| db::replay(&mut srv, proto))
        .collect();
    let agent = start_agent();
    let mut seen = Vec::new();
    for ((proto, _, _), server) in REPLAYED.iter().zip(&servers) {
        let mut s = Seen::default();
        seen_of(
            &client(&mut cli, &[proto, &server.port.to_string()]),
            &mut s,
        );
        // The replay server's own record: it answered exactly what the client counted.
        let answered = log_lines(&server.log, "REQ ").len() as u64;
        assert_eq!(
            answered,
            s.total(),
            "{proto}: replay server answered {answered}"
        );
        assert!(
            log_lines(&server.log, "MISMATCH").is_empty(),
            "{proto}: the replay server saw other bytes than recorded"
        );
        seen.push(s);
    }
    let (sid, cid) = (srv.id.clone(), cli.id.clone());
    let dests: Vec<String> = servers
        .iter()
        .map(|s| format!("127.0.0.1:{}", s.port))
        .collect();
    let whats: Vec<(String, String)> = REPLAYED
        .iter()
        .map(|(p, _, _)| {
            (
                format!("{p} client (outbound)"),
                format!("{p} server (inbound)"),
            )
        })
        .collect();
    let mut expects = Vec::new();
    for (i, (_, out, inbound)) in REPLAYED.iter().enumerate() {
        expects.push(Expect {
            what: &whats[i].0,
            family: *out,
            labels: vec![
                ("container_id", &cid),
                ("destination", &dests[i]),
                ("actual_destination", &dests[i]),
            ],
            seen: &seen[i],
        });
        expects.push(Expect {
            what: &whats[i].1,
            family: *inbound,
            labels: vec![("container_id", &sid)],
            seen: &seen[i],
        });
    }
    settle_and_check(&agent, &expects, &[], &[&sid, &cid]);
}
