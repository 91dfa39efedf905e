//! Memcached, text and binary protocols (the connection's first request
//! byte decides: 0x80 is the binary magic).
//!
//! Text: each command line is matched, in order, with its response; storage
//! commands' data blocks and retrieval responses' VALUE blocks are skipped by
//! their length. Counted (coroot-node-agent's list): get, gets, gat, gats,
//! set, add, replace, append, prepend, cas, incr, decr, touch, delete.
//! Other commands with a response (version, stats, verbosity, flush_all,
//! meta commands, unknown commands answered ERROR) are matched, not counted;
//! `noreply` commands and quiet meta commands (flag q) have no response.
//! Status: ERROR, CLIENT_ERROR and SERVER_ERROR are `failed`; everything else
//! (STORED, NOT_STORED, EXISTS, NOT_FOUND, DELETED, TOUCHED, VALUE, a number,
//! END for a miss) is `ok`. A request completes at its response's first
//! line (as coroot's does): the rest of a multi-value response only keeps
//! the place. Unlike coroot, a get miss (`END`) is counted too.
//!
//! Binary: 24-byte headers; responses are matched by opaque. The same
//! operations are counted (their quiet variants too). Quiet requests are
//! answered only on failure or a hit: when a later request's response
//! arrives, earlier unanswered quiet requests are complete (`ok`, duration
//! unknown, so 0). Status: 0 (no error), 1 (key not found), 2 (exists) and
//! 5 (not stored) are `ok` as their text twins are; others `failed`.

use crate::framer::{
    FrameError, Framer, Inflight, Len, be_u16, be_u32, completed, is_request, lost_place,
};
use crate::lines::{LineVerdict, Lines, dec, tokens};
use crate::{Chunk, Method, Protocol, Request, Role, SessionStats, Status};

#[derive(Debug, Default)]
pub(crate) struct MemcachedState {
    mode: Mode,
}

#[derive(Debug, Default)]
enum Mode {
    #[default]
    Unknown,
    Text(Box<Text>),
    Binary(Box<Binary>),
}

impl MemcachedState {
    pub(crate) fn feed(
        &mut self,
        role: Role,
        chunk: &Chunk,
        out: &mut Vec<Request>,
        stats: &mut SessionStats,
    ) {
        if let Mode::Unknown = self.mode {
            if !is_request(role, chunk) || chunk.payload.is_empty() {
                return;
            }
            self.mode = if chunk.payload[0] == 0x80 {
                Mode::Binary(Box::default())
            } else {
                Mode::Text(Box::default())
            };
        }
        match &mut self.mode {
            Mode::Text(t) => t.feed(role, chunk, out, stats),
            Mode::Binary(b) => b.feed(role, chunk, out, stats),
            Mode::Unknown => {}
        }
    }
}

/// What a text request's response looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// VALUE blocks then END.
    Values,
    /// STAT lines then END.
    Stats,
    /// One line (a meta VA line brings a data block).
    One,
}

#[derive(Debug, Clone, Copy)]
struct Waiting {
    ts_ns: u64,
    counted: bool,
    expect: Expect,
}

#[derive(Debug, Default)]
struct Text {
    requests: Lines,
    responses: Lines,
    inflight: Inflight<Waiting>,
    /// Inside a multi-line response (after its first line) until END.
    multi: bool,
}

fn has_flag(line_tokens: &[&[u8]], n: usize, flag: u8) -> bool {
    line_tokens
        .iter()
        .take(n)
        .skip(2)
        .any(|t| t.first() == Some(&flag))
}

