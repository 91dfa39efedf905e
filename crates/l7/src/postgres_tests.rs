use crate::testutil::{Feeder, Rng};
use crate::{Direction, Protocol, Role, Status};

fn msg(t: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![t];
    m.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    m.extend_from_slice(body);
    m
}

fn statuses(f: &Feeder) -> Vec<Status> {
    f.out.iter().map(|r| r.status).collect()
}

fn ready() -> Vec<u8> {
    msg(b'Z', b"I")
}

#[test]
fn startup_is_not_a_query_then_simple_queries() {
    let mut f = Feeder::new(Protocol::Postgres, Role::Client);
    f.w(1, &[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);
    f.r(2, b"N");
    let mut startup = Vec::new();
    let params = b"user\0postgres\0\0";
    startup.extend_from_slice(&(params.len() as u32 + 8).to_be_bytes());
    startup.extend_from_slice(&196608u32.to_be_bytes());
    startup.extend_from_slice(params);
    f.w(3, &startup);
    let mut auth = msg(b'R', &[0, 0, 0, 0]);
    auth.extend(msg(b'S', b"client_encoding\0UTF8\0"));
    auth.extend(msg(b'K', &[0; 8]));
    auth.extend(ready());
    f.r(4, &auth);
    assert!(f.out.is_empty());
    f.w(10, &msg(b'Q', b"SELECT 1\0"));
    let mut ans = msg(b'T', &[0; 10]);
    ans.extend(msg(b'D', &[0; 6]));
    ans.extend(msg(b'C', b"SELECT 1\0"));
    ans.extend(ready());
    f.r(15, &ans);
    f.w(20, &msg(b'Q', b"SELECT nope\0"));
    let mut err = msg(b'E', b"SERROR\0C42P01\0\0");
    err.extend(ready());
    f.r(22, &err);
    assert_eq!(statuses(&f), vec![Status::Ok, Status::Failed]);
    assert_eq!(f.out[0].duration_ns, 5);
    assert_eq!(f.out[1].duration_ns, 2);
    assert_eq!(f.s.stats(), Default::default());
}

fn exec_batch(n: usize) -> Vec<u8> {
    let mut b = Vec::new();
    for _ in 0..n {
        b.extend(msg(b'P', b"\0SELECT $1\0\0\0"));
        b.extend(msg(b'B', b"\0\0\0\0\0\x01\0\0\0\x011\0\0"));
        b.extend(msg(b'E', b"\0\0\0\0\0"));
    }
    b.extend(msg(b'S', b""));
    b
}

#[test]
fn extended_batches_one_request_per_execute() {
    let mut f = Feeder::new(Protocol::Postgres, Role::Server);
    f.r(1, &exec_batch(3));
    let mut ans = Vec::new();
    for i in 0..3 {
        ans.extend(msg(b'1', b""));
        ans.extend(msg(b'2', b""));
        ans.extend(msg(b'D', &[0, 1, 0, 0, 0, 1, b'0' + i]));
        ans.extend(msg(b'C', b"SELECT 1\0"));
    }
    ans.extend(ready());
    f.w(4, &ans);
    assert_eq!(statuses(&f), vec![Status::Ok; 3]);
    assert!(f.out.iter().all(|r| r.duration_ns == 3));
    // A failing batch: the first Execute fails, the server skips the others.
    f.r(10, &exec_batch(3));
    let mut ans = msg(b'1', b"");
    ans.extend(msg(b'2', b""));
    ans.extend(msg(b'E', b"SERROR\0C22012\0\0"));
    ans.extend(ready());
    f.w(11, &ans);
    assert_eq!(statuses(&f)[3..], [Status::Failed]);
    // The connection carries on.
    f.r(20, &msg(b'Q', b"SELECT 1\0"));
    let mut ans = msg(b'C', b"SELECT 1\0");
    ans.extend(ready());
    f.w(21, &ans);
    assert_eq!(statuses(&f)[4..], [Status::Ok]);
    assert_eq!(f.s.stats(), Default::default());
}

#[test]
fn long_parse_hides_execute_then_answers_prove_it() {
    // A 900-byte query text: Bind/Execute/Sync are past the window.
    let sql = format!("SELECT '{}'\0", "x".repeat(900));
    let mut b = msg(b'P', format!("\0{sql}\0\0").as_bytes());
    b.extend(msg(b'B', b"\0\0\0\0\0\0\0\0"));
    b.extend(msg(b'E', b"\0\0\0\0\0"));
    b.extend(msg(b'S', b""));
    let mut f = Feeder::new(Protocol::Postgres, Role::Client);
    f.w(1, &b);
    let mut ans = msg(b'1', b"");
    ans.extend(msg(b'2', b""));
    ans.extend(msg(b'C', b"SELECT 1\0"));
    ans.extend(ready());
    f.r(3, &ans);
    assert_eq!(statuses(&f), vec![Status::Ok]);
    assert_eq!(f.out[0].duration_ns, 2);
    // Next query, fully visible, matches normally.
    f.w(5, &msg(b'Q', b"SELECT 2\0"));
    let mut ans = msg(b'C', b"SELECT 1\0");
    ans.extend(ready());
    f.r(6, &ans);
    assert_eq!(statuses(&f), vec![Status::Ok, Status::Ok]);
    assert_eq!(f.s.stats().resyncs, 1);
}

#[test]
fn big_result_loses_response_side_until_next_query() {
    let mut f = Feeder::new(Protocol::Postgres, Role::Client);
    f.w(1, &msg(b'Q', b"SELECT * FROM big\0"));
    let mut ans = msg(b'T', &[0; 10]);
    for _ in 0..100 {
        ans.extend(msg(b'D', &[7; 20]));
    }
    ans.extend(msg(b'C', b"SELECT 100\0"));
    ans.extend(ready());
    for part in ans.chunks(1000) {
        f.r(2, part);
    }
    f.w(3, &msg(b'Q', b"SELECT 1\0"));
    let mut ok = msg(b'C', b"SELECT 1\0");
    ok.extend(ready());
    f.r(4, &ok);
    assert_eq!(statuses(&f), vec![Status::Ok]);
    assert_eq!(f.out[0].duration_ns, 1);
    let st = f.s.stats();
    assert_eq!(st.unproven_requests, 1);
    assert_eq!(st.resyncs, 1);
}

#[test]
fn split_messages_at_every_point() {
    let q = msg(b'Q', b"SELECT 1\0");
    let mut ans = msg(b'C', b"SELECT 1\0");
    ans.extend(ready());
    for cut in 1..ans.len() {
        let mut f = Feeder::new(Protocol::Postgres, Role::Client);
        f.w(1, &q[..3]);
        f.w(1, &q[3..]);
        f.r(2, &ans[..cut]);
        f.r(3, &ans[cut..]);
        assert_eq!(statuses(&f), vec![Status::Ok], "cut {cut}");
    }
}

#[test]
fn fuzz_never_panics() {
    let mut rng = Rng(42);
    for _ in 0..3000 {
        let mut f = Feeder::new(
            Protocol::Postgres,
            if rng.below(2) == 0 {
                Role::Client
            } else {
                Role::Server
            },
        );
        for _ in 0..rng.below(8) {
            let mut b = if rng.below(2) == 0 {
                let n = rng.below(600);
                rng.bytes(n)
            } else {
                let mut b = exec_batch(rng.below(3));
                b.extend(msg(b'E', b"x"));
                b.extend(ready());
                b
            };
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
