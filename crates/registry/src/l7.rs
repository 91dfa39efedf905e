//! Per-container application-layer state: requests made (by protocol and destination),
//! requests served (by protocol), DNS lookups, and what DNS answers said (`ip_to_fqdn`).
//!
//! Pure: the registry task applies completed requests from the tracer's L7 engine
//! (crates/tracer/src/l7.rs, parsed by crates/l7); the scrape renders a copy. Everything is
//! bounded: destinations per container share [`crate::net::MAX_DESTINATIONS`]'s bound, DNS
//! domains per container are capped by `--max-fqdns-per-container` (beyond it: `~other`, as
//! coroot does), and the node-wide `ip_to_fqdn` map by [`MAX_IP_TO_FQDN`].

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use sonde_l7::{Method, Protocol, Request, Status};

/// Most (protocol, destination, actual destination) series per container.
pub const MAX_L7_DESTINATIONS: usize = 4096;
/// Most (request type, domain, status) DNS series per container (the domain is already
/// capped by `--max-fqdns-per-container`).
const MAX_DNS_SERIES: usize = 4096;
/// Most addresses in the node-wide `ip_to_fqdn` map; the oldest answers go first.
pub const MAX_IP_TO_FQDN: usize = 16_384;
/// The label a domain beyond `--max-fqdns-per-container` is counted under (coroot's).
pub const FQDN_OVERFLOW: &str = "~other";

/// Histogram upper bounds in seconds: the Prometheus client's default buckets, which
/// coroot-node-agent's L7 histograms use.
pub const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A latency histogram: per-bucket counts (not cumulative), sum and count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    pub buckets: [u64; BUCKETS.len()],
    pub sum: f64,
    pub count: u64,
}

impl Histogram {
    pub fn observe(&mut self, seconds: f64) {
        self.sum += seconds;
        self.count += 1;
        if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
            self.buckets[i] += 1;
        }
    }

    /// (upper bound, cumulative count) pairs, as the exposition format wants them.
    pub fn cumulative(&self) -> [(f64, u64); BUCKETS.len()] {
        let mut out = [(0.0, 0); BUCKETS.len()];
        let mut acc = 0;
        for (i, (b, n)) in BUCKETS.iter().zip(self.buckets).enumerate() {
            acc += n;
            out[i] = (*b, acc);
        }
        out
    }
}

/// Requests of one series: counts by (status, method) label and the latency histogram.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestStats {
    /// ((status label, method label), count). A handful of entries: a Vec beats a map.
    pub by_status: Vec<((&'static str, &'static str), u64)>,
    pub latency: Histogram,
}

impl RequestStats {
    fn observe(&mut self, status: &'static str, method: &'static str, duration_ns: u64) {
        match self
            .by_status
            .iter_mut()
            .find(|((s, m), _)| *s == status && *m == method)
        {
            Some((_, n)) => *n += 1,
            None => self.by_status.push(((status, method), 1)),
        }
        // A request of unknown duration is counted, not observed (as coroot does).
        if duration_ns > 0 {
            self.latency.observe(duration_ns as f64 / 1e9);
        }
    }
}

/// Metric family of a protocol: HTTP/2 (and gRPC) requests are HTTP requests.
pub fn family(p: Protocol) -> Protocol {
    if p == Protocol::Http2 {
        Protocol::Http
    } else {
        p
    }
}

/// The `status` label of a request, as coroot-node-agent renders it.
pub fn status_label(s: Status) -> &'static str {
    match s {
        Status::Http(code) => match code {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            500..=599 => "5xx",
            _ => "unknown",
        },
        // A gRPC call that failed is a server error to an HTTP view of it.
        Status::Grpc(0) => "2xx",
        Status::Grpc(_) => "5xx",
        Status::Ok => "ok",
        Status::Failed => "failed",
        Status::Dns(code) => dns_status_label(code),
    }
}

/// DNS response codes as coroot names them (`Status.DNS()`); others are not counted.
pub fn dns_status_label(rcode: u8) -> &'static str {
    match rcode {
        0 => "ok",
        1 => "format_error",
        2 => "servfail",
        3 => "nxdomain",
        4 => "not_implemented",
        5 => "refused",
        _ => "",
    }
}

/// DNS request types as coroot labels them (miekg/dns's `Type.String()` with "Type").
pub fn dns_type_label(qtype: u16) -> &'static str {
    match qtype {
        1 => "TypeA",
        2 => "TypeNS",
        5 => "TypeCNAME",
        6 => "TypeSOA",
        12 => "TypePTR",
        15 => "TypeMX",
        16 => "TypeTXT",
        28 => "TypeAAAA",
        33 => "TypeSRV",
        65 => "TypeHTTPS",
        255 => "TypeANY",
        _ => "",
    }
}

