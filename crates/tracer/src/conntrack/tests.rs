#![allow(clippy::unwrap_used)]

use super::*;

fn a(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn ok(sock: u64, src: &str, dst: &str) -> Event {
    Event::ConnectOk {
        pid: 10,
        netns: 1,
        sock,
        src: a(src),
        dst: a(dst),
        duration_ns: 5,
        cgroup_id: 3,
    }
}

fn closed(sock: u64, src: &str, dst: &str, sent: u64, recv: u64) -> Event {
    Event::ConnectionClosed {
        pid: 10,
        netns: 1,
        sock,
        src: a(src),
        dst: a(dst),
        duration_ns: 7,
        bytes_sent: sent,
        bytes_received: recv,
        cgroup_id: 3,
        segs_out: segs(sent),
        segs_in: segs(recv),
    }
}

/// Segment counts that follow the byte counts (one segment per 10 bytes, plus the
/// handshake's), so each test of bytes checks segments the same way.
fn segs(bytes: u64) -> u32 {
    2 + (bytes / 10) as u32
}

fn open(sock: u64, src: &str, dst: &str, sent: u64, recv: u64) -> ConnectionBytes {
    ConnectionBytes {
        pid: 10,
        netns: 1,
        sock,
        src: a(src),
        dst: a(dst),
        bytes_sent: sent,
        bytes_received: recv,
        duration_ns: 9,
        cgroup_id: 3,
        segs_out: segs(sent),
        segs_in: segs(recv),
    }
}

fn connected(dst: &str, duration_ns: u64) -> Connected {
    Connected {
        pid: 10,
        cgroup_id: 3,
        netns: 1,
        dst: a(dst),
        duration_ns,
    }
}

const S: &str = "127.0.0.1:40000";
const D: &str = "127.0.0.1:8080";

#[test]
fn close_without_scrape_is_the_connect_with_its_final_totals() {
    let mut t = ConnectionTable::new(10);
    let r = t.apply(&closed(1, S, D, 100, 200));
    assert_eq!(r.connected, Some(connected(D, 7)));
    let d = r.bytes.unwrap();
    assert_eq!((d.sent, d.received, d.dst, d.pid), (100, 200, a(D), 10));
    assert!(t.is_empty());
}

#[test]
fn connect_ok_counts_the_connect_and_keeps_nothing() {
    let mut t = ConnectionTable::new(10);
    let r = t.apply(&ok(1, S, D));
    assert_eq!(r.connected, Some(connected(D, 5)));
    assert_eq!(r.bytes, None);
    assert!(t.is_empty());
    assert!(t.active().is_empty());
}

#[test]
fn dump_then_close_counts_the_connect_once_and_each_byte_once() {
    let mut t = ConnectionTable::new(10);
    let now = Instant::now();
    let mut total = (0, 0);
    let mut add = |d: &ByteDelta| {
        total.0 += d.sent;
        total.1 += d.received;
    };
    let u = t.update_open(&[open(1, S, D, 60, 10)], now);
    assert_eq!(u.connected, vec![connected(D, 9)]);
    assert_eq!(u.bytes.len(), 1);
    assert_eq!((u.bytes[0].sent, u.bytes[0].received), (60, 10));
    add(&u.bytes[0]);
    // Nothing new: no connect, no delta.
    assert_eq!(
        t.update_open(&[open(1, S, D, 60, 10)], now),
        OpenUpdate::default()
    );
    let u = t.update_open(&[open(1, S, D, 90, 10)], now);
    assert!(u.connected.is_empty());
    assert_eq!((u.bytes[0].sent, u.bytes[0].received), (30, 0));
    add(&u.bytes[0]);
    let r = t.apply(&closed(1, S, D, 100, 25));
    assert_eq!(r.connected, None, "already counted by the dump");
    let d = r.bytes.unwrap();
    assert_eq!((d.sent, d.received), (10, 15));
    add(&d);
    // Over the connection's life: exactly its final totals.
    assert_eq!(total, (100, 25));
    assert!(t.is_empty());
}

#[test]
fn a_connection_with_no_bytes_yet_is_connected_with_its_handshake_segments_only() {
    let mut t = ConnectionTable::new(10);
    let now = Instant::now();
    let u = t.update_open(&[open(1, S, D, 0, 0)], now);
    assert_eq!(u.connected.len(), 1);
    assert_eq!(u.bytes.len(), 1);
    let d = u.bytes[0];
    assert_eq!((d.sent, d.received, d.segs_out, d.segs_in), (0, 0, 2, 2));
    // Nothing new at the next dump: no delta at all.
    assert!(t.update_open(&[open(1, S, D, 0, 0)], now).bytes.is_empty());
}

#[test]
fn segments_are_counted_once_like_bytes() {
    let mut t = ConnectionTable::new(10);
    let now = Instant::now();
    let mut total = (0, 0);
    for (sent, recv) in [(100, 30), (250, 30)] {
        for d in t.update_open(&[open(4, S, D, sent, recv)], now).bytes {
            total.0 += d.segs_out;
            total.1 += d.segs_in;
        }
    }
    let d = t.apply(&closed(4, S, D, 400, 45)).bytes.unwrap();
    total.0 += d.segs_out;
    total.1 += d.segs_in;
    assert_eq!(total, (u64::from(segs(400)), u64::from(segs(45))));
}

#[test]
fn active_is_what_the_latest_dump_showed_per_destination() {
    let mut t = ConnectionTable::new(10);
    let now = Instant::now();
    let c1 = open(1, "127.0.0.1:40001", D, 0, 0);
    let c2 = open(2, "127.0.0.1:40002", D, 0, 0);
    let c3 = open(3, "127.0.0.1:40003", "127.0.0.1:9090", 0, 0);
    t.update_open(&[c1.clone(), c2.clone(), c3], now);
    let act = t.active();
    assert_eq!(act[&(10, 3, 1, a(D))], 2);
    assert_eq!(act[&(10, 3, 1, a("127.0.0.1:9090"))], 1);
    // 1 closed (record read); 3 gone from the kernel, its record not read yet.
    t.apply(&closed(1, "127.0.0.1:40001", D, 0, 0));
    t.update_open(&[c2], now);
    let act = t.active();
    assert_eq!(act[&(10, 3, 1, a(D))], 1);
    assert!(!act.contains_key(&(10, 3, 1, a("127.0.0.1:9090"))));
    assert_eq!(t.len(), 2, "3 is kept until its close arrives");
    let r = t.apply(&closed(3, "127.0.0.1:40003", "127.0.0.1:9090", 4, 0));
    assert_eq!(r.connected, None, "counted once, by the first dump");
    assert_eq!(r.bytes.unwrap().sent, 4);
    // Non-connection events change nothing.
    assert_eq!(
        t.apply(&Event::OomKill {
            pid: 10,
            cgroup_id: 1
        }),
        Applied::default()
    );
    assert_eq!(t.len(), 1);
}

#[test]
fn a_reused_socket_waits_for_the_old_connections_close() {
    let mut t = ConnectionTable::new(10);
    let now = Instant::now();
    t.update_open(&[open(1, S, D, 50, 50)], now);
    // Same socket id, other addresses: the old connection closed, its record is
    // still in the ring, and the socket now carries a new connection.
    let new_src = "127.0.0.1:40009";
    let u = t.update_open(&[open(1, new_src, D, 5, 5)], now);
    assert_eq!(u, OpenUpdate::default(), "left for later");
    let r = t.apply(&closed(1, S, D, 70, 80));
    assert_eq!(r.connected, None);
    let d = r.bytes.unwrap();
    assert_eq!((d.sent, d.received), (20, 30));
    // The next dump counts the new connection, with everything so far.
    let u = t.update_open(&[open(1, new_src, D, 6, 5)], now);
    assert_eq!(u.connected.len(), 1);
    assert_eq!((u.bytes[0].sent, u.bytes[0].received), (6, 5));
}

#[test]
fn a_close_for_another_connection_on_a_kept_socket_is_counted_whole() {
    let mut t = ConnectionTable::new(10);
    let now = Instant::now();
    t.update_open(&[open(1, S, D, 50, 50)], now);
    let r = t.apply(&closed(1, "127.0.0.1:40009", D, 7, 8));
    assert_eq!(r.connected, Some(connected(D, 7)));
    let d = r.bytes.unwrap();
    assert_eq!((d.sent, d.received), (7, 8));
    assert_eq!(t.len(), 1, "the kept connection is untouched");
}

#[test]
fn counters_never_go_back() {
    let mut t = ConnectionTable::new(10);
    let now = Instant::now();
    t.update_open(&[open(6, S, D, 100, 100)], now);
    // A smaller value (stale read) yields no negative delta and no double count.
    assert!(
        t.update_open(&[open(6, S, D, 90, 100)], now)
            .bytes
            .is_empty()
    );
    let d = t.apply(&closed(6, S, D, 120, 100)).bytes.unwrap();
    assert_eq!((d.sent, d.received), (20, 0));
}

#[test]
fn capacity_is_bounded_and_overflow_counted() {
    let mut t = ConnectionTable::new(2);
    let now = Instant::now();
    let snapshot = [
        open(1, "127.0.0.1:1", D, 1, 1),
        open(2, "127.0.0.1:2", D, 1, 1),
        open(3, "127.0.0.1:3", D, 1, 1),
    ];
    let u = t.update_open(&snapshot, now);
    assert_eq!(u.connected.len(), 2);
    assert_eq!(t.len(), 2);
    assert_eq!(t.overflow(), 1);
    // The connection left out is counted in full at its close.
    let r = t.apply(&closed(3, "127.0.0.1:3", D, 9, 9));
    assert!(r.connected.is_some());
    let d = r.bytes.unwrap();
    assert_eq!((d.sent, d.received), (9, 9));
}

#[test]
fn a_connection_whose_close_never_comes_is_dropped_after_a_while() {
    let mut t = ConnectionTable::new(10);
    let start = Instant::now();
    t.update_open(&[open(1, S, D, 1, 1)], start);
    // Missing from the kernel's map from now on; its close record was lost.
    t.update_open(&[], start + Duration::from_secs(1));
    assert_eq!(t.len(), 1);
    assert!(t.active().is_empty());
    t.update_open(&[], start + Duration::from_secs(1) + STALE_AFTER / 2);
    assert_eq!(t.len(), 1);
    t.update_open(&[], start + Duration::from_secs(1) + STALE_AFTER);
    assert!(t.is_empty());
    assert_eq!(t.stale(), 1);
    // Seen again before the limit: the clock starts over.
    t.update_open(&[open(2, S, D, 1, 1)], start);
    t.update_open(&[], start + STALE_AFTER / 2);
    t.update_open(&[open(2, S, D, 1, 1)], start + STALE_AFTER / 2);
    t.update_open(&[], start + STALE_AFTER);
    assert_eq!(t.len(), 1);
}

#[test]
fn an_adopted_connection_counts_bytes_from_adoption_and_is_no_connect() {
    let mut t = ConnectionTable::new(10);
    let now = Instant::now();
    // Open before the tracer: 100 sent, 30 received so far.
    assert!(t.adopt(&open(5, S, D, 100, 30)));
    assert!(!t.adopt(&open(5, S, D, 100, 30)), "once");
    assert_eq!(t.active()[&(10, 3, 1, a(D))], 1, "active at once");
    let u = t.update_open(&[open(5, S, D, 150, 30)], now);
    assert!(
        u.connected.is_empty(),
        "its connect happened before the agent"
    );
    assert_eq!((u.bytes[0].sent, u.bytes[0].received), (50, 0));
    let r = t.apply(&closed(5, S, D, 170, 40));
    assert_eq!(r.connected, None);
    let d = r.bytes.unwrap();
    assert_eq!((d.sent, d.received), (20, 10));
    assert!(t.is_empty());
}
