//! What a trace span shows of a request: HTTP method and path, a database statement, a
//! cache command and its keys (crates/traces turns completed requests into OTLP spans).
//!
//! Kept only when [`crate::Config::capture`] is on (`--traces-endpoint`), and only for
//! the client's side of a connection (spans are the client's, as coroot-node-agent's
//! are); with it off nothing here runs and nothing is allocated. The text is read from
//! the request-direction chunk that carried the request, as coroot reads it from the
//! request's first bytes: [`Capture`] keeps the detail of the last [`RECENT`] request
//! writes by their kernel time, and a completed [`crate::Request`] takes the one of the
//! write it started in ([`crate::Request::start_ns`]). Several requests in one write (a
//! pipeline) share it: the first completed takes it, the others go without.
//!
//! Bounds: a text is at most [`MAX_TEXT`] bytes (and never more than the kernel's window,
//! 512 bytes, 4 KiB on HTTP/2); a cut text ends in `...` (coroot's marker). Prepared
//! statements (Postgres `Parse`, MySQL `COM_STMT_PREPARE`) are remembered per connection,
//! at most [`MAX_PREPARED`], the oldest forgotten first.

use std::collections::VecDeque;

use crate::{Chunk, Protocol, Request};

/// Longest text kept (statement, path, key), in bytes.
pub const MAX_TEXT: usize = 1024;
/// Request writes whose detail waits for its request to complete, per connection.
pub const RECENT: usize = 64;
/// Prepared statements remembered per connection.
pub const MAX_PREPARED: usize = 256;
/// Most keys of one memcached command kept.
const MAX_KEYS: usize = 16;
/// Deepest BSON nesting rendered.
const MAX_DEPTH: usize = 8;

/// What a span shows of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detail {
    /// HTTP/1 and HTTP/2 (gRPC too): method, request target (path and query) and, for
    /// HTTP/2, the `:scheme`.
    Http {
        method: Box<str>,
        path: Box<str>,
        scheme: Option<Box<str>>,
    },
    /// Postgres, MySQL and ClickHouse: the SQL text (a prepared statement's execution:
    /// the statement prepared); MongoDB: the command document, as JSON.
    Statement(Box<str>),
    /// Redis: the command and its first argument (` ...` after it when there are more).
    Redis { command: Box<str>, args: Box<str> },
    /// Memcached: the command and its keys.
    Memcached {
        command: Box<str>,
        keys: Vec<Box<str>>,
    },
    /// ZooKeeper: the operation (coroot's names: `create`, `getData`, `multi(create, ...)`)
    /// and its path.
    Zookeeper { op: Box<str>, path: Box<str> },
}

/// Whether a protocol's requests get a [`Detail`] (the protocols coroot-node-agent
/// exports spans for). HTTP/2 keeps its own (its header blocks need the HPACK state).
pub fn traced(p: Protocol) -> bool {
    matches!(
        p,
        Protocol::Http
            | Protocol::Http2
            | Protocol::Postgres
            | Protocol::Mysql
            | Protocol::Mongo
            | Protocol::Memcached
            | Protocol::Redis
            | Protocol::Clickhouse
            | Protocol::Zookeeper
    )
}

/// The per-connection capture state (boxed in the session, made at its first chunk with
/// capture on).
#[derive(Debug, Default)]
pub(crate) struct Capture {
    /// (kernel time of a request write, what it carried).
    recent: VecDeque<(u64, Option<Box<Detail>>)>,
    /// Prepared statements: (Postgres name or MySQL id, text).
    prepared: VecDeque<(Box<str>, Box<str>)>,
    /// MySQL: a COM_STMT_PREPARE's text waiting for the server's statement id, and the
    /// time of its write.
    mysql_prepare: Option<(u64, Box<str>)>,
}

