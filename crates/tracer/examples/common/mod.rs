//! The loopback connect storm shared by the benchmark examples.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use sonde_tracer::conntrack::ConnectionTable;
use sonde_tracer::{EventStream, TracerConfig};

/// The default tracer settings, with the experiment knobs every storm example takes:
/// `SONDE_STORM_RING_BYTES` (ring buffer size) and `SONDE_STORM_MAX_CONNECTIONS` (size of
/// the kernel's connection map).
pub fn config_from_env() -> TracerConfig {
    let knob = |name: &str| std::env::var(name).ok().and_then(|s| s.parse::<u64>().ok());
    let mut config = TracerConfig::default();
    if let Some(bytes) = knob("SONDE_STORM_RING_BYTES") {
        config.ring_buffer_bytes = usize::try_from(bytes).unwrap_or(usize::MAX);
    }
    if let Some(n) = knob("SONDE_STORM_MAX_CONNECTIONS") {
        config.max_connections = u32::try_from(n).unwrap_or(u32::MAX);
    }
    config
}

/// Makes `n` connections to `addr` one after another (connect, read EOF);
/// returns connections per second.
pub fn storm(addr: SocketAddr, n: usize) -> f64 {
    let start = Instant::now();
    for _ in 0..n {
        let mut c = TcpStream::connect(addr).unwrap();
        // The server closes first, so TIME_WAIT stays on its side and the
        // client's ephemeral ports are reusable at once.
        let mut b = [0u8; 1];
        let _ = c.read(&mut b);
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// One storm round with what else happened on the machine meanwhile.
#[allow(dead_code)] // each example uses its own part
pub struct Round {
    /// Connections per second.
    pub rate: f64,
    /// Share of the machine's CPU time the hypervisor gave to others (steal).
    pub steal: f64,
    /// This process's CPU time (user + system, all threads) per connection, in us.
    pub cpu_us: f64,
}

/// [`storm`], with the round's CPU steal (from /proc/stat) and this process's CPU time.
#[allow(dead_code)]
pub fn measured_storm(addr: SocketAddr, n: usize) -> Round {
    let (steal0, total0) = cpu_ticks();
    let cpu0 = process_cpu();
    let rate = storm(addr, n);
    let cpu = process_cpu() - cpu0;
    let (steal1, total1) = cpu_ticks();
    let total = total1.saturating_sub(total0).max(1);
    Round {
        rate,
        steal: steal1.saturating_sub(steal0) as f64 / total as f64,
        cpu_us: cpu.as_secs_f64() * 1e6 / n as f64,
    }
}

/// (steal, all) clock ticks of the machine so far, from the first line of /proc/stat.
fn cpu_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    (
        fields.get(7).copied().unwrap_or(0),
        fields.iter().take(8).sum(),
    )
}

/// This process's CPU time so far (user + system, all threads).
pub fn process_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// A server thread that accepts and closes every connection.
pub fn server() -> SocketAddr {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let addr = l.local_addr().unwrap();
    thread::spawn(move || {
        for s in l.incoming() {
            drop(s);
        }
    });
    addr
}

/// What the agent's reader does, minus the registry: drains the ring into a
/// ConnectionTable until `stop`; returns the number of events read.
pub async fn drain(stream: &mut EventStream, stop: &AtomicBool) -> u64 {
    let mut table = ConnectionTable::new(131_072);
    let mut batch = Vec::new();
    let mut events = 0;
    while !stop.load(Ordering::Relaxed) {
        batch.clear();
        let _ =
            tokio::time::timeout(Duration::from_millis(200), stream.next_batch(&mut batch)).await;
        for e in &batch {
            table.apply(e);
        }
        events += batch.len() as u64;
    }
    events
}

/// Pairs whose rounds lost at least this share of CPU time to steal are left out of the
/// "quiet" figure: steal is time the hypervisor gave to other guests, so such a round
/// measured the neighbours, not the tracer.
const MAX_STEAL_PERCENT: f64 = 1.0;

/// One with/without pair, in percent.
#[allow(dead_code)]
pub struct Pair {
    loss: f64,
    cpu: f64,
    steal: f64,
}

/// Compares the two rounds of pair `p` (0-based) and prints the line.
#[allow(dead_code)]
pub fn compare(p: usize, without: &Round, with: &Round) -> Pair {
    let loss = (without.rate - with.rate) / without.rate * 100.0;
    let cpu = (with.cpu_us - without.cpu_us) / without.cpu_us * 100.0;
    let steal = without.steal.max(with.steal) * 100.0;
    eprintln!(
        "pair {}: {:.0} without, {:.0} with: {loss:.2}%; CPU {:.2} / {:.2} us per connection: {cpu:+.2}%; steal {steal:.1}%",
        p + 1,
        without.rate,
        with.rate,
        without.cpu_us,
        with.cpu_us
    );
    Pair { loss, cpu, steal }
}

/// Prints the throughput loss over all pairs and over the quiet ones, and the CPU increase.
#[allow(dead_code)]
pub fn summarize(what: &str, pairs: &[Pair], n: usize) {
    let all: Vec<_> = pairs.iter().map(|p| p.loss).collect();
    report(&format!("{what}, throughput loss, all pairs"), &all, n);
    let quiet: Vec<_> = pairs
        .iter()
        .filter(|p| p.steal < MAX_STEAL_PERCENT)
        .map(|p| p.loss)
        .collect();
    report(
        &format!("{what}, throughput loss, pairs with steal < {MAX_STEAL_PERCENT}%"),
        &quiet,
        n,
    );
    let cpu: Vec<_> = pairs.iter().map(|p| p.cpu).collect();
    report(
        &format!("{what}, CPU time per connection (storm + reader), increase"),
        &cpu,
        n,
    );
}

/// Mean with its 95 % interval (normal approximation), and the median with its 95 %
/// interval from order statistics (ranks n/2 -+ 1.96 sqrt(n)/2), which a few pairs hit by a
/// steal burst cannot drag.
fn report(what: &str, values: &[f64], n: usize) {
    if values.len() < 2 {
        println!("{what}: {} pairs, too few for a mean", values.len());
        return;
    }
    let k = values.len() as f64;
    let mean = values.iter().sum::<f64>() / k;
    let var = values.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (k - 1.0);
    let half = 1.96 * (var / k).sqrt();
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let spread = 1.96 * k.sqrt() / 2.0;
    let lo = ((k / 2.0 - spread).floor().max(0.0)) as usize;
    let hi = ((k / 2.0 + spread).ceil() as usize).min(sorted.len() - 1);
    println!(
        "{what}: {} pairs of {n} connections: mean {mean:.2}% (95% CI {:.2}% to {:.2}%), median {:.2}% (95% CI {:.2}% to {:.2}%)",
        values.len(),
        mean - half,
        mean + half,
        sorted[sorted.len() / 2],
        sorted[lo],
        sorted[hi]
    );
}
