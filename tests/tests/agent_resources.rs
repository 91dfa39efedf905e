//! Container resources beyond CPU and memory, against real parts:
//! - a Docker named volume on its own ext4 file system (a loop device) written with direct I/O
//!   from inside the container: `container_resources_disk_written_bytes_total` on that mount
//!   equals the bytes written (within 1 %), `used` grows by them, and the labels name the mount
//!   point, the loop device and the volume;
//! - real postgres, redis and nginx processes, each in a cgroup shaped like a systemd service:
//!   `container_application_type` names each.
//!
//! Direct I/O because cgroup v1 blkio (the io controller on this hybrid host) does not charge
//! buffered writeback to the cgroup that dirtied the pages (docs/cgroup-node.md).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sonde_integration_tests::cgroups::{TestCgroup, hierarchies};
use sonde_integration_tests::dockerd::Dockerd;
use sonde_integration_tests::tools::{require, run};
use sonde_integration_tests::{Agent, Scrape, free_port, privileged};

const IMAGE: &str = "sonde-busybox:test";
const TIMEOUT: Duration = Duration::from_secs(30);
const WRITTEN: u64 = 16 << 20;

/// A loop device over a file, detached on drop.
struct LoopDevice {
    dev: String,
}

impl LoopDevice {
    fn ext4(image: &Path, size: u64) -> LoopDevice {
        let f = std::fs::File::create(image).unwrap();
        f.set_len(size).unwrap();
        let dev = run(Command::new("losetup")
            .arg("--find")
            .arg("--show")
            .arg(image))
        .trim()
        .to_owned();
        let l = LoopDevice { dev };
        run(Command::new("mkfs.ext4").args(["-q", "-F", &l.dev]));
        l
    }

    fn name(&self) -> &str {
        self.dev.trim_start_matches("/dev/")
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.dev).status();
    }
}

fn disk_value(s: &Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    s.value(metric, labels)
}

#[test]
fn docker_volume_written_bytes_and_used_space() {
    let test = "docker_volume_written_bytes_and_used_space";
    if !privileged(test)
        || require(test, "losetup", "mount").is_none()
        || require(test, "mkfs.ext4", "e2fsprogs").is_none()
    {
        return;
    }
    let Some(d) = Dockerd::start_or_skip(test) else {
        return;
    };
    d.import_busybox(IMAGE)
        .unwrap_or_else(|e| panic!("import busybox: {e}\n{}", d.daemon_logs()));
    let lo = LoopDevice::ext4(&d.dir().join("volume.img"), 128 << 20);
    let volume = format!("sonde-vol-{}", std::process::id());
    d.docker(&[
        "volume",
        "create",
        "--driver",
        "local",
        "--opt",
        "type=ext4",
        "--opt",
        &format!("device={}", lo.dev),
        &volume,
    ])
    .unwrap();
    let name = format!("sonde-disk-{}", std::process::id());
    let id = d
        .run(&[
            "--name",
            &name,
            "-v",
            &format!("{volume}:/data"),
            IMAGE,
            "sleep",
            "1000",
        ])
        .unwrap_or_else(|e| panic!("docker run: {e}\n{}", d.daemon_logs()));

    let socket = d.socket.to_str().unwrap().to_owned();
    let agent = Agent::start(&[
        "--docker-socket",
        &socket,
        "--min-container-age",
        "0s",
        "--enable-blkio-accounting",
    ]);
    let cid = format!("/docker/{name}");
    let labels: &[(&str, &str)] = &[
        ("container_id", &cid),
        ("mount_point", "/data"),
        ("device", lo.name()),
        ("volume", &volume),
    ];
    let before = agent.scrape_until("the volume's size", TIMEOUT, |s| {
        disk_value(s, "container_resources_disk_size_bytes", labels).is_some()
    });
    let size = disk_value(&before, "container_resources_disk_size_bytes", labels).unwrap();
    let used_before = disk_value(&before, "container_resources_disk_used_bytes", labels).unwrap();
    let reserved = disk_value(&before, "container_resources_disk_reserved_bytes", labels).unwrap();
    // mkfs.ext4 of 128 MiB: a little less capacity (metadata); reserved: 5 % for root plus
    // ext4's own reserve for delayed allocation.
    assert!(
        size > (100 << 20) as f64 && size <= (128 << 20) as f64,
        "size {size}"
    );
    assert!(
        reserved > 0.0 && reserved < size * 0.1,
        "reserved {reserved}"
    );
    let written_before = disk_value(
        &before,
        "container_resources_disk_written_bytes_total",
        labels,
    )
    .unwrap_or(0.0);
    // The volume, and the root file system when the storage driver puts it on a block device
    // (vfs here; overlay's is major 0 and excluded); never the runtime's /etc/hosts & co.
    let by_id = [("container_id", cid.as_str())];
    let mounts: Vec<&str> = before
        .find("container_resources_disk_size_bytes", &by_id)
        .map(|s| s.labels["mount_point"].as_str())
        .collect();
    assert!(
        mounts.contains(&"/data") && mounts.iter().all(|m| ["/", "/data"].contains(m)),
        "{mounts:?}\n{}",
        before.text
    );

    d.docker(&[
        "exec",
        &id,
        "dd",
        "if=/dev/zero",
        "of=/data/blob",
        "bs=1M",
        "count=16",
        "oflag=direct",
    ])
    .unwrap();

    let after = agent.scrape_until("the written bytes", TIMEOUT, |s| {
        disk_value(s, "container_resources_disk_written_bytes_total", labels)
            .is_some_and(|v| v - written_before >= WRITTEN as f64)
    });
    let written = disk_value(
        &after,
        "container_resources_disk_written_bytes_total",
        labels,
    )
    .unwrap()
        - written_before;
    assert!(
        written <= WRITTEN as f64 * 1.01,
        "written {written} vs {WRITTEN} (more than 1 % off)"
    );
    let writes = disk_value(&after, "container_resources_disk_writes_total", labels).unwrap();
    eprintln!(
        "{test}: wrote {WRITTEN} bytes; written_bytes_total grew by {written}, writes_total {writes}, used grew by {}",
        disk_value(&after, "container_resources_disk_used_bytes", labels).unwrap() - used_before
    );
    assert!(writes >= 16.0, "writes {writes}");
    let used_after = disk_value(&after, "container_resources_disk_used_bytes", labels).unwrap();
    assert!(
        used_after - used_before >= WRITTEN as f64,
        "used grew by {} only",
        used_after - used_before
    );
    d.remove(&id).unwrap();
    let _ = d.docker(&["volume", "rm", &volume]);
}

