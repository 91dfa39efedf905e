//! Decoders on real-format lines, malformed input, bounds.
#![allow(clippy::unwrap_used)]

use sonde_logs::decode::{CriDecoder, DecodeError, DockerJsonDecoder, Stream, decode_plain};

#[test]
fn docker_json_lines() {
    let mut d = DockerJsonDecoder::new(1 << 20);
    let r = d
        .decode(br#"{"log":"GET /health 200\n","stream":"stdout","time":"2024-05-01T10:00:00.123456789Z"}"#)
        .unwrap()
        .unwrap();
    assert_eq!(r.message, "GET /health 200");
    assert_eq!(r.stream, Stream::Stdout);
    assert_eq!(r.time.as_deref(), Some("2024-05-01T10:00:00.123456789Z"));
    // Escapes are decoded, stderr recognised, a CRLF trimmed.
    let r = d
        .decode(br#"{"log":"tab\there \"quoted\" \u00e9\r\n","stream":"stderr","time":"t"}"#)
        .unwrap()
        .unwrap();
    assert_eq!(r.message, "tab\there \"quoted\" é");
    assert_eq!(r.stream, Stream::Stderr);
}

#[test]
fn docker_json_split_lines_are_joined_per_stream() {
    let mut d = DockerJsonDecoder::new(1 << 20);
    assert!(
        d.decode(br#"{"log":"part one ","stream":"stdout","time":"t1"}"#)
            .unwrap()
            .is_none()
    );
    // An stderr line in between does not disturb the stdout message in progress.
    let e = d
        .decode(br#"{"log":"err\n","stream":"stderr","time":"t2"}"#)
        .unwrap()
        .unwrap();
    assert_eq!(e.message, "err");
    let r = d
        .decode(br#"{"log":"part two\n","stream":"stdout","time":"t3"}"#)
        .unwrap()
        .unwrap();
    assert_eq!(r.message, "part one part two");
    assert_eq!(
        r.time.as_deref(),
        Some("t1"),
        "a joined message keeps its first time"
    );
}

#[test]
fn docker_json_malformed_and_invalid_utf8() {
    let mut d = DockerJsonDecoder::new(1024);
    for bad in [
        &b"{"[..],
        b"not json",
        br#"{"stream":"stdout"}"#,
        br#"{"log":5}"#,
        b"",
    ] {
        let err = d.decode(bad).unwrap_err();
        assert!(
            matches!(err, DecodeError::DockerJson { .. }),
            "{bad:?}: {err}"
        );
    }
    // Raw invalid UTF-8 inside the string: replaced, not an error.
    let mut line = br#"{"log":"bad "#.to_vec();
    line.extend_from_slice(&[0xff, 0xfe]);
    line.extend_from_slice(br#" bytes\n","stream":"stdout","time":"t"}"#);
    let r = d.decode(&line).unwrap().unwrap();
    assert_eq!(r.message, "bad \u{fffd}\u{fffd} bytes");
}

#[test]
fn docker_json_one_megabyte_line_is_bounded() {
    let max = 64 * 1024;
    let mut d = DockerJsonDecoder::new(max);
    let chunk = "é".repeat(8 * 1024); // 16 KiB, like docker's split size
    let mut out = None;
    for i in 0..64 {
        let end = if i == 63 { "\\n" } else { "" };
        let line = format!(r#"{{"log":"{chunk}{end}","stream":"stdout","time":"t"}}"#);
        out = d.decode(line.as_bytes()).unwrap();
        if i < 63 {
            assert!(out.is_none());
        }
    }
    let r = out.unwrap();
    assert!(r.message.len() <= max);
    assert_eq!(r.message.len() + r.truncated, 64 * chunk.len());
    assert!(
        r.message.chars().all(|c| c == 'é'),
        "truncated on a char boundary"
    );
}

#[test]
fn docker_json_flush_returns_incomplete_message() {
    let mut d = DockerJsonDecoder::new(1024);
    assert!(
        d.decode(br#"{"log":"no newline","stream":"stdout","time":"t"}"#)
            .unwrap()
            .is_none()
    );
    let rest = d.flush();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].message, "no newline");
    assert!(d.flush().is_empty());
}

#[test]
fn cri_lines_and_partials() {
    let mut d = CriDecoder::new(1 << 20);
    let r = d
        .decode(b"2016-10-06T00:17:09.669794202Z stdout F hello world\n")
        .unwrap()
        .unwrap();
    assert_eq!(
        (r.stream, r.message.as_str()),
        (Stream::Stdout, "hello world")
    );
    assert_eq!(r.time.as_deref(), Some("2016-10-06T00:17:09.669794202Z"));
    assert!(
        d.decode(b"2016-10-06T00:17:10.1Z stdout P first ")
            .unwrap()
            .is_none()
    );
    assert!(
        d.decode(b"2016-10-06T00:17:10.2Z stderr P other ")
            .unwrap()
            .is_none()
    );
    assert!(
        d.decode(b"2016-10-06T00:17:10.3Z stdout P second ")
            .unwrap()
            .is_none()
    );
    let r = d
        .decode(b"2016-10-06T00:17:10.4Z stdout F third")
        .unwrap()
        .unwrap();
    assert_eq!(r.message, "first second third");
    assert_eq!(r.time.as_deref(), Some("2016-10-06T00:17:10.1Z"));
    let r = d
        .decode(b"2016-10-06T00:17:10.5Z stderr F end")
        .unwrap()
        .unwrap();
    assert_eq!(
        (r.stream, r.message.as_str()),
        (Stream::Stderr, "other end")
    );
    // Spaces inside the message are kept; an empty message is allowed; extra tags tolerated.
    let r = d
        .decode(b"2016-10-06T00:17:11Z stdout F  two  spaces ")
        .unwrap()
        .unwrap();
    assert_eq!(r.message, " two  spaces ");
    let r = d.decode(b"2016-10-06T00:17:11Z stdout F").unwrap().unwrap();
    assert_eq!(r.message, "");
    let r = d
        .decode(b"2016-10-06T00:17:11Z stdout F:x y")
        .unwrap()
        .unwrap();
    assert_eq!(r.message, "y");
}

#[test]
fn cri_malformed_and_bounded() {
    let mut d = CriDecoder::new(10);
    for bad in [
        &b""[..],
        b"2016",
        b"t stdin F x",
        b"t stdout X x",
        b" stdout F x",
    ] {
        assert!(
            matches!(d.decode(bad), Err(DecodeError::Cri { .. })),
            "{bad:?}"
        );
    }
    let mut line = b"t stdout F ".to_vec();
    line.extend_from_slice(&[0xc3, 0x28, b'a']);
    assert_eq!(d.decode(&line).unwrap().unwrap().message, "\u{fffd}(a");
    for _ in 0..1000 {
        assert!(d.decode(b"t stdout P 0123456789").unwrap().is_none());
    }
    let r = d.decode(b"t stdout F end").unwrap().unwrap();
    assert_eq!(r.message, "0123456789");
    assert_eq!(r.truncated, 1000 * 10 - 10 + 3);
    let big = format!("t stdout F {}", "x".repeat(1 << 20));
    let r = d.decode(big.as_bytes()).unwrap().unwrap();
    assert_eq!(r.message.len(), 10);
    assert!(d.flush().is_empty());
}

#[test]
fn plain_lines() {
    assert_eq!(decode_plain(b"hello\r\n"), "hello");
    assert_eq!(decode_plain(b"a\xffb\n"), "a\u{fffd}b");
    assert_eq!(decode_plain(b""), "");
}