impl Capture {
    /// A request-direction chunk (a client's write).
    pub fn on_request(&mut self, protocol: Protocol, chunk: &Chunk<'_>) {
        if chunk.payload.is_empty() {
            return;
        }
        let p = chunk.payload;
        let detail = match protocol {
            Protocol::Http => http1(p),
            Protocol::Postgres => self.postgres(p),
            Protocol::Mysql => self.mysql(p, chunk.ts_ns),
            Protocol::Mongo => mongo(p).map(Detail::Statement),
            Protocol::Memcached => memcached(p),
            Protocol::Redis => redis(p),
            Protocol::Clickhouse => clickhouse(p).map(Detail::Statement),
            Protocol::Zookeeper => zookeeper(p),
            _ => None,
        };
        if self.recent.len() >= RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back((chunk.ts_ns, detail.map(Box::new)));
    }

    /// A response-direction chunk: MySQL's COM_STMT_PREPARE_OK names the statement.
    pub fn on_response(&mut self, protocol: Protocol, chunk: &Chunk<'_>) {
        if protocol != Protocol::Mysql {
            return;
        }
        let Some((ts, query)) = self.mysql_prepare.take() else {
            return;
        };
        let p = chunk.payload;
        // [len:3][seq][0x00 OK][statement id:4 LE]...
        if p.len() < 9 || p[4] != 0 {
            return;
        }
        let id = u32::from_le_bytes([p[5], p[6], p[7], p[8]]).to_string();
        let text = bounded(&format!("PREPARE {id} FROM {query}"));
        if let Some((_, d)) = self.recent.iter_mut().find(|(t, _)| *t == ts) {
            *d = Some(Box::new(Detail::Statement(text)));
        }
        self.remember(id.into(), query);
    }

    /// Gives a completed request the detail of the write it started in (once).
    pub fn attach(&mut self, r: &mut Request) {
        // HTTP/2 requests (after a prior-knowledge preface or an h2c upgrade) bring their own.
        if r.start_ns == 0 || r.detail.is_some() || r.protocol == Protocol::Http2 {
            return;
        }
        if let Some((_, d)) = self.recent.iter_mut().find(|(t, _)| *t == r.start_ns) {
            r.detail = d.take();
        }
    }

    fn remember(&mut self, name: Box<str>, text: Box<str>) {
        self.prepared.retain(|(n, _)| *n != name);
        if self.prepared.len() >= MAX_PREPARED {
            self.prepared.pop_front();
        }
        self.prepared.push_back((name, text));
    }

    fn forget(&mut self, name: &str) {
        self.prepared.retain(|(n, _)| &**n != name);
    }

    fn lookup(&self, name: &str) -> Option<&str> {
        self.prepared
            .iter()
            .rev()
            .find(|(n, _)| &**n == name)
            .map(|(_, t)| &**t)
    }

    /// The statement of a write's first Query, or of its Execute (the statement its Bind
    /// named, prepared by a Parse in the same write or earlier).
    fn postgres(&mut self, p: &[u8]) -> Option<Detail> {
        let mut at = 0;
        let mut bound: Option<Box<str>> = None;
        while at + 5 <= p.len() {
            let ty = p[at];
            let len = u32::from_be_bytes([p[at + 1], p[at + 2], p[at + 3], p[at + 4]]) as usize;
            if len < 4 {
                return None;
            }
            let body_end = at + 1 + len;
            let body = &p[at + 5..body_end.min(p.len())];
            let cut = body_end > p.len();
            match ty {
                b'Q' => return Some(Detail::Statement(cstr_text(body, cut).0)),
                b'P' => {
                    let (name, rest) = split_cstr(body)?;
                    let (query, _) = cstr_text(rest, cut);
                    self.remember(lossy(name), query.clone());
                    bound = Some(query);
                }
                b'B' => {
                    let (_portal, rest) = split_cstr(body)?;
                    let (name, _) = split_cstr(rest)?;
                    let name = lossy(name);
                    bound = Some(match self.lookup(&name) {
                        Some(t) => t.into(),
                        None => bounded(&format!("EXECUTE {name} /* unknown */")),
                    });
                }
                b'C' if body.first() == Some(&b'S') => {
                    if let Some((name, _)) = split_cstr(&body[1..]) {
                        self.forget(&lossy(name));
                    }
                }
                b'E' => return bound.map(Detail::Statement),
                _ => {}
            }
            if cut {
                break;
            }
            at = body_end;
        }
        None
    }

