#![allow(clippy::unwrap_used)]

use super::*;
use std::net::{Ipv4Addr, SocketAddrV4};

fn v4_mapped(ip: [u8; 4]) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[10] = 0xff;
    a[11] = 0xff;
    a[12..].copy_from_slice(&ip);
    a
}

/// Builds a `struct tcp_event` the way the C side lays it out.
#[allow(clippy::too_many_arguments)]
fn tcp_record(
    kind: u32,
    pid: u32,
    sock: u64,
    dur: u64,
    sent: u64,
    recv: u64,
    netns: u32,
    sport: u16,
    dport: u16,
    saddr: [u8; 16],
    daddr: [u8; 16],
) -> Vec<u8> {
    let mut b = vec![0u8; TCP_EVENT_SIZE];
    b[0..4].copy_from_slice(&kind.to_ne_bytes());
    b[4..8].copy_from_slice(&pid.to_ne_bytes());
    b[8..16].copy_from_slice(&sock.to_ne_bytes());
    b[16..24].copy_from_slice(&dur.to_ne_bytes());
    b[24..32].copy_from_slice(&sent.to_ne_bytes());
    b[32..40].copy_from_slice(&recv.to_ne_bytes());
    b[40..44].copy_from_slice(&netns.to_ne_bytes());
    b[44..46].copy_from_slice(&2u16.to_ne_bytes());
    b[46..48].copy_from_slice(&sport.to_ne_bytes());
    b[48..50].copy_from_slice(&dport.to_ne_bytes());
    b[56..72].copy_from_slice(&saddr);
    b[72..88].copy_from_slice(&daddr);
    // The tail: cgroup id and segment counts, derived from the pid so each test
    // checks they are read from their own offsets.
    b[88..96].copy_from_slice(&cgroup_of(pid).to_ne_bytes());
    b[96..100].copy_from_slice(&(pid + 11).to_ne_bytes());
    b[100..104].copy_from_slice(&(pid + 13).to_ne_bytes());
    b
}

fn cgroup_of(pid: u32) -> u64 {
    0x1_0000_0000 + u64::from(pid)
}

fn proc_record(kind: u32, pid: u32, ppid: u32, status: i32, cgroup: u64) -> Vec<u8> {
    let mut b = vec![0u8; PROC_EVENT_SIZE];
    b[0..4].copy_from_slice(&kind.to_ne_bytes());
    b[4..8].copy_from_slice(&pid.to_ne_bytes());
    b[8..12].copy_from_slice(&ppid.to_ne_bytes());
    b[12..16].copy_from_slice(&status.to_ne_bytes());
    b[16..24].copy_from_slice(&cgroup.to_ne_bytes());
    b
}

fn sa(ip: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port))
}

#[test]
fn process_events() {
    assert_eq!(
        decode(&proc_record(1, 100, 99, 0, 0xdead_beef_0001)).unwrap(),
        Event::ProcessStart {
            pid: 100,
            ppid: 99,
            cgroup_id: 0xdead_beef_0001
        }
    );
    assert_eq!(
        decode(&proc_record(2, 100, 0, 3 << 8, 0)).unwrap(),
        Event::ProcessExit {
            pid: 100,
            exit_code: 3,
            cgroup_id: 0
        }
    );
    // Killed by SIGKILL (status 9): 128 + 9, as Docker reports it.
    assert_eq!(
        decode(&proc_record(2, 100, 0, 9, 0x77)).unwrap(),
        Event::ProcessExit {
            pid: 100,
            exit_code: 137,
            cgroup_id: 0x77
        }
    );
    // The cgroup id sits where ProcessStart's does (offset 16).
    assert_eq!(
        decode(&proc_record(3, 7, 0, 0, 0x1_0000_2f3a)).unwrap(),
        Event::OomKill {
            pid: 7,
            cgroup_id: 0x1_0000_2f3a
        }
    );
}

