//! The masking layer of the pattern miner: message -> template -> stable 64-bit hash. Pure and
//! stateless.
//!
//! A template is the message with its variable parts replaced by `<*>`. Variables are recognised
//! here by the shape of each whitespace-separated token alone (digits, key=value values,
//! timestamps, hex ids ...), never by what other messages looked like, so this hash is a pure
//! function of the message. Variables that only the data can reveal (word values such as user
//! or host names) are learned on top of these templates by [`crate::learn::PatternMiner`], whose
//! clusters keep this hash until they learn a position. See docs/logs.md for the measurements.
//!
//! `pattern_hash(m) == hash_template(&template(m))`, so anyone holding a template can recompute
//! its hash; the hot path computes it while scanning, without allocating.

/// The placeholder for a variable part in a rendered template.
pub const WILDCARD: &str = "<*>";

/// Stable 64-bit pattern hash of a message: [`hash_template`] of its [`template`], computed in
/// one pass without allocating.
pub fn pattern_hash(message: &str) -> u64 {
    let mut h = HashSink::new();
    walk(message.as_bytes(), &mut h);
    h.finish()
}

/// The template of a message: variable tokens replaced by [`WILDCARD`], whitespace normalised to
/// single spaces. Allocates; for display (CLI, samples), not for the hot path.
pub fn template(message: &str) -> String {
    let mut s = StringSink(Vec::with_capacity(message.len()));
    walk(message.as_bytes(), &mut s);
    // Only whole input tokens or ASCII separators are copied, so the bytes stay valid UTF-8;
    // the lossy fallback is never taken but keeps this function panic-free.
    String::from_utf8(s.0).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// The hash of an already rendered template. Defined on the bytes: little-endian 8-byte words
/// (the last one zero-padded, with the length mixed in), each folded with a multiply-rotate, and
/// a final avalanche; stable across platforms and releases that keep the same template rules.
pub fn hash_template(template: &str) -> u64 {
    let mut h = HashSink::new();
    h.literal(template.as_bytes());
    h.finish()
}

/// Renders a hash the way metrics label it: 16 lowercase hex digits.
pub fn hash_hex(hash: u64) -> String {
    format!("{hash:016x}")
}

/// Receives the template as it is produced, so hashing and rendering share one walk and can
/// never disagree.
trait Sink {
    fn literal(&mut self, bytes: &[u8]);
    fn wildcard(&mut self) {
        self.literal(WILDCARD.as_bytes());
    }
    /// The single space between two tokens (the only place a space is emitted, so a sink can
    /// see token boundaries).
    fn sep(&mut self) {
        self.literal(b" ");
    }
}

/// A streaming word-at-a-time hash: byte-wise FNV cost 4 cycles a byte (a multiply chain),
/// this costs about one multiply per 8 bytes.
#[derive(Clone, Copy)]
struct HashSink {
    h: u64,
    acc: u64,
    /// Bytes buffered in `acc`.
    n: u32,
    len: u64,
}

const K1: u64 = 0x9e37_79b9_7f4a_7c15;
const K2: u64 = 0xff51_afd7_ed55_8ccd;

impl HashSink {
    fn new() -> Self {
        HashSink {
            h: 0x243f_6a88_85a3_08d3,
            acc: 0,
            n: 0,
            len: 0,
        }
    }

    #[inline]
    fn mix(&mut self, w: u64) {
        self.h = (self.h ^ w).wrapping_mul(K1).rotate_left(29);
    }

    fn finish(mut self) -> u64 {
        let tail = self.acc;
        self.mix(tail ^ self.len.rotate_left(56));
        let mut h = self.h;
        h ^= h >> 33;
        h = h.wrapping_mul(K2);
        h ^= h >> 33;
        h = h.wrapping_mul(K1);
        h ^ (h >> 33)
    }
}

impl Sink for HashSink {
    #[inline]
    fn literal(&mut self, mut bytes: &[u8]) {
        self.len += bytes.len() as u64;
        while self.n != 0 && !bytes.is_empty() {
            self.acc |= u64::from(bytes[0]) << (8 * self.n);
            self.n = (self.n + 1) & 7;
            bytes = &bytes[1..];
            if self.n == 0 {
                let w = std::mem::take(&mut self.acc);
                self.mix(w);
            }
        }
        if bytes.is_empty() {
            return;
        }
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.mix(u64::from_le_bytes(w));
        }
        for (k, &b) in chunks.remainder().iter().enumerate() {
            self.acc |= u64::from(b) << (8 * k);
        }
        self.n = chunks.remainder().len() as u32;
    }
}

