//! HTTP/1.x: requests and responses matched in order (pipelining included).
//!
//! Each direction is a byte stream of messages: start line, headers, body.
//! Bodies are skipped by `Content-Length` or by following the chunked
//! encoding; both work across chunks and across the unseen part of a chunk
//! (`size` beyond the 512-byte window) as long as no framing byte we need to
//! read falls in the unseen part. When one does (a chunk-size line, a header
//! block cut by the window, a body ended by close), the direction is `Lost`
//! and waits for a chunk that *starts* with a request line (request side) or a
//! status line (response side): that is where the peer's next message begins,
//! since programs write (and mostly read) whole messages. Resyncs are counted.
//!
//! Nothing here allocates per chunk: the pending queue grows once to its bound.

use crate::session::{Ctx, Fifo, Switch, duration, sizes};
use crate::{Chunk, Method, Protocol, Request, Status};

const METHODS: [&[u8]; 9] = [
    b"GET", b"HEAD", b"POST", b"PUT", b"PATCH", b"DELETE", b"CONNECT", b"OPTIONS", b"TRACE",
];
pub(crate) const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

#[derive(Debug, Clone, Copy)]
struct Pending {
    ts: u64,
    head: bool,
    excluded: bool,
    /// The request asked for `Upgrade: h2c`.
    h2c: bool,
    /// A marker: the requests past the place the request side lost in the
    /// write at `ts`; each response that reaches it proves one of them.
    unknown: bool,
}

/// What the rest of a direction's byte stream is, between messages.
#[derive(Debug, Clone, Copy, Default)]
enum Body {
    /// Expecting a start line.
    #[default]
    Idle,
    /// Inside a header block (start line already parsed).
    Headers(Hdr),
    /// Body bytes left to skip.
    Length(u64),
    Chunked(Chunked),
    /// A response body that ends when the connection closes, or a place lost:
    /// skip until a chunk starts with a start line.
    Lost,
    /// After a protocol switch the server accepted (WebSocket, ...): not HTTP.
    Upgraded,
}

#[derive(Debug, Clone, Copy, Default)]
struct Hdr {
    content_length: Option<u64>,
    chunked: bool,
    h2c: bool,
    /// Response side: no body whatever the headers say (HEAD, 1xx, 204, 304).
    no_body: bool,
    /// 101 Switching Protocols: what follows the headers is not HTTP/1.
    switching: bool,
    /// The next byte starts a line (false: inside a line too long to carry).
    at_line_start: bool,
    /// A header line cut by the chunk boundary (Content-Length, ... fit).
    line: [u8; LINE_CARRY],
    line_len: u8,
}

const LINE_CARRY: usize = 32;

#[derive(Debug, Clone, Copy)]
enum Chunked {
    /// Reading the hex size (value so far) or its extension.
    Size { acc: u64, digits: u8, ext: bool },
    /// Chunk data plus its CRLF left.
    Data(u64),
    /// After the last chunk: trailer lines until an empty one.
    Trailer { line_len: u32 },
}

/// HTTP/1.x parser state of one connection.
#[derive(Debug, Default)]
pub(crate) struct Http1 {
    pending: Fifo<Pending>,
    req: Body,
    resp: Body,
    /// The request of an accepted h2c upgrade, until its 101's headers end.
    pending_h2c: Option<Pending>,
    /// When the response side lost its place: requests sent before it were
    /// most likely answered in the bytes we could not see.
    resp_lost_ts: u64,
    req_carry: Carry,
    resp_carry: Carry,
}

/// The head of a start line that a chunk boundary cut (at most 23 bytes:
/// enough to name the method or the status code).
#[derive(Debug, Clone, Copy, Default)]
struct Carry {
    buf: [u8; 23],
    len: u8,
}

impl Carry {
    /// The carried bytes followed by (the start of) `rest`, and how many
    /// of them were carried. Empties the carry.
    fn join<'a>(&mut self, rest: &'a [u8], tmp: &'a mut [u8; 64]) -> (&'a [u8], usize) {
        let c = self.len as usize;
        if c == 0 {
            return (rest, 0);
        }
        self.len = 0;
        tmp[..c].copy_from_slice(&self.buf[..c]);
        let n = rest.len().min(tmp.len() - c);
        tmp[c..c + n].copy_from_slice(&rest[..n]);
        (&tmp[..c + n], c)
    }
    fn keep(&mut self, b: &[u8]) {
        let n = b.len().min(self.buf.len());
        self.buf[..n].copy_from_slice(&b[..n]);
        self.len = n as u8;
    }
}

