//! CPU and disk delay of containers (taskstats), end to end with the real agent and real
//! processes in test cgroups: two busy loops sharing one CPU wait for it, and the agent's
//! `container_resources_cpu_delay_seconds_total` must agree with the kernel's own per-task
//! counter (`/proc/<pid>/task/*/schedstat`, field 2); a direct-I/O writer makes
//! `container_resources_disk_delay_seconds_total` grow, matching `/proc/<pid>/stat` field 42;
//! and `kernel.task_delayacct=0` is reported, and turned on by `--enable-delay-accounting`.
//!
//! The sysctl is global and the busy loops load CPU 0, so every test here holds one lock
//! (tests of one binary run in parallel threads), and the sysctl is restored on drop.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use sonde_integration_tests::cgroups::TestCgroup;
use sonde_integration_tests::{Agent, Scrape, privileged, skip};

const CPU_DELAY: &str = "container_resources_cpu_delay_seconds_total";
const DISK_DELAY: &str = "container_resources_disk_delay_seconds_total";
const SYSCTL: &str = "/proc/sys/kernel/task_delayacct";

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

fn delayacct() -> String {
    fs::read_to_string(SYSCTL).unwrap().trim().to_owned()
}

/// Puts `kernel.task_delayacct` back as it was, even when the test panics.
struct SysctlRestore(String);

impl SysctlRestore {
    fn save() -> SysctlRestore {
        SysctlRestore(delayacct())
    }
}

impl Drop for SysctlRestore {
    fn drop(&mut self) {
        if let Err(e) = fs::write(SYSCTL, &self.0) {
            eprintln!("cannot restore {SYSCTL} to {}: {e}", self.0);
        }
    }
}

/// Sets the sysctl, or returns false (after `skip`) when /proc/sys is not writable here.
fn set_delayacct(test: &str, value: &str) -> bool {
    match fs::write(SYSCTL, value) {
        Ok(()) => true,
        Err(e) => skip(test, &format!("cannot write {SYSCTL}: {e}")),
    }
}

