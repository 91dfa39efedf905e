/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * TCP sockets that existed before the tracer started.
 *
 * Hook:
 *   iter/tcp  seed_sockets: a BPF iterator over every TCP socket of every
 *             network namespace (kernel >= 5.9 for iter/tcp). Never attached
 *             to an event: the loader runs it once at start, reads its output
 *             (one `struct seed_record` per socket, common.h) and decides in
 *             userspace which sockets are outbound connections (the local
 *             port is not a listening port of that namespace) to adopt into
 *             `active`, and which are listeners to report (crates/tracer/src/seed.rs).
 *
 * Why: the state-change programs see transitions, not the sockets that are
 * already open. Without this, a connection older than the agent stays
 * invisible (no active count, no bytes) until it closes, and so does a
 * listener until it is reopened.
 *
 * Request sockets (SYN_RECV) and time-wait sockets are skipped: they are not
 * full sockets (bpf_skc_to_tcp_sock is NULL) and carry no connection to seed.
 */

SEC("iter/tcp")
int seed_sockets(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	struct seq_file *seq = ctx->meta->seq;
	struct seed_record r = {};

	if (!skc)
		return 0;
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(skc);
	if (!tp)
		return 0;
	struct sock *sk = (struct sock *)tp;
	__u8 state = sk->__sk_common.skc_state;
	if (state == TCP_CLOSE || state == TCP_SYN_SENT || state == TCP_SYN_RECV)
		return 0;
	struct tcp_event a = {};
	addrs_from_sock(&a, sk, tp);
	r.sock = (__u64)sk;
	r.family = a.family;
	r.sport = state == TCP_LISTEN ? sk->__sk_common.skc_num : a.sport;
	r.dport = a.dport;
	__builtin_memcpy(r.saddr, a.saddr, sizeof(r.saddr));
	__builtin_memcpy(r.daddr, a.daddr, sizeof(r.daddr));
	r.state = state;
	r.netns = sk->__sk_common.skc_net.net->ns.inum;
	r.inode = BPF_CORE_READ(sk, sk_socket, file, f_inode, i_ino);
	if (state != TCP_LISTEN) {
		tcp_sock_bytes(tp, &r.bytes_sent, &r.bytes_received);
		r.segs_out = tp->segs_out;
		r.segs_in = tp->segs_in;
	}
	bpf_seq_write(seq, &r, sizeof(r));
	return 0;
}
