/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/* The preferred attachment: raw sys_enter/sys_exit dispatch (included by src/l7.c). */

/* ---- the preferred attachment: two tp_btf programs for all syscalls ---- */

/*
 * raw_syscalls sys_enter/sys_exit as tp_btf (kernel >= 5.5): one program
 * per direction for every syscall, dispatching on the number. The classic
 * per-syscall tracepoints above cost the kernel a trace record per call
 * (~290 ns per read or write measured here, docs/benchmarks.md); these skip
 * it, and a syscall that is not one of ours returns after one compare.
 * x86-64 numbers (the object is built for x86-64 only).
 */
#define NR_READ 0
#define NR_WRITE 1
#define NR_CLOSE 3
#define NR_READV 19
#define NR_WRITEV 20
#define NR_CONNECT 42
#define NR_ACCEPT 43
#define NR_SENDTO 44
#define NR_RECVFROM 45
#define NR_SENDMSG 46
#define NR_RECVMSG 47
#define NR_ACCEPT4 288
#define NR_SENDMMSG 307

SEC("tp_btf/sys_enter")
int l7_sys_enter(__u64 *ctx)
{
	/* TP_PROTO(struct pt_regs *regs, long id) */
	long id = ctx[1];
	if (id > NR_SENDMMSG)
		return 0;
	struct pt_regs *regs = (struct pt_regs *)ctx[0];
	switch (id) {
	case NR_READ:
	case NR_RECVFROM:
		l7_enter_read_common(regs->di, regs->si, L7_READ_PLAIN, 0);
		break;
	case NR_READV:
		l7_enter_read_common(regs->di, regs->si, L7_READ_IOV, regs->dx);
		break;
	case NR_RECVMSG:
		l7_enter_read_common(regs->di, regs->si, L7_READ_MSG, 0);
		break;
	case NR_WRITE:
		l7_on_write(ctx, regs->di, regs->si, (__u32)regs->dx, (__u32)regs->dx, 0, 0);
		break;
	case NR_SENDTO:
		l7_on_sendto(ctx, regs->di, regs->si, (__u32)regs->dx, regs->r8);
		break;
	case NR_WRITEV:
		l7_on_writev(ctx, regs->di, regs->si, regs->dx);
		break;
	case NR_SENDMSG:
		l7_on_sendmsg_call(ctx, regs->di, regs->si);
		break;
	case NR_SENDMMSG:
		l7_on_sendmmsg(ctx, regs->di, regs->si, regs->dx);
		break;
	case NR_CONNECT:
		l7_on_connect_enter(regs->di);
		break;
	case NR_CLOSE:
		l7_on_close(regs->di);
		break;
	}
	return 0;
}

SEC("tp_btf/sys_exit")
int l7_sys_exit(__u64 *ctx)
{
	/* TP_PROTO(struct pt_regs *regs, long ret) */
	struct pt_regs *regs = (struct pt_regs *)ctx[0];
	long id = regs->orig_ax;
	long ret = ctx[1];
	switch (id) {
	case NR_READ:
	case NR_RECVFROM:
	case NR_READV:
	case NR_RECVMSG:
		l7_exit_read_common(ret);
		break;
	case NR_CONNECT:
		l7_on_connect_exit(ret);
		break;
	case NR_ACCEPT:
	case NR_ACCEPT4:
		if (ret >= 0)
			l7_register(ret, L7_SERVER, 0);
		break;
	}
	return 0;
}
