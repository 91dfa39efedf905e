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
    }
}

fn closed(sock: u64, src: &str, dst: &str, sent: u64, recv: u64) -> Event {
    Event::ConnectionClosed {
        pid: 10,
        netns: 1,
        sock,
        src: a(src),
        dst: a(dst),
        bytes_sent: sent,
        bytes_received: recv,
    }
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
    }
}

const S: &str = "127.0.0.1:40000";
const D: &str = "127.0.0.1:8080";

#[test]
fn close_without_scrape_counts_final_totals() {
    let mut t = ConnectionTable::new(10);
    assert_eq!(t.apply(&ok(1, S, D)), None);
    assert_eq!(t.len(), 1);
    let d = t.apply(&closed(1, S, D, 100, 200)).unwrap();
    assert_eq!((d.sent, d.received, d.dst, d.pid), (100, 200, a(D), 10));
    assert!(t.is_empty());
}

#[test]
fn scrape_then_close_counts_each_byte_once() {
    let mut t = ConnectionTable::new(10);
    t.apply(&ok(1, S, D));
    let mut total = (0, 0);
    let mut add = |d: &ByteDelta| {
        total.0 += d.sent;
        total.1 += d.received;
    };
    let d = t.update_open(&[open(1, S, D, 60, 10)]);
    assert_eq!(d.len(), 1);
    assert_eq!((d[0].sent, d[0].received), (60, 10));
    add(&d[0]);
    // Nothing new: no delta.
    assert!(t.update_open(&[open(1, S, D, 60, 10)]).is_empty());
    let d = t.update_open(&[open(1, S, D, 90, 10)]);
    assert_eq!((d[0].sent, d[0].received), (30, 0));
    add(&d[0]);
    let d = t.apply(&closed(1, S, D, 100, 25)).unwrap();
    assert_eq!((d.sent, d.received), (10, 15));
    add(&d);
    // Over the connection's life: exactly its final totals.
    assert_eq!(total, (100, 25));
}

#[test]
fn active_is_connect_ok_minus_closed_per_destination() {
    let mut t = ConnectionTable::new(10);
    t.apply(&ok(1, "127.0.0.1:40001", D));
    t.apply(&ok(2, "127.0.0.1:40002", D));
    t.apply(&ok(3, "127.0.0.1:40003", "127.0.0.1:9090"));
    let act = t.active();
    assert_eq!(act[&(10, 1, a(D))], 2);
    assert_eq!(act[&(10, 1, a("127.0.0.1:9090"))], 1);
    t.apply(&closed(1, "127.0.0.1:40001", D, 0, 0));
    t.apply(&closed(3, "127.0.0.1:40003", "127.0.0.1:9090", 0, 0));
    let act = t.active();
    assert_eq!(act[&(10, 1, a(D))], 1);
    assert!(!act.contains_key(&(10, 1, a("127.0.0.1:9090"))));
    // Non-connection events change nothing.
    assert_eq!(
        t.apply(&Event::OomKill {
            pid: 10,
            cgroup_id: 1
        }),
        None
    );
    assert_eq!(t.len(), 1);
}

#[test]
fn unknown_or_reused_sockets_in_snapshots_are_skipped() {
    let mut t = ConnectionTable::new(10);
    // ConnectOk not applied yet: skipped, counted later.
    assert!(t.update_open(&[open(1, S, D, 50, 50)]).is_empty());
    t.apply(&ok(1, S, D));
    // Same socket id, other addresses (a stale snapshot of a reused socket).
    assert!(
        t.update_open(&[open(1, "127.0.0.1:40009", D, 50, 50)])
            .is_empty()
    );
    let d = t.apply(&closed(1, S, D, 70, 80)).unwrap();
    assert_eq!((d.sent, d.received), (70, 80));
    // Stale snapshot after the close: ignored.
    assert!(t.update_open(&[open(1, S, D, 70, 80)]).is_empty());
}

#[test]
fn close_of_untracked_connection_counts_whole_and_counters_never_go_back() {
    let mut t = ConnectionTable::new(10);
    let d = t.apply(&closed(5, S, D, 7, 8)).unwrap();
    assert_eq!((d.sent, d.received), (7, 8));
    t.apply(&ok(6, S, D));
    t.update_open(&[open(6, S, D, 100, 100)]);
    // A smaller value (stale read) yields no negative delta and no double count.
    assert!(t.update_open(&[open(6, S, D, 90, 100)]).is_empty());
    let d = t.apply(&closed(6, S, D, 120, 100)).unwrap();
    assert_eq!((d.sent, d.received), (20, 0));
}

#[test]
fn capacity_is_bounded_and_overflow_counted() {
    let mut t = ConnectionTable::new(2);
    t.apply(&ok(1, "127.0.0.1:1", D));
    t.apply(&ok(2, "127.0.0.1:2", D));
    t.apply(&ok(3, "127.0.0.1:3", D));
    assert_eq!(t.len(), 2);
    assert_eq!(t.overflow(), 1);
    // The overflowed connection's close is still counted in full.
    let d = t.apply(&closed(3, "127.0.0.1:3", D, 9, 9)).unwrap();
    assert_eq!((d.sent, d.received), (9, 9));
}
