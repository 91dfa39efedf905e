//! A small OTLP/HTTP traces receiver for the trace export tests (tests/tests/agent_traces.rs):
//! it accepts `POST /v1/traces` (HTTP/1.1, `application/x-protobuf`, gzip or not), decodes the
//! `ExportTraceServiceRequest` and keeps every span with its resource.
//!
//! The decoding is written here from opentelemetry-proto's field numbers with a plain
//! protobuf wire reader, not with the agent's own message structs (crates/traces/src/proto.rs):
//! a wrong field number in the agent would round-trip through its own structs unnoticed, and
//! is caught here. An OpenTelemetry Collector build is not packaged for Debian.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// An attribute value (`AnyValue`: the arms the agent may send).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
    Double(f64),
    Array(Vec<Value>),
    Other,
}

impl Value {
    pub fn str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// One received span, with its resource's and scope's attributes.
#[derive(Debug, Clone, Default)]
pub struct Span {
    pub resource: BTreeMap<String, Value>,
    pub schema_url: String,
    pub scope: String,
    pub trace_id: Vec<u8>,
    pub span_id: Vec<u8>,
    pub name: String,
    pub kind: u64,
    pub start_ns: u64,
    pub end_ns: u64,
    pub attrs: BTreeMap<String, Value>,
    /// `Status.code` (0 unset, 2 error).
    pub status_code: u64,
}

impl Span {
    pub fn attr(&self, k: &str) -> Option<&Value> {
        self.attrs.get(k)
    }
    pub fn attr_str(&self, k: &str) -> &str {
        self.attrs.get(k).and_then(Value::str).unwrap_or("")
    }
    pub fn attr_int(&self, k: &str) -> Option<i64> {
        match self.attrs.get(k) {
            Some(Value::Int(i)) => Some(*i),
            _ => None,
        }
    }
    pub fn resource_str(&self, k: &str) -> &str {
        self.resource.get(k).and_then(Value::str).unwrap_or("")
    }
    pub fn is_error(&self) -> bool {
        self.status_code == 2
    }
}

/// What the receiver saw.
#[derive(Debug, Default)]
pub struct Received {
    pub spans: Vec<Span>,
    /// (method, path, content-type, content-encoding) of every request.
    pub requests: Vec<(String, String, String, String)>,
    /// Bodies that did not decode, with the reason.
    pub errors: Vec<String>,
}

/// The running receiver (a thread per connection), on 127.0.0.1: at an ephemeral port
/// ([`Receiver::start`]: the agent never counts an ephemeral destination port, so its own
/// exports are no L7 requests at all), or at a port outside that range, as a real collector's.
pub struct Receiver {
    pub port: u16,
    pub received: Arc<Mutex<Received>>,
}

impl Receiver {
    pub fn start() -> Receiver {
        Receiver::on(TcpListener::bind("127.0.0.1:0").expect("bind the OTLP receiver"))
    }

    /// On a port outside the ephemeral range, as a real collector's (4318): the agent's own
    /// exports are then requests to a tracked destination, which must make no spans.
    pub fn start_outside_ephemeral() -> Receiver {
        Receiver::on(crate::listener_outside_ephemeral())
    }

    fn on(l: TcpListener) -> Receiver {
        let port = l.local_addr().expect("local addr").port();
        let received = Arc::new(Mutex::new(Received::default()));
        let r = received.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(conn) = conn else { continue };
                let r = r.clone();
                std::thread::spawn(move || serve(conn, &r));
            }
        });
        Receiver { port, received }
    }

    /// `http://127.0.0.1:<port>/v1/traces`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/v1/traces", self.port)
    }

    pub fn spans(&self) -> Vec<Span> {
        self.received.lock().unwrap().spans.clone()
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, Received> {
        self.received.lock().unwrap()
    }
}

fn serve(conn: TcpStream, received: &Mutex<Received>) {
    let mut w = match conn.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut r = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_owned();
        let path = parts.next().unwrap_or("").to_owned();
        let mut len = 0usize;
        let (mut ctype, mut encoding) = (String::new(), String::new());
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                let v = v.trim();
                match k.to_ascii_lowercase().as_str() {
                    "content-length" => len = v.parse().unwrap_or(0),
                    "content-type" => ctype = v.to_owned(),
                    "content-encoding" => encoding = v.to_owned(),
                    _ => {}
                }
            }
        }
        let mut body = vec![0u8; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        if encoding == "gzip" {
            let mut out = Vec::new();
            if flate2::read::GzDecoder::new(&body[..])
                .read_to_end(&mut out)
                .is_err()
            {
                received.lock().unwrap().errors.push("bad gzip".to_owned());
            }
            body = out;
        }
        {
            let mut g = received.lock().unwrap();
            g.requests
                .push((method, path, ctype.clone(), encoding.clone()));
            match decode_request(&body) {
                Ok(spans) => g.spans.extend(spans),
                Err(e) => g.errors.push(e),
            }
        }
        let _ = w.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n",
        );
    }
}

/// A protobuf field's value as the wire format carries it.
enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32,
}

