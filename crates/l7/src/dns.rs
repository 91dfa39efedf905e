//! DNS over UDP (one datagram per chunk) and TCP (2-byte length prefix,
//! messages split or coalesced anyhow): queries matched to responses by
//! transaction id; the response gives the RCODE, the question's type and name
//! and the A/AAAA records of the answer section (names compressed or not).
//!
//! The transport is not in the chunk: a session is TCP when its first chunk
//! is a 2-byte read/write (a resolver reading or writing the length alone) or
//! starts with a length equal to the rest of the chunk followed by a
//! plausible header; otherwise UDP. A
//! response cut by the 512-byte window yields the answers that are visible.

use crate::session::{Ctx, Fifo, duration, sizes};
use crate::{Chunk, DnsDetail, Method, PAYLOAD_MAX, Protocol, Request, Status};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Transport {
    #[default]
    Unknown,
    Udp,
    Tcp,
}

/// TCP framing of one direction.
#[derive(Debug, Default)]
struct Framer {
    len: [u8; 2],
    len_have: u8,
    /// Message bytes left in the current message.
    left: u32,
    /// The current message's visible bytes so far (at most PAYLOAD_MAX).
    buf: Vec<u8>,
    /// When the current message's first byte moved (0: not yet).
    ts: u64,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    /// None: a query whose bytes were not seen.
    id: Option<u16>,
    ts: u64,
}

/// DNS parser state of one socket.
#[derive(Debug, Default)]
pub(crate) struct Dns {
    transport: Transport,
    pending: Fifo<Pending>,
    req: Framer,
    resp: Framer,
}

impl Dns {
    pub fn feed(&mut self, chunk: &Chunk<'_>, is_request: bool, ctx: &mut Ctx<'_>) {
        let data = chunk.payload;
        let (vis, size) = sizes(chunk);
        if self.transport == Transport::Unknown {
            // TCP: a 2-byte chunk (the length alone), or a length matching
            // the rest followed by a plausible header (a UDP id may equal
            // the size by chance; the flags after it then do not fit).
            let tcp = size == 2
                || (vis >= 2
                    && u16::from_be_bytes([data[0], data[1]]) as usize + 2 == size
                    // (writev's first iovec may be the length alone)
                    && (vis < 14 || plausible_header(&data[2..])));
            self.transport = if tcp { Transport::Tcp } else { Transport::Udp };
        }
        if self.transport == Transport::Udp {
            self.message(&data[..vis], is_request, chunk.ts_ns, ctx);
            return;
        }
        let mut f = std::mem::take(if is_request {
            &mut self.req
        } else {
            &mut self.resp
        });
        let mut pos = 0;
        while pos < size {
            if f.left > 0 {
                // Collect the message's visible bytes (bounded): a message
                // may arrive over several reads.
                let take = (f.left as usize).min(size - pos);
                if f.ts == 0 {
                    f.ts = chunk.ts_ns.max(1);
                }
                if pos < vis && f.buf.len() < PAYLOAD_MAX {
                    let end = (pos + take).min(vis);
                    let room = PAYLOAD_MAX - f.buf.len();
                    f.buf.extend_from_slice(&data[pos..end.min(pos + room)]);
                }
                pos += take;
                f.left -= take as u32;
                if f.left == 0 {
                    if f.buf.is_empty() && is_request {
                        // A query we could not see (writev's second iovec):
                        // its response, matched by elimination, proves it.
                        self.pending.push(Pending { id: None, ts: f.ts }, ctx.stats);
                    } else {
                        self.message(&f.buf, is_request, f.ts, ctx);
                    }
                    f.buf.clear();
                }
                continue;
            }
            if pos >= vis {
                // A length prefix we cannot see: assume the next chunk
                // starts a message (resolvers read and write whole ones).
                ctx.stats.resyncs += 1;
                f = Framer::default();
                break;
            }
            while f.len_have < 2 && pos < vis {
                f.len[f.len_have as usize] = data[pos];
                f.len_have += 1;
                pos += 1;
            }
            if f.len_have < 2 {
                break;
            }
            f.len_have = 0;
            f.left = u16::from_be_bytes(f.len) as u32;
            // The message's time is when its first byte moves.
            f.ts = 0;
            f.buf.clear();
        }
        if is_request {
            self.req = f;
        } else {
            self.resp = f;
        }
    }

