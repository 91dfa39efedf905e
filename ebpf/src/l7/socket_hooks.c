/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/* The preferred attachment on kernels >= 6.3: the socket tracepoints (included by src/l7.c). */

/*
 * sock/sock_send_length and sock/sock_recv_length fire at the end of every
 * sendmsg/recvmsg a socket makes (sock_sendmsg_nosec/sock_recvmsg_nosec), with
 * the socket and the bytes moved. Attached as tp_btf, they replace all of
 * dispatch.c's syscall hooks:
 *   - a syscall that moves no socket data (a file's or a pipe's read or
 *     write, epoll_wait, futex ...) runs nothing: with no syscall tracepoint
 *     attached the kernel skips its syscall-tracing slow path for every
 *     process ("L7 fast path: the floor under it", docs/benchmarks.md);
 *   - a socket call runs one program, after the data moved: no read slot
 *     from entry to exit, and a write's size is what was sent, not asked;
 *   - the socket comes with the call: no fd table walk per call, and non-IP
 *     sockets (unix, netlink) end at one family compare.
 * What the syscall hooks learned from connect, accept and close comes from
 * the socket instead:
 *   - the role: a client if the TCP tracer saw the socket connect
 *     (l7_tcp_role), else a server;
 *   - a new connection on a reused fd: the socket's cookie (unique for the
 *     boot) differs from the one registered, and the old one is forgotten
 *     then (l7_forget: userspace drops its parser state);
 *   - a close: the socket's last state change (l7_sock_state, on
 *     sock/inet_sock_set_state), once its owner let go of it (see there).
 *     A socket that ended otherwise stays registered until its fd is reused
 *     or the LRU evicts it (unused, it goes first).
 * The fd and the user buffer are the syscall's own arguments, read from the
 * task's saved user registers (bpf_task_pt_regs): the data is still in (a
 * write) or already in (a read) the caller's buffer. A socket call made by
 * no syscall of ours (io_uring, the kernel's own sockets, sendfile's pages)
 * is not traced, as with the syscall hooks.
 */

#define MSG_PEEK 2

/*
 * TCP sockets whose first data matched no protocol, marked in the socket
 * itself (socket-local storage, freed with the socket): their later calls end
 * at one pointer chase, before the registers, the cookie and the hash lookup
 * that finding their l7_sockets entry costs (~160 ns per call measured).
 */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u8);
} l7_sk_none SEC(".maps");

/*
 * Where a registered TCP socket is registered ({tgid, fd} and its cookie),
 * kept in the socket itself: its close is found from the socket
 * (l7_sock_state), which no longer knows its fd then.
 */
struct l7_sk_owner {
	__u64 cookie;
	struct l7_sock_key key;
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct l7_sk_owner);
} l7_sk_owners SEC(".maps");

/* Remembers in sk that it is registered under k with cookie: once per
 * connection. */
