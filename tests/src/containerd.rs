//! A private containerd (1.6, Debian's package) with its CRI plugin, started by a test: its own
//! root, state, socket and config in a temp dir, a busybox image imported locally (nothing can
//! be pulled), a CNI bridge network private to the pods, and a CRI client playing the kubelet.
//!
//! Pods made through [`Containerd::run_pod`] / [`Containerd::run_container`] carry the labels
//! the kubelet sets and get the cgroupfs cgroups of a BestEffort pod,
//! `/kubepods/besteffort/pod<uid>/<container id>`; plain `ctr run` containers get
//! `/<namespace>/<id>`. docs/testing-kubernetes.md explains the config and the tricks.
//!
//! Everything is undone on drop (also when the test panics): sandboxes and tasks removed through
//! the daemon, then the daemon, its shims and any process left in the test's cgroups killed by
//! pid, mounts under the temp dir detached, cgroups and the bridge removed.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::cri::{self, CriClient};

/// The busybox image every test container runs (imported, never pulled).
pub const IMAGE: &str = "sonde.test/busybox:1";
/// The sandbox ("pause") image the CRI plugin is configured with: the same busybox image under
/// a second name, whose default command (`sleep`) holds the sandbox's namespaces.
pub const PAUSE_IMAGE: &str = "sonde.test/pause:1";
/// containerd's namespace of Kubernetes containers.
pub const K8S_NAMESPACE: &str = "k8s.io";

/// Instances made by this process (bridge names and subnets must differ between instances).
static INSTANCES: AtomicU32 = AtomicU32::new(0);

/// A pod sandbox created through CRI.
#[derive(Clone, Debug)]
pub struct Pod {
    /// Sandbox id (64 hex).
    pub id: String,
    /// Pod name (`io.kubernetes.pod.name`).
    pub name: String,
    /// Kubernetes namespace (`io.kubernetes.pod.namespace`).
    pub namespace: String,
    /// Pod uid.
    pub uid: String,
    /// The config it was created with (CreateContainer needs it again).
    pub config: cri::proto::PodSandboxConfig,
}

impl Pod {
    /// The pod's cgroup (relative to each hierarchy): `/kubepods/besteffort/pod<uid>`.
    pub fn cgroup_parent(&self) -> String {
        format!("/kubepods/besteffort/pod{}", self.uid)
    }

    /// The cgroup of one of its containers (cgroupfs driver): `<parent>/<container id>`.
    pub fn container_cgroup(&self, container_id: &str) -> String {
        format!("{}/{container_id}", self.cgroup_parent())
    }
}

/// A private containerd daemon; see the module doc.
pub struct Containerd {
    dir: tempfile::TempDir,
    socket: PathBuf,
    config: PathBuf,
    log: PathBuf,
    image_tar: PathBuf,
    bridge: String,
    child: Option<Child>,
    /// Pod uids and plain `(namespace, id)` containers made, for the cgroup sweep on drop.
    pod_uids: Mutex<Vec<String>>,
    plain: Mutex<Vec<(String, String)>>,
    imported: Mutex<Vec<String>>,
}

impl Containerd {
    /// Starts a private containerd with CRI, the busybox image imported in `k8s.io` (also as
    /// the pause image). None when the test must skip (not root, or containerd, runc, CNI
    /// plugins or busybox-static missing: printed, or a failure under
    /// SONDE_REQUIRE_PRIVILEGED=1). Panics when the daemon does not come up.
    pub fn new(test: &str) -> Option<Containerd> {
        if !crate::privileged(test) {
            return None;
        }
        let package = "containerd runc containernetworking-plugins busybox-static";
        for tool in ["containerd", "ctr", "containerd-shim-runc-v2", "runc"] {
            crate::tools::require(test, tool, package)?;
        }
        for file in [
            "/usr/lib/cni/bridge",
            "/usr/lib/cni/host-local",
            "/bin/busybox",
        ] {
            if !Path::new(file).exists() {
                crate::skip(
                    test,
                    &format!("{file} is missing (apt-get install -y {package})"),
                );
                return None;
            }
        }
        let mut c = Containerd::create().expect("set up the containerd test directory");
        c.start();
        c.import_image(K8S_NAMESPACE);
        c.ctr(&["-n", K8S_NAMESPACE, "image", "tag", IMAGE, PAUSE_IMAGE]);
        Some(c)
    }