struct StringSink(Vec<u8>);

impl Sink for StringSink {
    fn literal(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }
}

/// Messages longer than this are templated on their first `MAX_SCAN` bytes only: the head of a
/// message identifies its kind, and it bounds the cost of a 1 MB line.
pub const MAX_SCAN: usize = 4096;

const SPACE: u8 = 1;
const DIGIT: u8 = 2;
/// `=` or `:`.
const KV: u8 = 4;
const DOT: u8 = 8;
const SLASH: u8 = 16;
const LOWER: u8 = 32;
const UPPER: u8 = 64;
const COMMA: u8 = 128;

/// Byte classes, so that one pass over a token tells which (costlier) checks can apply.
static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = match b {
            b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c => SPACE,
            b'0'..=b'9' => DIGIT,
            b'=' | b':' => KV,
            b'.' => DOT,
            b'/' => SLASH,
            b',' => COMMA,
            b'a'..=b'z' => LOWER,
            b'A'..=b'Z' => UPPER,
            _ => 0,
        };
        i += 1;
    }
    t
};

#[inline]
fn is_space(b: u8) -> bool {
    CLASS[b as usize] == SPACE
}

#[inline]
fn is_open(b: u8) -> bool {
    matches!(b, b'(' | b'[' | b'{' | b'<' | b'"' | b'\'')
}

#[inline]
fn is_close(b: u8) -> bool {
    matches!(
        b,
        b')' | b']' | b'}' | b'>' | b'"' | b'\'' | b',' | b';' | b':' | b'.'
    )
}

/// State carried from one token to the next.
#[derive(Clone, Copy)]
struct Prev {
    /// Nothing emitted yet (no separator needed).
    first: bool,
    /// The output ends with a wildcard, so a following variable merges into it.
    ends_wild: bool,
    /// The previous token was a date word or a variable (for "Sun Jul 10 ..." and time zones).
    date_ctx: bool,
    /// A `(` opening a variable right after a variable was swallowed (an optional part such as
    /// the "(18.4 KB)" of "18846 bytes (18.4 KB)"), so its `)` is swallowed too.
    paren: bool,
}

fn walk<S: Sink>(msg: &[u8], sink: &mut S) {
    let mut end = msg.len().min(MAX_SCAN);
    // Cut on a UTF-8 boundary so that templates stay valid text.
    while end < msg.len() && end > 0 && msg[end] & 0xc0 == 0x80 {
        end -= 1;
    }
    let msg = &msg[..end];
    let n = msg.len();
    let mut i = 0;
    let mut prev = Prev {
        first: true,
        ends_wild: false,
        date_ctx: false,
        paren: false,
    };
    while i < n {
        while i < n && is_space(msg[i]) {
            i += 1;
        }
        if i >= n {
            break;
        }
        let start = i;
        if msg[i] == b'['
            && let Some(close) = matching_bracket(&msg[i..])
        {
            // A square-bracketed group (thread name, request context, list, node id) is one
            // variable, spaces included: "[IPC Server handler 5 on 9000]", "[req-1 - - -]".
            i += close + 1;
            let trail_start = i;
            while i < n && !is_space(msg[i]) {
                i += 1;
            }
            emit_var(b"", &msg[trail_start..i], prev, sink);
            prev = Prev {
                first: false,
                ends_wild: trail_start == i,
                date_ctx: false,
                paren: false,
            };
            continue;
        }
        let mut flags = 0u8;
        while i < n {
            let c = CLASS[msg[i] as usize];
            if c == SPACE {
                break;
            }
            flags |= c;
            i += 1;
            // JSON: `",` and `":` end a token, so that each key and each value is judged on
            // its own ("level":"error","ts":1700000000.1,"msg":"failed ...).
            if c & (KV | COMMA) != 0
                && i < n
                && msg[i - 1] != b'='
                && (msg[i] == b'"' || (c == KV && i >= 2 && msg[i - 2] == b'"'))
            {
                break;
            }
        }
        let mut j = i;
        while j < n && is_space(msg[j]) {
            j += 1;
        }
        let next = &msg[j..];
        prev = token(&msg[start..i], flags, next, prev, sink);
    }
}

