//! Application-protocol parsing for sonde's L7 tracer (pure: no I/O, no eBPF).
//!
//! The kernel side (`ebpf/src/l7.c`) ships, for every TCP connection (and DNS
//! socket) it classified, each read and write as a [`Chunk`]: the syscall's
//! byte count and up to [`PAYLOAD_MAX`] bytes of its payload, with the
//! kernel's monotonic timestamp. A [`Session`] per connection turns that stream
//! into completed [`Request`]s: it parses requests and responses exactly,
//! matches them (pipelining, HTTP/2 streams, Postgres extended-query batches)
//! and measures latency as response time minus request time.
//!
//! Everything that must be exact lives here, unit-tested on recorded
//! payloads; the kernel only classifies cheaply and copies bytes.
//! See docs/l7.md for the design and the contract with the kernel.

mod config;
pub mod detail;
mod dns;
mod hpack;
mod http1;
mod http2;
pub mod labels;
mod postgres;
mod redis;
mod session;
#[cfg(test)]
mod testutil;

pub use config::Config;
pub use detail::Detail;
pub use session::Session;

/// Payload bytes the kernel copies per read/write (the rest is counted in
/// [`Chunk::size`] but not seen). Must equal `L7_PAYLOAD_MAX` in
/// `ebpf/include/common.h`.
pub const PAYLOAD_MAX: usize = 512;

/// The window of HTTP/2 connections (`L7_PAYLOAD_MAX_H2`): HPACK makes each header block
/// depend on every earlier one, and gRPC writes several frames at once, so a block cut by
/// the window would leave the rest of the connection undecodable.
pub const PAYLOAD_MAX_HTTP2: usize = 4096;

/// Application protocols. The numbers are the kernel's `enum l7_protocol`
/// (`ebpf/include/common.h`) and coroot-node-agent's `l7.Protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Protocol {
    Http = 1,
    Postgres = 2,
    Redis = 3,
    Memcached = 4,
    Mysql = 5,
    Mongo = 6,
    Kafka = 7,
    Cassandra = 8,
    Rabbitmq = 9,
    Nats = 10,
    Http2 = 11,
    Dubbo2 = 12,
    Dns = 13,
    Clickhouse = 14,
    Zookeeper = 15,
    FoundationDb = 16,
}

impl Protocol {
    /// The protocol of a kernel `enum l7_protocol` value; None for 0 (unknown)
    /// and values this build does not know.
    pub fn from_kernel(v: u8) -> Option<Protocol> {
        use Protocol::*;
        Some(match v {
            1 => Http,
            2 => Postgres,
            3 => Redis,
            4 => Memcached,
            5 => Mysql,
            6 => Mongo,
            7 => Kafka,
            8 => Cassandra,
            9 => Rabbitmq,
            10 => Nats,
            11 => Http2,
            12 => Dubbo2,
            13 => Dns,
            14 => Clickhouse,
            15 => Zookeeper,
            16 => FoundationDb,
            _ => return None,
        })
    }
}

/// Which end of the connection the traced process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// It called connect(): its writes are requests, its reads responses.
    Client,
    /// It accepted the connection: its reads are requests, its writes responses.
    Server,
}

/// Which way the bytes of a [`Chunk`] went, seen from the traced process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// write, writev, send*, sendmsg, sendmmsg (or a TLS library's write).
    Egress,
    /// read, readv, recv*, recvmsg (or a TLS library's read).
    Ingress,
}

/// One read or write on a connection, as the kernel reported it.
#[derive(Debug, Clone, Copy)]
pub struct Chunk<'a> {
    /// Kernel monotonic clock (bpf_ktime_get_ns): at the write's syscall entry,
    /// at the read's syscall exit.
    pub ts_ns: u64,
    pub direction: Direction,
    /// Bytes the syscall moved (write: requested; read: returned). May exceed
    /// `payload.len()`: only the first [`PAYLOAD_MAX`] were copied.
    pub size: u32,
    /// The first bytes of the data (of the first iovec for vectored calls).
    pub payload: &'a [u8],
}

/// Method label of the protocols coroot labels by method (RabbitMQ, NATS) and
/// the request kinds a session reports but that are not requests of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Method {
    #[default]
    Unknown,
    Produce,
    Consume,
}

