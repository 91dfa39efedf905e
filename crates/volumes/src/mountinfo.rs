//! `/proc/<pid>/mountinfo` (proc(5)): one mount per line,
//! `36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue`.

/// One line of mountinfo, with the fields sonde uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Device number of the mounted file system (`st_dev`): a partition, a whole disk, or
    /// major 0 for virtual file systems (overlay, tmpfs, proc, ...).
    pub major: u32,
    pub minor: u32,
    /// The directory of the file system mounted here (a bind mount's source within it).
    pub root: String,
    /// Where it is mounted, in the process's mount namespace (octal escapes decoded).
    pub mount_point: String,
    /// Mounted read-only (per-mount option `ro`).
    pub read_only: bool,
    /// File system type ("ext4", "xfs", "overlay", ...).
    pub fs_type: String,
    /// Mount source ("/dev/vda1", "overlay", ...).
    pub source: String,
}

/// Parses mountinfo text; malformed lines are skipped and counted in the second value (the
/// kernel never writes them, a truncated read might).
pub fn parse_mountinfo(text: &str) -> (Vec<Mount>, usize) {
    let mut mounts = Vec::new();
    let mut bad = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match parse_line(line) {
            Some(m) => mounts.push(m),
            None => bad += 1,
        }
    }
    (mounts, bad)
}

fn parse_line(line: &str) -> Option<Mount> {
    let mut fields = line.split(' ');
    let _mount_id = fields.next()?;
    let _parent_id = fields.next()?;
    let (major, minor) = fields.next()?.split_once(':')?;
    let root = unescape(fields.next()?);
    let mount_point = unescape(fields.next()?);
    let options = fields.next()?;
    // Optional fields ("shared:1", "master:2", ...) up to the "-" separator.
    for f in fields.by_ref() {
        if f == "-" {
            break;
        }
    }
    let fs_type = fields.next()?.to_owned();
    let source = unescape(fields.next()?);
    Some(Mount {
        major: major.parse().ok()?,
        minor: minor.parse().ok()?,
        root,
        mount_point,
        read_only: options.split(',').any(|o| o == "ro"),
        fs_type,
        source,
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo` octal.
fn unescape(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_owned();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 4 <= bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') as u32 * 64
                + (bytes[i + 2] - b'0') as u32 * 8
                + (bytes[i + 3] - b'0') as u32;
            if let Ok(b) = u8::try_from(v) {
                out.push(b);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Files container runtimes bind-mount from the host's disk into every container. They live on
/// the runtime's disk, not the application's, and would give every container a series for it.
const RUNTIME_FILES: &[&str] = &[
    "/etc/hosts",
    "/etc/hostname",
    "/etc/resolv.conf",
    "/dev/termination-log",
    "/run/.containerenv",
];

/// Whether a mount holds data a container writes: a writable file system on a block device
/// (major != 0), outside the kernel's and the runtime's own mounts.
///
/// This is sonde's stand-in for coroot's "mounts its processes opened files for writing on"
/// (which needs a file-open tracer): every writable block-device mount of the container's mount
/// namespace is a volume the container may write to.
pub fn is_data_mount(m: &Mount) -> bool {
    if m.major == 0 || m.read_only {
        return false;
    }
    let p = m.mount_point.as_str();
    if RUNTIME_FILES.contains(&p) {
        return false;
    }
    !["/proc", "/sys", "/dev"]
        .iter()
        .any(|prefix| p == *prefix || p.strip_prefix(prefix).is_some_and(|r| r.starts_with('/')))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// mountinfo of a Docker container on this machine (trimmed), with a named volume on a loop
    /// device and a path with a space.
    const DOCKER: &str = "\
1180 1067 0:102 / / rw,relatime master:390 - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/A:/var/lib/docker/overlay2/l/B,upperdir=/x/diff,workdir=/x/work
1181 1180 0:105 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
1182 1180 0:106 / /dev rw,nosuid - tmpfs tmpfs rw,size=65536k,mode=755
1185 1180 0:107 / /sys ro,nosuid,nodev,noexec,relatime - sysfs sysfs ro
1190 1180 7:0 / /data rw,relatime - ext4 /dev/loop0 rw
1191 1180 254:0 /var/lib/docker/containers/abc/resolv.conf /etc/resolv.conf rw,relatime - ext4 /dev/vda rw
1192 1180 254:0 /var/lib/docker/containers/abc/hostname /etc/hostname rw,relatime - ext4 /dev/vda rw
1193 1180 254:0 /var/lib/docker/containers/abc/hosts /etc/hosts rw,relatime - ext4 /dev/vda rw
1194 1180 254:0 /srv/my\\040dir /srv/my\\040dir rw,relatime shared:1 master:2 - ext4 /dev/vda rw
1195 1180 254:0 /etc/conf /etc/conf ro,relatime - ext4 /dev/vda rw
1196 1182 0:104 / /dev/shm rw,nosuid,nodev,noexec,relatime - tmpfs shm rw,size=65536k
";

    #[test]
    fn parses_docker_mountinfo() {
        let (mounts, bad) = parse_mountinfo(DOCKER);
        assert_eq!(bad, 0);
        assert_eq!(mounts.len(), 11);
        assert_eq!(
            mounts[4],
            Mount {
                major: 7,
                minor: 0,
                root: "/".into(),
                mount_point: "/data".into(),
                read_only: false,
                fs_type: "ext4".into(),
                source: "/dev/loop0".into(),
            }
        );
        assert_eq!(mounts[8].mount_point, "/srv/my dir");
        assert_eq!(mounts[8].root, "/srv/my dir");
        assert!(mounts[9].read_only);
        assert!(mounts[3].read_only);
    }

    #[test]
    fn data_mounts_are_writable_block_device_mounts() {
        let (mounts, _) = parse_mountinfo(DOCKER);
        let data: Vec<&str> = mounts
            .iter()
            .filter(|m| is_data_mount(m))
            .map(|m| m.mount_point.as_str())
            .collect();
        assert_eq!(data, ["/data", "/srv/my dir"]);
    }

    #[test]
    fn garbage_lines_are_counted_not_fatal() {
        let text = "garbage\n1 2 x:y / / rw - ext4 /dev/a rw\n1 2 8:1 / / rw\n\n1190 1180 7:0 / /data rw - ext4 /dev/loop0 rw\n";
        let (mounts, bad) = parse_mountinfo(text);
        assert_eq!(bad, 3);
        assert_eq!(mounts.len(), 1);
        // A trailing backslash or a bad escape is kept literally.
        assert_eq!(unescape("a\\"), "a\\");
        assert_eq!(unescape("a\\9b"), "a\\9b");
        assert_eq!(unescape("tab\\011x"), "tab\tx");
    }
}
