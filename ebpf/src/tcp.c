/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * Outbound TCP connections, listening sockets and retransmits.
 *
 * Hooks:
 *   sock/inet_sock_set_state  every TCP state change (kernel >= 4.16). Drives a
 *                             small per-socket state machine:
 *       CLOSE -> SYN_SENT     connect() started. Runs in the connecting task, so
 *                             the pid, start time and netns are taken here and
 *                             kept in `connecting` keyed by the socket address.
 *       SYN_SENT -> ESTABLISHED  connect succeeded (runs in softirq: the current
 *                             task is meaningless, the pid comes from
 *                             `connecting`). Emits ConnectOk with the duration and
 *                             moves the socket to `active`.
 *       SYN_SENT -> CLOSE     connect failed (RST, timeout, unreachable).
 *       * -> CLOSE            a tracked connection ended. Emits ConnectionClosed
 *                             with the kernel's own byte counters of the socket
 *                             (tcp_sock.bytes_sent - bytes_retrans, and
 *                             bytes_received less the FIN): no per-packet or
 *                             per-syscall cost.
 *       CLOSE -> LISTEN, LISTEN -> CLOSE  listening sockets.
 *     Accepted (inbound) sockets never pass CLOSE -> SYN_SENT, so they are never
 *     in `connecting`/`active` and never reported as connects.
 *
 *     Never silent: a tracepoint program run can be skipped by the kernel (a
 *     softirq arriving while another BPF program or a BPF map syscall holds
 *     this CPU's bpf_prog_active; the kernel counts it in the program's
 *     recursion_misses, which the loader adds to lost_events()), and a map
 *     update can fail (-ENOMEM when the LRU cannot find a free node, -EBUSY or
 *     -EDEADLK from the bucket lock). Each such loss of tracking state is
 *     counted in the LOST_TCP_UNTRACKED slot ("tcp_untracked"), and the
 *     connect is still reported when its end is seen:
 *       - SYN_SENT -> ESTABLISHED/CLOSE with no `connecting` entry: ConnectOk /
 *         ConnectFailed with pid 0 (unknown) and duration 0 (unknown);
 *       - -> CLOSE of a socket still in `connecting` (its ESTABLISHED was
 *         missed): ConnectOk (duration 0) then ConnectionClosed with bytes.
 *     The extra `connecting` lookup on close happens only when `active` has no
 *     entry (inbound sockets), never on the connect path.
 *   tcp/tcp_retransmit_skb    a segment was retransmitted (kernel >= 4.15).
 *                             Attributed through `active` (or `connecting` for
 *                             SYN retransmits); untracked sockets are ignored.
 *   raw_tp scan_active        never attached: run on demand by the loader with
 *                             BPF_PROG_TEST_RUN at scrape time. It walks `active`
 *                             (bpf_for_each_map_elem, kernel >= 5.13) and copies
 *                             each socket's byte counters into the map value, so
 *                             userspace reads bytes of open connections without
 *                             any cost on the data path.
 *
 * Minimum kernel: 5.13 (bpf_for_each_map_elem; the rest needs 5.8 ring buffers).
 */

/* In-flight connects. Sized for connect bursts; LRU so a lost transition
 * (e.g. a socket freed without a CLOSE event) cannot leak an entry forever,
 * and so a full map evicts the oldest entry instead of failing the update
 * (a preallocated BPF_MAP_TYPE_HASH returns -E2BIG when full). */
#define CONNECTING_MAX 16384
/* Tracked open outbound connections; default, the loader may override. */
#define ACTIVE_MAX 131072
#define LISTENERS_MAX 8192

struct connecting {
	__u64 start_ns;
	__u32 pid;
	__u32 netns;
};

struct connection {
	__u64 bytes_sent;     /* refreshed by scan_active and at close */
	__u64 bytes_received;
	__u32 pid;
	__u32 netns;
	__u16 family;
	__u16 sport;
	__u16 dport;
	__u16 _pad;
	__u8 saddr[16];
	__u8 daddr[16];
};

struct listener {
	__u32 pid;
	__u32 netns;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, CONNECTING_MAX);
	__type(key, __u64);
	__type(value, struct connecting);
} connecting SEC(".maps");

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
static __always_inline void sock_bytes(__u64 sk, __u64 *sent, __u64 *received)
{
	struct tcp_sock *tp = (struct tcp_sock *)sk;
	__u64 out = BPF_CORE_READ(tp, bytes_sent);
	__u64 retrans = BPF_CORE_READ(tp, bytes_retrans);
	__u64 in = BPF_CORE_READ(tp, bytes_received);
	unsigned long flags;

	if (bpf_core_field_exists(((struct sock *)sk)->__sk_common.skc_flags))
		flags = BPF_CORE_READ((struct sock *)sk, __sk_common.skc_flags);
	else
		flags = BPF_CORE_READ((struct sock___old *)sk, sk_flags);
	if ((flags & (1UL << SOCK_DONE)) && in > 0)
		in -= 1;
	*sent = out > retrans ? out - retrans : 0;
	*received = in;
}

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