/// The command lines of the processes in `cg`, for failure messages.
fn processes(cg: &TestCgroup) -> String {
    let dir = cg.dir("pids").or_else(|| cg.dir("unified")).unwrap();
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .map(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            format!("{pid}={:?}", String::from_utf8_lossy(&cmd))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A process started in `cg` (the shell moves itself in before exec'ing `cmd`, so every child
/// is born inside).
fn spawn_in(cg: &TestCgroup, cmd: &str, log: &Path) -> Child {
    let log = std::fs::File::create(log).unwrap();
    let procs: Vec<String> = hierarchies()
        .iter()
        .map(|h| {
            // Quoted: unit names hold backslashes (`\x2d`).
            let p = h.join(cg.path.trim_start_matches('/')).join("cgroup.procs");
            format!("'{}'", p.display())
        })
        .collect();
    let script = format!(
        "for f in {}; do echo $$ > \"$f\"; done; exec {cmd}",
        procs.join(" ")
    );
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// A unit file written to the host's /run/systemd/system (the runtime unit directory; systemd
/// is not running here), removed on drop.
struct UnitFile(PathBuf);

impl UnitFile {
    fn write(name: &str, text: &str) -> UnitFile {
        let dir = Path::new("/run/systemd/system");
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        UnitFile(path)
    }
}

impl Drop for UnitFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The escaped unit name (without suffix) of a test service.
fn unit_name(name: &str) -> String {
    format!("sonde\\x2dapp\\x2d{name}\\x2d{}", std::process::id())
}

fn service(name: &str) -> (TestCgroup, String) {
    let unit = format!("{}.service", unit_name(name));
    let id = format!(
        "/system.slice/sonde-app-{name}-{}.service",
        std::process::id()
    );
    (
        TestCgroup::create(&format!("/system.slice/{unit}")).unwrap(),
        id,
    )
}

#[test]
fn real_postgres_redis_and_nginx_have_their_types() {
    let test = "real_postgres_redis_and_nginx_have_their_types";
    if !privileged(test)
        || require(test, "redis-server", "redis-server").is_none()
        || require(test, "nginx", "nginx").is_none()
        || require(test, "setpriv", "util-linux").is_none()
    {
        return;
    }
    let Some(pg_bin) = std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .and_then(|mut d| d.next())
        .and_then(|e| e.ok())
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("postgres").is_file())
    else {
        sonde_integration_tests::skip(
            test,
            "postgres is not installed (apt-get install -y postgresql)",
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap();

    // postgres refuses to run as root: initdb and run it as the postgres user.
    let pgdata: PathBuf = tmp.path().join("pg");
    std::fs::create_dir(&pgdata).unwrap();
    run(Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(&pgdata));
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let as_postgres = "setpriv --reuid=postgres --regid=postgres --init-groups";
    run(Command::new("sh").args([
        "-c",
        &format!(
            "{as_postgres} {} -D {} -A trust -U postgres >/dev/null",
            pg_bin.join("initdb").display(),
            pgdata.display()
        ),
    ]));
    let (mut pg_cg, pg_id) = service("pg");
    pg_cg.own(spawn_in(
        &pg_cg,
        &format!(
            "{as_postgres} {} -D {} -k {} -c listen_addresses=",
            pg_bin.join("postgres").display(),
            pgdata.display(),
            pgdata.display()
        ),
        &tmp.path().join("postgres.log"),
    ));

    let (mut redis_cg, redis_id) = service("redis");
    redis_cg.own(spawn_in(
        &redis_cg,
        &format!(
            "redis-server --port 0 --unixsocket {dir}/redis.sock --save '' --dir {dir}",
            dir = tmp.path().display()
        ),
        &tmp.path().join("redis.log"),
    ));

    let conf = tmp.path().join("nginx.conf");
    let port = free_port();
    std::fs::write(
        &conf,
        format!(
            "pid {dir}/nginx.pid;\nerror_log {dir}/error.log;\nevents {{}}\nhttp {{ access_log off; client_body_temp_path {dir}; proxy_temp_path {dir}; fastcgi_temp_path {dir}; uwsgi_temp_path {dir}; scgi_temp_path {dir}; server {{ listen 127.0.0.1:{port}; }} }}\n",
            dir = tmp.path().display()
        ),
    )
    .unwrap();
    let (mut nginx_cg, nginx_id) = service("nginx");
    nginx_cg.own(spawn_in(
        &nginx_cg,
        &format!("nginx -c {} -g 'daemon off;'", conf.display()),
        &tmp.path().join("nginx.log"),
    ));

    // systemd facts from unit files: postgres as a timer-started oneshot job, redis as a
    // notify service with no trigger, nginx with no unit file at all.
    let _units = [
        UnitFile::write(
            &format!("{}.service", unit_name("pg")),
            "[Service]\nType=oneshot\nExecStart=/usr/lib/postgresql/15/bin/postgres\n",
        ),
        UnitFile::write(
            &format!("{}.timer", unit_name("pg")),
            "[Timer]\nOnCalendar=hourly\n",
        ),
        UnitFile::write(
            &format!("{}.service", unit_name("redis")),
            "[Service]\nType=notify\nExecStart=/usr/bin/redis-server\n",
        ),
    ];
    let agent = Agent::start(&["--min-container-age", "0s"]);
    let cgs = [&pg_cg, &redis_cg, &nginx_cg];
    let describe = || {
        cgs.iter()
            .map(|cg| format!("{}: {}", cg.path, processes(cg)))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let expected = [
        (&pg_id, "postgres"),
        (&redis_id, "redis"),
        (&nginx_id, "nginx"),
    ];
    // Ready: each server made its socket or pid file.
    for ready in [
        pgdata.join(".s.PGSQL.5432"),
        tmp.path().join("redis.sock"),
        tmp.path().join("nginx.pid"),
    ] {
        let logs = || {
            ["postgres.log", "redis.log", "nginx.log"]
                .iter()
                .map(|l| std::fs::read_to_string(tmp.path().join(l)).unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n")
        };
        let deadline = std::time::Instant::now() + TIMEOUT;
        while !ready.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "{} never appeared\n{}\n{}",
                ready.display(),
                describe(),
                logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    eprintln!("{}", describe());
    let what = "the three application types";
    let s = agent.scrape_until(what, TIMEOUT, |s| {
        expected.iter().all(|(id, app)| {
            s.has(
                "container_application_type",
                &[("container_id", id), ("application_type", app)],
            )
        })
    });
    // Exactly one type each: the helper shells and setpriv were exec'ed away. And no volumes:
    // these services run in the host's mount namespace.
    for (id, app) in expected {
        assert!(
            !s.has(
                "container_resources_disk_size_bytes",
                &[("container_id", id)]
            ),
            "{id} has disk series\n{}",
            s.text
        );
        let by_id = [("container_id", id.as_str())];
        let types: Vec<&str> = s
            .find("container_application_type", &by_id)
            .map(|x| x.labels["application_type"].as_str())
            .collect();
        assert_eq!(types, [app], "{id}");
        assert_eq!(
            s.value(
                "container_application_type",
                &[("container_id", id), ("application_type", app)]
            ),
            Some(1.0)
        );
    }
    for (id, typ, trigger) in [
        (&pg_id, "oneshot", format!("{}.timer", unit_name("pg"))),
        (&redis_id, "notify", String::new()),
        (&nginx_id, "", String::new()),
    ] {
        assert!(
            s.has(
                "container_info",
                &[
                    ("container_id", id),
                    ("systemd_type", typ),
                    ("systemd_triggered_by", &trigger)
                ]
            ),
            "{id}: {typ} {trigger}\n{}",
            s.text
        );
    }
    pg_cg.kill_children();
    redis_cg.kill_children();
    nginx_cg.kill_children();
}

/// The agent with a fake NVML (crates/gpu/tests/fake_nvml.c, built here with gcc) that reports
/// GPU use for one process of a test service: the node's GPU and that container's share of it
/// are exported; without NVML (this machine has no GPU) or with --disable-gpu-monitoring the
/// subsystem is down and nothing GPU-related is exported.
#[test]
fn fake_gpu_is_reported_for_the_node_and_its_container() {
    let test = "fake_gpu_is_reported_for_the_node_and_its_container";
    if !privileged(test) || require(test, "gcc", "gcc").is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let lib = tmp.path().join("libnvidia-ml.so.1");
    run(Command::new("gcc")
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(&lib)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/gpu/tests/fake_nvml.c")));
    let (mut cg, id) = service("gpu");
    let child = spawn_in(&cg, "sleep 1000", &tmp.path().join("sleep.log"));
    let pid = child.id();
    cg.own(child);

    let launcher = [
        std::ffi::OsString::from("env"),
        format!("FAKE_NVML_PID={pid}").into(),
        sonde_integration_tests::agent::sonde_binary().into_os_string(),
    ];
    let lib_arg = lib.to_str().unwrap();
    let agent = Agent::start_via(
        &launcher,
        &["--min-container-age", "0s", "--nvml-library", lib_arg],
    );
    let gpu: &[(&str, &str)] = &[("container_id", &id), ("gpu_uuid", "GPU-fake-0")];
    let s = agent.scrape_until("the container's GPU usage", TIMEOUT, |s| {
        s.value("container_resources_gpu_usage_percent", gpu)
            .is_some()
    });
    assert_eq!(
        s.value("container_resources_gpu_usage_percent", gpu),
        Some(42.0)
    );
    assert_eq!(
        s.value("container_resources_gpu_memory_usage_percent", gpu),
        Some(17.0)
    );
    let dev: &[(&str, &str)] = &[("gpu_uuid", "GPU-fake-0")];
    assert_eq!(
        s.value(
            "node_gpu_info",
            &[
                ("gpu_uuid", "GPU-fake-0"),
                ("name", "Fake Tesla T4"),
                ("driver_version", "535.104.05")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        s.value("node_resources_gpu_memory_total_bytes", dev),
        Some((16u64 << 30) as f64)
    );
    assert_eq!(
        s.value("node_resources_gpu_memory_used_bytes", dev),
        Some((1u64 << 30) as f64)
    );
    assert_eq!(
        s.value("node_resources_gpu_power_usage_watts", dev),
        Some(70.5)
    );
    assert_eq!(
        s.value("node_resources_gpu_temperature_celsius", dev),
        Some(55.0)
    );
    assert_eq!(
        s.value("node_resources_gpu_utilization_percent_avg", dev),
        Some(40.0)
    );
    assert_eq!(
        s.value("node_resources_gpu_utilization_percent_peak", dev),
        Some(70.0)
    );
    assert_eq!(
        s.value("node_resources_gpu_memory_utilization_percent_avg", dev),
        Some(15.0)
    );
    assert_eq!(
        s.value("sonde_subsystem_up", &[("subsystem", "gpu")]),
        Some(1.0)
    );
    drop(agent);

    // Without --disable-gpu-monitoring the agent looks for the driver's NVML: only on a machine
    // without one (as here) must it be down.
    let has_nvml = [
        "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1",
        "/usr/lib64/libnvidia-ml.so.1",
        "/usr/lib/libnvidia-ml.so.1",
        "/usr/lib/aarch64-linux-gnu/libnvidia-ml.so.1",
    ]
    .iter()
    .any(|p| Path::new(p).exists());
    let cases: &[&[&str]] = if has_nvml {
        &[&["--disable-gpu-monitoring"]]
    } else {
        &[&[], &["--disable-gpu-monitoring"]]
    };
    for extra in cases.iter().copied() {
        let mut args = vec!["--min-container-age", "0s"];
        args.extend_from_slice(extra);
        let agent = Agent::start(&args);
        let s = agent.scrape();
        assert_eq!(
            s.value("sonde_subsystem_up", &[("subsystem", "gpu")]),
            Some(0.0),
            "{extra:?}"
        );
        assert!(!s.text.contains("gpu_uuid"), "{extra:?}");
    }
    cg.kill_children();
}
