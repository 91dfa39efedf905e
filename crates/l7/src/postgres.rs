//! Postgres (frontend/backend protocol 3.0): one request per simple Query
//! ('Q') or per Execute ('E') of the extended protocol; failed when the
//! server answers with ErrorResponse ('E').
//!
//! Frontend messages queue up in order (Q, Execute, Sync); backend messages
//! resolve them: CommandComplete / EmptyQueryResponse / PortalSuspended end
//! an Execute, ErrorResponse fails it (and the server skips the batch's other
//! Executes up to Sync: they never ran and are not requests), ReadyForQuery
//! ends a Q (failed if any statement of it failed) or a Sync. The untyped
//! start of a connection (SSLRequest/GSSENCRequest and its one-byte answer,
//! StartupMessage, CancelRequest) and the authentication exchange are not
//! queries: nothing is pending then.
//!
//! The 512-byte window: messages are skipped by their length even where
//! unseen; when a message header itself is unseen, the side is lost. A lost
//! request side leaves a marker: the server's answers then prove how many
//! statements ran (each CommandComplete/ErrorResponse is one, up to
//! ReadyForQuery; the statements of one simple Query count once). A lost response side recovers at the client's next write
//! (a client writes its next query after reading the previous answer); the
//! requests it left unanswered are counted in `unproven_requests`.

use crate::session::{Ctx, Fifo, duration, sizes};
use crate::{Chunk, Method, Protocol, Request, Status};

const SSL_REQUEST: u32 = 80877103;
const GSSENC_REQUEST: u32 = 80877104;
const CANCEL_REQUEST: u32 = 80877102;
/// Larger lengths are garbage (the server's own limit is 1 GiB).
const MAX_LEN: u32 = 1 << 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Query,
    Execute,
    Sync,
    /// The request side lost its place here: an unknown number of
    /// statements, resolved by the server's answers up to ReadyForQuery.
    Unknown,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    kind: Kind,
    ts: u64,
    failed: bool,
}

/// Message framing of one direction: type byte + 4-byte length (which
/// counts itself), carried across chunks.
#[derive(Debug, Default, Clone, Copy)]
struct Framer {
    hdr: [u8; 5],
    hdr_len: u8,
    body_left: u32,
    lost: bool,
}

enum Step {
    Msg(u8),
    Done,
    Lost,
}

impl Framer {
    fn next(&mut self, data: &[u8], vis: usize, size: usize, pos: &mut usize) -> Step {
        loop {
            if *pos >= size {
                return Step::Done;
            }
            if self.body_left > 0 {
                let take = (self.body_left as usize).min(size - *pos);
                *pos += take;
                self.body_left -= take as u32;
                continue;
            }
            if *pos >= vis {
                return Step::Lost;
            }
            while (self.hdr_len as usize) < 5 && *pos < vis {
                self.hdr[self.hdr_len as usize] = data[*pos];
                self.hdr_len += 1;
                *pos += 1;
            }
            if self.hdr_len < 5 {
                return if vis < size { Step::Lost } else { Step::Done };
            }
            self.hdr_len = 0;
            let len = u32::from_be_bytes([self.hdr[1], self.hdr[2], self.hdr[3], self.hdr[4]]);
            if !(4..=MAX_LEN).contains(&len) {
                return Step::Lost;
            }
            self.body_left = len - 4;
            return Step::Msg(self.hdr[0]);
        }
    }
}

/// Postgres parser state of one connection.
#[derive(Debug, Default)]
pub(crate) struct Postgres {
    pending: Fifo<Pending>,
    req: Framer,
    resp: Framer,
    /// Typed messages flow (the untyped startup is over).
    started: bool,
    startup: [u8; 8],
    startup_len: u8,
    /// The client asked for SSL/GSS encryption: the server answers one byte.
    expect_ssl_answer: bool,
    /// Time of the first backend message for the front request.
    resp_start: u64,
    /// Answering a lost-request marker: a BindComplete was seen (the next
    /// completion is an Execute's) ...
    marker_bind: bool,
    /// ... or statements of a simple Query completed (failed?).
    marker_query: Option<bool>,
}

