//! Fixtures are datagrams captured from this machine's kernel (6.18) with
//! `examples/ctcapture.rs`, while connections went through the rules
//! `iptables -t nat -A OUTPUT -p tcp -d 127.0.0.1 --dport 18081 -j DNAT --to-destination 127.0.0.1:18082`
//! and the same for `[::1]` with ip6tables, from local port 40001.

use super::*;

/// Event: a new IPv4 entry 127.0.0.1:40001 -> 127.0.0.1:18081, replied from :18082.
const NEW_V4: &[&str] = &[
    "c4000000000100060000000000000000020000003400018014000180080001007f000001080002007f0000011c000280",
    "0500010006000000060002009c4100000600030046a100003400028014000180080001007f000001080002007f000001",
    "1c00028005000100060000000600020046a20000060003009c41000008000c00d969c7ed08000300000001a808000700",
    "00000078300004802c0001800500010001000000050002000a0000000500030000000000060004000300000006000500",
    "00000000",
];
/// Event: the same over [::1].
const NEW_V6: &[&str] = &[
    "f40000000001000600000000000000000a0000004c0001802c0001801400030000000000000000000000000000000001",
    "14000400000000000000000000000000000000011c0002800500010006000000060002009c4100000600030046a10000",
    "4c0002802c00018014000300000000000000000000000000000000011400040000000000000000000000000000000001",
    "1c00028005000100060000000600020046a20000060003009c41000008000c001327903008000300000001a808000700",
    "00000078300004802c0001800500010001000000050002000a0000000500030000000000060004000300000006000500",
    "00000000",
];
/// Event: an update of the IPv4 entry (TCP state change).
const UPDATE_V4: &[&str] = &[
    "c4000000000100000000000000000000020000003400018014000180080001007f000001080002007f0000011c000280",
    "0500010006000000060002009c4100000600030046a100003400028014000180080001007f000001080002007f000001",
    "1c00028005000100060000000600020046a20000060003009c41000008000c00d969c7ed08000300000001aa08000700",
    "0000003c300004802c0001800500010002000000050002000a000000050003000a000000060004000300000006000500",
    "23000000",
];
/// A dump reply datagram holding both entries (NLM_F_MULTI).
const DUMP_BOTH: &[&str] = &[
    "d400000000010200010000008fbfb6d9020000003400018014000180080001007f000001080002007f0000011c000280",
    "0500010006000000060002009c4100000600030046a100003400028014000180080001007f000001080002007f000001",
    "1c00028005000100060000000600020046a20000060003009c41000008000300000001ae080008000000000008000c00",
    "d969c7ed08000b00000000010800070000000071300004802c0001800500010007000000050002000a00000005000300",
    "0a000000060004002700000006000500230000000401000000010200010000008fbfb6d90a0000004c0001802c000180",
    "140003000000000000000000000000000000000114000400000000000000000000000000000000011c00028005000100",
    "06000000060002009c4100000600030046a100004c0002802c0001801400030000000000000000000000000000000001",
    "14000400000000000000000000000000000000011c00028005000100060000000600020046a20000060003009c410000",
    "08000300000001ae080008000000000008000c001327903008000b00000000010800070000000071300004802c000180",
    "0500010007000000050002000a000000050003000a00000006000400230000000600050027000000",
];
/// The end of a dump.
const DONE: &[&str] = &["1400000003000200010000009f95e4dd00000000"];

fn bytes(hex: &[&str]) -> Vec<u8> {
    let s: String = hex.concat();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

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
