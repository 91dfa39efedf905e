/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * Outbound TCP connections, listening sockets and retransmits.
 *
 * Hooks:
 *   sock/inet_sock_set_state  every TCP state change. Two programs share one
 *                             state machine (on_transition):
 *       inet_sock_set_state_btf  tp_btf (kernel >= 5.5), preferred: gets the
 *                             tracepoint's arguments (sk, oldstate, newstate)
 *                             as they are, so the kernel builds no trace record
 *                             for it, and socket fields are plain loads
 *                             (tcp_sock's through bpf_skc_to_tcp_sock, 5.9+).
 *       inet_sock_set_state   the classic tracepoint (kernel >= 4.16), used
 *                             when tp_btf cannot be loaded or attached.
 *     It runs about ten times per loopback connection (both ends), on the
 *     connecting and accepting tasks' own time: this is the agent's cost to
 *     every application on the node, so it returns at once for transitions
 *     it ignores and does one hash-map operation per tracked transition.
 *       CLOSE -> SYN_SENT     connect() started. Runs in the connecting task:
 *                             the pid, start time and netns are kept in the
 *                             socket's `active` entry, state CONN_CONNECTING.
 *       SYN_SENT -> ESTABLISHED  connect succeeded (softirq: the current task
 *                             is meaningless; the pid comes from the entry).
 *                             Emits nothing: the entry is completed in place
 *                             (connect duration, up to the SYN-ACK's arrival
 *                             as the socket stamps it, see connect_duration;
 *                             addresses; CONN_ACTIVE), and
 *                             userspace learns the connection from its `active`
 *                             dump at scrape, or from its close record if it
 *                             closed before a scrape. One ring record per
 *                             connection instead of two: the records, not the
 *                             map work, were most of the tracer's cost to a
 *                             connect storm (docs/tracer.md).
 *       SYN_SENT -> CLOSE     connect failed (RST, timeout, unreachable).
 *       * -> CLOSE            a tracked connection ended. Emits ConnectionClosed
 *                             (written in place in the ring) with the connect
 *                             duration and the kernel's own
 *                             byte counters of the socket
 *                             (tcp_sock.bytes_sent - bytes_retrans, and
 *                             bytes_received less the FIN): no per-packet or
 *                             per-syscall cost. Untracked (inbound) sockets
 *                             cost one failed lookup.
 *       CLOSE -> LISTEN, LISTEN -> CLOSE  listening sockets.
 *     Accepted (inbound) sockets never pass CLOSE -> SYN_SENT, so they are never
 *     in `active` and never reported as connects.
 *
 *     Never silent: a program run can be skipped by the kernel (a softirq
 *     arriving while the same program, or for the classic tracepoint any
 *     tracing BPF program or BPF map syscall, is running on this CPU; the
 *     kernel counts it in the program's recursion_misses, which the loader
 *     adds to lost_events()), and a map update can fail (-ENOMEM when the LRU
 *     cannot find a free node, -EBUSY or -EDEADLK from the bucket lock). Each
 *     such loss of tracking state is counted in the LOST_TCP_UNTRACKED slot
 *     ("tcp_untracked"), and the connect is still reported when its end is
 *     seen:
 *       - SYN_SENT -> ESTABLISHED with no entry: an entry with pid 0
 *         (unknown) and duration 0 (unknown) is made, reported like any
 *         other; if even that insert fails, a ConnectOk record reports the
 *         connect at once (its close cannot be seen);
 *       - SYN_SENT -> CLOSE with no entry: ConnectFailed with pid 0;
 *       - -> CLOSE of a socket still CONN_CONNECTING (its ESTABLISHED was
 *         missed): ConnectionClosed with duration 0 (unknown) and bytes.
 *   tcp/tcp_retransmit_skb    a segment was retransmitted. Attributed through
 *                             `active` (SYN retransmits included); untracked
 *                             sockets are ignored. Two programs, one event:
 *       tcp_retransmit_skb_btf  tp_btf (kernel >= 5.5), preferred: the kernel
 *                             skips a tp_btf run only when the same program
 *                             is already running on this CPU, while it skips
 *                             a classic tracepoint program whenever any BPF
 *                             program or BPF map syscall holds this CPU (a
 *                             scrape's map dump, another agent's), and a
 *                             retransmit timer firing then was lost.
 *       tcp_retransmit_skb    the classic tracepoint (kernel >= 4.15), used
 *                             when tp_btf cannot be loaded or attached.
 *   raw_tp scan_active        never attached: run on demand by the loader with
 *                             BPF_PROG_TEST_RUN at scrape time. It walks `active`
 *                             (bpf_for_each_map_elem, kernel >= 5.13) and copies
 *                             each established socket's byte counters into the
 *                             map value, so userspace reads bytes of open
 *                             connections without any cost on the data path.
 *                             It also completes a connecting entry whose socket
 *                             is already established (its ESTABLISHED run was
 *                             skipped), so the connection is still reported,
 *                             and drops an established entry whose socket has
 *                             closed (its final CLOSE run was skipped), so the
 *                             connection stops showing as open.
 *
 * Minimum kernel: 5.13 (bpf_for_each_map_elem; the rest needs 5.8 ring buffers).
 */

/*
 * Tracked outbound sockets, connecting or established, keyed by the socket's
 * address; default size, the loader may override. One map for both states so
 * a connection costs one insert, two lookups and one delete. LRU so a lost
 * transition (e.g. a skipped final close) cannot leak an entry forever, and a
 * full map evicts the oldest entry instead of failing the insert (a
 * preallocated BPF_MAP_TYPE_HASH returns -E2BIG when full).
 */
#define ACTIVE_MAX 131072
#define LISTENERS_MAX 8192

enum conn_state {
	CONN_CONNECTING = 1, /* start_ns, pid, netns set; addresses not yet */
	CONN_ACTIVE = 2,     /* established: every field set */
};

/* 96 bytes; decoded by crates/tracer/src/decode.rs decode_connection. */
struct connection {
	__u64 bytes_sent;     /* refreshed by scan_active and at close */
	__u64 bytes_received;
	__u32 pid;
	__u32 netns;
	__u16 family;
	__u16 sport;
	__u16 dport;
	__u16 state;          /* enum conn_state */
	__u8 saddr[16];
	__u8 daddr[16];
	__u64 start_ns;       /* CLOSE -> SYN_SENT */
	__u64 duration_ns;    /* connect() to ESTABLISHED; 0: unknown (see header) */
	__u64 cgroup_id;      /* the connecting task's cgroup v2 id; 0: unknown */
	__u32 segs_out;       /* refreshed by scan_active, like the bytes */
	__u32 segs_in;
};

_Static_assert(sizeof(struct connection) == 96, "connection size: see decode.rs");
_Static_assert(__builtin_offsetof(struct connection, pid) == 16, "connection.pid");
_Static_assert(__builtin_offsetof(struct connection, sport) == 26, "connection.sport");
_Static_assert(__builtin_offsetof(struct connection, state) == 30, "connection.state");
_Static_assert(__builtin_offsetof(struct connection, saddr) == 32, "connection.saddr");
_Static_assert(__builtin_offsetof(struct connection, duration_ns) == 72, "connection.duration_ns");
_Static_assert(__builtin_offsetof(struct connection, cgroup_id) == 80, "connection.cgroup_id");
_Static_assert(__builtin_offsetof(struct connection, segs_out) == 88, "connection.segs_out");

struct listener {
	__u32 pid;
	__u32 netns;
	__u64 cgroup_id;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, ACTIVE_MAX);
	__type(key, __u64);
	__type(value, struct connection);
} active SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LISTENERS_MAX);
	__type(key, __u64);
	__type(value, struct listener);
} listeners SEC(".maps");

