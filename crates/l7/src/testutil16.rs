//! Replays recorded conversations (crates/l7/fixtures) through a parser the
//! way the kernel would ship them: one chunk per recv, at most PAYLOAD_MAX
//! bytes of payload, the syscall's full size.

use crate::{Chunk, Direction, PAYLOAD_MAX, Request, Role, SessionStats};

/// The chunks of a fixture file as `role` sees them: '>' lines are the
/// client's writes, '<' lines the server's. Timestamps are 1000 ns apart.
pub(crate) fn chunks(fixture: &str, role: Role) -> Vec<(u64, Direction, Vec<u8>)> {
    let mut v = Vec::new();
    for line in fixture.lines() {
        let (dir, hex) = match line.split_once(' ') {
            Some((">", h)) => (Direction::Egress, h),
            Some(("<", h)) => (Direction::Ingress, h),
            _ => continue,
        };
        let dir = match (role, dir) {
            (Role::Client, d) => d,
            (Role::Server, Direction::Egress) => Direction::Ingress,
            (Role::Server, Direction::Ingress) => Direction::Egress,
        };
        let bytes = (0..hex.len() / 2)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("fixture hex"))
            .collect();
        v.push((1000 * (v.len() as u64 + 1), dir, bytes));
    }
    v
}

/// Feeds a whole fixture to a fresh parser state of type `S`, and to a
/// fresh one again at each '=' line (the recording's next connection).
pub(crate) fn run<S: Default>(
    fixture: &str,
    role: Role,
    feed: impl Fn(&mut S, Role, &Chunk, &mut Vec<Request>, &mut SessionStats),
) -> (Vec<Request>, SessionStats) {
    let (mut out, mut stats) = (Vec::new(), SessionStats::default());
    for conversation in fixture.split("\n=\n") {
        let mut s = S::default();
        for (ts, dir, b) in chunks(conversation, role) {
            let c = Chunk {
                ts_ns: ts,
                direction: dir,
                size: b.len() as u32,
                payload: &b[..b.len().min(PAYLOAD_MAX)],
            };
            feed(&mut s, role, &c, &mut out, &mut stats);
        }
    }
    (out, stats)
}

/// (ok, failed) counts of a request list.
pub(crate) fn tally(out: &[Request]) -> (usize, usize) {
    let ok = out.iter().filter(|r| r.status == crate::Status::Ok).count();
    let failed = out
        .iter()
        .filter(|r| r.status == crate::Status::Failed)
        .count();
    (ok, failed)
}

/// Like [`run`], but every recorded recv is cut into 1 to 4 pieces at
/// pseudo-random points (seeded): how a client reading a header first, or a
/// kernel delivering a message over several syscalls, shows it. A parser
/// that follows messages by length must count the same.
pub(crate) fn run_split<S: Default>(
    fixture: &str,
    role: Role,
    seed: u64,
    feed: impl Fn(&mut S, Role, &Chunk, &mut Vec<Request>, &mut SessionStats),
) -> (Vec<Request>, SessionStats) {
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let (mut out, mut stats) = (Vec::new(), SessionStats::default());
    for conversation in fixture.split("\n=\n") {
        let mut s = S::default();
        for (ts, dir, b) in chunks(conversation, role) {
            let mut cuts: Vec<usize> = (0..next() % 4)
                .map(|_| (next() as usize) % (b.len() + 1))
                .collect();
            cuts.push(0);
            cuts.push(b.len());
            cuts.sort_unstable();
            cuts.dedup();
            for w in cuts.windows(2) {
                let piece = &b[w[0]..w[1]];
                let c = Chunk {
                    ts_ns: ts,
                    direction: dir,
                    size: piece.len() as u32,
                    payload: &piece[..piece.len().min(PAYLOAD_MAX)],
                };
                feed(&mut s, role, &c, &mut out, &mut stats);
            }
        }
    }
    (out, stats)
}
