//! HTTP/2 (RFC 9113) and gRPC: frames of both directions, header blocks
//! (HEADERS + CONTINUATION, PUSH_PROMISE) decoded by one HPACK decoder per
//! direction, requests matched to responses by stream id.
//!
//! A request completes at its response's first HEADERS with a final
//! `:status` (latency: that read/write minus the request's), except gRPC
//! calls (request `content-type: application/grpc*`): they complete when the
//! `grpc-status` arrives (trailers, or a trailers-only response), or at the
//! stream's end without one (then the HTTP status stands). RST_STREAM before
//! any response drops the stream (counted in `reset_streams`).
//!
//! Frames are followed across chunks and across the unseen part of a chunk
//! by their length; a frame header in the unseen part loses the direction
//! until a chunk starts with a plausible frame header. Header blocks must be
//! seen whole to keep the HPACK table in step: a block cut by the window is
//! not decoded and counted in `hpack_errors` (the table may drift; static
//! entries like `:status 200` still decode right). When the response side
//! loses its place, gRPC calls still waiting for their trailers are reported
//! by their `:status` (coroot's way for every HTTP/2 request). Streams are bounded
//! ([`MAX_STREAMS`]), oldest evicted first and counted.

use crate::hpack::Decoder;
use crate::http1::H2_PREFACE;
use crate::session::{Ctx, duration, sizes};
use crate::{Chunk, Method, Protocol, Request, Status};

pub(crate) const MAX_STREAMS: usize = 256;
/// A header block larger than this is not decoded (counted).
const MAX_BLOCK: usize = 16 * 1024;
const FRAME_HEADER: usize = 9;

const DATA: u8 = 0;
const HEADERS: u8 = 1;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const PUSH_PROMISE: u8 = 5;
const CONTINUATION: u8 = 9;

const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

#[derive(Debug, Clone, Copy)]
struct Stream {
    id: u32,
    ts: u64,
    grpc: bool,
    excluded: bool,
    /// Final `:status` of the response (0: none yet).
    status: u16,
    /// When the response's first HEADERS moved (0: not yet).
    resp_ts: u64,
    /// Reported (or dropped); kept until the response ends so its trailers
    /// are not mistaken for an unmatched response.
    done: bool,
}

#[derive(Debug, Clone, Copy)]
struct FrameHdr {
    len: u32,
    ty: u8,
    flags: u8,
    stream: u32,
}

/// Frame reader of one direction.
#[derive(Debug, Default)]
struct Dir {
    hdr: [u8; FRAME_HEADER],
    hdr_len: u8,
    frame: Option<FrameHdr>,
    /// Payload bytes of `frame` not yet consumed.
    left: u32,
    /// Visible payload of the current frame, for the frame types we read.
    buf: Vec<u8>,
    /// Some of the current frame's payload was unseen.
    cut: bool,
    /// Header block being assembled (HEADERS/PUSH_PROMISE + CONTINUATION).
    block: Vec<u8>,
    block_stream: u32,
    block_end_stream: bool,
    block_push: bool,
    block_cut: bool,
    in_block: bool,
    lost: bool,
    /// Bytes of the client preface still to skip (request side, at start).
    preface: u8,
    started: bool,
}

/// HTTP/2 parser state of one connection.
#[derive(Debug, Default)]
pub(crate) struct Http2 {
    req: Dir,
    resp: Dir,
    /// Decoder of the request side's header blocks (the client's encoder).
    dec_req: Decoder,
    dec_resp: Decoder,
    streams: Vec<Stream>,
    /// Span details of waiting streams, capture on (crate::detail); bounded like `streams`.
    details: Vec<(u32, Box<crate::Detail>)>,
}

/// What a header block said, for the fields we need.
#[derive(Default)]
struct Fields {
    status: u16,
    grpc_status: Option<u8>,
    grpc: bool,
    excluded: bool,
    /// `:method`, `:path`, `:scheme`, capture on only.
    method: Option<Box<str>>,
    path: Option<Box<str>>,
    scheme: Option<Box<str>>,
}

/// A pseudo-header's value for a span detail (bounded, lossy UTF-8).
fn text(v: &[u8]) -> Option<Box<str>> {
    let v = &v[..v.len().min(crate::detail::MAX_TEXT)];
    Some(String::from_utf8_lossy(v).into())
}