/// `sh` spinning forever, pinned to CPU 0 before it starts.
fn busy_loop_on_cpu0() -> Child {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "while :; do :; done"])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    // SAFETY: the closure only calls sched_setaffinity (async-signal-safe) on a local set.
    unsafe {
        cmd.pre_exec(|| {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(0, &mut set);
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn().unwrap()
}

/// Sum of the run-queue wait (field 2 of `/proc/<pid>/task/<tid>/schedstat`, ns) of every
/// thread of `pids`, in seconds.
fn schedstat_wait_seconds(pids: &[u32]) -> f64 {
    let mut ns: u64 = 0;
    for pid in pids {
        for task in fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
            let text = fs::read_to_string(task.unwrap().path().join("schedstat")).unwrap();
            ns += text
                .split_whitespace()
                .nth(1)
                .unwrap()
                .parse::<u64>()
                .unwrap();
        }
    }
    ns as f64 / 1e9
}

/// A scrape with the kernel's counter read right before and right after it.
struct Bracketed {
    before: f64,
    scrape: Scrape,
    after: f64,
}

fn bracketed(agent: &Agent, read: impl Fn() -> f64) -> Bracketed {
    let before = read();
    let scrape = agent.scrape();
    let after = read();
    Bracketed {
        before,
        scrape,
        after,
    }
}

#[test]
fn cpu_delay_of_busy_loops_matches_schedstat() {
    let test = "cpu_delay_of_busy_loops_matches_schedstat";
    if !privileged(test) {
        return;
    }
    let _serial = serial();
    let path = format!("/system.slice/sonde-delay-{}.service", std::process::id());
    let mut cg = TestCgroup::create(&path).unwrap();
    let mut pids = Vec::new();
    for _ in 0..2 {
        let child = busy_loop_on_cpu0();
        pids.push(child.id());
        cg.add_pid(child.id()).unwrap();
        cg.own(child);
    }
    let agent = Agent::start(&["--min-container-age", "0s"]);
    let id: &[(&str, &str)] = &[("container_id", &path)];
    agent.scrape_until("the busy loops' CPU delay", Duration::from_secs(20), |s| {
        s.has(CPU_DELAY, id)
    });

    let read = || schedstat_wait_seconds(&pids);
    let first = bracketed(&agent, read);
    std::thread::sleep(Duration::from_secs(3));
    let second = bracketed(&agent, read);
    let d0 = first.scrape.value(CPU_DELAY, id).unwrap();
    let d1 = second.scrape.value(CPU_DELAY, id).unwrap();
    let agent_delta = d1 - d0;
    let kernel_delta = (second.before + second.after) / 2.0 - (first.before + first.after) / 2.0;
    println!(
        "cpu delay: agent {d0:.4} -> {d1:.4} s (+{agent_delta:.4}); schedstat \
         [{:.4}, {:.4}] -> [{:.4}, {:.4}] s (+{kernel_delta:.4})",
        first.before, first.after, second.before, second.after
    );
    // The agent reads the same kernel counter (sched_info.run_delay) during the scrape, and its
    // first reading counts each process's whole history: each total lies within its bracket.
    for (b, d) in [(&first, d0), (&second, d1)] {
        assert!(
            b.before - 1e-6 <= d && d <= b.after + 1e-6,
            "agent total {d} outside schedstat bracket [{}, {}]",
            b.before,
            b.after
        );
    }
    // Two loops sharing one CPU for 3 s wait about 3 s together (1-2 s each on an idle CPU;
    // more when CPU 0 carries other load too).
    assert!(agent_delta >= 1.0, "cpu delay grew by only {agent_delta} s");
    assert!(
        (agent_delta - kernel_delta).abs() <= 0.1 * kernel_delta,
        "agent +{agent_delta} s vs schedstat +{kernel_delta} s"
    );
    // No disk I/O here: the disk delay series exists and stays small.
    let disk = second.scrape.value(DISK_DELAY, id).unwrap();
    assert!((0.0..0.5).contains(&disk), "disk delay {disk}");
}

/// A directory on a real block device (direct I/O to tmpfs is refused or not I/O at all).
fn real_disk_dir() -> Option<PathBuf> {
    for dir in [std::env::temp_dir(), PathBuf::from("/var/tmp")] {
        let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: statfs writes into the zeroed struct we own; the path is NUL-terminated.
        let mut st: libc::statfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statfs(c.as_ptr(), &mut st) } == 0 && st.f_type != libc::TMPFS_MAGIC {
            return Some(dir);
        }
    }
    None
}

/// `delayacct_blkio_ticks` (field 42 of `/proc/<pid>/stat`) in seconds.
fn blkio_delay_seconds(pid: u32) -> f64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_comm = &stat[stat.rfind(')').unwrap() + 1..];
    // Fields after the comm start at field 3.
    let ticks: u64 = after_comm
        .split_whitespace()
        .nth(42 - 3)
        .unwrap()
        .parse()
        .unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks as f64 / hz
}

