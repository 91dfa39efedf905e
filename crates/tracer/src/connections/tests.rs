#![allow(clippy::unwrap_used)]

use super::*;
use crate::filter::EphemeralPorts;

const HOST_NETNS: u32 = 1;

fn a(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn tracker(capacity: usize) -> Connections {
    Connections::new(
        capacity,
        ConnectionFilter::new(
            EphemeralPorts::new(vec![32768..=60999]),
            ConnectionFilter::default_public_networks(),
            HOST_NETNS,
        ),
    )
}

fn open(sock: u64, dst: &str, sent: u64, received: u64) -> ConnectionBytes {
    ConnectionBytes {
        pid: 10,
        netns: HOST_NETNS,
        sock,
        src: a("10.0.0.1:40000"),
        dst: a(dst),
        bytes_sent: sent,
        bytes_received: received,
        duration_ns: 2_000,
        cgroup_id: 3,
        segs_out: 2,
        segs_in: 3,
    }
}

fn closed(sock: u64, dst: &str, sent: u64, received: u64) -> Event {
    Event::ConnectionClosed {
        pid: 10,
        netns: HOST_NETNS,
        sock,
        src: a("10.0.0.1:40000"),
        dst: a(dst),
        duration_ns: 2_000,
        bytes_sent: sent,
        bytes_received: received,
        cgroup_id: 3,
        segs_out: 5,
        segs_in: 6,
    }
}

/// Sums what the deltas add: (connects, sent, received, segs out, segs in).
fn totals(deltas: &[ConnectionDelta]) -> (usize, u64, u64, u64, u64) {
    deltas.iter().fold((0, 0, 0, 0, 0), |t, d| {
        (
            t.0 + usize::from(d.connect.is_some()),
            t.1 + d.sent,
            t.2 + d.received,
            t.3 + d.segs_out,
            t.4 + d.segs_in,
        )
    })
}

#[test]
fn a_connection_seen_by_a_dump_then_closed_counts_once() {
    let mut c = tracker(16);
    let now = Instant::now();
    let mut out = Vec::new();
    c.merge_dump(vec![open(1, "10.0.0.9:5432", 100, 40)], now, &mut out);
    assert_eq!(totals(&out), (1, 100, 40, 2, 3));
    assert_eq!(out[0].connect, Some(Duration::from_micros(2)));
    assert_eq!((out[0].pid, out[0].cgroup_id), (10, 3));
    let active: Vec<_> = c.active().collect();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].dst, a("10.0.0.9:5432"));

    // A second dump adds only the bytes since the first.
    out.clear();
    c.merge_dump(vec![open(1, "10.0.0.9:5432", 150, 40)], now, &mut out);
    assert_eq!(totals(&out), (0, 50, 0, 0, 0));

    // The close adds the rest and no connect.
    let d = c.apply(&closed(1, "10.0.0.9:5432", 170, 45)).unwrap();
    assert_eq!(totals(&[d]), (0, 20, 5, 3, 3));
    assert_eq!(c.stats().tracked, 0);
}

#[test]
fn a_connection_first_seen_at_its_close_is_a_connect_with_all_its_bytes() {
    let mut c = tracker(16);
    let d = c.apply(&closed(1, "10.0.0.9:80", 7, 9)).unwrap();
    assert_eq!(d.connect, Some(Duration::from_micros(2)));
    assert_eq!(totals(&[d]), (1, 7, 9, 5, 6));
}

#[test]
fn connect_ok_is_a_connect_alone() {
    let mut c = tracker(16);
    let d = c
        .apply(&Event::ConnectOk {
            pid: 4,
            netns: HOST_NETNS,
            sock: 9,
            src: a("10.0.0.1:40000"),
            dst: a("10.0.0.9:80"),
            duration_ns: 0,
            cgroup_id: 0,
        })
        .unwrap();
    assert_eq!(d.connect, Some(Duration::ZERO));
    assert_eq!(totals(&[d]), (1, 0, 0, 0, 0));
    assert_eq!(c.stats().tracked, 0, "nothing is kept for a ConnectOk");
}

#[test]
fn endpoints_that_are_not_destinations_are_left_out_of_both_paths() {
    let mut c = tracker(16);
    let mut out = Vec::new();
    // An ephemeral port (the other end of an inbound connection) and loopback in another
    // network namespace.
    let mut other_ns = open(2, "127.0.0.1:80", 1, 1);
    other_ns.netns = 77;
    c.merge_dump(
        vec![open(1, "10.0.0.9:40001", 1, 1), other_ns],
        Instant::now(),
        &mut out,
    );
    assert!(out.is_empty());
    assert_eq!(c.active().count(), 0);
    assert!(c.apply(&closed(1, "10.0.0.9:40001", 1, 1)).is_none());
    // Other events are not connections.
    assert!(
        c.apply(&Event::ProcessExit {
            pid: 1,
            exit_code: 0,
            cgroup_id: 0
        })
        .is_none()
    );
}

#[test]
fn an_adopted_connection_is_never_a_connect_and_counts_bytes_from_adoption() {
    let mut c = tracker(16);
    assert!(c.adopt(&open(1, "10.0.0.9:443", 1_000, 2_000)));
    let mut out = Vec::new();
    c.merge_dump(
        vec![open(1, "10.0.0.9:443", 1_010, 2_000)],
        Instant::now(),
        &mut out,
    );
    assert_eq!(totals(&out), (0, 10, 0, 0, 0));
    let d = c.apply(&closed(1, "10.0.0.9:443", 1_012, 2_001)).unwrap();
    assert_eq!(totals(&[d]), (0, 2, 1, 3, 3));
}

#[test]
fn the_table_is_bounded_and_says_so() {
    let mut c = tracker(1);
    let mut out = Vec::new();
    c.merge_dump(
        vec![open(1, "10.0.0.9:80", 0, 0), open(2, "10.0.0.8:80", 0, 0)],
        Instant::now(),
        &mut out,
    );
    assert_eq!(totals(&out).0, 1);
    let stats = c.stats();
    assert_eq!((stats.tracked, stats.overflow, stats.stale), (1, 1, 0));
    // The one left out is counted whole at its close.
    let close = closed(2, "10.0.0.8:80", 3, 4);
    assert_eq!(totals(&[c.apply(&close).unwrap()]), (1, 3, 4, 5, 6));
}
