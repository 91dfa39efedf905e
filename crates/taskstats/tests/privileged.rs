//! Privileged tests against the real kernel: root, the host network namespace, and the
//! `kernel.task_delayacct` sysctl (saved and restored around each test that changes it).
//! They skip with a reason when not root, and fail instead when SONDE_REQUIRE_PRIVILEGED=1.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sonde_taskstats::{
    DelayAccumulator, DelayReader, Error, TaskstatsClient, delayacct_enabled, enable_delayacct,
    process_start_time, schedstat_cpu_delay_ns,
};

/// The sysctl is global: tests that touch it (or depend on it) run one at a time.
static SYSCTL: Mutex<()> = Mutex::new(());

fn proc() -> &'static Path {
    Path::new("/proc")
}

/// True when the test may run; false (after printing why) when it must skip.
fn privileged(test: &str) -> bool {
    sonde_testsupport::require_root(test, "taskstats netlink and kernel.task_delayacct")
}

/// Sets kernel.task_delayacct and puts the old value back on drop.
struct DelayacctGuard {
    old: Option<String>,
}

impl DelayacctGuard {
    fn set(on: bool) -> DelayacctGuard {
        let path = "/proc/sys/kernel/task_delayacct";
        let old = std::fs::read_to_string(path).ok();
        assert!(old.is_some(), "this kernel has no {path}");
        std::fs::write(path, if on { "1\n" } else { "0\n" }).unwrap();
        DelayacctGuard { old }
    }
}

impl Drop for DelayacctGuard {
    fn drop(&mut self) {
        if let Some(old) = &self.old {
            let _ = std::fs::write("/proc/sys/kernel/task_delayacct", old);
        }
    }
}

/// Kills and reaps the child on drop, so a failing assert leaves no busy loop behind.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn busy_loop_on_cpu0() -> Reaped {
    let child = Command::new("sh")
        .args(["-c", "while :; do :; done"])
        .spawn()
        .unwrap();
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET/sched_setaffinity get valid pointers/sizes.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        let rc = libc::sched_setaffinity(
            child.id() as libc::pid_t,
            std::mem::size_of::<libc::cpu_set_t>(),
            &set,
        );
        assert_eq!(
            rc,
            0,
            "sched_setaffinity: {}",
            std::io::Error::last_os_error()
        );
    }
    Reaped(child)
}

#[test]
fn cpu_delay_of_two_pinned_busy_loops() {
    if !privileged("cpu_delay_of_two_pinned_busy_loops") {
        return;
    }
    let _lock = SYSCTL.lock().unwrap_or_else(|e| e.into_inner());
    let _sysctl = DelayacctGuard::set(true);
    let mut client = TaskstatsClient::new().unwrap();
    let loops = [busy_loop_on_cpu0(), busy_loop_on_cpu0()];
    let pids: Vec<u32> = loops.iter().map(|l| l.0.id()).collect();
    let starts: Vec<u64> = pids
        .iter()
        .map(|&p| process_start_time(proc(), p).unwrap().unwrap())
        .collect();

    let container = "sonde-test".to_string();
    let mut acc = DelayAccumulator::new();
    // One reading of both loops: container total, schedstat wait sum, per-loop run time.
    let mut read_all = |acc: &mut DelayAccumulator<String>| -> (f64, u64, Vec<u64>) {
        let mut schedstat_sum = 0;
        let mut run = Vec::new();
        for (&pid, &start) in pids.iter().zip(&starts) {
            let delays = client.query_tgid(pid).unwrap().unwrap();
            // Read right after the query so both sources see the same moment.
            schedstat_sum += schedstat_cpu_delay_ns(proc(), pid).unwrap().unwrap();
            run.push(run_time_ns(pid));
            acc.observe(&container, pid, start, delays);
        }
        acc.sweep();
        let total = acc.totals(&container).unwrap().cpu_delay_seconds;
        (total, schedstat_sum, run)
    };
    let t0 = Instant::now();
    let (total0, sched0, run0) = read_all(&mut acc);
    std::thread::sleep(Duration::from_secs(3));
    let (total1, sched1, run1) = read_all(&mut acc);
    let wall = t0.elapsed().as_secs_f64();

    let growth = total1 - total0;
    let sched_growth = (sched1 - sched0) as f64 / 1e9;
    let ran: Vec<f64> = run1
        .iter()
        .zip(&run0)
        .map(|(a, b)| (a - b) as f64 / 1e9)
        .collect();
    eprintln!(
        "{wall:.3} s: container cpu delay grew {growth:.3} s, schedstat waits {sched_growth:.3} \
         s, loops ran {ran:.3?} s"
    );
    // Both loops are always runnable on one CPU, so together they wait at least the wall
    // time (each waits while the other runs, and both wait while anything else runs): about
    // 1.5 s each, 3 s in all, on an idle CPU 0; more when other work shares it. This bound
    // holds whatever the machine's load.
    assert!(
        growth >= 0.9 * wall,
        "container delay grew {growth:.3} s in {wall:.3} s"
    );
    // Waiting plus running covers the wall time of an always-runnable task (sum of both).
    let covered = growth + ran.iter().sum::<f64>();
    assert!(
        (covered - 2.0 * wall).abs() < 0.1 * 2.0 * wall,
        "wait {growth:.3} + run {ran:?} vs 2 x {wall:.3} s"
    );
    let diff = (growth - sched_growth).abs() / sched_growth;
    assert!(
        diff < 0.10,
        "taskstats {growth:.3} s vs schedstat {sched_growth:.3} s"
    );
}

