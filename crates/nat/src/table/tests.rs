use super::*;
use crate::decode::Tuple;

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("addr")
}

/// A connection from `src` to `dst` that reached `upstream`.
fn entry(kind: Kind, src: &str, dst: &str, upstream: &str) -> Entry {
    Entry {
        kind,
        orig: Tuple {
            src: addr(src),
            dst: addr(dst),
        },
        reply: Tuple {
            src: addr(upstream),
            dst: addr(src),
        },
    }
}

const GRACE: Duration = Duration::from_secs(30);

#[test]
fn translated_connections_resolve_others_do_not() {
    let now = Instant::now();
    let mut t = NatTable::new(16, GRACE);
    t.apply(
        &entry(Kind::New, "10.0.0.1:5000", "10.96.0.10:80", "10.1.2.3:8080"),
        now,
    );
    t.apply(
        &entry(Kind::New, "10.0.0.1:5001", "10.1.2.3:8080", "10.1.2.3:8080"),
        now,
    );
    assert_eq!(t.len(), 1, "untranslated connections are not kept");
    assert_eq!(
        t.lookup(addr("10.0.0.1:5000"), addr("10.96.0.10:80")),
        Some(addr("10.1.2.3:8080"))
    );
    assert_eq!(t.lookup(addr("10.0.0.1:5001"), addr("10.1.2.3:8080")), None);
    // Another client port of the same service is another connection.
    assert_eq!(t.lookup(addr("10.0.0.1:5002"), addr("10.96.0.10:80")), None);
    let s = t.stats();
    assert_eq!((s.hits, s.misses, s.len, s.dropped), (1, 2, 1, 0));
}

#[test]
fn ipv6_entries() {
    let now = Instant::now();
    let mut t = NatTable::new(16, GRACE);
    t.apply(
        &entry(
            Kind::New,
            "[fd00::1]:5000",
            "[fd00::a]:80",
            "[fd00::b]:8080",
        ),
        now,
    );
    assert_eq!(
        t.lookup(addr("[fd00::1]:5000"), addr("[fd00::a]:80")),
        Some(addr("[fd00::b]:8080"))
    );
}

#[test]
fn destroyed_entries_answer_during_the_grace_then_go() {
    let t0 = Instant::now();
    let mut t = NatTable::new(16, GRACE);
    let e = entry(Kind::New, "10.0.0.1:5000", "10.96.0.10:80", "10.1.2.3:8080");
    t.apply(&e, t0);
    t.apply(
        &Entry {
            kind: Kind::Destroy,
            ..e
        },
        t0 + Duration::from_secs(1),
    );
    t.expire(t0 + Duration::from_secs(30));
    assert_eq!(
        t.peek(addr("10.0.0.1:5000"), addr("10.96.0.10:80")),
        Some(addr("10.1.2.3:8080")),
        "the close may be reported after the destroy"
    );
    t.expire(t0 + Duration::from_secs(31));
    assert_eq!(t.peek(addr("10.0.0.1:5000"), addr("10.96.0.10:80")), None);
    assert!(t.is_empty());
    assert_eq!(t.stats().dropped, 0, "expiry is not a drop");
}

#[test]
fn a_tuple_reused_before_expiry_follows_the_new_entry() {
    let t0 = Instant::now();
    let mut t = NatTable::new(16, GRACE);
    let old = entry(Kind::New, "10.0.0.1:5000", "10.96.0.10:80", "10.1.2.3:8080");
    t.apply(&old, t0);
    t.apply(
        &Entry {
            kind: Kind::Destroy,
            ..old
        },
        t0,
    );
    // Re-translated to another backend: the old destroy's expiry must not remove it.
    t.apply(
        &entry(Kind::New, "10.0.0.1:5000", "10.96.0.10:80", "10.1.2.4:8080"),
        t0 + Duration::from_secs(1),
    );
    t.expire(t0 + Duration::from_secs(60));
    assert_eq!(
        t.peek(addr("10.0.0.1:5000"), addr("10.96.0.10:80")),
        Some(addr("10.1.2.4:8080"))
    );
    // Reused without translation: the old translation no longer answers.
    t.apply(
        &Entry {
            kind: Kind::Destroy,
            ..old
        },
        t0 + Duration::from_secs(61),
    );
    t.apply(
        &entry(Kind::New, "10.0.0.1:5000", "10.96.0.10:80", "10.96.0.10:80"),
        t0 + Duration::from_secs(62),
    );
    assert_eq!(t.peek(addr("10.0.0.1:5000"), addr("10.96.0.10:80")), None);
}

