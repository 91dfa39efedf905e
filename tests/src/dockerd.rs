//! A private containerd + dockerd in a temp dir, a local busybox image, and containers that are
//! cleaned up even when the test panics (everything is undone in `Drop`).
//!
//! Typical use:
//! ```ignore
//! use sonde_integration_tests::dockerd::Dockerd;
//! let Some(d) = Dockerd::start_or_skip("my_test") else { return };
//! d.import_busybox("sonde-busybox:test").unwrap();
//! let id = d.run(&["--name", "x", "--label", "k=v", "sonde-busybox:test", "sleep", "300"]).unwrap();
//! let pid = d.pid_of(&id).unwrap();      // host pid of the container's init, cgroup /docker/<id>
//! // d.socket: the Docker API socket; d.data_root: json-file logs live under it.
//! ```
//! Requires root and the Debian packages `containerd runc docker.io busybox-static` (tar comes
//! with the base system); without them a test skips through [`crate::skip`] (a failure under
//! `SONDE_REQUIRE_PRIVILEGED=1`). Daemons run with their own root, state, exec root, sockets and
//! an empty daemon.json, `--iptables=false --bridge=none` (no host network changes) and the vfs
//! storage driver (works on any filesystem); their logs are in the temp dir and printed when
//! start-up fails. Several instances run side by side (each has its own sockets and state; their
//! containers share only the `/docker` cgroup parent, under unique ids).

use std::ffi::CString;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// PATH for the daemons: dockerd and runc live in /usr/sbin, which a test's PATH may lack.
const DAEMON_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const PACKAGES: &str = "apt-get install -y containerd runc docker.io busybox-static";