/// Emits one token, returns the state for the next.
fn token<S: Sink>(tok: &[u8], flags: u8, next: &[u8], prev: Prev, sink: &mut S) -> Prev {
    let mut a = 0;
    let mut b = tok.len();
    while a < b && is_open(tok[a]) {
        a += 1;
    }
    // A closer whose opener is inside the token stays with it: "LOCAL(0)," peels only ",".
    while b > a && is_close(tok[b - 1]) && !opened_inside(&tok[a..b - 1], tok[b - 1]) {
        b -= 1;
    }
    let (lead, core, trail) = (&tok[..a], &tok[a..b], &tok[b..]);
    let literal = Prev {
        first: false,
        ends_wild: false,
        date_ctx: false,
        paren: false,
    };
    if core.is_empty() {
        if tok == b"()" && prev.ends_wild {
            // An empty optional part after a variable: "from 1.2.3.4 ()" as "from 1.2.3.4
            // (host.example)", whose group is swallowed into the variable before it.
            return prev;
        }
        if is_empty_pair(tok) {
            // "()", "[]", "\"\"": a variable that happened to be empty this time.
            emit_var(&tok[..1], &tok[1..], prev, sink);
            return literal;
        }
        sep(prev, sink);
        sink.literal(tok);
        return literal;
    }
    let digit = flags & DIGIT != 0;
    if flags & KV != 0
        && let Some(eq) = core.iter().position(|&c| c == b'=' || c == b':')
        && eq > 0
        && is_key(&core[..eq])
        && !is_path(core)
    {
        // key=value, key:value: the key is constant, the value judged on its own, so that
        // logfmt's `msg="Starting` keeps its word while `pid=42` becomes `pid=<*>`.
        let value = &core[eq + 1..];
        if has_digit(value) || is_path(value) || is_dotted(value) {
            sep(prev, sink);
            sink.literal(lead);
            sink.literal(&core[..=eq]);
            sink.wildcard();
            sink.literal(trail);
            return Prev {
                first: false,
                ends_wild: trail.is_empty(),
                date_ctx: false,
                paren: false,
            };
        }
        sep(prev, sink);
        sink.literal(tok);
        return literal;
    }
    if flags & (LOWER | DIGIT) == 0 && is_level_word(core) {
        // The level is its own label; dropping it groups "INFO x" and "FATAL x" as one kind.
        return prev;
    }
    if prev.ends_wild && prev.date_ctx && (is_unit(core) || is_zone(core)) {
        // "5 KB" and "5 B", "12:00 UTC": the unit or zone belongs to the number before it.
        let trail = if trail == b"," { &trail[..0] } else { trail };
        let trail = if prev.paren {
            close_paren(trail)
        } else {
            trail
        };
        sink.literal(trail);
        return Prev {
            first: false,
            ends_wild: trail.is_empty(),
            date_ctx: false,
            paren: false,
        };
    }
    let date = !digit && is_date_word(core) && (prev.date_ctx || next_is_date_part(next));
    let variable = date
        || digit
        || (flags & SLASH != 0 && is_path(core))
        || (flags & DOT != 0 && is_dotted(core));
    if !variable {
        sep(prev, sink);
        sink.literal(tok);
        return literal;
    }
    // A run of variables ("1 2 3", "Nov 9 12:01:01", "a1, b2") becomes one wildcard so that
    // lists of varying length share a template.
    let trail = if trail == b"," { &trail[..0] } else { trail };
    if prev.ends_wild && digit && lead == b"(" {
        // An optional part that is all variable right after a variable ("18846 bytes (18.4
        // KB)" and "403 bytes") is part of that variable: the parenthesis is swallowed.
        let closed = trail.first() == Some(&b')');
        let trail = if closed { &trail[1..] } else { trail };
        sink.literal(trail);
        return Prev {
            first: false,
            ends_wild: trail.is_empty(),
            date_ctx: true,
            paren: !closed && trail.is_empty(),
        };
    }
    let trail = if prev.paren {
        close_paren(trail)
    } else {
        trail
    };
    // "<1 sec", ">500 ms": a comparison sign belongs to the number ("00:01" and "<1 sec" are
    // the same variable); an unclosed `<` or `>` only, so "<42>" stays a bracketed variable.
    let lead = if digit && matches!(lead, b"<" | b">") && !trail.contains(&b'>') {
        &lead[..0]
    } else {
        lead
    };
    emit_var(lead, trail, prev, sink);
    Prev {
        first: false,
        ends_wild: trail.is_empty(),
        date_ctx: date || digit,
        paren: false,
    }
}

