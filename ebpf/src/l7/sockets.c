/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/* Registering sockets in l7_sockets (included by src/l7.c). */

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

static __always_inline int l7_register_sock(struct sock *sk, __u32 fd, __u8 role, int dns_only,
					    __u64 cookie);

/*
 * A TCP socket's role where no connect() or accept() was seen: a client if
 * the TCP tracer has it in `active` (src/tcp.c: it saw the connect, or seeded
 * the socket as an outbound connection older than the agent, src/seed.c),
 * else a server (it was accepted).
 */
static __always_inline __u8 l7_tcp_role(struct sock *sk)
{
	__u64 key = (__u64)sk;
	return bpf_map_lookup_elem(&active, &key) ? L7_CLIENT : L7_SERVER;
}

static __always_inline void l7_register(__u32 fd, __u8 role, int dns_only)
{
	struct sock *sk = l7_fd_sock(fd);
	if (sk)
		l7_register_sock(sk, fd, role, dns_only, 0);
}

/* Registers fd's socket; 0 when it was registered. cookie: the socket's, when
 * known (the socket hooks), else 0. */
static __always_inline int l7_register_sock(struct sock *sk, __u32 fd, __u8 role, int dns_only,
					    __u64 cookie)
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
	s.cookie = cookie;
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
static __always_inline void l7_register_unconnected_dns(__u32 fd, __u64 uaddr, __u16 family,
							__u64 cookie)
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
	s.cookie = cookie;
	struct l7_sock_key k = {.tgid = bpf_get_current_pid_tgid() >> 32, .fd = fd};
	if (bpf_map_update_elem(&l7_sockets, &k, &s, BPF_ANY) != 0)
		count_lost(LOST_L7_SOCKETS);
	else
		l7_pid_mark(k.tgid);
}
