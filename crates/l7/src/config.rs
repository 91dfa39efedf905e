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

/// Most `glob_match` steps (calls) one pattern may take on one path. Each `*` tries every
/// split of the rest of the path, so a pattern with k stars costs up to ~n^k steps on a
/// hostile n-byte path (`*a*a*a*ab` on 200 `a`s: 1.2 s, one more `*a`: 34 s, measured);
/// the path comes from any client of a traced service. Past the budget the path is taken
/// as not matching: the request is counted rather than excluded. A prefix or suffix
/// pattern (`/health*`, `*/metrics`) takes about one step per path byte.
const GLOB_STEPS: u32 = 1 << 16;

/// Whole-string glob match, no allocation. Recursion only at `*` and `{`; the
/// number of calls is bounded by [`GLOB_STEPS`].
pub(crate) fn glob_match(pat: &[u8], s: &[u8]) -> bool {
    let mut steps = GLOB_STEPS;
    glob_steps(pat, s, &mut steps)
}

fn glob_steps(pat: &[u8], s: &[u8], steps: &mut u32) -> bool {
    if *steps == 0 {
        return false;
    }
    *steps -= 1;
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
                return (i..=s.len()).any(|k| glob_steps(&pat[p..], &s[k..], steps));
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
                        if alt_then_rest(&pat[start..k], rest, &s[i..], steps) {
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
fn alt_then_rest(alt: &[u8], rest: &[u8], s: &[u8], steps: &mut u32) -> bool {
    (0..=s.len()).any(|k| glob_steps(alt, &s[..k], steps) && glob_steps(rest, &s[k..], steps))
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

    #[test]
    fn a_hostile_path_costs_a_bounded_number_of_steps() {
        // Without the budget this pattern takes ~n^6 steps on 500 `a`s (hours).
        let pat = b"*a*a*a*a*a*ab";
        let path = [b'a'; 500];
        let mut steps = GLOB_STEPS;
        assert!(!glob_steps(pat, &path, &mut steps));
        assert_eq!(steps, 0, "the budget ran out");
        // The same pattern still matches an ordinary path, and two-star patterns on a
        // whole window never come near the budget.
        assert!(glob_match(pat, b"aaaaaab"));
        let mut steps = GLOB_STEPS;
        assert!(!glob_steps(b"*/health*", &[b'/'; 512], &mut steps));
        assert!(GLOB_STEPS - steps < 2048, "{} steps", GLOB_STEPS - steps);
    }
}
