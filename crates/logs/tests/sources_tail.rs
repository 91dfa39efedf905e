//! FileTailer on real temp files: start at end, appends, partial lines, rename rotation,
//! copytruncate, deletion and re-creation, long lines, invalid UTF-8, resume, many files.
//! Every test checks the exact lines handed out.
#![allow(clippy::unwrap_used)]

use sonde_logs::source::pipeline::{Format, Pipeline};
use sonde_logs::source::tail::{FileTailer, PollStats, TailConfig};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

fn cfg() -> TailConfig {
    TailConfig {
        max_line_bytes: 64 * 1024,
        max_bytes_per_poll: 1024 * 1024,
        rotate_grace: Duration::from_secs(5),
        start_at_end: true,
        new_file_after: None,
    }
}

/// Polls once at `now`, returning the lines (lossy UTF-8) and stats.
fn poll_at(t: &mut FileTailer, now: Instant) -> (Vec<String>, PollStats) {
    let mut lines = Vec::new();
    let st = t.poll(now, &mut |l| {
        lines.push(String::from_utf8_lossy(l.bytes).into_owned())
    });
    (lines, st)
}

fn poll(t: &mut FileTailer) -> Vec<String> {
    poll_at(t, Instant::now()).0
}

/// Polls until a poll has nothing more to read.
fn drain(t: &mut FileTailer) -> Vec<String> {
    let mut all = Vec::new();
    loop {
        let (l, st) = poll_at(t, Instant::now());
        all.extend(l);
        if !st.more {
            return all;
        }
    }
}

fn append(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
}

fn lines(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix} {i}")).collect()
}

fn write_lines(f: &mut File, ls: &[String]) {
    let mut s = String::new();
    for l in ls {
        s.push_str(l);
        s.push('\n');
    }
    f.write_all(s.as_bytes()).unwrap();
}

#[test]
fn starts_at_end_and_follows_appends() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("app.log");
    let mut w = append(&p);
    write_lines(&mut w, &lines("history", 0..100));
    let mut t = FileTailer::new(&p, cfg(), None);
    assert_eq!(poll(&mut t), Vec::<String>::new(), "history is not read");
    write_lines(&mut w, &lines("new", 0..3));
    assert_eq!(poll(&mut t), lines("new", 0..3));
    assert_eq!(poll(&mut t), Vec::<String>::new());
    write_lines(&mut w, &lines("new", 3..5));
    assert_eq!(poll(&mut t), lines("new", 3..5));
}

#[test]
fn a_file_created_later_is_read_from_its_start() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("later.log");
    let mut t = FileTailer::new(&p, cfg(), None);
    assert!(poll(&mut t).is_empty());
    let mut w = append(&p);
    write_lines(&mut w, &lines("a", 0..4));
    assert_eq!(poll(&mut t), lines("a", 0..4));
}

#[test]
fn a_file_born_after_the_start_time_is_read_from_its_start() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("born.log");
    let before = SystemTime::now() - Duration::from_secs(1);
    let mut w = append(&p);
    write_lines(&mut w, &lines("first", 0..3));
    let born = fs::metadata(&p).unwrap().created();
    let mut t = FileTailer::new(
        &p,
        TailConfig {
            new_file_after: Some(before),
            ..cfg()
        },
        None,
    );
    if born.is_err() {
        sonde_testsupport::skip(
            "a_file_born_after_the_start_time_is_read_from_its_start",
            sonde_testsupport::Needs::HostVariant,
            "no birth time on this filesystem; start-at-end applies",
        );
        return;
    }
    assert_eq!(poll(&mut t), lines("first", 0..3));
}

#[test]
fn partial_lines_are_held_until_their_newline() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("p.log");
    let mut w = append(&p);
    let mut t = FileTailer::new(&p, cfg(), None);
    assert!(poll(&mut t).is_empty());
    w.write_all(b"hello wo").unwrap();
    assert!(poll(&mut t).is_empty());
    w.write_all(b"rld").unwrap();
    assert!(poll(&mut t).is_empty());
    w.write_all(b"\nsecond\nthi").unwrap();
    assert_eq!(poll(&mut t), vec!["hello world", "second"]);
    w.write_all(b"rd\r\n").unwrap();
    assert_eq!(
        poll(&mut t),
        vec!["third\r"],
        "the tailer keeps \\r; decoders trim it"
    );
    // An empty line is a line.
    w.write_all(b"\n").unwrap();
    assert_eq!(poll(&mut t), vec![""]);
}

