/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * Process lifecycle and OOM kills.
 *
 * Hooks (tracepoints, a stable ABI, read through CO-RE). The process programs
 * come in two variants with the same events; the loader attaches one:
 *   - *_btf (tp_btf, kernel >= 5.5), preferred: the tracepoint's arguments as
 *     they are, so the kernel builds no trace record, and the kernel skips a
 *     run only when the same program is already running on this CPU;
 *   - the classic tracepoint program, used when tp_btf cannot be loaded or
 *     attached. The kernel skips it whenever any BPF program or BPF map
 *     syscall holds this CPU (a task preempted inside a map syscall, on a
 *     fully preemptible kernel), and builds a trace record for every run.
 *
 *   task/task_newtask       process start. Fires in the forking task once the
 *                           child has its pid; CLONE_THREAD clones (threads) are
 *                           skipped so only new processes are reported. Chosen
 *                           over sched_process_fork because it carries
 *                           clone_flags. (kernel >= 3.14)
 *   sched/sched_process_exit  process exit with its exit code. Fires for every
 *                           exiting thread; only the last thread of the group
 *                           (group_dead) is reported, so one event per process.
 *                           The group_dead field exists since 6.16; older
 *                           kernels fall back to signal->live == 0, the same
 *                           test do_exit() makes just before the tracepoint.
 *   oom/mark_victim         the OOM killer chose a victim (memcg or global).
 *                           Fires exactly once per kill. (kernel >= 4.8)
 *                           Two programs, the loader attaches one:
 *                           - oom_mark_victim_task (raw_tp, preferred): on
 *                             kernels whose TP_PROTO passes the victim's
 *                             task_struct (the change that added
 *                             total_vm/uid to the event), reads the victim's own tgid
 *                             and cgroup v2 id through CO-RE, so a container
 *                             whose only process is already gone by the time
 *                             userspace looks is still attributed, and a global
 *                             OOM is attributed to the victim, not to whichever
 *                             task happened to allocate;
 *                           - oom_mark_victim (classic tracepoint, fallback when
 *                             raw_tp cannot attach): the tracepoint only carries
 *                             the pid, so the cgroup is the current (allocating)
 *                             task's. For a memcg OOM that task is charged to
 *                             the same memcg subtree as the victim (usually it
 *                             is the victim); for a global OOM it may be any task.
 *
 * Why: discovery by events instead of /proc polling, exit codes for restarts,
 * and exact OOM kill counts.
 *
 * Minimum kernel: 5.8 (ring buffer), BTF (CONFIG_DEBUG_INFO_BTF) for CO-RE.
 */

/* A new process (`pid`, its first thread's id) forked by the current task. */
static __always_inline int process_started(__u32 pid, __u64 clone_flags)
{
	if (clone_flags & CLONE_THREAD)
		return 0;

	struct proc_event e = {};
	e.type = EVENT_PROCESS_START;
	e.pid = pid;
	e.ppid = bpf_get_current_pid_tgid() >> 32;
	/* The child inherits the parent's cgroup at fork (CLONE_INTO_CGROUP aside). */
	e.cgroup_id = bpf_get_current_cgroup_id();
	emit(&e, sizeof(e), LOST_TASK_NEWTASK);
	return 0;
}

/* Preferred (see the file header). TP_PROTO(struct task_struct *task, u64 clone_flags) */
SEC("tp_btf/task_newtask")
int task_newtask_btf(__u64 *ctx)
{
	struct task_struct *task = (struct task_struct *)ctx[0];

	return process_started(task->pid, ctx[1]);
}

SEC("tracepoint/task/task_newtask")
int task_newtask(struct trace_event_raw_task_newtask *ctx)
{
	return process_started(ctx->pid, ctx->clone_flags);
}

/* The current task exits; reported once per process, by its last thread. */
static __always_inline int process_exited(bool group_dead)
{
	if (!group_dead)
		return 0;

	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct proc_event e = {};
	e.type = EVENT_PROCESS_EXIT;
	e.pid = bpf_get_current_pid_tgid() >> 32;
	/* do_exit() stores the code in task->exit_code before the tracepoint. */
	e.exit_code = BPF_CORE_READ(task, exit_code);
	/* The cgroup the process ends in: a process that lived too briefly for
	 * userspace to read /proc/<pid>/cgroup is still attributed (and counted
	 * as a run of its container) from this. */
	e.cgroup_id = bpf_get_current_cgroup_id();
	emit(&e, sizeof(e), LOST_PROCESS_EXIT);
	return 0;
}

/* Kernels before 6.16: the last thread is the one that found signal->live at 0. */
static __always_inline bool current_group_dead(void)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();

	return BPF_CORE_READ(task, signal, live.counter) == 0;
}

/*
 * Preferred (see the file header). TP_PROTO(struct task_struct *p, bool
 * group_dead) since 6.16, (struct task_struct *p) before: the record's
 * group_dead field arrived with the argument, so its presence tells which.
 * On older kernels the ctx[1] load is dead code the verifier never sees.
 */
SEC("tp_btf/sched_process_exit")
int sched_process_exit_btf(__u64 *ctx)
{
	struct trace_event_raw_sched_process_exit *layout = 0;

	if (bpf_core_field_exists(layout->group_dead))
		return process_exited((bool)ctx[1]);
	return process_exited(current_group_dead());
}

SEC("tracepoint/sched/sched_process_exit")
int sched_process_exit(struct trace_event_raw_sched_process_exit *ctx)
{
	if (bpf_core_field_exists(ctx->group_dead))
		return process_exited(ctx->group_dead);
	return process_exited(current_group_dead());
}

SEC("raw_tp/mark_victim")
int oom_mark_victim_task(struct bpf_raw_tracepoint_args *ctx)
{
	struct trace_event_raw_mark_victim *layout = 0;
	struct proc_event e = {};

	e.type = EVENT_OOM_KILL;
	if (bpf_core_field_exists(layout->total_vm)) {
		/* TP_PROTO(struct task_struct *task, uid_t uid) */
		struct task_struct *task = (struct task_struct *)ctx->args[0];
		e.pid = BPF_CORE_READ(task, tgid);
		e.cgroup_id = BPF_CORE_READ(task, cgroups, dfl_cgrp, kn, id);
	} else {
		/* TP_PROTO(int pid): no task to read; see the fallback's caveat. */
		e.pid = (__u32)ctx->args[0];
		e.cgroup_id = bpf_get_current_cgroup_id();
	}
	emit(&e, sizeof(e), LOST_MARK_VICTIM);
	return 0;
}

SEC("tracepoint/oom/mark_victim")
int oom_mark_victim(struct trace_event_raw_mark_victim *ctx)
{
	struct proc_event e = {};
	e.type = EVENT_OOM_KILL;
	e.pid = ctx->pid;
	/* The allocating task's cgroup: same memcg subtree for a memcg OOM. */
	e.cgroup_id = bpf_get_current_cgroup_id();
	emit(&e, sizeof(e), LOST_MARK_VICTIM);
	return 0;
}
