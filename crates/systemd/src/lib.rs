//! sonde-systemd: what `container_info{systemd_type, systemd_triggered_by}` says about a systemd
//! service, so a backend can tell timers and oneshot jobs from long-running services.
//!
//! coroot-node-agent asks systemd over D-Bus (`Type` and the first of `TriggeredBy`). sonde reads
//! the unit files instead, under the host's root: it works when the agent cannot reach the
//! host's bus (no `/run/systemd/private` in its mount namespace, systemd not PID 1 here) and
//! needs no D-Bus client. What the files say is what systemd loaded unless a unit changed since
//! the last `daemon-reload` (docs/systemd.md).
//!
//! Pure parsing ([`service_type`], [`trigger_target`]) apart from the file lookups of
//! [`UnitFiles`].

use std::path::{Path, PathBuf};

/// Unit directories in systemd's order of precedence (systemd.unit(5), system manager).
const UNIT_DIRS: &[&str] = &[
    "etc/systemd/system",
    "run/systemd/system",
    "usr/local/lib/systemd/system",
    "usr/lib/systemd/system",
    "lib/systemd/system",
];

/// Trigger unit files looked at per lookup, at most (a bound on a pathological host).
const MAX_TRIGGER_FILES: usize = 4096;
/// Unit files larger than this are not read (systemd's own limit is far smaller in practice).
const MAX_UNIT_FILE: u64 = 256 * 1024;

/// What systemd knows about one service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitInfo {
    /// `Type=` of the service ("simple", "oneshot", "forking", "notify", "dbus", ...).
    pub unit_type: String,
    /// The first (by name) timer, socket or path unit that starts it, e.g. "logrotate.timer".
    pub triggered_by: String,
}

/// The service unit of a cgroup path: the last component ending in `.service`
/// (`/system.slice/nginx.service` -> `nginx.service`), escapes kept as unit files name them.
pub fn unit_of_cgroup(path: &str) -> Option<&str> {
    path.rsplit('/').find(|c| c.ends_with(".service"))
}

/// Unit files under a host root (normally `/`).
#[derive(Debug, Clone)]
pub struct UnitFiles {
    root: PathBuf,
}

impl UnitFiles {
    pub fn new(host_root: &Path) -> UnitFiles {
        UnitFiles {
            root: host_root.to_owned(),
        }
    }

    /// Type and trigger of `unit` ("foo.service", "getty@tty1.service"); None when no unit file
    /// defines it.
    pub fn info(&self, unit: &str) -> Option<UnitInfo> {
        let texts = self.unit_texts(unit)?;
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        Some(UnitInfo {
            unit_type: service_type(&refs),
            triggered_by: self.triggered_by(unit),
        })
    }

    /// The unit file and its drop-ins, in the order systemd applies them.
    fn unit_texts(&self, unit: &str) -> Option<Vec<String>> {
        // "getty@tty1.service" is defined by "getty@.service" unless an instance file exists.
        let template = unit.split_once('@').and_then(|(prefix, rest)| {
            rest.rsplit_once('.')
                .map(|(_, ext)| format!("{prefix}@.{ext}"))
        });
        let names: Vec<&str> = std::iter::once(unit).chain(template.as_deref()).collect();
        let main = names
            .iter()
            .flat_map(|n| UNIT_DIRS.iter().map(move |d| self.root.join(d).join(n)))
            .find(|p| p.is_file())?;
        let mut texts = vec![read_small(&main)?];
        // Drop-ins: `<name>.d/*.conf` of the template then the instance, from every directory;
        // a file name seen in a higher-precedence directory masks the same name below.
        let mut dropins: Vec<(String, PathBuf)> = Vec::new();
        for name in names.iter().rev() {
            for dir in UNIT_DIRS {
                let Ok(entries) = std::fs::read_dir(self.root.join(dir).join(format!("{name}.d")))
                else {
                    continue;
                };
                for e in entries.flatten() {
                    let file = e.file_name().to_string_lossy().into_owned();
                    if file.ends_with(".conf") && !dropins.iter().any(|(f, _)| *f == file) {
                        dropins.push((file, e.path()));
                    }
                }
            }
        }
        dropins.sort_by(|a, b| a.0.cmp(&b.0));
        texts.extend(dropins.iter().filter_map(|(_, p)| read_small(p)));
        Some(texts)
    }

