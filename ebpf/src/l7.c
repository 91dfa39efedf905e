/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * L7: the reads and writes of application-protocol connections.
 *
 * Hooks (classic syscall tracepoints, kernel >= 4.7 with BTF for CO-RE; no
 * kprobes, which many kernels, this one included, do not have):
 *   syscalls/sys_{enter,exit}_connect   a connect() that succeeded or is in
 *       progress registers its socket in `l7_sockets` as a client: TCP always,
 *       UDP only to port 53 (DNS).
 *   syscalls/sys_exit_accept, sys_exit_accept4   an accepted TCP socket is
 *       registered as a server.
 *   syscalls/sys_enter_close   forgets the socket (and tells userspace, if
 *       it ever shipped data, so its parser state goes too).
 *   syscalls/sys_enter_{write,writev,sendto,sendmsg,sendmmsg}   egress.
 *   syscalls/sys_{enter,exit}_{read,readv,recvfrom,recvmsg}   ingress: the
 *       buffer is remembered at entry and copied at exit.
 *
 * Cost. These run on every read and write of every process, files and pipes
 * included, so the fast path is one hash lookup of {tgid, fd} that misses
 * (plus, for reads, one lookup at exit). A socket is classified once, on its
 * first data in the request direction (a client's first write, a server's
 * first read), from its first bytes: a protocol (HTTP/1, HTTP/2, Postgres,
 * Redis; DNS by port at registration), TLS ciphertext, or nothing (a first
 * call of exactly 4 bytes, a length prefix, waits for the next: l7_ready). Only a
 * classified socket's reads and writes are copied to the ring: a header and
 * at most L7_PAYLOAD_MAX bytes, in a record of the copied size. Everything
 * that must be exact (request/response matching, pipelining, HTTP/2 streams,
 * status) is parsed in userspace (crates/l7).
 *
 * Sockets are keyed by {tgid, fd}: threads share a process's fds. An fd
 * closed by exit() rather than close() stays in the LRU map until evicted; a
 * new socket on the same fd replaces it (conn_ts tells userspace it is new).
 * Sockets older than the agent are not registered (their fds are unknown).
 *
 * TLS: src/tls.c's uprobes leave the library call in progress in
 * `l7_tls_calls`; the socket write it makes ships the call's plaintext
 * instead of the ciphertext, and the socket read it makes names the fd the
 * plaintext is shipped for when the call returns (l7_emit_plaintext).
 */

/* Userspace layouts (uapi, stable): not CO-RE relocated. */
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

/* ---- classification ---- */

/*
 * The first 16 bytes are held as two little-endian words, not a byte array:
 * clang turns chains of byte compares on a stack array into pointer
 * arithmetic the verifier refuses ("bitwise operator on pointer").
 */
struct l7_head {
	__u64 w0;
	__u64 w1;
};

static __always_inline __u8 l7_b(const struct l7_head *h, int i)
{
	return i < 8 ? (h->w0 >> (8 * i)) & 0xff : (h->w1 >> (8 * (i - 8))) & 0xff;
}

static __always_inline __u64 l7_mask(int n)
{
	return n >= 8 ? ~0ULL : (1ULL << (8 * (n & 7))) - 1;
}

/* The first n (<= 8) bytes of w0 equal the first n of s. */
#define L7_PREFIX(h, s, n) (((h)->w0 & l7_mask(n)) == l7_word(s, n))

static __always_inline __u64 l7_word(const char *s, int n)
{
	__u64 w = 0;
#pragma unroll
	for (int i = 0; i < 8; i++)
		if (i < n)
			w |= (__u64)(__u8)s[i] << (8 * i);
	return w;
}

static __always_inline int l7_is_http1_request(const struct l7_head *h)
{
	return L7_PREFIX(h, "GET ", 4) || L7_PREFIX(h, "POST ", 5) || L7_PREFIX(h, "PUT ", 4) ||
	       L7_PREFIX(h, "HEAD ", 5) || L7_PREFIX(h, "DELETE ", 7) || L7_PREFIX(h, "PATCH ", 6) ||
	       L7_PREFIX(h, "OPTIONS ", 8) || L7_PREFIX(h, "CONNECT ", 8) || L7_PREFIX(h, "TRACE ", 6);
}

/* "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n": every HTTP/2 connection without TLS
 * (h2c prior knowledge, gRPC) starts with it. */
static __always_inline int l7_is_http2_preface(const struct l7_head *h)
{
	return L7_PREFIX(h, "PRI * HT", 8) && (h->w1 & 0xffffffff) == l7_word("TP/2", 4);
}

/* Postgres: a connection starts with a StartupMessage (length, protocol
 * 3.0), an SSLRequest or a GSSENCRequest (length 8, magic code). */
static __always_inline int l7_is_postgres_start(const struct l7_head *h, __u32 size)
{
	__u32 len = bpf_ntohl((__u32)h->w0);
	__u32 code = bpf_ntohl((__u32)(h->w0 >> 32));
	if (len != size || len < 8 || len > 10000)
		return 0;
	return code == 196608 || code == 80877103 || code == 80877104;
}

