/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * Trimmed kernel type definitions for sonde's eBPF programs.
 *
 * Instead of a 3 MB generated vmlinux.h, only the fields the programs read are
 * declared here, each struct marked `preserve_access_index` so clang emits CO-RE
 * relocations: the loader (aya) rewrites every field offset against the running
 * kernel's BTF (/sys/kernel/btf/vmlinux). Field order and struct sizes here
 * therefore do not matter; field *names* and types must match the kernel's.
 *
 * To add a field: look it up with
 *   bpftool btf dump file /sys/kernel/btf/vmlinux format c | less
 * and declare only that member.
 */
#ifndef SONDE_KERNEL_H
#define SONDE_KERNEL_H

typedef signed char __s8;
typedef unsigned char __u8;
typedef short __s16;
typedef unsigned short __u16;
typedef int __s32;
typedef unsigned int __u32;
typedef long long __s64;
typedef unsigned long long __u64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef _Bool bool;
#define true 1
#define false 0

/* UAPI constants (linux/bpf.h); stable ABI, copied to keep the build self-contained. */
enum {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_LRU_HASH = 9,
	BPF_MAP_TYPE_SK_STORAGE = 24,
	BPF_MAP_TYPE_RINGBUF = 27,
};
enum {
	BPF_F_NO_PREALLOC = 1,
};
enum {
	BPF_SK_STORAGE_GET_F_CREATE = 1,
};
enum {
	BPF_ANY = 0,
	BPF_NOEXIST = 1,
};
enum {
	BPF_RB_NO_WAKEUP = 1,
	BPF_RB_FORCE_WAKEUP = 2,
};
enum {
	BPF_RB_AVAIL_DATA = 0,
};

/* include/net/tcp_states.h */
enum {
	TCP_ESTABLISHED = 1,
	TCP_SYN_SENT = 2,
	TCP_SYN_RECV = 3,
	TCP_FIN_WAIT1 = 4,
	TCP_FIN_WAIT2 = 5,
	TCP_TIME_WAIT = 6,
	TCP_CLOSE = 7,
	TCP_CLOSE_WAIT = 8,
	TCP_LAST_ACK = 9,
	TCP_LISTEN = 10,
	TCP_CLOSING = 11,
};

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define CLONE_THREAD 0x00010000

/* Context of raw_tp programs: the tracepoint's TP_PROTO arguments (uapi). */
struct bpf_raw_tracepoint_args {
	__u64 args[0];
};

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

/* ---- tracepoint contexts (include/trace/events/...) ---- */

struct trace_entry {
	unsigned short type;
	unsigned char flags;
	unsigned char preempt_count;
	int pid;
};

/* sock/inet_sock_set_state */
struct trace_event_raw_inet_sock_set_state {
	struct trace_entry ent;
	const void *skaddr;
	int oldstate;
	int newstate;
	__u16 sport;
	__u16 dport;
	__u16 family;
	__u16 protocol;
	__u8 saddr[4];
	__u8 daddr[4];
	__u8 saddr_v6[16];
	__u8 daddr_v6[16];
};

/* tcp/tcp_retransmit_skb */
struct trace_event_raw_tcp_retransmit_skb {
	struct trace_entry ent;
	const void *skbaddr;
	const void *skaddr;
	__u16 sport;
	__u16 dport;
	__u16 family;
	__u8 saddr[4];
	__u8 daddr[4];
	__u8 saddr_v6[16];
	__u8 daddr_v6[16];
};

/* task/task_newtask */
struct trace_event_raw_task_newtask {
	struct trace_entry ent;
	int pid;
	__u64 clone_flags;
};

/* sched/sched_process_exit (kernel >= 6.16 has its own event with group_dead) */
struct trace_event_raw_sched_process_exit {
	struct trace_entry ent;
	int pid;
	bool group_dead;
};

/*
 * oom/mark_victim. total_vm (and uid, rss...) arrived when the tracepoint's
 * TP_PROTO became (struct task_struct *task, uid_t uid) instead of (int pid):
 * its presence in the kernel's BTF tells a raw_tp program what args[0] is.
 */
struct trace_event_raw_mark_victim {
	struct trace_entry ent;
	int pid;
	unsigned long total_vm;
};

/*
 * cgroup/cgroup_mkdir (event class `cgroup`, kernel >= 4.13; `id` is a u64
 * since 5.5). `root` is the hierarchy id: 0 is always the default (cgroup v2)
 * hierarchy, the "0::" line of /proc/<pid>/cgroup; v1 hierarchies are 1..N.
 * `__data_loc_path`: offset (low 16 bits, from the record start) and length
 * (high 16 bits, NUL included) of the path string inside the record.
 */
struct trace_event_raw_cgroup {
	struct trace_entry ent;
	int root;
	int level;
	__u64 id;
	__u32 __data_loc_path;
};

