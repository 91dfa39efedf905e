//! Pure decoding of the ring-buffer records written by `ebpf/` (layouts in
//! `ebpf/include/common.h`) into [`Event`]s. No I/O; truncated or unknown records
//! are errors the stream counts, never panics.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// Size of `struct proc_event`.
pub const PROC_EVENT_SIZE: usize = 24;
/// Size of `struct exec_event`.
pub const EXEC_EVENT_SIZE: usize = 24;
/// Size of `struct tcp_event`.
pub const TCP_EVENT_SIZE: usize = 104;
/// Size of `struct connection`, the value of the `active` map.
pub const CONNECTION_VALUE_SIZE: usize = 96;
/// Size of the header of `struct cgroup_event`; the path bytes follow it.
pub const CGROUP_EVENT_HEADER_SIZE: usize = 16;
/// Longest path [`Event::CgroupCreated`] carries, in bytes (`CGROUP_PATH_MAX`
/// of `ebpf/include/common.h` less its NUL). Longer paths are dropped in the
/// kernel and counted as lost for the `cgroup_mkdir` program.
pub const CGROUP_PATH_MAX: usize = 255;

const EVENT_PROCESS_START: u32 = 1;
const EVENT_PROCESS_EXIT: u32 = 2;
const EVENT_OOM_KILL: u32 = 3;
const EVENT_LISTEN_OPEN: u32 = 4;
const EVENT_LISTEN_CLOSE: u32 = 5;
const EVENT_CONNECT_OK: u32 = 6;
const EVENT_CONNECT_FAILED: u32 = 7;
const EVENT_CONNECTION_CLOSED: u32 = 8;
const EVENT_RETRANSMIT: u32 = 9;
const EVENT_CGROUP_CREATED: u32 = 10;
const EVENT_PROCESS_EXEC: u32 = 13;

/// An executable as the kernel knows it at exec (`mm->exe_file`'s inode and
/// its superblock's `s_dev`, kernel encoding): the key of the kernel's
/// `tls_exec_files` map, handed back by [`crate::tls::TlsAttacher::exec_seen`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExecFile {
    pub ino: u64,
    pub dev: u32,
}

