//! HTTP/2 frames built by hand after RFC 9113, header blocks from RFC 7541
//! Appendix C (C.4 requests with Huffman, C.6 responses with a dynamic table).

use super::*;
use crate::testutil::{Feeder, Rng};
use crate::{Direction, Role, SessionStats};

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn frame(ty: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    f.push(ty);
    f.push(flags);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn settings(table_size: Option<u32>) -> Vec<u8> {
    let mut p = Vec::new();
    if let Some(v) = table_size {
        p.extend_from_slice(&1u16.to_be_bytes());
        p.extend_from_slice(&v.to_be_bytes());
    }
    p.extend_from_slice(&3u16.to_be_bytes());
    p.extend_from_slice(&100u32.to_be_bytes());
    frame(SETTINGS, 0, 0, &p)
}

const C41: &str = "828684418cf1e3c2e5f23a6ba0ab90f4ff";
const C42: &str = "828684be5886a8eb10649cbf";
const C43: &str = "828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf";
const S200: &[u8] = &[0x88];
const S404: &[u8] = &[0x8d];
const S500: &[u8] = &[0x8e];

fn literal(name: &[u8], value: &[u8]) -> Vec<u8> {
    let mut b = vec![0x00, name.len() as u8];
    b.extend_from_slice(name);
    b.push(value.len() as u8);
    b.extend_from_slice(value);
    b
}

/// POST <path> with content-type application/grpc (name from the static table).
fn grpc_request(path: &str) -> Vec<u8> {
    let mut b = vec![0x83, 0x86]; // :method POST, :scheme http
    b.push(0x04); // :path, literal without indexing
    b.push(path.len() as u8);
    b.extend_from_slice(path.as_bytes());
    b.push(0x5f); // content-type (static 31), incremental indexing
    b.push(16);
    b.extend_from_slice(b"application/grpc");
    b
}

fn codes(f: &Feeder) -> Vec<Status> {
    f.out.iter().map(|r| r.status).collect()
}

fn client_writes() -> Vec<u8> {
    let mut w = H2_PREFACE.to_vec();
    w.extend(settings(None));
    w.extend(frame(HEADERS, END_STREAM | END_HEADERS, 1, &hex(C41)));
    w.extend(frame(HEADERS, END_STREAM | END_HEADERS, 3, &hex(C42)));
    w.extend(frame(HEADERS, END_STREAM | END_HEADERS, 5, &hex(C43)));
    w
}

fn server_writes() -> Vec<u8> {
    let mut r = settings(Some(8192));
    r.extend(frame(SETTINGS, ACK, 0, &[]));
    r.extend(frame(HEADERS, END_HEADERS, 3, S404));
    r.extend(frame(DATA, END_STREAM, 3, b"not found"));
    r.extend(frame(HEADERS, END_HEADERS | END_STREAM, 5, S500));
    r.extend(frame(HEADERS, END_HEADERS, 1, S200));
    r.extend(frame(DATA, 0, 1, &[b'x'; 100]));
    r.extend(frame(DATA, END_STREAM, 1, b""));
    r
}

#[test]
fn streams_out_of_order() {
    let mut f = Feeder::new(Protocol::Http2, Role::Client);
    f.w(10, &client_writes());
    f.r(20, &server_writes());
    assert_eq!(
        codes(&f),
        vec![Status::Http(404), Status::Http(500), Status::Http(200)]
    );
    assert!(
        f.out
            .iter()
            .all(|r| r.duration_ns == 10 && r.protocol == Protocol::Http2)
    );
    assert_eq!(f.s.stats(), SessionStats::default());
}

#[test]
fn split_into_small_pieces() {
    for piece in [1, 2, 5, 9, 10, 33] {
        for role in [Role::Client, Role::Server] {
            let mut f = Feeder::new(Protocol::Http2, role);
            let (req_dir, resp_dir) = match role {
                Role::Client => (Direction::Egress, Direction::Ingress),
                Role::Server => (Direction::Ingress, Direction::Egress),
            };
            for p in client_writes().chunks(piece) {
                f.feed(10, req_dir, p);
            }
            for p in server_writes().chunks(piece) {
                f.feed(20, resp_dir, p);
            }
            assert_eq!(
                codes(&f),
                vec![Status::Http(404), Status::Http(500), Status::Http(200)],
                "piece {piece} {role:?}"
            );
            assert_eq!(f.s.stats(), SessionStats::default(), "piece {piece}");
        }
    }
}

#[test]
fn grpc_status_from_trailers_and_trailers_only() {
    let mut f = Feeder::new(Protocol::Http2, Role::Client);
    let mut w = H2_PREFACE.to_vec();
    w.extend(frame(
        HEADERS,
        END_HEADERS,
        1,
        &grpc_request("/pkg.Svc/Get"),
    ));
    w.extend(frame(DATA, END_STREAM, 1, &[0, 0, 0, 0, 0]));
    f.w(100, &w);
    f.w(
        101,
        &frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            3,
            &grpc_request("/pkg.Svc/Down"),
        ),
    );
    // Stream 1: headers, data, then trailers with grpc-status 5 in a later read.
    f.r(130, &frame(HEADERS, END_HEADERS, 1, S200));
    f.r(140, &frame(DATA, 0, 1, &[0, 0, 0, 0, 0]));
    assert!(f.out.is_empty(), "a gRPC call waits for its status");
    let mut trailers = literal(b"grpc-status", b"5");
    trailers.extend(literal(b"grpc-message", b"not found"));
    f.r(150, &frame(HEADERS, END_HEADERS | END_STREAM, 1, &trailers));
    // Stream 3: trailers-only (":status 200" + grpc-status 14, END_STREAM).
    let mut only = S200.to_vec();
    only.extend(literal(b"grpc-status", b"14"));
    f.r(160, &frame(HEADERS, END_HEADERS | END_STREAM, 3, &only));
    assert_eq!(codes(&f), vec![Status::Grpc(5), Status::Grpc(14)]);
    assert_eq!(f.out[0].duration_ns, 30, "from request to response headers");
    assert_eq!(f.out[1].duration_ns, 59);
    assert_eq!(f.s.stats(), SessionStats::default());
}

