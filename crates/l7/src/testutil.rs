//! Helpers for the parsers' unit tests: feeding byte strings the way the
//! kernel reports them, and a tiny xorshift for fuzz-style inputs.

use crate::{Chunk, Config, Direction, PAYLOAD_MAX, Protocol, Request, Role, Session};

/// Marsaglia's xorshift64: deterministic, dependency-free.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// A session plus what it produced.
pub struct Feeder {
    pub s: Session,
    pub out: Vec<Request>,
    pub config: Config,
}

impl Feeder {
    pub fn new(p: Protocol, r: Role) -> Feeder {
        Feeder {
            s: Session::new(p, r),
            out: Vec::new(),
            config: Config::default(),
        }
    }
    /// One read/write of `data` at time `ts`, cut to the kernel's window.
    pub fn feed(&mut self, ts: u64, d: Direction, data: &[u8]) {
        let vis = data.len().min(PAYLOAD_MAX);
        let c = Chunk {
            ts_ns: ts,
            direction: d,
            size: data.len() as u32,
            payload: &data[..vis],
        };
        self.s.feed(&c, &self.config, &mut self.out);
    }
    /// Client wrote / read.
    pub fn w(&mut self, ts: u64, data: &[u8]) {
        self.feed(ts, Direction::Egress, data)
    }
    pub fn r(&mut self, ts: u64, data: &[u8]) {
        self.feed(ts, Direction::Ingress, data)
    }
}