#[test]
fn oom_kill_record_prefixes() {
    let r = proc_record(3, 7, 0, 0, 12345);
    for n in 0..r.len() {
        assert_eq!(
            decode(&r[..n])
                .err()
                .map(|e| matches!(e, DecodeError::Truncated { .. })),
            Some(true),
            "prefix {n}"
        );
    }
    assert_eq!(
        decode(&r).unwrap(),
        Event::OomKill {
            pid: 7,
            cgroup_id: 12345
        }
    );
}

#[test]
fn exit_status_conversion() {
    assert_eq!(exit_code_from_status(0), 0);
    assert_eq!(exit_code_from_status(255 << 8), 255);
    assert_eq!(exit_code_from_status(15), 143);
    // Core dump flag (0x80) with SIGSEGV.
    assert_eq!(exit_code_from_status(0x80 | 11), 139);
}

#[test]
fn tcp_events_v4_mapped() {
    let s = v4_mapped([127, 0, 0, 1]);
    let d = v4_mapped([10, 1, 2, 3]);
    let r = tcp_record(
        6,
        42,
        0xffff_8880_1234_5678,
        1500,
        0,
        0,
        4026531840,
        40000,
        8080,
        s,
        d,
    );
    assert_eq!(
        decode(&r).unwrap(),
        Event::ConnectOk {
            pid: 42,
            netns: 4026531840,
            sock: 0xffff_8880_1234_5678,
            src: sa([127, 0, 0, 1], 40000),
            dst: sa([10, 1, 2, 3], 8080),
            duration_ns: 1500,
            cgroup_id: cgroup_of(42),
        }
    );
    let r = tcp_record(8, 42, 1, 700, 1000, 2000, 5, 40000, 8080, s, d);
    assert_eq!(
        decode(&r).unwrap(),
        Event::ConnectionClosed {
            pid: 42,
            netns: 5,
            sock: 1,
            src: sa([127, 0, 0, 1], 40000),
            dst: sa([10, 1, 2, 3], 8080),
            duration_ns: 700,
            bytes_sent: 1000,
            bytes_received: 2000,
            cgroup_id: cgroup_of(42),
            segs_out: 53,
            segs_in: 55,
        }
    );
    let r = tcp_record(4, 9, 1, 0, 0, 0, 5, 80, 0, v4_mapped([0, 0, 0, 0]), [0; 16]);
    assert_eq!(
        decode(&r).unwrap(),
        Event::ListenOpen {
            pid: 9,
            netns: 5,
            addr: sa([0, 0, 0, 0], 80),
            cgroup_id: cgroup_of(9),
        }
    );
    assert!(matches!(
        decode(&tcp_record(5, 9, 1, 0, 0, 0, 5, 80, 0, s, d)).unwrap(),
        Event::ListenClose { .. }
    ));
    assert!(matches!(
        decode(&tcp_record(7, 9, 1, 0, 0, 0, 5, 1, 2, s, d)).unwrap(),
        Event::ConnectFailed { .. }
    ));
    assert!(matches!(
        decode(&tcp_record(9, 9, 1, 0, 0, 0, 5, 1, 2, s, d)).unwrap(),
        Event::Retransmit { .. }
    ));
}

#[test]
fn tcp_event_ipv6() {
    let s: Ipv6Addr = "fd00::1".parse().unwrap();
    let d: Ipv6Addr = "::1".parse().unwrap();
    let r = tcp_record(7, 1, 2, 0, 0, 0, 3, 50000, 443, s.octets(), d.octets());
    assert_eq!(
        decode(&r).unwrap(),
        Event::ConnectFailed {
            pid: 1,
            netns: 3,
            sock: 2,
            src: SocketAddr::new(IpAddr::V6(s), 50000),
            dst: SocketAddr::new(IpAddr::V6(d), 443),
            cgroup_id: cgroup_of(1),
        }
    );
}