static __always_inline __u32 sk_netns(__u64 sk)
{
	return BPF_CORE_READ((struct sock *)sk, __sk_common.skc_net.net, ns.inum);
}

/*
 * Payload bytes of a socket, from the kernel's own counters: sent once
 * (retransmissions excluded) and received in order (the FIN, which occupies one
 * unit of sequence space, excluded).
 */
static __always_inline void bytes_from_counters(__u64 out, __u64 retrans, __u64 in,
						unsigned long flags, __u64 *sent, __u64 *received)
{
	if ((flags & (1UL << SOCK_DONE)) && in > 0)
		in -= 1;
	*sent = out > retrans ? out - retrans : 0;
	*received = in;
}

/* Probe reads: for the classic tracepoint and scan_active, which have no BTF
 * pointer to the socket. */
static __always_inline void sock_bytes(__u64 sk, __u64 *sent, __u64 *received)
{
	struct tcp_sock *tp = (struct tcp_sock *)sk;
	unsigned long flags;

	if (bpf_core_field_exists(((struct sock *)sk)->__sk_common.skc_flags))
		flags = BPF_CORE_READ((struct sock *)sk, __sk_common.skc_flags);
	else
		flags = BPF_CORE_READ((struct sock___old *)sk, sk_flags);
	bytes_from_counters(BPF_CORE_READ(tp, bytes_sent), BPF_CORE_READ(tp, bytes_retrans),
			    BPF_CORE_READ(tp, bytes_received), flags, sent, received);
}

