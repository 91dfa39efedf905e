//! A small parser of the Prometheus text format, so tests can assert on series by name and labels.

use std::collections::BTreeMap;

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed scrape.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    pub text: String,
    pub samples: Vec<Sample>,
}

/// The value of the series of `name` with `labels` in `s`, 0 when absent (a counter that has
/// not moved yet may not exist).
pub fn val(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    s.value(name, labels).unwrap_or(0.0)
}

impl Scrape {
    pub fn parse(text: &str) -> Scrape {
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| parse_line(l).unwrap_or_else(|| panic!("unparsable sample line: {l:?}")))
            .collect();
        Scrape {
            text: text.to_owned(),
            samples,
        }
    }

    /// Samples of metric `name` whose labels include every pair of `labels`.
    pub fn find<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }

    /// The value of the single sample matching, or None when there is none. Panics on several.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let found: Vec<&Sample> = self.find(name, labels).collect();
        assert!(
            found.len() <= 1,
            "several series match {name} {labels:?}: {found:?}"
        );
        found.first().map(|s| s.value)
    }

    pub fn has(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        self.find(name, labels).next().is_some()
    }
}

fn parse_line(line: &str) -> Option<Sample> {
    let (name_labels, value) = line.rsplit_once(' ')?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    let (name, labels) = match name_labels.find('{') {
        None => (name_labels.to_owned(), BTreeMap::new()),
        Some(i) => {
            let body = name_labels[i + 1..].strip_suffix('}')?;
            (name_labels[..i].to_owned(), parse_labels(body)?)
        }
    };
    Some(Sample {
        name,
        labels,
        value,
    })
}

fn parse_labels(body: &str) -> Option<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    let mut rest = body;
    while !rest.is_empty() {
        let eq = rest.find('=')?;
        let key = rest[..eq].trim_start_matches(',').to_owned();
        let mut chars = rest[eq + 1..].char_indices();
        if chars.next()?.1 != '"' {
            return None;
        }
        let mut value = String::new();
        let mut end = None;
        let mut escaped = false;
        for (j, c) in chars {
            if escaped {
                value.push(match c {
                    'n' => '\n',
                    other => other,
                });
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                end = Some(eq + 1 + j + 1);
                break;
            } else {
                value.push(c);
            }
        }
        labels.insert(key, value);
        rest = &rest[end?..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    Some(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_labels_with_escapes() {
        let s = Scrape::parse(
            "# HELP x y\nx{a=\"1\",b=\"q\\\"u,o}te\"} 2.5\ny 3\nz_bucket{le=\"+Inf\"} 1\n",
        );
        assert_eq!(s.value("x", &[("a", "1")]), Some(2.5));
        assert_eq!(s.find("x", &[]).next().unwrap().labels["b"], "q\"u,o}te");
        assert_eq!(s.value("y", &[]), Some(3.0));
        assert!(s.has("z_bucket", &[("le", "+Inf")]));
        assert!(!s.has("x", &[("a", "2")]));
    }
}
