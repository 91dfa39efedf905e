//! `sonde top` driven in a real terminal (tmux) against the real agent: a container (a bash in
//! a test cgroup) holds a TCP connection to this test's server, idle, then sending, then idle
//! again. Read with `tmux capture-pane`, its upstream row must show the destination with a rate
//! of 0, then a rising rate, then 0 again with the exact number of bytes the server received.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sonde_integration_tests::agent::sonde_binary;
use sonde_integration_tests::cgroups::TestCgroup;
use sonde_integration_tests::{Agent, privileged, tools, wait_for};

const TIMEOUT: Duration = Duration::from_secs(60);

/// A tmux server of this test only (its own socket), killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(command: &str) -> Tmux {
        let t = Tmux {
            socket: format!("sonde-top-test-{}", std::process::id()),
        };
        let ok = Command::new("tmux")
            .args([
                "-L",
                &t.socket,
                "new-session",
                "-d",
                "-s",
                "top",
                "-x",
                "180",
                "-y",
                "45",
            ])
            .arg(command)
            .env("TERM", "xterm-256color")
            .status()
            .unwrap()
            .success();
        assert!(ok, "tmux new-session failed");
        t
    }

    fn keys(&self, keys: &[&str]) {
        let ok = Command::new("tmux")
            .args(["-L", &self.socket, "send-keys", "-t", "top"])
            .args(keys)
            .status()
            .unwrap()
            .success();
        assert!(ok, "tmux send-keys {keys:?} failed");
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p", "-t", "top"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the screen's row for `dst` satisfies `pred` (on its cells), returning them.
    fn row_until(&self, what: &str, dst: &str, pred: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = std::time::Instant::now() + TIMEOUT;
        loop {
            let screen = self.screen();
            if let Some(cells) = upstream_cells(&screen, dst)
                && pred(&cells)
            {
                return cells;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}; screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

/// Cells of the upstream row of `dst`: destination, active, conn/s, tx/s, rx/s, txpkt/s,
/// rxpkt/s, tx, rx.
fn upstream_cells(screen: &str, dst: &str) -> Option<Vec<String>> {
    let line = screen.lines().find(|l| l.contains(dst))?;
    let cells: Vec<String> = line
        .split(['│', ' '])
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect();
    (cells.len() >= 9 && cells[0] == dst).then_some(cells)
}

fn num(cell: &str) -> f64 {
    cell.parse()
        .unwrap_or_else(|_| panic!("{cell:?} is not a number"))
}

#[test]
fn top_shows_an_upstream_whose_rate_rises_and_falls() {
    let test = "top_shows_an_upstream_whose_rate_rises_and_falls";
    if !privileged(test) {
        return;
    }
    for (tool, package) in [("tmux", "tmux"), ("bash", "bash")] {
        if tools::require(test, tool, package).is_none() {
            return;
        }
    }
    // The upstream: a server counting every byte it receives. Its port is outside the ephemeral
    // range, so the agent treats it as a destination.
    let (listener, port) = (20_000..32_000)
        .map(|p| (TcpListener::bind((Ipv4Addr::LOCALHOST, p)), p))
        .find_map(|(l, p)| Some((l.ok()?, p)))
        .unwrap();
    let received = Arc::new(AtomicU64::new(0));
    let count = Arc::clone(&received);
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 1 << 16];
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            count.fetch_add(n as u64, Ordering::SeqCst);
        }
    });

    // The container: bash in a test cgroup, connecting only once it is inside.
    let dir = tempfile::tempdir().unwrap();
    let stop = dir.path().join("stop");
    let script = format!(
        "read go; exec 3<>/dev/tcp/127.0.0.1/{port}; echo connected; read cmd; \
         while [ ! -e {stop} ]; do head -c 65536 /dev/zero >&3; sleep 0.1; done; echo stopped; \
         sleep 100000",
        stop = stop.display()
    );
    let id = format!("/system.slice/sonde-top-{}.service", std::process::id());
    let mut cg = TestCgroup::create(&id).unwrap();
    let mut bash = Command::new("bash")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    cg.add_pid(bash.id()).unwrap();
    let mut input = bash.stdin.take().unwrap();
    let mut output = BufReader::new(bash.stdout.take().unwrap());
    cg.own(bash);

    let agent = Agent::start(&["--min-container-age", "0s"]);
    agent.wait_tracer_up(TIMEOUT);
    writeln!(input, "go").unwrap();
    let mut line = String::new();
    output.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "connected");
    let dst = format!("127.0.0.1:{port}");

    let tmux = Tmux::start(&format!(
        "{} top --url 127.0.0.1:{}",
        sonde_binary().display(),
        agent.port
    ));
    // Keyboard: filter to the test container, exact numbers.
    wait_for("top's first screen", TIMEOUT, || {
        tmux.screen().contains("containers (").then_some(())
    });
    tmux.keys(&["/"]);
    tmux.keys(&["-l", &format!("sonde-top-{}", std::process::id())]);
    tmux.keys(&["Enter", "e"]);

    // Idle: the connect is there, nothing flows.
    let idle = tmux.row_until("the idle upstream", &dst, |c| c[3] == "0");
    assert_eq!(num(&idle[1]), 1.0, "one active connection: {idle:?}");
    assert_eq!(num(&idle[7]), 0.0, "nothing sent yet: {idle:?}");
    let screen = tmux.screen();
    assert!(
        screen.contains(&format!("upstreams of {id} (1)")),
        "{screen}"
    );

    // Sending: the rate rises.
    writeln!(input, "send").unwrap();
    let sending = tmux.row_until("a rising rate", &dst, |c| num(&c[3]) > 0.0);
    assert!(num(&sending[7]) > 0.0, "{sending:?}");
    eprintln!("sending:\n{}", tmux.screen());

    // Stopped: the rate falls back to 0 and the total is exactly what the server received.
    std::fs::write(&stop, "").unwrap();
    line.clear();
    output.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "stopped");
    let total = wait_for("the server to have everything", TIMEOUT, || {
        let a = received.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(500));
        (a > 0 && received.load(Ordering::SeqCst) == a).then_some(a)
    });
    assert_eq!(total % 65_536, 0, "whole 64 KiB writes");
    let done = tmux.row_until("the rate back to 0 with the exact total", &dst, |c| {
        c[3] == "0" && c[7] == total.to_string()
    });
    assert_eq!(num(&done[1]), 1.0, "still connected: {done:?}");
    // Packets/s (container_net_tcp_packets_*, the tracer's segment counters) rise while
    // sending and fall back to 0 too.
    assert!(num(&sending[5]) > 0.0, "{sending:?}");
    assert_eq!(
        (done[5].as_str(), done[6].as_str()),
        ("0.0", "0.0"),
        "{done:?}"
    );
    eprintln!("idle {idle:?}\nsending {sending:?}\nstopped {done:?} (server received {total})");
    drop(input);
}