/* Segments sent and received (all of them: handshake, pure ACKs and
 * retransmissions included, as `ss -ti` shows segs_out/segs_in). */
static __always_inline void sock_segs(__u64 sk, __u32 *out, __u32 *in)
{
	struct tcp_sock *tp = (struct tcp_sock *)sk;

	*out = BPF_CORE_READ(tp, segs_out);
	*in = BPF_CORE_READ(tp, segs_in);
}

/* The same from a BTF pointer (tp_btf): plain loads instead of four probe
 * reads (~70 ns per close, docs/tracer.md). */
static __always_inline void tcp_sock_bytes(struct tcp_sock *tp, __u64 *sent, __u64 *received)
{
	struct sock *sk = (struct sock *)tp;
	unsigned long flags;

	if (bpf_core_field_exists(sk->__sk_common.skc_flags))
		flags = sk->__sk_common.skc_flags;
	else
		flags = ((struct sock___old *)sk)->sk_flags;
	bytes_from_counters(tp->bytes_sent, tp->bytes_retrans, tp->bytes_received, flags, sent,
			    received);
}

/*
 * One state change, seen by either program: the classic tracepoint (its
 * record carries the addresses) or tp_btf (they are read from the socket
 * itself). `btf` is a constant in each program, so every handler below is
 * specialised per program and the other branch is compiled out.
 */
struct transition {
	struct trace_event_raw_inet_sock_set_state *record; /* classic only */
	struct sock *sk; /* tp_btf only: BTF pointer, read with direct loads */
	__u64 key;       /* the socket's address: map key and connection id */
	int btf;
};

/* The tracepoints store IPv4 addresses v4-mapped in the *_v6 fields too, so
 * one 16-byte copy serves both families; userspace unmaps. */
static __always_inline void addrs_from_state(struct tcp_event *e,
					     struct trace_event_raw_inet_sock_set_state *ctx)
{
	e->family = ctx->family;
	e->sport = ctx->sport;
	e->dport = ctx->dport;
	bpf_core_read(&e->saddr, sizeof(e->saddr), &ctx->saddr_v6);
	bpf_core_read(&e->daddr, sizeof(e->daddr), &ctx->daddr_v6);
}

/*
 * The same fields as the tracepoint's record, from the socket (what the
 * tracepoint copies; skc_rcv_saddr equals inet_saddr for a bound or connected
 * socket). The local port is inet_sport, as the tracepoint's: inet_num
 * (skc_num) is already 0 at the final close of a socket whose port was
 * released first (TIME_WAIT). inet_sock lies beyond struct sock, which a
 * direct load through the `struct sock` pointer may not reach: it is loaded
 * through `tp` (the same socket as a tcp_sock, see transition_tcp_sock) when
 * the caller has it, probe-read otherwise.
 * IPv4 addresses are v4-mapped like the record's (e is zeroed by the caller).
 */
static __always_inline void addrs_from_sock(struct tcp_event *e, struct sock *sk,
					    struct tcp_sock *tp)
{
	__u32 *src = (__u32 *)e->saddr, *dst = (__u32 *)e->daddr;
	__u16 family = sk->__sk_common.skc_family;

