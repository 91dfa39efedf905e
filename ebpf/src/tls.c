/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * TLS plaintext: uprobes on TLS libraries, so HTTPS counts as HTTP.
 *
 * Hooks (uprobes, attached by crates/tracer/src/tls.rs once per library or
 * binary file for every process; kernel >= 4.17 for the perf uprobe PMU):
 *   OpenSSL (libssl.so.1.1, libssl.so.3), C ABI:
 *     SSL_write, SSL_write_ex   entry: tls_ssl_write_enter;  return: tls_ssl_write_ret
 *     SSL_read                  entry: tls_ssl_read_enter;   return: tls_ssl_read_ret
 *     SSL_read_ex               entry: tls_ssl_readx_enter; return: tls_ssl_readx_ret
 *     SSL_set_fd                entry: tls_ssl_set_fd (the SSL*'s fd, for reads
 *                               served from OpenSSL's buffer)
 *   Go crypto/tls (Go >= 1.17, register ABI, amd64):
 *     crypto/tls.(*Conn).Write  entry: tls_go_write_enter
 *     crypto/tls.(*Conn).Read   entry: tls_go_read_enter; every RET: tls_go_read_ret
 *
 * Why: the socket carries ciphertext; the plaintext exists only in the
 * library's buffers. The OpenSSL side does not read the library's structs
 * (their layout changes between versions): the call in progress is left in
 * `l7_tls_calls` (src/l7.c) and the socket syscall the library makes during
 * the call names the fd. A write's plaintext is shipped by src/l7.c at that
 * socket write; a read's here, when the call returns, for the fd its socket
 * read used or, if the call made none (data already buffered), the fd last
 * seen for that SSL* (`tls_ssl_fds`).
 *
 * Go: never uretprobes (the kernel rewrites the return address on the
 * goroutine's stack, which Go moves and inspects: coroot-node-agent issues
 * #158 and #255, crashed programs). Read's return is probed at each RET
 * instruction instead, found by disassembling the function in userspace. A
 * goroutine may move to another thread while it reads, so the read in
 * progress is keyed by (tgid, goroutine pointer in R14). The fd comes from the
 * *tls.Conn (offsets below), so a Go write ships its plaintext at the Write
 * entry and no per-thread call is left for src/l7.c.
 *
 * Safety of the traced program: these programs only read user memory
 * (bpf_probe_read_user, which fails cleanly on a bad pointer), never write
 * it, and do bounded work (a few map operations and one record).
 */

/* x86-64 struct pt_regs (the uprobe's context), as the uapi lays it out. */
struct tls_regs {
	__u64 r15, r14, r13, r12, bp, bx, r11, r10, r9, r8;
	__u64 ax, cx, dx, si, di, orig_ax, ip, cs, flags, sp, ss;
};

#define TLS_SSL_FDS_MAX 16384
#define TLS_GO_READS_MAX 16384

struct tls_ssl_key {
	__u32 tgid;
	__u32 _pad;
	__u64 ssl; /* SSL* in that process */
};

/* SSL* -> the fd its last call read from or wrote to: for SSL_read calls
 * served from OpenSSL's buffer without a socket read. LRU: SSL_free is not
 * hooked; an SSL* whose fd changed is corrected by its next socket call. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TLS_SSL_FDS_MAX);
	__type(key, struct tls_ssl_key);
	__type(value, __u32);
} tls_ssl_fds SEC(".maps");

/* SSL_read_ex's `size_t *readbytes`, per thread, from entry to return. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, L7_THREADS_MAX);
	__type(key, __u64);
	__type(value, __u64);
} tls_read_ex_out SEC(".maps");

struct tls_go_key {
	__u32 tgid;
	__u32 _pad;
	__u64 g; /* the goroutine (runtime.g pointer, R14 in Go's register ABI) */
};

struct tls_go_read {
	__u64 buf;
	__u32 fd;
	__u32 _pad;
};

/* Go (*Conn).Read calls in progress. LRU: a goroutine that never returns
 * (its process exited mid-read) leaves an entry until evicted. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TLS_GO_READS_MAX);
	__type(key, struct tls_go_key);
	__type(value, struct tls_go_read);
} tls_go_reads SEC(".maps");

/* ---- OpenSSL ---- */

static __always_inline void tls_ssl_enter(struct tls_regs *regs, __u8 is_write)
{
	__u64 id = bpf_get_current_pid_tgid();
	/* SSL_read/SSL_write take an int, the _ex variants a size_t: the low
	 * 32 bits are the length either way (a negative int is refused by
	 * OpenSSL and shipped as nothing: the return is <= 0). */
	struct l7_tls_call c = {
		.ssl = regs->di,
		.buf = regs->si,
		.len = (__u32)regs->dx,
		.is_write = is_write,
	};
	l7_tls_pid_mark(id >> 32);
	bpf_map_update_elem(&l7_tls_calls, &id, &c, BPF_ANY);
}

/*
 * The end of an SSL call of this thread: n plaintext bytes moved (<= 0:
 * nothing). Forgets the call, remembers the SSL*'s fd, ships a read's
 * plaintext (a write's went out at its socket write, src/l7.c).
 */
static __always_inline void tls_ssl_return(void *ctx, __u64 id, __s64 n)
{
	struct l7_tls_call *p = bpf_map_lookup_elem(&l7_tls_calls, &id);
	if (!p)
		return;
	struct l7_tls_call c = *p;
	bpf_map_delete_elem(&l7_tls_calls, &id);
	__u32 tgid = id >> 32;
	struct tls_ssl_key key = {.tgid = tgid, .ssl = c.ssl};
	__u32 fd = c.fd;
	if (c.fd_known) {
		bpf_map_update_elem(&tls_ssl_fds, &key, &fd, BPF_ANY);
	} else {
		__u32 *cached = bpf_map_lookup_elem(&tls_ssl_fds, &key);
		if (!cached)
			return;
		fd = *cached;
	}
	if (n <= 0)
		return;
	if (c.is_write) {
		/* Shipped at the socket write, unless the call made none on a
		 * registered socket (its data went out in a later call). */
		if (!c.fd_known)
			l7_emit_plaintext(ctx, tgid, fd, c.buf, c.len, L7_EGRESS);
		return;
	}
	__u32 size = n > 0x7fffffff ? 0x7fffffff : (__u32)n;
	l7_emit_plaintext(ctx, tgid, fd, c.buf, size, L7_INGRESS);
}

SEC("uprobe/tls_ssl_write_enter")
int tls_ssl_write_enter(struct tls_regs *regs)
{
	tls_ssl_enter(regs, 1);
	return 0;
}

SEC("uprobe/tls_ssl_read_enter")
int tls_ssl_read_enter(struct tls_regs *regs)
{
	tls_ssl_enter(regs, 0);
	return 0;
}

SEC("uprobe/tls_ssl_readx_enter")
int tls_ssl_readx_enter(struct tls_regs *regs)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u64 out = regs->cx; /* size_t *readbytes, the 4th argument */
	bpf_map_update_elem(&tls_read_ex_out, &id, &out, BPF_ANY);
	tls_ssl_enter(regs, 0);
	return 0;
}

