/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * Cgroup creation, with its path, in the default (cgroup v2) hierarchy.
 *
 * Hook:
 *   cgroup/cgroup_mkdir     a cgroup directory was created (kernel >= 4.13).
 *                           Two programs, one event: cgroup_mkdir_btf (tp_btf,
 *                           preferred) and cgroup_mkdir (classic tracepoint,
 *                           the fallback); see each below.
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

/*
 * Reports cgroup `id` created at `path` (a kernel string). `unchecked`: the
 * caller does not know the path's length. bpf_probe_read_kernel_str then
 * returns CGROUP_PATH_MAX both for a path of CGROUP_PATH_MAX - 1 bytes and for
 * a longer one it truncated, so the byte after the copied ones tells them
 * apart: the NUL, or more path (dropped and counted, never truncated).
 */
static __always_inline int cgroup_created(__u64 id, const char *path, int unchecked)
{
	struct cgroup_event e;
	e.type = EVENT_CGROUP_CREATED;
	e.cgroup_id = id;
	long n = bpf_probe_read_kernel_str(e.path, sizeof(e.path), path);
	if (n <= 0 || n > CGROUP_PATH_MAX) {
		count_lost(LOST_CGROUP_MKDIR);
		return 0;
	}
	if (unchecked && n == CGROUP_PATH_MAX) {
		char next = 1;
		bpf_probe_read_kernel(&next, 1, path + CGROUP_PATH_MAX - 1);
		if (next != 0) {
			count_lost(LOST_CGROUP_MKDIR);
			return 0;
		}
	}
	e.path_len = n - 1;
	/* Only the bytes used: cgroup paths are mostly far shorter than the buffer. */
	emit(&e, offsetof(struct cgroup_event, path) + e.path_len, LOST_CGROUP_MKDIR);
	return 0;
}

/*
 * Preferred: tp_btf (kernel >= 5.5), TP_PROTO(struct cgroup *cgrp, const char
 * *path). The kernel builds no trace record (the classic one copies the path
 * into it), and it skips a run only when the same program is already running
 * on this CPU, whereas it skips the classic program whenever any BPF program
 * or BPF map syscall holds the CPU.
 */
SEC("tp_btf/cgroup_mkdir")
int cgroup_mkdir_btf(__u64 *ctx)
{
	struct cgroup *cgrp = (struct cgroup *)ctx[0];

	if (cgrp->root->hierarchy_id != 0)
		return 0;
	return cgroup_created(cgrp->kn->id, (const char *)ctx[1], 1);
}

/* Fallback when tp_btf cannot be loaded or attached (see loader.rs). */
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
	return cgroup_created(ctx->id, (const char *)ctx + (loc & 0xffff), 0);
}