impl Http2 {
    /// After an HTTP/1.1 `Upgrade: h2c` the server answers the upgrade
    /// request on stream 1.
    pub fn upgraded(ts: u64, excluded: bool) -> Http2 {
        let mut h = Http2::default();
        h.streams.push(Stream {
            id: 1,
            ts,
            grpc: false,
            excluded,
            status: 0,
            resp_ts: 0,
            done: false,
        });
        h
    }

    pub fn feed(&mut self, chunk: &Chunk<'_>, is_request: bool, ctx: &mut Ctx<'_>) {
        let data = chunk.payload;
        let (vis, size) = sizes(chunk);
        let mut pos = 0usize;
        let mut dir = std::mem::take(if is_request {
            &mut self.req
        } else {
            &mut self.resp
        });
        if !dir.started {
            dir.started = true;
            if is_request {
                dir.preface = H2_PREFACE.len() as u8;
            }
        }
        if dir.preface > 0 {
            // Skip the client preface if (what we see of) it is there.
            let done = H2_PREFACE.len() - dir.preface as usize;
            let want = &H2_PREFACE[done..];
            let n = want.len().min(vis);
            if data[..n] == want[..n] {
                let take = want.len().min(size);
                pos = take;
                dir.preface -= take as u8;
            } else {
                dir.preface = 0;
            }
        }
        if dir.lost {
            if pos == 0 && plausible(data) {
                dir = Dir {
                    started: true,
                    ..Dir::default()
                };
            } else {
                self.put(is_request, dir);
                return;
            }
        }
        while pos < size {
            let Some(f) = dir.frame else {
                if pos >= vis {
                    dir.lost = true;
                    ctx.stats.resyncs += 1;
                    if !is_request {
                        self.lost_trailers(ctx);
                    }
                    break;
                }
                while (dir.hdr_len as usize) < FRAME_HEADER && pos < vis {
                    dir.hdr[dir.hdr_len as usize] = data[pos];
                    dir.hdr_len += 1;
                    pos += 1;
                }
                if (dir.hdr_len as usize) < FRAME_HEADER {
                    if vis < size {
                        dir.lost = true;
                        ctx.stats.resyncs += 1;
                        if !is_request {
                            self.lost_trailers(ctx);
                        }
                    }
                    break;
                }
                dir.hdr_len = 0;
                let h = dir.hdr;
                let f = FrameHdr {
                    len: u32::from_be_bytes([0, h[0], h[1], h[2]]),
                    ty: h[3],
                    flags: h[4],
                    stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
                };
                if dir.in_block && f.ty != CONTINUATION {
                    // RFC 9113 6.10: only CONTINUATION may follow an open block.
                    ctx.stats.parse_errors += 1;
                    dir.in_block = false;
                    dir.block.clear();
                }
                dir.frame = Some(f);
                dir.left = f.len;
                dir.buf.clear();
                dir.cut = false;
                self.frame_start(f, is_request, chunk.ts_ns, ctx);
                if f.len == 0 {
                    self.frame_end(&mut dir, is_request, chunk.ts_ns, ctx);
                }
                continue;
            };
            let take = (dir.left as usize).min(size - pos);
            if wants_payload(f.ty) {
                let end = (pos + take).min(vis);
                if pos < end && dir.buf.len() + (end - pos) <= MAX_BLOCK {
                    dir.buf.extend_from_slice(&data[pos..end]);
                }
                if end < pos + take || dir.buf.len() >= MAX_BLOCK {
                    dir.cut = true;
                }
            }
            pos += take;
            dir.left -= take as u32;
            if dir.left == 0 {
                self.frame_end(&mut dir, is_request, chunk.ts_ns, ctx);
            }
        }
        self.put(is_request, dir);
    }

    fn put(&mut self, is_request: bool, dir: Dir) {
        if is_request {
            self.req = dir;
        } else {
            self.resp = dir;
        }
    }

    /// Act on what the frame header alone says.
    fn frame_start(&mut self, f: FrameHdr, is_request: bool, ts: u64, ctx: &mut Ctx<'_>) {
        match f.ty {
            DATA if f.flags & END_STREAM != 0 && !is_request => {
                self.response_end(f.stream, ts, ctx)
            }
            RST_STREAM => self.reset(f.stream, ts, ctx),
            _ => {}
        }
    }