fn method_label(p: Protocol, m: Method) -> &'static str {
    match p {
        Protocol::Rabbitmq | Protocol::Nats => m.label(),
        _ => "",
    }
}

/// The application-layer state of one container.
#[derive(Debug, Clone, Default)]
pub struct ContainerL7 {
    /// Requests made: (protocol family, destination, actual destination).
    pub outbound: HashMap<(Protocol, SocketAddr, SocketAddr), RequestStats>,
    /// Requests served, by protocol family.
    pub inbound: HashMap<Protocol, RequestStats>,
    /// DNS lookups: (request type, domain or `~other`, status) -> count.
    pub dns: HashMap<(&'static str, Box<str>, &'static str), u64>,
    pub dns_latency: Histogram,
    /// Domains given their own label so far (bounded by `--max-fqdns-per-container`).
    pub fqdns: std::collections::HashSet<Box<str>>,
    /// Requests not counted because a bound was reached.
    pub dropped: u64,
    /// A process of the container has `COROOT_EBPF_TRACES=disabled`: nothing is counted.
    pub opted_out: bool,
}

/// What a DNS answer taught: addresses and the name they answer for.
pub type Answers = Vec<(IpAddr, Box<str>)>;

impl ContainerL7 {
    /// Counts a request this container made to `dst` (really `actual`), or, `inbound`, one it
    /// served. Returns what a DNS answer said, for the node-wide `ip_to_fqdn`.
    pub fn apply(
        &mut self,
        request: &Request,
        dst: SocketAddr,
        actual: SocketAddr,
        inbound: bool,
        max_fqdns: usize,
    ) -> Option<Answers> {
        let p = family(request.protocol);
        if p == Protocol::Dns {
            return if inbound {
                None
            } else {
                self.apply_dns(request, max_fqdns)
            };
        }
        let status = status_label(request.status);
        let method = method_label(p, request.method);
        let stats = if inbound {
            self.inbound.entry(p).or_default()
        } else {
            let key = (p, dst, actual);
            if self.outbound.len() >= MAX_L7_DESTINATIONS && !self.outbound.contains_key(&key) {
                self.dropped += 1;
                return None;
            }
            self.outbound.entry(key).or_default()
        };
        stats.observe(status, method, request.duration_ns);
        None
    }

    fn apply_dns(&mut self, request: &Request, max_fqdns: usize) -> Option<Answers> {
        let Status::Dns(rcode) = request.status else {
            return None;
        };
        let status = dns_status_label(rcode);
        let detail = request.dns.as_deref()?;
        let kind = dns_type_label(detail.qtype);
        if status.is_empty() || kind.is_empty() {
            return None;
        }
        // As coroot: an empty AAAA answer rides along an A lookup and adds nothing.
        if detail.qtype == 28 && rcode == 0 && detail.answers.is_empty() {
            return None;
        }
        let domain: Box<str> = if detail.domain.is_empty() || self.fqdns.contains(&detail.domain) {
            detail.domain.clone()
        } else if self.fqdns.len() < max_fqdns {
            self.fqdns.insert(detail.domain.clone());
            detail.domain.clone()
        } else {
            FQDN_OVERFLOW.into()
        };
        let key = (kind, domain, status);
        if self.dns.len() >= MAX_DNS_SERIES && !self.dns.contains_key(&key) {
            self.dropped += 1;
        } else {
            *self.dns.entry(key).or_default() += 1;
        }
        if request.duration_ns > 0 {
            self.dns_latency.observe(request.duration_ns as f64 / 1e9);
        }
        if detail.domain.is_empty() || detail.answers.is_empty() {
            return None;
        }
        Some(
            detail
                .answers
                .iter()
                .map(|ip| (*ip, detail.domain.clone()))
                .collect(),
        )
    }
}

/// The node-wide map of addresses to the names DNS answers gave them (`ip_to_fqdn`),
/// bounded: when full, the address answered longest ago goes.
#[derive(Debug, Default)]
pub struct IpToFqdn {
    map: HashMap<IpAddr, (Box<str>, u64)>,
    tick: u64,
}

