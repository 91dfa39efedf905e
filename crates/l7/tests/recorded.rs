//! Sessions replayed on bytes recorded from real servers on this machine
//! (tests/fixtures/*.txt, made by tests/fixtures/capture.py: see its header
//! for the servers and versions). Each fixture is replayed as the kernel
//! would report it: payload cut to PAYLOAD_MAX, `size` the true length; from
//! the client's side and from the server's side; and again with every read
//! re-split into small pieces (a reader with a small buffer).

use sonde_l7::{
    Chunk, Config, Direction, PAYLOAD_MAX, Protocol, Request, Role, Session, SessionStats, Status,
};

/// One connection: (client egress?, bytes) in order.
type Conn = Vec<(bool, Vec<u8>)>;

fn load(name: &str) -> Vec<Conn> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut conns = vec![Vec::new()];
    for line in text.lines() {
        if line == "# conn" {
            conns.push(Vec::new());
            continue;
        }
        let (egress, hex) = match line.split_at_checked(2) {
            Some(("E ", h)) => (true, h),
            Some(("I ", h)) => (false, h),
            _ => continue,
        };
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
            .collect();
        conns.last_mut().expect("conn").push((egress, bytes));
    }
    conns.retain(|c| !c.is_empty());
    conns
}

/// Replay as `role`; `split` re-cuts each record into pieces of that size
/// (0: as recorded). Timestamps: 1000 ns per record.
fn replay(
    name: &str,
    protocol: Protocol,
    role: Role,
    split: usize,
) -> (Vec<Request>, SessionStats) {
    let config = Config::default();
    let mut out = Vec::new();
    let mut stats = SessionStats::default();
    for conn in load(name) {
        let mut s = Session::new(protocol, role);
        for (i, (client_egress, bytes)) in conn.iter().enumerate() {
            // The server reads what the client wrote and writes what it read.
            let direction = match (role, client_egress) {
                (Role::Client, true) | (Role::Server, false) => Direction::Egress,
                _ => Direction::Ingress,
            };
            let pieces: Vec<&[u8]> = if split == 0 {
                vec![bytes]
            } else {
                bytes.chunks(split).collect()
            };
            for p in pieces {
                let vis = p.len().min(PAYLOAD_MAX);
                let c = Chunk {
                    ts_ns: 1000 * (i as u64 + 1),
                    direction,
                    size: p.len() as u32,
                    payload: &p[..vis],
                };
                s.feed(&c, &config, &mut out);
            }
        }
        let st = s.stats();
        stats.parse_errors += st.parse_errors;
        stats.unmatched_responses += st.unmatched_responses;
        stats.resyncs += st.resyncs;
        stats.unproven_requests += st.unproven_requests;
        stats.pending_overflow += st.pending_overflow;
        stats.unsupported_chunks += st.unsupported_chunks;
        stats.hpack_errors += st.hpack_errors;
        stats.reset_streams += st.reset_streams;
        stats.excluded += st.excluded;
    }
    (out, stats)
}

fn http_codes(out: &[Request]) -> Vec<u16> {
    out.iter()
        .map(|r| match r.status {
            Status::Http(c) => c,
            s => panic!("{s:?}"),
        })
        .collect()
}

#[test]
fn http1_nginx_keepalive() {
    for role in [Role::Client, Role::Server] {
        for split in [0, 100, 7] {
            let (out, st) = replay("http1_nginx_keepalive.txt", Protocol::Http, role, split);
            assert_eq!(
                http_codes(&out),
                vec![200, 404, 500, 200, 200, 200, 405],
                "{role:?} split {split}"
            );
            // Each response is answered one record after its request.
            assert!(
                out.iter().all(|r| r.duration_ns == 1000),
                "{role:?} split {split}"
            );
            // As recorded, the gzip response's last chunk ("0\r\n\r\n") sits
            // past the window of its 824-byte read: that side resyncs once,
            // on the next status line, without losing a request.
            let resyncs = if split == 0 { 1 } else { 0 };
            assert_eq!(
                st,
                SessionStats {
                    resyncs,
                    ..SessionStats::default()
                },
                "{role:?} split {split}"
            );
        }
    }
}

#[test]
fn http1_nginx_pipelined_in_one_read() {
    // Four responses in one 3,976-byte read: the first two start inside the
    // 512-byte window, the last two do not and cannot be seen.
    let (out, st) = replay("http1_nginx_pipelined.txt", Protocol::Http, Role::Client, 0);
    assert_eq!(http_codes(&out), vec![200, 404]);
    assert_eq!(st.resyncs, 1);
    // Read by a reader with a 100-byte buffer, every byte is seen: all four.
    let (out, st) = replay(
        "http1_nginx_pipelined.txt",
        Protocol::Http,
        Role::Client,
        100,
    );
    assert_eq!(http_codes(&out), vec![200, 404, 200, 500]);
    assert_eq!(st, SessionStats::default());
}

