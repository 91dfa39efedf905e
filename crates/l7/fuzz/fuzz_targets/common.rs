//! Shared by every target: the input is a conversation of chunks.
//! Each chunk: [control: u8][len: u8][extra: u16 LE][len bytes]; control
//! bit 0 is the direction, bit 1 the role, bits 2-3 scale `len` (x1, x2,
//! x3, x4, up to PAYLOAD_MAX; on HTTP/2 x1, x2, x4, x16, up to
//! PAYLOAD_MAX_HTTP2) so whole windows are reachable; `extra` bytes are
//! counted in the syscall's size but not shown (a truncated copy); bits 4-7
//! add to the clock. `seeds.py` writes recorded conversations in this form.
#![allow(dead_code)] // each target uses one of the two entry points

use sonde_l7::{
    Chunk, Config, Direction, PAYLOAD_MAX, PAYLOAD_MAX_HTTP2, Parser16, Protocol, Request, Role,
    Session, SessionStats,
};

/// One decoded chunk, borrowing its payload from the input.
struct Next<'a> {
    ts: u64,
    role: Role,
    chunk: Chunk<'a>,
}

/// Splits the input into chunks, in order; `http2` selects its window and scales.
fn chunks(mut data: &[u8], http2: bool, mut each: impl FnMut(Next<'_>)) -> (u64, u64) {
    let (mut ts, mut n) = (0u64, 0u64);
    while data.len() >= 4 {
        let control = data[0];
        let bits = usize::from((control >> 2) & 3);
        let len = if http2 {
            (usize::from(data[1]) * [1, 2, 4, 16][bits]).min(PAYLOAD_MAX_HTTP2)
        } else {
            (usize::from(data[1]) * (1 + bits)).min(PAYLOAD_MAX)
        };
        let extra = u32::from(u16::from_le_bytes([data[2], data[3]]));
        data = &data[4..];
        let len = len.min(data.len());
        let (payload, rest) = data.split_at(len);
        data = rest;
        let direction = if control & 1 == 0 {
            Direction::Egress
        } else {
            Direction::Ingress
        };
        let role = if control & 2 == 0 {
            Role::Client
        } else {
            Role::Server
        };
        ts += 1 + u64::from(control >> 4);
        let chunk = Chunk {
            ts_ns: ts,
            direction,
            size: len as u32 + extra,
            payload,
        };
        each(Next { ts, role, chunk });
        n += 1;
    }
    (ts, n)
}

/// Never a request of another protocol, never a latency longer than the
/// conversation, never more requests than bytes could carry.
fn check(out: &[Request], protocol: Protocol, ts: u64, chunks: u64, window: usize) {
    for r in out {
        // HTTP/1 becomes HTTP/2 on an h2c upgrade or a prior-knowledge preface.
        assert!(
            r.protocol == protocol || (protocol == Protocol::Http && r.protocol == Protocol::Http2),
            "{:?} on a {protocol:?} connection",
            r.protocol
        );
        assert!(r.duration_ns <= ts);
    }
    assert!(out.len() as u64 <= chunks * (window as u64) + 1);
}

/// An issue-16 parser (`Parser16`): the role is each chunk's own.
pub fn run(protocol: Protocol, data: &[u8]) {
    let mut parser = Parser16::new(protocol).expect("issue-16 protocol");
    let (mut out, mut stats) = (Vec::<Request>::new(), SessionStats::default());
    let (ts, n) = chunks(data, false, |c| {
        parser.feed(c.role, &c.chunk, &mut out, &mut stats)
    });
    check(&out, protocol, ts, n, PAYLOAD_MAX);
}

/// A whole `Session` (issue 15's HTTP/1, HTTP/2 + HPACK, gRPC, Postgres,
/// Redis, DNS), as the tracer drives it: the role is fixed per connection,
/// taken from the first chunk. `prelude` (client egress?, bytes) records are
/// fed first (gRPC: a recorded call, so the HPACK table and the streams are
/// gRPC's before the fuzzer's bytes arrive).
pub fn run_session(protocol: Protocol, prelude: &[(bool, Vec<u8>)], data: &[u8]) {
    let http2 = protocol == Protocol::Http2;
    let window = if http2 {
        PAYLOAD_MAX_HTTP2
    } else {
        PAYLOAD_MAX
    };
    let role = match data.first() {
        Some(c) if c & 2 != 0 => Role::Server,
        _ => Role::Client,
    };
    // Exclusion globs exercised on every request path (coroot's semantics).
    let config = Config {
        exclude_http_paths: vec!["/health*".into(), "/s[a-c]?/{x,y}".into()],
        ..Config::default()
    };
    let mut session = Session::new(protocol, role);
    let mut out = Vec::<Request>::new();
    let mut last = 0u64;
    for (client_egress, bytes) in prelude {
        // The server reads what the client wrote.
        let direction = if *client_egress == (role == Role::Client) {
            Direction::Egress
        } else {
            Direction::Ingress
        };
        last += 1;
        let payload = &bytes[..bytes.len().min(window)];
        let chunk = Chunk {
            ts_ns: last,
            direction,
            size: bytes.len() as u32,
            payload,
        };
        session.feed(&chunk, &config, &mut out);
    }
    let (ts, n) = chunks(data, http2, |c| {
        let chunk = Chunk {
            ts_ns: last + c.ts,
            ..c.chunk
        };
        session.feed(&chunk, &config, &mut out);
    });
    check(&out, protocol, last + ts, prelude.len() as u64 + n, window);
}

/// The (client egress?, bytes) records of a recorded fixture (`E`/`I` hex
/// lines, crates/l7/tests/fixtures), at most `max` of them.
pub fn records(fixture: &str, max: usize) -> Vec<(bool, Vec<u8>)> {
    let hex = |h: &str| {
        (0..h.len() / 2)
            .map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).unwrap_or(0))
            .collect()
    };
    fixture
        .lines()
        .filter_map(|l| match l.split_at_checked(2) {
            Some(("E ", h)) => Some((true, hex(h))),
            Some(("I ", h)) => Some((false, hex(h))),
            _ => None,
        })
        .take(max)
        .collect()
}