fn is_request_prefix(b: &[u8]) -> bool {
    if b.len() >= 23 || b.contains(&b'\n') {
        return false;
    }
    match b.iter().position(|&c| c == b' ') {
        None => METHODS.iter().any(|m| m.starts_with(b)),
        Some(i) => METHODS.contains(&&b[..i]),
    }
}

fn is_status_prefix(b: &[u8]) -> bool {
    const T: &[u8] = b"HTTP/1.x 000";
    b.len() < T.len()
        && b.iter().zip(T).all(|(&c, &t)| match t {
            b'x' | b'0' => c.is_ascii_digit(),
            _ => c == t,
        })
}

impl Http1 {
    pub fn feed(
        &mut self,
        chunk: &Chunk<'_>,
        is_request: bool,
        ctx: &mut Ctx<'_>,
    ) -> Option<Switch> {
        if is_request {
            self.feed_requests(chunk, ctx)
        } else {
            self.feed_responses(chunk, ctx)
        }
    }

    fn feed_requests(&mut self, chunk: &Chunk<'_>, ctx: &mut Ctx<'_>) -> Option<Switch> {
        let data = chunk.payload;
        let (vis, size) = sizes(chunk);
        if data.starts_with(H2_PREFACE)
            || (vis < H2_PREFACE.len() && vis >= 4 && H2_PREFACE.starts_with(data))
        {
            // Prior-knowledge HTTP/2 on a connection classified as HTTP.
            return Some(Switch {
                offset: 0,
                http2: Box::default(),
            });
        }
        let mut pos = 0usize;
        while pos < size {
            match self.req {
                Body::Idle => {
                    if pos >= vis {
                        // A message starts where we cannot see it.
                        self.req = self.lose_requests(chunk.ts_ns, ctx);
                        break;
                    }
                    let mut tmp = [0u8; 64];
                    let (view, carried) = self.req_carry.join(&data[pos..vis], &mut tmp);
                    let Some((method, target, line_end, complete)) = request_line(view) else {
                        if vis == size && is_request_prefix(view) {
                            // A start line split across writes: keep its head.
                            self.req_carry.keep(view);
                            break;
                        }
                        ctx.stats.parse_errors += 1;
                        self.req = self.lose_requests(chunk.ts_ns, ctx);
                        break;
                    };
                    let excluded = ctx.config.excludes(target);
                    self.pending.push(
                        Pending {
                            ts: chunk.ts_ns,
                            head: method == b"HEAD",
                            excluded,
                            h2c: false,
                            unknown: false,
                        },
                        ctx.stats,
                    );
                    pos += line_end - carried;
                    self.req = Body::Headers(Hdr {
                        at_line_start: complete,
                        ..Hdr::default()
                    });
                }
                Body::Headers(mut h) => {
                    match scan_headers(&data[pos.min(vis)..], &mut h) {
                        Some(n) => {
                            pos += n;
                            if h.h2c
                                && let Some(p) = self.pending.back_mut()
                            {
                                p.h2c = true;
                            }
                            self.req = if h.chunked {
                                Body::Chunked(Chunked::Size {
                                    acc: 0,
                                    digits: 0,
                                    ext: false,
                                })
                            } else {
                                match h.content_length {
                                    Some(n) if n > 0 => Body::Length(n),
                                    _ => Body::Idle,
                                }
                            };
                        }
                        None => {
                            if vis < size {
                                // The window cut the header block: the body's
                                // length is unknown.
                                self.req = self.lose_requests(chunk.ts_ns, ctx);
                            } else {
                                self.req = Body::Headers(h);
                            }
                            break;
                        }
                    }
                }
                Body::Length(n) => {
                    let take = n.min((size - pos) as u64);
                    pos += take as usize;
                    self.req = if n == take {
                        Body::Idle
                    } else {
                        Body::Length(n - take)
                    };
                }
                Body::Chunked(c) => {
                    let (next, state) = skip_chunked(data, vis, size, pos, c);
                    pos = next;
                    self.req = match state {
                        Some(Some(c)) => Body::Chunked(c),
                        Some(None) => Body::Idle,
                        None => self.lose_requests(chunk.ts_ns, ctx),
                    };
                }
                Body::Lost | Body::Upgraded => {
                    if pos == 0 && request_line(&data[..vis]).is_some() {
                        self.req = Body::Idle;
                        continue;
                    }
                    break;
                }
            }
        }
        None
    }