    fn triggered_by(&self, unit: &str) -> String {
        // Instances of a socket's Accept=yes template ("echo@0-1.2.3.4:7.service") are
        // triggered by the socket that names the template.
        let template = unit.split_once('@').and_then(|(prefix, rest)| {
            rest.rsplit_once('.')
                .map(|(_, ext)| format!("{prefix}@.{ext}"))
        });
        let mut triggers: Vec<String> = Vec::new();
        let mut seen = 0usize;
        for dir in UNIT_DIRS {
            let Ok(entries) = std::fs::read_dir(self.root.join(dir)) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !(name.ends_with(".timer")
                    || name.ends_with(".socket")
                    || name.ends_with(".path"))
                    || triggers.contains(&name)
                {
                    continue;
                }
                seen += 1;
                if seen > MAX_TRIGGER_FILES {
                    break;
                }
                if let Some(text) = read_small(&e.path())
                    && let Some(target) = trigger_target(&name, &text)
                    && (target == unit || Some(&target) == template.as_ref())
                {
                    triggers.push(name);
                }
            }
        }
        triggers.sort();
        triggers.into_iter().next().unwrap_or_default()
    }
}

fn read_small(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    if meta.len() > MAX_UNIT_FILE {
        return None;
    }
    std::fs::read_to_string(path).ok()
}

/// Calls `f(section, key, value)` for every assignment of a unit file (comments, blank lines
/// and continuation lines skipped).
fn for_each_setting<'a>(text: &'a str, mut f: impl FnMut(&'a str, &'a str, &'a str)) {
    let mut section = "";
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s;
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            f(section, k.trim(), v.trim());
        }
    }
}

/// A service's type from its unit file and drop-ins (applied in order): the last `Type=`;
/// without one, "dbus" if `BusName=` is set, "simple" if `ExecStart=` is, else "oneshot"
/// (systemd.service(5)). An empty `Type=` resets it.
pub fn service_type(texts: &[&str]) -> String {
    let mut typ: Option<&str> = None;
    let mut bus_name = false;
    let mut exec_start = false;
    for text in texts {
        for_each_setting(text, |section, k, v| {
            if section != "Service" {
                return;
            }
            match k {
                "Type" => typ = (!v.is_empty()).then_some(v),
                "BusName" => bus_name = !v.is_empty(),
                "ExecStart" => exec_start = !v.is_empty(),
                _ => {}
            }
        });
    }
    match typ {
        Some(t) => t.to_owned(),
        None if bus_name => "dbus".to_owned(),
        None if exec_start => "simple".to_owned(),
        None => "oneshot".to_owned(),
    }
}

