#![allow(clippy::unwrap_used)]

use std::path::Path;

use super::*;

/// Sequence number of the recorded replies (the recorder's first query after the family lookup).
const RECORDED_SEQ: u32 = 2;
/// The ESRCH reply was the recorder's second query (each raw query is followed by a decoded one).
const ESRCH_SEQ: u32 = 4;
/// nlmsghdr (16) + genlmsghdr (4) + AGGR_TGID header (4) + TGID attr (8) + STATS header (4).
const STRUCT_START: usize = 36;

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text.trim();
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn le64(bytes: &[u8], at: usize) -> u64 {
    u64::from_ne_bytes(bytes[at..at + 8].try_into().unwrap())
}

fn parse_datagram(datagram: &[u8], seq: u32, tgid: u32) -> Option<Result<TgidReply, i32>> {
    find_reply::<GenlMessage<TaskstatsPayload>, _>(datagram, seq, |m| parse_tgid_message(m, tgid))
        .unwrap()
}

/// The recorded replies of kernel 6.18 (struct v16), checked against offsets read by hand
/// from the raw datagram rather than through the decoder's nested walk.
#[test]
fn recorded_v16_replies_decode() {
    let cases = [
        ("v16_busy_delayacct_off_tgid12829.hex", 12829),
        ("v16_busy_delayacct_on_tgid13772.hex", 13772),
        ("v16_dd_direct_delayacct_on_tgid13943.hex", 13943),
        ("v16_init_delayacct_off_tgid1.hex", 1),
    ];
    for (name, tgid) in cases {
        let raw = fixture(name);
        let st = &raw[STRUCT_START..];
        assert_eq!(st.len(), 560, "{name}: v16 struct size");
        // Layout sanity independent of the decoder: version at 0, cpu_count (16) non-zero,
        // and v16's appended cpu/blkio_delay_max (432, 448) no larger than their totals.
        assert_eq!(u16::from_ne_bytes(st[0..2].try_into().unwrap()), 16);
        assert!(le64(st, 16) > 0, "{name}: cpu_count");
        assert!(le64(st, 432) <= le64(st, 24), "{name}: cpu max > total");
        assert!(le64(st, 448) <= le64(st, 40), "{name}: blkio max > total");
        let expected = TaskDelays {
            cpu_delay_ns: le64(st, 24),
            blkio_delay_ns: le64(st, 40),
            version: 16,
        };
        let got = parse_datagram(&raw, RECORDED_SEQ, tgid);
        assert_eq!(got, Some(Ok(TgidReply::Stats(expected))), "{name}");
        assert_eq!(decode_taskstats(st).unwrap(), expected, "{name}");
    }
}

#[test]
fn recorded_values_have_the_expected_shape() {
    // Busy loop with delay accounting off: CPU delay is still filled on 6.x (it comes from
    // the scheduler's run_delay), block I/O delay is not.
    let off =
        decode_taskstats(&fixture("v16_busy_delayacct_off_tgid12829.hex")[STRUCT_START..]).unwrap();
    assert!(off.cpu_delay_ns > 1_000_000_000, "{off:?}");
    assert_eq!(off.blkio_delay_ns, 0);
    // A direct-I/O dd with it on waited for the disk.
    let dd = decode_taskstats(&fixture("v16_dd_direct_delayacct_on_tgid13943.hex")[STRUCT_START..])
        .unwrap();
    assert!(dd.blkio_delay_ns > 0, "{dd:?}");
}

#[test]
fn recorded_esrch_is_gone() {
    let raw = fixture("esrch_tgid4194000.hex");
    assert_eq!(
        parse_datagram(&raw, ESRCH_SEQ, 4_194_000),
        Some(Ok(TgidReply::Gone))
    );
}