/*
 * SSL_set_fd(ssl, fd): the fd of an SSL* from the start. A server that reads
 * ahead (nginx) gets the client's first records (an HTTP/2 preface, a
 * request) into OpenSSL's buffer during the handshake, so its first SSL_read
 * makes no socket read and only this tells which fd that plaintext is for.
 */
SEC("uprobe/tls_ssl_set_fd")
int tls_ssl_set_fd(struct tls_regs *regs)
{
	__s32 fd = (__s32)regs->si;
	if (fd < 0)
		return 0;
	struct tls_ssl_key key = {.tgid = bpf_get_current_pid_tgid() >> 32, .ssl = regs->di};
	__u32 v = fd;
	bpf_map_update_elem(&tls_ssl_fds, &key, &v, BPF_ANY);
	return 0;
}

/* SSL_write returns the bytes written, SSL_write_ex 1: either way > 0 means
 * the whole buffer was taken (partial writes are off by default; with
 * SSL_MODE_ENABLE_PARTIAL_WRITE a write's size is the asked one). */
SEC("uretprobe/tls_ssl_write_ret")
int tls_ssl_write_ret(struct tls_regs *regs)
{
	tls_ssl_return(regs, bpf_get_current_pid_tgid(), (__s32)regs->ax);
	return 0;
}

SEC("uretprobe/tls_ssl_read_ret")
int tls_ssl_read_ret(struct tls_regs *regs)
{
	tls_ssl_return(regs, bpf_get_current_pid_tgid(), (__s32)regs->ax);
	return 0;
}