#[test]
fn continuation_padding_priority() {
    let block = hex(C41);
    let mut f = Feeder::new(Protocol::Http2, Role::Client);
    // HEADERS PADDED|PRIORITY carrying the first 5 bytes, CONTINUATION the rest.
    let mut p = vec![3u8]; // pad length
    p.extend_from_slice(&[0, 0, 0, 0, 16]); // priority
    p.extend_from_slice(&block[..5]);
    p.extend_from_slice(&[0, 0, 0]);
    let mut w = frame(HEADERS, PADDED | PRIORITY | END_STREAM, 1, &p);
    w.extend(frame(CONTINUATION, 0, 1, &block[5..10]));
    w.extend(frame(CONTINUATION, END_HEADERS, 1, &block[10..]));
    f.w(1, &w);
    let mut padded = vec![2u8];
    padded.extend_from_slice(S200);
    padded.extend_from_slice(&[0, 0]);
    f.r(
        2,
        &frame(HEADERS, PADDED | END_HEADERS | END_STREAM, 1, &padded),
    );
    assert_eq!(codes(&f), vec![Status::Http(200)]);
    assert_eq!(f.s.stats(), SessionStats::default());
}

#[test]
fn dynamic_table_responses_rfc7541_c6() {
    let mut f = Feeder::new(Protocol::Http2, Role::Client);
    // The client allows only a 256-byte table, as in C.6.
    let mut w = H2_PREFACE.to_vec();
    w.extend(settings(Some(256)));
    for s in [1, 3, 5] {
        w.extend(frame(
            HEADERS,
            END_STREAM | END_HEADERS,
            s,
            &[0x82, 0x86, 0x84],
        ));
    }
    f.w(1, &w);
    let c61 = "488264025885aec3771a4b6196d07abe941054d444a8200595040b8166e082a62d1bff6e919d29ad171863c78f0b97c8e9ae82ae43d3";
    let c62 = "4883640effc1c0bf";
    let c63 = "88c16196d07abe941054d444a8200595040b8166e084a62d1bffc05a839bd9ab77ad94e7821dd7f2e6c7b335dfdfcd5b3960d5af27087f3672c1ab270fb5291f9587316065c003ed4ee5b1063d5007";
    // C.6 assumes a table of 256 bytes: the encoder says so first.
    let mut b1 = vec![0x3f, 0xe1, 0x01]; // size update to 256
    b1.extend(hex(c61));
    f.r(2, &frame(HEADERS, END_HEADERS | END_STREAM, 1, &b1));
    f.r(3, &frame(HEADERS, END_HEADERS | END_STREAM, 3, &hex(c62)));
    f.r(4, &frame(HEADERS, END_HEADERS | END_STREAM, 5, &hex(c63)));
    assert_eq!(
        codes(&f),
        vec![Status::Http(302), Status::Http(307), Status::Http(200)]
    );
    assert_eq!(f.s.stats(), SessionStats::default());
}