    fn feed_responses(&mut self, chunk: &Chunk<'_>, ctx: &mut Ctx<'_>) -> Option<Switch> {
        let data = chunk.payload;
        let (vis, size) = sizes(chunk);
        let mut pos = 0usize;
        while pos < size {
            match self.resp {
                Body::Idle => {
                    if pos >= vis {
                        self.resp = lose(ctx);
                        self.resp_lost_ts = chunk.ts_ns;
                        break;
                    }
                    let mut tmp = [0u8; 64];
                    let (view, carried) = self.resp_carry.join(&data[pos..vis], &mut tmp);
                    let Some((code, line_end, complete)) = status_line(view) else {
                        if vis == size && is_status_prefix(view) {
                            self.resp_carry.keep(view);
                            break;
                        }
                        ctx.stats.parse_errors += 1;
                        self.resp = lose(ctx);
                        self.resp_lost_ts = chunk.ts_ns;
                        break;
                    };
                    pos += line_end - carried;
                    let mut h = Hdr {
                        at_line_start: complete,
                        ..Hdr::default()
                    };
                    if (100..200).contains(&code) && code != 101 {
                        // Informational (100 Continue, 103 Early Hints): the
                        // final response is still to come.
                        h.no_body = true;
                    } else {
                        match self.take_for_response(chunk.ts_ns) {
                            Some(p) => {
                                h.no_body = p.head || code == 204 || code == 304;
                                h.switching = code == 101;
                                if code == 101 && p.h2c {
                                    // h2c: stream 1 is this request; its response
                                    // comes as HTTP/2 frames after the headers.
                                    h.h2c = true;
                                    self.pending_h2c = Some(p);
                                } else if p.excluded {
                                    ctx.stats.excluded += 1;
                                } else {
                                    ctx.out.push(Request {
                                        protocol: Protocol::Http,
                                        status: Status::Http(code),
                                        duration_ns: duration(p.ts, chunk.ts_ns),
                                        start_ns: p.ts,
                                        detail: None,
                                        method: Method::Unknown,
                                        dns: None,
                                    });
                                }
                            }
                            None => ctx.stats.unmatched_responses += 1,
                        }
                    }
                    self.resp = Body::Headers(h);
                }
                Body::Headers(mut h) => match scan_headers(&data[pos.min(vis)..], &mut h) {
                    Some(n) => {
                        pos += n;
                        if h.switching {
                            if let Some(p) = self.pending_h2c.take() {
                                return Some(Switch {
                                    offset: pos,
                                    http2: Box::new(crate::http2::Http2::upgraded(
                                        p.ts, p.excluded,
                                    )),
                                });
                            }
                            self.resp = Body::Upgraded;
                            self.req = Body::Upgraded;
                            break;
                        }
                        self.resp = if h.no_body {
                            Body::Idle
                        } else if h.chunked {
                            Body::Chunked(Chunked::Size {
                                acc: 0,
                                digits: 0,
                                ext: false,
                            })
                        } else if let Some(n) = h.content_length {
                            if n > 0 { Body::Length(n) } else { Body::Idle }
                        } else {
                            // No length: the body runs to the close.
                            Body::Lost
                        };
                    }
                    None => {
                        if vis < size {
                            self.resp = lose(ctx);
                            self.resp_lost_ts = chunk.ts_ns;
                        } else {
                            self.resp = Body::Headers(h);
                        }
                        break;
                    }
                },
                Body::Length(n) => {
                    let take = n.min((size - pos) as u64);
                    pos += take as usize;
                    self.resp = if n == take {
                        Body::Idle
                    } else {
                        Body::Length(n - take)
                    };
                }
                Body::Chunked(c) => {
                    let (next, state) = skip_chunked(data, vis, size, pos, c);
                    pos = next;
                    self.resp = match state {
                        Some(Some(c)) => Body::Chunked(c),
                        Some(None) => Body::Idle,
                        None => {
                            self.resp_lost_ts = chunk.ts_ns;
                            lose(ctx)
                        }
                    };
                }
                Body::Lost => {
                    if pos == 0 && status_line(data).is_some() {
                        // Requests sent before we lost our place were answered
                        // there (keep the newest: this may be its response).
                        while self.pending.len() > 1
                            && self
                                .pending
                                .front()
                                .is_some_and(|p| p.ts < self.resp_lost_ts)
                        {
                            self.pending.pop();
                            ctx.stats.unproven_requests += 1;
                        }
                        self.resp_lost_ts = 0;
                        self.resp = Body::Idle;
                        continue;
                    }
                    break;
                }
                Body::Upgraded => break,
            }
        }
        None
    }
}