/// `trail` without the `)` that closes a swallowed parenthesis.
fn close_paren(trail: &[u8]) -> &[u8] {
    trail.strip_prefix(b")").unwrap_or(trail)
}

/// Whether `s` holds more openers than closers of the bracket `close` ends.
fn opened_inside(s: &[u8], close: u8) -> bool {
    let open = match close {
        b')' => b'(',
        b']' => b'[',
        b'}' => b'{',
        b'>' => b'<',
        _ => return false,
    };
    let mut depth = 0i32;
    for &c in s {
        if c == open {
            depth += 1;
        } else if c == close {
            depth -= 1;
        }
    }
    depth > 0
}

/// Units that follow a number.
fn is_unit(core: &[u8]) -> bool {
    const UNITS: [&[u8]; 28] = [
        b"B", b"KB", b"MB", b"GB", b"TB", b"PB", b"KiB", b"MiB", b"GiB", b"TiB", b"kB", b"bytes",
        b"ns", b"us", b"ms", b"s", b"sec", b"secs", b"seconds", b"min", b"mins", b"minutes", b"h",
        b"hours", b"days", b"%", b"k", b"M",
    ];
    UNITS.contains(&core)
}

/// Emits `lead<*>trail`, merging into a wildcard the output already ends with.
fn emit_var<S: Sink>(lead: &[u8], trail: &[u8], prev: Prev, sink: &mut S) {
    if !(prev.ends_wild && lead.is_empty()) {
        sep(prev, sink);
        sink.literal(lead);
        sink.wildcard();
    }
    sink.literal(trail);
}

#[inline]
fn sep<S: Sink>(prev: Prev, sink: &mut S) {
    if !prev.first {
        sink.sep();
    }
}

fn is_empty_pair(tok: &[u8]) -> bool {
    matches!(tok, b"()" | b"[]" | b"{}" | b"<>" | b"\"\"" | b"''")
}

/// File paths and URLs: a slash at the start ("/etc/hosts") or "://" ("http://x").
fn is_path(core: &[u8]) -> bool {
    core.len() > 1 && (core[0] == b'/' || core.windows(3).any(|w| w == b"://"))
}

fn next_is_date_part(next: &[u8]) -> bool {
    match next.first() {
        Some(c) if c.is_ascii_digit() => true,
        Some(_) => {
            let end = next
                .iter()
                .position(|&c| is_space(c) || c == b',')
                .unwrap_or(next.len());
            is_date_word(&next[..end])
        }
        None => false,
    }
}

/// Time-zone abbreviations that follow a date or time.
fn is_zone(core: &[u8]) -> bool {
    const ZONES: [&[u8]; 16] = [
        b"UTC", b"GMT", b"Z", b"EST", b"EDT", b"CST", b"CDT", b"MST", b"MDT", b"PST", b"PDT",
        b"CET", b"CEST", b"BST", b"IST", b"JST",
    ];
    ZONES.contains(&core)
}

#[inline]
fn has_digit(s: &[u8]) -> bool {
    s.iter().any(u8::is_ascii_digit)
}

/// Month and weekday names, which are variables when a number follows ("Nov 9", "Mon 12:00").
fn is_date_word(s: &[u8]) -> bool {
    if s.len() < 3 || s.len() > 9 {
        return false;
    }
    let mut buf = [0u8; 9];
    for (d, c) in buf.iter_mut().zip(s) {
        *d = c.to_ascii_lowercase();
    }
    matches!(
        &buf[..s.len()],
        b"jan"
            | b"feb"
            | b"mar"
            | b"apr"
            | b"may"
            | b"jun"
            | b"jul"
            | b"aug"
            | b"sep"
            | b"sept"
            | b"oct"
            | b"nov"
            | b"dec"
            | b"mon"
            | b"tue"
            | b"tues"
            | b"wed"
            | b"thu"
            | b"thurs"
            | b"fri"
            | b"sat"
            | b"sun"
            | b"january"
            | b"february"
            | b"march"
            | b"april"
            | b"june"
            | b"july"
            | b"august"
            | b"september"
            | b"october"
            | b"november"
            | b"december"
            | b"monday"
            | b"tuesday"
            | b"wednesday"
            | b"thursday"
            | b"friday"
            | b"saturday"
            | b"sunday"
    )
}

/// Longest bracketed group taken as one variable; beyond it the bracket is an ordinary token.
const MAX_GROUP: usize = 256;

