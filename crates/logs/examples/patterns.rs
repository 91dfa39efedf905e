//! Dev stand-in for `sonde patterns`: `patterns [--per-line] [FILE]` (stdin without FILE).
//! With env TEMPLATE=1 and --per-line, prints templates instead of hashes (for analysis).
use std::io::{BufRead, BufReader, Write};

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let per_line = args.iter().any(|a| a == "--per-line");
    let file = args.iter().find(|a| !a.starts_with("--"));
    let input: Box<dyn BufRead> = match file {
        Some(f) => Box::new(BufReader::new(std::fs::File::open(f)?)),
        None => Box::new(BufReader::new(std::io::stdin())),
    };
    let out = std::io::BufWriter::new(std::io::stdout());
    if per_line && std::env::var_os("TEMPLATE").is_some() {
        let mut out = out;
        for line in input.lines() {
            writeln!(out, "{}", sonde_logs::template(&line?))?;
        }
        return Ok(());
    }
    sonde_logs::summarize(input, per_line, out)
}
