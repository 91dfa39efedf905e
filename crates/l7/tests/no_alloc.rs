//! The HTTP/1, Postgres and Redis paths allocate nothing per chunk once a
//! session is warm (its pending queue grown): checked with a counting global
//! allocator over many request/response round trips.

use sonde_l7::{Chunk, Config, Direction, Protocol, Request, Role, Session};
#[path = "support/counting.rs"]
mod counting;

fn round_trips(p: Protocol, req: &[u8], resp: &[u8]) -> (u64, usize) {
    let config = Config::default();
    let mut s = Session::new(p, Role::Client);
    let mut out: Vec<Request> = Vec::with_capacity(4096);
    let mut run = |n: u64, out: &mut Vec<Request>| {
        for i in 0..n {
            let w = Chunk {
                ts_ns: 2 * i,
                direction: Direction::Egress,
                size: req.len() as u32,
                payload: req,
            };
            s.feed(&w, &config, out);
            let r = Chunk {
                ts_ns: 2 * i + 1,
                direction: Direction::Ingress,
                size: resp.len() as u32,
                payload: resp,
            };
            s.feed(&r, &config, out);
        }
    };
    run(10, &mut out); // warm up
    let allocs = counting::allocations_in(|| run(1000, &mut out));
    (allocs, out.len())
}

#[test]
fn steady_state_allocates_nothing() {
    let cases: [(Protocol, &[u8], &[u8]); 3] = [
        (
            Protocol::Http,
            b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        ),
        (
            Protocol::Postgres,
            b"Q\x00\x00\x00\x0dSELECT 1\x00",
            b"C\x00\x00\x00\x0dSELECT 1\x00Z\x00\x00\x00\x05I",
        ),
        (
            Protocol::Redis,
            b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n",
            b"$1\r\nv\r\n+PONG\r\n",
        ),
    ];
    for (p, req, resp) in cases {
        let (allocs, n) = round_trips(p, req, resp);
        assert!(n >= 1010, "{p:?}: {n} requests");
        assert_eq!(allocs, 0, "{p:?}: allocations in 1000 warm round trips");
    }
}
