//! Pure parsers for cgroup files. They take the file content and return values or a reason;
//! the caller attaches the path to make an [`crate::Error::Parse`].

/// Calls `f(key, value)` for each "key value" line of a flat-keyed file (cpu.stat, memory.stat).
/// Lines of any other shape are skipped: the kernel adds keys over time and we only need a few.
pub(crate) fn for_each_pair<'a>(text: &'a str, mut f: impl FnMut(&'a str, &'a str)) {
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        if let (Some(k), Some(v), None) = (fields.next(), fields.next(), fields.next()) {
            f(k, v);
        }
    }
}

pub(crate) fn parse_u64(key: &str, value: &str) -> Result<u64, String> {
    value
        .parse::<u64>()
        .map_err(|e| format!("{key}: {value:?} is not an unsigned integer ({e})"))
}

/// A single integer file (cpuacct.usage, memory.limit_in_bytes, cpu.cfs_quota_us: may be -1).
pub(crate) fn parse_single_i64(text: &str) -> Result<i64, String> {
    let t = text.trim();
    t.parse::<i64>()
        .map_err(|e| format!("{t:?} is not an integer ({e})"))
}

/// v2 `cpu.max`: "max 100000" (no limit) or "<quota> <period>" in microseconds -> cores.
pub(crate) fn parse_cpu_max(text: &str) -> Result<Option<f64>, String> {
    let mut fields = text.split_ascii_whitespace();
    let (Some(quota), Some(period), None) = (fields.next(), fields.next(), fields.next()) else {
        return Err(format!(
            "expected \"<quota> <period>\", got {:?}",
            text.trim()
        ));
    };
    let period = parse_u64("period", period)?;
    if quota == "max" {
        return Ok(None);
    }
    let quota = parse_u64("quota", quota)?;
    if period == 0 {
        return Err("period is 0".to_owned());
    }
    Ok(Some(quota as f64 / period as f64))
}

/// v2 `memory.max`: "max" or a byte count.
pub(crate) fn parse_memory_max(text: &str) -> Result<Option<u64>, String> {
    let t = text.trim();
    if t == "max" {
        return Ok(None);
    }
    parse_u64("memory.max", t).map(Some)
}

/// PSI file: "some avg10=.. avg60=.. avg300=.. total=<usec>" and optionally "full ...".
/// Returns (some, full) totals in microseconds; `some` is mandatory.
pub(crate) fn parse_pressure(text: &str) -> Result<(u64, Option<u64>), String> {
    let mut some = None;
    let mut full = None;
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let slot = match fields.next() {
            Some("some") => &mut some,
            Some("full") => &mut full,
            _ => continue,
        };
        let total = fields
            .find_map(|f| f.strip_prefix("total="))
            .ok_or_else(|| format!("no total= in {line:?}"))?;
        *slot = Some(parse_u64("total", total)?);
    }
    let some = some.ok_or_else(|| "no \"some\" line".to_owned())?;
    Ok((some, full))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_skip_odd_lines() {
        let mut seen = Vec::new();
        for_each_pair("a 1\nb\nc 2 3\n\n d  4 \n", |k, v| seen.push((k, v)));
        assert_eq!(seen, vec![("a", "1"), ("d", "4")]);
    }

    #[test]
    fn cpu_max_forms() {
        assert_eq!(parse_cpu_max("max 100000\n"), Ok(None));
        assert_eq!(parse_cpu_max("150000 100000\n"), Ok(Some(1.5)));
        assert!(parse_cpu_max("max").is_err());
        assert!(parse_cpu_max("").is_err());
        assert!(parse_cpu_max("abc 100000").is_err());
        assert!(parse_cpu_max("1000 0").is_err());
        assert!(parse_cpu_max("1 2 3").is_err());
    }

    #[test]
    fn memory_max_forms() {
        assert_eq!(parse_memory_max("max\n"), Ok(None));
        assert_eq!(parse_memory_max("1048576\n"), Ok(Some(1_048_576)));
        assert!(parse_memory_max("-1").is_err());
        assert!(parse_memory_max("").is_err());
    }

    #[test]
    fn single_int() {
        assert_eq!(parse_single_i64("-1\n"), Ok(-1));
        assert_eq!(parse_single_i64("42"), Ok(42));
        assert!(parse_single_i64("4x").is_err());
        assert!(parse_single_i64("").is_err());
    }

    #[test]
    fn pressure_forms() {
        let both = "some avg10=0.00 avg60=0.00 avg300=0.00 total=1500000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=250\n";
        assert_eq!(parse_pressure(both), Ok((1_500_000, Some(250))));
        let some_only = "some avg10=1.00 avg60=0.50 avg300=0.10 total=7\n";
        assert_eq!(parse_pressure(some_only), Ok((7, None)));
        assert!(parse_pressure("").is_err());
        assert!(parse_pressure("full avg10=0 total=1\n").is_err());
        assert!(parse_pressure("some avg10=0.00\n").is_err());
        assert!(parse_pressure("some total=abc\n").is_err());
    }
}