impl Postgres {
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
        let mut pos = 0;
        if self.resp.lost {
            // The client writes again: the answers we could not follow are over.
            while let Some(p) = self.pending.pop() {
                if p.kind != Kind::Sync {
                    ctx.stats.unproven_requests += 1;
                }
            }
            self.resp = Framer::default();
            self.resp_start = 0;
        }
        if self.req.lost {
            if !plausible(data, FRONTEND) {
                return;
            }
            self.req = Framer::default();
        }
        if !self.started && self.startup_len == 0 && vis > 0 && data[0] != 0 {
            // A type byte, not the high byte of a startup length: typed
            // messages already (we joined mid-connection).
            self.started = true;
        }
        if !self.started {
            // The untyped start: 4-byte length + 4-byte code, possibly split.
            while (self.startup_len as usize) < 8 && pos < vis {
                self.startup[self.startup_len as usize] = data[pos];
                self.startup_len += 1;
                pos += 1;
            }
            if self.startup_len < 8 {
                if vis < size {
                    self.started = true; // unreadable: let the framer decide
                }
                return;
            }
            self.startup_len = 0;
            let b = self.startup;
            let len = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
            let code = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
            match code {
                SSL_REQUEST | GSSENC_REQUEST if len == 8 => {
                    self.expect_ssl_answer = true;
                    return;
                }
                CANCEL_REQUEST if len == 16 => {
                    self.req.body_left = 8;
                    self.started = true;
                }
                _ if code >> 16 == 3 && (8..=10_000).contains(&len) => {
                    // StartupMessage, protocol 3.x: skip its parameters.
                    self.req.body_left = len - 8;
                    self.started = true;
                }
                _ => {
                    ctx.stats.parse_errors += 1;
                    self.req.lost = true;
                    return;
                }
            }
        }
        self.started = true;
        loop {
            match self.req.next(data, vis, size, &mut pos) {
                Step::Done => break,
                Step::Lost => {
                    self.req.lost = true;
                    ctx.stats.resyncs += 1;
                    self.pending.push(
                        Pending {
                            kind: Kind::Unknown,
                            ts: chunk.ts_ns,
                            failed: false,
                        },
                        ctx.stats,
                    );
                    break;
                }
                Step::Msg(t) => {
                    let kind = match t {
                        b'Q' => Kind::Query,
                        b'E' => Kind::Execute,
                        b'S' => Kind::Sync,
                        b'P' | b'B' | b'D' | b'C' | b'H' | b'X' | b'p' | b'd' | b'c' | b'f'
                        | b'F' => continue,
                        _ => {
                            ctx.stats.parse_errors += 1;
                            self.req.lost = true;
                            ctx.stats.resyncs += 1;
                            break;
                        }
                    };
                    self.pending.push(
                        Pending {
                            kind,
                            ts: chunk.ts_ns,
                            failed: false,
                        },
                        ctx.stats,
                    );
                }
            }
        }
    }

    fn feed_responses(&mut self, chunk: &Chunk<'_>, ctx: &mut Ctx<'_>) {
        let data = chunk.payload;
        let (vis, size) = sizes(chunk);
        let mut pos = 0;
        if self.resp.lost {
            return; // until the client writes again
        }
        if self.expect_ssl_answer && vis >= 1 && self.resp.hdr_len == 0 {
            self.expect_ssl_answer = false;
            match data[0] {
                b'N' => pos = 1,
                // 'S': TLS follows on this socket; its plaintext comes from
                // the TLS probes on another session, if at all.
                b'S' | b'G' => {
                    self.resp.lost = true;
                    return;
                }
                _ => {}
            }
        }
        loop {
            match self.resp.next(data, vis, size, &mut pos) {
                Step::Done => break,
                Step::Lost => {
                    self.resp.lost = true;
                    ctx.stats.resyncs += 1;
                    break;
                }
                Step::Msg(t) => self.backend(t, chunk.ts_ns, ctx),
            }
        }
    }

    fn backend(&mut self, t: u8, ts: u64, ctx: &mut Ctx<'_>) {
        let Some(front) = self.pending.front().copied() else {
            // Startup, authentication, notices, notifications, FATAL
            // errors: no query. A statement's completion with nothing asked
            // means a request we did not see.
            if matches!(t, b'C' | b'I' | b's') {
                ctx.stats.unmatched_responses += 1;
            }
            return;
        };
        if self.resp_start == 0 && !matches!(t, b'N' | b'A' | b'S') {
            self.resp_start = ts;
        }
        match (t, front.kind) {
            (b'C' | b'I' | b's', Kind::Execute) => self.complete(Status::Ok, ctx),
            (b'E', Kind::Execute) => {
                self.complete(Status::Failed, ctx);
                // The server skips the rest of the batch up to Sync.
                while self
                    .pending
                    .front()
                    .is_some_and(|p| p.kind == Kind::Execute)
                {
                    self.pending.pop();
                }
            }
            (b'C' | b'I' | b's' | b'E', Kind::Unknown) => {
                // Proven by the answer: one statement ran.
                let status = if t == b'E' {
                    Status::Failed
                } else {
                    Status::Ok
                };
                self.emit(front.ts, status, ctx);
                self.resp_start = 0;
            }
            (b'E', Kind::Query) => {
                if let Some(p) = self.pending.front_mut() {
                    p.failed = true;
                }
            }
            (b'Z', Kind::Query) => {
                let status = if front.failed {
                    Status::Failed
                } else {
                    Status::Ok
                };
                self.complete(status, ctx);
            }
            (b'Z', Kind::Sync | Kind::Unknown) => {
                if let Some(failed) = self.marker_query.take() {
                    let status = if failed { Status::Failed } else { Status::Ok };
                    self.emit(front.ts, status, ctx);
                }
                self.marker_bind = false;
                self.pending.pop();
                self.resp_start = 0;
            }
            (b'Z', Kind::Execute) => {
                // ReadyForQuery before the Execute's answer: a Sync we did
                // not see (or a broken stream). Drop to the next Sync.
                ctx.stats.parse_errors += 1;
                while let Some(p) = self.pending.pop() {
                    if p.kind == Kind::Sync {
                        break;
                    }
                }
                self.resp_start = 0;
            }
            (b'E', Kind::Sync) => {
                // An error outside any Execute (a failed Parse before an
                // Execute we never saw, or a Sync-level failure): no request.
            }
            _ => {}
        }
    }

    fn complete(&mut self, status: Status, ctx: &mut Ctx<'_>) {
        if let Some(p) = self.pending.pop() {
            let start = if self.resp_start == 0 {
                p.ts
            } else {
                self.resp_start
            };
            self.emit_at(p.ts, start, status, ctx);
        }
        self.resp_start = 0;
    }

    fn emit(&mut self, req_ts: u64, status: Status, ctx: &mut Ctx<'_>) {
        let start = if self.resp_start == 0 {
            req_ts
        } else {
            self.resp_start
        };
        self.emit_at(req_ts, start, status, ctx);
    }

    fn emit_at(&self, req_ts: u64, resp_ts: u64, status: Status, ctx: &mut Ctx<'_>) {
        ctx.out.push(Request {
            protocol: Protocol::Postgres,
            status,
            duration_ns: duration(req_ts, resp_ts),
            start_ns: req_ts,
            detail: None,
            method: Method::Unknown,
            dns: None,
        });
    }
}

const FRONTEND: &[u8] = b"QPBDEHSCXpdcfF";

/// Does `data` start with a message header of one of `types` and a sane length?
fn plausible(data: &[u8], types: &[u8]) -> bool {
    if data.len() < 5 || !types.contains(&data[0]) {
        return false;
    }
    let len = u32::from_be_bytes([data[1], data[2], data[3], data[4]]);
    (4..=MAX_LEN).contains(&len)
}

#[cfg(test)]
#[path = "postgres_tests.rs"]
mod tests;