    fn create() -> anyhow::Result<Containerd> {
        let n = INSTANCES.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        // Short: unix socket paths are limited to 108 bytes.
        let dir = tempfile::Builder::new().prefix("sonde-ctrd").tempdir()?;
        let d = dir.path();
        for sub in ["net.d", "opt", "ipam", "pods", "image"] {
            fs::create_dir_all(d.join(sub))?;
        }
        // At most 15 bytes (IFNAMSIZ - 1).
        let bridge = format!("sondek{:08x}", pid.wrapping_mul(64).wrapping_add(n));
        // A /24 per instance; the bridge gets no address (isGateway false) and the pods no
        // default route, so pod traffic cannot leave the bridge.
        let subnet = format!("10.88.{}.0/24", (pid.wrapping_add(n)) % 200 + 20);
        let conflist = format!(
            r#"{{"cniVersion":"0.4.0","name":"sonde-test","plugins":[{{"type":"bridge","bridge":"{bridge}","isGateway":false,"ipMasq":false,"hairpinMode":false,"ipam":{{"type":"host-local","dataDir":"{ipam}","ranges":[[{{"subnet":"{subnet}"}}]]}}}}]}}"#,
            ipam = d.join("ipam").display(),
        );
        fs::write(d.join("net.d/10-sonde.conflist"), conflist)?;
        let socket = d.join("containerd.sock");
        let config = d.join("config.toml");
        fs::write(&config, config_toml(d, &socket))?;
        let image_tar = build_busybox_image(&d.join("image"), IMAGE, &["sleep", "2147483647"])?;
        Ok(Containerd {
            log: d.join("containerd.log"),
            dir,
            socket,
            config,
            image_tar,
            bridge,
            child: None,
            pod_uids: Mutex::new(Vec::new()),
            plain: Mutex::new(Vec::new()),
            imported: Mutex::new(Vec::new()),
        })
    }

    /// The daemon's gRPC socket (give it to the agent as `--containerd-socket`).
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The temp dir holding root, state, config, logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The OCI image-layout tarball of the busybox image (for `ctr image import`).
    pub fn image_tarball(&self) -> &Path {
        &self.image_tar
    }

    /// The daemon's log (all its runs).
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the daemon is running (started and not stopped).
    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// (Re)starts the daemon with the same config and state, and waits until its CRI plugin
    /// answers. Panics (with the daemon's log) when it does not within 30 s.
    pub fn start(&mut self) {
        if let Err(e) = self.try_start() {
            panic!(
                "containerd did not start: {e:#}\n--- log ---\n{}",
                self.log_text()
            );
        }
    }

    fn try_start(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            return Ok(());
        }
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let mut child = Command::new("containerd")
            .arg("--config")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("spawn containerd")?;
        let cri = CriClient::with_timeout(&self.socket, Duration::from_secs(2));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait()? {
                bail!("containerd exited ({status})");
            }
            // The CRI plugin refuses calls until it has recovered its state.
            match cri.version() {
                Ok(_) => break,
                Err(e) if Instant::now() > deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(e.context("CRI not ready after 30 s"));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        self.child = Some(child);
        Ok(())
    }

    /// Kills the daemon (SIGKILL, like a crash): shims, containers and state stay, so
    /// [`Containerd::start`] picks them up again.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A CRI client for this daemon.
    pub fn cri(&self) -> CriClient {
        CriClient::new(&self.socket)
    }

    /// Runs `ctr --address <socket> args...`, panicking with its output on failure.
    pub fn ctr(&self, args: &[&str]) -> String {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address").arg(&self.socket).args(args);
        crate::tools::run(&mut cmd)
    }

