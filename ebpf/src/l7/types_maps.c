/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/* Types, limits and maps of the L7 programs (included by src/l7.c). */

struct l7_iovec {
	__u64 base;
	__u64 len;
};

struct l7_user_msghdr {
	__u64 msg_name;
	__u32 msg_namelen;
	__u32 _pad;
	__u64 msg_iov;
	__u64 msg_iovlen;
	__u64 msg_control;
	__u64 msg_controllen;
	__u32 msg_flags;
	__u32 _pad2;
};

struct l7_user_mmsghdr {
	struct l7_user_msghdr hdr;
	__u32 msg_len;
	__u32 _pad;
};

/* The syscall tracepoints' records (uapi format: common fields, the
 * syscall number, then each argument as 8 bytes). */
struct l7_sys_enter {
	__u64 common;
	__s64 nr;
	__u64 args[6];
};

struct l7_sys_exit {
	__u64 common;
	__s64 nr;
	__s64 ret;
};

#define L7_TLS_CIPHER 254 /* socket carries TLS records: only plaintext is shipped */
#define EINPROGRESS 115
#define L7_SOCKETS_MAX 32768
#define L7_THREADS_MAX 16384
/* Most iovecs of a vectored call that are summed and gathered from: grpc
 * writes an HTTP/2 header block from a slice per header (24 iovecs for one
 * unary call's HEADERS and DATA), netty a slice per frame. */
#define L7_IOV_GATHER 32

struct l7_sock_key {
	__u32 tgid;
	__u32 fd;
};

struct l7_sock {
	__u64 conn_ts;
	__u32 netns;
	__u16 family;
	__u16 sport;
	__u16 dport;
	__u8 role;
	__u8 protocol; /* enum l7_protocol, L7_TLS_CIPHER, or L7_UNKNOWN until classified */
	__u8 shipped;  /* a record was emitted: a close must be reported */
	__u8 tls;      /* plaintext came from a TLS probe (src/tls.c): the socket's
			* own bytes are ciphertext and never shipped */
	__u8 held;     /* a first request-direction call of exactly 4 bytes (a length
			* prefix read or written apart from its message) is held in
			* `prefix`; the next call classifies with it (l7_ready) */
	__u8 _pad;
	__u32 prefix;
	__u8 saddr[16];
	__u8 daddr[16];
	/* The socket's cookie (unique for the boot) when the socket hooks
	 * registered it (src/l7/socket_hooks.c): an fd that now names another
	 * socket is told by it. 0: registered by the syscall hooks, or by a TLS
	 * probe before the socket's first data (adopted by that data). */
	__u64 cookie;
};

/* Registered sockets. LRU: a process that exits without close() leaves its
 * entries behind; the least recently used go first. 32768 x ~100 bytes. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, L7_SOCKETS_MAX);
	__type(key, struct l7_sock_key);
	__type(value, struct l7_sock);
} l7_sockets SEC(".maps");

/*
 * One bit per process id (PID_MAX_LIMIT is 4M: 64K words, 512 KiB): set when a
 * process registers a socket, never cleared (a stale bit only costs the hash
 * lookup it would have cost anyway). The reads and writes of a process that
 * never had one, most of a node's file and pipe I/O, end at this array load,
 * which the verifier inlines: no hash computed.
 */
#define L7_PID_WORDS 65536
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, L7_PID_WORDS);
	__type(key, __u32);
	__type(value, __u64);
} l7_pids SEC(".maps");

static __always_inline int l7_pid_has_sockets(__u32 tgid)
{
	__u32 word = tgid >> 6;
	__u64 *w = bpf_map_lookup_elem(&l7_pids, &word);
	return w && (*w & (1ULL << (tgid & 63)));
}

static __always_inline void l7_pid_mark(__u32 tgid)
{
	__u32 word = tgid >> 6;
	__u64 *w = bpf_map_lookup_elem(&l7_pids, &word);
	if (w && !(*w & (1ULL << (tgid & 63))))
		__sync_fetch_and_or(w, 1ULL << (tgid & 63));
}

/*
 * fds of processes that may hold inherited sockets (their bit is set) known
 * not to be TCP sockets: a forked child's file and pipe I/O resolves its fd
 * once, not on every call. Entries go at close() or by LRU.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, L7_THREADS_MAX);
	__type(key, struct l7_sock_key);
	__type(value, __u8);
} l7_not_sockets SEC(".maps");

/* connect() in progress: its fd, per thread, from entry to exit. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, L7_THREADS_MAX);
	__type(key, __u64);
	__type(value, __u32);
} l7_connects SEC(".maps");

enum l7_read_kind { L7_READ_PLAIN = 0, L7_READ_IOV = 1, L7_READ_MSG = 2 };

struct l7_read {
	__u64 buf; /* buffer, iovec array or msghdr, by kind */
	__u32 fd;
	__u16 kind;
	__u16 armed; /* a read is in progress; 0 once its exit has taken it */
	__u64 cnt;   /* readv: the iovec count */
};

/*
 * A read on a registered socket in progress, per thread. A thread's slot stays
 * after its read returns, disarmed, and is re-armed in place by its next read:
 * an LRU insert and delete on every read cost ~0.7 us per read pair on this
 * VM (docs/benchmarks.md), a lookup and a store cost tens of ns. Slots of
 * exited threads go by LRU.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, L7_THREADS_MAX);
	__type(key, __u64);
	__type(value, struct l7_read);
} l7_reads SEC(".maps");

/*
 * Processes that ever entered a TLS library call (src/tls.c), one bit per
 * process id modulo 65536 (8 KiB), never cleared. A socket syscall of a
 * process whose bit is clear cannot be inside an SSL call, so it skips the
 * l7_tls_calls lookup; a bit shared by two ids costs only that lookup.
 */
#define L7_TLS_PID_WORDS 1024
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, L7_TLS_PID_WORDS);
	__type(key, __u32);
	__type(value, __u64);
} l7_tls_pids SEC(".maps");

static __always_inline int l7_tls_pid_maybe(__u32 tgid)
{
	__u32 word = (tgid >> 6) & (L7_TLS_PID_WORDS - 1);
	__u64 *w = bpf_map_lookup_elem(&l7_tls_pids, &word);
	return w && (*w & (1ULL << (tgid & 63)));
}

static __always_inline void l7_tls_pid_mark(__u32 tgid)
{
	__u32 word = (tgid >> 6) & (L7_TLS_PID_WORDS - 1);
	__u64 *w = bpf_map_lookup_elem(&l7_tls_pids, &word);
	if (w && !(*w & (1ULL << (tgid & 63))))
		__sync_fetch_and_or(w, 1ULL << (tgid & 63));
}

/* TLS library calls in progress, per thread (filled by src/tls.c). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, L7_THREADS_MAX);
	__type(key, __u64);
	__type(value, struct l7_tls_call);
} l7_tls_calls SEC(".maps");

/* The TLS library call this thread is inside, if any. */
static __always_inline struct l7_tls_call *l7_tls_call_of(__u64 id)
{
	if (!l7_tls_pid_maybe(id >> 32))
		return NULL;
	return bpf_map_lookup_elem(&l7_tls_calls, &id);
}

/* The record is built here: it is larger than the BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct l7_event);
} l7_scratch SEC(".maps");