	e->family = family;
	if (tp)
		e->sport = bpf_ntohs(((struct inet_sock *)tp)->inet_sport);
	else
		e->sport = bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
	e->dport = bpf_ntohs(sk->__sk_common.skc_dport);
	/* The v6 fields exist only with CONFIG_IPV6 (then AF_INET6 can occur). */
	if (family == AF_INET6 && bpf_core_field_exists(sk->__sk_common.skc_v6_daddr)) {
		for (int i = 0; i < 4; i++) {
			src[i] = sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32[i];
			dst[i] = sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[i];
		}
	} else {
		src[2] = bpf_htonl(0xffff);
		src[3] = sk->__sk_common.skc_rcv_saddr;
		dst[2] = bpf_htonl(0xffff);
		dst[3] = sk->__sk_common.skc_daddr;
	}
}

/* `tp`: the socket as a tcp_sock (tp_btf), or NULL. */
static __always_inline void fill_addrs(struct tcp_event *e, const struct transition *t,
				       struct tcp_sock *tp)
{
	if (t->btf)
		addrs_from_sock(e, t->sk, tp);
	else
		addrs_from_state(e, t->record);
}

/*
 * The socket as a tcp_sock that tp_btf may load from directly (the
 * bpf_skc_to_tcp_sock helper checks it is a full TCP socket), so its fields
 * beyond struct sock cost plain loads instead of probe reads. NULL for the
 * classic tracepoint, whose program type has no such helper (the call is
 * compiled out there), and for a socket that is not a full one.
 */
static __always_inline struct tcp_sock *transition_tcp_sock(const struct transition *t)
{
	if (t->btf)
		return bpf_skc_to_tcp_sock(t->sk);
	return 0;
}

/*
 * Connect duration: from CLOSE -> SYN_SENT (start_ns, bpf_ktime_get_ns) to
 * the arrival of the SYN-ACK, which the kernel time-stamped in the socket
 * (tcp_clock_cache, refreshed from the same monotonic clock by
 * tcp_rcv_state_process just before it moves the socket to ESTABLISHED).
 * Reading the socket's stamp instead of the clock spares a clock read per
 * connection (~45 ns on the benchmark host, docs/tracer.md); the two differ
 * by the microseconds the kernel spends on the SYN-ACK. 0 (unknown) if the
 * stamp is not after the start.
 */
static __always_inline __u64 connect_duration(const struct transition *t, struct tcp_sock *tp,
					      __u64 start_ns)
{
	struct tcp_sock *probed = (struct tcp_sock *)t->key; /* outside the CO-RE read */
	__u64 now;

	if (tp)
		now = tp->tcp_clock_cache;
	else
		now = BPF_CORE_READ(probed, tcp_clock_cache);
	return now > start_ns ? now - start_ns : 0;
}

static __always_inline __u32 transition_netns(const struct transition *t)
{
	if (t->btf)
		return t->sk->__sk_common.skc_net.net->ns.inum;
	return sk_netns(t->key);
}

static __always_inline int on_listen(const struct transition *t, int newstate)
{
	__u64 sk = t->key;
	struct tcp_event e = {};
	fill_addrs(&e, t, 0);
	e.sock = sk;
	if (newstate == TCP_LISTEN) {
		struct listener l = {};
		l.pid = bpf_get_current_pid_tgid() >> 32;
		l.netns = transition_netns(t);
		l.cgroup_id = bpf_get_current_cgroup_id();
		bpf_map_update_elem(&listeners, &sk, &l, BPF_ANY);
		e.type = EVENT_LISTEN_OPEN;
		e.pid = l.pid;
		e.netns = l.netns;
		e.cgroup_id = l.cgroup_id;
	} else {
		struct listener *l = bpf_map_lookup_elem(&listeners, &sk);
		e.type = EVENT_LISTEN_CLOSE;
		if (l) {
			e.pid = l->pid;
			e.netns = l->netns;
			e.cgroup_id = l->cgroup_id;
			bpf_map_delete_elem(&listeners, &sk);
		} else {
			/* Opened before the tracer started: close() runs in the owner. */
			e.pid = bpf_get_current_pid_tgid() >> 32;
			e.netns = transition_netns(t);
			e.cgroup_id = bpf_get_current_cgroup_id();
		}
	}
	emit(&e, sizeof(e), LOST_SOCK_STATE);
	return 0;
}