#[test]
fn bounded_oldest_out_and_counted() {
    let now = Instant::now();
    let mut t = NatTable::new(100, GRACE);
    for port in 0..250u16 {
        t.apply(
            &entry(
                Kind::New,
                &format!("10.0.0.1:{}", 10_000 + port),
                "10.96.0.10:80",
                "10.1.2.3:8080",
            ),
            now,
        );
    }
    let s = t.stats();
    assert_eq!((s.len, s.dropped), (100, 150));
    assert_eq!(t.peek(addr("10.0.0.1:10149"), addr("10.96.0.10:80")), None);
    assert!(
        t.peek(addr("10.0.0.1:10150"), addr("10.96.0.10:80"))
            .is_some()
    );
    assert!(t.order.len() <= 2 * 100 + 64);
}

#[test]
fn updates_do_not_grow_the_queues() {
    let now = Instant::now();
    let mut t = NatTable::new(10, GRACE);
    let e = entry(
        Kind::Update,
        "10.0.0.1:5000",
        "10.96.0.10:80",
        "10.1.2.3:8080",
    );
    for _ in 0..10_000 {
        t.apply(&e, now);
    }
    assert_eq!(t.order.len(), 1);
    // Flapping between backends re-inserts: the queue is compacted, not unbounded.
    for i in 0..10_000u16 {
        let up = format!("10.1.2.{}:8080", i % 2);
        t.apply(
            &entry(Kind::Update, "10.0.0.1:5000", "10.96.0.10:80", &up),
            now,
        );
    }
    assert!(t.order.len() <= 2 * 10 + 64, "{}", t.order.len());
    assert_eq!(t.len(), 1);
    assert_eq!(t.stats().dropped, 0);
}

#[test]
fn destroy_churn_keeps_the_destroyed_queue_bounded() {
    let t0 = Instant::now();
    let mut t = NatTable::new(10, Duration::from_secs(3600));
    for i in 0..5_000u16 {
        let e = entry(
            Kind::New,
            "10.0.0.1:5000",
            "10.96.0.10:80",
            &format!("10.1.{}.{}:80", i / 256, i % 256),
        );
        t.apply(&e, t0);
        t.apply(
            &Entry {
                kind: Kind::Destroy,
                ..e
            },
            t0,
        );
    }
    assert!(t.destroyed.len() <= 2 * 10 + 64, "{}", t.destroyed.len());
    assert_eq!(t.len(), 1);
}

#[test]
fn dumps_fill_gaps_but_never_override_events() {
    let now = Instant::now();
    let mut t = NatTable::new(16, GRACE);
    let e = entry(Kind::New, "10.0.0.1:5000", "10.96.0.10:80", "10.1.2.3:8080");
    t.apply(&e, now);
    t.apply(
        &Entry {
            kind: Kind::Destroy,
            ..e
        },
        now,
    );
    // A dump older than the destroy still shows it: it must not revive it as live.
    t.merge_dumped(&entry(
        Kind::New,
        "10.0.0.1:5000",
        "10.96.0.10:80",
        "10.1.2.9:8080",
    ));
    assert_eq!(
        t.peek(addr("10.0.0.1:5000"), addr("10.96.0.10:80")),
        Some(addr("10.1.2.3:8080"))
    );
    t.merge_dumped(&entry(
        Kind::New,
        "10.0.0.1:5001",
        "10.96.0.10:80",
        "10.1.2.4:8080",
    ));
    t.merge_dumped(&entry(
        Kind::New,
        "10.0.0.1:5002",
        "10.1.2.4:8080",
        "10.1.2.4:8080",
    ));
    assert_eq!(t.len(), 2);
}
