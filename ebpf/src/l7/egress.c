/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/* Writes: write, sendto, writev, sendmsg, sendmmsg (included by src/l7.c). */

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
				l7_register_unconnected_dns(fd, addr, sa[0], 0);
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