#[test]
fn reset_unknown_excluded_and_bounds() {
    let mut f = Feeder::new(Protocol::Http2, Role::Client);
    f.config.exclude_http_paths = vec!["/index.html".into()];
    let mut w = H2_PREFACE.to_vec();
    w.extend(frame(HEADERS, END_STREAM | END_HEADERS, 1, &hex(C41)));
    f.w(1, &w);
    f.w(2, &frame(RST_STREAM, 0, 1, &[0, 0, 0, 8]));
    f.r(3, &frame(HEADERS, END_HEADERS | END_STREAM, 9, S200));
    let mut g = Feeder::new(Protocol::Http2, Role::Client);
    g.config.exclude_http_paths = vec!["/index.html".into()];
    let mut w = H2_PREFACE.to_vec();
    w.extend(frame(HEADERS, END_STREAM | END_HEADERS, 1, &hex(C41)));
    w.extend(frame(HEADERS, END_STREAM | END_HEADERS, 3, &hex(C42)));
    w.extend(frame(HEADERS, END_STREAM | END_HEADERS, 5, &hex(C43)));
    g.w(1, &w);
    g.r(2, &server_writes());
    assert!(f.out.is_empty());
    let st = f.s.stats();
    assert_eq!((st.reset_streams, st.unmatched_responses), (1, 1));
    assert_eq!(codes(&g), vec![Status::Http(404), Status::Http(200)]);
    assert_eq!(g.s.stats().excluded, 1);
    // 300 open streams: 256 kept.
    let mut h = Feeder::new(Protocol::Http2, Role::Client);
    h.w(1, H2_PREFACE);
    for i in 0..300u32 {
        h.w(
            2,
            &frame(
                HEADERS,
                END_STREAM | END_HEADERS,
                1 + 2 * i,
                &[0x82, 0x86, 0x84],
            ),
        );
    }
    assert_eq!(h.s.stats().pending_overflow, 300 - MAX_STREAMS as u64);
}

#[test]
fn window_cut_block_and_resync() {
    // A request header block of ~700 bytes: cut by the window, not decoded.
    let mut f = Feeder::new(Protocol::Http2, Role::Client);
    let mut big = vec![0x82, 0x86];
    big.extend(literal(b"x-big", &[b'a'; 200]));
    big.extend(literal(b"x-big2", &[b'b'; 200]));
    big.extend(literal(b"x-big3", &[b'c'; 200]));
    big.push(0x84);
    let mut w = H2_PREFACE.to_vec();
    w.extend(frame(HEADERS, END_STREAM | END_HEADERS, 1, &big));
    f.w(1, &w);
    f.r(2, &frame(HEADERS, END_HEADERS | END_STREAM, 1, S200));
    assert_eq!(
        codes(&f),
        vec![Status::Http(200)],
        "the stream still counts"
    );
    assert_eq!(f.s.stats().hpack_errors, 1);
    // A response read with a DATA frame longer than the window, then more
    // frames past it: lost, then resumed at the next read.
    let mut f = Feeder::new(Protocol::Http2, Role::Client);
    let mut w = H2_PREFACE.to_vec();
    w.extend(frame(HEADERS, END_STREAM | END_HEADERS, 1, &hex(C41)));
    w.extend(frame(HEADERS, END_STREAM | END_HEADERS, 3, &hex(C42)));
    f.w(1, &w);
    let mut r = frame(HEADERS, END_HEADERS, 1, S200);
    r.extend(frame(DATA, 0, 1, &[b'd'; 600]));
    r.extend(frame(DATA, END_STREAM, 1, &[b'd'; 10]));
    f.r(2, &r);
    f.r(3, &frame(HEADERS, END_HEADERS | END_STREAM, 3, S404));
    assert_eq!(codes(&f), vec![Status::Http(200), Status::Http(404)]);
    assert_eq!(f.s.stats().resyncs, 1);
}