static __always_inline int on_listen(struct trace_event_raw_inet_sock_set_state *ctx,
				     __u64 sk, int newstate)
{
	struct tcp_event e = {};
	addrs_from_state(&e, ctx);
	e.sock = sk;
	if (newstate == TCP_LISTEN) {
		struct listener l = {};
		l.pid = bpf_get_current_pid_tgid() >> 32;
		l.netns = sk_netns(sk);
		bpf_map_update_elem(&listeners, &sk, &l, BPF_ANY);
		e.type = EVENT_LISTEN_OPEN;
		e.pid = l.pid;
		e.netns = l.netns;
	} else {
		struct listener *l = bpf_map_lookup_elem(&listeners, &sk);
		e.type = EVENT_LISTEN_CLOSE;
		if (l) {
			e.pid = l->pid;
			e.netns = l->netns;
			bpf_map_delete_elem(&listeners, &sk);
		} else {
			/* Opened before the tracer started: close() runs in the owner. */
			e.pid = bpf_get_current_pid_tgid() >> 32;
			e.netns = sk_netns(sk);
		}
	}
	emit(&e, sizeof(e), LOST_SOCK_STATE);
	return 0;
}

/* Emits ConnectOk and starts tracking the connection in `active`. */
static __always_inline void connect_ok(struct trace_event_raw_inet_sock_set_state *ctx,
				       __u64 sk, __u32 pid, __u32 netns, __u64 duration_ns)
{
	struct tcp_event e = {};
	addrs_from_state(&e, ctx);
	e.type = EVENT_CONNECT_OK;
	e.sock = sk;
	e.pid = pid;
	e.netns = netns;
	e.duration_ns = duration_ns;

	struct connection conn = {};
	conn.pid = pid;
	conn.netns = netns;
	conn.family = e.family;
	conn.sport = e.sport;
	conn.dport = e.dport;
	__builtin_memcpy(conn.saddr, e.saddr, sizeof(conn.saddr));
	__builtin_memcpy(conn.daddr, e.daddr, sizeof(conn.daddr));
	/* Without an `active` entry the close (and its bytes) would be missed. */
	if (bpf_map_update_elem(&active, &sk, &conn, BPF_ANY) != 0)
		count_lost(LOST_TCP_UNTRACKED);
	emit(&e, sizeof(e), LOST_SOCK_STATE);
}

static __always_inline int on_connect_done(struct trace_event_raw_inet_sock_set_state *ctx,
					   __u64 sk, int newstate)
{
	/* Simultaneous open (SYN_SENT -> SYN_RECV): wait for the final state. */
	if (newstate != TCP_ESTABLISHED && newstate != TCP_CLOSE)
		return 0;

	__u32 pid = 0, netns;
	__u64 duration_ns = 0;
	struct connecting *c = bpf_map_lookup_elem(&connecting, &sk);
	if (c) {
		pid = c->pid;
		netns = c->netns;
		duration_ns = bpf_ktime_get_ns() - c->start_ns;
		bpf_map_delete_elem(&connecting, &sk);
	} else {
		/*
		 * CLOSE -> SYN_SENT was not recorded (its run was skipped or its
		 * map update failed, or the connect began before the tracer).
		 * The connect still happened: report it with pid 0 (unknown) and
		 * duration 0 (unknown) so per-destination counts stay exact, and
		 * count it so the loss of attribution is visible.
		 */
		count_lost(LOST_TCP_UNTRACKED);
		netns = sk_netns(sk);
	}

	if (newstate == TCP_ESTABLISHED) {
		connect_ok(ctx, sk, pid, netns, duration_ns);
	} else {
		struct tcp_event e = {};
		addrs_from_state(&e, ctx);
		e.type = EVENT_CONNECT_FAILED;
		e.sock = sk;
		e.pid = pid;
		e.netns = netns;
		emit(&e, sizeof(e), LOST_SOCK_STATE);
	}
	return 0;
}

