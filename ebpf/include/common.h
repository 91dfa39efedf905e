/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * Shared maps, event layouts and the ring-buffer emit helper.
 *
 * The event structs below are the wire format decoded by
 * crates/tracer/src/decode.rs: keep the two in sync (the Rust unit tests pin
 * every offset). All integers are in host byte order; ports are host order
 * (the tracepoints convert them); addresses are network order bytes.
 */
#ifndef SONDE_COMMON_H
#define SONDE_COMMON_H

#include "kernel.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

enum event_type {
	EVENT_PROCESS_START = 1,
	EVENT_PROCESS_EXIT = 2,
	EVENT_OOM_KILL = 3,
	EVENT_LISTEN_OPEN = 4,
	EVENT_LISTEN_CLOSE = 5,
	EVENT_CONNECT_OK = 6,
	EVENT_CONNECT_FAILED = 7,
	EVENT_CONNECTION_CLOSED = 8,
	EVENT_RETRANSMIT = 9,
	EVENT_CGROUP_CREATED = 10,
	EVENT_L7_DATA = 11,
	EVENT_L7_CLOSE = 12,
	EVENT_PROCESS_EXEC = 13,
};

/* 24 bytes. */
struct proc_event {
	__u32 type;
	__u32 pid;       /* tgid */
	__u32 ppid;      /* ProcessStart: tgid of the forking task */
	__s32 exit_code; /* ProcessExit: raw wait status (code << 8 | signal) */
	__u64 cgroup_id; /* ProcessStart: cgroup v2 id of the forking task;
			  * ProcessExit: the exiting task's (its last cgroup);
			  * OomKill: cgroup v2 id of the victim (see src/proc.c) */
};

/*
 * 24 bytes. EVENT_PROCESS_EXEC: a process exec'd a file the TLS attacher has
 * not looked at yet (src/l7.c, tls_exec_files), with the wakeup forced so a
 * Go program is looked at while it runs, not 0.2 s after its fork.
 */
struct exec_event {
	__u32 type;
	__u32 pid; /* tgid */
	__u64 ino; /* the executable's inode (mm->exe_file) */
	__u32 dev; /* and its superblock's s_dev (kernel encoding) */
	__u32 _pad;
};

/* 104 bytes. */
struct tcp_event {
	__u32 type;
	__u32 pid;
	__u64 sock;        /* kernel socket address: an opaque connection id */
	__u64 duration_ns; /* ConnectOk, ConnectionClosed: CLOSE->SYN_SENT to ESTABLISHED (0: unknown) */
	__u64 bytes_sent;  /* ConnectionClosed: payload sent, retransmits excluded */
	__u64 bytes_received; /* ConnectionClosed: payload received, FIN excluded */
	__u32 netns;       /* inode of the socket's network namespace */
	__u16 family;      /* AF_INET / AF_INET6 */
	__u16 sport;
	__u16 dport;
	__u16 _pad[3];
	__u8 saddr[16];    /* AF_INET: first 4 bytes */
	__u8 daddr[16];
	__u64 cgroup_id;   /* cgroup v2 id of the connecting (listening) task, taken
			    * when it acted: attribution without /proc (0: unknown) */
	__u32 segs_out;    /* ConnectionClosed: segments sent (tcp_sock.segs_out) */
	__u32 segs_in;     /* ConnectionClosed: segments received (tcp_sock.segs_in) */
};

/*
 * 88 bytes: one TCP socket that existed when the tracer started, written by
 * the `seed_sockets` iterator (src/seed.c) to its seq_file, read once at
 * start by crates/tracer/src/seed.rs.
 */
struct seed_record {
	__u64 sock;           /* kernel socket address: the `active` map's key */
	__u64 inode;          /* socket inode, to find the owning process */
	__u64 bytes_sent;     /* as in tcp_event, at iteration time */
	__u64 bytes_received;
	__u32 netns;
	__u16 family;
	__u16 sport;
	__u16 dport;
	__u16 state;          /* TCP_ESTABLISHED ... TCP_LISTEN */
	__u32 segs_out;
	__u32 segs_in;
	__u32 _pad;
	__u8 saddr[16];       /* v4-mapped for AF_INET, as in tcp_event */
	__u8 daddr[16];
};

