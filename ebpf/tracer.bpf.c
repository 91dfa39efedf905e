/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * sonde's kernel side: one object, one ring buffer, all programs.
 *
 * Programs (see each file's header for hooks, why and minimum kernel):
 *   src/proc.c  task/task_newtask, sched/sched_process_exit, oom/mark_victim
 *   src/tcp.c   sock/inet_sock_set_state, tcp/tcp_retransmit_skb, scan_active
 *   src/cgroup.c  cgroup/cgroup_mkdir (cgroup v2 only)
 *   src/seed.c  iter/tcp, run once at start (sockets older than the tracer)
 *   src/l7.c    syscalls/sys_{enter,exit}_{connect,accept*,close,read*,write*,send*,recv*}:
 *               application-protocol reads and writes (docs/l7.md)
 *   src/tls.c   uprobes on OpenSSL's SSL_read/SSL_write(_ex) and Go's
 *               crypto/tls.(*Conn).Read/Write: TLS plaintext (docs/l7.md)
 *
 * One compilation unit so every program shares the `events` ring buffer and
 * the `lost` counters: the loader polls a single fd.
 *
 * Minimum kernel: 5.13 with BTF (CONFIG_DEBUG_INFO_BTF). Tracepoints only
 * (classic, raw_tp and tp_btf; a raw or tp_btf program always has a classic
 * fallback): no kprobes, no fentry/fexit (absent or refused on many hardened
 * kernels).
 * Build: make -C ebpf (clang >= 14, libbpf headers).
 */
#include "common.h"

#include "src/proc.c"
#include "src/tcp.c"
#include "src/cgroup.c"
#include "src/seed.c"
#include "src/l7.c"
#include "src/tls.c"

/* GPL: bpf_probe_read_kernel (behind BPF_CORE_READ) is a GPL-only helper. */
char LICENSE[] SEC("license") = "Dual BSD/GPL";