    /// A frame's payload is complete (its visible part in `dir.buf`).
    fn frame_end(&mut self, dir: &mut Dir, is_request: bool, ts: u64, ctx: &mut Ctx<'_>) {
        let Some(f) = dir.frame.take() else { return };
        match f.ty {
            HEADERS | PUSH_PROMISE | CONTINUATION => {
                if f.ty != CONTINUATION {
                    dir.in_block = true;
                    dir.block.clear();
                    dir.block_cut = false;
                    dir.block_stream = f.stream;
                    dir.block_end_stream = f.ty == HEADERS && f.flags & END_STREAM != 0;
                    dir.block_push = f.ty == PUSH_PROMISE;
                } else if !dir.in_block || f.stream != dir.block_stream {
                    ctx.stats.parse_errors += 1;
                    return;
                }
                match fragment(&dir.buf, f) {
                    Some(frag) if !dir.cut && dir.block.len() + frag.len() <= MAX_BLOCK => {
                        dir.block.extend_from_slice(frag)
                    }
                    _ => dir.block_cut = true,
                }
                if f.flags & END_HEADERS != 0 {
                    dir.in_block = false;
                    let block = std::mem::take(&mut dir.block);
                    self.header_block(dir, &block, is_request, ts, ctx);
                    dir.block = block;
                    dir.block.clear();
                }
            }
            SETTINGS if f.flags & ACK == 0 && f.stream == 0 => {
                // This side's decoder limits the *other* side's encoder.
                for s in dir.buf.chunks_exact(6) {
                    if u16::from_be_bytes([s[0], s[1]]) == 1 {
                        let v = u32::from_be_bytes([s[2], s[3], s[4], s[5]]);
                        let dec = if is_request {
                            &mut self.dec_resp
                        } else {
                            &mut self.dec_req
                        };
                        if !dec.set_limit(v) {
                            ctx.stats.hpack_errors += 1;
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn header_block(
        &mut self,
        dir: &Dir,
        block: &[u8],
        is_request: bool,
        ts: u64,
        ctx: &mut Ctx<'_>,
    ) {
        let mut fl = Fields::default();
        if dir.block_cut {
            // Not decoded: the table may now be out of step.
            ctx.stats.hpack_errors += 1;
        } else {
            let dec = if is_request {
                &mut self.dec_req
            } else {
                &mut self.dec_resp
            };
            let config = ctx.config;
            let capture = ctx.capture && is_request;
            let r = dec.decode(block, &mut |n, v| match n {
                b":status" => fl.status = parse_u16(v).unwrap_or(0),
                b"grpc-status" => fl.grpc_status = parse_u16(v).map(|s| s.min(255) as u8),
                b"content-type" => fl.grpc = v.starts_with(b"application/grpc"),
                b":path" => {
                    fl.excluded = config.excludes(v);
                    if capture {
                        fl.path = text(v);
                    }
                }
                b":method" if capture => fl.method = text(v),
                b":scheme" if capture => fl.scheme = text(v),
                _ => {}
            });
            if r.is_err() {
                ctx.stats.hpack_errors += 1;
            }
        }
        if dir.block_push {
            return; // server push: a promised request, not the client's
        }
        let id = dir.block_stream;
        if is_request {
            if self.streams.iter().any(|s| s.id == id) {
                return; // request trailers
            }
            if self.streams.len() >= MAX_STREAMS {
                let i = self.streams.iter().position(|s| s.done).unwrap_or(0);
                let s = self.streams.remove(i);
                if !s.done {
                    ctx.stats.pending_overflow += 1;
                }
            }
            if ctx.capture {
                if self.details.len() >= MAX_STREAMS {
                    self.details.remove(0);
                }
                // coroot's placeholders for what the block did not say.
                let detail = crate::Detail::Http {
                    method: fl.method.unwrap_or_else(|| "unknown".into()),
                    path: fl.path.unwrap_or_else(|| "/unknown".into()),
                    scheme: Some(fl.scheme.unwrap_or_else(|| "unknown".into())),
                };
                self.details.push((id, Box::new(detail)));
            }
            self.streams.push(Stream {
                id,
                ts,
                grpc: fl.grpc,
                excluded: fl.excluded,
                status: 0,
                resp_ts: 0,
                done: false,
            });
            return;
        }
        let Some(i) = self.streams.iter().position(|s| s.id == id) else {
            ctx.stats.unmatched_responses += 1;
            return;
        };
        let s = &mut self.streams[i];
        if !s.done {
            if fl.status >= 200 || (fl.status == 0 && fl.grpc_status.is_some()) {
                if s.resp_ts == 0 {
                    s.resp_ts = ts;
                }
                if fl.status != 0 {
                    s.status = fl.status;
                }
            }
            let status = match (s.grpc, fl.grpc_status) {
                (true, Some(g)) => Some(Status::Grpc(g)),
                (false, _) if s.status != 0 => Some(Status::Http(s.status)),
                (true, None) if dir.block_end_stream && s.status != 0 => {
                    Some(Status::Http(s.status))
                }
                _ => None,
            };
            if let Some(st) = status {
                let s = *s;
                self.streams[i].done = true;
                self.report(s, st, ctx);
            }
        }
        if dir.block_end_stream {
            self.streams.remove(i);
        }
    }

    /// The response side lost its place: gRPC calls whose response headers
    /// came but whose trailers may now be unseen (a response larger than the
    /// window, read with its trailers) are reported by their `:status`, as
    /// coroot reports every HTTP/2 request: the count stays exact, the code
    /// is lost.
    fn lost_trailers(&mut self, ctx: &mut Ctx<'_>) {
        for i in 0..self.streams.len() {
            let s = self.streams[i];
            if !s.done && s.grpc && s.status != 0 {
                self.streams[i].done = true;
                self.report(s, Status::Http(s.status), ctx);
            }
        }
    }

    /// DATA with END_STREAM from the responder.
    fn response_end(&mut self, id: u32, _ts: u64, ctx: &mut Ctx<'_>) {
        let Some(i) = self.streams.iter().position(|s| s.id == id) else {
            return;
        };
        let s = self.streams.remove(i);
        if !s.done && s.status != 0 {
            // A gRPC response that ended without grpc-status.
            self.report(s, Status::Http(s.status), ctx);
        }
    }

    fn reset(&mut self, id: u32, _ts: u64, ctx: &mut Ctx<'_>) {
        let Some(i) = self.streams.iter().position(|s| s.id == id) else {
            return;
        };
        let s = self.streams.remove(i);
        if s.done {
            return;
        }
        if s.status != 0 {
            self.report(s, Status::Http(s.status), ctx);
        } else {
            ctx.stats.reset_streams += 1;
        }
    }

    fn report(&mut self, s: Stream, status: Status, ctx: &mut Ctx<'_>) {
        let detail = self
            .details
            .iter()
            .position(|(id, _)| *id == s.id)
            .map(|i| self.details.remove(i).1);
        if s.excluded {
            ctx.stats.excluded += 1;
            return;
        }
        ctx.out.push(Request {
            protocol: Protocol::Http2,
            status,
            duration_ns: duration(s.ts, s.resp_ts),
            start_ns: s.ts,
            detail,
            method: Method::Unknown,
            dns: None,
        });
    }
}

fn wants_payload(ty: u8) -> bool {
    matches!(ty, HEADERS | PUSH_PROMISE | CONTINUATION | SETTINGS)
}

/// The header block fragment of a HEADERS / PUSH_PROMISE / CONTINUATION
/// payload: without pad length, padding, priority, promised stream id.
/// None when the payload is inconsistent.
fn fragment(p: &[u8], f: FrameHdr) -> Option<&[u8]> {
    let mut start = 0;
    let mut pad = 0;
    if f.ty != CONTINUATION && f.flags & PADDED != 0 {
        pad = *p.first()? as usize;
        start = 1;
    }
    if f.ty == HEADERS && f.flags & PRIORITY != 0 {
        start += 5;
    }
    if f.ty == PUSH_PROMISE {
        start += 4;
    }
    let end = p.len().checked_sub(pad)?;
    p.get(start..end)
}

fn parse_u16(v: &[u8]) -> Option<u16> {
    if v.is_empty() || v.len() > 5 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = v.iter().fold(0u32, |a, &c| a * 10 + (c - b'0') as u32);
    u16::try_from(n).ok()
}

/// Does `data` start with a frame header that makes sense? Used to resume
/// after the framing was lost.
fn plausible(data: &[u8]) -> bool {
    if data.len() < FRAME_HEADER {
        return false;
    }
    let len = u32::from_be_bytes([0, data[0], data[1], data[2]]);
    let ty = data[3];
    let stream = u32::from_be_bytes([data[5], data[6], data[7], data[8]]);
    if stream & 0x8000_0000 != 0 || len > 1 << 20 || ty > CONTINUATION {
        return false;
    }
    // SETTINGS, PING, GOAWAY are connection frames; the others need a stream
    // (WINDOW_UPDATE may be either).
    match ty {
        4 | 6 | 7 => stream == 0,
        8 => true,
        _ => stream != 0,
    }
}

#[cfg(test)]
#[path = "http2_tests.rs"]
mod tests;