/*
 * Longest cgroup path reported, NUL included (paths of 255 bytes at most).
 * Docker ("/docker/<64 hex>", 72) and systemd-driver Kubernetes paths (~190)
 * fit; a longer path is dropped and counted in LOST_CGROUP_MKDIR.
 */
#define CGROUP_PATH_MAX 256

/*
 * Variable size: 16-byte header + path_len bytes of path (no NUL; at most
 * CGROUP_PATH_MAX - 1). A dedicated record so the fixed-size process and TCP
 * events stay small.
 */
struct cgroup_event {
	__u32 type;      /* EVENT_CGROUP_CREATED */
	__u32 path_len;  /* bytes of path that follow the header */
	__u64 cgroup_id; /* cgroup v2 id: inode of the cgroup's directory */
	char path[CGROUP_PATH_MAX]; /* as /proc/<pid>/cgroup shows it: "/docker/<id>" */
};

/*
 * Index into the per-CPU `lost` counter. Slots 0-4 and 6: events of that
 * program dropped because the ring was full (slot 6, cgroup_mkdir, also counts
 * paths too long to report). Slot 5: TCP connects whose tracking state was
 * lost (see src/tcp.c). Userspace maps the index to a name
 * (crates/tracer/src/loader.rs PROGRAMS and LOST_TCP_UNTRACKED).
 */
enum lost_slot {
	LOST_TASK_NEWTASK = 0,
	LOST_PROCESS_EXIT = 1,
	LOST_MARK_VICTIM = 2,
	LOST_SOCK_STATE = 3,
	LOST_RETRANSMIT = 4,
	LOST_TCP_UNTRACKED = 5,
	LOST_CGROUP_MKDIR = 6, /* after tcp_untracked: the TCP programs keep their slots */
	LOST_L7_EVENT = 7,     /* l7_event (data, close, TLS) or exec_event dropped: ring full */
	LOST_L7_SOCKETS = 8,   /* sockets not registered for L7 (map update failed) */
	LOST_SLOTS = 16,
};

/*
 * Wake the reader once a CPU has written this many bytes to the ring since it
 * last woke it; below that the reader polls on a short timer. Set by the
 * loader (a `.rodata` global) to the ring's wakeup share divided by the number
 * of CPUs, so the ring never holds more than the share unread without a
 * wakeup. 0 means wake on every event.
 */
const volatile __u64 wakeup_bytes = 0;

/*
 * Bytes this CPU wrote since it last woke the reader. Counted per CPU rather
 * than asking the ring (bpf_ringbuf_query) on every record: the ring's
 * consumer position is a cache line the reader writes on another CPU
 * (bpf_ringbuf_query was 0.6-0.7 % of all samples under ab; docs/benchmarks.md).
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} ring_unwoken SEC(".maps");

/* The one ring buffer all programs write to. Size set by the loader. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} events SEC(".maps");

/* Events dropped because the ring was full, per program slot, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LOST_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

static __always_inline void count_lost(__u32 slot)
{
	__u64 *n = bpf_map_lookup_elem(&lost, &slot);
	if (n)
		*n += 1; /* per-CPU slot: no atomics needed */
}

/* The ring flags for a record of size bytes: a forced wakeup once this CPU has
 * written wakeup_bytes since its last one, else none. */
static __always_inline __u64 wakeup_flags(__u64 size)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&ring_unwoken, &zero);
	if (!n)
		return 0; /* the ring's own rule: wake when the reader has caught up */
	__u64 total = *n + size;
	if (total >= wakeup_bytes) {
		*n = 0;
		return BPF_RB_FORCE_WAKEUP;
	}
	*n = total; /* per-CPU slot: no atomics needed */
	return BPF_RB_NO_WAKEUP;
}

static __always_inline void emit(void *data, __u64 size, __u32 slot)
{
	if (bpf_ringbuf_output(&events, data, size, wakeup_flags(size)) != 0)
		count_lost(slot);
}

