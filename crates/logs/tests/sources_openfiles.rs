//! open_log_files: on a fake /proc tree, and on a real process holding files open (root, to
//! write under /var/log).
#![allow(clippy::unwrap_used)]

use sonde_logs::open_log_files;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn fd(proc_root: &Path, pid: u32, n: u32, target: &str, flags: &str) {
    let base = proc_root.join(pid.to_string());
    std::fs::create_dir_all(base.join("fd")).unwrap();
    std::fs::create_dir_all(base.join("fdinfo")).unwrap();
    symlink(target, base.join("fd").join(n.to_string())).unwrap();
    std::fs::write(
        base.join("fdinfo").join(n.to_string()),
        format!("pos:\t0\nflags:\t{flags}\nmnt_id:\t25\nino:\t1234\n"),
    )
    .unwrap();
}

#[test]
fn fake_proc_tree() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    fd(p, 42, 0, "/dev/null", "0100002");
    fd(p, 42, 1, "/var/log/nginx/access.log", "0102001"); // O_WRONLY|O_APPEND
    fd(p, 42, 2, "/var/log/nginx/error.log", "01"); // O_WRONLY
    fd(p, 42, 3, "/var/log/nginx/error.log", "0102001"); // the same file twice
    fd(p, 42, 4, "/var/log/app/read-only.log", "0100000"); // O_RDONLY
    fd(p, 42, 5, "/var/log/app/rw.db", "0100002"); // O_RDWR: not a log
    fd(p, 42, 6, "/var/log/app/a-plus.log", "0102002"); // O_RDWR|O_APPEND: fopen "a+"
    fd(p, 42, 7, "/var/log/pods/ns_p_u/c/0.log", "0102001");
    fd(p, 42, 8, "/var/log/journal/m/system.journal", "0100002");
    fd(p, 42, 9, "/var/log/old.log (deleted)", "0102001");
    fd(p, 42, 10, "/var/log/wtmp", "0102001");
    fd(p, 42, 11, "/tmp/x.log", "0102001");
    fd(p, 42, 12, "socket:[123]", "02");
    // A descriptor whose fdinfo vanished (closed while scanning): skipped.
    symlink("/var/log/gone.log", p.join("42/fd/13")).unwrap();
    let got = open_log_files(p, 42).unwrap();
    assert_eq!(
        got,
        vec![
            PathBuf::from("/var/log/app/a-plus.log"),
            PathBuf::from("/var/log/nginx/access.log"),
            PathBuf::from("/var/log/nginx/error.log"),
        ]
    );
    assert!(open_log_files(p, 43).is_err(), "no such process");
}

#[test]
fn real_process() {
    if !sonde_testsupport::require_root("real_process", "writes under /var/log") {
        return;
    }
    let dir = PathBuf::from(format!("/var/log/sonde-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let w = dir.join("written.log");
    let r = dir.join("read.log");
    std::fs::write(&r, "x\n").unwrap();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "exec 3>>{} 4<{} 5>/tmp/sonde-not-var-log-{}; read x",
            w.display(),
            r.display(),
            std::process::id()
        ))
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let got = loop {
        let got = open_log_files(Path::new("/proc"), pid).unwrap();
        if !got.is_empty() || std::time::Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    drop(child.stdin.take());
    child.wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(format!("/tmp/sonde-not-var-log-{}", std::process::id()));
    assert_eq!(got, vec![w]);
}