SEC("uretprobe/tls_ssl_readx_ret")
int tls_ssl_readx_ret(struct tls_regs *regs)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u64 *out = bpf_map_lookup_elem(&tls_read_ex_out, &id);
	__u64 readbytes = 0;
	if (out) {
		__u64 ptr = *out;
		bpf_map_delete_elem(&tls_read_ex_out, &id);
		if ((__s32)regs->ax != 1 || bpf_probe_read_user(&readbytes, sizeof(readbytes), (void *)ptr) != 0)
			readbytes = 0;
	}
	tls_ssl_return(regs, id, readbytes > 0x7fffffff ? 0x7fffffff : (__s64)readbytes);
	return 0;
}

/* ---- Go crypto/tls ---- */

/*
 * The fd of a *tls.Conn whose conn is a *net.TCPConn. Layouts (checked in
 * the sources of Go 1.19, the Debian 12 golang-go, and unchanged from Go 1.9,
 * when internal/poll appeared, to at least 1.23):
 *   tls.Conn   { conn net.Conn (itab, data) ... }   data at offset 8
 *   net.TCPConn{ conn { fd *netFD } }               *netFD at offset 0
 *   net.netFD  { pfd poll.FD ... }                  poll.FD at offset 0
 *   poll.FD    { fdmu fdMutex (16 bytes); Sysfd int }  Sysfd at offset 16
 * Another net.Conn behind the interface (a wrapper) gives some other number;
 * l7_emit_plaintext ships only for a {tgid, fd} registered as a TCP socket.
 */
#define GO_TLS_CONN_DATA 8
#define GO_TCPCONN_FD 0
#define GO_NETFD_SYSFD 16

static __always_inline int tls_go_fd(__u64 conn, __u32 *fd)
{
	__u64 data = 0, netfd = 0;
	__s64 sysfd = -1;
	if (bpf_probe_read_user(&data, sizeof(data), (void *)(conn + GO_TLS_CONN_DATA)) != 0 || !data)
		return -1;
	if (bpf_probe_read_user(&netfd, sizeof(netfd), (void *)(data + GO_TCPCONN_FD)) != 0 || !netfd)
		return -1;
	if (bpf_probe_read_user(&sysfd, sizeof(sysfd), (void *)(netfd + GO_NETFD_SYSFD)) != 0)
		return -1;
	if (sysfd < 0 || sysfd > 0x7fffffff)
		return -1;
	*fd = sysfd;
	return 0;
}

/* func (c *Conn) Write(b []byte) (int, error): c in RAX, b.ptr RBX, b.len RCX. */
SEC("uprobe/tls_go_write_enter")
int tls_go_write_enter(struct tls_regs *regs)
{
	__u32 fd;
	if (tls_go_fd(regs->ax, &fd) != 0)
		return 0;
	__u64 len = regs->cx;
	if (len == 0)
		return 0;
	l7_emit_plaintext(regs, bpf_get_current_pid_tgid() >> 32, fd, regs->bx,
			  len > 0x7fffffff ? 0x7fffffff : (__u32)len, L7_EGRESS);
	return 0;
}

/* func (c *Conn) Read(b []byte) (int, error): c in RAX, b.ptr RBX. */
SEC("uprobe/tls_go_read_enter")
int tls_go_read_enter(struct tls_regs *regs)
{
	struct tls_go_read r = {.buf = regs->bx};
	if (tls_go_fd(regs->ax, &r.fd) != 0)
		return 0;
	struct tls_go_key k = {.tgid = bpf_get_current_pid_tgid() >> 32, .g = regs->r14};
	bpf_map_update_elem(&tls_go_reads, &k, &r, BPF_ANY);
	return 0;
}

/* At a RET of (*Conn).Read: n in RAX, the goroutine still in R14. */
SEC("uprobe/tls_go_read_ret")
int tls_go_read_ret(struct tls_regs *regs)
{
	struct tls_go_key k = {.tgid = bpf_get_current_pid_tgid() >> 32, .g = regs->r14};
	struct tls_go_read *p = bpf_map_lookup_elem(&tls_go_reads, &k);
	if (!p)
		return 0;
	struct tls_go_read r = *p;
	bpf_map_delete_elem(&tls_go_reads, &k);
	__s64 n = regs->ax;
	if (n <= 0)
		return 0;
	l7_emit_plaintext(regs, k.tgid, r.fd, r.buf, n > 0x7fffffff ? 0x7fffffff : (__u32)n,
			  L7_INGRESS);
	return 0;
}
