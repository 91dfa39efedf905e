//! One [`Session`] per connection: the protocol dispatch.
//!
//! Each protocol's parser lives in its own file and keeps its own state; this
//! file only routes chunks. To add a protocol: a variant in [`Parser`], one arm
//! in [`Session::new`] and one in [`Session::feed`]. Protocols with no parser
//! yet take the explicit `Unsupported` path: their chunks are counted in
//! [`SessionStats::unsupported_chunks`], never guessed at.

use crate::{Chunk, Config, Direction, Protocol, Request, Role, SessionStats};
use crate::{dns::Dns, http1::Http1, http2::Http2, postgres::Postgres, redis::Redis};
use std::collections::VecDeque;

/// Requests waiting for their response, per connection (HTTP/1 pipelining,
/// Postgres batches, Redis pipelines, DNS transactions).
pub(crate) const MAX_PENDING: usize = 128;

/// Everything a parser needs besides its own state, for one chunk.
pub(crate) struct Ctx<'a> {
    pub config: &'a Config,
    /// Keep each request's [`crate::Detail`] (capture on, client side).
    pub capture: bool,
    pub stats: &'a mut SessionStats,
    pub out: &'a mut Vec<Request>,
}

/// A parser asking the session to continue as another protocol from byte
/// `offset` of the current chunk (HTTP/1 -> HTTP/2: `Upgrade: h2c` or the
/// HTTP/2 connection preface).
pub(crate) struct Switch {
    pub offset: usize,
    pub http2: Box<Http2>,
}

enum Parser {
    Http1(Box<Http1>),
    Http2(Box<Http2>),
    Postgres(Box<Postgres>),
    Redis(Box<Redis>),
    Dns(Box<Dns>),
    /// Issue 16's protocols (parsers16.rs: one entry point, boxed inside).
    Other(crate::Parser16),
    Unsupported,
}

/// The parsing state of one connection (or DNS socket).
pub struct Session {
    protocol: Protocol,
    role: Role,
    parser: Parser,
    stats: SessionStats,
    /// Span details of the client's recent writes (crate::detail), made at the first
    /// chunk with capture on; None otherwise.
    pub(crate) capture: Option<Box<crate::detail::Capture>>,
}

impl Session {
    pub fn new(protocol: Protocol, role: Role) -> Session {
        let parser = match protocol {
            Protocol::Http => Parser::Http1(Box::default()),
            Protocol::Postgres => Parser::Postgres(Box::default()),
            Protocol::Redis => Parser::Redis(Box::default()),
            Protocol::Dns => Parser::Dns(Box::default()),
            Protocol::Http2 => Parser::Http2(Box::default()),
            Protocol::Memcached
            | Protocol::Mysql
            | Protocol::Mongo
            | Protocol::Kafka
            | Protocol::Cassandra
            | Protocol::Rabbitmq
            | Protocol::Nats
            | Protocol::Dubbo2
            | Protocol::Clickhouse
            | Protocol::Zookeeper
            | Protocol::FoundationDb => match crate::Parser16::new(protocol) {
                Some(p) => Parser::Other(p),
                None => Parser::Unsupported,
            },
        };
        Session {
            protocol,
            role,
            parser,
            stats: SessionStats::default(),
            capture: None,
        }
    }

