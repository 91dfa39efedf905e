//! What L7 clients really saw, and the checks of the agent's request counters and latency
//! histograms against it (tests/tests/agent_l7.rs).
//!
//! Counts are exact. Latencies cannot be known exactly from user space, but every request's
//! latency as the kernel sees it (request written -> response read) lies inside the interval
//! its client measured around it: so each histogram bucket `le` must hold at least the requests
//! whose client-measured bound is <= le, and the histogram's sum must not exceed the sum of the
//! clients' measured times (the "budget").

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::Scrape;

/// One L7 family's metric names: the counter and the histogram's base name.
#[derive(Debug, Clone, Copy)]
pub struct Family {
    pub total: &'static str,
    pub histogram: &'static str,
}

pub const HTTP_OUT: Family = Family {
    total: "container_http_requests_total",
    histogram: "container_http_requests_duration_seconds_total",
};
pub const HTTP_IN: Family = Family {
    total: "container_http_inbound_requests_total",
    histogram: "container_http_inbound_requests_duration_seconds_total",
};
pub const POSTGRES_OUT: Family = Family {
    total: "container_postgres_queries_total",
    histogram: "container_postgres_queries_duration_seconds_total",
};
pub const POSTGRES_IN: Family = Family {
    total: "container_postgres_inbound_queries_total",
    histogram: "container_postgres_inbound_queries_duration_seconds_total",
};
pub const REDIS_OUT: Family = Family {
    total: "container_redis_queries_total",
    histogram: "container_redis_queries_duration_seconds_total",
};
pub const REDIS_IN: Family = Family {
    total: "container_redis_inbound_queries_total",
    histogram: "container_redis_inbound_queries_duration_seconds_total",
};
pub const DNS_OUT: Family = Family {
    total: "container_dns_requests_total",
    histogram: "container_dns_requests_duration_seconds_total",
};

/// coroot's HTTP status label (ebpftracer/l7 `Status.Http()`): the class of the code.
pub fn http_class(code: u16) -> &'static str {
    match code {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "unknown",
    }
}

/// Requests seen by clients on one destination (or served by one server).
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// Requests by status label.
    pub statuses: BTreeMap<String, u64>,
    /// Each request's upper bound of its latency, seconds.
    pub bounds: Vec<f64>,
    /// Upper bound of the sum of all latencies, seconds.
    pub budget: f64,
}

impl Seen {
    pub fn total(&self) -> u64 {
        self.statuses.values().sum()
    }

    /// A request its client timed on its own.
    pub fn measured(&mut self, status: &str, took: Duration) {
        *self.statuses.entry(status.to_owned()).or_default() += 1;
        self.bounds.push(took.as_secs_f64());
        self.budget += took.as_secs_f64();
    }

    /// Requests of one process timed only as a whole (`wall`): made one after the other
    /// (`sequential`), their latencies sum to at most `wall`; else (pipelined, multiplexed)
    /// each is at most `wall`.
    pub fn process(&mut self, statuses: &[&str], wall: Duration, sequential: bool) {
        for s in statuses {
            *self.statuses.entry((*s).to_owned()).or_default() += 1;
            self.bounds.push(wall.as_secs_f64());
        }
        self.budget += if sequential {
            wall.as_secs_f64()
        } else {
            wall.as_secs_f64() * statuses.len() as f64
        };
    }

    /// Everything `other` saw too (e.g. several clients' requests as one server served them).
    pub fn merge(&mut self, other: &Seen) {
        for (k, v) in &other.statuses {
            *self.statuses.entry(k.clone()).or_default() += v;
        }
        self.bounds.extend_from_slice(&other.bounds);
        self.budget += other.budget;
    }
}

/// The sum of every sample of `name` whose labels include `labels`.
pub fn sum(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    // (+ 0.0: an empty f64 sum is -0, which reads oddly in a failure message.)
    s.find(name, labels).map(|x| x.value).sum::<f64>() + 0.0
}

/// One expectation: a family's series with `labels` (container_id, destination ...) against
/// what the clients saw, with `status_label` the label that carries the status.
pub struct Expect<'a> {
    pub what: &'a str,
    pub family: Family,
    pub labels: Vec<(&'a str, &'a str)>,
    pub seen: &'a Seen,
}