#[test]
fn http1_python_http_server_close_delimited() {
    for role in [Role::Client, Role::Server] {
        let (out, st) = replay("http1_python.txt", Protocol::Http, role, 0);
        assert_eq!(http_codes(&out), vec![200, 404], "{role:?}");
        assert_eq!(st, SessionStats::default());
    }
}

fn ok_failed(out: &[Request]) -> String {
    out.iter()
        .map(|r| match r.status {
            Status::Ok => 'o',
            Status::Failed => 'F',
            s => panic!("{s:?}"),
        })
        .collect()
}

#[test]
fn redis_resp2_resp3_pipeline() {
    for role in [Role::Client, Role::Server] {
        for split in [0, 50, 3] {
            let (out, st) = replay("redis.txt", Protocol::Redis, role, split);
            // SET GET GET(nil) INCR(err) HELLO3 | PING SET INCR LPUSH(WRONGTYPE) DEL | SET big, GET big
            assert_eq!(ok_failed(&out), "oooFooooFooo", "{role:?} split {split}");
            assert!(out.iter().all(|r| r.protocol == Protocol::Redis));
            assert_eq!(st, SessionStats::default(), "{role:?} split {split}");
        }
    }
}

#[test]
fn postgres_simple_and_extended() {
    for role in [Role::Client, Role::Server] {
        for split in [0, 40, 5] {
            let (out, st) = replay("postgres.txt", Protocol::Postgres, role, split);
            // Q ok, Q error, Q two statements (one request), Execute, batch of
            // two Executes, failing Execute. SSLRequest/startup: no request.
            assert_eq!(ok_failed(&out), "oFooooF", "{role:?} split {split}");
            assert_eq!(st, SessionStats::default(), "{role:?} split {split}");
        }
    }
}

fn dns_summary(out: &[Request]) -> Vec<String> {
    out.iter()
        .map(|r| {
            let d = r.dns.as_ref().expect("dns detail");
            let rcode = match r.status {
                Status::Dns(c) => c,
                s => panic!("{s:?}"),
            };
            let ips: Vec<String> = d.answers.iter().map(|a| a.to_string()).collect();
            format!(
                "{} {} rcode={} [{}]",
                d.qtype,
                d.domain,
                rcode,
                ips.join(",")
            )
        })
        .collect()
}

#[test]
fn dns_udp_dnsmasq() {
    let (out, st) = replay("dns_udp.txt", Protocol::Dns, Role::Client, 0);
    assert_eq!(
        dns_summary(&out),
        vec![
            "1 svc.test rcode=0 [10.1.2.3]",
            "28 dual.test rcode=0 [fd00::7]",
            "1 dual.test rcode=0 [10.9.8.7]",
            "1 nope.invalid rcode=3 []",
            "1 svc.test rcode=0 [10.1.2.3]",
            "1 dual.test rcode=0 [10.9.8.7]",
        ]
    );
    // The two back-to-back queries: each answered one record after the second was sent.
    assert_eq!(out[4].duration_ns, 2000);
    assert_eq!(out[5].duration_ns, 2000);
    assert_eq!(st, SessionStats::default());
}

#[test]
fn dns_tcp_dnsmasq() {
    // Split into 2-byte reads too (the transport is told by the first chunk:
    // a 2-byte read or a length matching the rest, so not 1-byte pieces).
    for split in [0, 2] {
        let (out, st) = replay("dns_tcp.txt", Protocol::Dns, Role::Client, split);
        assert_eq!(
            dns_summary(&out),
            vec![
                "1 svc.test rcode=0 [10.1.2.3]",
                "28 dual.test rcode=0 [fd00::7]"
            ],
            "split {split}"
        );
        assert_eq!(st, SessionStats::default());
    }
}

fn sorted_statuses(out: &[Request]) -> Vec<String> {
    let mut v: Vec<String> = out.iter().map(|r| format!("{:?}", r.status)).collect();
    v.sort();
    v
}

#[test]
fn http2_nginx_with_grpc_statuses() {
    let want = vec![
        "Grpc(0)",
        "Grpc(14)",
        "Grpc(5)",
        "Http(200)",
        "Http(200)",
        "Http(404)",
        "Http(500)",
    ];
    for role in [Role::Client, Role::Server] {
        for split in [0, 100, 9] {
            let (out, st) = replay("http2_nginx.txt", Protocol::Http2, role, split);
            assert_eq!(sorted_statuses(&out), want, "{role:?} split {split}");
            assert!(out.iter().all(|r| r.protocol == Protocol::Http2));
            assert_eq!(st, SessionStats::default(), "{role:?} split {split}");
        }
    }
    // Classified as HTTP/1 first: the preface switches the session.
    let (out, _) = replay("http2_nginx.txt", Protocol::Http, Role::Client, 0);
    assert_eq!(sorted_statuses(&out), want);
}

