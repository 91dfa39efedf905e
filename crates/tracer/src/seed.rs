//! TCP sockets that existed before the tracer started (`ebpf/src/seed.c`).
//!
//! The state-change programs see transitions, not sockets already open: a connection older
//! than the agent would stay invisible until it closed, and a listener until reopened. At
//! start the loader runs the `seed_sockets` iterator once ([`crate::Tracer::existing_sockets`])
//! and this module sorts its records, purely:
//! - listening sockets are reported as listeners;
//! - a connected socket whose local port is a listening port of its network namespace is an
//!   accepted (inbound) connection, never counted (as the state programs never count them);
//! - every other connected socket is an outbound connection: adopted into the kernel's
//!   `active` map ([`crate::Tracer::adopt_connections`]), so its bytes, retransmits and close
//!   are tracked like any other, and given to the connection table as already counted up to
//!   now ([`crate::conntrack::ConnectionTable::adopt`]): its bytes count from the agent's
//!   start, and it is not a connect (that happened before).
//!
//! The owning process of each socket is found by its inode in `/proc/<pid>/fd`
//! ([`socket_owners`]), once, at start.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;

use crate::decode::{DecodeError, addr_at, u16_at, u32_at, u64_at};

/// Size of `struct seed_record` (ebpf/include/common.h).
pub const SEED_RECORD_SIZE: usize = 88;

const TCP_LISTEN: u16 = 10;

/// One TCP socket open when the tracer started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingSocket {
    /// Kernel socket address (the `active` map's key).
    pub sock: u64,
    /// Socket inode (`socket:[N]` in /proc/<pid>/fd).
    pub inode: u64,
    pub netns: u32,
    /// Local address (for a listener, its listening address).
    pub src: SocketAddr,
    pub dst: SocketAddr,
    /// The kernel's TCP state (10 = LISTEN).
    pub state: u16,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub segs_out: u32,
    pub segs_in: u32,
}

impl ExistingSocket {
    pub fn is_listener(&self) -> bool {
        self.state == TCP_LISTEN
    }
}

/// Decodes the iterator's output: whole records, in order. A trailing partial record is an
/// error (the kernel writes records whole).
pub fn decode_records(b: &[u8]) -> Result<Vec<ExistingSocket>, DecodeError> {
    if !b.len().is_multiple_of(SEED_RECORD_SIZE) {
        return Err(DecodeError::Truncated {
            kind: 0,
            len: b.len() % SEED_RECORD_SIZE,
            need: SEED_RECORD_SIZE,
        });
    }
    Ok(b.chunks_exact(SEED_RECORD_SIZE)
        .map(|r| ExistingSocket {
            sock: u64_at(r, 0),
            inode: u64_at(r, 8),
            bytes_sent: u64_at(r, 16),
            bytes_received: u64_at(r, 24),
            netns: u32_at(r, 32),
            src: addr_at(r, 56, u16_at(r, 38)),
            dst: addr_at(r, 72, u16_at(r, 40)),
            state: u16_at(r, 42),
            segs_out: u32_at(r, 44),
            segs_in: u32_at(r, 48),
        })
        .collect())
}

/// Splits sockets into (listeners, outbound connections): a connected socket whose local
/// port a listener of the same namespace listens on (on its address or a wildcard) is
/// inbound, and left out.
pub fn classify(sockets: Vec<ExistingSocket>) -> (Vec<ExistingSocket>, Vec<ExistingSocket>) {
    let listening: HashSet<(u32, SocketAddr)> = sockets
        .iter()
        .filter(|s| s.is_listener())
        .map(|s| (s.netns, s.src))
        .collect();
    let accepts_on = |s: &ExistingSocket| {
        let port = s.src.port();
        let wildcard4 = SocketAddr::from(([0, 0, 0, 0], port));
        let wildcard6 = SocketAddr::from(([0u16; 8], port));
        listening.contains(&(s.netns, s.src))
            || listening.contains(&(s.netns, wildcard4))
            || listening.contains(&(s.netns, wildcard6))
    };
    let (listeners, connected): (Vec<_>, Vec<_>) =
        sockets.into_iter().partition(ExistingSocket::is_listener);
    let outbound = connected.into_iter().filter(|s| !accepts_on(s)).collect();
    (listeners, outbound)
}