/*
 * L7 (application protocols), see src/l7.c and docs/l7.md.
 *
 * enum l7_protocol: the numbers of crates/l7 `Protocol` (and coroot's).
 * L7_NONE marks a socket whose first request-direction data matched no
 * protocol: it is never looked at again.
 */
enum l7_protocol {
	L7_UNKNOWN = 0,
	L7_HTTP = 1,
	L7_POSTGRES = 2,
	L7_REDIS = 3,
	L7_MEMCACHED = 4,
	L7_MYSQL = 5,
	L7_MONGO = 6,
	L7_KAFKA = 7,
	L7_CASSANDRA = 8,
	L7_RABBITMQ = 9,
	L7_NATS = 10,
	L7_HTTP2 = 11,
	L7_DUBBO2 = 12,
	L7_DNS = 13,
	L7_CLICKHOUSE = 14,
	L7_ZOOKEEPER = 15,
	L7_FOUNDATIONDB = 16,
	L7_NONE = 255,
};

/* Payload bytes copied per read/write: crates/l7 PAYLOAD_MAX. HTTP/2 gets
 * more (PAYLOAD_MAX_HTTP2): HPACK's dynamic table makes every header block
 * depend on all earlier ones, and gRPC writes several frames at once, so a
 * header block cut by the window would leave the connection undecodable. */
#define L7_PAYLOAD_MAX 512
#define L7_PAYLOAD_MAX_H2 4096

enum l7_direction { L7_EGRESS = 0, L7_INGRESS = 1 };
enum l7_role { L7_ROLE_UNKNOWN = 0, L7_CLIENT = 1, L7_SERVER = 2 }; /* unknown: adopted, not decided yet */
/* l7_event.flags */
#define L7_FLAG_TLS 1 /* plaintext from a TLS library's uprobe, not the socket's bytes */

/*
 * Variable size: 96-byte header + payload_len bytes (<= L7_PAYLOAD_MAX, or
 * L7_PAYLOAD_MAX_H2 for HTTP/2).
 * EVENT_L7_DATA: one read or write on a classified socket.
 * EVENT_L7_CLOSE: the socket's fd was closed (no payload; size 0).
 */
struct l7_event {
	__u32 type;        /* EVENT_L7_DATA / EVENT_L7_CLOSE */
	__u32 pid;         /* tgid */
	__u64 fd;
	__u64 conn_ts;     /* ktime when the socket was registered: (pid, fd, conn_ts) is one connection */
	__u64 ts_ns;       /* ktime: write at syscall entry, read at syscall exit */
	__u64 cgroup_id;   /* cgroup v2 id of the acting task */
	__u32 size;        /* bytes the call moved (write: asked; read: returned) */
	__u16 payload_len; /* bytes of payload that follow the header */
	__u8 direction;    /* enum l7_direction */
	__u8 role;         /* enum l7_role */
	__u8 protocol;     /* enum l7_protocol, as the kernel classified the socket */
	__u8 flags;        /* L7_FLAG_* */
	__u16 family;      /* AF_INET / AF_INET6 */
	__u16 sport;       /* local port, host order */
	__u16 dport;       /* peer port, host order */
	__u32 netns;
	__u32 _pad;
	__u8 saddr[16];    /* local address (v4-mapped for AF_INET, as tcp_event) */
	__u8 daddr[16];    /* peer address: for a client, what it connected to (before DNAT) */
	/* A record carries at most L7_PAYLOAD_MAX_H2 bytes; the scratch copy has
	 * twice that so the verifier sees gathered iovec copies stay inside. */
	__u8 payload[2 * L7_PAYLOAD_MAX_H2];
};
#define L7_EVENT_HEADER 96

/*
 * TLS plaintext hand-off (src/tls.c fills it, src/l7.c consumes it): a TLS
 * library call in progress on this thread, keyed by pid_tgid. While an
 * SSL_write/Go Write is in progress, the socket write it makes ships the
 * plaintext instead of the ciphertext; an SSL_read's socket read names the fd
 * its plaintext is shipped for when the read returns.
 */