/// The unit a timer, socket or path unit starts: its `Unit=` (`Service=` for sockets), else the
/// service of the same name. Sockets with `Accept=yes` start per-connection instances
/// (`foo@.service`), named here as the template.
pub fn trigger_target(trigger: &str, text: &str) -> Option<String> {
    let (base, kind) = trigger.rsplit_once('.')?;
    let (section, key) = match kind {
        "timer" => ("Timer", "Unit"),
        "socket" => ("Socket", "Service"),
        "path" => ("Path", "Unit"),
        _ => return None,
    };
    let mut target: Option<&str> = None;
    let mut accept = false;
    for_each_setting(text, |s, k, v| {
        if s != section {
            return;
        }
        if k == key {
            target = Some(v);
        } else if k == "Accept" {
            accept = matches!(v, "yes" | "true" | "1" | "on");
        }
    });
    Some(match target {
        Some(t) => t.to_owned(),
        None if accept => format!("{base}@.service"),
        None => format!("{base}.service"),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn types_follow_systemd_defaults_and_drop_ins() {
        assert_eq!(
            service_type(&["[Service]\nType=oneshot\nExecStart=/bin/true\n"]),
            "oneshot"
        );
        assert_eq!(
            service_type(&["[Service]\nExecStart=/usr/sbin/nginx\n"]),
            "simple"
        );
        assert_eq!(
            service_type(&["[Service]\nBusName=org.x\nExecStart=/x\n"]),
            "dbus"
        );
        assert_eq!(service_type(&["[Unit]\nDescription=x\n"]), "oneshot");
        assert_eq!(
            service_type(&[
                "[Service]\nType=forking\nExecStart=/x\n",
                "[Service]\nType=notify\n"
            ]),
            "notify"
        );
        assert_eq!(
            service_type(&[
                "[Service]\nType=forking\nExecStart=/x\n",
                "[Service]\nType=\n"
            ]),
            "simple"
        );
        // Type= outside [Service] and comments are ignored.
        assert_eq!(
            service_type(&["[Unit]\nType=oneshot\n# Type=forking\n[Service]\nExecStart=/x\n"]),
            "simple"
        );
    }

    #[test]
    fn trigger_targets() {
        assert_eq!(
            trigger_target("logrotate.timer", "[Timer]\nOnCalendar=daily\n").unwrap(),
            "logrotate.service"
        );
        assert_eq!(
            trigger_target("backup.timer", "[Timer]\nUnit=db-backup.service\n").unwrap(),
            "db-backup.service"
        );
        assert_eq!(
            trigger_target("ssh.socket", "[Socket]\nListenStream=22\nAccept=yes\n").unwrap(),
            "ssh@.service"
        );
        assert_eq!(
            trigger_target("cups.path", "[Path]\nPathExists=/x\n").unwrap(),
            "cups.service"
        );
        assert_eq!(trigger_target("x.service", ""), None);
    }

    #[test]
    fn cgroup_units() {
        assert_eq!(
            unit_of_cgroup("/system.slice/nginx.service"),
            Some("nginx.service")
        );
        assert_eq!(
            unit_of_cgroup("/system.slice/foo\\x2dbar.service"),
            Some("foo\\x2dbar.service")
        );
        assert_eq!(unit_of_cgroup("/docker/abc"), None);
    }

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// A host root with Debian-like unit files: a timer-started oneshot, a plain service
    /// overridden by a drop-in in /etc, a socket-activated template.
    #[test]
    fn unit_files_of_a_host() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        write(
            r,
            "lib/systemd/system/logrotate.service",
            "[Unit]\nDescription=Rotate log files\n[Service]\nType=oneshot\nExecStart=/usr/sbin/logrotate /etc/logrotate.conf\n",
        );
        write(
            r,
            "lib/systemd/system/logrotate.timer",
            "[Unit]\nDescription=Daily rotation\n[Timer]\nOnCalendar=daily\n[Install]\nWantedBy=timers.target\n",
        );
        write(
            r,
            "lib/systemd/system/nginx.service",
            "[Service]\nType=forking\nExecStart=/usr/sbin/nginx\n",
        );
        write(
            r,
            "etc/systemd/system/nginx.service.d/override.conf",
            "[Service]\nType=notify\n",
        );
        write(
            r,
            "lib/systemd/system/nginx.service.d/override.conf",
            "[Service]\nType=idle\n",
        );
        write(
            r,
            "lib/systemd/system/getty@.service",
            "[Service]\nType=idle\nExecStart=-/sbin/agetty\n",
        );
        write(
            r,
            "lib/systemd/system/echo@.service",
            "[Service]\nExecStart=/bin/cat\nStandardInput=socket\n",
        );
        write(
            r,
            "etc/systemd/system/echo.socket",
            "[Socket]\nListenStream=7\nAccept=yes\n",
        );
        let files = UnitFiles::new(r);
        assert_eq!(
            files.info("logrotate.service").unwrap(),
            UnitInfo {
                unit_type: "oneshot".into(),
                triggered_by: "logrotate.timer".into()
            }
        );
        // /etc's drop-in masks /lib's of the same name.
        assert_eq!(files.info("nginx.service").unwrap().unit_type, "notify");
        assert_eq!(files.info("nginx.service").unwrap().triggered_by, "");
        assert_eq!(files.info("getty@tty1.service").unwrap().unit_type, "idle");
        assert_eq!(
            files.info("echo@.service").unwrap().triggered_by,
            "echo.socket"
        );
        assert_eq!(files.info("missing.service"), None);
    }
}
