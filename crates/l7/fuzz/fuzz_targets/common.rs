//! Shared by every target: the input is a conversation of chunks.
//! Each chunk: [control: u8][len: u8][extra: u16 LE][len bytes]; control
//! bit 0 is the direction, bit 1 the role, bits 2-3 scale `len` (x1, x2,
//! x3, x4, up to PAYLOAD_MAX) so 512-byte payloads are reachable; `extra`
//! bytes are counted in the syscall's size but not shown (a truncated copy).
use sonde_l7::{Chunk, Direction, PAYLOAD_MAX, Parser16, Protocol, Request, Role, SessionStats};

pub fn run(protocol: Protocol, mut data: &[u8]) {
    let mut parser = Parser16::new(protocol).expect("issue-16 protocol");
    let (mut out, mut stats) = (Vec::<Request>::new(), SessionStats::default());
    let mut ts = 0u64;
    let mut chunks = 0u64;
    while data.len() >= 4 {
        let control = data[0];
        let len = (usize::from(data[1]) * (1 + usize::from((control >> 2) & 3))).min(PAYLOAD_MAX);
        let extra = u32::from(u16::from_le_bytes([data[2], data[3]]));
        data = &data[4..];
        let len = len.min(data.len());
        let (payload, rest) = data.split_at(len);
        data = rest;
        let direction = if control & 1 == 0 { Direction::Egress } else { Direction::Ingress };
        let role = if control & 2 == 0 { Role::Client } else { Role::Server };
        ts += 1 + u64::from(control >> 4);
        let chunk = Chunk { ts_ns: ts, direction, size: len as u32 + extra, payload };
        parser.feed(role, &chunk, &mut out, &mut stats);
        chunks += 1;
    }
    // Never a request of another protocol, never a latency longer than the
    // conversation, never more requests than bytes could carry.
    for r in &out {
        assert_eq!(r.protocol, protocol);
        assert!(r.duration_ns <= ts);
    }
    assert!(out.len() as u64 <= chunks * (PAYLOAD_MAX as u64) + 1);
}