impl Expect<'_> {
    /// Whether the counter has reached the expected total (what to wait for).
    pub fn reached(&self, s: &Scrape) -> bool {
        sum(s, self.family.total, &self.labels) >= self.seen.total() as f64
    }

    /// Every mismatch between the scrape and the expectation, as readable lines.
    pub fn check(&self, s: &Scrape, errors: &mut Vec<String>) {
        let what = self.what;
        let f = self.family;
        let total = self.seen.total() as f64;
        for (status, n) in &self.seen.statuses {
            let mut l = self.labels.clone();
            l.push(("status", status));
            let got = sum(s, f.total, &l);
            if got != *n as f64 {
                errors.push(format!(
                    "{what}: {}{{status=\"{status}\"}} = {got}, clients saw {n}",
                    f.total
                ));
            }
        }
        for sample in s.find(f.total, &self.labels) {
            let status = sample.labels.get("status").map(String::as_str);
            if !status.is_some_and(|st| self.seen.statuses.contains_key(st)) && sample.value != 0.0
            {
                errors.push(format!(
                    "{what}: unexpected series {} {:?} = {}",
                    f.total, sample.labels, sample.value
                ));
            }
        }
        let count = sum(s, &format!("{}_count", f.histogram), &self.labels);
        if count != total {
            errors.push(format!(
                "{what}: {}_count = {count}, clients saw {total} requests",
                f.histogram
            ));
        }
        let lat = sum(s, &format!("{}_sum", f.histogram), &self.labels);
        if total > 0.0 && !(lat > 0.0 && lat <= self.seen.budget + 1e-6) {
            errors.push(format!(
                "{what}: {}_sum = {lat}s, outside (0, {:.6}s] (the clients' own measured time)",
                f.histogram, self.seen.budget
            ));
        }
        let bucket = format!("{}_bucket", f.histogram);
        let mut buckets = 0;
        for b in s.find(&bucket, &self.labels) {
            buckets += 1;
            let le_label = b.labels.get("le").map(String::as_str).unwrap_or("");
            let le: f64 = match b.labels.get("le").map(String::as_str) {
                Some("+Inf") => f64::INFINITY,
                Some(v) => v.parse().unwrap_or(f64::NAN),
                None => f64::NAN,
            };
            let at_least = self.seen.bounds.iter().filter(|&&x| x <= le).count() as f64;
            if b.value < at_least || b.value > total {
                errors.push(format!(
                    "{what}: {bucket}{{le=\"{le_label}\"}} = {}, must be in [{at_least}, {total}] (requests whose client-measured time is <= le)",
                    b.value
                ));
            }
        }
        if total > 0.0 && buckets == 0 {
            errors.push(format!("{what}: no {bucket} series"));
        }
    }
}

/// Checks every expectation; panics with all mismatches and the scrape's lines about the
/// test's containers, so one run shows everything that is wrong.
pub fn assert_all(s: &Scrape, expects: &[Expect], containers: &[&str], agent_log: &str) {
    let mut errors = Vec::new();
    for e in expects {
        e.check(s, &mut errors);
    }
    report(s, errors, containers, agent_log);
}

/// Panics with `errors` (if any), the scrape's lines about `containers`, and the agent log.
pub fn report(s: &Scrape, errors: Vec<String>, containers: &[&str], agent_log: &str) {
    if errors.is_empty() {
        return;
    }
    let mut msg = format!("{} mismatches:\n", errors.len());
    for e in &errors {
        let _ = writeln!(msg, "  - {e}");
    }
    msg.push_str("--- L7 series of the test's containers ---\n");
    for line in s.text.lines() {
        if containers.iter().any(|c| line.contains(c))
            && (line.contains("_requests") || line.contains("_queries"))
        {
            let _ = writeln!(msg, "{line}");
        }
    }
    for line in s.text.lines() {
        if line.starts_with("ip_to_fqdn")
            || line.starts_with("sonde_ebpf_events_lost_total")
            || line.starts_with("sonde_l7")
            || line.starts_with("sonde_subsystem_up")
        {
            let _ = writeln!(msg, "{line}");
        }
    }
    let tail: Vec<&str> = agent_log.lines().rev().take(40).collect();
    msg.push_str("--- agent log (last lines) ---\n");
    for l in tail.iter().rev() {
        let _ = writeln!(msg, "{l}");
    }
    panic!("{msg}");
}