/// The fields of one message, in order.
fn fields(mut b: &[u8]) -> Result<Vec<(u64, Wire<'_>)>, String> {
    let mut out = Vec::new();
    fn varint(b: &mut &[u8]) -> Result<u64, String> {
        let mut v = 0u64;
        for i in 0..10 {
            let (&x, rest) = b.split_first().ok_or("varint runs out")?;
            *b = rest;
            v |= u64::from(x & 0x7f) << (7 * i);
            if x & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint too long".into())
    }
    while !b.is_empty() {
        let key = varint(&mut b)?;
        let (field, ty) = (key >> 3, key & 7);
        let w = match ty {
            0 => Wire::Varint(varint(&mut b)?),
            1 => {
                let (v, rest) = b.split_at_checked(8).ok_or("fixed64 runs out")?;
                b = rest;
                Wire::Fixed64(u64::from_le_bytes(v.try_into().unwrap()))
            }
            2 => {
                let n = varint(&mut b)? as usize;
                let (v, rest) = b.split_at_checked(n).ok_or("bytes run out")?;
                b = rest;
                Wire::Bytes(v)
            }
            5 => {
                let (_, rest) = b.split_at_checked(4).ok_or("fixed32 runs out")?;
                b = rest;
                Wire::Fixed32
            }
            t => return Err(format!("wire type {t} of field {field}")),
        };
        out.push((field, w));
    }
    Ok(out)
}

fn text(b: &[u8]) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|e| format!("not UTF-8: {e}"))
}

/// `AnyValue`: 1 string, 2 bool, 3 int, 4 double, 5 array (`ArrayValue.values` = 1).
fn any_value(b: &[u8]) -> Result<Value, String> {
    let mut v = Value::Other;
    for (f, w) in fields(b)? {
        v = match (f, w) {
            (1, Wire::Bytes(s)) => Value::Str(text(s)?),
            (2, Wire::Varint(x)) => Value::Bool(x != 0),
            (3, Wire::Varint(x)) => Value::Int(x as i64),
            (4, Wire::Fixed64(x)) => Value::Double(f64::from_bits(x)),
            (5, Wire::Bytes(a)) => {
                let mut items = Vec::new();
                for (f, w) in fields(a)? {
                    if let (1, Wire::Bytes(x)) = (f, w) {
                        items.push(any_value(x)?);
                    }
                }
                Value::Array(items)
            }
            _ => Value::Other,
        };
    }
    Ok(v)
}

/// `KeyValue`: 1 key, 2 value.
fn key_value(b: &[u8]) -> Result<(String, Value), String> {
    let (mut k, mut v) = (String::new(), Value::Other);
    for (f, w) in fields(b)? {
        match (f, w) {
            (1, Wire::Bytes(s)) => k = text(s)?,
            (2, Wire::Bytes(x)) => v = any_value(x)?,
            _ => {}
        }
    }
    Ok((k, v))
}

/// `ExportTraceServiceRequest.resource_spans` (1) -> `ResourceSpans` {resource 1
/// (`Resource.attributes` 1), scope_spans 2, schema_url 3} -> `ScopeSpans` {scope 1
/// (`InstrumentationScope.name` 1), spans 2} -> `Span` {trace_id 1, span_id 2, name 5, kind 6,
/// start 7, end 8, attributes 9, status 15 (`Status.code` 3)}.
pub fn decode_request(b: &[u8]) -> Result<Vec<Span>, String> {
    let mut out = Vec::new();
    for (f, w) in fields(b)? {
        let (1, Wire::Bytes(rs)) = (f, w) else {
            continue;
        };
        let mut resource = BTreeMap::new();
        let mut schema_url = String::new();
        let mut scopes = Vec::new();
        for (f, w) in fields(rs)? {
            match (f, w) {
                (1, Wire::Bytes(r)) => {
                    for (f, w) in fields(r)? {
                        if let (1, Wire::Bytes(kv)) = (f, w) {
                            let (k, v) = key_value(kv)?;
                            resource.insert(k, v);
                        }
                    }
                }
                (2, Wire::Bytes(ss)) => scopes.push(ss),
                (3, Wire::Bytes(s)) => schema_url = text(s)?,
                _ => {}
            }
        }
        for ss in scopes {
            let mut scope = String::new();
            let mut spans = Vec::new();
            for (f, w) in fields(ss)? {
                match (f, w) {
                    (1, Wire::Bytes(sc)) => {
                        for (f, w) in fields(sc)? {
                            if let (1, Wire::Bytes(n)) = (f, w) {
                                scope = text(n)?;
                            }
                        }
                    }
                    (2, Wire::Bytes(sp)) => spans.push(sp),
                    _ => {}
                }
            }
            for sp in spans {
                let mut s = Span {
                    resource: resource.clone(),
                    schema_url: schema_url.clone(),
                    scope: scope.clone(),
                    ..Span::default()
                };
                for (f, w) in fields(sp)? {
                    match (f, w) {
                        (1, Wire::Bytes(x)) => s.trace_id = x.to_vec(),
                        (2, Wire::Bytes(x)) => s.span_id = x.to_vec(),
                        (5, Wire::Bytes(x)) => s.name = text(x)?,
                        (6, Wire::Varint(x)) => s.kind = x,
                        (7, Wire::Fixed64(x)) => s.start_ns = x,
                        (8, Wire::Fixed64(x)) => s.end_ns = x,
                        (9, Wire::Bytes(kv)) => {
                            let (k, v) = key_value(kv)?;
                            s.attrs.insert(k, v);
                        }
                        (15, Wire::Bytes(st)) => {
                            for (f, w) in fields(st)? {
                                if let (3, Wire::Varint(c)) = (f, w) {
                                    s.status_code = c;
                                }
                            }
                        }
                        _ => {}
                    }
                }
                out.push(s);
            }
        }
    }
    Ok(out)
}