#[test]
fn truncated_and_garbage_are_errors() {
    assert!(matches!(
        decode(&[]),
        Err(DecodeError::Truncated { len: 0, .. })
    ));
    assert!(matches!(
        decode(&[1, 0]),
        Err(DecodeError::Truncated { .. })
    ));
    let r = proc_record(1, 1, 1, 0, 0);
    assert_eq!(
        decode(&r[..PROC_EVENT_SIZE - 1]),
        Err(DecodeError::Truncated {
            kind: 1,
            len: 23,
            need: 24
        })
    );
    let r = tcp_record(6, 1, 1, 0, 0, 0, 0, 1, 1, [0; 16], [0; 16]);
    assert!(matches!(
        decode(&r[..60]),
        Err(DecodeError::Truncated { kind: 6, .. })
    ));
    let mut r = proc_record(1, 1, 1, 0, 0);
    r[0..4].copy_from_slice(&77u32.to_ne_bytes());
    assert_eq!(
        decode(&r),
        Err(DecodeError::UnknownType { kind: 77, len: 24 })
    );
    assert!(matches!(
        decode(&[0u8; 88]),
        Err(DecodeError::UnknownType { kind: 0, .. })
    ));
}

#[test]
fn every_prefix_of_a_valid_record_is_handled() {
    let r = tcp_record(
        8,
        1,
        1,
        0,
        5,
        6,
        0,
        1,
        1,
        v4_mapped([1, 2, 3, 4]),
        v4_mapped([5, 6, 7, 8]),
    );
    for n in 0..r.len() {
        assert!(decode(&r[..n]).is_err(), "prefix {n} must be rejected");
    }
    assert!(decode(&r).is_ok());
    // Longer records (a future layout that appends fields) still decode.
    let mut longer = r.clone();
    longer.extend_from_slice(&[0xaa; 16]);
    assert_eq!(decode(&longer).unwrap(), decode(&r).unwrap());
}

#[test]
fn connection_value() {
    let mut v = vec![0u8; CONNECTION_VALUE_SIZE];
    v[0..8].copy_from_slice(&1234u64.to_ne_bytes());
    v[8..16].copy_from_slice(&5678u64.to_ne_bytes());
    v[16..20].copy_from_slice(&77u32.to_ne_bytes());
    v[20..24].copy_from_slice(&88u32.to_ne_bytes());
    v[24..26].copy_from_slice(&2u16.to_ne_bytes());
    v[26..28].copy_from_slice(&45000u16.to_ne_bytes());
    v[28..30].copy_from_slice(&6379u16.to_ne_bytes());
    v[32..48].copy_from_slice(&v4_mapped([127, 0, 0, 1]));
    v[48..64].copy_from_slice(&v4_mapped([127, 0, 0, 2]));
    v[64..72].copy_from_slice(&99u64.to_ne_bytes()); // start_ns: not decoded
    v[72..80].copy_from_slice(&4321u64.to_ne_bytes()); // duration_ns
    v[80..88].copy_from_slice(&0xc6u64.to_ne_bytes()); // cgroup_id
    v[88..92].copy_from_slice(&31u32.to_ne_bytes()); // segs_out
    v[92..96].copy_from_slice(&37u32.to_ne_bytes()); // segs_in
    // Still connecting: skipped.
    v[30..32].copy_from_slice(&1u16.to_ne_bytes());
    assert_eq!(decode_connection(9, &v).unwrap(), None);
    v[30..32].copy_from_slice(&2u16.to_ne_bytes());
    assert_eq!(
        decode_connection(9, &v).unwrap(),
        Some(ConnectionBytes {
            pid: 77,
            netns: 88,
            sock: 9,
            src: sa([127, 0, 0, 1], 45000),
            dst: sa([127, 0, 0, 2], 6379),
            bytes_sent: 1234,
            bytes_received: 5678,
            duration_ns: 4321,
            cgroup_id: 0xc6,
            segs_out: 31,
            segs_in: 37,
        })
    );
    assert!(decode_connection(9, &v[..95]).is_err());
}

