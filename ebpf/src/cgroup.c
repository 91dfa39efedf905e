/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * Cgroup creation, with its path, in the default (cgroup v2) hierarchy.
 *
 * Hook:
 *   cgroup/cgroup_mkdir     a cgroup directory was created (kernel >= 4.13).
 *                           Only the default hierarchy (root == 0, the "0::"
 *                           of /proc/<pid>/cgroup) is reported: the v1
 *                           hierarchies of a hybrid host (1..N) have other
 *                           ids and are skipped in the kernel.
 *
 * Why: OomKill carries the victim's cgroup v2 id, but when a container's only
 * process is killed, runc removes the cgroup directory before userspace can
 * walk the hierarchy to find it. Userspace keeps a bounded id -> path map from
 * these events instead.
 *
 * The path is the tracepoint's own (kernfs_path(): from the hierarchy root,
 * not namespaced, as /proc/<pid>/cgroup shows it in the initial cgroup
 * namespace), read from the record at its __data_loc. Paths of more than
 * CGROUP_PATH_MAX - 1 bytes are dropped and counted in LOST_CGROUP_MKDIR,
 * never truncated.
 *
 * Minimum kernel: 5.5 (64-bit cgroup ids equal to the directory inode).
 */

SEC("tracepoint/cgroup/cgroup_mkdir")
int cgroup_mkdir(struct trace_event_raw_cgroup *ctx)
{
	if (ctx->root != 0)
		return 0;

	__u32 loc = ctx->__data_loc_path;
	__u32 len = loc >> 16; /* NUL included */
	if (len == 0 || len > CGROUP_PATH_MAX) {
		count_lost(LOST_CGROUP_MKDIR);
		return 0;
	}

	struct cgroup_event e;
	e.type = EVENT_CGROUP_CREATED;
	e.cgroup_id = ctx->id;
	long n = bpf_probe_read_kernel_str(e.path, sizeof(e.path), (void *)ctx + (loc & 0xffff));
	if (n <= 0 || n > CGROUP_PATH_MAX) {
		count_lost(LOST_CGROUP_MKDIR);
		return 0;
	}
	e.path_len = n - 1;
	/* Only the bytes used: cgroup paths are mostly far shorter than the buffer. */
	emit(&e, offsetof(struct cgroup_event, path) + e.path_len, LOST_CGROUP_MKDIR);
	return 0;
}