impl Method {
    /// The `method` label value (coroot's names).
    pub fn label(self) -> &'static str {
        match self {
            Method::Unknown => "unknown",
            Method::Produce => "produce",
            Method::Consume => "consume",
        }
    }
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// HTTP/1.x or HTTP/2 response status code (gRPC: see [`Status::Grpc`]).
    Http(u16),
    /// A gRPC call: its `grpc-status` (0 is OK).
    Grpc(u8),
    /// Database and queue protocols: the server answered without an error.
    Ok,
    /// ... or with one.
    Failed,
    /// DNS: the response code (RCODE, 0 NOERROR, 3 NXDOMAIN ...).
    Dns(u8),
}

/// What a DNS response said, for `container_dns_requests_total` and `ip_to_fqdn`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsDetail {
    /// QTYPE of the question (1 A, 28 AAAA, ...).
    pub qtype: u16,
    /// The question's name, lower-cased, without the trailing dot.
    pub domain: Box<str>,
    /// A and AAAA records of the answer section.
    pub answers: Vec<std::net::IpAddr>,
}

/// One completed request: a request matched with its response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub protocol: Protocol,
    pub status: Status,
    /// Response time minus request time, from the kernel's clock; 0 when
    /// unknown (counted, but left out of latency histograms).
    pub duration_ns: u64,
    pub method: Method,
    /// DNS only.
    pub dns: Option<Box<DnsDetail>>,
    /// Kernel time of the read/write that carried the request (0 when unknown): the
    /// span's start, and how a session finds the request's text ([`detail`]).
    pub start_ns: u64,
    /// What a trace span shows of the request (method and path, statement, command),
    /// only when [`Config::capture`] is on; None otherwise, and when it was not seen.
    pub detail: Option<Box<Detail>>,
}

/// What a session could not use, for the `sonde_l7_*` self-metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Payloads that did not parse as the connection's protocol.
    pub parse_errors: u64,
    /// Responses with no request waiting for them (a request lost or never seen).
    pub unmatched_responses: u64,
    /// Requests dropped because too many were waiting for a response (bound).
    pub pending_overflow: u64,
    /// Chunks of a protocol this build has no parser for (counted, never guessed).
    pub unsupported_chunks: u64,
    /// Requests seen only partly (the 512-byte window cut them) whose count
    /// could not be proven, e.g. the tail of a Redis pipeline.
    pub unproven_requests: u64,
    /// Times the stream lost its place (a body or frame ran past the window
    /// with no length to skip it) and waited for a recognisable start again.
    pub resyncs: u64,
    /// HTTP/2: HPACK dynamic table size requests above the 64 KiB cap, and
    /// header blocks that could not be decoded (table possibly out of step).
    pub hpack_errors: u64,
    /// HTTP/2 streams reset (RST_STREAM) before any response.
    pub reset_streams: u64,
    /// HTTP requests left out by `--exclude-http-requests-by-path`.
    pub excluded: u64,
}

impl SessionStats {
    /// Adds `other`'s counters to these (every field: a new one must be added here).
    pub fn add(&mut self, other: &SessionStats) {
        let SessionStats {
            parse_errors,
            unmatched_responses,
            pending_overflow,
            unsupported_chunks,
            unproven_requests,
            resyncs,
            hpack_errors,
            reset_streams,
            excluded,
        } = other;
        self.parse_errors += parse_errors;
        self.unmatched_responses += unmatched_responses;
        self.pending_overflow += pending_overflow;
        self.unsupported_chunks += unsupported_chunks;
        self.unproven_requests += unproven_requests;
        self.resyncs += resyncs;
        self.hpack_errors += hpack_errors;
        self.reset_streams += reset_streams;
        self.excluded += excluded;
    }
}

// Issue 16's protocols: one parser per file, framing shared in `framer`
// and `lines`, one entry point (`Parser16`) for the session's dispatch.
mod amqp;
mod cassandra;
mod clickhouse;
mod dubbo2;
mod foundationdb;
mod framer;
mod kafka;
mod lines;
mod memcached;
mod mongo;
mod mysql;
mod nats;
mod parsers16;
#[cfg(test)]
mod testutil16;
mod zookeeper;
pub use parsers16::Parser16;
