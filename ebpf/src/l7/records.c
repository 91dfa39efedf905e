/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/* Records to the ring, socket lookup, readiness, TLS plaintext (included by src/l7.c). */

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
 * A record of the common shape (one buffer, at most L7_PAYLOAD_MAX bytes)
 * written in place in the ring: reserved in one of three sizes (the reserve
 * takes a constant), filled, and the payload read from user memory straight
 * into it. Cheaper than building it in the scratch record and copying it
 * (no copy; a read on the receiving side measured ~75 ns less per call with
 * bpf_stats, docs/benchmarks.md).
 */
#define L7_EMIT_IN_RING(cap)                                                                  \
	do {                                                                                  \
		struct l7_event *e = bpf_ringbuf_reserve(&events, L7_EVENT_HEADER + (cap), 0); \
		if (!e) {                                                                     \
			count_lost(LOST_L7_EVENT);                                            \
			return;                                                               \
		}                                                                             \
		l7_fill_header(e, EVENT_L7_DATA, k, s, direction, size, flags, ts);           \
		/* A bound the verifier sees: clang would drop the compare, \
		 * which the branch that chose cap makes redundant. */     \
		asm volatile("" : "+r"(n));                                                   \
		if (n > (cap))                                                                \
			n = (cap);                                                            \
		if (n && bpf_probe_read_user(e->payload, n, (void *)ubuf) != 0)               \
			n = 0;                                                                \
		e->payload_len = n;                                                           \
		s->shipped = 1;                                                               \
		bpf_ringbuf_submit(e, wakeup_flags(L7_EVENT_HEADER + (cap)));                 \
		return;                                                                       \
	} while (0)

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
	if (iov_cnt <= 1 && s->protocol != L7_HTTP2) {
		__u64 n = avail < size ? avail : size;
		if (n <= 128)
			L7_EMIT_IN_RING(128);
		if (n <= 256)
			L7_EMIT_IN_RING(256);
		L7_EMIT_IN_RING(L7_PAYLOAD_MAX);
	}
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
	if (bpf_ringbuf_output(&events, e, L7_EVENT_HEADER + n, wakeup_flags(L7_EVENT_HEADER + n)) != 0)
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
	if (bpf_ringbuf_output(&events, e, L7_EVENT_HEADER + 4, wakeup_flags(L7_EVENT_HEADER + 4)) != 0)
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
		if (l7_register_sock(sk, k->fd, L7_ROLE_UNKNOWN, 0, 0) == 0)
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
	if (size == 0)
		return;
	struct l7_sock_key k = {.tgid = tgid, .fd = fd};
	struct l7_sock *s = bpf_map_lookup_elem(&l7_sockets, &k);
	if (!s) {
		/* Not registered yet: the socket hooks register a socket at its
		 * first data, and a Go Write ships its plaintext before the
		 * handshake's first byte; or a connection older than the agent. */
		struct sock *sk = l7_fd_sock(fd);
		if (!sk || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP ||
		    l7_register_sock(sk, fd, l7_tcp_role(sk), 0, 0) != 0)
			return;
		s = bpf_map_lookup_elem(&l7_sockets, &k);
		if (!s)
			return;
	}
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
