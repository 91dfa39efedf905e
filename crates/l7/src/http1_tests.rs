use crate::SessionStats;
use crate::testutil::{Feeder, Rng};
use crate::{Direction, Protocol, Role, Status};

fn statuses(f: &Feeder) -> Vec<u16> {
    f.out
        .iter()
        .map(|r| match r.status {
            Status::Http(c) => c,
            s => panic!("not an HTTP status: {s:?}"),
        })
        .collect()
}

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
const NF: &[u8] = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";

#[test]
fn client_request_response_and_latency() {
    let mut f = Feeder::new(Protocol::Http, Role::Client);
    f.w(1_000, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    f.r(4_500, OK);
    f.w(5_000, b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
    f.r(5_100, NF);
    assert_eq!(statuses(&f), vec![200, 404]);
    assert_eq!(f.out[0].duration_ns, 3_500);
    assert_eq!(f.out[1].duration_ns, 100);
    assert_eq!(f.out[0].protocol, Protocol::Http);
    assert_eq!(f.s.stats(), SessionStats::default());
}

#[test]
fn server_role_swaps_directions() {
    let mut f = Feeder::new(Protocol::Http, Role::Server);
    f.r(10, b"POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
    f.w(
        30,
        b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(statuses(&f), vec![500]);
    assert_eq!(f.out[0].duration_ns, 20);
}

#[test]
fn pipelined_requests_and_responses_in_one_read() {
    let mut f = Feeder::new(Protocol::Http, Role::Client);
    f.w(
        1,
        b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\nHEAD /3 HTTP/1.1\r\n\r\n",
    );
    let mut resp = Vec::new();
    resp.extend_from_slice(OK);
    resp.extend_from_slice(NF);
    resp.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\n"); // HEAD: no body
    f.r(2, &resp);
    f.w(3, b"GET /4 HTTP/1.1\r\n\r\n");
    f.r(4, b"HTTP/1.1 204 No Content\r\n\r\n");
    assert_eq!(statuses(&f), vec![200, 404, 200, 204]);
    assert_eq!(f.s.stats(), SessionStats::default());
}

#[test]
fn body_beyond_the_window_is_skipped_by_length() {
    let mut f = Feeder::new(Protocol::Http, Role::Client);
    let mut big = b"HTTP/1.1 200 OK\r\nContent-Length: 3000\r\n\r\n".to_vec();
    big.extend(std::iter::repeat_n(b'z', 3000));
    // The response arrives in reads of 1000 bytes: only 512 of each are seen.
    f.w(1, b"GET /big HTTP/1.1\r\n\r\n");
    for (i, part) in big.chunks(1000).enumerate() {
        f.r(2 + i as u64, part);
    }
    f.w(10, b"GET /small HTTP/1.1\r\n\r\n");
    f.r(11, NF);
    assert_eq!(statuses(&f), vec![200, 404]);
    assert_eq!(f.out[0].duration_ns, 1);
    assert_eq!(f.s.stats(), SessionStats::default());
}

fn chunked_body() -> Vec<u8> {
    let mut r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    r.extend_from_slice(b"5;ext=1\r\nhello\r\n");
    r.extend_from_slice(b"1A\r\n");
    r.extend(std::iter::repeat_n(b'q', 26));
    r.extend_from_slice(b"\r\n0\r\nX-Trailer: 1\r\n\r\n");
    r
}

#[test]
fn chunked_response_split_at_every_point() {
    let body = chunked_body();
    for cut in 1..body.len() {
        let mut f = Feeder::new(Protocol::Http, Role::Client);
        f.w(1, b"GET /c HTTP/1.1\r\n\r\nGET /d HTTP/1.1\r\n\r\n");
        f.r(2, &body[..cut]);
        f.r(3, &body[cut..]);
        f.r(4, NF);
        assert_eq!(statuses(&f), vec![200, 404], "cut at {cut}");
        assert_eq!(f.s.stats(), SessionStats::default(), "cut at {cut}");
    }
}

#[test]
fn request_headers_split_across_writes() {
    let req =
        b"POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nbodyGET /v HTTP/1.1\r\n\r\n";
    for cut in 1..req.len() {
        let mut f = Feeder::new(Protocol::Http, Role::Client);
        f.w(1, &req[..cut]);
        f.w(2, &req[cut..]);
        f.r(3, OK);
        f.r(4, NF);
        assert_eq!(statuses(&f), vec![200, 404], "cut at {cut}");
    }
}

#[test]
fn chunked_size_line_beyond_window_resyncs() {
    // A chunked body whose next size line is past the 512-byte window: the
    // response side loses its place, then recovers on the next status line.
    let mut resp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    resp.extend_from_slice(b"10\r\n0123456789abcdef\r\n");
    resp.extend(std::iter::repeat_n(b'-', 600)); // garbage stands in for more chunks
    let mut f = Feeder::new(Protocol::Http, Role::Client);
    f.w(1, b"GET /a HTTP/1.1\r\n\r\n");
    f.r(2, &resp);
    f.r(3, b"rest of the body that we cannot frame");
    f.w(4, b"GET /b HTTP/1.1\r\n\r\n");
    f.r(5, NF);
    assert_eq!(statuses(&f), vec![200, 404]);
    assert_eq!(f.s.stats().resyncs, 1);
}

#[test]
fn responses_lost_in_the_unseen_part_are_dropped_not_shifted() {
    // Four pipelined requests; the one read with all four responses is 2,400
    // bytes: only the first response is fully visible. Afterwards a fifth
    // request must match its own response, not a stale one.
    let mut f = Feeder::new(Protocol::Http, Role::Client);
    f.w(1, b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\nGET /3 HTTP/1.1\r\n\r\nGET /4 HTTP/1.1\r\n\r\n");
    let mut resp = Vec::new();
    resp.extend_from_slice(OK);
    for _ in 0..3 {
        resp.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 700\r\n\r\n");
        resp.extend(std::iter::repeat_n(b'b', 700));
    }
    f.r(2, &resp);
    f.w(3, b"GET /5 HTTP/1.1\r\n\r\n");
    f.r(7, NF);
    assert_eq!(statuses(&f), vec![200, 200, 404]);
    assert_eq!(f.out[2].duration_ns, 4);
    let st = f.s.stats();
    assert_eq!(st.resyncs, 1);
    assert_eq!(st.unproven_requests, 2);
}

#[test]
fn informational_and_until_close() {
    let mut f = Feeder::new(Protocol::Http, Role::Client);
    f.w(
        1,
        b"PUT /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n",
    );
    f.r(2, b"HTTP/1.1 100 Continue\r\n\r\n");
    f.w(3, b"ok");
    f.r(4, b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
    f.w(5, b"GET /y HTTP/1.0\r\n\r\n");
    f.r(
        6,
        b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nbody runs until close",
    );
    f.r(
        7,
        b" and more HTTP/1.1 200 inside the body is not a response",
    );
    assert_eq!(statuses(&f), vec![201, 200]);
    assert_eq!(
        f.out[0].duration_ns, 3,
        "from the request to the final response"
    );
    assert_eq!(f.s.stats().unmatched_responses, 0);
}

#[test]
fn excluded_paths_are_counted_not_reported() {
    let mut f = Feeder::new(Protocol::Http, Role::Client);
    f.config.exclude_http_paths = vec!["/health*".into()];
    f.w(1, b"GET /healthz HTTP/1.1\r\n\r\nGET /api HTTP/1.1\r\n\r\n");
    f.r(2, OK);
    f.r(3, NF);
    assert_eq!(statuses(&f), vec![404]);
    assert_eq!(f.s.stats().excluded, 1);
}

#[test]
fn websocket_upgrade_stops_parsing() {
    let mut f = Feeder::new(Protocol::Http, Role::Client);
    f.w(
        1,
        b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    );
    f.r(
        2,
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello",
    );
    f.w(3, b"\x81\x85abcdGET / HTTP/1.1\r\n\r\n");
    f.r(4, b"HTTP/1.1 200 OK\r\n\r\n");
    assert_eq!(statuses(&f), vec![101]);
    assert_eq!(f.s.protocol(), Protocol::Http);
    assert_eq!(f.s.stats().parse_errors, 0);
}

#[test]
fn garbage_is_counted_and_recovered_from() {
    let mut f = Feeder::new(Protocol::Http, Role::Client);
    f.w(1, b"\x00\x01garbage");
    f.r(2, b"not a response");
    f.w(3, b"GET / HTTP/1.1\r\n\r\n");
    f.r(4, OK);
    assert_eq!(statuses(&f), vec![200]);
    let st = f.s.stats();
    assert_eq!(st.parse_errors, 2);
    assert_eq!(st.unmatched_responses, 0);
}

#[test]
fn pending_queue_is_bounded() {
    let mut f = Feeder::new(Protocol::Http, Role::Client);
    for i in 0..200 {
        f.w(i, b"GET / HTTP/1.1\r\n\r\n");
    }
    assert_eq!(
        f.s.stats().pending_overflow,
        200 - crate::session::MAX_PENDING as u64
    );
}

#[test]
fn fuzz_never_panics() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let seeds: [&[u8]; 4] = [
        OK,
        NF,
        b"GET / HTTP/1.1\r\nContent-Length: 10\r\n\r\n",
        &chunked_body(),
    ];
    for _ in 0..3000 {
        let mut f = Feeder::new(
            Protocol::Http,
            if rng.below(2) == 0 {
                Role::Client
            } else {
                Role::Server
            },
        );
        for _ in 0..rng.below(8) {
            let mut b = match rng.below(3) {
                0 => {
                    let n = rng.below(700);
                    rng.bytes(n)
                }
                _ => seeds[rng.below(seeds.len())].to_vec(),
            };
            // Mutate and truncate.
            for _ in 0..rng.below(4) {
                if !b.is_empty() {
                    let i = rng.below(b.len());
                    b[i] = rng.next() as u8;
                }
            }
            b.truncate(rng.below(b.len() + 1));
            let d = if rng.below(2) == 0 {
                Direction::Egress
            } else {
                Direction::Ingress
            };
            f.feed(rng.next() % 1000, d, &b);
        }
    }
}

#[test]
fn pipeline_past_the_window_is_proven_by_responses() {
    let mut w = Vec::new();
    for i in 0..20 {
        w.extend_from_slice(format!("GET /item/{i:04} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes());
    }
    assert!(w.len() > 700);
    let mut f = Feeder::new(Protocol::Http, Role::Client);
    f.w(10, &w);
    let mut r = Vec::new();
    for i in 0..20 {
        r.extend_from_slice(if i == 15 { NF } else { OK });
    }
    for part in r.chunks(100) {
        f.r(20, part);
    }
    // The next exchange matches its own request, not the marker.
    f.w(30, b"GET /next HTTP/1.1\r\n\r\n");
    f.r(33, b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n");
    let st = statuses(&f);
    assert_eq!(st.len(), 21);
    assert_eq!(st.iter().filter(|&&c| c == 404).count(), 1);
    assert_eq!(st[15], 404);
    assert_eq!(st[20], 500);
    assert!(f.out[..20].iter().all(|r| r.duration_ns == 10));
    assert_eq!(f.out[20].duration_ns, 3);
    let s = f.s.stats();
    assert_eq!(
        (s.resyncs, s.unmatched_responses, s.unproven_requests),
        (1, 0, 0)
    );
}

#[test]
fn request_headers_past_the_window_do_not_shift_matching() {
    let mut big = b"GET /with-cookies HTTP/1.1\r\nCookie: ".to_vec();
    big.extend(std::iter::repeat_n(b'c', 900));
    big.extend_from_slice(b"\r\nContent-Length: 3\r\n\r\nabc");
    let mut f = Feeder::new(Protocol::Http, Role::Server);
    f.r(1, &big);
    f.w(2, NF);
    f.r(3, b"GET /a HTTP/1.1\r\n\r\n");
    f.w(5, OK);
    assert_eq!(statuses(&f), vec![404, 200]);
    assert_eq!(f.out[1].duration_ns, 2);
    assert_eq!(f.s.stats().unmatched_responses, 0);
}