/// One kernel event. Pids are process ids (thread-group ids) in the initial pid
/// namespace. `sock` is the kernel address of the socket: an opaque id that is
/// unique while the connection lives (and may be reused after it closed).
/// `netns` is the inode number of the socket's network namespace (compare with
/// [`crate::filter::host_netns`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A new process (not thread) was forked. `cgroup_id` is the cgroup v2 id of
    /// the forking task, which the child inherits at fork; a process that is
    /// moved to another cgroup afterwards (runc does this) is not re-reported.
    ProcessStart { pid: u32, ppid: u32, cgroup_id: u64 },
    /// A process exec'd an executable the TLS attacher has not looked at yet
    /// (only the L7 programs report it, at most once a second per file until
    /// [`crate::tls::TlsAttacher::exec_seen`] marks it done).
    ProcessExec { pid: u32, file: ExecFile },
    /// The last thread of a process exited. `exit_code` is the shell/Docker
    /// convention: the exit status (0-255) for a normal exit, 128 + signal
    /// number for a process killed by a signal (137 for SIGKILL, as after an
    /// OOM kill). `cgroup_id` is the cgroup v2 id of the cgroup the process
    /// ended in (read in the exiting task): a process too short-lived for its
    /// `/proc/<pid>/cgroup` to be read is still attributed from it.
    ProcessExit {
        pid: u32,
        exit_code: i32,
        cgroup_id: u64,
    },
    /// The OOM killer chose this task as its victim (exactly once per kill).
    /// `pid` is the victim's process id. `cgroup_id` is the cgroup v2 id (the
    /// inode number of the cgroup's directory in the unified hierarchy, as
    /// `bpf_get_current_cgroup_id()` returns) read from the victim task itself
    /// when the raw tracepoint is attached ([`crate::Tracer::oom_cgroup_is_victims`]);
    /// otherwise the allocating task's, which for a memory-cgroup OOM is in the
    /// same memcg subtree (usually the victim itself). Resolve it without
    /// /proc: the victim may be gone by the time the event is read.
    OomKill { pid: u32, cgroup_id: u64 },
    /// A socket started listening. `cgroup_id`: the listening task's cgroup
    /// v2 id (in every TCP event: the acting task's, taken when it acted; 0 when
    /// unknown, like `pid`).
    ListenOpen {
        pid: u32,
        netns: u32,
        addr: SocketAddr,
        cgroup_id: u64,
    },
    /// A listening socket was closed.
    ListenClose {
        pid: u32,
        netns: u32,
        addr: SocketAddr,
        cgroup_id: u64,
    },
    /// An outbound connect succeeded but the kernel could not keep the
    /// connection in its `active` map (a failed insert, counted in
    /// [`crate::LOST_TCP_UNTRACKED`]), so neither a scrape-time dump nor a
    /// [`Event::ConnectionClosed`] will report it: count the connect now. Rare:
    /// normally a connection is reported once, by the dump or at its close
    /// (see [`crate::conntrack`]). `pid` 0: unknown (attribute to no
    /// container); `duration_ns` 0: unknown (leave out of latency figures).
    ConnectOk {
        pid: u32,
        netns: u32,
        sock: u64,
        src: SocketAddr,
        dst: SocketAddr,
        duration_ns: u64,
        cgroup_id: u64,
    },
    /// An outbound connect failed (refused, timed out, unreachable). `pid` 0:
    /// the connecting process is unknown (see [`Event::ConnectOk`]).
    ConnectFailed {
        pid: u32,
        netns: u32,
        sock: u64,
        src: SocketAddr,
        dst: SocketAddr,
        cgroup_id: u64,
    },
    /// A tracked outbound connection reached CLOSE: the one record the kernel
    /// writes per connection. `duration_ns` is its connect duration (0:
    /// unknown, as when the kernel lost its ESTABLISHED transition; `pid` 0
    /// when it lost its start). Bytes are the kernel's per-socket payload
    /// totals over the whole connection: sent = payload transmitted once
    /// (retransmissions excluded), received = payload received in order (what
    /// the application could read). If no scrape-time dump showed the
    /// connection, this is also its connect ([`crate::conntrack`]). Segments
    /// are the socket's totals of all kinds (handshake, pure ACKs and
    /// retransmissions included), as `ss -ti` shows `segs_out`/`segs_in`.
    ConnectionClosed {
        pid: u32,
        netns: u32,
        sock: u64,
        src: SocketAddr,
        dst: SocketAddr,
        duration_ns: u64,
        bytes_sent: u64,
        bytes_received: u64,
        cgroup_id: u64,
        segs_out: u32,
        segs_in: u32,
    },
    /// A segment of a tracked outbound connection was retransmitted.
    Retransmit {
        pid: u32,
        netns: u32,
        sock: u64,
        src: SocketAddr,
        dst: SocketAddr,
        cgroup_id: u64,
    },
    /// A cgroup was created in the unified (cgroup v2) hierarchy; v1
    /// hierarchies are not reported. `cgroup_id` is its cgroup v2 id (the inode
    /// of its directory, as in [`Event::OomKill`] and [`Event::ProcessStart`]);
    /// `path` is its path from the hierarchy root as `/proc/<pid>/cgroup` shows
    /// it in the initial cgroup namespace (`"/docker/<64 hex>"`, no trailing
    /// slash), at most [`CGROUP_PATH_MAX`] bytes (longer ones are never
    /// reported: counted as lost for `cgroup_mkdir`). Bytes that are not UTF-8
    /// are replaced by U+FFFD. Lets userspace map an OOM victim's cgroup id to
    /// its container after the cgroup directory is gone.
    CgroupCreated { cgroup_id: u64, path: String },
    /// An application-protocol request completed on a connection the L7
    /// programs traced (ebpf/src/l7.c; parsed by [`crate::l7::L7Engine`]).
    /// `pid`/`cgroup_id`: the process that made (client) or served (server) it,
    /// the cgroup read in the task when its response (client) or request
    /// (server) record was written. `src` is the local end; `dst` the peer: for
    /// a client, the address it connected to (before any DNAT).
    L7Request {
        pid: u32,
        cgroup_id: u64,
        netns: u32,
        role: sonde_l7::Role,
        src: SocketAddr,
        dst: SocketAddr,
        request: sonde_l7::Request,
    },
}