    fn message(&mut self, msg: &[u8], is_request: bool, ts: u64, ctx: &mut Ctx<'_>) {
        let Some(h) = Header::parse(msg) else {
            ctx.stats.parse_errors += 1;
            return;
        };
        if is_request {
            if h.qr {
                ctx.stats.parse_errors += 1;
                return;
            }
            self.pending.push(Pending { id: Some(h.id), ts }, ctx.stats);
            return;
        }
        if !h.qr {
            ctx.stats.parse_errors += 1;
            return;
        }
        let found = self.pending.remove_where(|p| p.id == Some(h.id));
        let Some(p) = found.or_else(|| self.pending.remove_where(|p| p.id.is_none())) else {
            ctx.stats.unmatched_responses += 1;
            return;
        };
        let detail = parse_response(msg, &h);
        ctx.out.push(Request {
            protocol: Protocol::Dns,
            status: Status::Dns(h.rcode),
            duration_ns: duration(p.ts, ts),
            start_ns: p.ts,
            detail: None,
            method: Method::Unknown,
            dns: detail.map(Box::new),
        });
    }
}

/// A DNS header with one question and flags a query or response can have
/// (opcode QUERY/IQUERY/STATUS/NOTIFY/UPDATE, Z clear).
fn plausible_header(h: &[u8]) -> bool {
    h.len() >= 12 && (h[2] >> 3) & 0x0f <= 5 && h[3] & 0x40 == 0 && h[4..6] == [0, 1]
}

struct Header {
    id: u16,
    qr: bool,
    rcode: u8,
    qdcount: u16,
    ancount: u16,
}

impl Header {
    fn parse(m: &[u8]) -> Option<Header> {
        if m.len() < 12 {
            return None;
        }
        let flags = u16::from_be_bytes([m[2], m[3]]);
        Some(Header {
            id: u16::from_be_bytes([m[0], m[1]]),
            qr: flags & 0x8000 != 0,
            rcode: (flags & 0x000f) as u8,
            qdcount: u16::from_be_bytes([m[4], m[5]]),
            ancount: u16::from_be_bytes([m[6], m[7]]),
        })
    }
}

/// Question and A/AAAA answers; None when not even the question is readable.
fn parse_response(m: &[u8], h: &Header) -> Option<DnsDetail> {
    if h.qdcount == 0 {
        return None;
    }
    let mut domain = String::new();
    let mut off = read_name(m, 12, Some(&mut domain))?;
    let qtype = u16::from_be_bytes([*m.get(off)?, *m.get(off + 1)?]);
    off += 4;
    // Further questions (never sent in practice) are skipped.
    for _ in 1..h.qdcount {
        off = read_name(m, off, None)? + 4;
    }
    let mut answers = Vec::new();
    for _ in 0..h.ancount {
        let Some(o) = read_name(m, off, None) else {
            break;
        };
        let Some(rr) = m.get(o..o + 10) else { break };
        let rtype = u16::from_be_bytes([rr[0], rr[1]]);
        let rdlen = u16::from_be_bytes([rr[8], rr[9]]) as usize;
        let Some(rdata) = m.get(o + 10..o + 10 + rdlen) else {
            break;
        };
        match (rtype, rdlen) {
            (1, 4) => answers.push(IpAddr::V4(Ipv4Addr::new(
                rdata[0], rdata[1], rdata[2], rdata[3],
            ))),
            (28, 16) => {
                let mut a = [0u8; 16];
                a.copy_from_slice(rdata);
                answers.push(IpAddr::V6(Ipv6Addr::from(a)));
            }
            _ => {}
        }
        off = o + 10 + rdlen;
    }
    Some(DnsDetail {
        qtype,
        domain: domain.into_boxed_str(),
        answers,
    })
}

/// Read a (possibly compressed) name at `off`; append it, lower-cased and
/// dot-separated, to `out`. Returns the offset just after the name at its
/// original place. Pointer loops and overlong names are errors.
fn read_name(m: &[u8], mut off: usize, mut out: Option<&mut String>) -> Option<usize> {
    let mut end = None;
    let mut jumps = 0;
    let mut total = 0usize;
    loop {
        let len = *m.get(off)? as usize;
        if len == 0 {
            return Some(end.unwrap_or(off + 1));
        }
        match len & 0xc0 {
            0xc0 => {
                let ptr = ((len & 0x3f) << 8) | *m.get(off + 1)? as usize;
                if end.is_none() {
                    end = Some(off + 2);
                }
                jumps += 1;
                if jumps > 32 || ptr >= m.len() {
                    return None;
                }
                off = ptr;
            }
            0x00 => {
                let label = m.get(off + 1..off + 1 + len)?;
                total += len + 1;
                if total > 255 {
                    return None;
                }
                if let Some(o) = out.as_deref_mut() {
                    if !o.is_empty() {
                        o.push('.');
                    }
                    for &c in label {
                        let c = c.to_ascii_lowercase();
                        // Keep label values printable for metric labels.
                        o.push(if c.is_ascii_graphic() { c as char } else { '?' });
                    }
                }
                off += 1 + len;
            }
            _ => return None,
        }
    }
}

#[cfg(test)]
#[path = "dns_tests.rs"]
mod tests;