impl Text {
    fn feed(
        &mut self,
        role: Role,
        chunk: &Chunk,
        out: &mut Vec<Request>,
        stats: &mut SessionStats,
    ) {
        let r = if is_request(role, chunk) {
            let inflight = &mut self.inflight;
            self.requests.feed(chunk, |line, ts| {
                let (t, n) = tokens::<8>(line);
                if n == 0 {
                    return LineVerdict::Garbage;
                }
                let noreply = t[n.min(8) - 1] == b"noreply";
                let (counted, expect, data) = match t[0] {
                    b"get" | b"gets" | b"gat" | b"gats" => (true, Expect::Values, None),
                    b"set" | b"add" | b"replace" | b"append" | b"prepend" | b"cas" => {
                        match dec(t[4]) {
                            Some(d) => (true, Expect::One, Some(d + 2)),
                            None => return LineVerdict::Garbage,
                        }
                    }
                    b"incr" | b"decr" | b"touch" | b"delete" => (true, Expect::One, None),
                    b"stats" => (false, Expect::Stats, None),
                    b"quit" => return LineVerdict::Data(0),
                    b"ms" => match dec(t[2]) {
                        Some(d) if has_flag(&t, n, b'q') => return LineVerdict::Data(d + 2),
                        Some(d) => (false, Expect::One, Some(d + 2)),
                        None => return LineVerdict::Garbage,
                    },
                    b"mg" | b"md" | b"ma" | b"me" if has_flag(&t, n, b'q') => {
                        return LineVerdict::Data(0);
                    }
                    // Anything else gets one line: a result, or ERROR.
                    w if w.iter().all(|b| b.is_ascii_graphic()) => (false, Expect::One, None),
                    _ => return LineVerdict::Garbage,
                };
                if !noreply
                    && inflight.push(Waiting {
                        ts_ns: ts,
                        counted,
                        expect,
                    })
                {
                    stats.pending_overflow += 1;
                }
                LineVerdict::Data(data.unwrap_or(0))
            })
        } else {
            let (inflight, multi) = (&mut self.inflight, &mut self.multi);
            self.responses.feed(chunk, |line, ts| {
                let (t, _) = tokens::<6>(line);
                if *multi {
                    return match t[0] {
                        b"VALUE" => value_block(t[3]),
                        b"STAT" => LineVerdict::Data(0),
                        b"END" => {
                            *multi = false;
                            LineVerdict::Data(0)
                        }
                        _ => LineVerdict::Garbage,
                    };
                }
                let (status, data) = match t[0] {
                    b"VALUE" => {
                        *multi = true;
                        (Status::Ok, value_block(t[3]))
                    }
                    b"STAT" => {
                        *multi = true;
                        (Status::Ok, LineVerdict::Data(0))
                    }
                    b"VA" => (Status::Ok, value_block(t[1])),
                    b"ERROR" | b"CLIENT_ERROR" | b"SERVER_ERROR" => {
                        (Status::Failed, LineVerdict::Data(0))
                    }
                    b"END" | b"STORED" | b"NOT_STORED" | b"EXISTS" | b"NOT_FOUND" | b"DELETED"
                    | b"TOUCHED" | b"OK" | b"VERSION" | b"HD" | b"NF" | b"NS" | b"EX" | b"EN"
                    | b"MN" | b"ME" | b"RESET" => (Status::Ok, LineVerdict::Data(0)),
                    w if !w.is_empty() && w.iter().all(u8::is_ascii_digit) => {
                        (Status::Ok, LineVerdict::Data(0))
                    }
                    _ => return LineVerdict::Garbage,
                };
                if matches!(data, LineVerdict::Garbage) {
                    return data;
                }
                match inflight.pop_front() {
                    Some(w) => {
                        if w.expect == Expect::One || status == Status::Failed {
                            *multi = false;
                        }
                        if w.counted {
                            out.push(completed(
                                Protocol::Memcached,
                                status,
                                w.ts_ns,
                                ts,
                                Method::Unknown,
                            ));
                        }
                    }
                    None => stats.unmatched_responses += 1,
                }
                data
            })
        };
        if lost_place(r, stats) {
            self.inflight.clear();
            self.multi = false;
        }
    }
}

fn value_block(len: &[u8]) -> LineVerdict {
    match dec(len) {
        Some(n) => LineVerdict::Data(n + 2),
        None => LineVerdict::Garbage,
    }
}

const MAGIC_REQUEST: u8 = 0x80;
const MAGIC_RESPONSE: u8 = 0x81;
const OP_STAT: u8 = 0x10;
const OP_QUITQ: u8 = 0x17;

