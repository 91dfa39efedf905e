//! The real agent binary, started as a child process and scraped over HTTP.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::exposition::Scrape;

/// The sonde binary the tests run: `SONDE_BIN`, else `target/<profile>/sonde` next to the
/// test executable (the test script builds it first with `cargo build -p sonde`).
pub fn sonde_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("SONDE_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test>-<hash>
    let profile_dir = exe.parent().and_then(|p| p.parent()).expect("target dir");
    let bin = profile_dir.join("sonde");
    assert!(
        bin.exists(),
        "{} not found: build the agent first (cargo build -p sonde) or set SONDE_BIN",
        bin.display()
    );
    bin
}

/// A running agent; killed on drop. Its stderr goes to a file so tests can read its warnings.
pub struct Agent {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Agent {
    /// Starts the agent on a free loopback port with `args` added, and waits for /healthz.
    pub fn start(args: &[&str]) -> Agent {
        Agent::start_via(&[sonde_binary().into_os_string()], args)
    }

    /// Like [`Agent::start`], with the agent run through a wrapper: `launcher` is the program
    /// and its arguments, ending with the agent binary (e.g. setpriv ... -- /path/sonde).
    pub fn start_via(launcher: &[std::ffi::OsString], args: &[&str]) -> Agent {
        let port = crate::free_port();
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("agent.log");
        let mut cmd = Command::new(&launcher[0]);
        cmd.args(&launcher[1..])
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"));
        if !args.contains(&"--proc-scan-interval") {
            cmd.args(["--proc-scan-interval", "1s"]);
        }
        cmd.args(args)
            .env_remove("SONDE_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"));
        let child = cmd.spawn().expect("spawn sonde");
        let mut agent = Agent {
            child,
            port,
            log,
            _dir: dir,
        };
        crate::wait_for("the agent's /healthz", Duration::from_secs(20), || {
            if let Ok(Some(status)) = agent.child.try_wait() {
                panic!("agent exited early ({status}): {}", agent.log_text());
            }
            http_get(port, "/healthz")
                .ok()
                .filter(|(code, _)| *code == 200)
        });
        agent
    }

    /// GET /metrics, parsed.
    pub fn scrape(&self) -> Scrape {
        let (code, body) = http_get(self.port, "/metrics").expect("scrape");
        assert_eq!(code, 200, "scrape failed: {body}");
        Scrape::parse(&body)
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(self.port, path).expect("http get")
    }

    /// The agent's process id (for RSS and CPU readings).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Scrapes until the eBPF tracer is up (`sonde_subsystem_up{subsystem="tracer"}` 1): what a
    /// test of kernel events waits for before it makes any. Returns that scrape.
    pub fn wait_tracer_up(&self, timeout: Duration) -> Scrape {
        self.scrape_until("the tracer up", timeout, |s| {
            s.value("sonde_subsystem_up", &[("subsystem", "tracer")]) == Some(1.0)
        })
    }

    /// Scrapes until `pred` holds, panicking with the last scrape and the agent log otherwise.
    pub fn scrape_until(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Scrape) -> bool,
    ) -> Scrape {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let s = self.scrape();
            if pred(&s) {
                return s;
            }
            if std::time::Instant::now() > deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what}\n--- last scrape ---\n{}\n--- agent log ---\n{}",
                    s.text,
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.0 GET over loopback (no client dependency needed for tests).
pub fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}