#[test]
fn other_sequence_numbers_are_skipped() {
    let raw = fixture("v16_busy_delayacct_on_tgid13772.hex");
    assert_eq!(parse_datagram(&raw, RECORDED_SEQ + 1, 13772), None);
    // A stale reply followed by ours in one datagram: ours is found.
    let mut two = fixture("esrch_tgid4194000.hex");
    // Pad the first message to 4-byte alignment as the kernel does.
    while !two.len().is_multiple_of(4) {
        two.push(0);
    }
    let mut ours = raw.clone();
    ours[8..12].copy_from_slice(&7u32.to_ne_bytes());
    two.extend_from_slice(&ours);
    let got = parse_datagram(&two, 7, 13772);
    assert!(matches!(got, Some(Ok(TgidReply::Stats(_)))), "{got:?}");
}

#[test]
fn reply_for_another_tgid_is_rejected() {
    let raw = fixture("v16_busy_delayacct_on_tgid13772.hex");
    let err = find_reply::<GenlMessage<TaskstatsPayload>, _>(&raw, RECORDED_SEQ, |m| {
        parse_tgid_message(m, 13773)
    })
    .unwrap_err();
    assert!(err.contains("13772"), "{err}");
}

#[test]
fn other_kernel_errors_are_reported() {
    let mut raw = fixture("esrch_tgid4194000.hex");
    raw[16..20].copy_from_slice(&(-libc::EINVAL).to_ne_bytes());
    assert_eq!(
        parse_datagram(&raw, ESRCH_SEQ, 4_194_000),
        Some(Err(libc::EINVAL))
    );
}

/// Lays out a struct of `version` with the given size, cpu/blkio totals at the offsets that
/// version's header had, and decoys (values the decoder must not pick) at the other layout's.
fn synth(version: u16, size: usize, cpu_at: usize, blkio_at: usize, decoys: &[usize]) -> Vec<u8> {
    let mut st = vec![0u8; size];
    st[0..2].copy_from_slice(&version.to_ne_bytes());
    for &at in decoys {
        st[at..at + 8].copy_from_slice(&0xdead_beef_u64.to_ne_bytes());
    }
    st[cpu_at..cpu_at + 8].copy_from_slice(&111_u64.to_ne_bytes());
    st[blkio_at..blkio_at + 8].copy_from_slice(&222_u64.to_ne_bytes());
    st
}

#[test]
fn synthesised_versions_decode_by_their_layout() {
    // (version, struct size from the header history, cpu offset, blkio offset, decoys)
    let cases: [(u16, usize, usize, usize, &[usize]); 10] = [
        // v1: u16 version + u16 padding[3], the delay block straight after.
        (1, 72, 16, 32, &[24, 40]),
        (2, 80, 24, 40, &[16, 32]),
        (8, 328, 24, 40, &[32, 56]),
        (10, 352, 24, 40, &[32, 56]),
        (12, 400, 24, 40, &[32, 56]),
        (13, 416, 24, 40, &[32, 56]),
        (14, 432, 24, 40, &[32, 56]),
        // v15: max/min inserted after each total: blkio_delay_total moved to 56, and 40 is
        // cpu_delay_min.
        (15, 560, 24, 56, &[32, 40, 48]),
        (16, 560, 24, 40, &[32, 56]),
        // v17 appended soft-IRQ delays; unknown newer versions keep the v16 offsets.
        (17, 592, 24, 40, &[32, 56]),
    ];
    for (version, size, cpu_at, blkio_at, decoys) in cases {
        let st = synth(version, size, cpu_at, blkio_at, decoys);
        let got = decode_taskstats(&st).unwrap();
        assert_eq!(
            got,
            TaskDelays {
                cpu_delay_ns: 111,
                blkio_delay_ns: 222,
                version
            },
            "v{version}"
        );
    }
}

