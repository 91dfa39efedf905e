//! Kernel cgroup ids -> cgroup paths, for attributing events of processes that are gone.
//!
//! Every kernel event that is attributed to a container carries the acting task's cgroup v2
//! id, taken when it acted (`bpf_get_current_cgroup_id()`: the inode of the cgroup's directory
//! in the unified hierarchy). A process that lives a few milliseconds (a shell loop's `nc`,
//! `wget` or `curl`; a container OOM-killed at start) is gone before its `/proc/<pid>/cgroup`
//! can be read, and runc may already have removed its cgroup's directory: the id is then the
//! only way to its container. This map is seeded once with a walk of the unified hierarchy
//! and kept current by the tracer's cgroup_mkdir events, so resolving an id costs one hash
//! lookup; an id neither knows (a mkdir event lost) costs one more walk, once (misses are
//! remembered). Bounded: the oldest entries are forgotten first.

use std::collections::{HashMap, HashSet, VecDeque};

/// Most id -> path entries kept.
pub const MAX_CGROUP_PATHS: usize = 65_536;
/// Most ids remembered as unknown (not walked for again).
const MAX_MISSES: usize = 4_096;

/// The id -> path map (see the module doc).
#[derive(Debug, Default)]
pub struct CgroupIds {
    paths: HashMap<u64, String>,
    order: VecDeque<u64>,
    misses: HashSet<u64>,
    fs: Option<sonde_cgroup::CgroupFs>,
}

impl CgroupIds {
    /// A map seeded with every unified-hierarchy cgroup of `fs` (empty without one).
    pub fn seeded(fs: Option<sonde_cgroup::CgroupFs>) -> CgroupIds {
        let mut ids = CgroupIds {
            fs,
            ..CgroupIds::default()
        };
        let all = ids
            .fs
            .as_ref()
            .map(sonde_cgroup::CgroupFs::unified_cgroups)
            .unwrap_or_default();
        for (id, path) in all {
            ids.insert(id, path);
        }
        ids
    }

    /// Records that cgroup `id` is at `path` (a cgroup_mkdir event, or the seeding walk).
    pub fn insert(&mut self, id: u64, path: String) {
        self.misses.remove(&id);
        if self.paths.insert(id, path).is_none() {
            self.order.push_back(id);
        }
        while self.order.len() > MAX_CGROUP_PATHS {
            if let Some(old) = self.order.pop_front() {
                self.paths.remove(&old);
            }
        }
    }

    /// The path of cgroup `id`; None for 0 (unknown) and for ids that cannot be found.
    pub fn resolve(&mut self, id: u64) -> Option<&str> {
        if id == 0 {
            return None;
        }
        if !self.paths.contains_key(&id) {
            if self.misses.contains(&id) {
                return None;
            }
            match self.fs.as_ref().and_then(|fs| fs.find_unified_by_id(id)) {
                Some(path) => self.insert(id, path),
                None => {
                    if self.misses.len() >= MAX_MISSES {
                        self.misses.clear();
                    }
                    self.misses.insert(id);
                    return None;
                }
            }
        }
        self.paths.get(&id).map(String::as_str)
    }

    /// Number of ids known.
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    /// Whether no id is known.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn bounded_and_forgets_the_oldest() {
        let mut m = CgroupIds::default();
        for id in 1..=(MAX_CGROUP_PATHS as u64 + 10) {
            m.insert(id, format!("/c{id}"));
        }
        assert_eq!(m.len(), MAX_CGROUP_PATHS);
        assert_eq!(m.resolve(1), None);
        assert_eq!(m.resolve(10), None);
        assert_eq!(m.resolve(11), Some("/c11"));
        // Re-inserting a known id does not grow the order queue.
        m.insert(11, "/again".into());
        assert_eq!(m.order.len(), MAX_CGROUP_PATHS);
        assert_eq!(m.resolve(11), Some("/again"));
    }

    #[test]
    fn zero_and_unknown_ids_resolve_to_nothing_and_misses_are_remembered() {
        let mut m = CgroupIds::default();
        assert_eq!(m.resolve(0), None);
        assert_eq!(m.resolve(42), None);
        assert!(m.misses.contains(&42));
        // Learned later (its mkdir event): found, and no longer a miss.
        m.insert(42, "/docker/abc".into());
        assert_eq!(m.resolve(42), Some("/docker/abc"));
        assert!(!m.misses.contains(&42));
    }

    #[test]
    fn seeding_walks_a_real_unified_tree_and_a_miss_walks_again_once() {
        use std::os::unix::fs::MetadataExt;
        // A cgroup v2 tree (cgroup.controllers at the root) in a temp dir.
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("cgroup.controllers"), "").unwrap();
        std::fs::create_dir_all(root.join("docker/abc")).unwrap();
        let ino = |p: &str| std::fs::metadata(root.join(p)).unwrap().ino();
        let fs = sonde_cgroup::CgroupFs::detect(root).unwrap();
        let mut m = CgroupIds::seeded(Some(fs));
        assert_eq!(m.resolve(ino("docker/abc")), Some("/docker/abc"));
        assert_eq!(m.resolve(ino("docker")), Some("/docker"));
        // Made after seeding, its mkdir event not seen: found by one walk.
        std::fs::create_dir_all(root.join("kubepods/pod1/c1")).unwrap();
        assert_eq!(
            m.resolve(ino("kubepods/pod1/c1")),
            Some("/kubepods/pod1/c1")
        );
    }
}