/* Emits ConnectOk for an entry whose addresses are set. */
static __always_inline void emit_connect_ok(const struct connection *conn, __u64 sk,
					    __u64 duration_ns)
{
	struct tcp_event e = {};
	e.type = EVENT_CONNECT_OK;
	e.sock = sk;
	e.pid = conn->pid;
	e.netns = conn->netns;
	e.cgroup_id = conn->cgroup_id;
	e.duration_ns = duration_ns;
	e.family = conn->family;
	e.sport = conn->sport;
	e.dport = conn->dport;
	__builtin_memcpy(e.saddr, conn->saddr, sizeof(e.saddr));
	__builtin_memcpy(e.daddr, conn->daddr, sizeof(e.daddr));
	emit(&e, sizeof(e), LOST_SOCK_STATE);
}

/* Completes a CONN_CONNECTING entry in place: the connection is established.
 * The caller sets duration_ns first, so readers that see CONN_ACTIVE see it. */
static __always_inline void establish(const struct transition *t, struct tcp_sock *tp,
				      struct connection *conn)
{
	struct tcp_event a = {};
	fill_addrs(&a, t, tp);
	conn->family = a.family;
	conn->sport = a.sport;
	conn->dport = a.dport;
	__builtin_memcpy(conn->saddr, a.saddr, sizeof(conn->saddr));
	__builtin_memcpy(conn->daddr, a.daddr, sizeof(conn->daddr));
	/* Last (a compiler barrier keeps the order), so scan_active and the
	 * userspace dump skip the entry until its addresses are set. A reader on
	 * another CPU of a weakly ordered machine could still see the state
	 * first; the worst case is one scrape reading this connection's bytes
	 * without its addresses, which userspace drops as an unknown socket. */
	asm volatile("" ::: "memory");
	conn->state = CONN_ACTIVE;
}

static __always_inline void connect_failed(const struct transition *t, __u32 pid, __u32 netns,
					  __u64 cgroup_id)
{
	struct tcp_event e = {};
	fill_addrs(&e, t, 0);
	e.type = EVENT_CONNECT_FAILED;
	e.sock = t->key;
	e.pid = pid;
	e.netns = netns;
	e.cgroup_id = cgroup_id;
	emit(&e, sizeof(e), LOST_SOCK_STATE);
}

static __always_inline int on_connect_start(const struct transition *t)
{
	__u64 sk = t->key;
	struct connection c = {};
	c.start_ns = bpf_ktime_get_ns();
	c.pid = bpf_get_current_pid_tgid() >> 32;
	c.netns = transition_netns(t);
	/* The task's cgroup now, while it surely exists: attribution must not
	 * depend on the process still being there when userspace reads this. */
	c.cgroup_id = bpf_get_current_cgroup_id();
	c.state = CONN_CONNECTING;
	/* A failure here is counted; the connect is still reported at its
	 * end, with pid 0 (see on_connect_done). */
	if (bpf_map_update_elem(&active, &sk, &c, BPF_ANY) != 0)
		count_lost(LOST_TCP_UNTRACKED);
	return 0;
}

static __always_inline int on_connect_done(const struct transition *t, int newstate)
{
	/* Simultaneous open (SYN_SENT -> SYN_RECV): wait for the final state. */
	if (newstate != TCP_ESTABLISHED && newstate != TCP_CLOSE)
		return 0;

	__u64 sk = t->key;
	struct connection *conn = bpf_map_lookup_elem(&active, &sk);
	if (conn && conn->state == CONN_CONNECTING) {
		if (newstate == TCP_CLOSE) {
			__u32 pid = conn->pid, netns = conn->netns;
			__u64 cgroup_id = conn->cgroup_id;
			bpf_map_delete_elem(&active, &sk);
			connect_failed(t, pid, netns, cgroup_id);
			return 0;
		}
		struct tcp_sock *tp = transition_tcp_sock(t);
		conn->duration_ns = connect_duration(t, tp, conn->start_ns);
		establish(t, tp, conn);
		return 0;
	}

	/*
	 * CLOSE -> SYN_SENT was not recorded (its run was skipped or its map
	 * update failed, or the connect began before the tracer). The connect
	 * still happened: report it with pid 0 (unknown) and duration 0
	 * (unknown) so per-destination counts stay exact, and count it so the
	 * loss of attribution is visible.
	 */
	count_lost(LOST_TCP_UNTRACKED);
	__u32 netns = transition_netns(t);
	if (newstate == TCP_CLOSE) {
		connect_failed(t, 0, netns, 0);
		return 0;
	}
	struct connection c = {};
	c.netns = netns;
	establish(t, 0, &c);
	/* Kept like any connection (pid 0, duration 0): reported by the dump or
	 * at close. Without an entry neither sees it: report the connect now. */
	if (bpf_map_update_elem(&active, &sk, &c, BPF_ANY) != 0) {
		count_lost(LOST_TCP_UNTRACKED);
		emit_connect_ok(&c, sk, 0);
	}
	return 0;
}

