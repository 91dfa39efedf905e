//! Records raw taskstats reply datagrams from the running kernel into a directory, as hex,
//! for the decoder's unit tests: `record_replies <dir> <label>=<tgid>...`.
//! Needs root and the host network namespace.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .ok_or("usage: record_replies <dir> <label>=<tgid>...")?,
    );
    let mut client = sonde_taskstats::TaskstatsClient::new()?;
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")?;
    for arg in args {
        let (label, tgid) = arg.split_once('=').ok_or("expected <label>=<tgid>")?;
        let tgid: u32 = tgid.parse()?;
        let raw = client.query_tgid_raw(tgid)?;
        let decoded = client.query_tgid(tgid)?;
        let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let path = dir.join(format!("{label}.hex"));
        std::fs::write(&path, format!("{hex}\n"))?;
        println!(
            "{} kernel {} tgid {tgid}: {decoded:?}",
            path.display(),
            release.trim()
        );
    }
    Ok(())
}