#[test]
fn rename_rotation_reads_the_old_file_to_its_end_then_the_new_one() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("r.log");
    let mut w = append(&p);
    let mut t = FileTailer::new(&p, cfg(), None);
    poll(&mut t);
    write_lines(&mut w, &lines("old", 0..10));
    assert_eq!(poll(&mut t), lines("old", 0..10));
    // Written after our last poll, just before the rename: must not be lost.
    write_lines(&mut w, &lines("old", 10..20));
    fs::rename(&p, d.path().join("r.log.1")).unwrap();
    // The writer has not reopened yet: keeps writing to the renamed file.
    write_lines(&mut w, &lines("old", 20..25));
    let (got, st) = poll_at(&mut t, Instant::now());
    assert_eq!(got, lines("old", 10..25));
    assert_eq!(st.rotations, 1, "the path vanished");
    write_lines(&mut w, &lines("old", 25..27));
    let mut w2 = append(&p);
    write_lines(&mut w2, &lines("new", 0..5));
    let got = poll(&mut t);
    assert_eq!(got, [lines("old", 25..27), lines("new", 0..5)].concat());
    write_lines(&mut w, &lines("old", 27..28));
    write_lines(&mut w2, &lines("new", 5..6));
    assert_eq!(poll(&mut t), vec!["old 27", "new 5"], "old file first");
    assert_eq!(t.open_files(), 2);
}

#[test]
fn rename_with_the_new_file_already_created_in_between_polls() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("r.log");
    let mut w = append(&p);
    let mut t = FileTailer::new(&p, cfg(), None);
    poll(&mut t);
    write_lines(&mut w, &lines("old", 0..3));
    fs::rename(&p, d.path().join("r.log.1")).unwrap();
    let mut w2 = append(&p);
    write_lines(&mut w2, &lines("new", 0..3));
    write_lines(&mut w, &lines("old", 3..4));
    let (got, st) = poll_at(&mut t, Instant::now());
    assert_eq!(got, [lines("old", 0..4), lines("new", 0..3)].concat());
    assert_eq!(st.rotations, 1);
}

#[test]
fn old_file_is_closed_after_the_grace_and_its_last_partial_line_counted() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("g.log");
    let mut w = append(&p);
    let mut t = FileTailer::new(&p, cfg(), None);
    let t0 = Instant::now();
    poll_at(&mut t, t0);
    w.write_all(b"complete\nunterminated").unwrap();
    fs::rename(&p, d.path().join("g.log.1")).unwrap();
    let _w2 = append(&p);
    assert_eq!(poll_at(&mut t, t0).0, vec!["complete"]);
    assert_eq!(t.open_files(), 2);
    assert!(poll_at(&mut t, t0 + Duration::from_secs(4)).0.is_empty());
    let (got, _) = poll_at(&mut t, t0 + Duration::from_secs(6));
    assert_eq!(got, vec!["unterminated"]);
    assert_eq!(t.open_files(), 1);
}

#[test]
fn copytruncate_restarts_at_zero() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("c.log");
    let mut w = append(&p);
    let mut t = FileTailer::new(&p, cfg(), None);
    poll(&mut t);
    write_lines(&mut w, &lines("before", 0..50));
    assert_eq!(poll(&mut t), lines("before", 0..50));
    fs::copy(&p, d.path().join("c.log.1")).unwrap();
    File::options()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(0)
        .unwrap();
    write_lines(&mut w, &lines("after", 0..3));
    let (got, st) = poll_at(&mut t, Instant::now());
    assert_eq!(got, lines("after", 0..3));
    assert_eq!(st.truncations, 1);
    assert_eq!(st.rotations, 0);
}

