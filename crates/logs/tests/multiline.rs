//! Multi-line joining: stack traces and tracebacks become one message.
#![allow(clippy::unwrap_used)]

use sonde_logs::decode::MultilineJoiner;

fn join(text: &str) -> Vec<String> {
    let mut j = MultilineJoiner::new(1 << 20, 1000);
    let mut out: Vec<String> = text.lines().filter_map(|l| j.push(l)).collect();
    out.extend(j.flush());
    out
}

#[test]
fn java_stack_trace_with_caused_by() {
    let log = "\
2024-01-01 10:00:00 INFO  [main] c.e.App - starting
2024-01-01 10:00:01 ERROR [main] c.e.App - request failed
java.lang.IllegalStateException: boom
\tat com.example.App.handle(App.java:42)
\tat com.example.App.main(App.java:10)
Caused by: java.io.IOException: disk full
\tat com.example.Store.write(Store.java:7)
\t... 2 more
2024-01-01 10:00:02 INFO  [main] c.e.App - next";
    let m = join(log);
    assert_eq!(m.len(), 3, "{m:#?}");
    assert!(m[1].starts_with("2024-01-01 10:00:01 ERROR"));
    assert!(m[1].contains("Caused by: java.io.IOException"));
    assert!(m[1].ends_with("\t... 2 more"));
    assert_eq!(m[1].lines().count(), 7);
    assert_eq!(m[2], "2024-01-01 10:00:02 INFO  [main] c.e.App - next");
}

#[test]
fn python_traceback() {
    let log = "\
ERROR:root:failed
Traceback (most recent call last):
  File \"x.py\", line 3, in <module>
    1/0
ZeroDivisionError: division by zero

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File \"x.py\", line 5, in <module>
    raise ValueError()
ValueError
INFO:root:next";
    let m = join(log);
    assert_eq!(m.len(), 2, "{m:#?}");
    assert!(m[0].contains("ZeroDivisionError: division by zero"));
    assert!(m[0].ends_with("ValueError"));
    assert_eq!(m[1], "INFO:root:next");
}

#[test]
fn go_panic() {
    let log = "\
panic: runtime error: index out of range [5] with length 3

goroutine 1 [running]:
main.main()
\t/tmp/x.go:8 +0x1d
exit status 2";
    let m = join(log);
    assert_eq!(m.len(), 2, "{m:#?}");
    assert!(m[0].contains("main.main()"));
    assert_eq!(m[1], "exit status 2");
}

#[test]
fn plain_lines_stay_apart_and_joining_is_bounded() {
    assert_eq!(join("a\nb\nc"), ["a", "b", "c"]);
    let mut j = MultilineJoiner::new(100, 5);
    assert!(j.push("start").is_none());
    for _ in 0..10_000 {
        assert!(
            j.push("\tat x.y(Z.java:1) and some more text to fill the buffer")
                .is_none()
        );
    }
    let m = j.push("next").unwrap();
    assert!(m.len() <= 100 + 5, "{}", m.len());
    assert!(m.lines().count() <= 5);
    assert_eq!(j.flush().as_deref(), Some("next"));
    assert_eq!(j.flush(), None);
}