impl Http1 {
    /// The request side lost its place in the write at `ts`: leave a marker
    /// for the requests we cannot see.
    fn lose_requests(&mut self, ts: u64, ctx: &mut Ctx<'_>) -> Body {
        self.pending.push(
            Pending {
                ts,
                head: false,
                excluded: false,
                h2c: false,
                unknown: true,
            },
            ctx.stats,
        );
        lose(ctx)
    }

    /// The request a response read/written at `ts` answers. A marker in front
    /// answers it (and stays) until a response comes after a later request
    /// was written: then the marker's requests were all answered.
    fn take_for_response(&mut self, ts: u64) -> Option<Pending> {
        while let Some(front) = self.pending.front().copied() {
            if !front.unknown {
                break;
            }
            let next = self.pending.iter().nth(1).map(|p| p.ts);
            match next {
                Some(next) if ts > next => {
                    self.pending.pop();
                }
                _ => return Some(front),
            }
        }
        self.pending.pop()
    }
}

fn lose(ctx: &mut Ctx<'_>) -> Body {
    ctx.stats.resyncs += 1;
    Body::Lost
}

/// `METHOD SP target [SP HTTP/1.x] CRLF` at the start of `b`: (method, target,
/// bytes up to and including the line's LF, or all of `b` when the line is cut).
fn request_line(b: &[u8]) -> Option<(&[u8], &[u8], usize, bool)> {
    let sp = b.iter().take(8).position(|&c| c == b' ')?;
    let method = &b[..sp];
    if !METHODS.contains(&method) {
        return None;
    }
    let rest = &b[sp + 1..];
    let line_end = rest.iter().position(|&c| c == b'\n');
    let line = match line_end {
        Some(e) => &rest[..e],
        None => rest,
    };
    let target_end = line
        .iter()
        .position(|&c| c == b' ' || c == b'\r')
        .unwrap_or(line.len());
    let target = &line[..target_end];
    if target.is_empty() {
        return None;
    }
    if line_end.is_some() {
        // A complete line must name HTTP/1.x.
        let version = line[target_end..].trim_ascii();
        if !version.starts_with(b"HTTP/1.") {
            return None;
        }
    }
    let consumed = match line_end {
        Some(e) => sp + 1 + e + 1,
        None => b.len(),
    };
    Some((method, target, consumed, line_end.is_some()))
}

/// `HTTP/1.x NNN ...` at the start of `b`: (status code, bytes up to and
/// including the line's LF, or all of `b` when the line is cut).
fn status_line(b: &[u8]) -> Option<(u16, usize, bool)> {
    if b.len() < 12 || !b.starts_with(b"HTTP/1.") || b[8] != b' ' {
        return None;
    }
    let d = &b[9..12];
    if !d.iter().all(u8::is_ascii_digit) || (b.len() > 12 && !matches!(b[12], b' ' | b'\r' | b'\n'))
    {
        return None;
    }
    let code = (d[0] - b'0') as u16 * 100 + (d[1] - b'0') as u16 * 10 + (d[2] - b'0') as u16;
    if !(100..600).contains(&code) {
        return None;
    }
    match b.iter().position(|&c| c == b'\n') {
        Some(e) => Some((code, e + 1, true)),
        None => Some((code, b.len(), false)),
    }
}

