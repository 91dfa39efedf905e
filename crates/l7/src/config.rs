//! What the parsers need from the agent's flags.
//!
//! `--exclude-http-requests-by-path` (env `EXCLUDE_HTTP_REQUESTS_BY_PATH`):
//! coroot-node-agent compiles each value with gobwas/glob (no separators) and
//! skips a request whose path *matches the whole pattern*: `/health` excludes
//! only `/health`, `/health*` every path starting with it. We keep those
//! semantics: `*` any run of bytes (`/` included), `?` one byte, `[abc]`,
//! `[a-z]`, `[!abc]` classes, `{a,b}` alternatives, `\` escapes. The path is
//! the request target as sent (HTTP/1 request line, HTTP/2 `:path`), query
//! string included, as coroot matches it.

/// Parser configuration shared by every session.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Glob patterns of HTTP request paths whose requests are not reported.
    pub exclude_http_paths: Vec<String>,
    /// Keep what a trace span shows of each request ([`crate::Detail`]: method and
    /// path, statement, command) in [`crate::Request::detail`]. Off, the parsers keep
    /// nothing and allocate nothing for it (`--traces-endpoint` turns it on).
    pub capture: bool,
}

impl Config {
    /// True when an HTTP request with this path must be left out.
    pub fn excludes(&self, path: &[u8]) -> bool {
        self.exclude_http_paths
            .iter()
            .any(|p| glob_match(p.as_bytes(), path))
    }
}

/// Whole-string glob match, no allocation. Recursion only at `*` and `{`,
/// bounded by the pattern's length (patterns come from the operator).
pub(crate) fn glob_match(pat: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0usize, 0usize);
    while p < pat.len() {
        match pat[p] {
            b'*' => {
                // Collapse runs of '*'; then try every split point.
                while p < pat.len() && pat[p] == b'*' {
                    p += 1;
                }
                if p == pat.len() {
                    return true;
                }
                return (i..=s.len()).any(|k| glob_match(&pat[p..], &s[k..]));
            }
            b'?' => {
                if i >= s.len() {
                    return false;
                }
                p += 1;
                i += 1;
            }
            b'[' => {
                let Some((matched, next)) = class_match(pat, p, s.get(i).copied()) else {
                    // Unclosed class: treat '[' literally.
                    if s.get(i) != Some(&b'[') {
                        return false;
                    }
                    p += 1;
                    i += 1;
                    continue;
                };
                if !matched {
                    return false;
                }
                p = next;
                i += 1;
            }
            b'{' => {
                let Some(close) = find_close_brace(pat, p) else {
                    if s.get(i) != Some(&b'{') {
                        return false;
                    }
                    p += 1;
                    i += 1;
                    continue;
                };
                let rest = &pat[close + 1..];
                let mut start = p + 1;
                let mut depth = 0;
                let mut k = p + 1;
                while k <= close {
                    let c = pat[k];
                    if c == b'\\' {
                        k += 2;
                        continue;
                    }
                    if c == b'{' {
                        depth += 1;
                    } else if c == b'}' && depth > 0 {
                        depth -= 1;
                    } else if (c == b',' && depth == 0) || k == close {
                        // Alternative pat[start..k] followed by the rest.
                        if alt_then_rest(&pat[start..k], rest, &s[i..]) {
                            return true;
                        }
                        start = k + 1;
                    }
                    k += 1;
                }
                return false;
            }
            b'\\' if p + 1 < pat.len() => {
                if s.get(i) != Some(&pat[p + 1]) {
                    return false;
                }
                p += 2;
                i += 1;
            }
            c => {
                if s.get(i) != Some(&c) {
                    return false;
                }
                p += 1;
                i += 1;
            }
        }
    }
    i == s.len()
}

/// Does `alt` followed by `rest` match `s`? Tries each prefix of `s` for `alt`.
fn alt_then_rest(alt: &[u8], rest: &[u8], s: &[u8]) -> bool {
    (0..=s.len()).any(|k| glob_match(alt, &s[..k]) && glob_match(rest, &s[k..]))
}

fn find_close_brace(pat: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0;
    let mut k = open;
    while k < pat.len() {
        match pat[k] {
            b'\\' => k += 1,
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(k);
                }
            }
            _ => {}
        }
        k += 1;
    }
    None
}

/// Match one byte against the class opening at `pat[open] == '['`; returns
/// (matched, index after ']') or None when the class is not closed.
fn class_match(pat: &[u8], open: usize, c: Option<u8>) -> Option<(bool, usize)> {
    let mut k = open + 1;
    let negate = pat.get(k) == Some(&b'!');
    if negate {
        k += 1;
    }
    let mut found = false;
    let mut first = true;
    while k < pat.len() {
        if pat[k] == b']' && !first {
            let ok = match c {
                Some(_) => found != negate,
                None => false,
            };
            return Some((ok, k + 1));
        }
        first = false;
        let lo = pat[k];
        if k + 2 < pat.len() && pat[k + 1] == b'-' && pat[k + 2] != b']' {
            let hi = pat[k + 2];
            if let Some(c) = c
                && lo <= c
                && c <= hi
            {
                found = true;
            }
            k += 3;
        } else {
            if c == Some(lo) {
                found = true;
            }
            k += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_prefix_and_classes() {
        let c = Config {
            exclude_http_paths: vec!["/health".into(), "/metrics*".into()],
            ..Config::default()
        };
        assert!(c.excludes(b"/health"));
        assert!(
            !c.excludes(b"/health/live"),
            "no '*': whole-path match only"
        );
        assert!(!c.excludes(b"/healthz"));
        assert!(c.excludes(b"/metrics"));
        assert!(c.excludes(b"/metrics/a/b?x=1"));
        assert!(!c.excludes(b"/api"));
        assert!(glob_match(b"/a?c", b"/abc"));
        assert!(!glob_match(b"/a?c", b"/ac"));
        assert!(glob_match(b"/v[0-9]/x", b"/v2/x"));
        assert!(!glob_match(b"/v[!0-9]/x", b"/v2/x"));
        assert!(glob_match(b"/{ready,live}z", b"/livez"));
        assert!(!glob_match(b"/{ready,live}z", b"/startz"));
        assert!(glob_match(b"*/ping", b"/x/y/ping"));
        assert!(glob_match(b"\\*", b"*"));
        assert!(!glob_match(b"\\*", b"a"));
        assert!(glob_match(b"[", b"["));
        assert!(glob_match(b"", b""));
        assert!(!glob_match(b"", b"/"));
    }
}
