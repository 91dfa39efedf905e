//! The agent's own `process_*` metrics, as every Prometheus exporter has them (the names and
//! meanings of the Go and Rust client libraries' process collectors): CPU, memory, file
//! descriptors, start time. Read from `/proc/self` at each scrape; with the node labels every
//! other self-metric carries, so the backend can join them to the node.

use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType};
use sonde_registry::NodeLabels;

/// One reading of the agent's process.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub cpu_seconds: f64,
    pub resident_bytes: f64,
    pub virtual_bytes: f64,
    pub open_fds: f64,
    pub max_fds: Option<f64>,
    pub start_time_seconds: Option<f64>,
    pub threads: f64,
}

/// The soft "Max open files" limit from `/proc/<pid>/limits` (None when "unlimited").
pub fn parse_max_fds(limits: &str) -> Option<f64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_ascii_whitespace()
        .next()?
        .parse::<f64>()
        .ok()
}

/// Reads the agent's own process. None when /proc/self/stat cannot be read (then the
/// process_* families are simply absent from the scrape).
pub fn read() -> Option<Reading> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let sonde_node::procfs::PidStat {
        cpu_ticks: ticks,
        threads,
        start_ticks,
        vsize_bytes: vsize,
        rss_pages,
    } = sonde_node::procfs::parse_pid_stat(&stat)?;
    // SAFETY: sysconf has no preconditions; it returns -1 for unknown names.
    let hz = match unsafe { libc::sysconf(libc::_SC_CLK_TCK) } {
        n if n > 0 => n as f64,
        _ => 100.0,
    };
    // SAFETY: as above.
    let page = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        n if n > 0 => n as f64,
        _ => 4096.0,
    };
    let open_fds = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as f64)
        .unwrap_or(0.0);
    let max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .as_deref()
        .and_then(parse_max_fds);
    let start_time_seconds = std::fs::read_to_string("/proc/stat")
        .ok()
        .as_deref()
        .and_then(sonde_node::procfs::parse_btime)
        .map(|btime| btime + start_ticks as f64 / hz);
    Some(Reading {
        cpu_seconds: ticks as f64 / hz,
        resident_bytes: rss_pages as f64 * page,
        virtual_bytes: vsize as f64,
        open_fds,
        max_fds,
        start_time_seconds,
        threads: threads as f64,
    })
}

/// Appends the process_* families for `reading` to `out`.
pub fn families(reading: &Reading, node: &NodeLabels, out: &mut Vec<MetricFamily>) {
    let mut add = |name: &str, help: &str, counter: bool, value: Option<f64>| {
        let Some(value) = value else { return };
        let mut metric = Metric::default();
        metric.set_label(vec![
            pair("machine_id", &node.machine_id),
            pair("system_uuid", &node.system_uuid),
        ]);
        let mut family = MetricFamily::default();
        if counter {
            let mut c = Counter::default();
            c.set_value(value);
            metric.set_counter(c);
            family.set_field_type(MetricType::COUNTER);
        } else {
            let mut g = Gauge::default();
            g.set_value(value);
            metric.set_gauge(g);
            family.set_field_type(MetricType::GAUGE);
        }
        family.set_name(name.to_owned());
        family.set_help(help.to_owned());
        family.set_metric(vec![metric]);
        out.push(family);
    };
    add(
        "process_cpu_seconds_total",
        "Total user and system CPU time spent in seconds.",
        true,
        Some(reading.cpu_seconds),
    );
    add(
        "process_resident_memory_bytes",
        "Resident memory size in bytes.",
        false,
        Some(reading.resident_bytes),
    );
    add(
        "process_virtual_memory_bytes",
        "Virtual memory size in bytes.",
        false,
        Some(reading.virtual_bytes),
    );
    add(
        "process_open_fds",
        "Number of open file descriptors.",
        false,
        Some(reading.open_fds),
    );
    add(
        "process_max_fds",
        "Maximum number of open file descriptors.",
        false,
        reading.max_fds,
    );
    add(
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds.",
        false,
        reading.start_time_seconds,
    );
    add(
        "process_threads",
        "Number of OS threads in the process.",
        false,
        Some(reading.threads),
    );
}

fn pair(name: &str, value: &str) -> LabelPair {
    let mut p = LabelPair::default();
    p.set_name(name.to_owned());
    p.set_value(value.to_owned());
    p
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn limits() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max open files            1048576              1048576              files     \n";
        assert_eq!(parse_max_fds(limits), Some(1048576.0));
        assert_eq!(
            parse_max_fds(
                "Max open files            unlimited            unlimited            files"
            ),
            None
        );
    }

    #[test]
    fn own_process_reads_and_renders() {
        let r = read().unwrap();
        assert!(r.resident_bytes > 0.0 && r.virtual_bytes >= r.resident_bytes);
        assert!(r.open_fds >= 3.0, "{r:?}");
        assert!(r.threads >= 1.0);
        let start = r.start_time_seconds.unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            start <= now + 1.0 && start > now - 86400.0 * 365.0,
            "{start}"
        );
        let mut out = Vec::new();
        families(&r, &NodeLabels::default(), &mut out);
        let names: Vec<&str> = out.iter().map(|f| f.name()).collect();
        assert!(names.contains(&"process_cpu_seconds_total"), "{names:?}");
        assert!(names.contains(&"process_open_fds"));
    }
}
