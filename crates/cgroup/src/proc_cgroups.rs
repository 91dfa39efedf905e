//! Parsing of `/proc/<pid>/cgroup` and the choice of the registry key (the "cgroup id").

use crate::Error;

/// Parsed /proc/<pid>/cgroup ("hierarchy-id:controller-list:path" lines; v1, v2 ("0::/path"), hybrid).
///
/// Paths are stored cleaned (no `//`, `.`, `..` or trailing `/`), like Go's `path.Join` does in
/// coroot-node-agent, so ids compare equal whatever the kernel printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessCgroups {
    /// The `0::<path>` line, if any.
    unified: Option<String>,
    /// One entry per v1 line: (controller list as printed, e.g. "cpu,cpuacct", path).
    v1: Vec<(String, String)>,
    /// Index into the chosen path for [`ProcessCgroups::id`]; computed once at parse time.
    id: Option<IdSource>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IdSource {
    Unified,
    V1(usize),
}

impl ProcessCgroups {
    /// Parses the content of `/proc/<pid>/cgroup`.
    ///
    /// Lines that are not `<number>:<controllers>:/<path>` are skipped (a kernel never writes
    /// them, but one odd line must not lose the process); [`Error::EmptyProcCgroup`] is returned
    /// only when no valid line remains (empty file, e.g. a process that exited meanwhile).
    pub fn parse(text: &str) -> Result<ProcessCgroups, Error> {
        let mut unified = None;
        let mut v1 = Vec::new();
        for line in text.lines() {
            let line = line.trim_end();
            let mut fields = line.splitn(3, ':');
            let (Some(hierarchy), Some(controllers), Some(path)) =
                (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            if hierarchy.is_empty() || !hierarchy.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            if !path.starts_with('/') {
                continue;
            }
            let path = clean_path(path);
            if hierarchy == "0" && controllers.is_empty() {
                unified = Some(path);
            } else if !controllers.is_empty() {
                v1.push((controllers.to_owned(), path));
            }
        }
        if unified.is_none() && v1.is_empty() {
            return Err(Error::EmptyProcCgroup);
        }
        let mut cgroups = ProcessCgroups {
            unified,
            v1,
            id: None,
        };
        cgroups.id = cgroups.pick_id();
        Ok(cgroups)
    }

    /// The key the registry uses, exactly as coroot-node-agent picks it: the v2 (unified, "0::") path
    /// when it is not "/", otherwise the v1 "cpu" controller's path (fall back to cpuacct, then
    /// name=systemd). None when the process is in the root cgroup everywhere.
    ///
    /// Precisely (coroot's `getId`): paths "/" and "/init.scope" count as root; a v1 `cpu` or
    /// `memory` path under `/kubepods` wins over the unified one (hybrid Kubernetes nodes put
    /// pods in v1 hierarchies only); then unified, cpu, cpuacct, memory, name=systemd.
    pub fn id(&self) -> Option<&str> {
        match self.id? {
            IdSource::Unified => self.unified.as_deref(),
            IdSource::V1(i) => self.v1.get(i).map(|(_, p)| p.as_str()),
        }
    }

    /// Path of a v1 controller (e.g. "memory", "cpuacct", "blkio"); handles combined lists "cpu,cpuacct".
    /// Named hierarchies are asked for with their full name, e.g. "name=systemd".
    pub fn v1_path(&self, controller: &str) -> Option<&str> {
        self.v1_index(controller).map(|i| self.v1[i].1.as_str())
    }

    /// Path in the unified (v2) hierarchy, if the line "0::<path>" is present.
    pub fn unified_path(&self) -> Option<&str> {
        self.unified.as_deref()
    }

    fn v1_index(&self, controller: &str) -> Option<usize> {
        self.v1
            .iter()
            .position(|(list, _)| list.split(',').any(|c| c == controller))
    }

    fn pick_id(&self) -> Option<IdSource> {
        let usable = |p: &str| p != "/" && p != "/init.scope";
        let v1 = |c: &str| self.v1_index(c).filter(|&i| usable(&self.v1[i].1));
        for controller in ["cpu", "memory"] {
            if let Some(i) = v1(controller)
                && self.v1[i].1.starts_with("/kubepods")
            {
                return Some(IdSource::V1(i));
            }
        }
        if self.unified.as_deref().is_some_and(usable) {
            return Some(IdSource::Unified);
        }
        ["cpu", "cpuacct", "memory", "name=systemd"]
            .into_iter()
            .find_map(v1)
            .map(IdSource::V1)
    }
}

/// Cleans a cgroup path the way Go's `path.Clean` does, plus coroot's LXC rule: everything
/// below `/lxc.payload.<name>` belongs to that container (LXC 4+ nests its own cgroups there).
fn clean_path(raw: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            // A cgroup namespace shows ancestors as "..": clamp at the root like path.Clean.
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    if parts.first().is_some_and(|p| p.starts_with("lxc.payload.")) {
        parts.truncate(1);
    }
    let mut out = String::with_capacity(raw.len());
    for p in &parts {
        out.push('/');
        out.push_str(p);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_DOCKER: &str = "\
12:pids:/docker/b43d92bf1e5c6f78bb9b7bc6f40721280299855ba692092716e3a1b6c0b86f3f
11:cpu,cpuacct:/docker/b43d92bf1e5c6f78bb9b7bc6f40721280299855ba692092716e3a1b6c0b86f3f
10:memory:/docker/b43d92bf1e5c6f78bb9b7bc6f40721280299855ba692092716e3a1b6c0b86f3f
9:blkio:/docker/b43d92bf1e5c6f78bb9b7bc6f40721280299855ba692092716e3a1b6c0b86f3f
1:name=systemd:/docker/b43d92bf1e5c6f78bb9b7bc6f40721280299855ba692092716e3a1b6c0b86f3f
0::/
";

    #[test]
    fn v1_only_combined_controllers() {
        let text = "\
11:cpu,cpuacct:/system.slice/docker.service
10:memory:/system.slice/docker.service
1:name=systemd:/system.slice/docker.service
";
        let cg = ProcessCgroups::parse(text).unwrap();
        assert_eq!(cg.id(), Some("/system.slice/docker.service"));
        assert_eq!(cg.v1_path("cpu"), Some("/system.slice/docker.service"));
        assert_eq!(cg.v1_path("cpuacct"), Some("/system.slice/docker.service"));
        assert_eq!(
            cg.v1_path("name=systemd"),
            Some("/system.slice/docker.service")
        );
        assert_eq!(cg.v1_path("blkio"), None);
        // "cpu" must not match "cpuset" or "cpuacct" by prefix.
        assert_eq!(
            ProcessCgroups::parse("3:cpuset:/x\n")
                .unwrap()
                .v1_path("cpu"),
            None
        );
        assert_eq!(cg.unified_path(), None);
    }

    #[test]
    fn v2_only() {
        let cg = ProcessCgroups::parse("0::/system.slice/containerd.service\n").unwrap();
        assert_eq!(cg.id(), Some("/system.slice/containerd.service"));
        assert_eq!(cg.unified_path(), Some("/system.slice/containerd.service"));
        assert_eq!(cg.v1_path("memory"), None);
    }

    #[test]
    fn hybrid_prefers_v1_cpu_when_unified_is_root() {
        let cg = ProcessCgroups::parse(HYBRID_DOCKER).unwrap();
        assert_eq!(
            cg.id(),
            Some("/docker/b43d92bf1e5c6f78bb9b7bc6f40721280299855ba692092716e3a1b6c0b86f3f")
        );
        assert_eq!(cg.unified_path(), Some("/"));
        assert_eq!(cg.v1_path("pids"), cg.id());
    }

    #[test]
    fn hybrid_prefers_unified_when_set() {
        let text = "4:memory:/mem-only\n1:cpu:/cpu-path\n0::/system.slice/foo.service\n";
        let cg = ProcessCgroups::parse(text).unwrap();
        assert_eq!(cg.id(), Some("/system.slice/foo.service"));
    }

    #[test]
    fn kubepods_in_v1_wins_over_unified() {
        let text = "\
4:memory:/kubepods/besteffort/pod1/0123456789012345678901234567890123456789012345678901234567890123
3:cpu,cpuacct:/kubepods/besteffort/pod1/0123456789012345678901234567890123456789012345678901234567890123
0::/system.slice/containerd.service
";
        let cg = ProcessCgroups::parse(text).unwrap();
        assert!(cg.id().unwrap().starts_with("/kubepods/besteffort/pod1/"));
    }

    #[test]
    fn fallback_order_cpu_cpuacct_memory_systemd() {
        let cg = ProcessCgroups::parse("2:cpuacct:/a\n3:memory:/m\n1:name=systemd:/s\n").unwrap();
        assert_eq!(cg.id(), Some("/a"));
        let cg = ProcessCgroups::parse("3:memory:/m\n1:name=systemd:/s\n0::/\n").unwrap();
        assert_eq!(cg.id(), Some("/m"));
        let cg = ProcessCgroups::parse("1:name=systemd:/s\n0::/\n").unwrap();
        assert_eq!(cg.id(), Some("/s"));
    }

    #[test]
    fn root_and_init_scope_everywhere_is_none() {
        let text = "9:name=systemd:/init.scope\n4:memory:/\n1:cpu:/\n0::/init.scope\n";
        let cg = ProcessCgroups::parse(text).unwrap();
        assert_eq!(cg.id(), None);
        // The raw paths stay readable for the resource readers.
        assert_eq!(cg.v1_path("memory"), Some("/"));
        assert_eq!(cg.unified_path(), Some("/init.scope"));
    }

    #[test]
    fn garbage_lines_are_skipped() {
        let text = "garbage\n\nx:cpu:/nope\n5:memory\n6:memory:relative\n0::/good\r\n:::\n";
        let cg = ProcessCgroups::parse(text).unwrap();
        assert_eq!(cg.id(), Some("/good"));
        assert_eq!(cg.v1_path("memory"), None);
        assert_eq!(cg.v1_path("cpu"), None);
    }

    #[test]
    fn empty_or_all_garbage_is_an_error() {
        assert!(matches!(
            ProcessCgroups::parse(""),
            Err(Error::EmptyProcCgroup)
        ));
        assert!(matches!(
            ProcessCgroups::parse("hello\nworld:\n"),
            Err(Error::EmptyProcCgroup)
        ));
    }

    #[test]
    fn paths_are_cleaned_and_colons_kept() {
        let text = "0::/system.slice/containerd.service/kubepods-burstable-pod4e.slice:cri-containerd:d4a9\n";
        let cg = ProcessCgroups::parse(text).unwrap();
        assert_eq!(
            cg.id(),
            Some(
                "/system.slice/containerd.service/kubepods-burstable-pod4e.slice:cri-containerd:d4a9"
            )
        );
        let cg = ProcessCgroups::parse("0::/../../docker//abc/./\n").unwrap();
        assert_eq!(cg.id(), Some("/docker/abc"));
    }

    #[test]
    fn lxc_payload_is_truncated_to_container() {
        let cg = ProcessCgroups::parse("0::/lxc.payload.web/system.slice/nginx.service\n").unwrap();
        assert_eq!(cg.id(), Some("/lxc.payload.web"));
    }
}