    fn ctr_quiet(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("ctr")
            .arg("--address")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Imports the busybox image as [`IMAGE`] into containerd namespace `namespace` (once).
    pub fn import_image(&self, namespace: &str) {
        let mut imported = self.imported.lock().unwrap_or_else(|e| e.into_inner());
        if imported.iter().any(|n| n == namespace) {
            return;
        }
        let tar = self.image_tar.display().to_string();
        self.ctr(&["-n", namespace, "image", "import", &tar]);
        imported.push(namespace.to_owned());
    }

    /// Creates a pod sandbox as the kubelet would (labels, BestEffort cgroup parent, log
    /// directory) with a fresh random uid.
    pub fn run_pod(&self, name: &str, namespace: &str) -> Pod {
        let uid = random_uuid();
        let log_dir = self.dir().join(format!("pods/{namespace}_{name}_{uid}"));
        fs::create_dir_all(&log_dir).expect("pod log dir");
        let config = cri::pod_sandbox_config(name, namespace, &uid, &log_dir);
        self.pod_uids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(uid.clone());
        let id = self.cri().run_pod_sandbox(&config).unwrap_or_else(|e| {
            panic!(
                "RunPodSandbox {namespace}/{name}: {e:#}\n{}",
                self.log_tail()
            )
        });
        Pod {
            id,
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            uid,
            config,
        }
    }

    /// Creates and starts container `name` running `command` (busybox applets) in `pod`; its id.
    pub fn run_container(&self, pod: &Pod, name: &str, command: &[&str]) -> String {
        let cri = self.cri();
        let config = cri::container_config(&pod.config, name, IMAGE, command);
        let id = cri
            .create_container(&pod.id, &config, &pod.config)
            .unwrap_or_else(|e| panic!("CreateContainer {name}: {e:#}\n{}", self.log_tail()));
        cri.start_container(&id)
            .unwrap_or_else(|e| panic!("StartContainer {name}: {e:#}\n{}", self.log_tail()));
        id
    }

    /// Stops and removes a pod sandbox with its containers.
    pub fn remove_pod(&self, pod: &Pod) {
        let cri = self.cri();
        cri.stop_pod_sandbox(&pod.id).expect("StopPodSandbox");
        cri.remove_pod_sandbox(&pod.id).expect("RemovePodSandbox");
    }

    /// `ctr -n <namespace> run -d IMAGE <id> command...`: a plain (non-Kubernetes) container,
    /// cgroup `/<namespace>/<id>`. Imports the image into the namespace first.
    pub fn run_plain(&self, namespace: &str, id: &str, command: &[&str]) {
        self.import_image(namespace);
        self.plain
            .lock()
            .unwrap()
            .push((namespace.to_owned(), id.to_owned()));
        let mut args = vec!["-n", namespace, "run", "-d", IMAGE, id];
        args.extend_from_slice(command);
        self.ctr(&args);
    }

    /// The pid of a task's main process (`ctr task ls`), if running.
    pub fn task_pid(&self, namespace: &str, id: &str) -> Option<u32> {
        let out = self.ctr_quiet(&["-n", namespace, "task", "ls"])?;
        out.lines().skip(1).find_map(|l| {
            let mut f = l.split_whitespace();
            (f.next()? == id).then_some(())?;
            f.next()?.parse().ok().filter(|p| *p > 0)
        })
    }

    fn log_tail(&self) -> String {
        let log = self.log_text();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(30)..].join("\n");
        format!("--- containerd log (tail) ---\n{tail}")
    }

    /// Best-effort teardown through the daemon: every sandbox, then every task and container.
    fn remove_everything(&self) {
        let cri = CriClient::with_timeout(&self.socket, Duration::from_secs(30));
        for sandbox in cri.list_pod_sandboxes().unwrap_or_default() {
            let _ = cri.stop_pod_sandbox(&sandbox.id);
            let _ = cri.remove_pod_sandbox(&sandbox.id);
        }
        let namespaces = self
            .ctr_quiet(&["namespaces", "ls", "-q"])
            .unwrap_or_default();
        for ns in namespaces.lines().map(str::trim).filter(|n| !n.is_empty()) {
            let tasks = self
                .ctr_quiet(&["-n", ns, "task", "ls", "-q"])
                .unwrap_or_default();
            for task in tasks.lines().map(str::trim).filter(|t| !t.is_empty()) {
                let _ = self.ctr_quiet(&["-n", ns, "task", "kill", "-s", "SIGKILL", task]);
                let _ = self.ctr_quiet(&["-n", ns, "task", "delete", "-f", task]);
            }
            let containers = self
                .ctr_quiet(&["-n", ns, "containers", "ls", "-q"])
                .unwrap_or_default();
            for c in containers.lines().map(str::trim).filter(|c| !c.is_empty()) {
                let _ = self.ctr_quiet(&["-n", ns, "containers", "delete", c]);
            }
        }
    }