/* Redis: a command is an array of bulk strings: "*<n>\r\n$". */
static __always_inline int l7_is_redis_command(const struct l7_head *h)
{
	__u8 b1 = l7_b(h, 1), b2 = l7_b(h, 2);
	if (l7_b(h, 0) != '*' || b1 < '1' || b1 > '9')
		return 0;
	if (b2 == '\r')
		return l7_b(h, 3) == '\n' && l7_b(h, 4) == '$';
	return b2 >= '0' && b2 <= '9' && l7_b(h, 3) == '\r' && l7_b(h, 4) == '\n' &&
	       l7_b(h, 5) == '$';
}

/* A TLS handshake record: ContentType 22, version 3.x. */
static __always_inline int l7_is_tls_record(const struct l7_head *h)
{
	return l7_b(h, 0) == 0x16 && l7_b(h, 1) == 0x03 && l7_b(h, 2) <= 0x04;
}

/*
 * Issue 16's protocols: a few compares each on a connection's first bytes
 * (formats: the protocols' specifications; what counts as a request is the
 * parsers' business, crates/l7).
 */
static __always_inline __u32 l7_be32(__u64 w, int byte)
{
	return bpf_ntohl((__u32)(w >> (8 * byte)));
}

/* AMQP 0-9-1: the client's protocol header "AMQP\0\0\x09\x01". */
static __always_inline int l7_is_amqp(const struct l7_head *h)
{
	return L7_PREFIX(h, "AMQP", 4) && (h->w0 >> 32) == 0x01090000;
}

/* NATS: the client's "CONNECT {" or "PING"/"PUB "/"SUB " after it. */
static __always_inline int l7_is_nats_client(const struct l7_head *h)
{
	return L7_PREFIX(h, "CONNECT ", 8) && l7_b(h, 8) == '{';
}

/* Memcached text commands, and the binary protocol's request magic. */
static __always_inline int l7_is_memcached(const struct l7_head *h, __u32 size)
{
	if (l7_b(h, 0) == 0x80 && size >= 24 && l7_b(h, 1) <= 0x48)
		return 1;
	return L7_PREFIX(h, "get ", 4) || L7_PREFIX(h, "gets ", 5) || L7_PREFIX(h, "set ", 4) ||
	       L7_PREFIX(h, "add ", 4) || L7_PREFIX(h, "replace ", 8) || L7_PREFIX(h, "append ", 7) ||
	       L7_PREFIX(h, "prepend ", 8) || L7_PREFIX(h, "cas ", 4) || L7_PREFIX(h, "delete ", 7) ||
	       L7_PREFIX(h, "incr ", 5) || L7_PREFIX(h, "decr ", 5) || L7_PREFIX(h, "touch ", 6) ||
	       L7_PREFIX(h, "gat ", 4) || L7_PREFIX(h, "gats ", 5) || L7_PREFIX(h, "version\r", 8) ||
	       L7_PREFIX(h, "stats", 5) || L7_PREFIX(h, "flush_al", 8) || L7_PREFIX(h, "mg ", 3) ||
	       L7_PREFIX(h, "ms ", 3) || L7_PREFIX(h, "md ", 3);
}

/* MongoDB: a message header (little endian) whose length is the write's,
 * responseTo 0, and an opcode a client sends (OP_MSG, OP_QUERY, OP_COMPRESSED). */
static __always_inline int l7_is_mongo(const struct l7_head *h, __u32 size)
{
	__u32 len = (__u32)h->w0;
	__u32 response_to = (__u32)h->w1;
	__u32 op = (__u32)(h->w1 >> 32);
	return len == size && len >= 16 && response_to == 0 && (op == 2013 || op == 2004 || op == 2012);
}

/* Kafka: size (big endian) = the rest of the write, a known API key and version. */
static __always_inline int l7_is_kafka(const struct l7_head *h, __u32 size)
{
	__u32 len = l7_be32(h->w0, 0);
	__u16 key = ((__u16)l7_b(h, 4) << 8) | l7_b(h, 5);
	__u16 ver = ((__u16)l7_b(h, 6) << 8) | l7_b(h, 7);
	return size >= 12 && len == size - 4 && key <= 74 && ver <= 20 && l7_b(h, 8) < 0x80;
}

/* Cassandra CQL v3-v5: request version byte, an opcode a client opens with or
 * queries with, body length = the rest of the write. */
static __always_inline int l7_is_cassandra(const struct l7_head *h, __u32 size)
{
	__u8 v = l7_b(h, 0), op = l7_b(h, 4);
	__u32 len = ((__u32)l7_b(h, 5) << 24) | ((__u32)l7_b(h, 6) << 16) |
		    ((__u32)l7_b(h, 7) << 8) | l7_b(h, 8);
	if (v < 3 || v > 5 || size < 9 || len != size - 9)
		return 0;
	return op == 0x01 || op == 0x05 || op == 0x07 || op == 0x09 || op == 0x0a || op == 0x0d ||
	       op == 0x0b || op == 0x0f;
}

/* ZooKeeper: the session's ConnectRequest, length 44 or 45, protocol version 0. */
static __always_inline int l7_is_zookeeper(const struct l7_head *h, __u32 size)
{
	__u32 len = l7_be32(h->w0, 0);
	return (len == 44 || len == 45) && size == len + 4 && (__u32)(h->w0 >> 32) == 0;
}

/* Dubbo2: magic 0xdabb and the request flag. */
static __always_inline int l7_is_dubbo2(const struct l7_head *h)
{
	return l7_b(h, 0) == 0xda && l7_b(h, 1) == 0xbb && (l7_b(h, 2) & 0x80);
}