/// The process holding each of `inodes`, by a walk of `/proc/<pid>/fd` (one readlink per
/// file descriptor, once at start). Sockets whose holder is not found are left out.
pub fn socket_owners(procfs: &Path, inodes: &HashSet<u64>) -> HashMap<u64, u32> {
    let mut out = HashMap::new();
    if inodes.is_empty() {
        return out;
    }
    let Ok(procs) = std::fs::read_dir(procfs) else {
        return out;
    };
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue; // gone, or a kernel thread
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let Some(inode) = target
                .to_str()
                .and_then(|t| t.strip_prefix("socket:["))
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|t| t.parse::<u64>().ok())
            else {
                continue;
            };
            if inodes.contains(&inode) {
                out.entry(inode).or_insert(pid);
                if out.len() == inodes.len() {
                    return out;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[allow(clippy::too_many_arguments)]
    fn record(
        sock: u64,
        inode: u64,
        netns: u32,
        state: u16,
        src: [u8; 4],
        sport: u16,
        dst: [u8; 4],
        dport: u16,
    ) -> Vec<u8> {
        let mut b = vec![0u8; SEED_RECORD_SIZE];
        b[0..8].copy_from_slice(&sock.to_ne_bytes());
        b[8..16].copy_from_slice(&inode.to_ne_bytes());
        b[16..24].copy_from_slice(&1000u64.to_ne_bytes());
        b[24..32].copy_from_slice(&2000u64.to_ne_bytes());
        b[32..36].copy_from_slice(&netns.to_ne_bytes());
        b[36..38].copy_from_slice(&2u16.to_ne_bytes());
        b[38..40].copy_from_slice(&sport.to_ne_bytes());
        b[40..42].copy_from_slice(&dport.to_ne_bytes());
        b[42..44].copy_from_slice(&state.to_ne_bytes());
        b[44..48].copy_from_slice(&11u32.to_ne_bytes());
        b[48..52].copy_from_slice(&13u32.to_ne_bytes());
        let mapped = |ip: [u8; 4]| {
            let mut a = [0u8; 16];
            a[10] = 0xff;
            a[11] = 0xff;
            a[12..].copy_from_slice(&ip);
            a
        };
        b[56..72].copy_from_slice(&mapped(src));
        b[72..88].copy_from_slice(&mapped(dst));
        b
    }

    #[test]
    fn records_decode_and_listeners_sort_out_inbound_connections() {
        let mut b = Vec::new();
        // A listener on 0.0.0.0:8080 and one of its accepted connections.
        b.extend(record(1, 101, 7, 10, [0, 0, 0, 0], 8080, [0, 0, 0, 0], 0));
        b.extend(record(
            2,
            102,
            7,
            1,
            [10, 0, 0, 2],
            8080,
            [10, 0, 0, 9],
            41000,
        ));
        // An outbound connection of the same namespace to a database.
        b.extend(record(
            3,
            103,
            7,
            1,
            [10, 0, 0, 2],
            41001,
            [10, 0, 0, 5],
            5432,
        ));
        // Port 8080 in another namespace is not listened on there: outbound.
        b.extend(record(4, 104, 8, 1, [10, 0, 1, 2], 8080, [10, 0, 0, 5], 80));
        let all = decode_records(&b).unwrap();
        assert_eq!(all.len(), 4);
        assert_eq!(all[2].dst, "10.0.0.5:5432".parse().unwrap());
        assert_eq!((all[2].bytes_sent, all[2].bytes_received), (1000, 2000));
        assert_eq!((all[2].segs_out, all[2].segs_in), (11, 13));
        let (listeners, outbound) = classify(all);
        assert_eq!(listeners.iter().map(|s| s.sock).collect::<Vec<_>>(), [1]);
        assert_eq!(outbound.iter().map(|s| s.sock).collect::<Vec<_>>(), [3, 4]);
        // A torn tail is an error, never a half record.
        assert!(decode_records(&b[..b.len() - 1]).is_err());
    }

    #[test]
    fn owners_are_found_by_socket_inode() {
        let dir = tempfile::tempdir().unwrap();
        let fd = dir.path().join("42/fd");
        std::fs::create_dir_all(&fd).unwrap();
        std::os::unix::fs::symlink("socket:[555]", fd.join("3")).unwrap();
        std::os::unix::fs::symlink("/dev/null", fd.join("0")).unwrap();
        std::fs::create_dir_all(dir.path().join("self")).unwrap();
        let owners = socket_owners(dir.path(), &HashSet::from([555, 556]));
        assert_eq!(owners, HashMap::from([(555, 42)]));
    }
}

/// The iterator program in `ebpf/src/seed.c`.
const SEED_PROGRAM: &str = "seed_sockets";
/// `enum conn_state` of `ebpf/src/tcp.c`: an established connection.
const CONN_ACTIVE: u16 = 2;

/// An outbound connection to adopt into the kernel's `active` map, with its owner.
#[derive(Debug, Clone)]
pub struct Adopted {
    pub socket: ExistingSocket,
    /// The owning process (0: not found).
    pub pid: u32,
}

impl crate::Tracer {
    /// Runs the `seed_sockets` iterator once: every full TCP socket open now, in every
    /// network namespace. Costs one pass over the kernel's TCP hash tables.
    pub fn existing_sockets(
        &mut self,
        btf_path: &Path,
    ) -> Result<Vec<ExistingSocket>, crate::Error> {
        use std::io::Read;
        let err = |reason: String| crate::Error::Seed { reason };
        let btf = aya::Btf::parse_file(btf_path, aya::Endianness::default())
            .map_err(|e| err(format!("kernel BTF at {}: {e}", btf_path.display())))?;
        let prog: &mut aya::programs::Iter = self
            .ebpf
            .program_mut(SEED_PROGRAM)
            .and_then(|p| p.try_into().ok())
            .ok_or_else(|| err(format!("program {SEED_PROGRAM} missing from the object")))?;
        if prog.fd().is_err() {
            prog.load("tcp", &btf).map_err(|e| err(e.to_string()))?;
        }
        let link = prog.attach().map_err(|e| err(e.to_string()))?;
        let link = prog.take_link(link).map_err(|e| err(e.to_string()))?;
        let mut file = link.into_file().map_err(|e| err(e.to_string()))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| err(format!("reading the iterator: {e}")))?;
        decode_records(&bytes).map_err(|e| err(e.to_string()))
    }

    /// Puts outbound connections open before the tracer into the kernel's `active` map, as
    /// if their connect had been seen (duration unknown), so scrape-time dumps, retransmits
    /// and the close see them. An entry the kernel made meanwhile is never overwritten (that
    /// connection began after the tracer, and is counted as any other). Returns the sockets
    /// adopted.
    pub fn adopt_connections(&mut self, conns: &[Adopted]) -> Result<Vec<u64>, crate::Error> {
        let map = self.ebpf.map_mut("active").ok_or(crate::Error::Missing {
            kind: "map",
            name: "active",
        })?;
        let mut active: aya::maps::HashMap<_, u64, [u8; crate::decode::CONNECTION_VALUE_SIZE]> =
            aya::maps::HashMap::try_from(map).map_err(|e| crate::Error::Map {
                map: "active",
                source: Box::new(e),
            })?;
        let mut adopted = Vec::with_capacity(conns.len());
        for a in conns {
            let value = connection_value(&a.socket, a.pid);
            // BPF_NOEXIST: the kernel may track the socket already (a connection made since
            // the tracer attached, possibly on a reused socket address).
            if active.insert(a.socket.sock, value, 1).is_ok() {
                adopted.push(a.socket.sock);
            }
        }
        Ok(adopted)
    }
}