    /// Feed one read/write in kernel order; completed requests are pushed to `out`.
    pub fn feed(&mut self, chunk: &Chunk<'_>, config: &Config, out: &mut Vec<Request>) {
        // A write of the client or a read of the server carries requests.
        let is_request = matches!(
            (self.role, chunk.direction),
            (Role::Client, Direction::Egress) | (Role::Server, Direction::Ingress)
        );
        // Spans are the client's (coroot's are): the server side keeps no detail.
        let capture =
            config.capture && self.role == Role::Client && crate::detail::traced(self.protocol);
        // HTTP/2 keeps its own details (they need its HPACK state).
        let generic = capture && self.protocol != Protocol::Http2;
        let first_new = out.len();
        if generic {
            let c = self.capture.get_or_insert_with(Box::default);
            if is_request {
                c.on_request(self.protocol, chunk);
            } else {
                c.on_response(self.protocol, chunk);
            }
        }
        let mut ctx = Ctx {
            config,
            capture,
            stats: &mut self.stats,
            out: &mut *out,
        };
        let switch = match &mut self.parser {
            Parser::Http1(p) => p.feed(chunk, is_request, &mut ctx),
            Parser::Http2(p) => {
                p.feed(chunk, is_request, &mut ctx);
                None
            }
            Parser::Postgres(p) => {
                p.feed(chunk, is_request, &mut ctx);
                None
            }
            Parser::Redis(p) => {
                p.feed(chunk, is_request, &mut ctx);
                None
            }
            Parser::Dns(p) => {
                p.feed(chunk, is_request, &mut ctx);
                None
            }
            Parser::Other(p) => {
                p.feed(self.role, chunk, ctx.out, ctx.stats);
                None
            }
            Parser::Unsupported => {
                ctx.stats.unsupported_chunks += 1;
                None
            }
        };
        if let Some(sw) = switch {
            self.protocol = Protocol::Http2;
            let mut h2 = sw.http2;
            let off = sw.offset.min(chunk.payload.len());
            let rest = Chunk {
                ts_ns: chunk.ts_ns,
                direction: chunk.direction,
                size: chunk.size.saturating_sub(off as u32),
                payload: &chunk.payload[off..],
            };
            if rest.size > 0 {
                h2.feed(&rest, is_request, &mut ctx);
            }
            self.parser = Parser::Http2(h2);
        }
        if generic && let Some(c) = &mut self.capture {
            for r in &mut out[first_new..] {
                c.attach(r);
            }
        }
    }

    /// The connection's protocol; changes from HTTP to HTTP2 on an h2c
    /// upgrade or a prior-knowledge HTTP/2 preface.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// What this session could not use, cumulative.
    pub fn stats(&self) -> SessionStats {
        self.stats
    }
}

/// A bounded FIFO of requests waiting for responses. Never allocates past
/// [`MAX_PENDING`] entries; what does not fit is counted.
#[derive(Debug)]
pub(crate) struct Fifo<T> {
    q: VecDeque<T>,
}

impl<T> Default for Fifo<T> {
    fn default() -> Self {
        Fifo { q: VecDeque::new() }
    }
}

impl<T> Fifo<T> {
    pub fn push(&mut self, v: T, stats: &mut SessionStats) {
        if self.q.len() >= MAX_PENDING {
            stats.pending_overflow += 1;
            return;
        }
        self.q.push_back(v);
    }
    pub fn pop(&mut self) -> Option<T> {
        self.q.pop_front()
    }
    pub fn front(&self) -> Option<&T> {
        self.q.front()
    }
    pub fn front_mut(&mut self) -> Option<&mut T> {
        self.q.front_mut()
    }
    pub fn back_mut(&mut self) -> Option<&mut T> {
        self.q.back_mut()
    }
    pub fn remove_where(&mut self, f: impl Fn(&T) -> bool) -> Option<T> {
        let i = self.q.iter().position(f)?;
        self.q.remove(i)
    }
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.q.iter()
    }
    pub fn len(&self) -> usize {
        self.q.len()
    }
}

/// Visible and true lengths of a chunk: the kernel copies at most
/// PAYLOAD_MAX bytes but reports the syscall's real size.
pub(crate) fn sizes(chunk: &Chunk<'_>) -> (usize, usize) {
    let vis = chunk.payload.len();
    (vis, (chunk.size as usize).max(vis))
}

/// Request time and response time -> duration (0 if the clock went back).
pub(crate) fn duration(req_ts: u64, resp_ts: u64) -> u64 {
    resp_ts.saturating_sub(req_ts)
}
