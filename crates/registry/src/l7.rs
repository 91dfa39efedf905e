//! Per-container application-layer state: requests made (by protocol and destination),
//! requests served (by protocol), DNS lookups, and what DNS answers said (`ip_to_fqdn`).
//!
//! Pure: the registry task applies completed requests from the tracer's L7 engine
//! (crates/tracer/src/l7.rs, parsed by crates/l7); the scrape renders a copy. Everything is
//! bounded: destinations per container share [`crate::net::MAX_DESTINATIONS`]'s bound, DNS
//! domains per container are capped by `--max-fqdns-per-container` (beyond it: `~other`, as
//! coroot does), and the node-wide `ip_to_fqdn` map by [`MAX_IP_TO_FQDN`].

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use sonde_l7::{Method, Protocol, Request};

/// Most (protocol, destination, actual destination) series per container.
pub const MAX_L7_DESTINATIONS: usize = 4096;
/// Most (request type, domain, status) DNS series per container (the domain is already
/// capped by `--max-fqdns-per-container`).
const MAX_DNS_SERIES: usize = 4096;
/// Most addresses in the node-wide `ip_to_fqdn` map; the oldest answers go first.
pub const MAX_IP_TO_FQDN: usize = 16_384;
/// The label a domain beyond `--max-fqdns-per-container` is counted under (coroot's).
pub const FQDN_OVERFLOW: &str = "~other";

/// Histogram upper bounds in seconds (coroot's: the Prometheus client's default buckets).
pub const BUCKETS: &[f64] = sonde_l7::labels::BUCKETS;
const NB: usize = BUCKETS.len();

/// A latency histogram: per-bucket counts (not cumulative), sum and count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    pub buckets: [u64; NB],
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
    pub fn cumulative(&self) -> [(f64, u64); NB] {
        let mut out = [(0.0, 0); NB];
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

fn method_label(p: Protocol, m: Method) -> &'static str {
    if sonde_l7::labels::has_method_label(p) {
        m.label()
    } else {
        ""
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
    pub dns: HashMap<(Cow<'static, str>, Box<str>, &'static str), u64>,
    pub dns_latency: Histogram,
    /// Domains given their own label so far (bounded by `--max-fqdns-per-container`).
    pub fqdns: std::collections::HashSet<Box<str>>,
    /// Requests not counted because a bound was reached.
    pub dropped: u64,
    /// A process of the container has `COROOT_EBPF_TRACES=disabled`: nothing is counted.
    pub opted_out: bool,
    /// The container's live processes were asked for the opt-out (see state/net_apply.rs).
    pub opt_out_checked: bool,
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
        let method = method_label(p, request.method);
        // RabbitMQ and NATS messages: coroot-node-agent's kernel code leaves a message's
        // status unset, which renders as `unknown` (its Status 0); so do we (docs/l7-protocols.md).
        let status = if method.is_empty() {
            sonde_l7::labels::status_label(request.status)?
        } else {
            "unknown"
        };
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
        let detail = request.dns.as_deref()?;
        // coroot's rules: unnamed RCODEs and empty AAAA answers are not counted.
        if !sonde_l7::labels::dns_reported(request.status, detail) {
            return None;
        }
        let status = sonde_l7::labels::status_label(request.status)?;
        let kind = sonde_l7::labels::dns_type_label(detail.qtype);
        let fqdn: Box<str> = sonde_l7::labels::normalize_fqdn(&detail.domain, detail.qtype).into();
        let domain: Box<str> = if fqdn.is_empty() || self.fqdns.contains(&fqdn) {
            fqdn.clone()
        } else if self.fqdns.len() < max_fqdns {
            self.fqdns.insert(fqdn.clone());
            fqdn.clone()
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
        if fqdn.is_empty() || detail.answers.is_empty() {
            return None;
        }
        Some(
            detail
                .answers
                .iter()
                .map(|ip| (*ip, fqdn.clone()))
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
    use sonde_l7::{DnsDetail, Status};

    fn req(p: Protocol, status: Status, ns: u64) -> Request {
        Request {
            protocol: p,
            status,
            duration_ns: ns,
            method: Method::Unknown,
            dns: None,
            start_ns: 0,
            detail: None,
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

    #[test]
    fn messages_are_labelled_by_method_with_coroots_unknown_status() {
        let mut l = ContainerL7::default();
        let dst: SocketAddr = "10.0.0.9:5672".parse().unwrap();
        for (p, method) in [
            (Protocol::Rabbitmq, Method::Produce),
            (Protocol::Rabbitmq, Method::Consume),
            (Protocol::Rabbitmq, Method::Consume),
            (Protocol::Nats, Method::Produce),
        ] {
            let r = Request {
                method,
                ..req(p, Status::Ok, 0)
            };
            l.apply(&r, dst, dst, false, 50);
        }
        assert_eq!(
            l.outbound[&(Protocol::Rabbitmq, dst, dst)].by_status,
            vec![(("unknown", "produce"), 1), (("unknown", "consume"), 2)]
        );
        assert_eq!(
            l.outbound[&(Protocol::Nats, dst, dst)].by_status,
            vec![(("unknown", "produce"), 1)]
        );
    }

    fn dns(qtype: u16, domain: &str, rcode: u8, answers: &[&str]) -> Request {
        Request {
            protocol: Protocol::Dns,
            status: Status::Dns(rcode),
            duration_ns: 1_000,
            start_ns: 0,
            detail: None,
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
        assert_eq!(l.dns[&("TypeA".into(), "db.local".into(), "ok")], 1);
        assert_eq!(l.dns[&("TypeA".into(), "nope.local".into(), "nxdomain")], 1);
        assert_eq!(l.dns[&("TypeA".into(), FQDN_OVERFLOW.into(), "ok")], 1);
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
