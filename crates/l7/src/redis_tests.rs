use crate::testutil::{Feeder, Rng};
use crate::{Direction, Protocol, Role, Status};

fn cmd(args: &[&[u8]]) -> Vec<u8> {
    let mut b = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        b.extend(format!("${}\r\n", a.len()).bytes());
        b.extend_from_slice(a);
        b.extend_from_slice(b"\r\n");
    }
    b
}

fn statuses(f: &Feeder) -> Vec<Status> {
    f.out.iter().map(|r| r.status).collect()
}

use Status::{Failed as F, Ok as O};

#[test]
fn commands_and_replies_resp2() {
    let mut f = Feeder::new(Protocol::Redis, Role::Client);
    f.w(1, &cmd(&[b"SET", b"k", b"v"]));
    f.r(3, b"+OK\r\n");
    f.w(4, &cmd(&[b"GET", b"missing"]));
    f.r(5, b"$-1\r\n");
    f.w(6, &cmd(&[b"INCR", b"k"]));
    f.r(9, b"-ERR value is not an integer or out of range\r\n");
    f.w(10, &cmd(&[b"LRANGE", b"l", b"0", b"-1"]));
    f.r(
        11,
        b"*3\r\n$1\r\na\r\n$-1\r\n*2\r\n:1\r\n-inner error is not the reply's\r\n",
    );
    assert_eq!(statuses(&f), vec![O, O, F, O]);
    assert_eq!(f.out[0].duration_ns, 2);
    assert_eq!(f.out[2].duration_ns, 3);
    assert_eq!(f.s.stats(), Default::default());
}

#[test]
fn resp3_types_push_and_attributes() {
    let mut f = Feeder::new(Protocol::Redis, Role::Client);
    f.w(1, &cmd(&[b"HELLO", b"3"]));
    f.r(
        2,
        b"%2\r\n$6\r\nserver\r\n$5\r\nredis\r\n$5\r\nproto\r\n:3\r\n",
    );
    f.w(3, &cmd(&[b"X"]));
    // A push (not a reply), an attribute, then the reply: a blob error.
    f.r(
        4,
        b">2\r\n$7\r\nmessage\r\n$2\r\nhi\r\n|1\r\n+ttl\r\n:3\r\n!21\r\nSYNTAX invalid syntax\r\n",
    );
    f.w(5, &cmd(&[b"Y"]));
    f.r(6, b"_\r\n");
    f.w(7, &cmd(&[b"Z"]));
    f.r(8, b"~2\r\n,1.5\r\n#t\r\n");
    f.w(9, &cmd(&[b"W"]));
    f.r(10, b"=15\r\ntxt:Some string\r\n");
    assert_eq!(statuses(&f), vec![O, F, O, O, O]);
    assert_eq!(f.s.stats(), Default::default());
}

#[test]
fn pipeline_split_everywhere() {
    let mut w = Vec::new();
    for i in 0..5 {
        w.extend(cmd(&[b"SET", format!("key{i}").as_bytes(), b"value"]));
    }
    w.extend(b"PING\r\n"); // inline
    let r = b"+OK\r\n+OK\r\n-ERR x\r\n+OK\r\n+OK\r\n+PONG\r\n";
    for cut in 1..w.len() {
        let mut f = Feeder::new(Protocol::Redis, Role::Server);
        f.r(1, &w[..cut]);
        f.r(2, &w[cut..]);
        let rc = cut % r.len();
        f.w(3, &r[..rc]);
        f.w(4, &r[rc..]);
        assert_eq!(statuses(&f), vec![O, O, F, O, O, O], "cut {cut}");
        assert_eq!(f.s.stats(), Default::default(), "cut {cut}");
    }
}

#[test]
fn pipeline_past_the_window_is_proven_by_replies() {
    // 20 commands of ~40 bytes: only about 12 fit in the window.
    let mut w = Vec::new();
    for i in 0..20 {
        w.extend(cmd(&[b"SET", format!("key:{i:04}").as_bytes(), b"val"]));
    }
    assert!(w.len() > 600);
    let mut f = Feeder::new(Protocol::Redis, Role::Client);
    f.w(10, &w);
    let mut r = Vec::new();
    for i in 0..20 {
        r.extend_from_slice(if i == 17 { b"-ERR oom\r\n" } else { b"+OK\r\n" });
    }
    f.r(15, &r);
    // The next round trip must match its own command.
    f.w(20, &cmd(&[b"GET", b"a"]));
    f.r(22, b"$1\r\nx\r\n");
    let st = statuses(&f);
    assert_eq!(st.len(), 21);
    assert_eq!(st.iter().filter(|s| **s == F).count(), 1);
    assert_eq!(st[17], F);
    assert_eq!(f.out[19].duration_ns, 5);
    assert_eq!(f.out[20].duration_ns, 2);
    assert_eq!(f.s.stats().resyncs, 1);
    assert_eq!(f.s.stats().unmatched_responses, 0);
}

#[test]
fn big_values_are_skipped_by_length() {
    let big = vec![b'B'; 2000];
    let mut f = Feeder::new(Protocol::Redis, Role::Client);
    f.w(1, &cmd(&[b"SET", b"big", &big]));
    f.r(2, b"+OK\r\n");
    f.w(3, &cmd(&[b"GET", b"big"]));
    let mut reply = b"$2000\r\n".to_vec();
    reply.extend_from_slice(&big);
    reply.extend_from_slice(b"\r\n");
    for part in reply.chunks(700) {
        f.r(4, part);
    }
    f.w(5, &cmd(&[b"PING"]));
    f.r(6, b"+PONG\r\n");
    assert_eq!(statuses(&f), vec![O, O, O]);
    assert_eq!(f.s.stats(), Default::default());
}

#[test]
fn lost_reply_stream_recovers_at_next_write() {
    let mut f = Feeder::new(Protocol::Redis, Role::Client);
    f.w(1, &cmd(&[b"LRANGE", b"l", b"0", b"-1"]));
    // 200 elements: element headers past the window.
    let mut reply = b"*200\r\n".to_vec();
    for _ in 0..200 {
        reply.extend_from_slice(b"$5\r\nhello\r\n");
    }
    f.r(2, &reply);
    f.w(3, &cmd(&[b"PING"]));
    f.r(4, b"+PONG\r\n");
    assert_eq!(statuses(&f), vec![O]);
    assert_eq!(f.s.stats().unproven_requests, 1);
}

#[test]
fn fuzz_never_panics() {
    let mut rng = Rng(7);
    let seeds: [&[u8]; 3] = [
        b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
        b"%1\r\n+a\r\n*2\r\n:1\r\n$-1\r\n",
        b"$5\r\nhello\r\n-ERR\r\n",
    ];
    for _ in 0..3000 {
        let mut f = Feeder::new(
            Protocol::Redis,
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
                seeds[rng.below(3)].repeat(1 + rng.below(50))
            };
            if !b.is_empty() && rng.below(2) == 0 {
                let i = rng.below(b.len());
                b[i] = rng.next() as u8;
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
