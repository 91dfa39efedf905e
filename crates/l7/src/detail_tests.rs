#![allow(clippy::unwrap_used)]

use super::*;
use crate::{Config, Direction, Role, Session, Status};

fn st(s: &str) -> Option<Detail> {
    Some(Detail::Statement(s.into()))
}

/// Feeds (direction, bytes) pairs to a client session with capture on; the requests.
fn run(p: Protocol, chunks: &[(Direction, &[u8])]) -> Vec<Request> {
    let config = Config {
        capture: true,
        ..Config::default()
    };
    let mut s = Session::new(p, Role::Client);
    let mut out = Vec::new();
    for (i, (d, b)) in chunks.iter().enumerate() {
        let c = Chunk {
            ts_ns: 1000 * (i as u64 + 1),
            direction: *d,
            size: b.len() as u32,
            payload: b,
        };
        s.feed(&c, &config, &mut out);
    }
    out
}

use Direction::{Egress as W, Ingress as R};

#[test]
fn http1_method_and_path() {
    let out = run(
        Protocol::Http,
        &[
            (W, b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\n\r\n"),
            (R, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
            (W, b"POST /very/long"),
            (R, b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n"),
        ],
    );
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(out[0].start_ns, 1000);
    assert_eq!(
        out[0].detail.as_deref(),
        Some(&Detail::Http {
            method: "GET".into(),
            path: "/a?b=1".into(),
            scheme: None
        })
    );
    // The window cut the target: coroot's marker.
    assert_eq!(
        out[1].detail.as_deref(),
        Some(&Detail::Http {
            method: "POST".into(),
            path: "/very/long...".into(),
            scheme: None
        })
    );
}

#[test]
fn capture_off_keeps_nothing_and_servers_keep_nothing() {
    let mut s = Session::new(Protocol::Http, Role::Client);
    let mut out = Vec::new();
    let config = Config::default();
    for (ts, d, b) in [
        (1, W, &b"GET / HTTP/1.1\r\n\r\n"[..]),
        (2, R, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
    ] {
        let c = Chunk {
            ts_ns: ts,
            direction: d,
            size: b.len() as u32,
            payload: b,
        };
        s.feed(&c, &config, &mut out);
    }
    assert_eq!(out.len(), 1);
    assert!(out[0].detail.is_none());
    assert!(s.capture.is_none());

    let config = Config {
        capture: true,
        ..Config::default()
    };
    let mut s = Session::new(Protocol::Http, Role::Server);
    for (ts, d, b) in [
        (1, R, &b"GET / HTTP/1.1\r\n\r\n"[..]),
        (2, W, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
    ] {
        let c = Chunk {
            ts_ns: ts,
            direction: d,
            size: b.len() as u32,
            payload: b,
        };
        s.feed(&c, &config, &mut out);
    }
    assert_eq!(out.len(), 2);
    assert!(out[1].detail.is_none());
    assert!(s.capture.is_none());
}

#[test]
fn pipelined_requests_share_one_write_first_takes_it() {
    let out = run(
        Protocol::Http,
        &[
            (W, b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n"),
            (
                R,
                b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            ),
        ],
    );
    assert_eq!(out.len(), 2);
    assert!(out[0].detail.is_some());
    assert!(out[1].detail.is_none());
}

fn pg(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![ty];
    m.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    m.extend_from_slice(body);
    m
}

#[test]
fn postgres_simple_and_extended() {
    let mut startup = Vec::new();
    startup.extend_from_slice(&12u32.to_be_bytes());
    startup.extend_from_slice(&196608u32.to_be_bytes());
    startup.extend_from_slice(b"u\0\0\0");
    let q = pg(b'Q', b"SELECT 1/0\0");
    let err = [pg(b'E', b"SERROR\0\0"), pg(b'Z', b"I")].concat();
    let ok = [pg(b'C', b"SELECT 1\0"), pg(b'Z', b"I")].concat();
    // Parse a named statement, Bind, Execute, Sync in one write.
    let ext = [
        pg(b'P', b"s1\0SELECT $1\0\0\0"),
        pg(b'B', b"\0s1\0\0\0\0\0\0\0"),
        pg(b'E', b"\0\0\0\0\0"),
        pg(b'S', b""),
    ]
    .concat();
    let ext_ok = [
        pg(b'1', b""),
        pg(b'2', b""),
        pg(b'C', b"SELECT 1\0"),
        pg(b'Z', b"I"),
    ]
    .concat();
    // Then only Bind/Execute of the prepared statement, and of an unknown one.
    let again = [
        pg(b'B', b"\0s1\0\0\0\0\0\0\0"),
        pg(b'E', b"\0\0\0\0\0"),
        pg(b'S', b""),
    ]
    .concat();
    let unknown = [
        pg(b'B', b"\0s9\0\0\0\0\0\0\0"),
        pg(b'E', b"\0\0\0\0\0"),
        pg(b'S', b""),
    ]
    .concat();
    let again_ok = [pg(b'2', b""), pg(b'C', b"SELECT 1\0"), pg(b'Z', b"I")].concat();
    let auth_ok = [pg(b'R', &[0, 0, 0, 0]), pg(b'Z', b"I")].concat();
    let out = run(
        Protocol::Postgres,
        &[
            (W, &startup),
            (R, &auth_ok),
            (W, &q),
            (R, &err),
            (W, &pg(b'Q', b"SELECT 2\0")),
            (R, &ok),
            (W, &ext),
            (R, &ext_ok),
            (W, &again),
            (R, &again_ok),
            (W, &unknown),
            (R, &again_ok),
        ],
    );
    let details: Vec<_> = out.iter().map(|r| r.detail.as_deref().cloned()).collect();
    assert_eq!(
        details,
        vec![
            st("SELECT 1/0"),
            st("SELECT 2"),
            st("SELECT $1"),
            st("SELECT $1"),
            st("EXECUTE s9 /* unknown */"),
        ]
    );
    assert_eq!(out[0].status, Status::Failed);
}

#[test]
fn mysql_query_prepare_execute() {
    fn pkt(seq: u8, body: &[u8]) -> Vec<u8> {
        let mut p = (body.len() as u32).to_le_bytes()[..3].to_vec();
        p.push(seq);
        p.extend_from_slice(body);
        p
    }
    let ok = pkt(1, b"\x00\x00\x00\x02\x00\x00\x00");
    let prepare_ok = pkt(1, b"\x00\x07\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00");
    let mut exec = b"\x17".to_vec();
    exec.extend_from_slice(&7u32.to_le_bytes());
    exec.extend_from_slice(b"\x00\x01\x00\x00\x00");
    let mut exec9 = b"\x17".to_vec();
    exec9.extend_from_slice(&9u32.to_le_bytes());
    exec9.extend_from_slice(b"\x00\x01\x00\x00\x00");
    let out = run(
        Protocol::Mysql,
        &[
            (W, &pkt(0, b"\x03SELECT 1")),
            (R, &ok),
            (W, &pkt(0, b"\x16SELECT ?")),
            (R, &prepare_ok),
            (W, &pkt(0, &exec)),
            (R, &ok),
            (W, &pkt(0, &exec9)),
            (R, &ok),
        ],
    );
    let details: Vec<_> = out.iter().map(|r| r.detail.as_deref().cloned()).collect();
    assert_eq!(
        details,
        vec![
            st("SELECT 1"),
            st("PREPARE 7 FROM SELECT ?"),
            st("SELECT ?"),
            st("EXECUTE 9 /* unknown */"),
        ]
    );
}

#[test]
fn redis_commands() {
    assert_eq!(
        redis(b"*3\r\n$4\r\nLLEN\r\n$6\r\nmylist\r\n$2\r\nxy\r\n"),
        Some(Detail::Redis {
            command: "LLEN".into(),
            args: "mylist ...".into()
        })
    );
    assert_eq!(
        redis(b"*2\r\n$8\r\nSMEMBERS\r\n$6\r\nmylist\r\n"),
        Some(Detail::Redis {
            command: "SMEMBERS".into(),
            args: "mylist".into()
        })
    );
    assert_eq!(
        redis(b"PING\r\n"),
        Some(Detail::Redis {
            command: "PING".into(),
            args: "".into()
        })
    );
    assert_eq!(redis(b"*2\r\n$3\r\nGE"), None);
    let out = run(
        Protocol::Redis,
        &[
            (W, b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"),
            (R, b"$-1\r\n"),
            (W, b"*2\r\n$4\r\nINCR\r\n$1\r\ns\r\n"),
            (R, b"-ERR not an integer\r\n"),
        ],
    );
    assert_eq!(out.len(), 2);
    assert_eq!(
        out[1].detail.as_deref(),
        Some(&Detail::Redis {
            command: "INCR".into(),
            args: "s".into()
        })
    );
    assert_eq!(out[1].status, Status::Failed);
}

#[test]
fn memcached_text_and_binary() {
    assert_eq!(
        memcached(b"incr 1111 2222\r\n"),
        Some(Detail::Memcached {
            command: "incr".into(),
            keys: vec!["1111".into()]
        })
    );
    assert_eq!(
        memcached(b"gets 1111 2222 3333\r\n"),
        Some(Detail::Memcached {
            command: "gets".into(),
            keys: vec!["1111".into(), "2222".into(), "3333".into()]
        })
    );
    assert_eq!(
        memcached(b"gat 100 a b\r\n"),
        Some(Detail::Memcached {
            command: "gat".into(),
            keys: vec!["a".into(), "b".into()]
        })
    );
    assert_eq!(memcached(b"stats\r\n"), None);
    let mut get = vec![0x80, 0x00, 0, 3, 0, 0, 0, 0];
    get.extend_from_slice(&3u32.to_be_bytes());
    get.extend_from_slice(&[0; 12]);
    get.extend_from_slice(b"key");
    assert_eq!(
        memcached(&get),
        Some(Detail::Memcached {
            command: "get".into(),
            keys: vec!["key".into()]
        })
    );
}

#[test]
fn zookeeper_ops() {
    fn req(op: i32, body: &[u8]) -> Vec<u8> {
        let mut b = ((8 + body.len()) as u32).to_be_bytes().to_vec();
        b.extend_from_slice(&1i32.to_be_bytes());
        b.extend_from_slice(&op.to_be_bytes());
        b.extend_from_slice(body);
        b
    }
    let path = |p: &str| {
        let mut b = (p.len() as u32).to_be_bytes().to_vec();
        b.extend_from_slice(p.as_bytes());
        b
    };
    assert_eq!(
        zookeeper(&req(4, &[path("/a/b"), vec![0]].concat())),
        Some(Detail::Zookeeper {
            op: "getData".into(),
            path: "/a/b".into()
        })
    );
    assert_eq!(
        zookeeper(&req(11, b"")),
        Some(Detail::Zookeeper {
            op: "ping".into(),
            path: "".into()
        })
    );
    let mut multi = 1i32.to_be_bytes().to_vec();
    multi.push(0);
    multi.extend_from_slice(&(-1i32).to_be_bytes());
    multi.extend_from_slice(&path("/m"));
    assert_eq!(
        zookeeper(&req(14, &multi)),
        Some(Detail::Zookeeper {
            op: "multi(create, ...)".into(),
            path: "/m".into()
        })
    );
    assert_eq!(zookeeper(&req(999, b"")), None);
}

fn bson(elems: &[u8]) -> Vec<u8> {
    let mut d = ((elems.len() + 5) as u32).to_le_bytes().to_vec();
    d.extend_from_slice(elems);
    d.push(0);
    d
}

#[test]
fn mongo_op_msg_and_op_query_as_json() {
    let mut e = b"\x02find\0".to_vec();
    e.extend_from_slice(&2u32.to_le_bytes());
    e.extend_from_slice(b"t\0");
    e.extend_from_slice(b"\x10limit\0");
    e.extend_from_slice(&5i32.to_le_bytes());
    e.extend_from_slice(b"\x08ok\0\x01");
    let inner = bson(&[b"\x10a\0".as_slice(), &1i32.to_le_bytes()].concat());
    e.extend_from_slice(b"\x03filter\0");
    e.extend_from_slice(&inner);
    let doc = bson(&e);
    let mut msg = vec![0u8; 16];
    msg[12..16].copy_from_slice(&2013u32.to_le_bytes());
    msg.extend_from_slice(&[0, 0, 0, 0, 0]);
    msg.extend_from_slice(&doc);
    assert_eq!(
        mongo(&msg).as_deref(),
        Some(r#"{"find": "t", "limit": 5, "ok": true, "filter": {"a": 1}}"#)
    );
    // Cut by the window: what was seen, then the marker.
    assert_eq!(mongo(&msg[..38]).as_deref(), Some(r#"{"find": "t"..."#));
    let mut q = vec![0u8; 16];
    q[12..16].copy_from_slice(&2004u32.to_le_bytes());
    q.extend_from_slice(&[0, 0, 0, 0]);
    q.extend_from_slice(b"admin.$cmd\0");
    q.extend_from_slice(&[0; 8]);
    q.extend_from_slice(&bson(
        &[b"\x10isMaster\0".as_slice(), &1i32.to_le_bytes()].concat(),
    ));
    assert_eq!(mongo(&q).as_deref(), Some(r#"{"isMaster": 1}"#));
    assert_eq!(mongo(b"garbage"), None);
}

/// A Query packet as ClickHouse's `Connection::sendQuery` writes it at revision 54460
/// (tests/scripts/l7_replay.py builds the same).
fn ch_query(sql: &str) -> Vec<u8> {
    fn chs(q: &mut Vec<u8>, s: &[u8]) {
        q.push(s.len() as u8);
        q.extend_from_slice(s);
    }
    let mut q = vec![1u8];
    chs(&mut q, b"8f6c1a1e-2d0b-4b8e-9a52-3b6f0d1c2e4f");
    q.push(1); // initial query
    chs(&mut q, b"default");
    chs(&mut q, b"");
    chs(&mut q, b"127.0.0.1:41000");
    q.extend_from_slice(&0u64.to_le_bytes());
    q.push(1); // TCP
    chs(&mut q, b"root");
    chs(&mut q, b"localhost");
    chs(&mut q, b"ClickHouse client");
    q.extend_from_slice(&[23, 8, 0xbc, 0xa9, 0x03]); // 23.8, revision 54460
    q.extend_from_slice(&[0, 0, 1, 0, 0, 0, 0]); // quota, depth, patch, no otel, replicas
    q.extend_from_slice(&[0, 0, 2, 0]); // settings end, secret, stage, compression
    q.push(sql.len() as u8);
    q.extend_from_slice(sql.as_bytes());
    q
}

#[test]
fn clickhouse_query_text() {
    let q = ch_query("SELECT 1");
    assert_eq!(clickhouse(&q).as_deref(), Some("SELECT 1"));
    assert_eq!(clickhouse(&q[..q.len() - 3]).as_deref(), Some("SELEC...")); // cut
    assert_eq!(clickhouse(b"\x00\x11ClickHouse client"), None); // Hello
    // And through the session: the query completes at the server's EndOfStream.
    let out = run(Protocol::Clickhouse, &[(W, &q), (R, b"\x05")]);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].detail.as_deref(), st("SELECT 1").as_ref());
}

#[test]
fn texts_are_bounded() {
    let long = "x".repeat(3000);
    assert_eq!(bounded(&long).len(), MAX_TEXT + 3);
    let mut q = vec![b'Q'];
    q.extend_from_slice(&4000u32.to_be_bytes());
    q.extend_from_slice(long.as_bytes());
    let mut c = Capture::default();
    let Some(Detail::Statement(s)) = c.postgres(&q) else {
        panic!()
    };
    assert!(s.len() <= MAX_TEXT + 3 && s.ends_with("..."));
    // The prepared map is bounded.
    for i in 0..(MAX_PREPARED + 10) {
        c.remember(i.to_string().into(), "q".into());
    }
    assert_eq!(c.prepared.len(), MAX_PREPARED);
    // And the recent writes.
    for i in 0..(RECENT as u64 + 10) {
        c.on_request(
            Protocol::Http,
            &Chunk {
                ts_ns: i + 1,
                direction: W,
                size: 5,
                payload: b"GET /",
            },
        );
    }
    assert_eq!(c.recent.len(), RECENT);
}

/// Garbage never panics, with capture on, for every traced protocol.
#[test]
fn random_bytes_never_panic() {
    let mut seed = 0x1234_5678_9abc_def1u64;
    let mut buf = [0u8; 600];
    for p in [
        Protocol::Http,
        Protocol::Postgres,
        Protocol::Mysql,
        Protocol::Mongo,
        Protocol::Memcached,
        Protocol::Redis,
        Protocol::Clickhouse,
        Protocol::Zookeeper,
    ] {
        let mut c = Capture::default();
        for i in 0..20_000u64 {
            for b in buf.iter_mut() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                *b = seed as u8;
            }
            // Plausible starts now and then, so the decoders get past their first checks.
            match seed % 4 {
                0 => buf[0] = 1,
                1 => buf[12..16].copy_from_slice(&2013u32.to_le_bytes()),
                _ => {}
            }
            let len = (seed % 600) as usize;
            let chunk = Chunk {
                ts_ns: i,
                direction: if seed & 1 == 0 { W } else { R },
                size: len as u32,
                payload: &buf[..len],
            };
            if chunk.direction == W {
                c.on_request(p, &chunk);
            } else {
                c.on_response(p, &chunk);
            }
        }
    }
}