    fn mysql(&mut self, p: &[u8], ts: u64) -> Option<Detail> {
        if p.len() < 5 {
            return None;
        }
        let len = usize::from(p[0]) | usize::from(p[1]) << 8 | usize::from(p[2]) << 16;
        let end = 4 + len;
        let text = || {
            let lo = 5.min(p.len());
            let body = &p[lo..end.min(p.len()).max(lo)];
            bounded_cut(body, end > p.len())
        };
        let id = || (p.len() >= 9).then(|| u32::from_le_bytes([p[5], p[6], p[7], p[8]]));
        match p[4] {
            0x03 => Some(Detail::Statement(text())),
            0x16 => {
                let q = text();
                self.mysql_prepare = Some((ts, q.clone()));
                Some(Detail::Statement(bounded(&format!("PREPARE {q}"))))
            }
            0x17 => {
                let id = id()?.to_string();
                Some(Detail::Statement(match self.lookup(&id) {
                    Some(t) => t.into(),
                    None => bounded(&format!("EXECUTE {id} /* unknown */")),
                }))
            }
            0x19 => {
                if let Some(id) = id() {
                    self.forget(&id.to_string());
                }
                None
            }
            _ => None,
        }
    }
}

fn lossy(b: &[u8]) -> Box<str> {
    bounded(&String::from_utf8_lossy(b))
}

/// `s` cut to [`MAX_TEXT`] bytes (at a character boundary), `...` marking a cut.
fn bounded(s: &str) -> Box<str> {
    if s.len() <= MAX_TEXT {
        return s.into();
    }
    let mut end = MAX_TEXT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end]).into()
}

/// Bytes as text; `cut`: the kernel's window (or [`MAX_TEXT`]) ended it early.
fn bounded_cut(b: &[u8], cut: bool) -> Box<str> {
    let s = String::from_utf8_lossy(b);
    if cut && s.len() <= MAX_TEXT {
        return format!("{s}...").into();
    }
    bounded(&s)
}

/// The NUL-terminated text at the start of `b` (cut: the rest, with `...`).
fn cstr_text(b: &[u8], cut: bool) -> (Box<str>, bool) {
    match b.iter().position(|&c| c == 0) {
        Some(i) => (bounded_cut(&b[..i], false), true),
        None => (bounded_cut(b, cut || !b.is_empty()), false),
    }
}

fn split_cstr(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = b.iter().position(|&c| c == 0)?;
    Some((&b[..i], &b[i + 1..]))
}

/// `METHOD SP target SP HTTP/x.y`: coroot's method and path (`...` after a target the
/// window cut).
fn http1(p: &[u8]) -> Option<Detail> {
    let sp = p.iter().position(|&c| c == b' ')?;
    let method = &p[..sp];
    if method.is_empty() || method.len() > 16 || !method.iter().all(u8::is_ascii_uppercase) {
        return None;
    }
    let rest = &p[sp + 1..];
    let (path, cut) = match rest
        .iter()
        .position(|&c| c == b' ' || c == b'\r' || c == b'\n')
    {
        Some(i) => (&rest[..i], false),
        None => (rest, true),
    };
    Some(Detail::Http {
        method: lossy(method),
        path: bounded_cut(path, cut),
        scheme: None,
    })
}