struct l7_tls_call {
	__u64 buf;       /* user pointer to the plaintext */
	__u64 ssl;       /* SSL* (OpenSSL) or *tls.Conn (Go): the fd cache's key */
	__u32 len;       /* write: plaintext length */
	__u32 fd;        /* read: the fd its socket read used (learned in sys_enter_read*) */
	__u8 is_write;
	__u8 fd_known;
	__u8 _pad[6];
};

/*
 * The wire format, pinned: crates/tracer/src/decode.rs reads these offsets
 * (its constants and unit tests carry the same numbers), so a field moved here
 * fails the eBPF build instead of being misread.
 */
_Static_assert(sizeof(struct proc_event) == 24, "proc_event size: see decode.rs");
_Static_assert(__builtin_offsetof(struct proc_event, cgroup_id) == 16, "proc_event.cgroup_id");
_Static_assert(sizeof(struct exec_event) == 24, "exec_event size: see decode.rs");
_Static_assert(__builtin_offsetof(struct exec_event, ino) == 8, "exec_event.ino");
_Static_assert(__builtin_offsetof(struct exec_event, dev) == 16, "exec_event.dev");
_Static_assert(sizeof(struct tcp_event) == 104, "tcp_event size: see decode.rs");
_Static_assert(__builtin_offsetof(struct tcp_event, sock) == 8, "tcp_event.sock");
_Static_assert(__builtin_offsetof(struct tcp_event, duration_ns) == 16, "tcp_event.duration_ns");
_Static_assert(__builtin_offsetof(struct tcp_event, bytes_sent) == 24, "tcp_event.bytes_sent");
_Static_assert(__builtin_offsetof(struct tcp_event, bytes_received) == 32, "tcp_event.bytes_received");
_Static_assert(__builtin_offsetof(struct tcp_event, netns) == 40, "tcp_event.netns");
_Static_assert(__builtin_offsetof(struct tcp_event, sport) == 46, "tcp_event.sport");
_Static_assert(__builtin_offsetof(struct tcp_event, dport) == 48, "tcp_event.dport");
_Static_assert(__builtin_offsetof(struct tcp_event, saddr) == 56, "tcp_event.saddr");
_Static_assert(__builtin_offsetof(struct tcp_event, daddr) == 72, "tcp_event.daddr");
_Static_assert(__builtin_offsetof(struct tcp_event, cgroup_id) == 88, "tcp_event.cgroup_id");
_Static_assert(__builtin_offsetof(struct tcp_event, segs_out) == 96, "tcp_event.segs_out");
_Static_assert(__builtin_offsetof(struct tcp_event, segs_in) == 100, "tcp_event.segs_in");
_Static_assert(__builtin_offsetof(struct cgroup_event, path) == 16, "cgroup_event header");
_Static_assert(sizeof(struct seed_record) == 88, "seed_record size: see seed.rs");
_Static_assert(__builtin_offsetof(struct seed_record, netns) == 32, "seed_record.netns");
_Static_assert(__builtin_offsetof(struct seed_record, segs_out) == 44, "seed_record.segs_out");
_Static_assert(__builtin_offsetof(struct seed_record, saddr) == 56, "seed_record.saddr");
_Static_assert(__builtin_offsetof(struct seed_record, daddr) == 72, "seed_record.daddr");
_Static_assert(__builtin_offsetof(struct l7_event, payload) == L7_EVENT_HEADER, "l7_event header: see crates/tracer/src/l7.rs");
_Static_assert(__builtin_offsetof(struct l7_event, size) == 40, "l7_event.size");
_Static_assert(__builtin_offsetof(struct l7_event, family) == 50, "l7_event.family");
_Static_assert(__builtin_offsetof(struct l7_event, netns) == 56, "l7_event.netns");
_Static_assert(__builtin_offsetof(struct l7_event, saddr) == 64, "l7_event.saddr");
_Static_assert(__builtin_offsetof(struct l7_event, daddr) == 80, "l7_event.daddr");

#endif /* SONDE_COMMON_H */