static __always_inline int on_close(const struct transition *t, int oldstate)
{
	__u64 sk = t->key;
	struct connection *conn = bpf_map_lookup_elem(&active, &sk);
	if (!conn)
		return 0; /* inbound, or never tracked */
	if (conn->state != CONN_ACTIVE) {
		/*
		 * Still connecting after leaving SYN_SENT: the connect's final
		 * transition was never seen (its run was skipped, see
		 * lost_events(), or a simultaneous open went through SYN_RECV).
		 * Complete the entry now, so the close below reports the connect
		 * with its bytes. Duration unknown: 0 (as the entry has it).
		 */
		count_lost(LOST_TCP_UNTRACKED);
		if (oldstate == TCP_SYN_RECV) {
			__u32 pid = conn->pid, netns = conn->netns;
			__u64 cgroup_id = conn->cgroup_id;
			bpf_map_delete_elem(&active, &sk);
			connect_failed(t, pid, netns, cgroup_id);
			return 0;
		}
		establish(t, 0, conn);
	}

	/*
	 * The record is written in place in the ring (reserve, fill, submit)
	 * rather than built on the stack and copied: this is the hottest record.
	 * Every field is set, as the ring's memory holds older records. The
	 * entry is read before it is deleted, and deleted before the record is
	 * submitted (userspace's exactness argument relies on that order, see
	 * crates/tracer/src/conntrack.rs).
	 */
	struct tcp_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		bpf_map_delete_elem(&active, &sk);
		count_lost(LOST_SOCK_STATE);
		return 0;
	}
	e->type = EVENT_CONNECTION_CLOSED;
	e->pid = conn->pid;
	e->sock = sk;
	e->duration_ns = conn->duration_ns;
	e->netns = conn->netns;
	e->family = conn->family;
	e->sport = conn->sport;
	e->dport = conn->dport;
	e->_pad[0] = 0;
	e->_pad[1] = 0;
	e->_pad[2] = 0;
	__builtin_memcpy(e->saddr, conn->saddr, sizeof(e->saddr));
	__builtin_memcpy(e->daddr, conn->daddr, sizeof(e->daddr));
	e->cgroup_id = conn->cgroup_id;
	struct tcp_sock *tp = transition_tcp_sock(t);
	if (tp) {
		tcp_sock_bytes(tp, &e->bytes_sent, &e->bytes_received);
		e->segs_out = tp->segs_out;
		e->segs_in = tp->segs_in;
	} else {
		sock_bytes(sk, &e->bytes_sent, &e->bytes_received);
		sock_segs(sk, &e->segs_out, &e->segs_in);
	}
	bpf_map_delete_elem(&active, &sk);
	bpf_ringbuf_submit(e, wakeup_flags(sizeof(*e)));
	return 0;
}

/* The state machine of both programs (see the file header). */
static __always_inline int on_transition(const struct transition *t, int oldstate, int newstate)
{
	if (oldstate == TCP_CLOSE && newstate == TCP_SYN_SENT)
		return on_connect_start(t);
	if (oldstate == TCP_SYN_SENT)
		return on_connect_done(t, newstate);
	if ((oldstate == TCP_CLOSE && newstate == TCP_LISTEN) ||
	    (oldstate == TCP_LISTEN && newstate == TCP_CLOSE))
		return on_listen(t, newstate);
	if (newstate == TCP_CLOSE)
		return on_close(t, oldstate);
	return 0;
}