    /// The test's cgroups (relative paths), deepest first.
    fn test_cgroups(&self) -> Vec<String> {
        let mut out = Vec::new();
        for uid in self
            .pod_uids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let parent = format!("/kubepods/besteffort/pod{uid}");
            for mount in cgroup_mounts() {
                if let Ok(entries) = fs::read_dir(mount.join(parent.trim_start_matches('/'))) {
                    for e in entries.flatten() {
                        if e.path().is_dir() {
                            out.push(format!("{parent}/{}", e.file_name().to_string_lossy()));
                        }
                    }
                }
            }
            out.push(parent);
        }
        for (ns, id) in self.plain.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            out.push(format!("/{ns}/{id}"));
            out.push(format!("/{ns}"));
        }
        out.push("/kubepods/besteffort".to_owned());
        out.push("/kubepods".to_owned());
        out.dedup();
        out
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if self.try_start().is_ok() {
            self.remove_everything();
        }
        self.stop();
        // Shims of this daemon (their command line names its socket) and whatever is left in
        // the test's cgroups: killed by pid.
        let socket = self.socket.display().to_string();
        for pid in pids_with_arg(&socket) {
            // SAFETY: kill has no memory preconditions; the pid was just read from /proc.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let cgroups = self.test_cgroups();
        for mount in cgroup_mounts() {
            for cg in &cgroups {
                let dir = mount.join(cg.trim_start_matches('/'));
                for pid in fs::read_to_string(dir.join("cgroup.procs"))
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| l.trim().parse::<i32>().ok())
                {
                    // SAFETY: as above.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        std::thread::sleep(Duration::from_millis(200));
        for cg in &cgroups {
            for mount in cgroup_mounts() {
                // Fails while busy or when shared with another test (the kubepods skeleton):
                // both fine.
                let _ = fs::remove_dir(mount.join(cg.trim_start_matches('/')));
            }
        }
        unmount_under(self.dir.path());
        // runc's state directories of our namespaces (empty by now; kept if anything uses them).
        for ns in self
            .imported
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = fs::remove_dir(Path::new("/run/containerd/runc").join(ns));
        }
        // libcni's result cache, created on first use; kept when anything else uses it.
        let _ = fs::remove_dir("/var/lib/cni/results");
        let _ = fs::remove_dir("/var/lib/cni");
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stderr(Stdio::null())
            .status();
    }
}

/// containerd 1.6 config (version 2): everything under `d`, CRI with cgroupfs, the local pause
/// image, CNI from Debian's plugin directory with this instance's conflist.
fn config_toml(d: &Path, socket: &Path) -> String {
    let d = d.display();
    let socket = socket.display();
    format!(
        r#"version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.internal.v1.tracing", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]

[grpc]
  address = "{socket}"

[ttrpc]
  address = "{socket}.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  # runc cannot write oom_score_adj below the agent's own without CAP_SYS_RESOURCE.
  restrict_oom_score_adj = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  # Pod network namespaces under the temp dir, not /run/netns.
  netns_mounts_under_state_dir = true

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{d}/net.d"
    max_conf_num = 1
"#
    )
}

/// Builds an OCI image-layout tarball named `name` in `dir`: one layer holding a busybox-static
/// rootfs (`/bin/busybox` and a symlink per applet), and `cmd` as the image's default command.
/// Returns the tarball's path (for `ctr image import`). Needs `tar` and `sha256sum`.
pub fn build_busybox_image(dir: &Path, name: &str, cmd: &[&str]) -> anyhow::Result<PathBuf> {
    let rootfs = dir.join("rootfs");
    for sub in ["bin", "dev", "etc", "proc", "sys", "tmp"] {
        fs::create_dir_all(rootfs.join(sub))?;
    }
    fs::copy("/bin/busybox", rootfs.join("bin/busybox")).context("copy /bin/busybox")?;
    let applets = crate::tools::run(Command::new("/bin/busybox").arg("--list"));
    for applet in applets.lines().map(str::trim) {
        if !applet.is_empty() && applet != "busybox" {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet))?;
        }
    }
    let layout = dir.join("layout");
    let blobs = layout.join("blobs/sha256");
    fs::create_dir_all(&blobs)?;
    let layer = dir.join("layer.tar");
    crate::tools::run(
        Command::new("tar")
            .args(["--owner=0", "--group=0", "--numeric-owner", "-C"])
            .arg(&rootfs)
            .arg("-cf")
            .arg(&layer)
            .arg("."),
    );
    let (layer_digest, layer_size) = add_blob(&blobs, &fs::read(&layer)?)?;
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let cmd_json = cmd
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(",");
    let config = format!(
        r#"{{"architecture":"{arch}","os":"linux","config":{{"Env":["PATH=/bin"],"Cmd":[{cmd_json}]}},"rootfs":{{"type":"layers","diff_ids":["{layer_digest}"]}}}}"#
    );
    let (config_digest, config_size) = add_blob(&blobs, config.as_bytes())?;
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{config_size}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer_digest}","size":{layer_size}}}]}}"#
    );
    let (manifest_digest, manifest_size) = add_blob(&blobs, manifest.as_bytes())?;
    // ctr names the image after the io.containerd.image.name annotation.
    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{manifest_digest}","size":{manifest_size},"platform":{{"architecture":"{arch}","os":"linux"}},"annotations":{{"io.containerd.image.name":"{name}"}}}}]}}"#
    );
    fs::write(layout.join("index.json"), index)?;
    fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    let tarball = dir.join("image.tar");
    crate::tools::run(
        Command::new("tar")
            .arg("-C")
            .arg(&layout)
            .arg("-cf")
            .arg(&tarball)
            .arg("."),
    );
    Ok(tarball)
}

