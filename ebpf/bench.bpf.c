/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * Benchmark-only object: never embedded in or loaded by the agent.
 *
 * Programs:
 *   dispatch_only  tp_btf on sock/inet_sock_set_state (kernel >= 5.5) that
 *                  returns at once. crates/tracer/examples/storm_toggle
 *                  attaches it in one of its arms, so a loopback connect storm
 *                  measures what the kernel's dispatch of this hook costs on
 *                  its own, in the same rounds as the real program: the part
 *                  of the tracer's cost that no change inside tracer.bpf.o can
 *                  remove (docs/tracer.md, "What would cut the cost further").
 *
 *   syscall_enter_only, syscall_exit_only  tp_btf on raw_syscalls sys_enter
 *                  and sys_exit that return at once: what tracing every
 *                  syscall costs before any L7 work (the floor under
 *                  src/l7.c's l7_sys_enter/l7_sys_exit; docs/benchmarks.md, L7).
 *
 *   sock_send_only, sock_recv_only  tp_btf on sock/sock_send_length and
 *                  sock/sock_recv_length (kernel >= 6.3) that return at once:
 *                  the floor under the socket-tracepoint attachment, which
 *                  runs for socket I/O only.
 *
 * Build: make -C ebpf (built and checked together with tracer.bpf.o).
 */
#include "kernel.h"
#include <bpf/bpf_helpers.h>

SEC("tp_btf/inet_sock_set_state")
int dispatch_only(__u64 *ctx)
{
	return 0;
}

SEC("tp_btf/sys_enter")
int syscall_enter_only(__u64 *ctx)
{
	return 0;
}

SEC("tp_btf/sys_exit")
int syscall_exit_only(__u64 *ctx)
{
	return 0;
}

SEC("tp_btf/sock_send_length")
int sock_send_only(__u64 *ctx)
{
	return 0;
}

SEC("tp_btf/sock_recv_length")
int sock_recv_only(__u64 *ctx)
{
	return 0;
}

/* BTF-typed tracing programs need a GPL-compatible licence. */
char LICENSE[] SEC("license") = "Dual BSD/GPL";