/// A RESP array command (`*N $len cmd $len arg ...`) or an inline one (`PING\r\n`).
fn redis(p: &[u8]) -> Option<Detail> {
    let mut lines = Lines { b: p, at: 0 };
    let first = lines.next()?;
    if first.first() != Some(&b'*') {
        let mut words = first.split(|&c| c == b' ').filter(|w| !w.is_empty());
        let command = words.next()?;
        let args = words.next().map(lossy).unwrap_or_default();
        return Some(Detail::Redis {
            command: lossy(command),
            args,
        });
    }
    let n: usize = std::str::from_utf8(&first[1..]).ok()?.parse().ok()?;
    let mut bulk = || {
        let h = lines.next()?;
        (h.first() == Some(&b'$')).then_some(())?;
        lines.next()
    };
    let command = lossy(bulk()?);
    if command.is_empty() {
        return None;
    }
    let mut args = String::new();
    if n > 1 {
        if let Some(a) = bulk() {
            args.push_str(&String::from_utf8_lossy(a));
        }
        if n > 2 {
            args.push_str(" ...");
        }
    }
    Some(Detail::Redis {
        command,
        args: bounded(&args),
    })
}

struct Lines<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Lines<'a> {
    /// The next CRLF-terminated line (None at a line the window cut).
    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.b.get(self.at..)?;
        let i = rest.windows(2).position(|w| w == b"\r\n")?;
        self.at += i + 2;
        Some(&rest[..i])
    }
}

/// Memcached: the text protocol as coroot reads it (storage, delete, incr/decr and touch
/// commands with their key; get/gets with their keys; gat/gats past the expiry), and the
/// binary protocol's opcode and key.
fn memcached(p: &[u8]) -> Option<Detail> {
    if p.first() == Some(&0x80) {
        return memcached_binary(p);
    }
    let mut lines = Lines { b: p, at: 0 };
    let line = lines.next()?;
    let mut words = line.split(|&c| c == b' ').filter(|w| !w.is_empty());
    let command = words.next()?;
    let keys: Vec<Box<str>> = match command {
        b"set" | b"add" | b"cas" | b"append" | b"prepend" | b"replace" | b"delete" | b"incr"
        | b"decr" | b"touch" => words.next().map(lossy).into_iter().collect(),
        b"gat" | b"gats" => words.skip(1).take(MAX_KEYS).map(lossy).collect(),
        b"get" | b"gets" => words.take(MAX_KEYS).map(lossy).collect(),
        _ => return None,
    };
    if keys.is_empty() {
        return None;
    }
    Some(Detail::Memcached {
        command: lossy(command),
        keys,
    })
}

fn memcached_binary(p: &[u8]) -> Option<Detail> {
    if p.len() < 24 {
        return None;
    }
    let name = match p[1] {
        0x00 | 0x09 => "get",
        0x01 | 0x11 => "set",
        0x02 | 0x12 => "add",
        0x03 | 0x13 => "replace",
        0x04 | 0x14 => "delete",
        0x05 | 0x15 => "incr",
        0x06 | 0x16 => "decr",
        0x0c | 0x0d => "getk",
        0x0e | 0x19 => "append",
        0x0f | 0x1a => "prepend",
        0x1c => "touch",
        0x1d | 0x1e => "gat",
        _ => return None,
    };
    let key_len = usize::from(u16::from_be_bytes([p[2], p[3]]));
    let extras = usize::from(p[4]);
    let start = 24 + extras;
    let keys = match p.get(start..start + key_len) {
        Some(k) if !k.is_empty() => vec![lossy(k)],
        _ => Vec::new(),
    };
    Some(Detail::Memcached {
        command: name.into(),
        keys,
    })
}

/// ZooKeeper: `[len][xid][op]` then the op's path, with coroot's op names.
fn zookeeper(p: &[u8]) -> Option<Detail> {
    if p.len() < 12 {
        return None;
    }
    let op = i32::from_be_bytes([p[8], p[9], p[10], p[11]]);
    let (op, path) = zk_op(&p[12..], op, 0)?;
    Some(Detail::Zookeeper {
        op: op.into(),
        path,
    })
}