static __always_inline void l7_own(struct sock *sk, struct l7_sock_key *k, __u64 cookie)
{
	struct l7_sk_owner *o =
		bpf_sk_storage_get(&l7_sk_owners, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (o) {
		o->cookie = cookie;
		o->key = *k;
	}
}

/* Marks sk as carrying no protocol of ours when s says so. */
static __always_inline void l7_mark_if_none(struct sock *sk, struct l7_sock *s)
{
	if (s->protocol == L7_NONE && sk->sk_protocol == IPPROTO_TCP)
		bpf_sk_storage_get(&l7_sk_none, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
}

/*
 * The registered socket behind fd, if it is sk and worth a look; registers it
 * when fd is not registered or names another socket now. dns_addr: a
 * sendto/sendmsg destination (a user sockaddr), 0 if none.
 */
static __always_inline struct l7_sock *l7_sock_of(struct l7_sock_key *k, __u32 fd,
						  struct sock *sk, __u64 dns_addr)
{
	k->tgid = bpf_get_current_pid_tgid() >> 32;
	k->fd = fd;
	__u64 cookie = bpf_get_socket_cookie(sk);
	struct l7_sock *s = bpf_map_lookup_elem(&l7_sockets, k);
	if (s) {
		if (s->cookie == cookie)
			return s->protocol == L7_NONE ? NULL : s;
		if (s->cookie == 0) {
			/* Registered by a TLS probe (l7_emit_plaintext)
			 * before the socket moved data: this is its data. */
			s->cookie = cookie;
			if (sk->sk_protocol == IPPROTO_TCP)
				l7_own(sk, k, cookie);
			return s->protocol == L7_NONE ? NULL : s;
		}
		/* The fd names a new socket: the old one was closed. */
		l7_forget(k, s);
	}
	__u16 proto = sk->sk_protocol;
	if (proto == IPPROTO_UDP) {
		/* DNS clients only: connected to port 53, or sending to it. */
		if (bpf_ntohs(sk->__sk_common.skc_dport) == 53) {
			if (l7_fd_sock(fd) != sk ||
			    l7_register_sock(sk, fd, L7_CLIENT, 1, cookie) != 0)
				return NULL;
		} else if (dns_addr) {
			__u16 sa[2] = {};
			if (bpf_probe_read_user(sa, sizeof(sa), (void *)dns_addr) != 0 ||
			    (sa[0] != AF_INET && sa[0] != AF_INET6) || sa[1] != bpf_htons(53))
				return NULL;
			l7_register_unconnected_dns(fd, dns_addr, sa[0], cookie);
		} else {
			return NULL;
		}
	} else {
		/* Once per connection: the fd must name this socket (a syscall
		 * on a file can make the kernel send on a socket of its own,
		 * an NFS mount's). */
		if (l7_fd_sock(fd) != sk ||
		    l7_register_sock(sk, fd, l7_tcp_role(sk), 0, cookie) != 0)
			return NULL;
		l7_own(sk, k, cookie);
	}
	s = bpf_map_lookup_elem(&l7_sockets, k);
	if (!s || s->protocol == L7_NONE)
		return NULL;
	return s;
}

/* The IP socket of a TCP or UDP call worth a look, else NULL. */
static __always_inline struct sock *l7_ip_sock(__u64 *ctx)
{
	/* TP_PROTO(struct sock *sk, int ret, int flags) */
	if ((int)ctx[1] <= 0)
		return NULL;
	struct sock *sk = (struct sock *)ctx[0];
	if (!sk)
		return NULL;
	__u16 family = sk->__sk_common.skc_family;
	if (family != AF_INET && family != AF_INET6)
		return NULL;
	__u16 proto = sk->sk_protocol;
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return NULL;
	return sk;
}

/* glibc's resolver sends its A and AAAA queries in one sendmmsg, and the
 * hook fires once per message. Which message this is: the kernel writes each
 * sent message's msg_len before the next, and glibc zeroes them before the
 * call. Only the first two are shipped (as the syscall hooks do); -1: neither. */
static __always_inline int l7_mmsg_index(__u64 vec, __u64 vlen)
{
	__u32 len0 = 0;
	if (bpf_probe_read_user(&len0, sizeof(len0),
				(void *)(vec + __builtin_offsetof(struct l7_user_mmsghdr, msg_len))) != 0)
		return -1;
	if (len0 == 0)
		return 0;
	if (vlen < 2)
		return -1;
	__u32 len1 = 0;
	if (bpf_probe_read_user(&len1, sizeof(len1),
				(void *)(vec + sizeof(struct l7_user_mmsghdr) +
					 __builtin_offsetof(struct l7_user_mmsghdr, msg_len))) != 0)
		return -1;
	return len1 == 0 ? 1 : -1;
}

/* A sendmsg's data: size bytes sent from the msghdr at umsg's iovecs. */
static __always_inline void l7_sock_sendmsg(void *ctx, struct l7_sock_key *k, struct l7_sock *s,
					    __u64 umsg, __u32 size)
{
	struct l7_user_msghdr m;
	if (bpf_probe_read_user(&m, sizeof(m), (void *)umsg) != 0 || !m.msg_iovlen)
		return;
	struct l7_iovec first;
	if (bpf_probe_read_user(&first, sizeof(first), (void *)m.msg_iov) != 0)
		return;
	l7_on_write_sock(ctx, k, s, first.base, first.len, size, m.msg_iov, m.msg_iovlen);
}

SEC("tp_btf/sock_send_length")
int l7_sock_send(__u64 *ctx)
{
	struct sock *sk = l7_ip_sock(ctx);
	if (!sk || bpf_sk_storage_get(&l7_sk_none, sk, 0, 0))
		return 0;
	__u32 size = (int)ctx[1];
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	if (!regs)
		return 0;
	long nr = regs->orig_ax;
	__u32 fd = regs->di;
	__u64 a1 = regs->si;
	struct l7_sock_key k;
	struct l7_sock *s;
	switch (nr) {
	case NR_WRITE:
		s = l7_sock_of(&k, fd, sk, 0);
		if (s) {
			l7_on_write_sock(ctx, &k, s, a1, size, size, 0, 0);
			l7_mark_if_none(sk, s);
		}
		break;
	case NR_SENDTO:
		s = l7_sock_of(&k, fd, sk, regs->r8);
		if (s) {
			l7_on_write_sock(ctx, &k, s, a1, size, size, 0, 0);
			l7_mark_if_none(sk, s);
		}
		break;
	case NR_WRITEV: {
		s = l7_sock_of(&k, fd, sk, 0);
		if (!s)
			break;
		struct l7_iovec first;
		if (bpf_probe_read_user(&first, sizeof(first), (void *)a1) == 0)
			l7_on_write_sock(ctx, &k, s, first.base, first.len, size, a1, regs->dx);
		l7_mark_if_none(sk, s);
		break;
	}
	case NR_SENDMSG: {
		__u64 name = 0;
		if (sk->sk_protocol == IPPROTO_UDP)
			bpf_probe_read_user(&name, sizeof(name), (void *)a1);
		s = l7_sock_of(&k, fd, sk, name);
		if (s) {
			l7_sock_sendmsg(ctx, &k, s, a1, size);
			l7_mark_if_none(sk, s);
		}
		break;
	}
	case NR_SENDMMSG: {
		int i = l7_mmsg_index(a1, regs->dx);
		if (i < 0)
			break;
		__u64 msg = a1 + (i ? sizeof(struct l7_user_mmsghdr) : 0);
		__u64 name = 0;
		if (sk->sk_protocol == IPPROTO_UDP)
			bpf_probe_read_user(&name, sizeof(name), (void *)msg);
		s = l7_sock_of(&k, fd, sk, name);
		if (s) {
			l7_sock_sendmsg(ctx, &k, s, msg, size);
			l7_mark_if_none(sk, s);
		}
		break;
	}
	}
	return 0;
}

SEC("tp_btf/sock_recv_length")
int l7_sock_recv(__u64 *ctx)
{
	struct sock *sk = l7_ip_sock(ctx);
	if (!sk || ((int)ctx[2] & MSG_PEEK))
		return 0; /* a peek: the same bytes come again */
	if (bpf_sk_storage_get(&l7_sk_none, sk, 0, 0))
		return 0;
	__u32 size = (int)ctx[1];
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	if (!regs)
		return 0;
	long nr = regs->orig_ax;
	__u32 kind;
	switch (nr) {
	case NR_READ:
	case NR_RECVFROM:
		kind = L7_READ_PLAIN;
		break;
	case NR_READV:
		kind = L7_READ_IOV;
		break;
	case NR_RECVMSG:
		kind = L7_READ_MSG;
		break;
	default:
		return 0;
	}
	__u32 fd = regs->di;
	struct l7_sock_key k;
	struct l7_sock *s = l7_sock_of(&k, fd, sk, 0);
	if (!s)
		return 0;
	struct l7_tls_call *tls = l7_tls_call_of(bpf_get_current_pid_tgid());
	if (tls) {
		if (!tls->is_write) {
			tls->fd = fd;
			tls->fd_known = 1;
		}
		return 0; /* ciphertext: the plaintext is shipped when the call returns */
	}
	l7_on_read_sock(&k, s, regs->si, kind, regs->dx, size);
	l7_mark_if_none(sk, s);
	return 0;
}

/*
 * A TCP socket's close: its move to TCP_CLOSE once its file is gone
 * (sk_socket cleared by close() or the owner's exit: sock_orphan). Its entry
 * is forgotten then, with a close record if it shipped data, unless the fd
 * names a newer socket by now (the cookie differs: that one stays). A socket
 * that reaches TCP_CLOSE while its file is still open is left alone: the
 * owner may still read what arrived before (a client that shut down its
 * sending side reads the reply after the server's FIN); its entry goes when
 * the fd is reused, or by LRU. So does one closed with unread data (the
 * kernel resets it before orphaning it).
 */
SEC("tp_btf/inet_sock_set_state")
int l7_sock_state(__u64 *ctx)
{
	/* TP_PROTO(const struct sock *sk, const int oldstate, const int newstate) */
	struct sock *sk = (struct sock *)ctx[0];
	if ((int)ctx[2] != TCP_CLOSE || sk->sk_socket)
		return 0;
	struct l7_sk_owner *o = bpf_sk_storage_get(&l7_sk_owners, sk, 0, 0);
	if (!o)
		return 0;
	/* The storage goes with the socket, freed right after this: deleting
	 * it here would only add a lock and an RCU free. */
	struct l7_sock_key k = o->key;
	struct l7_sock *s = bpf_map_lookup_elem(&l7_sockets, &k);
	if (s && s->cookie == o->cookie)
		l7_forget(&k, s);
	return 0;
}
