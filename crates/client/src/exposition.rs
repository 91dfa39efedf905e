//! A parser of the Prometheus text exposition format (version 0.0.4), as the agent writes it:
//! `# HELP`/`# TYPE` comments and `name{label="value",...} value [timestamp]` lines.
//! Bad lines are counted and skipped, never fatal: a client must survive an agent of another
//! version.

/// One sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name.
    pub name: String,
    /// Labels in the order written.
    pub labels: Vec<(String, String)>,
    /// The value (NaN and ±Inf included).
    pub value: f64,
}

impl Sample {
    /// The value of label `name`, "" when absent (Prometheus treats both alike).
    pub fn label(&self, name: &str) -> &str {
        self.labels
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// A parsed exposition: the samples, and how many lines could not be parsed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exposition {
    /// Every sample line, in order.
    pub samples: Vec<Sample>,
    /// Lines that were neither comments, blank nor valid samples.
    pub bad_lines: usize,
}

/// Parses a whole exposition.
pub fn parse(text: &str) -> Exposition {
    let mut out = Exposition::default();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match parse_line(line) {
            Some(s) => out.samples.push(s),
            None => out.bad_lines += 1,
        }
    }
    out
}

/// One sample line; None when malformed.
pub fn parse_line(line: &str) -> Option<Sample> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_ascii_whitespace())
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
    {
        return None;
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        rest = parse_labels(after, &mut labels)?;
    }
    let mut fields = rest.split_ascii_whitespace();
    let value = parse_value(fields.next()?)?;
    // An optional timestamp (ms), then nothing.
    if let Some(ts) = fields.next() {
        ts.parse::<i64>().ok()?;
    }
    if fields.next().is_some() {
        return None;
    }
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Parses `name="value",...}` and returns what follows the closing brace.
fn parse_labels<'a>(mut s: &'a str, labels: &mut Vec<(String, String)>) -> Option<&'a str> {
    loop {
        s = s.trim_start();
        if let Some(rest) = s.strip_prefix('}') {
            return Some(rest);
        }
        let eq = s.find('=')?;
        let name = s[..eq].trim();
        if name.is_empty() {
            return None;
        }
        s = s[eq + 1..].trim_start().strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '"' => break i,
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    other => {
                        value.push('\\');
                        value.push(other);
                    }
                },
                c => value.push(c),
            }
        };
        labels.push((name.to_owned(), value));
        s = s[end + 1..].trim_start();
        if let Some(rest) = s.strip_prefix(',') {
            s = rest;
        } else if !s.starts_with('}') {
            return None;
        }
    }
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn agent_lines() {
        let text = "# HELP node_info Meta\n# TYPE node_info gauge\nnode_info{hostname=\"h\",kernel_version=\"6.18\",machine_id=\"m\"} 1\nnode_uptime_seconds 513.61\n\nx_total{a=\"q\\\"uote\\\\back\\nnl\",b=\"\"} 3 1700000000000\nbad{ 1\nalso bad\ny NaN\nz{le=\"+Inf\"} +Inf\n";
        let e = parse(text);
        assert_eq!(e.bad_lines, 2);
        assert_eq!(e.samples.len(), 5);
        assert_eq!(e.samples[0].label("hostname"), "h");
        assert_eq!(e.samples[0].label("missing"), "");
        assert_eq!(e.samples[1].value, 513.61);
        assert_eq!(e.samples[2].label("a"), "q\"uote\\back\nnl");
        assert_eq!(e.samples[2].value, 3.0);
        assert!(e.samples[3].value.is_nan());
        assert_eq!(e.samples[4].value, f64::INFINITY);
    }

    #[test]
    fn malformed_lines_are_rejected() {
        for bad in [
            "",
            "{a=\"b\"} 1",
            "m{a=\"b\" 1",
            "m{a=b} 1",
            "m{=\"b\"} 1",
            "m{a=\"b\"}",
            "m 1 2 3",
            "m one",
            "m{a=\"b\"c=\"d\"} 1",
            "m-x 1",
            "m{a=\"unterminated} 1",
        ] {
            assert!(parse_line(bad).is_none(), "{bad:?}");
        }
        assert_eq!(
            parse_line("m{a=\"1\",} 2").unwrap().labels,
            [("a".to_owned(), "1".to_owned())]
        );
    }
}