/* Preferred (see the file header). */
SEC("tp_btf/inet_sock_set_state")
int inet_sock_set_state_btf(__u64 *ctx)
{
	/* TP_PROTO(const struct sock *sk, const int oldstate, const int newstate) */
	struct sock *sk = (struct sock *)ctx[0];

	if (sk->sk_protocol != IPPROTO_TCP)
		return 0;
	struct transition t = {
		.sk = sk,
		.key = (__u64)sk,
		.btf = 1,
	};
	return on_transition(&t, (int)ctx[1], (int)ctx[2]);
}

/* Fallback when tp_btf cannot be loaded or attached (see loader.rs). */
SEC("tracepoint/sock/inet_sock_set_state")
int inet_sock_set_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	/* Direct (CO-RE relocated) context loads: no helper call on the hot path. */
	if (ctx->protocol != IPPROTO_TCP)
		return 0;
	struct transition t = {
		.record = ctx,
		.key = (__u64)ctx->skaddr,
		.btf = 0,
	};
	return on_transition(&t, ctx->oldstate, ctx->newstate);
}

/* A retransmitting socket's entry in `active`, with the event's type and
 * attribution filled from it; NULL for an untracked socket. */
static __always_inline struct connection *retransmit_conn(__u64 sk, struct tcp_event *e)
{
	struct connection *conn = bpf_map_lookup_elem(&active, &sk);
	if (!conn)
		return 0;
	e->pid = conn->pid;
	e->netns = conn->netns;
	e->cgroup_id = conn->cgroup_id;
	e->type = EVENT_RETRANSMIT;
	e->sock = sk;
	return conn;
}

/* Preferred (see the file header). */
SEC("tp_btf/tcp_retransmit_skb")
int tcp_retransmit_skb_btf(__u64 *ctx)
{
	/* TP_PROTO(const struct sock *sk, const struct sk_buff *skb) */
	struct sock *sk = (struct sock *)ctx[0];
	struct tcp_event e = {};

	if (!retransmit_conn((__u64)sk, &e))
		return 0;
	addrs_from_sock(&e, sk, bpf_skc_to_tcp_sock(sk));
	emit(&e, sizeof(e), LOST_RETRANSMIT);
	return 0;
}

/* Fallback when tp_btf cannot be loaded or attached (see loader.rs). */
SEC("tracepoint/tcp/tcp_retransmit_skb")
int tcp_retransmit_skb(struct trace_event_raw_tcp_retransmit_skb *ctx)
{
	struct tcp_event e = {};

	if (!retransmit_conn((__u64)ctx->skaddr, &e))
		return 0;
	e.family = ctx->family;
	e.sport = ctx->sport;
	e.dport = ctx->dport;
	bpf_core_read(&e.saddr, sizeof(e.saddr), &ctx->saddr_v6);
	bpf_core_read(&e.daddr, sizeof(e.daddr), &ctx->daddr_v6);
	emit(&e, sizeof(e), LOST_RETRANSMIT);
	return 0;
}

/*
 * A connecting entry whose socket is past the handshake: its SYN_SENT ->
 * ESTABLISHED run was skipped by the kernel (a nested run on the same CPU,
 * counted in the program's recursion_misses), so it would never be reported
 * open. Complete it from the socket itself (probe reads: this callback has no
 * BTF pointer), with duration 0 (unknown). The real run, if it races with
 * this, writes the same addresses.
 */
