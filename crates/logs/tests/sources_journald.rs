//! journald: routing (pure), following real journal files written by systemd-journal-remote
//! (no daemon needed), and a live systemd-journald receiving messages from a process placed in
//! a test unit's cgroup (root).
//!
//! Needs `systemd-journal-remote` (Debian package of that name) and `systemd-journald`
//! (package `systemd`); without them, or without root for the live test, the tests print why
//! and skip, unless SONDE_REQUIRE_PRIVILEGED=1, when they fail.
#![allow(clippy::unwrap_used)]

use sonde_logs::source::journald::{JournalFollower, Routes};
use sonde_logs::{Level, LogManager, LogManagerConfig, pattern_hash};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Skips `test` for `reason`, or fails it when SONDE_REQUIRE_PRIVILEGED=1 (sonde-testsupport's
/// policy).
fn skip(test: &str, reason: &str) {
    sonde_testsupport::skip(test, sonde_testsupport::Needs::Privileged, reason);
}

fn find_bin(names: &[&str]) -> Option<PathBuf> {
    names.iter().map(PathBuf::from).find(|p| p.exists())
}

fn journal_remote() -> Option<PathBuf> {
    find_bin(&[
        "/lib/systemd/systemd-journal-remote",
        "/usr/lib/systemd/systemd-journal-remote",
    ])
}

fn now_usec() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// Appends entries (export format) to the journal file `out` (created if absent).
fn write_journal(bin: &Path, out: &Path, entries: &[Vec<(&str, String)>]) {
    let mut export = String::new();
    let t = now_usec();
    for (i, e) in entries.iter().enumerate() {
        export += &format!("__REALTIME_TIMESTAMP={}\n", t + i as u64);
        export += &format!(
            "__MONOTONIC_TIMESTAMP={}\n",
            1_000_000 + t % 1_000_000 + i as u64
        );
        export += "_BOOT_ID=a34d54f7a94a4cdfa7ecebf5fd0fc4e2\n";
        for (k, v) in e {
            export += &format!("{k}={v}\n");
        }
        export += "\n";
    }
    let mut child = Command::new(bin)
        .arg(format!("--output={}", out.display()))
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(export.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
}

fn entry(
    msg: &str,
    prio: u8,
    unit: Option<&str>,
    cgroup: Option<&str>,
) -> Vec<(&'static str, String)> {
    let mut e = vec![("MESSAGE", msg.to_owned()), ("PRIORITY", prio.to_string())];
    if let Some(u) = unit {
        e.push(("_SYSTEMD_UNIT", u.to_owned()));
    }
    if let Some(c) = cgroup {
        e.push(("_SYSTEMD_CGROUP", c.to_owned()));
    }
    e
}

type Got = Vec<(String, Option<u8>, Option<String>, Option<String>)>;

/// Polls the follower until `n` entries came (or a deadline: then fails), then once more.
fn follow(f: &mut JournalFollower, n: usize) -> Got {
    let mut got = Got::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let s = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
    loop {
        let r = f.poll(&mut |e| {
            got.push((
                String::from_utf8_lossy(e.message).into_owned(),
                e.priority,
                s(e.unit),
                s(e.cgroup),
            ))
        });
        if let Err(e) = r {
            println!("poll: {e}");
        }
        if got.len() >= n {
            f.poll(&mut |e| panic!("unexpected entry {:?}", String::from_utf8_lossy(e.message)))
                .unwrap();
            return got;
        }
        assert!(Instant::now() < deadline, "have {got:?}, want {n}");
    }
}

#[test]
fn routes_by_unit_then_most_specific_cgroup() {
    let mut r = Routes::default();
    r.set(
        "nginx",
        Some("nginx.service".into()),
        Some("/system.slice/nginx.service".into()),
    );
    r.set("app", None, Some("/kubepods/burstable/pod1/".into()));
    r.set("ctr", None, Some("/kubepods/burstable/pod1/abc".into()));
    fn route_of(r: &Routes, u: Option<&str>, c: Option<&str>) -> Option<String> {
        r.route(u.map(str::as_bytes), c.map(str::as_bytes))
            .map(str::to_owned)
    }
    macro_rules! route {
        ($u:expr, $c:expr) => {
            route_of(&r, $u, $c)
        };
    }
    assert_eq!(
        route!(Some("nginx.service"), None).as_deref(),
        Some("nginx")
    );
    assert_eq!(
        route!(None, Some("/system.slice/nginx.service")).as_deref(),
        Some("nginx")
    );
    assert_eq!(
        route!(None, Some("/system.slice/nginx.service/worker")).as_deref(),
        Some("nginx")
    );
    assert_eq!(
        route!(None, Some("/system.slice/nginx.service2")),
        None,
        "component boundary"
    );
    assert_eq!(
        route!(None, Some("/kubepods/burstable/pod1/abc/x")).as_deref(),
        Some("ctr")
    );
    assert_eq!(
        route!(None, Some("/kubepods/burstable/pod1/def")).as_deref(),
        Some("app")
    );
    assert_eq!(
        route!(None, Some("/kubepods/burstable/pod1")).as_deref(),
        Some("app")
    );
    assert_eq!(route!(Some("other.service"), Some("/user.slice")), None);
    assert_eq!(route!(None, None), None);
    // The unit wins over the cgroup.
    assert_eq!(
        route!(Some("nginx.service"), Some("/kubepods/burstable/pod1")).as_deref(),
        Some("nginx")
    );
    // Replacing and removing.
    r.set("nginx", Some("nginx2.service".into()), None);
    assert_eq!(route!(Some("nginx.service"), None), None);
    assert_eq!(route!(None, Some("/system.slice/nginx.service")), None);
    assert_eq!(
        route!(Some("nginx2.service"), None).as_deref(),
        Some("nginx")
    );
    r.remove("ctr");
    assert_eq!(
        route!(None, Some("/kubepods/burstable/pod1/abc/x")).as_deref(),
        Some("app")
    );
    r.set("app", None, None);
    assert_eq!(route!(None, Some("/kubepods/burstable/pod1/abc/x")), None);
    assert!(r.contains("nginx") && !r.contains("app"));
}

#[test]
fn follows_journal_files_from_the_end_appends_and_new_files() {
    let Some(bin) = journal_remote() else {
        return skip(
            "follows_journal_files_from_the_end_appends_and_new_files",
            "systemd-journal-remote not installed (apt-get install systemd-journal-remote)",
        );
    };
    let dir = tempfile::tempdir().unwrap();
    let mid = dir.path().join("3d1219c7c4c5404aaa1f6d2a48adfda4");
    std::fs::create_dir(&mid).unwrap();
    let a = mid.join("system.journal");
    write_journal(&bin, &a, &[entry("history", 3, Some("foo.service"), None)]);
    let mut f =
        JournalFollower::with_roots(vec![dir.path().to_path_buf()], Duration::from_millis(100));
    assert!(follow(&mut f, 0).is_empty(), "starts at the end");
    assert!(f.is_open());

    let new: Vec<_> = (0..4)
        .map(|i| {
            entry(
                &format!("appended {i}"),
                i as u8 + 2,
                Some("foo.service"),
                Some("/system.slice/foo.service"),
            )
        })
        .collect();
    write_journal(&bin, &a, &new);
    let got = follow(&mut f, 4);
    let want: Got = (0..4)
        .map(|i| {
            (
                format!("appended {i}"),
                Some(i as u8 + 2),
                Some("foo.service".to_owned()),
                Some("/system.slice/foo.service".to_owned()),
            )
        })
        .collect();
    assert_eq!(got, want);

    // A new journal file (journald rotates by starting new files).
    let b = mid.join("system@0000-0001.journal");
    write_journal(
        &bin,
        &b,
        &[
            entry("in new file", 4, None, Some("/a")),
            entry("second", 6, None, None),
        ],
    );
    let got = follow(&mut f, 2);
    assert_eq!(
        got.iter().map(|g| g.0.as_str()).collect::<Vec<_>>(),
        vec!["in new file", "second"]
    );
}

#[test]
fn a_journal_appearing_later_is_read_from_the_follower_start() {
    let Some(bin) = journal_remote() else {
        return skip(
            "a_journal_appearing_later_is_read_from_the_follower_start",
            "systemd-journal-remote not installed (apt-get install systemd-journal-remote)",
        );
    };
    let dir = tempfile::tempdir().unwrap();
    let mut f =
        JournalFollower::with_roots(vec![dir.path().join("journal")], Duration::from_millis(100));
    assert!(f.poll(&mut |_| {}).is_err(), "no journal yet");
    std::fs::create_dir(dir.path().join("journal")).unwrap();
    write_journal(
        &bin,
        &dir.path().join("journal/system.journal"),
        &[entry("early", 3, None, None)],
    );
    let got = follow(&mut f, 1);
    assert_eq!(got[0].0, "early");
}

#[test]
fn manager_routes_journal_entries_and_levels_from_priority() {
    let Some(bin) = journal_remote() else {
        return skip(
            "manager_routes_journal_entries_and_levels_from_priority",
            "systemd-journal-remote not installed (apt-get install systemd-journal-remote)",
        );
    };
    let root = tempfile::tempdir().unwrap();
    let mid = root
        .path()
        .join("var/log/journal/3d1219c7c4c5404aaa1f6d2a48adfda4");
    std::fs::create_dir_all(&mid).unwrap();
    let file = mid.join("system.journal");
    write_journal(
        &bin,
        &file,
        &[entry("ERROR history", 3, Some("web.service"), None)],
    );
    let m = LogManager::start(LogManagerConfig {
        host_root: root.path().to_path_buf(),
        poll_interval: Duration::from_millis(100),
        multiline_idle: Duration::from_millis(200),
        ..LogManagerConfig::default()
    });
    m.set_journald_route("web", Some("web.service".into()), None);
    m.set_journald_route("pod", None, Some("/kubepods/pod1".into()));
    // Wait until the reader follows the journal (from its end): a probe entry gets read.
    let deadline = Instant::now() + Duration::from_secs(20);
    while m.stats().journal_entries == 0 {
        assert!(
            Instant::now() < deadline,
            "journal reader not following: {:?}",
            m.stats()
        );
        write_journal(
            &bin,
            &file,
            &[entry("probe", 6, Some("none.service"), None)],
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(m.stats().journal_open);
    let mut es = Vec::new();
    for i in 0..7 {
        es.push(entry(
            &format!("connection {i} refused by upstream"),
            3,
            Some("web.service"),
            Some("/system.slice/web.service"),
        ));
    }
    for i in 0..5 {
        // No PRIORITY: detected from the text.
        es.push(vec![
            ("MESSAGE", format!("WARN retry {i}")),
            ("_SYSTEMD_UNIT", "web.service".into()),
        ]);
    }
    es.push(entry("started", 6, Some("web.service"), None));
    for i in 0..4 {
        es.push(entry(
            &format!("OOM in container {i}"),
            2,
            None,
            Some("/kubepods/pod1/ctr1"),
        ));
    }
    es.push(entry(
        "elsewhere",
        3,
        Some("other.service"),
        Some("/system.slice/other.service"),
    ));
    write_journal(&bin, &file, &es);

    let series = |key: &str| {
        let mut s = BTreeMap::new();
        m.for_each(key, |src, l, h, sample, n| {
            assert_eq!(src, "journald");
            s.insert((l, h), (sample.to_owned(), n));
        });
        s
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while series("web").values().map(|v| v.1).sum::<u64>() < 13
        || series("pod").values().map(|v| v.1).sum::<u64>() < 4
    {
        assert!(
            Instant::now() < deadline,
            "{:?} {:?} {:?}",
            series("web"),
            series("pod"),
            m.stats()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let mut want = BTreeMap::new();
    let c0 = "connection 0 refused by upstream";
    want.insert((Level::Error, Some(pattern_hash(c0))), (c0.to_owned(), 7));
    want.insert(
        (Level::Warning, Some(pattern_hash("WARN retry 0"))),
        ("WARN retry 0".to_owned(), 5),
    );
    want.insert((Level::Info, None), (String::new(), 1));
    assert_eq!(series("web"), want);
    let mut want = BTreeMap::new();
    let o0 = "OOM in container 0";
    want.insert(
        (Level::Critical, Some(pattern_hash(o0))),
        (o0.to_owned(), 4),
    );
    assert_eq!(series("pod"), want);
}

/// A live systemd-journald (started here if none runs) receiving messages from processes put in
/// test units' cgroups: journald derives `_SYSTEMD_CGROUP` and `_SYSTEMD_UNIT` from the
/// sender's cgroup even without systemd as PID 1.
#[test]
fn live_journald_messages_routed_by_unit_and_cgroup() {
    let test = "live_journald_messages_routed_by_unit_and_cgroup";
    if !sonde_testsupport::require_root(test, "runs journald, creates cgroups") {
        return;
    }
    let Some(journald) = find_bin(&[
        "/lib/systemd/systemd-journald",
        "/usr/lib/systemd/systemd-journald",
    ]) else {
        return skip(
            test,
            "systemd-journald not installed (apt-get install systemd)",
        );
    };
    let Some(cat) = find_bin(&["/usr/bin/systemd-cat", "/bin/systemd-cat"]) else {
        return skip(test, "systemd-cat not installed");
    };
    // Start journald unless one is running (its socket answers).
    let mut started = None;
    if std::os::unix::net::UnixDatagram::unbound()
        .and_then(|s| s.connect("/run/systemd/journal/socket"))
        .is_err()
    {
        std::fs::create_dir_all("/run/systemd/journal").unwrap();
        started = Some(
            Command::new(&journald)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while !Path::new("/run/systemd/journal/stdout").exists()
            || !Path::new("/run/log/journal").is_dir()
        {
            assert!(Instant::now() < deadline, "journald did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    let id = std::process::id();
    let unit_a = format!("sonde-test-a-{id}.service");
    let unit_b = format!("sonde-test-b-{id}.service");
    // Every hierarchy journald might read the sender's cgroup from.
    let hierarchies: Vec<PathBuf> = [
        "/sys/fs/cgroup/systemd",
        "/sys/fs/cgroup/unified",
        "/sys/fs/cgroup",
    ]
    .iter()
    .map(PathBuf::from)
    .filter(|h| h.join("cgroup.procs").exists())
    .collect();
    let cg_a = format!("/system.slice/{unit_a}");
    let cg_b = format!("/system.slice/{unit_b}/worker");
    let mut dirs = Vec::new();
    for h in &hierarchies {
        for cg in [&cg_a, &cg_b] {
            let d = h.join(cg.trim_start_matches('/'));
            std::fs::create_dir_all(&d).unwrap();
            dirs.push(d);
        }
    }

    let m = LogManager::start(LogManagerConfig {
        poll_interval: Duration::from_millis(100),
        multiline_idle: Duration::from_millis(200),
        ..LogManagerConfig::default()
    });
    m.set_journald_route("a", Some(unit_a.clone()), None);
    m.set_journald_route("b", None, Some(format!("/system.slice/{unit_b}")));
    let deadline = Instant::now() + Duration::from_secs(20);
    while m.stats().journal_entries == 0 {
        // Any entry shows the reader is open and following.
        let _ = Command::new("logger")
            .args(["--journald"])
            .stdin(Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                c.stdin
                    .take()
                    .unwrap()
                    .write_all(b"MESSAGE=sonde probe\n")?;
                c.wait()
            });
        assert!(
            Instant::now() < deadline,
            "journal reader not following: {:?}",
            m.stats()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // The sender joins the unit's cgroup in every hierarchy, then logs through systemd-cat
    // (stream transport; `<N>` prefixes set each line's priority) and stays alive a moment so
    // journald can read its cgroup.
    let run_in = |cg: &str, ident: &str, script: &str| {
        let join: String = hierarchies
            .iter()
            .map(|h| {
                format!(
                    "echo $$ > {}/cgroup.procs; ",
                    h.join(cg.trim_start_matches('/')).display()
                )
            })
            .collect();
        let st = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "{join} exec {} -t {ident} --level-prefix=true sh -c '{script}; sleep 1'",
                cat.display()
            ))
            .status()
            .unwrap();
        assert!(st.success());
    };
    run_in(
        &cg_a,
        "sonde-test-a",
        "for i in $(seq 1 30); do echo \"<3>db connection $i lost\"; done; \
         for i in $(seq 1 20); do echo \"<4>disk usage above threshold\"; done; \
         for i in $(seq 1 10); do echo \"<6>request $i served\"; done",
    );
    run_in(
        &cg_b,
        "sonde-test-b",
        "for i in $(seq 1 15); do echo \"<2>worker $i crashed\"; done",
    );

    let series = |key: &str| {
        let mut s = BTreeMap::new();
        m.for_each(key, |src, l, h, _, n| {
            assert_eq!(src, "journald");
            *s.entry((l, h)).or_insert(0u64) += n;
        });
        s
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while series("a").values().sum::<u64>() < 60 || series("b").values().sum::<u64>() < 15 {
        assert!(
            Instant::now() < deadline,
            "{:?} {:?} {:?}",
            series("a"),
            series("b"),
            m.stats()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let mut want = BTreeMap::new();
    want.insert(
        (Level::Error, Some(pattern_hash("db connection 1 lost"))),
        30,
    );
    want.insert(
        (
            Level::Warning,
            Some(pattern_hash("disk usage above threshold")),
        ),
        20,
    );
    want.insert((Level::Info, None), 10);
    assert_eq!(series("a"), want);
    let mut want = BTreeMap::new();
    want.insert(
        (Level::Critical, Some(pattern_hash("worker 1 crashed"))),
        15,
    );
    assert_eq!(series("b"), want);

    drop(m);
    for d in dirs.iter().rev() {
        let _ = std::fs::remove_dir(d);
        if let Some(p) = d.parent().filter(|p| p.ends_with(&unit_b)) {
            let _ = std::fs::remove_dir(p);
        }
    }
    if let Some(mut c) = started {
        let _ = c.kill();
        let _ = c.wait();
    }
}
