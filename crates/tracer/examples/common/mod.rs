//! The loopback connect storm shared by the benchmark examples.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use sonde_tracer::EventStream;
use sonde_tracer::conntrack::ConnectionTable;

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