/// Scan header lines of `b` into `h`. Returns the bytes consumed up to and
/// including the empty line that ends the block, or None when `b` ends first
/// (the block continues in the next chunk; a cut line is carried if short).
fn scan_headers(b: &[u8], h: &mut Hdr) -> Option<usize> {
    let mut pos = 0;
    if h.line_len > 0 {
        let c = h.line_len as usize;
        let Some(nl) = b.iter().position(|&x| x == b'\n') else {
            if c + b.len() <= h.line.len() {
                h.line[c..c + b.len()].copy_from_slice(b);
                h.line_len += b.len() as u8;
            } else {
                h.line_len = 0;
                h.at_line_start = false;
            }
            return None;
        };
        h.line_len = 0;
        pos = nl + 1;
        h.at_line_start = true;
        if c + nl <= h.line.len() {
            let mut tmp = [0u8; LINE_CARRY];
            tmp[..c].copy_from_slice(&h.line[..c]);
            tmp[c..c + nl].copy_from_slice(&b[..nl]);
            let line = &tmp[..c + nl];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                return Some(pos);
            }
            header(line, h);
        }
    }
    while pos < b.len() {
        let Some(nl) = b[pos..].iter().position(|&c| c == b'\n') else {
            let rest = &b[pos..];
            if h.at_line_start && rest.len() <= h.line.len() {
                h.line[..rest.len()].copy_from_slice(rest);
                h.line_len = rest.len() as u8;
            } else {
                h.at_line_start = false;
            }
            return None;
        };
        let line = &b[pos..pos + nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let was_at_start = h.at_line_start;
        pos += nl + 1;
        h.at_line_start = true;
        if line.is_empty() {
            if was_at_start {
                return Some(pos);
            }
            continue;
        }
        if !was_at_start {
            // The tail of a line too long to carry: not a header we need.
            continue;
        }
        header(line, h);
    }
    None
}

fn header(line: &[u8], h: &mut Hdr) {
    let Some(colon) = line.iter().position(|&c| c == b':') else {
        return;
    };
    let name = &line[..colon];
    let value = line[colon + 1..].trim_ascii();
    if name.eq_ignore_ascii_case(b"content-length") {
        h.content_length = parse_dec(value);
    } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
        // `chunked` must be the last coding (RFC 9112 6.1).
        let last = value
            .rsplit(|&c| c == b',')
            .next()
            .unwrap_or(b"")
            .trim_ascii();
        h.chunked = last.eq_ignore_ascii_case(b"chunked");
    } else if name.eq_ignore_ascii_case(b"upgrade") {
        h.h2c = value
            .split(|&c| c == b',')
            .any(|v| v.trim_ascii().eq_ignore_ascii_case(b"h2c"));
    }
}

fn parse_dec(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u64, |a, &c| a * 10 + (c - b'0') as u64))
}

/// Follow the chunked encoding from `pos`. Returns the new position and
/// Some(Some(state)) to continue in the next chunk, Some(None) when the body
/// ended, None when framing fell in the unseen part (place lost).
fn skip_chunked(
    data: &[u8],
    vis: usize,
    size: usize,
    mut pos: usize,
    mut st: Chunked,
) -> (usize, Option<Option<Chunked>>) {
    while pos < size {
        match st {
            Chunked::Data(n) => {
                let take = n.min((size - pos) as u64);
                pos += take as usize;
                if n == take {
                    st = Chunked::Size {
                        acc: 0,
                        digits: 0,
                        ext: false,
                    };
                } else {
                    return (pos, Some(Some(Chunked::Data(n - take))));
                }
            }
            Chunked::Size { acc, digits, ext } => {
                if pos >= vis {
                    return (pos, None);
                }
                let c = data[pos];
                pos += 1;
                st = match c {
                    b'\n' => {
                        if digits == 0 {
                            // The CRLF after a chunk's data, or garbage.
                            Chunked::Size { acc, digits, ext }
                        } else if acc == 0 {
                            Chunked::Trailer { line_len: 0 }
                        } else {
                            Chunked::Data(acc + 2)
                        }
                    }
                    b'\r' => Chunked::Size { acc, digits, ext },
                    _ if ext => Chunked::Size { acc, digits, ext },
                    b';' | b' ' | b'\t' => Chunked::Size {
                        acc,
                        digits,
                        ext: true,
                    },
                    _ => match (c as char).to_digit(16) {
                        Some(d) if digits < 15 => Chunked::Size {
                            acc: acc * 16 + d as u64,
                            digits: digits + 1,
                            ext,
                        },
                        _ => return (pos, None),
                    },
                };
                // The CRLF that ends a chunk's data was counted in Data(+2);
                // a size line right after it starts fresh.
            }
            Chunked::Trailer { line_len } => {
                if pos >= vis {
                    return (pos, None);
                }
                let c = data[pos];
                pos += 1;
                st = match c {
                    b'\n' if line_len == 0 => return (pos, Some(None)),
                    b'\n' => Chunked::Trailer { line_len: 0 },
                    b'\r' => Chunked::Trailer { line_len },
                    _ => Chunked::Trailer {
                        line_len: line_len.saturating_add(1),
                    },
                };
            }
        }
    }
    (pos, Some(Some(st)))
}

#[cfg(test)]
#[path = "http1_tests.rs"]
mod tests;