#[test]
fn real_v16_struct_relaid_as_v15_and_truncated_to_v8() {
    let raw = fixture("v16_dd_direct_delayacct_on_tgid13943.hex");
    let v16 = &raw[STRUCT_START..];
    let want = decode_taskstats(v16).unwrap();
    assert!(want.blkio_delay_ns > 0 && want.cpu_delay_ns > 0);

    // v8 = the first 328 bytes with version 8.
    let mut v8 = v16[..328].to_vec();
    v8[0..2].copy_from_slice(&8u16.to_ne_bytes());
    let got = decode_taskstats(&v8).unwrap();
    assert_eq!(
        (got.cpu_delay_ns, got.blkio_delay_ns, got.version),
        (want.cpu_delay_ns, want.blkio_delay_ns, 8)
    );

    // v15: after each of cpu/blkio/swapin totals insert max and min (16 bytes); the v16
    // tail max/min fields go away, so the size stays 560.
    let mut v15 = Vec::new();
    v15.extend_from_slice(&v16[..32]); // header + cpu_count + cpu_delay_total
    v15.extend_from_slice(&[0xee; 16]); // cpu max/min
    v15.extend_from_slice(&v16[32..48]); // blkio_count + blkio_delay_total
    v15.extend_from_slice(&[0xee; 16]);
    v15.extend_from_slice(&v16[48..64]); // swapin
    v15.extend_from_slice(&[0xee; 16]);
    v15.extend_from_slice(&v16[64..v16.len() - 48]);
    v15[0..2].copy_from_slice(&15u16.to_ne_bytes());
    assert_eq!(v15.len(), 560);
    let got = decode_taskstats(&v15).unwrap();
    assert_eq!(
        (got.cpu_delay_ns, got.blkio_delay_ns, got.version),
        (want.cpu_delay_ns, want.blkio_delay_ns, 15)
    );
    // Read with the v16 layout it would be wrong: the layout really differs.
    assert_ne!(le64(&v15, 40), want.blkio_delay_ns);
}

#[test]
fn short_and_garbage_payloads_are_errors() {
    assert!(matches!(
        decode_taskstats(&[]),
        Err(Error::Truncated { needed: 2, .. })
    ));
    assert!(matches!(
        decode_taskstats(&[16]),
        Err(Error::Truncated { .. })
    ));
    assert!(matches!(
        decode_taskstats(&[0u8; 600]),
        Err(Error::BadVersion { version: 0 })
    ));
    let mut big = vec![0u8; 600];
    big[0..2].copy_from_slice(&0xffffu16.to_ne_bytes());
    assert!(matches!(
        decode_taskstats(&big),
        Err(Error::BadVersion { version: 0xffff })
    ));
    let mut v16 = vec![0u8; 79];
    v16[0..2].copy_from_slice(&16u16.to_ne_bytes());
    assert!(matches!(
        decode_taskstats(&v16),
        Err(Error::Truncated {
            version: 16,
            len: 79,
            needed: 80
        })
    ));
    let mut v15 = vec![0u8; 100];
    v15[0..2].copy_from_slice(&15u16.to_ne_bytes());
    assert!(matches!(
        decode_taskstats(&v15),
        Err(Error::Truncated {
            version: 15,
            needed: 128,
            ..
        })
    ));
}

#[test]
fn malformed_datagrams_are_errors_not_panics() {
    let parse = |d: &[u8]| {
        find_reply::<GenlMessage<TaskstatsPayload>, _>(d, RECORDED_SEQ, |m| {
            parse_tgid_message(m, 13772)
        })
    };
    let raw = fixture("v16_busy_delayacct_on_tgid13772.hex");
    // Cut anywhere: never a panic, and never a successful decode of a cut struct.
    for cut in 0..raw.len() {
        if let Ok(Some(Ok(TgidReply::Stats(_)))) = parse(&raw[..cut]) {
            panic!("decoded a reply cut at {cut}");
        }
    }
    // A length field of 0 must not loop forever.
    let mut zero = raw.clone();
    zero[0..4].copy_from_slice(&0u32.to_ne_bytes());
    assert!(parse(&zero).is_err());
    // Pseudo-random garbage, and the real reply with random bytes flipped.
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..20_000 {
        let len = (next() % 700) as usize;
        let garbage: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let _ = parse(&garbage);
        let _ = decode_taskstats(&garbage);
        let mut flipped = raw.clone();
        for _ in 0..4 {
            let at = (next() as usize) % flipped.len();
            flipped[at] = next() as u8;
        }
        let _ = parse(&flipped);
    }
}

