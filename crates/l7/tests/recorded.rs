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
