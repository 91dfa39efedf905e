//! `sonde top` and `sonde record`: clients of a running agent (see the sonde-client crate).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use regex::Regex;
use sonde_client::AgentUrl;

use crate::cli::AgentArgs;

/// Bound on one scrape of the agent.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);

fn agent_url(args: &AgentArgs, url: Option<String>) -> anyhow::Result<AgentUrl> {
    match url {
        Some(u) => Ok(AgentUrl::parse(&u)?),
        None => Ok(AgentUrl::from_listen(args.listen)),
    }
}

/// `sonde top`.
pub fn top(args: &AgentArgs, url: Option<String>, refresh: Duration) -> anyhow::Result<()> {
    let config = sonde_client::top::TopConfig {
        url: agent_url(args, url)?,
        refresh,
        timeout: SCRAPE_TIMEOUT.min(refresh.max(Duration::from_secs(1)) * 5),
    };
    sonde_client::top::run(&config).context("sonde top failed")
}

/// `sonde record`.
pub fn record(
    args: &AgentArgs,
    url: Option<String>,
    interval: Duration,
    output: PathBuf,
    containers: Option<Regex>,
) -> anyhow::Result<()> {
    let config = sonde_client::record::RecordConfig {
        url: agent_url(args, url)?,
        interval,
        output,
        containers,
        procfs: args.procfs_root.clone(),
        timeout: SCRAPE_TIMEOUT.min(interval.max(Duration::from_secs(1))),
    };
    eprintln!(
        "sonde record: sampling {} every {} into {} (stop with Ctrl-C)",
        config.url.to_url(),
        humantime::format_duration(interval),
        config.output.display()
    );
    let stats = sonde_client::record::run(&config)?;
    eprintln!(
        "sonde record: stopped after {} intervals, {} rows ({} scrapes failed)",
        stats.intervals, stats.rows, stats.failed_scrapes
    );
    Ok(())
}