impl IpToFqdn {
    pub fn learn(&mut self, answers: Answers) {
        for (ip, name) in answers {
            self.tick += 1;
            if self.map.len() >= MAX_IP_TO_FQDN
                && !self.map.contains_key(&ip)
                && let Some(oldest) = self
                    .map
                    .iter()
                    .min_by_key(|(_, (_, t))| *t)
                    .map(|(k, _)| *k)
            {
                self.map.remove(&oldest);
            }
            self.map.insert(ip, (name, self.tick));
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&IpAddr, &str)> {
        self.map.iter().map(|(ip, (name, _))| (ip, &**name))
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use sonde_l7::DnsDetail;

    fn req(p: Protocol, status: Status, ns: u64) -> Request {
        Request {
            protocol: p,
            status,
            duration_ns: ns,
            method: Method::Unknown,
            dns: None,
        }
    }

    #[test]
    fn http_and_http2_share_a_series_by_status_class() {
        let mut l = ContainerL7::default();
        let dst: SocketAddr = "10.0.0.1:80".parse().unwrap();
        l.apply(
            &req(Protocol::Http, Status::Http(200), 2_000_000),
            dst,
            dst,
            false,
            50,
        );
        l.apply(
            &req(Protocol::Http2, Status::Http(204), 3_000_000),
            dst,
            dst,
            false,
            50,
        );
        l.apply(
            &req(Protocol::Http, Status::Http(503), 0),
            dst,
            dst,
            false,
            50,
        );
        l.apply(
            &req(Protocol::Http2, Status::Grpc(13), 1_000_000),
            dst,
            dst,
            false,
            50,
        );
        let s = &l.outbound[&(Protocol::Http, dst, dst)];
        assert_eq!(s.by_status, vec![(("2xx", ""), 2), (("5xx", ""), 2)]);
        // The zero-duration request is counted but not observed.
        assert_eq!(s.latency.count, 3);
        assert!((s.latency.sum - 0.006).abs() < 1e-12);
        assert_eq!(s.latency.cumulative()[0], (0.005, 3));
    }

    #[test]
    fn inbound_requests_are_per_protocol() {
        let mut l = ContainerL7::default();
        let any: SocketAddr = "0.0.0.0:0".parse().unwrap();
        l.apply(
            &req(Protocol::Postgres, Status::Failed, 1),
            any,
            any,
            true,
            50,
        );
        l.apply(&req(Protocol::Postgres, Status::Ok, 1), any, any, true, 50);
        assert_eq!(
            l.inbound[&Protocol::Postgres].by_status,
            vec![(("failed", ""), 1), (("ok", ""), 1)]
        );
        assert!(l.outbound.is_empty());
    }

    fn dns(qtype: u16, domain: &str, rcode: u8, answers: &[&str]) -> Request {
        Request {
            protocol: Protocol::Dns,
            status: Status::Dns(rcode),
            duration_ns: 1_000,
            method: Method::Unknown,
            dns: Some(Box::new(DnsDetail {
                qtype,
                domain: domain.into(),
                answers: answers.iter().map(|a| a.parse().unwrap()).collect(),
            })),
        }
    }

    #[test]
    fn dns_lookups_by_type_domain_status_with_a_domain_cap() {
        let mut l = ContainerL7::default();
        let any: SocketAddr = "0.0.0.0:0".parse().unwrap();
        let got = l.apply(&dns(1, "db.local", 0, &["10.0.0.5"]), any, any, false, 2);
        assert_eq!(
            got.unwrap(),
            vec![("10.0.0.5".parse().unwrap(), "db.local".into())]
        );
        l.apply(&dns(1, "nope.local", 3, &[]), any, any, false, 2);
        // Empty AAAA answers are not counted (coroot).
        l.apply(&dns(28, "db.local", 0, &[]), any, any, false, 2);
        // A third domain is over the cap of 2.
        l.apply(&dns(1, "third.local", 0, &["10.0.0.9"]), any, any, false, 2);
        assert_eq!(l.dns[&("TypeA", "db.local".into(), "ok")], 1);
        assert_eq!(l.dns[&("TypeA", "nope.local".into(), "nxdomain")], 1);
        assert_eq!(l.dns[&("TypeA", FQDN_OVERFLOW.into(), "ok")], 1);
        assert_eq!(l.dns.len(), 3);
        assert_eq!(l.dns_latency.count, 3);
    }

    #[test]
    fn ip_to_fqdn_is_bounded() {
        let mut m = IpToFqdn::default();
        for i in 0..(MAX_IP_TO_FQDN as u32 + 10) {
            m.learn(vec![(IpAddr::from(i.to_be_bytes()), "x".into())]);
        }
        assert_eq!(m.len(), MAX_IP_TO_FQDN);
    }
}
