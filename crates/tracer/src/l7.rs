//! The L7 records of ebpf/src/l7.c, and the sessions that turn them into requests.
//!
//! The kernel ships each read and write of a classified connection (`struct l7_event`
//! of ebpf/include/common.h: a 96-byte header and up to [`sonde_l7::PAYLOAD_MAX`] bytes
//! of payload). [`L7Engine`] keeps one [`sonde_l7::Session`] per connection, keyed by
//! (pid, fd) and told apart from an earlier socket on the same fd by the kernel's
//! registration time, feeds it the records in ring order, and emits each completed
//! request as an [`Event::L7Request`]. A session ends at its socket's close record, at its
//! process's exit (the stream passes [`Event::ProcessExit`] on), or idle. Sessions are
//! bounded ([`MAX_SESSIONS`]): when the table is full the least recently used eighth goes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use sonde_l7::{Chunk, Direction, Protocol, Request, Role, Session, SessionStats};

use crate::decode::{DecodeError, Event};
use crate::l7_table::SessionTable;

/// `EVENT_L7_DATA` / `EVENT_L7_CLOSE` of ebpf/include/common.h.
pub const EVENT_L7_DATA: u32 = 11;
pub const EVENT_L7_CLOSE: u32 = 12;
/// `L7_EVENT_HEADER`: the payload's offset (pinned by a `_Static_assert` in common.h).
pub const L7_HEADER_SIZE: usize = 96;
/// Connections with parser state at once. The kernel registers at most 32,768 sockets
/// (`L7_SOCKETS_MAX`); twice that leaves room for sessions whose end comes late (a
/// socket closed without a close record, until its process exits or it idles).
pub const MAX_SESSIONS: usize = 65_536;
/// A session with no record for this long is forgotten (its socket most likely ended
/// without a close record, in a process that lives on: a reset with unread data, UDP).
const IDLE_NS: u64 = 10 * 60 * 1_000_000_000;
/// How often (in kernel time) idle sessions are swept.
const SWEEP_EVERY_NS: u64 = 60 * 1_000_000_000;
const AF_INET: u16 = 2;

/// One L7 record, borrowed from the ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L7Record<'a> {
    pub kind: u32,
    pub pid: u32,
    pub fd: u64,
    pub conn_ts: u64,
    pub ts_ns: u64,
    pub cgroup_id: u64,
    pub size: u32,
    pub direction: Direction,
    pub role: Role,
    /// The kernel's classification (`enum l7_protocol`).
    pub protocol: u8,
    pub tls: bool,
    pub netns: u32,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub payload: &'a [u8],
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_ne_bytes([b[o], b[o + 1]])
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_ne_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_ne_bytes(a)
}

fn addr(family: u16, raw: &[u8], port: u16) -> SocketAddr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&raw[..16]);
    let ip = if family == AF_INET {
        IpAddr::V4(Ipv4Addr::new(a[12], a[13], a[14], a[15]))
    } else {
        let v6 = Ipv6Addr::from(a);
        v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
    };
    SocketAddr::new(ip, port)
}

/// Decodes an `l7_event` record.
pub fn decode_record(b: &[u8]) -> Result<L7Record<'_>, DecodeError> {
    let kind = if b.len() >= 4 { u32_at(b, 0) } else { 0 };
    if b.len() < L7_HEADER_SIZE {
        return Err(DecodeError::Truncated {
            kind,
            len: b.len(),
            need: L7_HEADER_SIZE,
        });
    }
    let payload_len = usize::from(u16_at(b, 44));
    let Some(payload) = b.get(L7_HEADER_SIZE..L7_HEADER_SIZE + payload_len) else {
        return Err(DecodeError::Truncated {
            kind,
            len: b.len(),
            need: L7_HEADER_SIZE + payload_len,
        });
    };
    let family = u16_at(b, 50);
    Ok(L7Record {
        kind,
        pid: u32_at(b, 4),
        fd: u64_at(b, 8),
        conn_ts: u64_at(b, 16),
        ts_ns: u64_at(b, 24),
        cgroup_id: u64_at(b, 32),
        size: u32_at(b, 40),
        direction: if b[46] == 1 {
            Direction::Ingress
        } else {
            Direction::Egress
        },
        role: if b[47] == 2 {
            Role::Server
        } else {
            Role::Client
        },
        protocol: b[48],
        tls: b[49] & 1 != 0,
        netns: u32_at(b, 56),
        src: addr(family, &b[64..80], u16_at(b, 52)),
        dst: addr(family, &b[80..96], u16_at(b, 54)),
        payload,
    })
}