/// Byte counters of one open tracked connection, read at scrape time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionBytes {
    /// Connecting process.
    pub pid: u32,
    /// Network namespace inode of the socket.
    pub netns: u32,
    /// Socket id, as in [`Event::ConnectionClosed`].
    pub sock: u64,
    /// Local address.
    pub src: SocketAddr,
    /// Remote address.
    pub dst: SocketAddr,
    /// Payload bytes sent so far (retransmissions excluded).
    pub bytes_sent: u64,
    /// Payload bytes received so far.
    pub bytes_received: u64,
    /// connect() to ESTABLISHED; 0 if unknown.
    pub duration_ns: u64,
    /// Cgroup v2 id of the connecting task at connect(); 0 if unknown.
    pub cgroup_id: u64,
    /// Segments sent so far (all kinds, as `ss -ti` segs_out).
    pub segs_out: u32,
    /// Segments received so far.
    pub segs_in: u32,
}

/// Why a record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The record is shorter than its type requires.
    #[error("event record of {len} bytes is truncated (type {kind} needs {need})")]
    Truncated { kind: u32, len: usize, need: usize },
    /// The type tag is unknown (e.g. objects newer than this crate).
    #[error("unknown event type {kind} in a record of {len} bytes")]
    UnknownType { kind: u32, len: usize },
}

pub(crate) fn u16_at(b: &[u8], off: usize) -> u16 {
    let mut a = [0u8; 2];
    a.copy_from_slice(&b[off..off + 2]);
    u16::from_ne_bytes(a)
}

pub(crate) fn u32_at(b: &[u8], off: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[off..off + 4]);
    u32::from_ne_bytes(a)
}

pub(crate) fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_ne_bytes(a)
}

/// IPv4 sockets carry v4-mapped addresses (`::ffff:a.b.c.d`) in the 16 bytes;
/// dual-stack IPv6 sockets talking to IPv4 do too. Both come out as IPv4.
pub(crate) fn addr_at(b: &[u8], off: usize, port: u16) -> SocketAddr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[off..off + 16]);
    let ip = Ipv6Addr::from(a);
    let ip = match ip.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(ip),
    };
    SocketAddr::new(ip, port)
}

/// Converts a raw wait status (`code << 8 | signal`) to the conventional exit code.
pub fn exit_code_from_status(status: i32) -> i32 {
    let signal = status & 0x7f;
    if signal == 0 {
        (status >> 8) & 0xff
    } else {
        128 + signal
    }
}

fn need(kind: u32, b: &[u8], size: usize) -> Result<(), DecodeError> {
    if b.len() < size {
        return Err(DecodeError::Truncated {
            kind,
            len: b.len(),
            need: size,
        });
    }
    Ok(())
}