/// Finds an executable by name in the daemon PATH.
pub fn find_binary(name: &str) -> Option<PathBuf> {
    DAEMON_PATH
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// A running containerd + dockerd pair private to one test.
pub struct Dockerd {
    dir: tempfile::TempDir,
    containerd: Option<Child>,
    dockerd: Option<Child>,
    /// Docker Engine API socket (`unix://` + this for the CLI).
    pub socket: PathBuf,
    /// The containerd socket dockerd uses (containers live in its "moby" namespace).
    pub containerd_socket: PathBuf,
    /// dockerd's `--data-root`: json-file logs are in `<data_root>/containers/<id>/`.
    pub data_root: PathBuf,
    docker_cli: PathBuf,
    containers: Mutex<Vec<String>>,
}

impl Dockerd {
    /// Starts the daemons, or returns None after printing why not (not root, packages missing);
    /// panics instead of skipping when `SONDE_REQUIRE_PRIVILEGED=1`, and always panics when the
    /// daemons are present but fail to start.
    pub fn start_or_skip(test: &str) -> Option<Dockerd> {
        if !crate::privileged(test) {
            return None;
        }
        for bin in [
            "containerd",
            "containerd-shim-runc-v2",
            "runc",
            "dockerd",
            "docker",
            "busybox",
            "tar",
        ] {
            if find_binary(bin).is_none() {
                crate::skip(test, &format!("{bin} not found ({PACKAGES})"));
                return None;
            }
        }
        match Dockerd::start() {
            Ok(d) => Some(d),
            Err(e) => panic!("{test}: dockerd did not start: {e}"),
        }
    }

    /// Starts containerd, then dockerd on it, and waits until dockerd answers.
    pub fn start() -> Result<Dockerd, String> {
        let dir = tempfile::Builder::new()
            .prefix("sonde-dockerd.")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let root = dir.path().to_owned();
        let containerd_socket = root.join("containerd/containerd.sock");
        let data_root = root.join("docker/data");
        let socket = root.join("docker.sock");
        // /usr/bin/docker is the 20.10 client of docker.io; /usr/local/bin/docker (if any) is newer
        // and works too.
        let docker_cli = ["/usr/bin/docker", "/usr/local/bin/docker"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .or_else(|| find_binary("docker"))
            .ok_or("docker CLI not found")?;
        for d in ["containerd", "docker"] {
            std::fs::create_dir_all(root.join(d)).map_err(|e| e.to_string())?;
        }
        let config = format!(
            "version = 2\nroot = {:?}\nstate = {:?}\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = {:?}\n",
            root.join("containerd/root"),
            root.join("containerd/state"),
            containerd_socket,
        );
        std::fs::write(root.join("containerd/config.toml"), config).map_err(|e| e.to_string())?;
        std::fs::write(root.join("docker/daemon.json"), "{}\n").map_err(|e| e.to_string())?;

        let mut d = Dockerd {
            dir,
            containerd: None,
            dockerd: None,
            socket: socket.clone(),
            containerd_socket: containerd_socket.clone(),
            data_root: data_root.clone(),
            docker_cli,
            containers: Mutex::new(Vec::new()),
        };
        d.containerd = Some(spawn_logged(
            Command::new("containerd")
                .arg("--config")
                .arg(root.join("containerd/config.toml")),
            &root.join("containerd.log"),
        )?);
        poll_until(Duration::from_secs(20), || {
            if containerd_socket.exists() {
                Ok(true)
            } else {
                d.check_alive().map(|_| false)
            }
        })
        .map_err(|e| format!("containerd: {e}\n{}", d.daemon_logs()))?;

        let mut cmd = Command::new("dockerd");
        cmd.arg("--containerd")
            .arg(&containerd_socket)
            .args([
                "--iptables=false",
                "--ip-masq=false",
                "--bridge=none",
                "--storage-driver=vfs",
            ])
            .arg("--data-root")
            .arg(&data_root)
            .arg("--exec-root")
            .arg(root.join("docker/exec"))
            .arg("--pidfile")
            .arg(root.join("docker/docker.pid"))
            .arg("--config-file")
            .arg(root.join("docker/daemon.json"))
            .arg("-H")
            .arg(format!("unix://{}", socket.display()));
        d.dockerd = Some(spawn_logged(&mut cmd, &root.join("dockerd.log"))?);
        poll_until(Duration::from_secs(30), || {
            if d.docker(&["version", "--format", "{{.Server.Version}}"])
                .is_ok()
            {
                Ok(true)
            } else {
                d.check_alive().map(|_| false)
            }
        })
        .map_err(|e| format!("dockerd: {e}\n{}", d.daemon_logs()))?;
        Ok(d)
    }

    /// The temp dir holding everything (sockets, daemon state, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A private dockerd with the busybox image `image` imported, or None when `test` must
    /// skip (see [`Dockerd::start_or_skip`]). Panics when the import fails.
    pub fn with_busybox(test: &str, image: &str) -> Option<Dockerd> {
        let d = Dockerd::start_or_skip(test)?;
        d.import_busybox(image)
            .unwrap_or_else(|e| panic!("{test}: import busybox: {e}\n{}", d.daemon_logs()));
        Some(d)
    }

    /// `docker inspect --format <format> <id>`; panics when it fails.
    pub fn inspect(&self, id: &str, format: &str) -> String {
        self.docker(&["inspect", "--format", format, id])
            .unwrap_or_else(|e| panic!("docker inspect {id}: {e}"))
    }

    /// Runs the docker CLI against this daemon; stdout (trimmed) or an error with stderr.
    pub fn docker(&self, args: &[&str]) -> Result<String, String> {
        let mut cmd = Command::new(&self.docker_cli);
        cmd.arg("-H")
            .arg(format!("unix://{}", self.socket.display()))
            .args(args);
        run_bounded(&mut cmd, Duration::from_secs(60))
    }

    /// Builds a busybox image named `image` by `docker import` of a rootfs with /bin/busybox
    /// and its applet links (images cannot be pulled here).
    pub fn import_busybox(&self, image: &str) -> Result<(), String> {
        let rootfs = self
            .dir
            .path()
            .join(format!("rootfs-{}", image.replace([':', '/'], "_")));
        let bin = rootfs.join("bin");
        for d in ["bin", "tmp", "etc", "proc", "sys", "dev"] {
            std::fs::create_dir_all(rootfs.join(d)).map_err(|e| e.to_string())?;
        }
        let busybox = find_binary("busybox").ok_or("busybox not found")?;
        std::fs::copy(&busybox, bin.join("busybox")).map_err(|e| e.to_string())?;
        let applets = run_bounded(
            Command::new(&busybox).arg("--list"),
            Duration::from_secs(10),
        )?;
        for applet in applets
            .lines()
            .map(str::trim)
            .filter(|a| !a.is_empty() && *a != "busybox")
        {
            let link = bin.join(applet);
            if !link.exists() {
                std::os::unix::fs::symlink("busybox", &link).map_err(|e| e.to_string())?;
            }
        }
        let tar = rootfs.with_extension("tar");
        run_bounded(
            Command::new("tar")
                .arg("-C")
                .arg(&rootfs)
                .arg("-cf")
                .arg(&tar)
                .arg("."),
            Duration::from_secs(60),
        )?;
        let tar = tar.to_str().ok_or("non-UTF-8 temp path")?.to_owned();
        self.docker(&["import", &tar, image]).map(|_| ())
    }

    /// `docker run -d <args>`; returns the full container id. The container is removed on drop.
    pub fn run(&self, args: &[&str]) -> Result<String, String> {
        let mut full = vec!["run", "-d"];
        full.extend_from_slice(args);
        let id = self.docker(&full)?;
        if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("unexpected docker run output {id:?}"));
        }
        if let Ok(mut c) = self.containers.lock() {
            c.push(id.clone());
        }
        Ok(id)
    }

    /// Removes a container now (`docker rm -f`).
    pub fn remove(&self, id: &str) -> Result<(), String> {
        self.docker(&["rm", "-f", id]).map(|_| ())
    }

    /// Host pid of a running container's init process.
    pub fn pid_of(&self, id: &str) -> Result<u32, String> {
        let pid = self.docker(&["inspect", "--format", "{{.State.Pid}}", id])?;
        pid.parse::<u32>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("container {id} has no pid ({pid:?})"))
    }

    /// Tails of the daemons' logs, for failure messages.
    pub fn daemon_logs(&self) -> String {
        let mut out = String::new();
        for name in ["containerd.log", "dockerd.log"] {
            let text = std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(20).collect();
            out.push_str(&format!("--- {name} (last lines) ---\n"));
            for l in tail.iter().rev() {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }

    fn check_alive(&mut self) -> Result<(), String> {
        for (name, child) in [
            ("containerd", &mut self.containerd),
            ("dockerd", &mut self.dockerd),
        ] {
            if let Some(c) = child
                && let Ok(Some(status)) = c.try_wait()
            {
                return Err(format!("{name} exited: {status}"));
            }
        }
        Ok(())
    }

    /// Kills what is left of the containers if dockerd could not remove them: every process in
    /// their cgroups (`/docker/<id>` in each hierarchy), and containerd shims of our socket.
    fn kill_leftovers(&self, ids: &[String]) {
        for id in ids {
            for hierarchy in ["pids", "memory", "cpu", "systemd", "unified"] {
                let procs = Path::new("/sys/fs/cgroup")
                    .join(hierarchy)
                    .join("docker")
                    .join(id)
                    .join("cgroup.procs");
                for pid in std::fs::read_to_string(&procs).unwrap_or_default().lines() {
                    if let Ok(pid) = pid.trim().parse::<i32>() {
                        // SAFETY: kill has no memory-safety preconditions.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                }
            }
        }
        let needle = self.containerd_socket.as_os_str().as_bytes().to_vec();
        for pid in processes_with_arg(&needle) {
            // SAFETY: as above; these are shims started by our containerd (their -address is
            // our private socket path).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let ids = self
            .containers
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default();
        if self.dockerd.is_some() {
            for id in &ids {
                let _ = self.docker(&["rm", "-f", id]);
            }
        }
        if let Some(c) = self.dockerd.take() {
            stop(c, Duration::from_secs(20));
        }
        self.kill_leftovers(&ids);
        if let Some(c) = self.containerd.take() {
            stop(c, Duration::from_secs(10));
        }
        unmount_under(self.dir.path());
    }
}

/// Spawns a daemon with stdout and stderr into `log`.
fn spawn_logged(cmd: &mut Command, log: &Path) -> Result<Child, String> {
    let out = std::fs::File::create(log).map_err(|e| e.to_string())?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    cmd.env("PATH", DAEMON_PATH)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("spawn {cmd:?}: {e}"))
}

/// Runs a command to completion within `timeout` (killed after it); stdout or an error.
pub fn run_bounded(cmd: &mut Command, timeout: Duration) -> Result<String, String> {
    let mut child = cmd
        .env("PATH", DAEMON_PATH)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn {cmd:?}: {e}"))?;
    // Pipes are drained in threads so a chatty command cannot block on a full pipe.
    let mut out_pipe = child.stdout.take();
    let mut err_pipe = child.stderr.take();
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(p) = out_pipe.as_mut() {
            let _ = p.read_to_string(&mut s);
        }
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(p) = err_pipe.as_mut() {
            let _ = p.read_to_string(&mut s);
        }
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Ok(s),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                break Err(format!("{cmd:?} timed out after {timeout:?}"));
            }
            Err(e) => break Err(e.to_string()),
        }
    };
    let out = out_t.join().unwrap_or_default();
    let err = err_t.join().unwrap_or_default();
    match status {
        Ok(s) if s.success() => Ok(out.trim().to_owned()),
        Ok(s) => Err(format!("{cmd:?}: {s}: {}", err.trim())),
        Err(e) => Err(e),
    }
}

/// Polls `f` every 50 ms until it returns true, fails, or `timeout` passes.
fn poll_until(
    timeout: Duration,
    mut f: impl FnMut() -> Result<bool, String>,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        if f()? {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("not ready after {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SIGTERM, then SIGKILL after `grace`.
fn stop(mut child: Child, grace: Duration) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: kill has no memory-safety preconditions; the pid is our own child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Pids whose command line has an argument equal to `arg`.
fn processes_with_arg(arg: &[u8]) -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| c.split(|b| *b == 0).any(|a| a == arg))
                .unwrap_or(false)
        })
        .collect()
}

/// Lazily unmounts every mount point below `dir` (dockerd bind-mounts its data root and
/// container netns files), deepest first, so the temp dir can be removed.
fn unmount_under(dir: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let prefix = dir.as_os_str().as_bytes();
    let mut points: Vec<Vec<u8>> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mount_path)
        .filter(|p| p.starts_with(prefix))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        if let Ok(c) = CString::new(p) {
            // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mount_path(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}