#[test]
fn copytruncate_detected_even_when_the_file_regrew_past_our_offset() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("c.log");
    let mut w = append(&p);
    let mut t = FileTailer::new(&p, cfg(), None);
    poll(&mut t);
    write_lines(&mut w, &lines("x", 0..5));
    assert_eq!(poll(&mut t), lines("x", 0..5));
    File::options()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(0)
        .unwrap();
    // More than we had read, before our next poll: size alone cannot tell.
    write_lines(&mut w, &lines("regrown line", 0..20));
    let (got, st) = poll_at(&mut t, Instant::now());
    assert_eq!(got, lines("regrown line", 0..20));
    assert_eq!(st.truncations, 1);
}

#[test]
fn truncation_hands_out_the_partial_line_it_cut() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("c.log");
    let mut w = append(&p);
    let mut t = FileTailer::new(&p, cfg(), None);
    poll(&mut t);
    w.write_all(b"a\nhalf").unwrap();
    assert_eq!(poll(&mut t), vec!["a"]);
    File::options()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(0)
        .unwrap();
    w.write_all(b"b\n").unwrap();
    assert_eq!(poll(&mut t), vec!["half", "b"]);
}

#[test]
fn deletion_and_recreation() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("d.log");
    let mut w = append(&p);
    let mut t = FileTailer::new(&p, cfg(), None);
    poll(&mut t);
    write_lines(&mut w, &lines("one", 0..3));
    fs::remove_file(&p).unwrap();
    let (got, st) = poll_at(&mut t, Instant::now());
    assert_eq!(got, lines("one", 0..3));
    assert_eq!(st.rotations, 1);
    assert!(poll(&mut t).is_empty());
    drop(w);
    let mut w = append(&p);
    write_lines(&mut w, &lines("two", 0..4));
    assert_eq!(poll(&mut t), lines("two", 0..4));
    // Deleted and re-created between two polls.
    write_lines(&mut w, &lines("two", 4..6));
    fs::remove_file(&p).unwrap();
    drop(w);
    let mut w = append(&p);
    write_lines(&mut w, &lines("three", 0..2));
    assert_eq!(
        poll(&mut t),
        [lines("two", 4..6), lines("three", 0..2)].concat()
    );
}

#[test]
fn renamed_away_and_back_is_not_read_twice() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("b.log");
    let q = d.path().join("b.tmp");
    let mut w = append(&p);
    let mut t = FileTailer::new(&p, cfg(), None);
    poll(&mut t);
    write_lines(&mut w, &lines("l", 0..3));
    assert_eq!(poll(&mut t), lines("l", 0..3));
    fs::rename(&p, &q).unwrap();
    assert!(poll(&mut t).is_empty());
    fs::rename(&q, &p).unwrap();
    write_lines(&mut w, &lines("l", 3..4));
    assert_eq!(poll(&mut t), lines("l", 3..4));
    assert_eq!(t.open_files(), 1);
}

#[test]
fn one_megabyte_lines_are_cut_and_marked() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("big.log");
    let mut w = append(&p);
    let mut t = FileTailer::new(&p, cfg(), None);
    poll(&mut t);
    let big = "x".repeat(1 << 20);
    w.write_all(format!("{big}\nsmall\n{big}").as_bytes())
        .unwrap();
    let mut got = Vec::new();
    let mut total = PollStats::default();
    loop {
        let st = t.poll(Instant::now(), &mut |l| {
            got.push((l.bytes.len(), l.truncated))
        });
        total.lines += st.lines;
        total.truncated_lines += st.truncated_lines;
        if !st.more {
            break;
        }
    }
    // The unterminated second big line: its head is out (cut), the rest is skipped.
    assert_eq!(got, vec![(65536, true), (5, false), (65536, true)]);
    assert_eq!(total.truncated_lines, 2);
    // Its tail and newline arrive later: skipped, not a new line.
    w.write_all(b"yyyy\nafter\n").unwrap();
    assert_eq!(poll(&mut t), vec!["after"]);
    assert!(t.memory_bytes() < 256 * 1024, "{}", t.memory_bytes());
}