/* ---- kernel objects read through CO-RE ---- */

typedef struct {
	int counter;
} atomic_t;

struct signal_struct {
	atomic_t live;
};

/* cgroup v2 id = kernfs node id (the directory's inode number), 5.5+. */
struct kernfs_node {
	__u64 id;
};

struct cgroup_root {
	int hierarchy_id; /* 0: the default (v2) hierarchy */
};

struct cgroup {
	struct kernfs_node *kn;
	struct cgroup_root *root;
};

struct css_set {
	struct cgroup *dfl_cgrp; /* the task's cgroup in the unified (v2) hierarchy */
};

/* x86-64 syscall arguments: di, si, dx, r10, r8, r9; orig_ax is the syscall number. */
struct pt_regs {
	unsigned long r10;
	unsigned long r9;
	unsigned long r8;
	unsigned long ax;
	unsigned long dx;
	unsigned long si;
	unsigned long di;
	unsigned long orig_ax;
};

struct fdtable {
	unsigned int max_fds;
	struct file **fd; /* an RCU array: read each slot with bpf_probe_read_kernel */
};

struct files_struct {
	struct fdtable *fdt;
};

struct task_struct {
	int pid;
	int tgid;
	int exit_code;
	struct signal_struct *signal;
	struct css_set *cgroups;
	struct files_struct *files; /* src/l7.c: fd -> socket */
	struct mm_struct *mm;       /* src/l7.c: the executable, at exec */
};

struct ns_common {
	unsigned int inum;
};

struct net {
	struct ns_common ns;
};

typedef struct {
	struct net *net;
} possible_net_t;

struct in6_addr {
	union {
		__u8 u6_addr8[16];
		__be32 u6_addr32[4];
	} in6_u;
};

/*
 * The fields the tp_btf inet_sock_set_state program reads directly (the
 * classic tracepoint copies them into its record): in the kernel the
 * addresses and ports sit in anonymous unions (skc_addrpair, skc_portpair);
 * CO-RE matches members through anonymous ones, so they are declared flat.
 */
struct sock_common {
	__be32 skc_daddr;
	__be32 skc_rcv_saddr;
	__be16 skc_dport;
	__u16 skc_num; /* local port, host order (src/seed.c: listeners) */
	unsigned short skc_family;
	volatile unsigned char skc_state; /* read by scan_active (src/tcp.c) */
	possible_net_t skc_net;
	struct in6_addr skc_v6_daddr;
	struct in6_addr skc_v6_rcv_saddr;
	unsigned long skc_flags; /* sk_flags; moved here from struct sock in 6.x */
};

struct super_block {
	unsigned int s_dev; /* dev_t */
};

struct inode {
	unsigned long i_ino;
	struct super_block *i_sb;
};

struct file {
	struct inode *f_inode;
	void *private_data; /* a socket's struct socket (src/l7.c) */
};

struct mm_struct {
	struct file *exe_file;
};

struct sock;

struct socket {
	struct file *file;
	struct sock *sk;
};

struct sock {
	struct sock_common __sk_common;
	__u16 sk_protocol; /* a u16 since 5.6 (a bitfield before) */
	struct socket *sk_socket; /* src/seed.c: the socket's inode, to find its owner */
};

/* The context of an `iter/tcp` program (src/seed.c). */
struct seq_file;

struct bpf_iter_meta {
	struct seq_file *seq;
};

struct bpf_iter__tcp {
	struct bpf_iter_meta *meta;
	struct sock_common *sk_common;
};

/* Local port in network order; unlike skc_num (inet_num) it is not cleared
 * when the port is released before the final -> CLOSE (e.g. TIME_WAIT). */
struct inet_sock {
	__be16 inet_sport;
};

/* Kernels before the move: sk_flags is a member of struct sock itself. */
struct sock___old {
	unsigned long sk_flags;
};

/* enum sock_flags: set by tcp_fin() when the peer's FIN was received in order. */
#define SOCK_DONE 1

/*
 * RFC 4898 counters kept by the kernel for every TCP socket (4.19+).
 * bytes_sent counts payload including retransmissions, bytes_retrans the
 * retransmitted payload; bytes_received counts sequence space received in
 * order, which includes the peer's FIN (one unit).
 */
struct tcp_sock {
	__u64 bytes_received;
	__u64 bytes_sent;
	__u64 bytes_retrans;
	/* Time (ns, CLOCK_MONOTONIC as bpf_ktime_get_ns) the kernel last
	 * stamped the socket with, refreshed for each received segment (4.20+). */
	__u64 tcp_clock_cache;
	/* Segments sent and received, all kinds (4.6+; what tcp_info's
	 * tcpi_segs_out/tcpi_segs_in and `ss -ti` show). */
	__u32 segs_out;
	__u32 segs_in;
};

#pragma clang attribute pop

#endif /* SONDE_KERNEL_H */
