//! Joins the lines of one multi-line message (Java stack traces and `Caused by:`, Python
//! tracebacks, Go panics, indented continuations) into one message.
//!
//! Push lines in order; a message is returned when the next one starts, or by [`flush`]
//! (which the caller invokes when its source has been idle for a moment, so that the last
//! message of a burst is not held back).
//!
//! [`flush`]: MultilineJoiner::flush

/// What the message in progress is, which decides what may continue it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Plain,
    /// After "Traceback (most recent call last):": indented frames, then the exception line.
    PyTraceback,
    /// After "panic: ..." / "fatal error: ...": goroutine dumps, which are not all indented.
    GoPanic,
}

/// A bounded multi-line joiner for one stream.
#[derive(Debug)]
pub struct MultilineJoiner {
    max_bytes: usize,
    max_lines: usize,
    buf: String,
    lines: usize,
    state: State,
}

impl MultilineJoiner {
    /// A joiner producing messages of at most `max_bytes` bytes and `max_lines` lines (beyond,
    /// continuation lines are dropped, not started as new messages).
    pub fn new(max_bytes: usize, max_lines: usize) -> Self {
        MultilineJoiner {
            max_bytes,
            max_lines: max_lines.max(1),
            buf: String::new(),
            lines: 0,
            state: State::Plain,
        }
    }

    /// Feeds one line (without its newline). Returns the previous message when `line` starts
    /// a new one.
    pub fn push(&mut self, line: &str) -> Option<String> {
        let line = line.trim_end_matches(['\n', '\r']);
        if self.lines > 0 && self.continues(line) {
            self.update_state(line);
            if self.lines < self.max_lines {
                self.buf.push('\n');
                super::append_bounded(&mut self.buf, line, self.max_bytes);
            }
            self.lines += 1;
            return None;
        }
        let done = self.take();
        self.state = State::Plain;
        self.update_state(line);
        super::append_bounded(&mut self.buf, line, self.max_bytes);
        self.lines = 1;
        done
    }

    /// Returns the message in progress, if any.
    pub fn flush(&mut self) -> Option<String> {
        self.take()
    }

    /// Whether a message is in progress.
    pub fn is_pending(&self) -> bool {
        self.lines > 0
    }

    fn take(&mut self) -> Option<String> {
        if self.lines == 0 {
            return None;
        }
        self.lines = 0;
        self.state = State::Plain;
        Some(std::mem::take(&mut self.buf))
    }

    fn continues(&mut self, line: &str) -> bool {
        if line.trim().is_empty() || line.starts_with([' ', '\t']) {
            return true;
        }
        match self.state {
            State::PyTraceback => true,
            State::GoPanic => {
                line.starts_with("goroutine ")
                    || line.starts_with("created by ")
                    || line.ends_with(')')
                    || line.starts_with("[signal ")
            }
            State::Plain => {
                line.starts_with("Caused by:")
                    || line.starts_with("Suppressed:")
                    || is_more(line)
                    || is_java_exception(line)
                    || line.starts_with("During handling of the above exception")
                    || line.starts_with("The above exception was the direct cause")
                    || line.starts_with("Traceback (most recent call last):")
            }
        }
    }

    fn update_state(&mut self, line: &str) {
        if line.starts_with("Traceback (most recent call last):") {
            self.state = State::PyTraceback;
        } else if self.state == State::PyTraceback
            && !line.starts_with([' ', '\t'])
            && !line.trim().is_empty()
        {
            // The exception line ends the traceback.
            self.state = State::Plain;
        } else if line.starts_with("panic: ") || line.starts_with("fatal error: ") {
            self.state = State::GoPanic;
        }
    }
}

/// Java's "... 12 more".
fn is_more(line: &str) -> bool {
    line.strip_prefix("...")
        .and_then(|r| r.trim().strip_suffix("more"))
        .is_some_and(|n| !n.trim().is_empty() && n.trim().bytes().all(|b| b.is_ascii_digit()))
}

/// A Java exception line printed after the log line: `java.lang.IllegalStateException: boom`,
/// `com.example.MyError`: a dotted qualified name whose last part ends in Exception or Error.
fn is_java_exception(line: &str) -> bool {
    let name = line.split([':', ' ']).next().unwrap_or("");
    let Some((pkg, class)) = name.rsplit_once('.') else {
        return false;
    };
    !pkg.is_empty()
        && pkg.split('.').all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$')
        })
        && (class.ends_with("Exception")
            || class.ends_with("Error")
            || class.ends_with("Throwable"))
        && class
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$')
}