struct Tracked {
    conn_ts: u64,
    last_ts: u64,
    session: Session,
}

/// What the engine saw, for the `sonde_l7_*` self-metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct L7Stats {
    /// L7 records read from the ring.
    pub records: u64,
    /// Records that did not decode.
    pub decode_errors: u64,
    /// Records of a protocol this build has no parser for (counted, not guessed).
    pub unsupported: u64,
    /// Completed requests emitted.
    pub requests: u64,
    /// Connections with parser state now.
    pub sessions: usize,
    /// Sessions dropped to make room (their in-flight requests are lost).
    pub sessions_evicted: u64,
    /// Parser counters summed over live and ended sessions.
    pub parsing: SessionStats,
}

/// Per-connection sessions fed from the ring (one per [`crate::EventStream`]).
pub struct L7Engine {
    sessions: SessionTable<Tracked>,
    config: sonde_l7::Config,
    max_sessions: usize,
    scratch: Vec<Request>,
    stats: L7Stats,
    /// Parser counters of sessions that ended.
    ended: SessionStats,
    last_sweep_ns: u64,
}

impl std::fmt::Debug for L7Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("L7Engine")
            .field("sessions", &self.sessions.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

fn add(a: &mut SessionStats, b: &SessionStats) {
    a.add(b);
}

impl L7Engine {
    pub fn new(config: sonde_l7::Config, max_sessions: usize) -> L7Engine {
        L7Engine {
            sessions: SessionTable::default(),
            config,
            max_sessions: max_sessions.max(1),
            scratch: Vec::new(),
            stats: L7Stats::default(),
            ended: SessionStats::default(),
            last_sweep_ns: 0,
        }
    }

    /// Handles one L7 record; completed requests are appended to `out`.
    pub fn handle(&mut self, b: &[u8], out: &mut Vec<Event>) {
        self.stats.records += 1;
        let r = match decode_record(b) {
            Ok(r) => r,
            Err(_) => {
                self.stats.decode_errors += 1;
                return;
            }
        };
        if r.kind == EVENT_L7_CLOSE {
            if self
                .sessions
                .get(r.pid, r.fd)
                .is_some_and(|t| t.conn_ts == r.conn_ts)
                && let Some(t) = self.sessions.remove(r.pid, r.fd)
            {
                add(&mut self.ended, &t.session.stats());
            }
            return;
        }
        if r.kind != EVENT_L7_DATA {
            self.stats.decode_errors += 1;
            return;
        }
        let Some(protocol) = Protocol::from_kernel(r.protocol) else {
            self.stats.unsupported += 1;
            return;
        };
        self.sweep(r.ts_ns);
        let existing = self.sessions.get(r.pid, r.fd).map(|t| t.conn_ts);
        if existing != Some(r.conn_ts) {
            if existing.is_none() && self.sessions.len() >= self.max_sessions {
                self.evict_lru();
            }
            let old = self.sessions.insert(
                r.pid,
                r.fd,
                Tracked {
                    conn_ts: r.conn_ts,
                    last_ts: r.ts_ns,
                    session: Session::new(protocol, r.role),
                },
            );
            if let Some(old) = old {
                add(&mut self.ended, &old.session.stats());
            }
        }
        let Some(t) = self.sessions.get_mut(r.pid, r.fd) else {
            return;
        };
        t.last_ts = r.ts_ns;
        let chunk = Chunk {
            ts_ns: r.ts_ns,
            direction: r.direction,
            size: r.size,
            payload: r.payload,
        };
        self.scratch.clear();
        t.session.feed(&chunk, &self.config, &mut self.scratch);
        for request in self.scratch.drain(..) {
            self.stats.requests += 1;
            out.push(Event::L7Request {
                pid: r.pid,
                cgroup_id: r.cgroup_id,
                netns: r.netns,
                role: r.role,
                src: r.src,
                dst: r.dst,
                request,
            });
        }
    }

    fn sweep(&mut self, now: u64) {
        if now.saturating_sub(self.last_sweep_ns) < SWEEP_EVERY_NS {
            return;
        }
        self.last_sweep_ns = now;
        let ended = &mut self.ended;
        self.sessions.retain(
            |t| now.saturating_sub(t.last_ts) < IDLE_NS,
            |t| add(ended, &t.session.stats()),
        );
    }

    /// Drops the least recently used eighth of the sessions (one pass to find
    /// the cut-off), so a full table costs O(n) once per n/8 new connections.
    fn evict_lru(&mut self) {
        let mut ts: Vec<u64> = self.sessions.values().map(|t| t.last_ts).collect();
        let cut = ts.len() / 8;
        let (_, cutoff, _) = ts.select_nth_unstable(cut);
        let cutoff = *cutoff;
        let before = self.sessions.len();
        let ended = &mut self.ended;
        self.sessions
            .retain(|t| t.last_ts > cutoff, |t| add(ended, &t.session.stats()));
        self.stats.sessions_evicted += (before - self.sessions.len()) as u64;
    }

    /// Sessions of process `pid` now (for tests and diagnostics).
    pub fn sessions_of(&self, pid: u32) -> usize {
        self.sessions.count_of(pid)
    }

    /// Process `pid` exited: its connections end with it. Their records all came before
    /// its exit's in the ring; a close the kernel reports later finds nothing. Without this
    /// the sockets the socket tier sees no close of (UDP, a reset with unread data) would
    /// keep their sessions until idle.
    pub fn process_exited(&mut self, pid: u32) {
        let ended = &mut self.ended;
        self.sessions
            .remove_pid(pid, |t| add(ended, &t.session.stats()));
    }

    /// Counters now (sums over live sessions: called at scrape, not per record).
    pub fn stats(&self) -> L7Stats {
        let mut s = self.stats;
        s.sessions = self.sessions.len();
        s.parsing = self.ended;
        for t in self.sessions.values() {
            add(&mut s.parsing, &t.session.stats());
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An l7_event record as the kernel writes it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record(
        kind: u32,
        pid: u32,
        fd: u64,
        conn_ts: u64,
        ts: u64,
        dir: u8,
        role: u8,
        proto: u8,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut b = vec![0u8; L7_HEADER_SIZE];
        b[0..4].copy_from_slice(&kind.to_ne_bytes());
        b[4..8].copy_from_slice(&pid.to_ne_bytes());
        b[8..16].copy_from_slice(&fd.to_ne_bytes());
        b[16..24].copy_from_slice(&conn_ts.to_ne_bytes());
        b[24..32].copy_from_slice(&ts.to_ne_bytes());
        b[32..40].copy_from_slice(&77u64.to_ne_bytes());
        b[40..44].copy_from_slice(&(payload.len() as u32).to_ne_bytes());
        b[44..46].copy_from_slice(&(payload.len() as u16).to_ne_bytes());
        b[46] = dir;
        b[47] = role;
        b[48] = proto;
        b[50..52].copy_from_slice(&2u16.to_ne_bytes());
        b[52..54].copy_from_slice(&40000u16.to_ne_bytes());
        b[54..56].copy_from_slice(&8080u16.to_ne_bytes());
        b[56..60].copy_from_slice(&4026531840u32.to_ne_bytes());
        b[74..76].copy_from_slice(&[0xff, 0xff]);
        b[76..80].copy_from_slice(&[127, 0, 0, 1]);
        b[90..92].copy_from_slice(&[0xff, 0xff]);
        b[92..96].copy_from_slice(&[10, 1, 2, 3]);
        b.extend_from_slice(payload);
        b
    }

    #[test]
    fn decodes_the_header_and_payload() {
        let b = record(EVENT_L7_DATA, 42, 7, 5, 9, 1, 2, 1, b"GET / HTTP/1.1\r\n");
        let r = decode_record(&b).unwrap();
        assert_eq!(r.pid, 42);
        assert_eq!(r.fd, 7);
        assert_eq!(r.conn_ts, 5);
        assert_eq!(r.ts_ns, 9);
        assert_eq!(r.cgroup_id, 77);
        assert_eq!(r.direction, Direction::Ingress);
        assert_eq!(r.role, Role::Server);
        assert_eq!(r.protocol, 1);
        assert_eq!(r.src, "127.0.0.1:40000".parse().unwrap());
        assert_eq!(r.dst, "10.1.2.3:8080".parse().unwrap());
        assert_eq!(r.netns, 4026531840);
        assert_eq!(r.payload, b"GET / HTTP/1.1\r\n");
    }

    #[test]
    fn truncated_records_are_errors_not_panics() {
        let b = record(EVENT_L7_DATA, 1, 1, 1, 1, 0, 1, 1, b"abc");
        for len in 0..b.len() {
            assert!(decode_record(&b[..len]).is_err(), "len {len}");
        }
    }

    #[test]
    fn an_http_exchange_becomes_one_request_and_close_frees_the_session() {
        let mut e = L7Engine::new(sonde_l7::Config::default(), 16);
        let mut out = Vec::new();
        e.handle(
            &record(
                EVENT_L7_DATA,
                1,
                3,
                100,
                1_000,
                0,
                1,
                1,
                b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n",
            ),
            &mut out,
        );
        e.handle(
            &record(
                EVENT_L7_DATA,
                1,
                3,
                100,
                3_000,
                1,
                1,
                1,
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
            ),
            &mut out,
        );
        assert_eq!(out.len(), 1, "{out:?}");
        let Event::L7Request {
            pid, request, dst, ..
        } = &out[0]
        else {
            panic!("{:?}", out[0]);
        };
        assert_eq!(*pid, 1);
        assert_eq!(*dst, "10.1.2.3:8080".parse().unwrap());
        assert_eq!(request.status, sonde_l7::Status::Http(404));
        assert_eq!(request.duration_ns, 2_000);
        assert_eq!(e.stats().sessions, 1);
        e.handle(
            &record(EVENT_L7_CLOSE, 1, 3, 100, 4_000, 0, 1, 1, b""),
            &mut out,
        );
        assert_eq!(e.stats().sessions, 0);
    }

    #[test]
    fn a_full_table_evicts_the_least_recently_used() {
        let mut e = L7Engine::new(sonde_l7::Config::default(), 16);
        let mut out = Vec::new();
        for fd in 0..40u64 {
            e.handle(
                &record(
                    EVENT_L7_DATA,
                    1,
                    fd,
                    1,
                    1_000 + fd,
                    0,
                    1,
                    1,
                    b"GET / HTTP/1.1\r\n\r\n",
                ),
                &mut out,
            );
            assert!(e.stats().sessions <= 16);
        }
        assert!(e.stats().sessions_evicted >= 24);
        assert_eq!(e.stats().records, 40);
    }

    /// A process's exit ends its sessions, and only its own; a request it left unanswered
    /// is not emitted, and a close the kernel reports after the exit finds nothing.
    #[test]
    fn an_exit_ends_the_processes_sessions() {
        let mut e = L7Engine::new(sonde_l7::Config::default(), 16);
        let mut out = Vec::new();
        let get = b"GET / HTTP/1.1\r\n\r\n";
        for (pid, fd) in [(7, 3), (7, 4), (8, 3)] {
            e.handle(
                &record(EVENT_L7_DATA, pid, fd, 1, 1_000, 0, 1, 1, get),
                &mut out,
            );
        }
        assert_eq!(e.stats().sessions, 3);
        e.process_exited(7);
        assert_eq!(
            (e.stats().sessions, e.sessions_of(7), e.sessions_of(8)),
            (1, 0, 1)
        );
        e.handle(
            &record(EVENT_L7_CLOSE, 7, 3, 1, 2_000, 0, 1, 1, b""),
            &mut out,
        );
        e.process_exited(9);
        assert_eq!(e.stats().sessions, 1);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn unknown_protocols_are_counted() {
        let mut e = L7Engine::new(sonde_l7::Config::default(), 16);
        let mut out = Vec::new();
        e.handle(
            &record(EVENT_L7_DATA, 1, 1, 1, 1, 0, 1, 200, b"x"),
            &mut out,
        );
        assert_eq!(e.stats().unsupported, 1);
        assert!(out.is_empty());
    }
}