#[test]
fn h2c_upgrade_and_prior_knowledge_from_http1() {
    let mut f = Feeder::new(Protocol::Http, Role::Client);
    f.w(1, b"GET /up HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAA\r\n\r\n");
    let mut r =
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n".to_vec();
    r.extend(settings(None));
    r.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, S404));
    f.r(5, &r);
    assert_eq!(f.s.protocol(), Protocol::Http2);
    let mut w = H2_PREFACE.to_vec();
    w.extend(settings(None));
    w.extend(frame(HEADERS, END_STREAM | END_HEADERS, 3, &hex(C41)));
    f.w(6, &w);
    f.r(8, &frame(HEADERS, END_HEADERS | END_STREAM, 3, S200));
    assert_eq!(codes(&f), vec![Status::Http(404), Status::Http(200)]);
    assert_eq!(f.out[0].duration_ns, 4);
    assert_eq!(f.s.stats(), SessionStats::default());

    let mut g = Feeder::new(Protocol::Http, Role::Server);
    g.r(1, &client_writes());
    g.w(2, &server_writes());
    assert_eq!(g.s.protocol(), Protocol::Http2);
    assert_eq!(codes(&g).len(), 3);
}

#[test]
fn fuzz_never_panics() {
    let mut rng = Rng(11);
    let seeds = [client_writes(), server_writes()];
    for _ in 0..3000 {
        let mut f = Feeder::new(
            Protocol::Http2,
            if rng.below(2) == 0 {
                Role::Client
            } else {
                Role::Server
            },
        );
        for _ in 0..rng.below(8) {
            let mut b = if rng.below(3) == 0 {
                let n = rng.below(600);
                rng.bytes(n)
            } else {
                seeds[rng.below(2)].clone()
            };
            for _ in 0..rng.below(4) {
                if !b.is_empty() {
                    let i = rng.below(b.len());
                    b[i] = rng.next() as u8;
                }
            }
            let n = rng.below(b.len() + 1);
            b.truncate(n);
            let d = if rng.below(2) == 0 {
                Direction::Egress
            } else {
                Direction::Ingress
            };
            f.feed(rng.next() % 100, d, &b);
        }
    }
}

#[test]
fn grpc_trailers_past_the_window_fall_back_to_http_status() {
    let mut f = Feeder::new(Protocol::Http2, Role::Client);
    let mut w = H2_PREFACE.to_vec();
    w.extend(frame(
        HEADERS,
        END_HEADERS,
        1,
        &grpc_request("/pkg.Svc/Big"),
    ));
    w.extend(frame(DATA, END_STREAM, 1, &[0, 0, 0, 0, 0]));
    f.w(1, &w);
    // One read: headers, a 700-byte message, trailers (unseen).
    let mut r = frame(HEADERS, END_HEADERS, 1, S200);
    r.extend(frame(DATA, 0, 1, &[7; 700]));
    r.extend(frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        1,
        &literal(b"grpc-status", b"0"),
    ));
    f.r(4, &r);
    // The next call, in reads of its own, is read exactly.
    f.w(
        5,
        &frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            3,
            &grpc_request("/pkg.Svc/Small"),
        ),
    );
    let mut only = S200.to_vec();
    only.extend(literal(b"grpc-status", b"7"));
    f.r(6, &frame(HEADERS, END_HEADERS | END_STREAM, 3, &only));
    assert_eq!(codes(&f), vec![Status::Http(200), Status::Grpc(7)]);
    assert_eq!(f.out[0].duration_ns, 3);
    assert_eq!(f.s.stats().resyncs, 1);
}