/// Field 1 of /proc/<pid>/schedstat: time on a CPU (the loops are single-threaded).
fn run_time_ns(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/schedstat")).unwrap();
    text.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn disk_delay_of_a_direct_io_writer() {
    if !privileged("disk_delay_of_a_direct_io_writer") {
        return;
    }
    let _lock = SYSCTL.lock().unwrap_or_else(|e| e.into_inner());
    let _sysctl = DelayacctGuard::set(true);
    let mut client = TaskstatsClient::new().unwrap();
    // A file on a real disk (the target dir), not tmpfs, so O_DIRECT reaches the block layer.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let file = dir.path().join("direct.bin");
    let dd = Command::new("dd")
        .arg("if=/dev/zero")
        .arg(format!("of={}", file.display()))
        .args(["bs=64k", "count=6400", "oflag=direct"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut dd = Reaped(dd);
    let pid = dd.0.id();
    let start = process_start_time(proc(), pid).unwrap().unwrap();
    let container = "io".to_string();
    let mut acc = DelayAccumulator::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    // Poll while it writes: the last reading before it exits is what the container keeps.
    while dd.0.try_wait().unwrap().is_none() && Instant::now() < deadline {
        if let Some(delays) = client.query_tgid(pid).unwrap() {
            acc.observe(&container, pid, start, delays);
        }
        acc.sweep();
        std::thread::sleep(Duration::from_millis(100));
    }
    let totals = acc.totals(&container).expect("dd was never observed");
    eprintln!("dd disk delay {:.3} s", totals.disk_delay_seconds);
    assert!(totals.disk_delay_seconds > 0.0, "{totals:?}");
}

#[test]
fn delayacct_off_is_detected_and_enable_turns_it_on() {
    if !privileged("delayacct_off_is_detected_and_enable_turns_it_on") {
        return;
    }
    let _lock = SYSCTL.lock().unwrap_or_else(|e| e.into_inner());
    let _sysctl = DelayacctGuard::set(false);
    assert_eq!(delayacct_enabled(proc()).unwrap(), Some(false));

    // Off: CPU delay is still reported (taskstats on 6.x, else schedstat), never zero for a
    // process that waited.
    let loops = [busy_loop_on_cpu0(), busy_loop_on_cpu0()];
    std::thread::sleep(Duration::from_millis(800));
    let mut reader = DelayReader::new(proc(), Some(TaskstatsClient::new().unwrap()), false);
    let pid = loops[0].0.id();
    let delays = reader.read(pid).unwrap().unwrap();
    assert!(delays.cpu_delay_ns > 0, "{delays:?}");
    let mut no_socket = DelayReader::new(proc(), None, false);
    let fallback = no_socket.read(pid).unwrap().unwrap();
    assert!(fallback.cpu_delay_ns > 0, "{fallback:?}");
    drop(loops);

    enable_delayacct(proc()).unwrap();
    assert_eq!(delayacct_enabled(proc()).unwrap(), Some(true));
}

#[test]
fn gone_and_live_pids() {
    if !privileged("gone_and_live_pids") {
        return;
    }
    let mut client = TaskstatsClient::new().unwrap();
    assert_ne!(client.family_id(), 0);
    let me = client.query_tgid(std::process::id()).unwrap().unwrap();
    assert!(me.version >= 1, "{me:?}");
    // A reaped child's pid is gone (until reused, which needs pid_max wraps).
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    assert_eq!(client.query_tgid(pid).unwrap(), None);
    // Queries keep working after an ESRCH (sequence numbers stay in step).
    assert!(client.query_tgid(1).unwrap().is_some());
    for _ in 0..100 {
        assert!(client.query_tgid(std::process::id()).unwrap().is_some());
    }
}

#[test]
fn socket_opened_in_the_host_netns_from_another_one() {
    if !privileged("socket_opened_in_the_host_netns_from_another_one") {
        return;
    }
    // From a fresh network namespace (this thread only): plain `new` is kernel-dependent
    // (older kernels register TASKSTATS only in the initial namespace: FamilyNotFound; 6.18
    // resolves it anywhere); `new_in_netns` back into the original namespace must work either
    // way. The agent passes /proc/1/ns/net; here pid 1 is a sandbox whose namespace files are
    // not ours to open, so the original namespace is named by our main thread's file.
    let me = std::process::id();
    let original = format!("/proc/{me}/task/{me}/ns/net");
    let outcome = std::thread::spawn(move || {
        // SAFETY: unshare affects only this thread's network namespace.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "unshare: {}", std::io::Error::last_os_error());
        let inside = TaskstatsClient::new().map(|mut c| c.query_tgid(std::process::id()));
        let host = TaskstatsClient::new_in_netns(Path::new(&original));
        (inside, host)
    })
    .join()
    .unwrap();
    eprintln!("TASKSTATS from a non-host netns: {:?}", outcome.0);
    match outcome.0 {
        Err(Error::FamilyNotFound) => {}
        Ok(Ok(Some(_))) => {}
        other => panic!("unexpected outcome in a fresh netns: {other:?}"),
    }
    let mut host = outcome.1.unwrap();
    assert!(host.query_tgid(std::process::id()).unwrap().is_some());
}