/// Offset of the `]` closing the `[` at `s[0]`, nesting counted, within [`MAX_GROUP`] bytes.
fn matching_bracket(s: &[u8]) -> Option<usize> {
    let mut depth = 0usize;
    for (k, &c) in s.iter().enumerate().take(MAX_GROUP) {
        match c {
            b'[' => depth += 1,
            b']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(k);
                }
            }
            _ => {}
        }
    }
    None
}

/// The key of "key=value" / "key:value": a word without digits.
fn is_key(k: &[u8]) -> bool {
    k.iter()
        .all(|&c| c.is_ascii_alphabetic() || matches!(c, b'_' | b'-' | b'.'))
}

/// Upper-case severity words as log headers print them.
fn is_level_word(core: &[u8]) -> bool {
    const WORDS: [&[u8]; 14] = [
        b"INFO",
        b"WARN",
        b"WARNING",
        b"ERROR",
        b"ERR",
        b"FATAL",
        b"SEVERE",
        b"CRITICAL",
        b"CRIT",
        b"DEBUG",
        b"TRACE",
        b"NOTICE",
        b"PANIC",
        b"EMERG",
    ];
    WORDS.contains(&core)
}

/// Dotted names: loggers and classes ("org.apache.Foo"), host and file names ("a.example.com",
/// "app.log"). A dot between two letters, so sentences ("done.") and ellipses do not count.
fn is_dotted(core: &[u8]) -> bool {
    core.windows(3)
        .any(|w| w[1] == b'.' && is_ident(w[0]) && is_ident(w[2]))
}

#[inline]
fn is_ident(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b'$'
}

/// Most tokens of a template the learning miner compares position by position; tokens beyond
/// fold into the last position (a long tail is compared as one unit).
pub const MAX_TOKENS: usize = 48;

/// A message's masked template as a sequence of token hashes: what the learning miner
/// ([`crate::PatternMiner`]) compares. Lives on the stack; filled by [`tokenize`].
#[derive(Clone, Copy)]
pub struct Tokens {
    pub(crate) hashes: [u64; MAX_TOKENS],
    pub(crate) len: usize,
    /// Bit `p`: token `p` is exactly a wildcard (`<*>`), a variable judged by its shape.
    pub(crate) wild: u64,
    cur: HashSink,
    /// Bytes in the current token, and whether it is exactly one wildcard.
    cur_len: u32,
    cur_wild: bool,
}

impl Tokens {
    fn new() -> Self {
        Tokens {
            hashes: [0; MAX_TOKENS],
            len: 0,
            wild: 0,
            cur: HashSink::new(),
            cur_len: 0,
            cur_wild: false,
        }
    }

    /// Number of tokens (at most [`MAX_TOKENS`]).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the template is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn end_token(&mut self) {
        if self.cur_len == 0 {
            return;
        }
        let h = std::mem::replace(&mut self.cur, HashSink::new()).finish();
        if self.len < MAX_TOKENS {
            self.hashes[self.len] = h;
            if self.cur_wild {
                self.wild |= 1 << self.len;
            }
            self.len += 1;
        } else {
            // Fold the tail into the last position; a folded position is never a pure wildcard.
            let last = &mut self.hashes[MAX_TOKENS - 1];
            *last = (*last ^ h).wrapping_mul(K1).rotate_left(29);
            self.wild &= !(1 << (MAX_TOKENS - 1));
        }
        self.cur_len = 0;
        self.cur_wild = false;
    }

    /// The shape key: a hash of the token sequence, equal for equal masked templates.
    fn shape(&self) -> u64 {
        let mut h = HashSink::new();
        for &t in &self.hashes[..self.len] {
            h.mix(t);
        }
        h.len = self.len as u64;
        h.finish()
    }
}

impl Sink for Tokens {
    #[inline]
    fn literal(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.cur.literal(bytes);
        self.cur_len += bytes.len() as u32;
        self.cur_wild = false;
    }
    fn wildcard(&mut self) {
        self.cur.literal(WILDCARD.as_bytes());
        self.cur_wild = self.cur_len == 0;
        self.cur_len += WILDCARD.len() as u32;
    }
    fn sep(&mut self) {
        self.end_token();
    }
}

/// The tokens of `message`'s masked [`template`] (one walk, no allocation) and its shape key
/// (a hash of the token sequence: equal templates have equal keys).
pub fn tokenize(message: &str) -> (Tokens, u64) {
    let mut t = Tokens::new();
    walk(message.as_bytes(), &mut t);
    t.end_token();
    let shape = t.shape();
    (t, shape)
}
