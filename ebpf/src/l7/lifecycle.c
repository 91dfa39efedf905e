/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/* connect, accept, close, fork and exec (included by src/l7.c). */

/* ---- socket lifecycle ---- */

static __always_inline void l7_on_connect_enter(__u32 fd)
{
	__u64 id = bpf_get_current_pid_tgid();
	bpf_map_update_elem(&l7_connects, &id, &fd, BPF_ANY);
}

static __always_inline void l7_on_connect_exit(__s64 ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 *fdp = bpf_map_lookup_elem(&l7_connects, &id);
	if (!fdp)
		return;
	__u32 fd = *fdp;
	bpf_map_delete_elem(&l7_connects, &id);
	if (ret == 0 || ret == -EINPROGRESS)
		l7_register(fd, L7_CLIENT, 0);
}

static __always_inline void l7_forget(struct l7_sock_key *k, struct l7_sock *s);

static __always_inline void l7_on_close(__u32 fd)
{
	struct l7_sock_key k = {.tgid = bpf_get_current_pid_tgid() >> 32, .fd = fd};
	if (!l7_pid_has_sockets(k.tgid))
		return;
	struct l7_sock *s = bpf_map_lookup_elem(&l7_sockets, &k);
	if (!s) {
		bpf_map_delete_elem(&l7_not_sockets, &k);
		return;
	}
	l7_forget(&k, s);
}

/* Forgets the registered socket s (key k), telling userspace if it ever
 * shipped data, so its parser state goes too. */
static __always_inline void l7_forget(struct l7_sock_key *kp, struct l7_sock *s)
{
	struct l7_sock_key k = *kp;
	if (s->shipped) {
		__u32 zero = 0;
		struct l7_event *e = bpf_map_lookup_elem(&l7_scratch, &zero);
		if (e) {
			l7_fill_header(e, EVENT_L7_CLOSE, &k, s, 0, 0, 0, bpf_ktime_get_ns());
			if (bpf_ringbuf_output(&events, e, L7_EVENT_HEADER, wakeup_flags(L7_EVENT_HEADER)) != 0)
				count_lost(LOST_L7_EVENT);
		}
	}
	bpf_map_delete_elem(&l7_sockets, &k);
}

SEC("tracepoint/syscalls/sys_enter_connect")
int l7_enter_connect(struct l7_sys_enter *ctx)
{
	l7_on_connect_enter(ctx->args[0]);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_connect")
int l7_exit_connect(struct l7_sys_exit *ctx)
{
	l7_on_connect_exit(ctx->ret);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int l7_exit_accept4(struct l7_sys_exit *ctx)
{
	if (ctx->ret >= 0)
		l7_register(ctx->ret, L7_SERVER, 0);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept")
int l7_exit_accept(struct l7_sys_exit *ctx)
{
	if (ctx->ret >= 0)
		l7_register(ctx->ret, L7_SERVER, 0);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_close")
int l7_enter_close(struct l7_sys_enter *ctx)
{
	l7_on_close(ctx->args[0]);
	return 0;
}

/* A child process inherits its parent's fds: it may hold sockets too. */
static __always_inline void l7_on_fork(__u32 child, __u64 clone_flags)
{
	if (clone_flags & CLONE_THREAD)
		return;
	if (l7_pid_has_sockets(bpf_get_current_pid_tgid() >> 32))
		l7_pid_mark(child);
}

/*
 * Executables the TLS attacher (crates/tracer/src/tls.rs) has looked at, by
 * inode: the value is TLS_EXEC_FILE_DONE once user space has, else the time
 * the file was last reported. A file is reported at its first exec and again
 * at most once a second until it is done (its process was gone before user
 * space could open it: the next run is looked at instead). LRU: a forgotten
 * file is only reported once more.
 */
#define TLS_EXEC_FILES_MAX 16384
#define TLS_EXEC_FILE_DONE (~0ULL)
#define TLS_EXEC_REPORT_EVERY_NS 1000000000ULL
struct exec_file_key {
	__u64 ino;
	__u32 dev;
	__u32 _pad;
};
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TLS_EXEC_FILES_MAX);
	__type(key, struct exec_file_key);
	__type(value, __u64);
} tls_exec_files SEC(".maps");

/*
 * A new executable, reported with a forced wakeup: a Go client that does its
 * TLS and exits within a few ms would otherwise be gone before the attacher's
 * first look at its fork (0.2 s later), and its binary never probed. Only
 * files not seen before cost an event; every other exec costs one lookup.
 */
static __always_inline void l7_report_exec(__u32 tgid)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct file *exe = BPF_CORE_READ(task, mm, exe_file);
	if (!exe)
		return;
	struct exec_file_key key = {
		.ino = BPF_CORE_READ(exe, f_inode, i_ino),
		.dev = BPF_CORE_READ(exe, f_inode, i_sb, s_dev),
	};
	__u64 now = bpf_ktime_get_ns();
	__u64 *last = bpf_map_lookup_elem(&tls_exec_files, &key);
	if (last && (*last == TLS_EXEC_FILE_DONE || now - *last < TLS_EXEC_REPORT_EVERY_NS))
		return;
	bpf_map_update_elem(&tls_exec_files, &key, &now, BPF_ANY);
	struct exec_event e = {.type = EVENT_PROCESS_EXEC, .pid = tgid, .ino = key.ino, .dev = key.dev};
	if (bpf_ringbuf_output(&events, &e, sizeof(e), BPF_RB_FORCE_WAKEUP) != 0)
		count_lost(LOST_L7_EVENT);
}

/*
 * exec() ends the inheritance: most programs a server's child execs (a shell,
 * a container's entrypoint under a runtime that once made a connection) do
 * not use the parent's sockets, and the bit would cost each of them the slow
 * path on every read and write. A process that registers a socket after exec
 * gets its bit back.
 */
static __always_inline void l7_on_exec(void)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u32 word = tgid >> 6;
	__u64 *w = bpf_map_lookup_elem(&l7_pids, &word);
	if (w && (*w & (1ULL << (tgid & 63))))
		__sync_fetch_and_and(w, ~(1ULL << (tgid & 63)));
	l7_report_exec(tgid);
}

SEC("tp_btf/sched_process_exec")
int l7_exec_btf(__u64 *ctx)
{
	l7_on_exec();
	return 0;
}

SEC("tracepoint/sched/sched_process_exec")
int l7_exec(void *ctx)
{
	l7_on_exec();
	return 0;
}

SEC("tp_btf/task_newtask")
int l7_task_newtask_btf(__u64 *ctx)
{
	/* TP_PROTO(struct task_struct *task, u64 clone_flags) */
	struct task_struct *task = (struct task_struct *)ctx[0];
	l7_on_fork(task->pid, ctx[1]);
	return 0;
}

SEC("tracepoint/task/task_newtask")
int l7_task_newtask(struct trace_event_raw_task_newtask *ctx)
{
	l7_on_fork(ctx->pid, ctx->clone_flags);
	return 0;
}