/// Decodes one ring-buffer record.
pub fn decode(b: &[u8]) -> Result<Event, DecodeError> {
    if b.len() < 4 {
        return Err(DecodeError::Truncated {
            kind: 0,
            len: b.len(),
            need: 4,
        });
    }
    let kind = u32_at(b, 0);
    match kind {
        EVENT_PROCESS_START | EVENT_PROCESS_EXIT | EVENT_OOM_KILL => {
            need(kind, b, PROC_EVENT_SIZE)?;
            let pid = u32_at(b, 4);
            Ok(match kind {
                EVENT_PROCESS_START => Event::ProcessStart {
                    pid,
                    ppid: u32_at(b, 8),
                    cgroup_id: u64_at(b, 16),
                },
                EVENT_PROCESS_EXIT => Event::ProcessExit {
                    pid,
                    exit_code: exit_code_from_status(u32_at(b, 12) as i32),
                    cgroup_id: u64_at(b, 16),
                },
                _ => Event::OomKill {
                    pid,
                    cgroup_id: u64_at(b, 16),
                },
            })
        }
        EVENT_LISTEN_OPEN..=EVENT_RETRANSMIT => {
            need(kind, b, TCP_EVENT_SIZE)?;
            let pid = u32_at(b, 4);
            let sock = u64_at(b, 8);
            let netns = u32_at(b, 40);
            let src = addr_at(b, 56, u16_at(b, 46));
            let dst = addr_at(b, 72, u16_at(b, 48));
            let cgroup_id = u64_at(b, 88);
            Ok(match kind {
                EVENT_LISTEN_OPEN => Event::ListenOpen {
                    pid,
                    netns,
                    addr: src,
                    cgroup_id,
                },
                EVENT_LISTEN_CLOSE => Event::ListenClose {
                    pid,
                    netns,
                    addr: src,
                    cgroup_id,
                },
                EVENT_CONNECT_OK => Event::ConnectOk {
                    pid,
                    netns,
                    sock,
                    src,
                    dst,
                    duration_ns: u64_at(b, 16),
                    cgroup_id,
                },
                EVENT_CONNECT_FAILED => Event::ConnectFailed {
                    pid,
                    netns,
                    sock,
                    src,
                    dst,
                    cgroup_id,
                },
                EVENT_CONNECTION_CLOSED => Event::ConnectionClosed {
                    pid,
                    netns,
                    sock,
                    src,
                    dst,
                    duration_ns: u64_at(b, 16),
                    bytes_sent: u64_at(b, 24),
                    bytes_received: u64_at(b, 32),
                    cgroup_id,
                    segs_out: u32_at(b, 96),
                    segs_in: u32_at(b, 100),
                },
                _ => Event::Retransmit {
                    pid,
                    netns,
                    sock,
                    src,
                    dst,
                    cgroup_id,
                },
            })
        }
        EVENT_PROCESS_EXEC => {
            need(kind, b, EXEC_EVENT_SIZE)?;
            Ok(Event::ProcessExec {
                pid: u32_at(b, 4),
                file: ExecFile {
                    ino: u64_at(b, 8),
                    dev: u32_at(b, 16),
                },
            })
        }
        EVENT_CGROUP_CREATED => {
            need(kind, b, CGROUP_EVENT_HEADER_SIZE)?;
            let path_len = usize::try_from(u32_at(b, 4)).unwrap_or(usize::MAX);
            let end = CGROUP_EVENT_HEADER_SIZE.saturating_add(path_len);
            need(kind, b, end)?;
            Ok(Event::CgroupCreated {
                cgroup_id: u64_at(b, 8),
                path: String::from_utf8_lossy(&b[CGROUP_EVENT_HEADER_SIZE..end]).into_owned(),
            })
        }
        _ => Err(DecodeError::UnknownType { kind, len: b.len() }),
    }
}

/// `enum conn_state` of `ebpf/src/tcp.c`: the entry is an established connection.
const CONN_ACTIVE: u16 = 2;

/// Decodes one entry of the `active` map (key = socket id, value = `struct
/// connection`). `None` for a connect still in progress (no addresses yet, no
/// bytes: it is reported when it completes).
pub fn decode_connection(sock: u64, v: &[u8]) -> Result<Option<ConnectionBytes>, DecodeError> {
    need(0, v, CONNECTION_VALUE_SIZE)?;
    if u16_at(v, 30) != CONN_ACTIVE {
        return Ok(None);
    }
    Ok(Some(ConnectionBytes {
        pid: u32_at(v, 16),
        netns: u32_at(v, 20),
        sock,
        src: addr_at(v, 32, u16_at(v, 26)),
        dst: addr_at(v, 48, u16_at(v, 28)),
        bytes_sent: u64_at(v, 0),
        bytes_received: u64_at(v, 8),
        duration_ns: u64_at(v, 72),
        cgroup_id: u64_at(v, 80),
        segs_out: u32_at(v, 88),
        segs_in: u32_at(v, 92),
    }))
}

#[cfg(test)]
#[path = "decode/tests.rs"]
mod tests;