static __always_inline void complete_missed_establish(__u64 sk, struct connection *conn)
{
	struct sock *s = (struct sock *)sk;
	__u8 state = BPF_CORE_READ(s, __sk_common.skc_state);
	__u32 *src = (__u32 *)conn->saddr, *dst = (__u32 *)conn->daddr;
	__u16 family;

	if (state != TCP_ESTABLISHED && state != TCP_FIN_WAIT1 && state != TCP_FIN_WAIT2 &&
	    state != TCP_CLOSE_WAIT && state != TCP_LAST_ACK && state != TCP_CLOSING)
		return; /* still connecting, or already closed */
	family = BPF_CORE_READ(s, __sk_common.skc_family);
	conn->family = family;
	conn->sport = bpf_ntohs(BPF_CORE_READ((struct inet_sock *)s, inet_sport));
	conn->dport = bpf_ntohs(BPF_CORE_READ(s, __sk_common.skc_dport));
	if (family == AF_INET6 && bpf_core_field_exists(s->__sk_common.skc_v6_daddr)) {
		bpf_core_read(conn->saddr, sizeof(conn->saddr), &s->__sk_common.skc_v6_rcv_saddr);
		bpf_core_read(conn->daddr, sizeof(conn->daddr), &s->__sk_common.skc_v6_daddr);
	} else {
		src[0] = 0;
		src[1] = 0;
		src[2] = bpf_htonl(0xffff);
		src[3] = BPF_CORE_READ(s, __sk_common.skc_rcv_saddr);
		dst[0] = 0;
		dst[1] = 0;
		dst[2] = bpf_htonl(0xffff);
		dst[3] = BPF_CORE_READ(s, __sk_common.skc_daddr);
	}
	conn->duration_ns = 0;
	asm volatile("" ::: "memory");
	conn->state = CONN_ACTIVE;
}

/*
 * Whether an established entry's socket has ended without its close being
 * seen: the final -> CLOSE run was skipped by the kernel (a nested run on the
 * same CPU, counted in the program's recursion_misses), so no close record
 * will come, and the entry would stay in every dump, shown as an active
 * connection, until the LRU evicted it. The kernel stores a socket's new state
 * only after the tracepoint's run returns, so an entry still here for a socket
 * seen in TCP_CLOSE is one whose run was skipped (a run that completed deleted
 * the entry first). TCP sockets are SLAB_TYPESAFE_BY_RCU: the memory may by
 * now hold another socket, which shows another state or other ports.
 */
static __always_inline int socket_ended(__u64 sk, const struct connection *conn)
{
	struct sock *s = (struct sock *)sk;
	__u8 state = BPF_CORE_READ(s, __sk_common.skc_state);

	if (state == TCP_CLOSE || state == TCP_LISTEN || state == TCP_SYN_SENT ||
	    state == TCP_SYN_RECV)
		return 1;
	return bpf_ntohs(BPF_CORE_READ(s, __sk_common.skc_dport)) != conn->dport ||
	       bpf_ntohs(BPF_CORE_READ((struct inet_sock *)s, inet_sport)) != conn->sport;
}

/*
 * Deletes the entry of an ended socket (see socket_ended). The entry is looked
 * up again first: an LRU map reuses a deleted element at once, so `conn` may
 * by now be another connection's entry under the same key (the socket's
 * address, reused); only an established entry with the same ports goes.
 * Userspace then no longer sees the connection in dumps: it leaves the active
 * gauge at once and is dropped as stale after STALE_AFTER
 * (crates/tracer/src/conntrack.rs). Its bytes since the last scrape are lost
 * with its close.
 */
static __always_inline void drop_ended(__u64 sk, const struct connection *conn)
{
	__u16 sport = conn->sport, dport = conn->dport;
	struct connection *now = bpf_map_lookup_elem(&active, &sk);

	if (now && now->state == CONN_ACTIVE && now->sport == sport && now->dport == dport)
		bpf_map_delete_elem(&active, &sk);
}

static long scan_one(void *map, __u64 *key, struct connection *conn, void *data)
{
	__u64 sk = *key, sent, received;

	if (conn->state == CONN_CONNECTING)
		complete_missed_establish(sk, conn);
	if (conn->state != CONN_ACTIVE)
		return 0;
	if (socket_ended(sk, conn)) {
		drop_ended(sk, conn);
		return 0;
	}
	sock_bytes(sk, &sent, &received);
	conn->bytes_sent = sent;
	conn->bytes_received = received;
	sock_segs(sk, &conn->segs_out, &conn->segs_in);
	return 0;
}

SEC("raw_tp/sonde_scan_active")
int scan_active(void *ctx)
{
	bpf_for_each_map_elem(&active, scan_one, (void *)0, 0);
	return 0;
}
