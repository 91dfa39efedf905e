//! The files of a process worth a look for TLS probes, from `/proc/<pid>/maps`.

/// A mapped file's identity as the kernel's uprobes see it: the device and
/// inode `/proc/<pid>/maps` shows (for a file of an overlayfs container
/// image, the underlying file's, which is where a uprobe lands: two
/// containers of one image share it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct FileKey {
    pub(crate) dev: u64,
    pub(crate) inode: u64,
}

/// What kind of file a candidate is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Mapped under a `libssl.so*` name.
    LibSsl,
    /// The process's executable (a Go binary, maybe).
    Exe,
}

/// A file to inspect: its key, its path as the process sees it (relative to
/// its root), and its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub(crate) key: FileKey,
    pub(crate) path: String,
    pub(crate) kind: Kind,
}

/// libssl files and the executable (`exe`: the target of /proc/<pid>/exe)
/// among `maps`, each once. Deleted files (" (deleted)") are skipped: their
/// path leads elsewhere or nowhere.
pub(crate) fn candidates(maps: &str, exe: Option<&str>) -> Vec<Candidate> {
    let mut out: Vec<Candidate> = Vec::new();
    for line in maps.lines() {
        let Some((key, path)) = parse_line(line) else {
            continue;
        };
        let kind = if Some(path) == exe {
            Kind::Exe
        } else if is_libssl(path) {
            Kind::LibSsl
        } else {
            continue;
        };
        if out.iter().any(|c| c.key == key) {
            continue;
        }
        out.push(Candidate {
            key,
            path: path.to_owned(),
            kind,
        });
    }
    out
}

/// "libssl.so", "libssl.so.3", "libssl.so.1.1" (not libssl3.so: NSS's).
pub(crate) fn is_libssl(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name == "libssl.so" || name.starts_with("libssl.so.")
}

/// The file key of one maps line, if it maps a file.
pub(crate) fn key_of_line(line: &str) -> Option<FileKey> {
    parse_line(line).map(|(key, _)| key)
}

/// `start-end perms offset major:minor inode path` -> (key, path) for a
/// line that maps a file.
fn parse_line(line: &str) -> Option<(FileKey, &str)> {
    let mut rest = line;
    let mut fields = [""; 5];
    for f in &mut fields {
        rest = rest.trim_start();
        let end = rest.find(' ')?;
        *f = &rest[..end];
        rest = &rest[end..];
    }
    let path = rest.trim();
    if !path.starts_with('/') || path.ends_with(" (deleted)") {
        return None;
    }
    let inode: u64 = fields[4].parse().ok()?;
    if inode == 0 {
        return None;
    }
    let (major, minor) = fields[3].split_once(':')?;
    let major = u64::from_str_radix(major, 16).ok()?;
    let minor = u64::from_str_radix(minor, 16).ok()?;
    Some((
        FileKey {
            dev: major << 32 | minor,
            inode,
        },
        path,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
55d0c0a00000-55d0c0a28000 r--p 00000000 fd:01 1837121                    /usr/bin/python3.11
55d0c0a28000-55d0c0cf0000 r-xp 00028000 fd:01 1837121                    /usr/bin/python3.11
7f1c2a000000-7f1c2a021000 rw-p 00000000 00:00 0 
7f1c2b1f0000-7f1c2b20e000 r--p 00000000 fd:01 1840001                    /usr/lib/x86_64-linux-gnu/libssl.so.3
7f1c2b20e000-7f1c2b26e000 r-xp 0001e000 fd:01 1840001                    /usr/lib/x86_64-linux-gnu/libssl.so.3
7f1c2b300000-7f1c2b400000 r-xp 00000000 00:2e 99                         /opt/app/lib/libssl.so.1.1
7f1c2b500000-7f1c2b600000 r-xp 00000000 fd:01 1840002                    /usr/lib/x86_64-linux-gnu/libssl3.so
7f1c2b700000-7f1c2b800000 r-xp 00000000 fd:01 1840003                    /tmp/libssl.so.3 (deleted)
7f1c2b900000-7f1c2ba00000 r-xp 00000000 fd:01 1840004                    /srv/my data/libssl.so
7ffd5b1e0000-7ffd5b201000 rw-p 00000000 00:00 0                          [stack]
";

    #[test]
    fn libssl_and_exe_each_once() {
        let c = candidates(MAPS, Some("/usr/bin/python3.11"));
        let got: Vec<(&str, Kind, u64, u64)> = c
            .iter()
            .map(|c| (c.path.as_str(), c.kind, c.key.dev, c.key.inode))
            .collect();
        assert_eq!(
            got,
            vec![
                ("/usr/bin/python3.11", Kind::Exe, 0xfd << 32 | 1, 1837121),
                (
                    "/usr/lib/x86_64-linux-gnu/libssl.so.3",
                    Kind::LibSsl,
                    0xfd << 32 | 1,
                    1840001
                ),
                ("/opt/app/lib/libssl.so.1.1", Kind::LibSsl, 0x2e, 99),
                (
                    "/srv/my data/libssl.so",
                    Kind::LibSsl,
                    0xfd << 32 | 1,
                    1840004
                ),
            ]
        );
    }

    #[test]
    fn without_exe_only_libraries() {
        let c = candidates(MAPS, None);
        assert_eq!(c.len(), 3);
        assert!(c.iter().all(|c| c.kind == Kind::LibSsl));
    }

    #[test]
    fn garbage_lines_are_ignored() {
        for bad in [
            "",
            "zzz",
            "1-2 r-xp 0 fd:01",
            "1-2 r-xp 0 xx:01 5 /usr/lib/libssl.so.3",
            "1-2 r-xp 0 fd:01 notanumber /usr/lib/libssl.so.3",
            "1-2 r-xp 0 fd:01 0 /usr/lib/libssl.so.3",
        ] {
            assert!(candidates(bad, None).is_empty(), "{bad:?}");
        }
    }

    #[test]
    fn libssl_names() {
        assert!(is_libssl("/lib/libssl.so.3"));
        assert!(is_libssl("/lib/libssl.so.1.1"));
        assert!(is_libssl("libssl.so"));
        assert!(!is_libssl("/lib/libssl3.so"));
        assert!(!is_libssl("/lib/libssl.a"));
        assert!(!is_libssl("/lib/libcrypto.so.3"));
    }
}
