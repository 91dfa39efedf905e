use crate::testutil::{Feeder, Rng};
use crate::{Direction, Protocol, Role, Status};
use std::net::IpAddr;

fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut q = Vec::new();
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for l in name.split('.') {
        q.push(l.len() as u8);
        q.extend_from_slice(l.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&[0, 1]);
    q
}

/// A response to `query`: rcode, and answers as (type, rdata) each named by a
/// compression pointer to the question (offset 12).
fn response(q: &[u8], rcode: u8, answers: &[(u16, &[u8])]) -> Vec<u8> {
    let mut r = q.to_vec();
    r[2] = 0x81;
    r[3] = 0x80 | rcode;
    r[6..8].copy_from_slice(&(answers.len() as u16).to_be_bytes());
    for (t, rdata) in answers {
        r.extend_from_slice(&[0xc0, 12]);
        r.extend_from_slice(&t.to_be_bytes());
        r.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
        r.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        r.extend_from_slice(rdata);
    }
    r
}

#[test]
fn udp_match_by_id_out_of_order() {
    let mut f = Feeder::new(Protocol::Dns, Role::Client);
    let qa = query(0x1111, "Svc.Example.test", 1);
    let qb = query(0x2222, "v6.test", 28);
    f.w(10, &qa);
    f.w(11, &qb);
    f.r(
        15,
        &response(
            &qb,
            0,
            &[(28, &[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7])],
        ),
    );
    f.r(
        20,
        &response(
            &qa,
            0,
            &[
                (5, b"\x03foo\x00"),
                (1, &[10, 1, 2, 3]),
                (1, &[10, 1, 2, 4]),
            ],
        ),
    );
    f.w(30, &query(0x3333, "nope.test", 1));
    f.r(31, &response(&query(0x3333, "nope.test", 1), 3, &[]));
    assert_eq!(f.out.len(), 3);
    let b = f.out[0].dns.as_ref().expect("detail");
    assert_eq!((b.qtype, &*b.domain), (28, "v6.test"));
    assert_eq!(b.answers, vec!["fd00::7".parse::<IpAddr>().unwrap()]);
    assert_eq!(f.out[0].duration_ns, 4);
    let a = f.out[1].dns.as_ref().expect("detail");
    assert_eq!(&*a.domain, "svc.example.test", "lower-cased");
    assert_eq!(
        a.answers,
        vec![
            "10.1.2.3".parse::<IpAddr>().unwrap(),
            "10.1.2.4".parse().unwrap()
        ]
    );
    assert_eq!(f.out[1].duration_ns, 10);
    assert_eq!(f.out[2].status, Status::Dns(3));
    assert!(f.out[2].dns.as_ref().unwrap().answers.is_empty());
    assert_eq!(f.s.stats(), Default::default());
}

#[test]
fn unmatched_and_garbage_are_counted() {
    let mut f = Feeder::new(Protocol::Dns, Role::Client);
    let q = query(7, "a.test", 1);
    f.r(1, &response(&q, 0, &[]));
    f.w(2, b"short");
    assert!(f.out.is_empty());
    let st = f.s.stats();
    assert_eq!(st.unmatched_responses, 1);
    assert_eq!(st.parse_errors, 1);
}

#[test]
fn compression_loops_and_truncation_are_safe() {
    let q = query(9, "x.test", 1);
    let mut r = response(&q, 0, &[(1, &[1, 2, 3, 4])]);
    // Point the answer's name at itself.
    let ans = q.len();
    r[ans] = 0xc0;
    r[ans + 1] = ans as u8;
    let mut f = Feeder::new(Protocol::Dns, Role::Client);
    f.w(1, &q);
    f.r(2, &r);
    assert_eq!(f.out.len(), 1, "the question still names the request");
    assert!(f.out[0].dns.as_ref().unwrap().answers.is_empty());
    // Every truncation of a good response parses without panicking.
    let good = response(&q, 0, &[(1, &[1, 2, 3, 4]), (28, &[0; 16])]);
    for n in 0..good.len() {
        let mut f = Feeder::new(Protocol::Dns, Role::Client);
        f.feed(1, Direction::Egress, &q);
        f.r(2, &good[..n]);
    }
}

