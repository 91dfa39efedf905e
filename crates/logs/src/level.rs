//! Severity of a log message, guessed from its text. Pure.

/// Severity, ordered from most to least severe (so `level <= Level::Warning` means "warning or
/// worse").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    Critical,
    Error,
    Warning,
    Info,
    Debug,
    Unknown,
}

impl Level {
    /// All levels, most severe first.
    pub const ALL: [Level; 6] = [
        Level::Critical,
        Level::Error,
        Level::Warning,
        Level::Info,
        Level::Debug,
        Level::Unknown,
    ];

    /// The metric label value: "critical", "error", "warning", "info", "debug", "unknown".
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Critical => "critical",
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Info => "info",
            Level::Debug => "debug",
            Level::Unknown => "unknown",
        }
    }

    /// Whether messages of this level keep their own patterns (warning and above, METRICS.md).
    pub fn keeps_patterns(self) -> bool {
        self <= Level::Warning
    }

    /// journald/syslog `PRIORITY` (0 emerg .. 7 debug).
    pub fn from_syslog_priority(priority: u8) -> Level {
        match priority {
            0..=2 => Level::Critical,
            3 => Level::Error,
            4 => Level::Warning,
            5 | 6 => Level::Info,
            7 => Level::Debug,
            _ => Level::Unknown,
        }
    }

    /// A level name as loggers write it ("WARN", "err", "Fatal", "trace", "E" ...), any case.
    pub fn from_name(name: &str) -> Option<Level> {
        let n = name.as_bytes();
        if n.is_empty() || n.len() > 9 {
            return None;
        }
        let mut buf = [0u8; 9];
        for (d, s) in buf.iter_mut().zip(n) {
            *d = s.to_ascii_lowercase();
        }
        Some(match &buf[..n.len()] {
            b"critical" | b"crit" | b"fatal" | b"panic" | b"emerg" | b"emergency" | b"alert"
            | b"dpanic" | b"f" | b"c" => Level::Critical,
            b"error" | b"err" | b"eror" | b"severe" | b"e" => Level::Error,
            b"warning" | b"warn" | b"wrn" | b"w" => Level::Warning,
            b"info" | b"inf" | b"notice" | b"i" | b"information" => Level::Info,
            b"debug" | b"dbg" | b"trace" | b"trc" | b"fine" | b"finer" | b"finest" | b"d"
            | b"verbose" => Level::Debug,
            _ => return None,
        })
    }
}

/// How far into a message the header (where loggers print the level) is searched.
const HEAD: usize = 256;

/// Guesses a message's level: klog/glog prefixes ("E0102 15:04:05.000000 ..."), `level=` /
/// `"level":"..."` fields (logfmt, JSON), and level words in the head of the message ("WARN",
/// "[error]", "<Error>", "ERROR:root:"). Lower-case words count only when delimited like a level
/// ("[warn]", "level=warn", "error:" first), so "no error found" stays unknown.
pub fn detect_level(message: &str) -> Level {
    let m = message.as_bytes();
    if let Some(l) = klog(m) {
        return l;
    }
    let head = &m[..m.len().min(HEAD)];
    if let Some(l) = field(head) {
        return l;
    }
    words(head).unwrap_or(Level::Unknown)
}

/// glog/klog: `Lmmdd hh:mm:ss.uuuuuu ...` with L one of I W E F.
fn klog(m: &[u8]) -> Option<Level> {
    if m.len() < 6 || !m[1..5].iter().all(u8::is_ascii_digit) || m[5] != b' ' {
        return None;
    }
    match m[0] {
        b'I' => Some(Level::Info),
        b'W' => Some(Level::Warning),
        b'E' => Some(Level::Error),
        b'F' => Some(Level::Critical),
        _ => None,
    }
}

/// `level=warn`, `lvl=E`, `severity: "ERROR"`, `"level":"error"`, `"log.level": "info"`.
fn field(head: &[u8]) -> Option<Level> {
    const KEYS: [&[u8]; 6] = [
        b"level",
        b"lvl",
        b"severity",
        b"levelname",
        b"loglevel",
        b"log.level",
    ];
    let mut i = 0;
    while i < head.len() {
        // Find the end of an identifier-ish key.
        if !head[i].is_ascii_alphabetic() || (i > 0 && (head[i - 1].is_ascii_alphanumeric())) {
            i += 1;
            continue;
        }
        let start = i;
        while i < head.len()
            && (head[i].is_ascii_alphanumeric() || head[i] == b'.' || head[i] == b'_')
        {
            i += 1;
        }
        let key = &head[start..i];
        // Cheap gate first: every key starts with l or s.
        if !matches!(key[0] | 0x20, b'l' | b's')
            || !KEYS.iter().any(|k| k.eq_ignore_ascii_case(key))
        {
            continue;
        }
        let mut j = i;
        if j < head.len() && head[j] == b'"' {
            j += 1;
        }
        while j < head.len() && head[j] == b' ' {
            j += 1;
        }
        if j >= head.len() || (head[j] != b'=' && head[j] != b':') {
            continue;
        }
        j += 1;
        while j < head.len() && matches!(head[j], b' ' | b'"' | b'\'') {
            j += 1;
        }
        let vs = j;
        while j < head.len() && head[j].is_ascii_alphabetic() {
            j += 1;
        }
        if let Some(l) = name(&head[vs..j]) {
            return Some(l);
        }
        i = j.max(i);
    }
    None
}

/// Level words in the head: upper-case words anywhere ("INFO", "[WARN]"), other cases only in
/// brackets ("[error]", "<Warning>") or as the first word followed by ':' ("Error: ...").
fn words(head: &[u8]) -> Option<Level> {
    let mut i = 0;
    let mut first = true;
    while i < head.len() {
        if !head[i].is_ascii_alphabetic() {
            i += 1;
            continue;
        }
        let start = i;
        while i < head.len() && head[i].is_ascii_alphabetic() {
            i += 1;
        }
        let w = &head[start..i];
        if w.len() > 9 {
            first = false;
            continue;
        }
        let before = if start > 0 { head[start - 1] } else { b' ' };
        let after = head.get(i).copied().unwrap_or(b' ');
        let was_first = first;
        first = false;
        if before.is_ascii_alphanumeric() || after.is_ascii_digit() || w.len() < 3 {
            // Part of a larger token ("ERROR2", "9INFO"), or a single letter ("E", "W"), which
            // is too ambiguous outside klog's prefix.
            continue;
        }
        let Some(level) = name(w) else { continue };
        let upper = w.iter().all(u8::is_ascii_uppercase);
        let bracketed = matches!((before, after), (b'[', b']') | (b'<', b'>') | (b'(', b')'));
        let leading = was_first && after == b':';
        if (upper && !matches!(after, b'_' | b'-' | b'.')) || bracketed || leading {
            return Some(level);
        }
    }
    None
}

fn name(w: &[u8]) -> Option<Level> {
    std::str::from_utf8(w).ok().and_then(Level::from_name)
}