/// Binary opcodes: (counted, quiet).
fn binary_op(op: u8) -> (bool, bool) {
    match op {
        // get set add replace delete incr decr, getk, append prepend, touch gat
        0x00..=0x06 | 0x0c | 0x0e | 0x0f | 0x1c | 0x1d => (true, false),
        // their quiet twins: getq getkq setq addq replaceq deleteq incrq decrq appendq prependq gatq
        0x09 | 0x0d | 0x11..=0x16 | 0x19 | 0x1a | 0x1e => (true, true),
        // quitq, flushq
        0x17 | 0x18 => (false, true),
        _ => (false, false),
    }
}

#[derive(Debug, Clone, Copy)]
struct BinWaiting {
    ts_ns: u64,
    opaque: u32,
    counted: bool,
    quiet: bool,
}

#[derive(Debug, Default)]
struct Binary {
    requests: Framer<24>,
    responses: Framer<24>,
    inflight: Inflight<BinWaiting>,
}

fn binary_len(magic: u8) -> impl Fn(&[u8]) -> Len {
    move |h: &[u8]| {
        if h[0] != magic {
            return Len::Garbage;
        }
        Len::Total(24 + u64::from(be_u32(h, 8)))
    }
}

impl Binary {
    fn feed(
        &mut self,
        role: Role,
        chunk: &Chunk,
        out: &mut Vec<Request>,
        stats: &mut SessionStats,
    ) {
        let inflight = &mut self.inflight;
        let r: Result<(), FrameError> = if is_request(role, chunk) {
            self.requests
                .feed(chunk, 12, binary_len(MAGIC_REQUEST), |h, _, ts| {
                    let op = h[1];
                    let (counted, quiet) = binary_op(op);
                    if op == OP_QUITQ {
                        return;
                    }
                    let w = BinWaiting {
                        ts_ns: ts,
                        opaque: be_u32(h, 12),
                        counted,
                        quiet,
                    };
                    if inflight.push(w) {
                        stats.pending_overflow += 1;
                    }
                })
        } else {
            self.responses
                .feed(chunk, 12, binary_len(MAGIC_RESPONSE), |h, total, ts| {
                    let opaque = be_u32(h, 12);
                    let Some(i) = inflight.position(|w| w.opaque == opaque) else {
                        // A stat request is answered by many responses.
                        if h[1] != OP_STAT {
                            stats.unmatched_responses += 1;
                        }
                        return;
                    };
                    // Responses come in request order: the quiet requests
                    // before this one succeeded silently.
                    for _ in 0..i {
                        if let Some(q) = inflight.pop_front()
                            && q.counted
                            && q.quiet
                        {
                            out.push(completed(
                                Protocol::Memcached,
                                Status::Ok,
                                0,
                                0,
                                Method::Unknown,
                            ));
                        }
                    }
                    let Some(w) = inflight.pop_front() else {
                        return;
                    };
                    if h[1] == OP_STAT && total > 24 {
                        // Not the last stat (the last has no key): keep waiting.
                        let _ = inflight.push(w);
                        return;
                    }
                    if w.counted {
                        let status = match be_u16(h, 6) {
                            0 | 1 | 2 | 5 => Status::Ok,
                            _ => Status::Failed,
                        };
                        out.push(completed(
                            Protocol::Memcached,
                            status,
                            w.ts_ns,
                            ts,
                            Method::Unknown,
                        ));
                    }
                })
        };
        if lost_place(r, stats) {
            self.inflight.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil16::{run, tally};

    #[test]
    fn text_recorded() {
        let f = include_str!("../fixtures/memcached-text.txt");
        for role in [Role::Client, Role::Server] {
            let (out, stats) = run(f, role, MemcachedState::feed);
            assert_eq!(tally(&out), (12, 1), "{role:?}");
            assert_eq!(stats, SessionStats::default());
            assert!(out.iter().all(|r| r.duration_ns == 1000));
        }
    }

    #[test]
    fn binary_recorded() {
        let f = include_str!("../fixtures/memcached-binary.txt");
        for role in [Role::Client, Role::Server] {
            let (out, stats) = run(f, role, MemcachedState::feed);
            // set, get, get miss, incr (failed), getq miss (silent), getq hit.
            assert_eq!(tally(&out), (5, 1), "{role:?}");
            assert_eq!(stats, SessionStats::default());
            assert_eq!(out.iter().filter(|r| r.duration_ns == 0).count(), 1);
        }
    }
}