/// Stores `data` as a content-addressed blob; its `sha256:<hex>` digest and size.
fn add_blob(blobs: &Path, data: &[u8]) -> anyhow::Result<(String, usize)> {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("spawn sha256sum")?;
    child
        .stdin
        .take()
        .context("sha256sum stdin")?
        .write_all(data)?;
    let out = child.wait_with_output()?;
    let hex = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();
    if hex.len() != 64 {
        bail!(
            "sha256sum printed {:?}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    fs::write(blobs.join(&hex), data)?;
    Ok((format!("sha256:{hex}"), data.len()))
}

/// A random RFC 4122 uuid, as Kubernetes pod uids are.
pub fn random_uuid() -> String {
    fs::read_to_string("/proc/sys/kernel/random/uuid")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| format!("{:08x}-0000-4000-8000-000000000000", std::process::id()))
}

/// Mount points of cgroup hierarchies (v1 controllers, named ones, and the unified one).
fn cgroup_mounts() -> Vec<PathBuf> {
    mountinfo()
        .into_iter()
        .filter(|(_, fstype)| fstype == "cgroup" || fstype == "cgroup2")
        .map(|(mount, _)| mount)
        .collect()
}

/// (mount point, fs type) of every mount of this process' namespace.
fn mountinfo() -> Vec<(PathBuf, String)> {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let fields: Vec<&str> = l.split(' ').collect();
            let mount = unescape_mount(fields.get(4)?);
            let sep = fields.iter().position(|f| *f == "-")?;
            Some((PathBuf::from(mount), (*fields.get(sep + 1)?).to_owned()))
        })
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Detaches every mount under `dir`, deepest first.
fn unmount_under(dir: &Path) {
    let mut mounts: Vec<PathBuf> = mountinfo()
        .into_iter()
        .map(|(m, _)| m)
        .filter(|m| m.starts_with(dir))
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.as_os_str().len()));
    for m in mounts {
        let Ok(c) = std::ffi::CString::new(m.as_os_str().as_encoded_bytes()) else {
            continue;
        };
        // SAFETY: c is a valid NUL-terminated path.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

/// Pids whose command line has `arg` as one of its arguments.
fn pids_with_arg(arg: &str) -> Vec<i32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| c.split(|b| *b == 0).any(|a| a == arg.as_bytes()))
                .unwrap_or(false)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mount("/a\\040b"), "/a b");
        assert_eq!(unescape_mount("/plain"), "/plain");
        assert_eq!(unescape_mount("/end\\04"), "/end\\04");
    }

    #[test]
    fn image_layout_is_content_addressed() {
        if crate::tools::which("sha256sum").is_none() || !Path::new("/bin/busybox").exists() {
            crate::skip(
                "image_layout_is_content_addressed",
                "needs sha256sum and busybox (busybox-static)",
            );
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let tar = build_busybox_image(dir.path(), "x/y:1", &["sleep", "1"]).unwrap();
        assert!(tar.exists());
        let index = fs::read_to_string(dir.path().join("layout/index.json")).unwrap();
        assert!(index.contains(r#""io.containerd.image.name":"x/y:1""#));
        for blob in fs::read_dir(dir.path().join("layout/blobs/sha256")).unwrap() {
            let blob = blob.unwrap();
            let (digest, _) = add_blob(dir.path(), &fs::read(blob.path()).unwrap()).unwrap();
            assert_eq!(
                digest,
                format!("sha256:{}", blob.file_name().to_string_lossy())
            );
        }
    }
}