/// Random splits and narrower windows, or whole reads/writes lost (as the
/// ring loses them), over every recording: never a panic, and never more
/// requests than the recording holds.
#[test]
fn recordings_randomly_cut_and_dropped() {
    let cases = [
        ("http1_nginx_keepalive.txt", Protocol::Http, 7),
        ("http1_nginx_pipelined.txt", Protocol::Http, 4),
        ("http2_nginx.txt", Protocol::Http2, 7),
        ("postgres.txt", Protocol::Postgres, 7),
        ("redis.txt", Protocol::Redis, 12),
        ("dns_udp.txt", Protocol::Dns, 6),
        ("dns_tcp.txt", Protocol::Dns, 2),
        ("http2_h2c_upgrade.txt", Protocol::Http, 2),
        ("grpc_python.txt", Protocol::Http2, 6),
    ];
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let config = Config::default();
    for (name, protocol, total) in cases {
        let conns = load(name);
        for _ in 0..300 {
            let role = if next() % 2 == 0 {
                Role::Client
            } else {
                Role::Server
            };
            // Either re-split with narrower windows, or drop whole records.
            let dropping = next() % 2 == 0;
            let mut out = Vec::new();
            for conn in &conns {
                let mut s = Session::new(protocol, role);
                for (i, (client_egress, bytes)) in conn.iter().enumerate() {
                    let direction = match (role, client_egress) {
                        (Role::Client, true) | (Role::Server, false) => Direction::Egress,
                        _ => Direction::Ingress,
                    };
                    if dropping && next() % 8 == 0 {
                        continue; // lost by the ring
                    }
                    let piece = if dropping {
                        bytes.len().max(1)
                    } else {
                        1 + (next() % 700) as usize
                    };
                    for p in bytes.chunks(piece) {
                        let window = if dropping {
                            PAYLOAD_MAX
                        } else {
                            (next() % (PAYLOAD_MAX as u64 + 1)) as usize
                        };
                        let c = Chunk {
                            ts_ns: i as u64,
                            direction,
                            size: p.len() as u32,
                            payload: &p[..p.len().min(window)],
                        };
                        s.feed(&c, &config, &mut out);
                    }
                }
            }
            assert!(
                out.len() <= total,
                "{name}: {} requests of {total}",
                out.len()
            );
        }
    }
}

#[test]
fn http2_h2c_upgrade_curl_python_h2() {
    for role in [Role::Client, Role::Server] {
        for split in [0, 10] {
            let config = Config::default();
            let mut out = Vec::new();
            let mut s = Session::new(Protocol::Http, role);
            for conn in load("http2_h2c_upgrade.txt") {
                for (i, (client_egress, bytes)) in conn.iter().enumerate() {
                    let direction = match (role, client_egress) {
                        (Role::Client, true) | (Role::Server, false) => Direction::Egress,
                        _ => Direction::Ingress,
                    };
                    let piece = if split == 0 { bytes.len() } else { split };
                    for p in bytes.chunks(piece) {
                        let c = Chunk {
                            ts_ns: 1000 * (i as u64 + 1),
                            direction,
                            size: p.len() as u32,
                            payload: p,
                        };
                        s.feed(&c, &config, &mut out);
                    }
                }
            }
            assert_eq!(s.protocol(), Protocol::Http2, "{role:?} split {split}");
            // The upgrade request (HTTP/1.1) answered on stream 1, then stream 3.
            let got: Vec<_> = out.iter().map(|r| (r.status, r.duration_ns)).collect();
            assert_eq!(
                got,
                vec![(Status::Http(200), 2000), (Status::Http(404), 1000)],
                "{role:?} split {split}"
            );
            assert_eq!(s.stats(), SessionStats::default(), "{role:?} split {split}");
        }
    }
}

#[test]
fn grpc_python_grpcio_statuses() {
    // The client saw grpc statuses [0, 5, 2, 0, 12, 0] (the fixture's last line).
    for role in [Role::Client, Role::Server] {
        for split in [0, 64, 9] {
            let (out, st) = replay("grpc_python.txt", Protocol::Http2, role, split);
            let got: Vec<Status> = out.iter().map(|r| r.status).collect();
            // The last answer (2,000 bytes) came in one 2,064-byte read with its
            // trailers: as recorded, the trailers are past the window and the
            // call is reported by its :status; read in small pieces, exactly.
            let (last, resyncs) = if split == 0 {
                (Status::Http(200), 1)
            } else {
                (Status::Grpc(0), 0)
            };
            assert_eq!(
                got,
                vec![
                    Status::Grpc(0),
                    Status::Grpc(5),
                    Status::Grpc(2),
                    Status::Grpc(0),
                    Status::Grpc(12),
                    last
                ],
                "{role:?} split {split}"
            );
            assert_eq!(
                st,
                SessionStats {
                    resyncs,
                    ..SessionStats::default()
                },
                "{role:?} split {split}"
            );
        }
    }
}