/* ClickHouse native: the client's Hello packet (type 0) naming a ClickHouse client. */
static __always_inline int l7_is_clickhouse(const struct l7_head *h)
{
	if (l7_b(h, 0) != 0 || l7_b(h, 1) < 8 || l7_b(h, 1) > 64)
		return 0;
	__u8 c = l7_b(h, 2) | 0x20;
	return c == 'c' && (l7_b(h, 3) | 0x20) == 'l' && (l7_b(h, 4) | 0x20) == 'i' &&
	       (l7_b(h, 5) | 0x20) == 'c' && (l7_b(h, 6) | 0x20) == 'k';
}

/* FoundationDB: a ConnectPacket, whose protocol version starts 0x0FDB00B0, or
 * 0x1FDB00B0 with the object serializer flag (0x1000000000000000) every
 * FoundationDB >= 6.2 sets. */
static __always_inline int l7_is_foundationdb(const struct l7_head *h)
{
	return ((__u32)h->w1 & ~0x10000000u) == 0x0FDB00B0;
}

/* Server-first protocols, classified from the server's greeting (a client's
 * first read, a server's first write). MySQL: packet 0 of protocol 10; NATS:
 * "INFO {". */
static __always_inline __u8 l7_classify_greeting(__u64 ubuf, __u32 size)
{
	struct l7_head h = {};
	if (size < 8 || bpf_probe_read_user(&h.w0, 8, (void *)ubuf) != 0)
		return L7_UNKNOWN;
	__u32 len = (__u32)h.w0 & 0xffffff;
	if (l7_b(&h, 3) == 0 && l7_b(&h, 4) == 0x0a && len + 4 <= size && len < 1024)
		return L7_MYSQL;
	if (L7_PREFIX(&h, "INFO {", 6))
		return L7_NATS;
	return L7_UNKNOWN;
}

/*
 * The protocol of a connection from its first 16 request-direction bytes
 * (w0, w1: little-endian words) and the size of the data they begin; L7_NONE
 * when none matches. A global function: the verifier checks it once on its
 * own instead of in every program that classifies.
 */
__attribute__((noinline)) int l7_classify_head(__u64 w0, __u64 w1, __u32 size)
{
	struct l7_head hd = {.w0 = w0, .w1 = w1};
	const struct l7_head *h = &hd;
	if (size < 4)
		return L7_NONE;
	if (l7_is_http2_preface(h))
		return L7_HTTP2;
	if (l7_is_nats_client(h))
		return L7_NATS;
	if (l7_is_http1_request(h))
		return L7_HTTP;
	if (l7_is_redis_command(h))
		return L7_REDIS;
	if (size >= 8 && l7_is_postgres_start(h, size))
		return L7_POSTGRES;
	if (l7_is_tls_record(h))
		return L7_TLS_CIPHER;
	if (l7_is_amqp(h))
		return L7_RABBITMQ;
	if (l7_is_mongo(h, size))
		return L7_MONGO;
	/* ZooKeeper before Kafka: a ConnectRequest (length 44/45, protocol
	 * version 0, lastZxidSeen 0) also reads as a Kafka Produce v0 header. */
	if (l7_is_zookeeper(h, size))
		return L7_ZOOKEEPER;
	if (l7_is_kafka(h, size))
		return L7_KAFKA;
	if (l7_is_cassandra(h, size))
		return L7_CASSANDRA;
	if (l7_is_dubbo2(h))
		return L7_DUBBO2;
	if (l7_is_clickhouse(h))
		return L7_CLICKHOUSE;
	if (l7_is_foundationdb(h))
		return L7_FOUNDATIONDB;
	if (l7_is_memcached(h, size))
		return L7_MEMCACHED;
	return L7_NONE;
}

/* The first 16 bytes at ubuf (fewer when the call moved fewer: the rest 0). */
static __always_inline int l7_read_head(struct l7_head *h, __u64 ubuf, __u32 size)
{
	if (bpf_probe_read_user(h, sizeof(*h), (void *)ubuf) == 0)
		return 0;
	/* Fewer than 16 readable bytes: read what the call moved. */
	h->w1 = 0;
	if (size >= sizeof(*h) || bpf_probe_read_user(&h->w0, 8, (void *)ubuf) != 0)
		return -1;
	return 0;
}

/* The protocol of a connection from its first request-direction bytes;
 * L7_NONE when none matches. */
static __always_inline __u8 l7_classify(__u64 ubuf, __u32 size)
{
	struct l7_head h = {};
	if (size < 4 || l7_read_head(&h, ubuf, size) != 0)
		return L7_NONE;
	return l7_classify_head(h.w0, h.w1, size);
}

/*
 * The protocol of a connection whose first request-direction call moved only
 * a 4-byte length prefix (held in l7_sock.prefix: a ZooKeeper or Kafka server
 * reads each packet's length apart from its body), from that prefix and the
 * next call's bytes at ubuf (size of them), as if one call had moved both.
 */
static __always_inline __u8 l7_classify_held(__u32 prefix, __u64 ubuf, __u32 size)
{
	struct l7_head t = {};
	if (size == 0 || l7_read_head(&t, ubuf, size) != 0)
		return L7_NONE;
	return l7_classify_head((__u64)prefix | (t.w0 << 32), (t.w0 >> 32) | (t.w1 << 32),
				size + 4);
}

/* ---- sockets ---- */

