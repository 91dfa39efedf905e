//! The common steps of the L7 tests (tests/tests/agent_l7*.rs): one test at a time, the agent
//! started and waited for, clients of tests/scripts/l7_clients.py run in a [`Container`], and
//! the settle-then-check of every expectation.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::l7_expect::{Expect, assert_all};
use crate::l7_servers::{Container, Ran, script};
use crate::tools::require;
use crate::{Agent, Scrape};

/// How long to wait for anything the agent should show.
pub const TIMEOUT: Duration = Duration::from_secs(60);

static SERIAL: Mutex<()> = Mutex::new(());

/// One L7 test at a time: each runs its own agent and servers.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The agent with `extra` flags, every container exported at once, its tracer up.
pub fn start_agent(extra: &[&str]) -> Agent {
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
pub fn settle_and_check(agent: &Agent, expects: &[Expect], containers: &[&str]) -> Scrape {
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

/// Whether every (tool, Debian package) is installed; skips the test (with the hint) if not.
pub fn tools(test: &str, list: &[(&str, &str)]) -> bool {
    list.iter()
        .all(|(tool, package)| require(test, tool, package).is_some())
}

/// The argv of an l7_clients.py client.
pub fn py(argv: &[&str]) -> Vec<String> {
    let mut v = vec![
        "python3".to_owned(),
        script("l7_clients.py").to_str().unwrap().to_owned(),
    ];
    v.extend(argv.iter().map(|s| (*s).to_owned()));
    v
}

/// Runs an l7_clients.py client in `c`; its JSON answer.
pub fn run_py(c: &mut Container, argv: &[&str]) -> serde_json::Value {
    let v = py(argv);
    let v: Vec<&str> = v.iter().map(String::as_str).collect();
    c.run_ok(&v).json()
}

/// Statuses and per-request times of an l7_clients.py HTTP client's answer.
pub fn http_answer(v: &serde_json::Value) -> Vec<(u16, Duration)> {
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
pub fn curl(c: &mut Container, extra: &[&str], url: &str) -> (u16, Ran) {
    let mut argv = vec!["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}"];
    argv.extend_from_slice(extra);
    argv.push(url);
    let r = c.run_ok(&argv);
    (r.stdout.trim().parse().unwrap(), r)
}
