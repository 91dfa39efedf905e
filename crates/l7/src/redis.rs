//! Redis RESP2/RESP3: every command is a request; its reply's top-level type
//! says whether it failed (`-` simple error, `!` blob error).
//!
//! Both directions are the same grammar (a command is an array of bulk
//! strings), parsed by one incremental state machine per direction: lines are
//! read byte by byte (so a chunk may end anywhere), bulk bodies are skipped
//! by length even where unseen, aggregates nest on a small fixed stack. A
//! command is counted when its whole array was parsed, which in a pipeline
//! cut by the 512-byte window is only the commands before the cut.
//!
//! The commands past the cut are not lost from the counts: each reply proves
//! one command. A lost request side leaves a marker in the queue; replies
//! that reach the marker are reported as requests of the marker's write
//! (latency from that write), until a reply arrives that was read after the
//! client's next write (the client had all its replies by then). A lost
//! response side recovers at the client's next write; the requests it left
//! unanswered are counted in `unproven_requests`. RESP3 push messages (`>`)
//! and attributes (`|`) are not replies.

use crate::session::{Ctx, Fifo, duration, sizes};
use crate::{Chunk, Method, Protocol, Request, Status};

/// Nesting deeper than this is treated as garbage (replies of real commands
/// nest a few levels at most).
const MAX_DEPTH: usize = 8;

#[derive(Debug, Clone, Copy)]
enum St {
    /// Expecting an element's type byte.
    Start,
    /// Inside a line: its type, and the number being read for the types
    /// that carry one.
    Line {
        ty: u8,
        neg: bool,
        num: u64,
        digits: u8,
    },
    /// Bulk body bytes (plus CRLF) left.
    Bulk(u64),
}

/// One direction's RESP stream.
#[derive(Debug, Clone, Copy)]
struct Resp {
    st: St,
    /// Children left per open aggregate.
    stack: [u64; MAX_DEPTH],
    depth: u8,
    /// Type byte of the current top-level element.
    top: u8,
    lost: bool,
    /// Commands may be inline (`PING\r\n`); replies are always typed.
    inline_ok: bool,
}

impl Resp {
    fn new(inline_ok: bool) -> Resp {
        Resp {
            st: St::Start,
            stack: [0; MAX_DEPTH],
            depth: 0,
            top: 0,
            lost: false,
            inline_ok,
        }
    }
}

enum Step {
    /// A top-level element ended: its type byte.
    Element(u8),
    Done,
    Lost,
}

impl Resp {
    fn next(&mut self, data: &[u8], vis: usize, size: usize, pos: &mut usize) -> Step {
        while *pos < size {
            match self.st {
                St::Bulk(n) => {
                    let take = n.min((size - *pos) as u64);
                    *pos += take as usize;
                    if take < n {
                        self.st = St::Bulk(n - take);
                        return Step::Done;
                    }
                    self.st = St::Start;
                    if let Some(e) = self.element_done() {
                        return Step::Element(e);
                    }
                }
                St::Start => {
                    if *pos >= vis {
                        return Step::Lost;
                    }
                    let ty = data[*pos];
                    *pos += 1;
                    if self.depth == 0 {
                        self.top = ty;
                    }
                    self.st = St::Line {
                        ty,
                        neg: false,
                        num: 0,
                        digits: 0,
                    };
                }
                St::Line {
                    ty,
                    neg,
                    num,
                    digits,
                } => {
                    if *pos >= vis {
                        return Step::Lost;
                    }
                    let c = data[*pos];
                    *pos += 1;
                    if c != b'\n' {
                        self.st = match c {
                            b'-' if digits == 0 && num == 0 => St::Line {
                                ty,
                                neg: true,
                                num,
                                digits,
                            },
                            b'0'..=b'9' if digits < 19 => St::Line {
                                ty,
                                neg,
                                num: num * 10 + (c - b'0') as u64,
                                digits: digits + 1,
                            },
                            _ => St::Line {
                                ty,
                                neg,
                                num,
                                digits,
                            },
                        };
                        continue;
                    }
                    match self.line_done(ty, neg, num, digits) {
                        Ok(Some(e)) => return Step::Element(e),
                        Ok(None) => {}
                        Err(()) => return Step::Lost,
                    }
                }
            }
        }
        Step::Done
    }

    /// A line ended. Err: the stream makes no sense (lost).
    fn line_done(&mut self, ty: u8, neg: bool, num: u64, digits: u8) -> Result<Option<u8>, ()> {
        self.st = St::Start;
        match ty {
            // Simple lines: a complete element.
            b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => Ok(self.element_done()),
            // Bulk: a length (or -1: null).
            b'$' | b'!' | b'=' => {
                if digits == 0 {
                    return Err(());
                }
                if neg {
                    return Ok(self.element_done());
                }
                self.st = St::Bulk(num + 2);
                Ok(None)
            }
            // Aggregates: a count (maps and attributes count pairs).
            b'*' | b'~' | b'>' | b'%' | b'|' => {
                if digits == 0 {
                    return Err(());
                }
                let n = if matches!(ty, b'%' | b'|') {
                    num.saturating_mul(2)
                } else {
                    num
                };
                if neg || n == 0 {
                    return Ok(self.element_done());
                }
                if self.depth as usize >= MAX_DEPTH {
                    return Err(());
                }
                self.stack[self.depth as usize] = n;
                self.depth += 1;
                Ok(None)
            }
            // An inline command (request side): the line is the command.
            _ if self.depth == 0 && self.inline_ok => Ok(Some(b'i')),
            _ => Err(()),
        }
    }