/* The struct sock behind an fd of the current task; NULL if it is none. */
static __always_inline struct sock *l7_fd_sock(__u32 fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	if (!fdt || fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *f = NULL;
	if (bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]) != 0 || !f)
		return NULL;
	struct socket *sock = BPF_CORE_READ(f, private_data);
	/* Only a socket's file points at a struct socket pointing back at it. */
	if (!sock || BPF_CORE_READ(sock, file) != f)
		return NULL;
	return BPF_CORE_READ(sock, sk);
}

/* Fills the socket's addresses (v4-mapped for AF_INET, as tcp_event). */
static __always_inline int l7_sock_tuple(struct sock *sk, struct l7_sock *s)
{
	s->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	s->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	s->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	s->netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	if (s->family == AF_INET) {
		__be32 src = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__be32 dst = BPF_CORE_READ(sk, __sk_common.skc_daddr);
		s->saddr[10] = 0xff;
		s->saddr[11] = 0xff;
		__builtin_memcpy(&s->saddr[12], &src, 4);
		s->daddr[10] = 0xff;
		s->daddr[11] = 0xff;
		__builtin_memcpy(&s->daddr[12], &dst, 4);
		return 0;
	}
	if (s->family == AF_INET6) {
		BPF_CORE_READ_INTO(&s->saddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&s->daddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
		return 0;
	}
	return -1;
}

static __always_inline int l7_register_sock(struct sock *sk, __u32 fd, __u8 role, int dns_only);

static __always_inline void l7_register(__u32 fd, __u8 role, int dns_only)
{
	struct sock *sk = l7_fd_sock(fd);
	if (sk)
		l7_register_sock(sk, fd, role, dns_only);
}

/* Registers fd's socket; 0 when it was registered. */
static __always_inline int l7_register_sock(struct sock *sk, __u32 fd, __u8 role, int dns_only)
{
	__u16 proto = BPF_CORE_READ(sk, sk_protocol);
	struct l7_sock s = {};
	if (l7_sock_tuple(sk, &s) != 0)
		return -1;
	if (proto == IPPROTO_UDP) {
		if (s.dport != 53)
			return -1;
		s.protocol = L7_DNS;
	} else if (proto == IPPROTO_TCP) {
		if (dns_only)
			return -1;
		s.protocol = s.dport == 53 && role == L7_CLIENT ? L7_DNS : L7_UNKNOWN;
	} else {
		return -1;
	}
	s.role = role;
	s.conn_ts = bpf_ktime_get_ns();
	struct l7_sock_key k = {.tgid = bpf_get_current_pid_tgid() >> 32, .fd = fd};
	if (bpf_map_update_elem(&l7_sockets, &k, &s, BPF_ANY) != 0) {
		count_lost(LOST_L7_SOCKETS);
		return -1;
	}
	l7_pid_mark(k.tgid);
	return 0;
}

/* An unconnected UDP socket's first datagram to port 53 (sockaddr at uaddr):
 * a DNS client socket, its peer the datagram's destination. */
static __always_inline void l7_register_unconnected_dns(__u32 fd, __u64 uaddr, __u16 family)
{
	struct sock *sk = l7_fd_sock(fd);
	if (!sk || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_UDP)
		return;
	struct l7_sock s = {};
	if (l7_sock_tuple(sk, &s) != 0)
		return;
	__builtin_memset(s.daddr, 0, 16);
	if (family == AF_INET) {
		s.daddr[10] = 0xff;
		s.daddr[11] = 0xff;
		if (bpf_probe_read_user(&s.daddr[12], 4, (void *)(uaddr + 4)) != 0)
			return;
		s.family = AF_INET;
	} else {
		if (bpf_probe_read_user(s.daddr, 16, (void *)(uaddr + 8)) != 0)
			return;
		s.family = AF_INET6;
	}
	s.dport = 53;
	s.protocol = L7_DNS;
	s.role = L7_CLIENT;
	s.conn_ts = bpf_ktime_get_ns();
	struct l7_sock_key k = {.tgid = bpf_get_current_pid_tgid() >> 32, .fd = fd};
	if (bpf_map_update_elem(&l7_sockets, &k, &s, BPF_ANY) != 0)
		count_lost(LOST_L7_SOCKETS);
	else
		l7_pid_mark(k.tgid);
}

/* ---- records ---- */


/*
 * Copies the first cap (<= L7_PAYLOAD_MAX_H2) bytes of an iovec array's data
 * into the scratch record's payload; returns how many. A global function:
 * the verifier checks it once on its own, instead of walking its loop again
 * in every program that calls it (inlined, the loop made them too large).
 */
__attribute__((noinline)) int l7_gather(__u64 iov, __u64 iov_cnt, __u64 cap)
{
	__u32 zero = 0;
	struct l7_event *e = bpf_map_lookup_elem(&l7_scratch, &zero);
	if (!e)
		return 0;
	__u64 n = 0;
	for (int i = 0; i < L7_IOV_GATHER; i++) {
		if (i >= iov_cnt || n >= cap)
			break;
		struct l7_iovec v;
		if (bpf_probe_read_user(&v, sizeof(v), (void *)(iov + i * sizeof(v))) != 0)
			break;
		__u64 len = v.len < cap - n ? v.len : cap - n;
		__u64 off = n & (L7_PAYLOAD_MAX_H2 - 1); /* n < cap <= 4096 */
		len &= 0x1fff;
		if (len > L7_PAYLOAD_MAX_H2)
			len = L7_PAYLOAD_MAX_H2;
		if (len && bpf_probe_read_user(&e->payload[off], len, (void *)v.base) != 0)
			break;
		n = off + len;
	}
	return n;
}

/* The total bytes of an iovec array's first L7_IOV_GATHER entries (global,
 * like l7_gather). */
__attribute__((noinline)) __u64 l7_iov_sum(__u64 iov, __u64 cnt)
{
	__u64 total = 0;
	for (int i = 0; i < L7_IOV_GATHER; i++) {
		if (i >= cnt)
			break;
		struct l7_iovec v;
		if (bpf_probe_read_user(&v, sizeof(v), (void *)(iov + i * sizeof(v))) != 0)
			break;
		total += v.len;
	}
	return total;
}

/* The record header of socket s (k) in the scratch record e; payload_len 0. */
static __always_inline void l7_fill_header(struct l7_event *e, __u32 type, struct l7_sock_key *k,
					   struct l7_sock *s, __u8 direction, __u32 size,
					   __u8 flags, __u64 ts)
{
	e->type = type;
	e->pid = k->tgid;
	e->fd = k->fd;
	e->conn_ts = s->conn_ts;
	e->ts_ns = ts;
	e->cgroup_id = bpf_get_current_cgroup_id();
	e->size = size;
	e->payload_len = 0;
	e->direction = direction;
	e->role = s->role;
	e->protocol = s->protocol;
	e->flags = flags;
	e->family = s->family;
	e->sport = s->sport;
	e->dport = s->dport;
	e->netns = s->netns;
	e->_pad = 0;
	__builtin_memcpy(e->saddr, s->saddr, 16);
	__builtin_memcpy(e->daddr, s->daddr, 16);
}

/*
 * One record: the header and the first bytes of the data, from ubuf (avail
 * bytes there), or, when iov_cnt > 1, gathered from the iovec array at iov
 * in order. The record never carries more than the protocol's window; the
 * scratch record's payload is twice the largest window so the verifier can
 * see every gathered copy stay inside it.
 */
static __always_inline void l7_emit(struct l7_sock_key *k, struct l7_sock *s, __u8 direction,
				    __u32 size, __u64 ubuf, __u64 avail, __u8 flags, __u64 ts,
				    __u64 iov, __u64 iov_cnt)
{
	__u32 zero = 0;
	struct l7_event *e = bpf_map_lookup_elem(&l7_scratch, &zero);
	if (!e)
		return;
	l7_fill_header(e, EVENT_L7_DATA, k, s, direction, size, flags, ts);
	__u64 cap = s->protocol == L7_HTTP2 ? L7_PAYLOAD_MAX_H2 : L7_PAYLOAD_MAX;
	if (cap > size)
		cap = size;
	__u64 n = 0;
	if (iov_cnt > 1) {
		n = l7_gather(iov, iov_cnt, cap);
	} else {
		n = avail < cap ? avail : cap;
		n &= 0x1fff; /* a bound the verifier sees */
		if (n > L7_PAYLOAD_MAX_H2)
			n = L7_PAYLOAD_MAX_H2;
		if (n && bpf_probe_read_user(e->payload, n, (void *)ubuf) != 0)
			n = 0;
	}
	n &= 0x1fff;
	if (n > L7_PAYLOAD_MAX_H2)
		n = L7_PAYLOAD_MAX_H2;
	e->payload_len = n;
	s->shipped = 1;
	if (bpf_ringbuf_output(&events, e, L7_EVENT_HEADER + n, wakeup_flags()) != 0)
		count_lost(LOST_L7_EVENT);
}

/*
 * The held 4-byte prefix (l7_sock.prefix) as a record of its own, just before
 * the record of the call that classified the socket with it: the parser sees
 * the stream as the process moved it. Stamped with that call's time (the
 * prefix's own call is a few microseconds earlier; only a connection's first
 * message, a handshake for ZooKeeper and Kafka, is timed from it).
 */
static __always_inline void l7_emit_held(struct l7_sock_key *k, struct l7_sock *s, __u8 direction,
					 __u64 ts)
{
	__u32 zero = 0;
	struct l7_event *e = bpf_map_lookup_elem(&l7_scratch, &zero);
	if (!e)
		return;
	l7_fill_header(e, EVENT_L7_DATA, k, s, direction, 4, 0, ts);
	__builtin_memcpy(e->payload, &s->prefix, 4);
	e->payload_len = 4;
	s->shipped = 1;
	if (bpf_ringbuf_output(&events, e, L7_EVENT_HEADER + 4, wakeup_flags()) != 0)
		count_lost(LOST_L7_EVENT);
}

/*
 * A socket this process did not connect or accept itself: inherited across
 * fork (Postgres's backends serve the connections the postmaster accepted;
 * prefork servers) or passed in. Registered on its first read or write, its
 * role guessed as coroot does for connections older than the agent: the end
 * with the lower port is the server. Anything else is remembered as not a
 * socket, so a file's I/O resolves its fd once.
 */
static __always_inline struct l7_sock *l7_adopt_inherited(struct l7_sock_key *k)
{
	if (bpf_map_lookup_elem(&l7_not_sockets, k))
		return NULL;
	struct sock *sk = l7_fd_sock(k->fd);
	if (sk && BPF_CORE_READ(sk, sk_protocol) == IPPROTO_TCP &&
	    BPF_CORE_READ(sk, __sk_common.skc_state) == TCP_ESTABLISHED) {
		/* Role unknown: its first data decides (l7_guess_role). */
		if (l7_register_sock(sk, k->fd, L7_ROLE_UNKNOWN, 0) == 0)
			return bpf_map_lookup_elem(&l7_sockets, k);
		return NULL;
	}
	__u8 one = 1;
	bpf_map_update_elem(&l7_not_sockets, k, &one, BPF_ANY);
	return NULL;
}

/*
 * An adopted socket's role, from its first data: the end that receives first
 * serves (HTTP, Postgres, Redis ...: the client speaks first). Ports would say
 * it only when the server's is below the ephemeral range; a server-first
 * protocol (MySQL's greeting) on an inherited socket is not classified.
 */
static __always_inline void l7_guess_role(struct l7_sock *s, __u8 direction)
{
	if (s->role == L7_ROLE_UNKNOWN)
		s->role = direction == L7_INGRESS ? L7_SERVER : L7_CLIENT;
}

/* The socket of fd if it is registered and worth a look. */
static __always_inline struct l7_sock *l7_lookup(struct l7_sock_key *k, __u32 fd)
{
	k->tgid = bpf_get_current_pid_tgid() >> 32;
	k->fd = fd;
	if (!l7_pid_has_sockets(k->tgid))
		return NULL;
	struct l7_sock *s = bpf_map_lookup_elem(&l7_sockets, k);
	if (!s)
		s = l7_adopt_inherited(k);
	if (!s || s->protocol == L7_NONE)
		return NULL;
	return s;
}

/* What l7_ready decided about a call's data. */
enum l7_ship { L7_SKIP = 0, L7_SHIP = 1, L7_SHIP_HELD = 2 /* the held prefix first */ };

/*
 * Classifies the socket on its first request-direction data; says whether
 * (and how) its data is to be shipped. A first call of exactly 4 bytes is
 * held, not judged: servers of length-prefixed protocols read the prefix
 * apart from the message (ZooKeeper's and Kafka's Java servers read 4 bytes,
 * then the body), and 4 bytes match nothing. The next request-direction call
 * classifies with the prefix in front (once: a second miss is L7_NONE).
 */
static __always_inline int l7_ready(struct l7_sock *s, __u8 direction, __u64 ubuf, __u32 size)
{
	if (s->tls)
		return L7_SKIP;
	if (s->protocol != L7_UNKNOWN)
		return s->protocol != L7_TLS_CIPHER ? L7_SHIP : L7_SKIP;
	l7_guess_role(s, direction);
	__u8 request_dir = s->role == L7_CLIENT ? L7_EGRESS : L7_INGRESS;
	if (direction != request_dir) {
		/* The server spoke first: a greeting (MySQL, NATS), or wait. */
		s->protocol = l7_classify_greeting(ubuf, size);
		return s->protocol != L7_UNKNOWN ? L7_SHIP : L7_SKIP;
	}
	if (s->held) {
		s->held = 0;
		s->protocol = l7_classify_held(s->prefix, ubuf, size);
		return s->protocol != L7_NONE && s->protocol != L7_TLS_CIPHER ? L7_SHIP_HELD
									       : L7_SKIP;
	}
	if (size == 4) {
		if (bpf_probe_read_user(&s->prefix, 4, (void *)ubuf) != 0) {
			s->protocol = L7_NONE;
			return L7_SKIP;
		}
		s->held = 4;
		return L7_SKIP;
	}
	s->protocol = l7_classify(ubuf, size);
	return s->protocol != L7_NONE && s->protocol != L7_TLS_CIPHER ? L7_SHIP : L7_SKIP;
}

/*
 * Plaintext of a TLS library call (src/tls.c, or a socket write during an
 * SSL_write): classified as its own connection's first bytes when the socket
 * is not classified yet or carries ciphertext.
 */
static __always_inline void l7_emit_plaintext(void *ctx, __u32 tgid, __u32 fd, __u64 ubuf,
					      __u32 size, __u8 direction)
{
	struct l7_sock_key k = {.tgid = tgid, .fd = fd};
	struct l7_sock *s = bpf_map_lookup_elem(&l7_sockets, &k);
	if (!s || size == 0)
		return;
	if (s->protocol == L7_TLS_CIPHER || s->protocol == L7_UNKNOWN || s->protocol == L7_NONE) {
		l7_guess_role(s, direction);
		__u8 request_dir = s->role == L7_CLIENT ? L7_EGRESS : L7_INGRESS;
		if (direction != request_dir)
			return;
		__u8 p = l7_classify(ubuf, size);
		if (p == L7_NONE || p == L7_TLS_CIPHER)
			return;
		s->protocol = p;
	}
	/* From now on the syscall path ships nothing of this socket: its
	 * ClientHello (a Go Write ships its plaintext before the handshake it
	 * starts), records and close_notify are ciphertext. */
	s->tls = 1;
	l7_emit(&k, s, direction, size, ubuf, size, L7_FLAG_TLS, bpf_ktime_get_ns(), 0, 0);
}

/* ---- egress ---- */

/* A write of size bytes on the registered socket s (key k), the first avail
 * of them at ubuf. */
static __always_inline void l7_on_write_sock(void *ctx, struct l7_sock_key *kp,
					     struct l7_sock *s, __u64 ubuf, __u64 avail,
					     __u32 size, __u64 iov, __u64 iov_cnt)
{
	struct l7_sock_key k = *kp;
	__u32 fd = k.fd;
	__u64 id = bpf_get_current_pid_tgid();
	struct l7_tls_call *tls = l7_tls_call_of(id);
	if (tls) {
		if (tls->is_write && !tls->fd_known) {
			tls->fd = fd;
			tls->fd_known = 1;
			l7_emit_plaintext(ctx, k.tgid, fd, tls->buf, tls->len, L7_EGRESS);
		}
		return; /* ciphertext */
	}
	int ship = l7_ready(s, L7_EGRESS, ubuf, size);
	if (ship == L7_SKIP)
		return;
	__u64 ts = bpf_ktime_get_ns();
	if (ship == L7_SHIP_HELD)
		l7_emit_held(&k, s, L7_EGRESS, ts);
	l7_emit(&k, s, L7_EGRESS, size, ubuf, avail, 0, ts, iov, iov_cnt);
}

/* A write of size bytes, the first avail of them at ubuf. */
static __always_inline void l7_on_write(void *ctx, __u32 fd, __u64 ubuf, __u64 avail, __u32 size,
				       __u64 iov, __u64 iov_cnt)
{
	struct l7_sock_key k;
	struct l7_sock *s = l7_lookup(&k, fd);
	if (s)
		l7_on_write_sock(ctx, &k, s, ubuf, avail, size, iov, iov_cnt);
}

SEC("tracepoint/syscalls/sys_enter_write")
int l7_enter_write(struct l7_sys_enter *ctx)
{
	__u32 size = ctx->args[2];
	l7_on_write(ctx, ctx->args[0], ctx->args[1], size, size, 0, 0);
	return 0;
}

static __always_inline void l7_on_sendto(void *ctx, __u32 fd, __u64 buf, __u32 size, __u64 addr)
{
	if (addr) {
		/* An unconnected UDP socket sending to port 53: a DNS client
		 * (musl's resolver never connects its socket). */
		struct l7_sock_key k = {.tgid = bpf_get_current_pid_tgid() >> 32, .fd = fd};
		if (!bpf_map_lookup_elem(&l7_sockets, &k)) {
			__u16 sa[2] = {};
			if (bpf_probe_read_user(sa, sizeof(sa), (void *)addr) == 0 &&
			    (sa[0] == AF_INET || sa[0] == AF_INET6) && sa[1] == bpf_htons(53))
				l7_register_unconnected_dns(fd, addr, sa[0]);
		}
	}
	l7_on_write(ctx, fd, buf, size, size, 0, 0);
}

SEC("tracepoint/syscalls/sys_enter_sendto")
int l7_enter_sendto(struct l7_sys_enter *ctx)
{
	l7_on_sendto(ctx, ctx->args[0], ctx->args[1], ctx->args[2], ctx->args[4]);
	return 0;
}

/* Total bytes of an iovec array (its first 1 + L7_IOV_GATHER entries) and its first buffer
 * (read once: the sum starts after it). */
static __always_inline __u32 l7_iov_total(__u64 iov, __u64 cnt, struct l7_iovec *first)
{
	if (bpf_probe_read_user(first, sizeof(*first), (void *)iov) != 0)
		return 0;
	__u64 total = first->len;
	if (cnt > 1)
		total += l7_iov_sum(iov + sizeof(*first), cnt - 1);
	return total > 0xffffffff ? 0xffffffff : total;
}

static __always_inline void l7_on_writev(void *ctx, __u32 fd, __u64 iov, __u64 cnt)
{
	struct l7_sock_key k;
	struct l7_sock *s = l7_lookup(&k, fd);
	if (!s)
		return;
	struct l7_iovec first;
	__u32 size = l7_iov_total(iov, cnt, &first);
	if (size)
		l7_on_write_sock(ctx, &k, s, first.base, first.len, size, iov, cnt);
}

SEC("tracepoint/syscalls/sys_enter_writev")
int l7_enter_writev(struct l7_sys_enter *ctx)
{
	l7_on_writev(ctx, ctx->args[0], ctx->args[1], ctx->args[2]);
	return 0;
}

static __always_inline void l7_on_sendmsg(void *ctx, struct l7_sock_key *k, struct l7_sock *s,
					  __u64 umsg)
{
	struct l7_user_msghdr m;
	if (bpf_probe_read_user(&m, sizeof(m), (void *)umsg) != 0 || !m.msg_iovlen)
		return;
	struct l7_iovec first;
	__u32 size = l7_iov_total(m.msg_iov, m.msg_iovlen, &first);
	if (size)
		l7_on_write_sock(ctx, k, s, first.base, first.len, size, m.msg_iov, m.msg_iovlen);
}

static __always_inline void l7_on_sendmsg_call(void *ctx, __u32 fd, __u64 umsg)
{
	struct l7_sock_key k;
	struct l7_sock *s = l7_lookup(&k, fd);
	if (s)
		l7_on_sendmsg(ctx, &k, s, umsg);
}

SEC("tracepoint/syscalls/sys_enter_sendmsg")
int l7_enter_sendmsg(struct l7_sys_enter *ctx)
{
	l7_on_sendmsg_call(ctx, ctx->args[0], ctx->args[1]);
	return 0;
}

/* glibc's resolver sends its A and AAAA queries in one sendmmsg: the first
 * two messages are shipped. */
static __always_inline void l7_on_sendmmsg(void *ctx, __u32 fd, __u64 vec, __u32 vlen)
{
	struct l7_sock_key k;
	struct l7_sock *s = l7_lookup(&k, fd);
	if (!s)
		return;
	if (vlen >= 1)
		l7_on_sendmsg(ctx, &k, s, vec);
	if (vlen >= 2)
		l7_on_sendmsg(ctx, &k, s, vec + sizeof(struct l7_user_mmsghdr));
}

SEC("tracepoint/syscalls/sys_enter_sendmmsg")
int l7_enter_sendmmsg(struct l7_sys_enter *ctx)
{
	l7_on_sendmmsg(ctx, ctx->args[0], ctx->args[1], ctx->args[2]);
	return 0;
}

/* ---- ingress ---- */

static __always_inline void l7_enter_read_common(__u32 fd, __u64 buf, __u32 kind, __u64 cnt)
{
	struct l7_sock_key k;
	if (!l7_lookup(&k, fd))
		return;
	__u64 id = bpf_get_current_pid_tgid();
	struct l7_tls_call *tls = l7_tls_call_of(id);
	if (tls) {
		if (!tls->is_write) {
			tls->fd = fd;
			tls->fd_known = 1;
		}
		return; /* ciphertext: the plaintext is shipped when the call returns */
	}
	struct l7_read *slot = bpf_map_lookup_elem(&l7_reads, &id);
	if (slot) {
		slot->buf = buf;
		slot->fd = fd;
		slot->kind = kind;
		slot->cnt = cnt;
		slot->armed = 1;
		return;
	}
	struct l7_read r = {.buf = buf, .fd = fd, .kind = kind, .armed = 1, .cnt = cnt};
	bpf_map_update_elem(&l7_reads, &id, &r, BPF_ANY);
}

static __always_inline void l7_exit_read_common(__s64 ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	if (!l7_pid_has_sockets(id >> 32))
		return;
	struct l7_read *r = bpf_map_lookup_elem(&l7_reads, &id);
	if (!r || !r->armed)
		return;
	struct l7_read rd = *r;
	r->armed = 0;
	if (ret <= 0)
		return;
	__u32 size = ret;
	__u64 ts = bpf_ktime_get_ns();
	__u64 buf = rd.buf;
	__u64 avail = size;
	__u64 iov = 0, iov_cnt = 0;
	if (rd.kind != L7_READ_PLAIN) {
		iov = rd.buf;
		iov_cnt = rd.cnt;
		if (rd.kind == L7_READ_MSG) {
			struct l7_user_msghdr m;
			if (bpf_probe_read_user(&m, sizeof(m), (void *)rd.buf) != 0 || !m.msg_iovlen)
				return;
			iov = m.msg_iov;
			iov_cnt = m.msg_iovlen;
		}
		struct l7_iovec first;
		if (bpf_probe_read_user(&first, sizeof(first), (void *)iov) != 0)
			return;
		buf = first.base;
		avail = first.len;
	}
	struct l7_sock_key k = {.tgid = id >> 32, .fd = rd.fd};
	struct l7_sock *s = bpf_map_lookup_elem(&l7_sockets, &k);
	if (!s)
		return;
	int ship = l7_ready(s, L7_INGRESS, buf, avail < size ? avail : size);
	if (ship == L7_SKIP)
		return;
	if (ship == L7_SHIP_HELD)
		l7_emit_held(&k, s, L7_INGRESS, ts);
	l7_emit(&k, s, L7_INGRESS, size, buf, avail, 0, ts, iov, iov_cnt);
}

SEC("tracepoint/syscalls/sys_enter_read")
int l7_enter_read(struct l7_sys_enter *ctx)
{
	l7_enter_read_common(ctx->args[0], ctx->args[1], L7_READ_PLAIN, 0);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_recvfrom")
int l7_enter_recvfrom(struct l7_sys_enter *ctx)
{
	l7_enter_read_common(ctx->args[0], ctx->args[1], L7_READ_PLAIN, 0);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_readv")
int l7_enter_readv(struct l7_sys_enter *ctx)
{
	l7_enter_read_common(ctx->args[0], ctx->args[1], L7_READ_IOV, ctx->args[2]);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_recvmsg")
int l7_enter_recvmsg(struct l7_sys_enter *ctx)
{
	l7_enter_read_common(ctx->args[0], ctx->args[1], L7_READ_MSG, 0);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_read")
int l7_exit_read(struct l7_sys_exit *ctx)
{
	l7_exit_read_common(ctx->ret);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_recvfrom")
int l7_exit_recvfrom(struct l7_sys_exit *ctx)
{
	l7_exit_read_common(ctx->ret);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_readv")
int l7_exit_readv(struct l7_sys_exit *ctx)
{
	l7_exit_read_common(ctx->ret);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_recvmsg")
int l7_exit_recvmsg(struct l7_sys_exit *ctx)
{
	l7_exit_read_common(ctx->ret);
	return 0;
}

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
	if (s->shipped) {
		__u32 zero = 0;
		struct l7_event *e = bpf_map_lookup_elem(&l7_scratch, &zero);
		if (e) {
			l7_fill_header(e, EVENT_L7_CLOSE, &k, s, 0, 0, 0, bpf_ktime_get_ns());
			if (bpf_ringbuf_output(&events, e, L7_EVENT_HEADER, wakeup_flags()) != 0)
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
