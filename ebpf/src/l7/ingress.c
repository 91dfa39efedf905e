/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/* Reads: read, recvfrom, readv, recvmsg (included by src/l7.c). */

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

/*
 * A read of size bytes on the registered socket s (key k): into buf, or, by
 * kind, into an iovec array of cnt entries at buf or the iovecs of the msghdr
 * at buf.
 */
static __always_inline void l7_on_read_sock(struct l7_sock_key *k, struct l7_sock *s, __u64 buf,
					    __u32 kind, __u64 cnt, __u32 size)
{
	__u64 ts = bpf_ktime_get_ns();
	__u64 avail = size;
	__u64 iov = 0, iov_cnt = 0;
	if (kind != L7_READ_PLAIN) {
		iov = buf;
		iov_cnt = cnt;
		if (kind == L7_READ_MSG) {
			struct l7_user_msghdr m;
			if (bpf_probe_read_user(&m, sizeof(m), (void *)buf) != 0 || !m.msg_iovlen)
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
	int ship = l7_ready(s, L7_INGRESS, buf, avail < size ? avail : size);
	if (ship == L7_SKIP)
		return;
	if (ship == L7_SHIP_HELD)
		l7_emit_held(k, s, L7_INGRESS, ts);
	l7_emit(k, s, L7_INGRESS, size, buf, avail, 0, ts, iov, iov_cnt);
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
	struct l7_sock_key k = {.tgid = id >> 32, .fd = rd.fd};
	struct l7_sock *s = bpf_map_lookup_elem(&l7_sockets, &k);
	if (!s)
		return;
	l7_on_read_sock(&k, s, rd.buf, rd.kind, rd.cnt, ret);
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