/// The `struct connection` value (ebpf/src/tcp.c) of an adopted connection: established,
/// start and duration unknown (0), cgroup unknown (0: attributed by pid).
fn connection_value(s: &ExistingSocket, pid: u32) -> [u8; crate::decode::CONNECTION_VALUE_SIZE] {
    let mut v = [0u8; crate::decode::CONNECTION_VALUE_SIZE];
    let family: u16 = if s.src.is_ipv4() { 2 } else { 10 };
    let mapped = |a: SocketAddr| match a {
        SocketAddr::V4(v4) => v4.ip().to_ipv6_mapped().octets(),
        SocketAddr::V6(v6) => v6.ip().octets(),
    };
    v[0..8].copy_from_slice(&s.bytes_sent.to_ne_bytes());
    v[8..16].copy_from_slice(&s.bytes_received.to_ne_bytes());
    v[16..20].copy_from_slice(&pid.to_ne_bytes());
    v[20..24].copy_from_slice(&s.netns.to_ne_bytes());
    v[24..26].copy_from_slice(&family.to_ne_bytes());
    v[26..28].copy_from_slice(&s.src.port().to_ne_bytes());
    v[28..30].copy_from_slice(&s.dst.port().to_ne_bytes());
    v[30..32].copy_from_slice(&CONN_ACTIVE.to_ne_bytes());
    v[32..48].copy_from_slice(&mapped(s.src));
    v[48..64].copy_from_slice(&mapped(s.dst));
    v[88..92].copy_from_slice(&s.segs_out.to_ne_bytes());
    v[92..96].copy_from_slice(&s.segs_in.to_ne_bytes());
    v
}

#[cfg(test)]
mod value_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn an_adopted_value_decodes_back_as_the_same_connection() {
        let s = ExistingSocket {
            sock: 9,
            inode: 1,
            netns: 77,
            src: "10.0.0.2:41000".parse().unwrap(),
            dst: "10.0.0.5:5432".parse().unwrap(),
            state: 1,
            bytes_sent: 5,
            bytes_received: 6,
            segs_out: 7,
            segs_in: 8,
        };
        let c = crate::decode::decode_connection(9, &connection_value(&s, 42))
            .unwrap()
            .unwrap();
        assert_eq!((c.pid, c.netns, c.src, c.dst), (42, 77, s.src, s.dst));
        assert_eq!(
            (c.bytes_sent, c.bytes_received, c.segs_out, c.segs_in),
            (5, 6, 7, 8)
        );
        assert_eq!((c.duration_ns, c.cgroup_id), (0, 0));
    }
}