#[test]
fn tcp_length_prefix_split_and_coalesced() {
    let q1 = query(0x4242, "svc.test", 1);
    let q2 = query(0x4243, "svc.test", 28);
    let r1 = response(&q1, 0, &[(1, &[10, 1, 2, 3])]);
    let r2 = response(&q2, 0, &[]);
    let framed = |m: &[u8]| {
        let mut b = (m.len() as u16).to_be_bytes().to_vec();
        b.extend_from_slice(m);
        b
    };
    let mut f = Feeder::new(Protocol::Dns, Role::Client);
    // Length and message written separately (a 2-byte first chunk: TCP).
    f.w(1, &(q1.len() as u16).to_be_bytes());
    f.w(1, &q1);
    // Response read as length, then message.
    f.r(2, &(r1.len() as u16).to_be_bytes());
    f.r(3, &r1);
    // Both of the next in one write / one read.
    f.w(4, &framed(&q2));
    let mut both = framed(&r2);
    both.extend(framed(&r1)); // a stray duplicate: unmatched
    f.r(5, &both);
    assert_eq!(f.out.len(), 2);
    assert_eq!(f.out[0].duration_ns, 2);
    assert_eq!(f.out[1].dns.as_ref().unwrap().qtype, 28);
    assert_eq!(f.s.stats().unmatched_responses, 1);
}

#[test]
fn fuzz_never_panics() {
    let mut rng = Rng(99);
    let q = query(1, "a.b.c", 1);
    let r = response(&q, 0, &[(1, &[1, 2, 3, 4])]);
    for _ in 0..5000 {
        let mut f = Feeder::new(Protocol::Dns, Role::Client);
        for _ in 0..rng.below(6) {
            let mut b = match rng.below(3) {
                0 => {
                    let n = rng.below(300);
                    rng.bytes(n)
                }
                1 => q.clone(),
                _ => r.clone(),
            };
            for _ in 0..rng.below(3) {
                if !b.is_empty() {
                    let i = rng.below(b.len());
                    b[i] = rng.next() as u8;
                }
            }
            let d = if rng.below(2) == 0 {
                Direction::Egress
            } else {
                Direction::Ingress
            };
            f.feed(1, d, &b);
        }
    }
}

#[test]
fn udp_id_equal_to_length_is_still_udp() {
    // A UDP query whose id happens to equal its size minus two.
    let mut q = query(0, "svc.test", 1);
    let id = (q.len() - 2) as u16;
    q[..2].copy_from_slice(&id.to_be_bytes());
    let mut f = Feeder::new(Protocol::Dns, Role::Client);
    f.w(1, &q);
    f.r(2, &response(&q, 0, &[(1, &[10, 0, 0, 1])]));
    assert_eq!(f.out.len(), 1, "{:?}", f.s.stats());
    assert_eq!(f.s.stats(), Default::default());
}

#[test]
fn tcp_writev_first_iovec_is_the_length() {
    // glibc writes [length][query] with writev: the kernel copies the first
    // iovec only. The transport is still TCP; the response proves the query.
    let q = query(0x5151, "svc.test", 1);
    let mut whole = (q.len() as u16).to_be_bytes().to_vec();
    whole.extend_from_slice(&q);
    let mut f = Feeder::new(Protocol::Dns, Role::Client);
    let c = crate::Chunk {
        ts_ns: 1,
        direction: Direction::Egress,
        size: whole.len() as u32,
        payload: &whole[..2],
    };
    f.s.feed(&c, &f.config, &mut f.out);
    let r = response(&q, 0, &[]);
    let mut framed = (r.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&r);
    f.r(3, &framed);
    assert_eq!(f.out.len(), 1);
    assert_eq!(f.out[0].duration_ns, 2);
    assert_eq!(&*f.out[0].dns.as_ref().unwrap().domain, "svc.test");
    assert_eq!(f.s.stats(), Default::default());
}