/// Builds a reply datagram by hand: nlmsghdr + genl header + the given attributes.
fn reply_with_attrs(seq: u32, attrs: &[u8]) -> Vec<u8> {
    let len = 16 + 4 + attrs.len();
    let mut d = Vec::new();
    d.extend_from_slice(&(len as u32).to_ne_bytes());
    d.extend_from_slice(&0x1fu16.to_ne_bytes());
    d.extend_from_slice(&0u16.to_ne_bytes());
    d.extend_from_slice(&seq.to_ne_bytes());
    d.extend_from_slice(&0u32.to_ne_bytes());
    d.extend_from_slice(&[TASKSTATS_CMD_NEW, 1, 0, 0]);
    d.extend_from_slice(attrs);
    d
}

fn attr(kind: u16, value: &[u8]) -> Vec<u8> {
    let mut a = Vec::new();
    a.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
    a.extend_from_slice(&kind.to_ne_bytes());
    a.extend_from_slice(value);
    while !a.len().is_multiple_of(4) {
        a.push(0);
    }
    a
}

#[test]
fn nesting_variants() {
    let st = synth(16, 560, 24, 40, &[]);
    let want = Some(Ok(TgidReply::Stats(TaskDelays {
        cpu_delay_ns: 111,
        blkio_delay_ns: 222,
        version: 16,
    })));
    // Bare STATS.
    assert_eq!(
        parse_datagram(&reply_with_attrs(9, &attr(TYPE_STATS, &st)), 9, 5),
        want
    );
    // AGGR_PID { PID, STATS } with NULL padding before, nested flag set on the container.
    let mut inner = attr(TYPE_PID, &5u32.to_ne_bytes());
    inner.extend(attr(TYPE_STATS, &st));
    let mut attrs = attr(6, &[]);
    attrs.extend(attr(TYPE_AGGR_PID | 0x8000, &inner));
    assert_eq!(parse_datagram(&reply_with_attrs(9, &attrs), 9, 5), want);
    // No STATS at all.
    let only_id = attr(TYPE_AGGR_TGID, &attr(TYPE_TGID, &5u32.to_ne_bytes()));
    let err =
        find_reply::<GenlMessage<TaskstatsPayload>, _>(&reply_with_attrs(9, &only_id), 9, |m| {
            parse_tgid_message(m, 5)
        })
        .unwrap_err();
    assert!(err.contains("no TASKSTATS_TYPE_STATS"), "{err}");
    // A too-short id.
    let bad_id = attr(TYPE_AGGR_TGID, &attr(TYPE_TGID, &[1, 2]));
    assert!(
        find_reply::<GenlMessage<TaskstatsPayload>, _>(&reply_with_attrs(9, &bad_id), 9, |m| {
            parse_tgid_message(m, 5)
        })
        .is_err()
    );
    // A truncated struct inside a well-formed attribute.
    let short = attr(TYPE_STATS, &st[..60]);
    assert!(
        find_reply::<GenlMessage<TaskstatsPayload>, _>(&reply_with_attrs(9, &short), 9, |m| {
            parse_tgid_message(m, 5)
        })
        .is_err()
    );
}

#[test]
fn request_layout() {
    let req = tgid_request(0x1f, 7, 1234);
    assert_eq!(req.len(), 28);
    assert_eq!(u32::from_ne_bytes(req[0..4].try_into().unwrap()), 28);
    assert_eq!(u16::from_ne_bytes(req[4..6].try_into().unwrap()), 0x1f);
    assert_eq!(u16::from_ne_bytes(req[6..8].try_into().unwrap()), 1); // NLM_F_REQUEST
    assert_eq!(u32::from_ne_bytes(req[8..12].try_into().unwrap()), 7);
    assert_eq!(&req[16..18], &[TASKSTATS_CMD_GET, 1]);
    assert_eq!(u16::from_ne_bytes(req[20..22].try_into().unwrap()), 8);
    assert_eq!(u16::from_ne_bytes(req[22..24].try_into().unwrap()), 2); // CMD_ATTR_TGID
    assert_eq!(u32::from_ne_bytes(req[24..28].try_into().unwrap()), 1234);
}