    /// An element ended: close the aggregates it completes. Some(top type)
    /// when a top-level element is complete.
    fn element_done(&mut self) -> Option<u8> {
        while self.depth > 0 {
            let d = self.depth as usize - 1;
            self.stack[d] -= 1;
            if self.stack[d] > 0 {
                return None;
            }
            self.depth -= 1;
        }
        Some(self.top)
    }
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    ts: u64,
    /// A marker: commands past the window of the write at `ts`.
    unknown: bool,
}

/// Redis parser state of one connection.
#[derive(Debug)]
pub(crate) struct Redis {
    pending: Fifo<Pending>,
    req: Resp,
    resp: Resp,
    /// Time of the first read of the reply being parsed.
    resp_start: u64,
}

impl Default for Redis {
    fn default() -> Self {
        Redis {
            pending: Fifo::default(),
            req: Resp::new(true),
            resp: Resp::new(false),
            resp_start: 0,
        }
    }
}

impl Redis {
    pub fn feed(&mut self, chunk: &Chunk<'_>, is_request: bool, ctx: &mut Ctx<'_>) {
        if is_request {
            self.feed_requests(chunk, ctx)
        } else {
            self.feed_responses(chunk, ctx)
        }
    }

    fn feed_requests(&mut self, chunk: &Chunk<'_>, ctx: &mut Ctx<'_>) {
        let data = chunk.payload;
        let (vis, size) = sizes(chunk);
        if self.resp.lost {
            while let Some(p) = self.pending.pop() {
                if !p.unknown {
                    ctx.stats.unproven_requests += 1;
                }
            }
            self.resp = Resp::new(false);
        }
        if self.req.lost {
            // Resume at a write that starts a command array.
            if vis < 2 || data[0] != b'*' || !data[1].is_ascii_digit() {
                return;
            }
            self.req = Resp::new(true);
        }
        let mut pos = 0;
        loop {
            match self.req.next(data, vis, size, &mut pos) {
                Step::Done => break,
                Step::Element(_) => self.pending.push(
                    Pending {
                        ts: chunk.ts_ns,
                        unknown: false,
                    },
                    ctx.stats,
                ),
                Step::Lost => {
                    self.req.lost = true;
                    ctx.stats.resyncs += 1;
                    self.pending.push(
                        Pending {
                            ts: chunk.ts_ns,
                            unknown: true,
                        },
                        ctx.stats,
                    );
                    break;
                }
            }
        }
    }

    fn feed_responses(&mut self, chunk: &Chunk<'_>, ctx: &mut Ctx<'_>) {
        let data = chunk.payload;
        let (vis, size) = sizes(chunk);
        if self.resp.lost {
            return;
        }
        let mut pos = 0;
        loop {
            if self.resp_start == 0 && pos < size {
                self.resp_start = chunk.ts_ns;
            }
            match self.resp.next(data, vis, size, &mut pos) {
                Step::Done => break,
                Step::Lost => {
                    self.resp.lost = true;
                    ctx.stats.resyncs += 1;
                    break;
                }
                Step::Element(ty) => {
                    let start = std::mem::take(&mut self.resp_start);
                    if matches!(ty, b'>' | b'|') {
                        continue; // push message or attribute: not a reply
                    }
                    let status = if matches!(ty, b'-' | b'!') {
                        Status::Failed
                    } else {
                        Status::Ok
                    };
                    self.reply(status, start, chunk.ts_ns, ctx);
                }
            }
        }
    }

    fn reply(&mut self, status: Status, start: u64, read_ts: u64, ctx: &mut Ctx<'_>) {
        // A marker stands for the commands after the cut of its write; it
        // ends when a reply was read after a later write.
        while let Some(front) = self.pending.front().copied() {
            if !front.unknown {
                break;
            }
            let later_write = self.pending.iter().nth(1).map(|p| p.ts);
            match later_write {
                Some(w) if read_ts > w => {
                    self.pending.pop();
                }
                _ => {
                    self.emit(front.ts, start, status, ctx);
                    return;
                }
            }
        }
        match self.pending.pop() {
            Some(p) => self.emit(p.ts, start, status, ctx),
            None => ctx.stats.unmatched_responses += 1,
        }
    }

    fn emit(&self, req_ts: u64, resp_ts: u64, status: Status, ctx: &mut Ctx<'_>) {
        ctx.out.push(Request {
            protocol: Protocol::Redis,
            status,
            duration_ns: duration(req_ts, resp_ts),
            start_ns: req_ts,
            detail: None,
            method: Method::Unknown,
            dns: None,
        });
    }
}

#[cfg(test)]
#[path = "redis_tests.rs"]
mod tests;
