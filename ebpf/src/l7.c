/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * L7: the reads and writes of application-protocol connections.
 *
 * Hooks. Preferred, on kernels >= 6.3: sock/sock_send_length and
 * sock/sock_recv_length as tp_btf, and nothing on syscalls (src/l7/socket_hooks.c
 * says how they stand in for the syscall hooks below). Else raw sys_enter/
 * sys_exit as tp_btf (src/l7/dispatch.c), else the classic syscall
 * tracepoints (kernel >= 4.7 with BTF for CO-RE; no kprobes, which many
 * kernels, this one included, do not have):
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
 * included, so the fast path is one array load: the per-pid bitmap of
 * processes that may hold a registered socket (l7_pids); only those look
 * {tgid, fd} up. A socket is classified once, on its
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

/* Userspace layouts (uapi, stable): not CO-RE relocated. *
 * The code is in src/l7/, one file per part, included here in this order (one
 * compilation unit: each part uses the ones before it).
 */

#include "l7/types_maps.c"
#include "l7/classify.c"
#include "l7/sockets.c"
#include "l7/records.c"
#include "l7/egress.c"
#include "l7/ingress.c"
#include "l7/lifecycle.c"
#include "l7/dispatch.c"
#include "l7/socket_hooks.c"