#[test]
fn a_long_line_written_in_pieces_across_polls() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("pieces.log");
    let mut w = append(&p);
    let mut t = FileTailer::new(&p, cfg(), None);
    poll(&mut t);
    for _ in 0..20 {
        w.write_all(&[b'z'; 10_000]).unwrap();
        assert!(poll(&mut t).len() <= 1);
    }
    w.write_all(b"\nnext\n").unwrap();
    assert_eq!(poll(&mut t), vec!["next"]);
}

#[test]
fn invalid_utf8_passes_through_and_decodes_lossily() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("bin.log");
    let mut w = append(&p);
    let mut t = FileTailer::new(&p, cfg(), None);
    poll(&mut t);
    w.write_all(b"ERROR bad \xff\xfe bytes\n\x00\x01\x02\nok\n")
        .unwrap();
    let mut raw = Vec::new();
    let mut msgs = Vec::new();
    let mut pl = Pipeline::new(Format::Plain, 16384, 128);
    t.poll(Instant::now(), &mut |l| {
        raw.push(l.bytes.to_vec());
        pl.push_line(l.bytes, Instant::now(), &mut msgs).unwrap();
    });
    pl.flush(&mut msgs);
    assert_eq!(raw[0], b"ERROR bad \xff\xfe bytes");
    assert_eq!(raw.len(), 3);
    assert_eq!(
        msgs,
        vec!["ERROR bad \u{fffd}\u{fffd} bytes", "\0\u{1}\u{2}", "ok"]
    );
}

#[test]
fn resume_position_continues_without_loss_or_double_count() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("res.log");
    let mut w = append(&p);
    let mut t = FileTailer::new(&p, cfg(), None);
    poll(&mut t);
    w.write_all(b"a\nb\npar").unwrap();
    assert_eq!(poll(&mut t), vec!["a", "b"]);
    let pos = t.position().unwrap();
    assert!(
        t.close(&mut |_| panic!("the current partial line is not handed out"))
            .lines
            == 0
    );
    w.write_all(b"tial\nc\n").unwrap();
    let mut t = FileTailer::new(&p, cfg(), Some(pos));
    assert_eq!(poll(&mut t), vec!["partial", "c"]);
    // A position of another file is ignored: start at end.
    let q = d.path().join("other.log");
    let mut w2 = append(&q);
    write_lines(&mut w2, &lines("hist", 0..3));
    let mut t2 = FileTailer::new(&q, cfg(), Some(pos));
    assert!(poll(&mut t2).is_empty());
}

#[test]
fn many_files() {
    let d = tempfile::tempdir().unwrap();
    let n = 300;
    let mut writers = Vec::new();
    let mut tailers = Vec::new();
    for i in 0..n {
        let p = d.path().join(format!("f{i}.log"));
        writers.push(append(&p));
        let mut t = FileTailer::new(&p, cfg(), None);
        poll(&mut t);
        tailers.push(t);
    }
    for (i, w) in writers.iter_mut().enumerate() {
        write_lines(w, &lines(&format!("file {i} line"), 0..(i % 7 + 1)));
    }
    for (i, t) in tailers.iter_mut().enumerate() {
        assert_eq!(drain(t), lines(&format!("file {i} line"), 0..(i % 7 + 1)));
        assert_eq!(t.open_files(), 1);
    }
}

#[test]
fn per_poll_budget_stops_and_resumes_without_loss() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("budget.log");
    let mut w = append(&p);
    let mut t = FileTailer::new(
        &p,
        TailConfig {
            max_bytes_per_poll: 100_000,
            ..cfg()
        },
        None,
    );
    poll(&mut t);
    let ls = lines("budget line", 0..50_000);
    write_lines(&mut w, &ls);
    // Rotate right away: the old file must still be read to its end first.
    fs::rename(&p, d.path().join("budget.log.1")).unwrap();
    let mut w2 = append(&p);
    write_lines(&mut w2, &lines("new", 0..2));
    let mut polls = 0;
    let mut got = Vec::new();
    loop {
        let (l, st) = poll_at(&mut t, Instant::now());
        polls += 1;
        got.extend(l);
        if !st.more {
            break;
        }
    }
    assert!(polls > 5, "the budget split the reading ({polls} polls)");
    assert_eq!(got, [ls, lines("new", 0..2)].concat());
}
