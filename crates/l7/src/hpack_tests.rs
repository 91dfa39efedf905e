//! RFC 7541 Appendix C examples (C.4: requests with Huffman, C.6: responses
//! with Huffman and eviction at a 256-byte table), checked field by field.

use super::*;
use crate::testutil::Rng;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn fields(d: &mut Decoder, block: &[u8]) -> Result<Vec<(String, String)>, Error> {
    let mut v = Vec::new();
    d.decode(block, &mut |n, val| {
        v.push((
            String::from_utf8_lossy(n).into_owned(),
            String::from_utf8_lossy(val).into_owned(),
        ))
    })?;
    Ok(v)
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn rfc7541_c3_without_huffman() {
    let mut d = Decoder::default();
    let f = fields(&mut d, &hex("828684410f7777772e6578616d706c652e636f6d")).unwrap();
    assert_eq!(
        f,
        pairs(&[
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
            (":authority", "www.example.com")
        ])
    );
    assert_eq!(d.table_size(), 57);
}

#[test]
fn rfc7541_c4_requests_with_huffman() {
    let mut d = Decoder::default();
    let base = [
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/"),
        (":authority", "www.example.com"),
    ];
    assert_eq!(
        fields(&mut d, &hex("828684418cf1e3c2e5f23a6ba0ab90f4ff")).unwrap(),
        pairs(&base)
    );
    assert_eq!(d.table_size(), 57);
    let mut second = base.to_vec();
    second.push(("cache-control", "no-cache"));
    assert_eq!(
        fields(&mut d, &hex("828684be5886a8eb10649cbf")).unwrap(),
        pairs(&second)
    );
    assert_eq!(d.table_size(), 110);
    let third = [
        (":method", "GET"),
        (":scheme", "https"),
        (":path", "/index.html"),
        (":authority", "www.example.com"),
        ("custom-key", "custom-value"),
    ];
    assert_eq!(
        fields(
            &mut d,
            &hex("828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf")
        )
        .unwrap(),
        pairs(&third)
    );
    assert_eq!(d.table_size(), 164);
}

#[test]
fn rfc7541_c6_responses_with_huffman_and_eviction() {
    let mut d = Decoder {
        max_size: 256,
        ..Decoder::default()
    };
    let date1 = "Mon, 21 Oct 2013 20:13:21 GMT";
    let loc = "https://www.example.com";
    let r1 = fields(
        &mut d,
        &hex("488264025885aec3771a4b6196d07abe941054d444a8200595040b8166e082a62d1bff6e919d29ad171863c78f0b97c8e9ae82ae43d3"),
    )
    .unwrap();
    assert_eq!(
        r1,
        pairs(&[
            (":status", "302"),
            ("cache-control", "private"),
            ("date", date1),
            ("location", loc)
        ])
    );
    assert_eq!(d.table_size(), 222);
    let r2 = fields(&mut d, &hex("4883640effc1c0bf")).unwrap();
    assert_eq!(
        r2,
        pairs(&[
            (":status", "307"),
            ("cache-control", "private"),
            ("date", date1),
            ("location", loc)
        ])
    );
    assert_eq!(d.table_size(), 222);
    let r3 = fields(
        &mut d,
        &hex("88c16196d07abe941054d444a8200595040b8166e084a62d1bffc05a839bd9ab77ad94e7821dd7f2e6c7b335dfdfcd5b3960d5af27087f3672c1ab270fb5291f9587316065c003ed4ee5b1063d5007"),
    )
    .unwrap();
    assert_eq!(
        r3,
        pairs(&[
            (":status", "200"),
            ("cache-control", "private"),
            ("date", "Mon, 21 Oct 2013 20:13:22 GMT"),
            ("location", loc),
            ("content-encoding", "gzip"),
            (
                "set-cookie",
                "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"
            ),
        ])
    );
    assert_eq!(d.table_size(), 215);
}

#[test]
fn size_updates_are_bounded() {
    let mut d = Decoder::default();
    assert!(!d.set_limit(1 << 20), "above the cap: clamped");
    // Size update to 100,000 (001 prefix, 5-bit int): clamped to the cap.
    let mut block = vec![0x3f];
    let mut v = 100_000 - 31;
    while v >= 128 {
        block.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    block.push(v as u8);
    assert_eq!(fields(&mut d, &block), Err(Error::SizeAboveLimit));
    assert_eq!(d.max_size, TABLE_CAP);
    // Indexing past the tables, bad Huffman, truncation: errors, no panic.
    assert_eq!(fields(&mut d, &[0xff, 0x00]), Err(Error::BadIndex));
    assert_eq!(fields(&mut d, &[0x80]), Err(Error::BadIndex));
    assert_eq!(
        fields(&mut d, &[0x00, 0x81, 0x00, 0x00]),
        Err(Error::Huffman)
    );
    assert_eq!(fields(&mut d, &[0x40, 0x05, b'a']), Err(Error::Truncated));
}

#[test]
fn fuzz_never_panics() {
    let mut rng = Rng(3);
    let good = hex("828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf");
    for _ in 0..20_000 {
        let mut d = Decoder::default();
        let mut b = if rng.below(2) == 0 {
            let n = rng.below(64);
            rng.bytes(n)
        } else {
            good.clone()
        };
        if !b.is_empty() {
            let i = rng.below(b.len());
            b[i] = rng.next() as u8;
        }
        let _ = fields(&mut d, &b);
        assert!(d.table_size() <= TABLE_CAP);
    }
}