/// Builds a `struct cgroup_event` the way the C side submits it: the header,
/// then exactly `path_len` bytes of path.
fn cgroup_record(id: u64, path: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; CGROUP_EVENT_HEADER_SIZE];
    b[0..4].copy_from_slice(&10u32.to_ne_bytes());
    b[4..8].copy_from_slice(&u32::try_from(path.len()).unwrap().to_ne_bytes());
    b[8..16].copy_from_slice(&id.to_ne_bytes());
    b.extend_from_slice(path);
    b
}

#[test]
fn cgroup_created() {
    let path = format!("/docker/{}", "ab12".repeat(16));
    assert_eq!(
        decode(&cgroup_record(0x1_0000_58a6, path.as_bytes())).unwrap(),
        Event::CgroupCreated {
            cgroup_id: 0x1_0000_58a6,
            path: path.clone(),
        }
    );
    // The longest path the kernel side reports.
    let long = format!("/{}", "x".repeat(CGROUP_PATH_MAX - 1));
    assert_eq!(
        decode(&cgroup_record(7, long.as_bytes())).unwrap(),
        Event::CgroupCreated {
            cgroup_id: 7,
            path: long
        }
    );
    // Bytes after path_len (none today) are not part of the path.
    let mut longer = cgroup_record(5, b"/a/b");
    longer.extend_from_slice(b"\0garbage");
    assert_eq!(
        decode(&longer).unwrap(),
        Event::CgroupCreated {
            cgroup_id: 5,
            path: "/a/b".into()
        }
    );
    // Cgroup names are bytes: invalid UTF-8 is replaced, not an error.
    assert_eq!(
        decode(&cgroup_record(6, b"/bad\xffname")).unwrap(),
        Event::CgroupCreated {
            cgroup_id: 6,
            path: "/bad\u{fffd}name".into()
        }
    );
}

#[test]
fn cgroup_record_prefixes() {
    let r = cgroup_record(42, b"/sonde-test-1/child");
    for n in 0..r.len() {
        let need = if n < CGROUP_EVENT_HEADER_SIZE {
            if n < 4 { 4 } else { CGROUP_EVENT_HEADER_SIZE }
        } else {
            r.len()
        };
        let kind = if n < 4 { 0 } else { 10 };
        assert_eq!(
            decode(&r[..n]),
            Err(DecodeError::Truncated { kind, len: n, need }),
            "prefix {n}"
        );
    }
    assert!(decode(&r).is_ok());
}

#[test]
fn cgroup_record_with_a_huge_length_is_an_error() {
    // A garbage length must not be trusted beyond the record.
    let mut r = cgroup_record(1, b"/x");
    r[4..8].copy_from_slice(&u32::MAX.to_ne_bytes());
    assert!(matches!(
        decode(&r),
        Err(DecodeError::Truncated { kind: 10, .. })
    ));
}

#[test]
fn exec_event_and_its_prefixes() {
    // struct exec_event of ebpf/include/common.h: type, pid, ino at 8, dev at 16.
    let mut b = vec![0u8; EXEC_EVENT_SIZE];
    b[0..4].copy_from_slice(&13u32.to_ne_bytes());
    b[4..8].copy_from_slice(&4242u32.to_ne_bytes());
    b[8..16].copy_from_slice(&0x1234_5678_9abcu64.to_ne_bytes());
    b[16..20].copy_from_slice(&0x0080_0001u32.to_ne_bytes());
    assert_eq!(
        decode(&b).unwrap(),
        Event::ProcessExec {
            pid: 4242,
            file: ExecFile {
                ino: 0x1234_5678_9abc,
                dev: 0x0080_0001
            }
        }
    );
    for n in 0..b.len() {
        assert!(decode(&b[..n]).is_err(), "prefix of {n} bytes");
    }
}