fn zk_op(b: &[u8], op: i32, depth: u8) -> Option<(String, Box<str>)> {
    let name = match op {
        1 => "create",
        2 => "delete",
        3 => "exists",
        4 => "getData",
        5 => "setData",
        6 => "getACL",
        7 => "setACL",
        8 => "getChildren",
        9 => "sync",
        11 => "ping",
        12 => "getChildren2",
        13 => "check",
        16 => "reconfig",
        19 => "createContainer",
        21 => "createTTL",
        -11 => "close",
        100 => "setAuth",
        101 => "setWatches",
        14 if depth == 0 => {
            // multi: a MultiHeader {type, done, err} before the first op.
            if b.len() < 9 {
                return None;
            }
            let first = i32::from_be_bytes([b[0], b[1], b[2], b[3]]);
            let (inner, path) = zk_op(&b[9..], first, 1)?;
            return Some((format!("multi({inner}, ...)"), path));
        }
        _ => return None,
    };
    let with_path = !matches!(op, 11 | 16 | -11 | 100 | 101);
    let path = if with_path && b.len() >= 4 {
        let n = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
        if n > MAX_TEXT {
            return None;
        }
        let s = &b[4..];
        bounded_cut(&s[..n.min(s.len())], n > s.len())
    } else {
        Box::from("")
    };
    Some((name.to_owned(), path))
}

/// MongoDB: the command document of an OP_MSG body section, or an OP_QUERY's query,
/// rendered as JSON (coroot renders OP_MSG only, `<truncated>` otherwise).
fn mongo(p: &[u8]) -> Option<Box<str>> {
    if p.len() < 21 {
        return None;
    }
    let op = u32::from_le_bytes([p[12], p[13], p[14], p[15]]);
    let doc = match op {
        2013 if p[20] == 0 => &p[21..],
        2004 => {
            let coll = &p[20..];
            let nul = coll.iter().position(|&c| c == 0)?;
            coll.get(nul + 1 + 8..)?
        }
        _ => return None,
    };
    let mut out = String::new();
    let complete = bson_doc(doc, &mut out, false, 0);
    if !complete {
        out.push_str("...");
    }
    Some(bounded(&out))
}

/// Renders a BSON document as JSON (bounded by the input and [`MAX_TEXT`]); false when
/// the bytes ran out before its end.
fn bson_doc(b: &[u8], out: &mut String, array: bool, depth: usize) -> bool {
    if b.len() < 5 || depth > MAX_DEPTH {
        return false;
    }
    let len = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
    let b = &b[4..len.min(b.len()).max(4)];
    out.push(if array { '[' } else { '{' });
    let mut at = 0;
    let mut first = true;
    loop {
        if out.len() > MAX_TEXT {
            return false;
        }
        let Some(&ty) = b.get(at) else { return false };
        if ty == 0 {
            break;
        }
        at += 1;
        let Some(nul) = b[at..].iter().position(|&c| c == 0) else {
            return false;
        };
        let name = &b[at..at + nul];
        at += nul + 1;
        if !first {
            out.push_str(", ");
        }
        first = false;
        if !array {
            json_str(name, out);
            out.push_str(": ");
        }
        let rest = &b[at..];
        let used = match ty {
            0x01 if rest.len() >= 8 => {
                let v = f64::from_le_bytes(rest[..8].try_into().unwrap_or([0; 8]));
                out.push_str(&v.to_string());
                8
            }
            0x02 | 0x0d | 0x0e if rest.len() >= 4 => {
                let n = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                let Some(s) = rest.get(4..4 + n.saturating_sub(1)) else {
                    return false;
                };
                json_str(s, out);
                4 + n
            }
            0x03 | 0x04 => {
                if !bson_doc(rest, out, ty == 0x04, depth + 1) {
                    return false;
                }
                u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize
            }
            0x07 if rest.len() >= 12 => {
                out.push_str("{\"$oid\": \"");
                for x in &rest[..12] {
                    out.push_str(&format!("{x:02x}"));
                }
                out.push_str("\"}");
                12
            }
            0x08 if !rest.is_empty() => {
                out.push_str(if rest[0] != 0 { "true" } else { "false" });
                1
            }
            0x09 | 0x11 | 0x12 if rest.len() >= 8 => {
                let v = i64::from_le_bytes(rest[..8].try_into().unwrap_or([0; 8]));
                out.push_str(&v.to_string());
                8
            }
            0x0a => {
                out.push_str("null");
                0
            }
            0x10 if rest.len() >= 4 => {
                let v = i32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
                out.push_str(&v.to_string());
                4
            }
            _ => return false,
        };
        at += used;
    }
    out.push(if array { ']' } else { '}' });
    true
}

