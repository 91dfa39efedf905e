use super::*;
use crate::test_fixtures::*;

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("addr")
}

fn only(datagram: &[u8]) -> Message {
    let all: Vec<_> = messages(datagram).collect();
    assert_eq!(all.len(), 1, "{all:?}");
    all[0].expect("decodes")
}

#[test]
fn new_event_v4_gives_both_tuples() {
    let Message::Entry(e) = only(&bytes(NEW_V4)) else {
        panic!("not an entry");
    };
    assert_eq!(e.kind, Kind::New);
    assert_eq!(e.orig.src, addr("127.0.0.1:40001"));
    assert_eq!(e.orig.dst, addr("127.0.0.1:18081"));
    assert_eq!(e.reply.src, addr("127.0.0.1:18082"));
    assert_eq!(e.reply.dst, addr("127.0.0.1:40001"));
    assert_eq!(e.translated_destination(), Some(addr("127.0.0.1:18082")));
}

#[test]
fn new_event_v6() {
    let Message::Entry(e) = only(&bytes(NEW_V6)) else {
        panic!("not an entry");
    };
    assert_eq!(e.kind, Kind::New);
    assert_eq!(e.orig.src, addr("[::1]:40001"));
    assert_eq!(e.orig.dst, addr("[::1]:18081"));
    assert_eq!(e.translated_destination(), Some(addr("[::1]:18082")));
}

#[test]
fn update_event_is_an_update() {
    let Message::Entry(e) = only(&bytes(UPDATE_V4)) else {
        panic!("not an entry");
    };
    assert_eq!(e.kind, Kind::Update);
    assert_eq!(e.translated_destination(), Some(addr("127.0.0.1:18082")));
}

#[test]
fn dump_datagram_holds_several_entries_and_done_ends_it() {
    let all: Vec<_> = messages(&bytes(DUMP_BOTH))
        .map(|m| m.expect("decodes"))
        .collect();
    assert_eq!(all.len(), 2);
    for (m, dst) in all.iter().zip(["127.0.0.1:18082", "[::1]:18082"]) {
        let Message::Entry(e) = m else {
            panic!("not an entry: {m:?}");
        };
        assert_eq!(e.kind, Kind::New, "a dumped entry is as good as new");
        assert_eq!(e.translated_destination(), Some(addr(dst)));
    }
    assert_eq!(only(&bytes(DONE)), Message::Done);
}

#[test]
fn destroy_event_is_a_destroy() {
    // A destroy has the new event's layout with type IPCTNL_MSG_CT_DELETE and no flags.
    let mut b = bytes(NEW_V4);
    b[4..6].copy_from_slice(&((1u16 << 8) | 2).to_ne_bytes());
    b[6..8].copy_from_slice(&0u16.to_ne_bytes());
    let Message::Entry(e) = only(&b) else {
        panic!("not an entry");
    };
    assert_eq!(e.kind, Kind::Destroy);
}

#[test]
fn untranslated_entry_has_no_translation() {
    let mut b = bytes(NEW_V4);
    // Reply source port 18082 -> 18081 (0x46a1): what conntrack shows without DNAT.
    let reply_sport = b
        .windows(8)
        .rposition(|w| w == [6, 0, 2, 0, 0x46, 0xa2, 0, 0])
        .expect("reply source port attribute");
    b[reply_sport + 4..reply_sport + 6].copy_from_slice(&18081u16.to_be_bytes());
    let Message::Entry(e) = only(&b) else {
        panic!("not an entry");
    };
    assert_eq!(e.translated_destination(), None);
}

#[test]
fn other_protocols_are_skipped() {
    let mut b = bytes(NEW_V4);
    // Both CTA_PROTO_NUM values (len 5, type 1, value 6) -> UDP (17).
    let mut n = 0;
    for i in 0..b.len() - 4 {
        if b[i..i + 5] == [5, 0, 1, 0, 6] {
            b[i + 4] = 17;
            n += 1;
        }
    }
    assert_eq!(n, 2);
    assert_eq!(only(&b), Message::OtherProtocol);
}

#[test]
fn error_and_ack() {
    let mut b = vec![0u8; 36];
    b[0..4].copy_from_slice(&36u32.to_ne_bytes());
    b[4..6].copy_from_slice(&2u16.to_ne_bytes());
    b[16..20].copy_from_slice(&(-1i32).to_ne_bytes());
    assert_eq!(only(&b), Message::Error(-1));
}

#[test]
fn bad_input_is_an_error_never_a_panic() {
    let good = bytes(NEW_V4);
    // Every truncation and every single-byte corruption: no panic, and a truncated message is
    // a framing error.
    for cut in 0..good.len() {
        let all: Vec<_> = messages(&good[..cut]).collect();
        if cut > 0 {
            assert!(all.iter().any(Result::is_err), "cut at {cut}: {all:?}");
        }
    }
    for i in 0..good.len() {
        for v in [0u8, 0x01, 0x7f, 0xff] {
            let mut b = good.clone();
            b[i] = v;
            let _ = messages(&b).count();
        }
    }
    assert_eq!(
        messages(&[0u8; 8]).next(),
        Some(Err(DecodeError::TruncatedHeader(8)))
    );
    let mut huge = good.clone();
    huge[0..4].copy_from_slice(&u32::MAX.to_ne_bytes());
    assert!(matches!(
        messages(&huge).next(),
        Some(Err(DecodeError::BadLength { .. }))
    ));
}

#[test]
fn missing_tuple_is_an_error() {
    // Just the header and nfgenmsg of a new event.
    let mut b = bytes(NEW_V4)[..20].to_vec();
    b[0..4].copy_from_slice(&20u32.to_ne_bytes());
    assert_eq!(
        messages(&b).next(),
        Some(Err(DecodeError::Missing("CTA_TUPLE_ORIG")))
    );
}

#[test]
fn dump_request_layout() {
    let r = dump_request(7);
    assert_eq!(u32::from_ne_bytes([r[0], r[1], r[2], r[3]]), 20);
    assert_eq!(u16::from_ne_bytes([r[4], r[5]]), 0x0101);
    assert_eq!(u16::from_ne_bytes([r[6], r[7]]), 0x0301);
    assert_eq!(u32::from_ne_bytes([r[8], r[9], r[10], r[11]]), 7);
    assert_eq!(&r[16..20], &[0, 0, 0, 0]);
}