#[test]
fn direct_io_writer_has_disk_delay() {
    let test = "direct_io_writer_has_disk_delay";
    if !privileged(test) {
        return;
    }
    let _serial = serial();
    let Some(disk_dir) = real_disk_dir() else {
        skip(
            test,
            "no directory on a real disk (temp dir and /var/tmp are tmpfs)",
        );
        return;
    };
    let _restore = SysctlRestore::save();
    let tmp = tempfile::tempdir_in(disk_dir).unwrap();
    let path = format!(
        "/system.slice/sonde-diskdelay-{}.service",
        std::process::id()
    );
    let mut cg = TestCgroup::create(&path).unwrap();
    let agent = Agent::start(&["--min-container-age", "0s", "--enable-delay-accounting"]);
    assert_eq!(
        delayacct(),
        "1",
        "--enable-delay-accounting did not turn it on"
    );
    // 200 MiB in 4 KiB direct writes: each waits for the device, and the writer lives for
    // seconds (a 1 MiB-block dd finishes before the 1 s /proc scan can see it). It is killed
    // as soon as the agent shows a delay.
    let dd = Command::new("dd")
        .args([
            "if=/dev/zero".to_owned(),
            format!("of={}", tmp.path().join("direct.bin").display()),
            "bs=4k".to_owned(),
            "count=51200".to_owned(),
            "oflag=direct".to_owned(),
            "status=none".to_owned(),
        ])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let spawned = std::time::Instant::now();
    let dd_pid = dd.id();
    cg.add_pid(dd_pid).unwrap();
    cg.own(dd);
    let id: &[(&str, &str)] = &[("container_id", &path)];
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let (b, reported) = loop {
        let b = bracketed(&agent, || blkio_delay_seconds(dd_pid));
        if let Some(v) = b.scrape.value(DISK_DELAY, id)
            && v > 0.0
        {
            break (b, v);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no disk delay for the direct-I/O writer\n{}\n{}",
            b.scrape.text,
            agent.log_text()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    cg.kill_children();
    // SAFETY: sysconf has no preconditions.
    let tick = 1.0 / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    println!(
        "disk delay: agent {reported:.4} s; /proc/{dd_pid}/stat blkio [{:.2}, {:.2}] s",
        b.before, b.after
    );
    // Seen on 6.18: a task's first I/O wait sometimes ends without having started
    // (blkio_start still 0), so the kernel's blkio total jumps by about the uptime, in taskstats
    // and in /proc alike. The agent drops such a jump (counted in
    // sonde_taskstats_implausible_total) and keeps the real waits before and after it.
    let age = spawned.elapsed().as_secs_f64();
    let dropped = b
        .scrape
        .value("sonde_taskstats_implausible_total", &[])
        .unwrap_or(0.0);
    assert!(
        reported <= age + 1.0,
        "disk delay {reported} s exceeds the writer's age {age} s"
    );
    if dropped > 0.0 {
        println!("note: {dropped} impossible disk-delay jump(s) dropped by the agent");
        assert!(
            reported > 0.0 && reported <= b.after + tick + 1e-6,
            "agent {reported} s above the /proc blkio total {} s",
            b.after
        );
    } else {
        // The kernel's field is the same total truncated to clock ticks.
        assert!(
            b.before - 1e-6 <= reported && reported <= b.after + tick + 1e-6,
            "agent {reported} s outside /proc blkio bracket [{}, {}] s",
            b.before,
            b.after + tick
        );
    }
    assert!(b.scrape.value(CPU_DELAY, id).is_some());
    assert_eq!(
        b.scrape
            .value("sonde_subsystem_up", &[("subsystem", "delayacct")]),
        Some(1.0)
    );
}

#[test]
fn delayacct_off_is_reported_and_the_flag_turns_it_on() {
    let test = "delayacct_off_is_reported_and_the_flag_turns_it_on";
    if !privileged(test) {
        return;
    }
    let _serial = serial();
    let _restore = SysctlRestore::save();
    if !set_delayacct(test, "0") {
        return;
    }
    let up: &[(&str, &str)] = &[("subsystem", "delayacct")];
    {
        let agent = Agent::start(&[]);
        let s = agent.scrape();
        assert_eq!(s.value("sonde_subsystem_up", up), Some(0.0), "{}", s.text);
        let log = agent.log_text();
        assert!(log.contains("task_delayacct"), "{log}");
        assert_eq!(
            delayacct(),
            "0",
            "the agent changed the sysctl without the flag"
        );
    }
    {
        let agent = Agent::start(&["--enable-delay-accounting"]);
        assert_eq!(delayacct(), "1");
        let s = agent.scrape();
        assert_eq!(s.value("sonde_subsystem_up", up), Some(1.0), "{}", s.text);
        assert!(agent.log_text().contains("Turned on kernel.task_delayacct"));
    }
    {
        // Already on: up without the flag, and nothing to turn on.
        let agent = Agent::start(&[]);
        let s = agent.scrape();
        assert_eq!(s.value("sonde_subsystem_up", up), Some(1.0), "{}", s.text);
        assert!(!agent.log_text().contains("Turned on"));
    }
}