fn json_str(b: &[u8], out: &mut String) {
    out.push('"');
    for c in String::from_utf8_lossy(b).chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// ClickHouse: the query text of a client Query packet (as ClickHouse's
/// `Connection::sendQuery` writes it: query id, client info by protocol revision,
/// settings, secret, stage, compression, query).
fn clickhouse(p: &[u8]) -> Option<Box<str>> {
    let mut r = Reader { b: p, at: 0 };
    if r.byte()? != 1 {
        return None;
    }
    r.string()?; // query id
    let kind = r.byte()?;
    let mut revision = 0u64;
    if kind != 0 {
        r.string()?; // initial user
        r.string()?; // initial query id
        r.string()?; // initial address
        // initial_query_start_time_microseconds (revision >= 54449) comes before the
        // interface byte: an interface value (1..=8) right here means it is absent.
        if !matches!(r.peek()?, 1..=8) || matches!(p.get(r.at + 8), Some(1..=8)) {
            r.skip(8)?;
        }
        let interface = r.byte()?;
        if interface == 1 {
            r.string()?; // os user
            r.string()?; // client hostname
            r.string()?; // client name
            r.varint()?; // major
            r.varint()?; // minor
            revision = r.varint()?;
        }
        if revision >= 54060 {
            r.string()?; // quota key
        }
        if revision >= 54448 {
            r.varint()?; // distributed depth
        }
        if revision >= 54401 && interface == 1 {
            r.varint()?; // version patch
        }
        if revision >= 54442 && r.byte()? == 1 {
            r.skip(16 + 8)?; // trace id, span id
            r.string()?; // trace state
            r.skip(1)?; // trace flags
        }
        if revision >= 54453 {
            r.varint()?;
            r.varint()?;
            r.varint()?;
        }
    }
    // Settings (as strings from revision 54429): name, flags, value ... up to an empty name.
    loop {
        let name = r.string()?;
        if name.is_empty() {
            break;
        }
        if revision >= 54429 {
            r.varint()?;
            r.string()?;
        } else {
            return None; // binary settings: their types are not known here
        }
    }
    if revision >= 54441 {
        r.string()?; // inter-server secret
    }
    r.varint()?; // stage
    r.varint()?; // compression
    let n = r.varint()? as usize;
    let rest = &p[r.at..];
    let text = bounded_cut(
        String::from_utf8_lossy(&rest[..n.min(rest.len())])
            .trim()
            .as_bytes(),
        n > rest.len(),
    );
    (!text.is_empty()).then_some(text)
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.at).copied()
    }
    fn byte(&mut self) -> Option<u8> {
        let v = self.peek()?;
        self.at += 1;
        Some(v)
    }
    fn skip(&mut self, n: usize) -> Option<()> {
        (self.at + n <= self.b.len()).then(|| self.at += n)
    }
    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    fn string(&mut self) -> Option<&'a [u8]> {
        let n = self.varint()? as usize;
        let s = self.b.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }
}

#[cfg(test)]
#[path = "detail_tests.rs"]
mod tests;