static __always_inline int on_close(struct trace_event_raw_inet_sock_set_state *ctx,
				    __u64 sk, int oldstate)
{
	struct connection *conn = bpf_map_lookup_elem(&active, &sk);
	if (!conn) {
		/*
		 * Still in `connecting` after leaving SYN_SENT: the connect's
		 * final transition was never seen (its run was skipped, see
		 * lost_events(), or a simultaneous open went through SYN_RECV).
		 * Report the connect now, so it is counted, then fall through to
		 * the close with its bytes. Duration unknown: 0.
		 */
		struct connecting *c = bpf_map_lookup_elem(&connecting, &sk);
		if (!c)
			return 0;
		__u32 pid = c->pid, netns = c->netns;
		bpf_map_delete_elem(&connecting, &sk);
		count_lost(LOST_TCP_UNTRACKED);
		if (oldstate == TCP_SYN_RECV) {
			struct tcp_event e = {};
			addrs_from_state(&e, ctx);
			e.type = EVENT_CONNECT_FAILED;
			e.sock = sk;
			e.pid = pid;
			e.netns = netns;
			emit(&e, sizeof(e), LOST_SOCK_STATE);
			return 0;
		}
		connect_ok(ctx, sk, pid, netns, 0);
		conn = bpf_map_lookup_elem(&active, &sk);
		if (!conn)
			return 0;
	}

	struct tcp_event e = {};
	e.type = EVENT_CONNECTION_CLOSED;
	e.sock = sk;
	e.pid = conn->pid;
	e.netns = conn->netns;
	e.family = conn->family;
	e.sport = conn->sport;
	e.dport = conn->dport;
	__builtin_memcpy(e.saddr, conn->saddr, sizeof(e.saddr));
	__builtin_memcpy(e.daddr, conn->daddr, sizeof(e.daddr));
	sock_bytes(sk, &e.bytes_sent, &e.bytes_received);
	bpf_map_delete_elem(&active, &sk);
	emit(&e, sizeof(e), LOST_SOCK_STATE);
	return 0;
}

SEC("tracepoint/sock/inet_sock_set_state")
int inet_sock_set_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	/* Direct (CO-RE relocated) context loads: no helper call on the hot path. */
	if (ctx->protocol != IPPROTO_TCP)
		return 0;
	int oldstate = ctx->oldstate;
	int newstate = ctx->newstate;
	__u64 sk = (__u64)ctx->skaddr;

	if (oldstate == TCP_CLOSE && newstate == TCP_SYN_SENT) {
		struct connecting c = {};
		c.start_ns = bpf_ktime_get_ns();
		c.pid = bpf_get_current_pid_tgid() >> 32;
		c.netns = sk_netns(sk);
		/* A failure here is counted; the connect is still reported at
		 * its end, with pid 0 (see on_connect_done). */
		if (bpf_map_update_elem(&connecting, &sk, &c, BPF_ANY) != 0)
			count_lost(LOST_TCP_UNTRACKED);
		return 0;
	}
	if (oldstate == TCP_SYN_SENT)
		return on_connect_done(ctx, sk, newstate);
	if ((oldstate == TCP_CLOSE && newstate == TCP_LISTEN) ||
	    (oldstate == TCP_LISTEN && newstate == TCP_CLOSE))
		return on_listen(ctx, sk, newstate);
	if (newstate == TCP_CLOSE)
		return on_close(ctx, sk, oldstate);
	return 0;
}

SEC("tracepoint/tcp/tcp_retransmit_skb")
int tcp_retransmit_skb(struct trace_event_raw_tcp_retransmit_skb *ctx)
{
	__u64 sk = (__u64)ctx->skaddr;
	struct tcp_event e = {};

	struct connection *conn = bpf_map_lookup_elem(&active, &sk);
	if (conn) {
		e.pid = conn->pid;
		e.netns = conn->netns;
	} else {
		struct connecting *c = bpf_map_lookup_elem(&connecting, &sk);
		if (!c)
			return 0;
		e.pid = c->pid;
		e.netns = c->netns;
	}
	e.type = EVENT_RETRANSMIT;
	e.sock = sk;
	e.family = ctx->family;
	e.sport = ctx->sport;
	e.dport = ctx->dport;
	bpf_core_read(&e.saddr, sizeof(e.saddr), &ctx->saddr_v6);
	bpf_core_read(&e.daddr, sizeof(e.daddr), &ctx->daddr_v6);
	emit(&e, sizeof(e), LOST_RETRANSMIT);
	return 0;
}

static long scan_one(void *map, __u64 *sk, struct connection *conn, void *data)
{
	__u64 sent, received;

	sock_bytes(*sk, &sent, &received);
	conn->bytes_sent = sent;
	conn->bytes_received = received;
	return 0;
}

SEC("raw_tp/sonde_scan_active")
int scan_active(void *ctx)
{
	bpf_for_each_map_elem(&active, scan_one, (void *)0, 0);
	return 0;
}
