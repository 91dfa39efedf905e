//! sonde: a node observability agent. One process per node watches every container on it and
//! exports coroot-node-agent compatible Prometheus metrics.

mod cli;
mod process_metrics;
mod push;
mod server;
mod tools;
mod traces;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use sonde_node::NodePaths;
use sonde_registry::{Filters, Health, Registry, RegistryConfig};
use tokio::sync::watch;

use crate::cli::{AgentArgs, Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Patterns { file, per_line }) => patterns(file, per_line),
        Some(Command::Top { url, refresh }) => tools::top(&cli.agent, url, refresh),
        Some(Command::Record {
            url,
            interval,
            output,
            containers,
        }) => tools::record(&cli.agent, url, interval, output, containers),
        None | Some(Command::Run) => {
            init_logging(&cli.agent);
            run_agent(cli.agent)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("sonde: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `sonde patterns`: the log pattern miner for people and scripts.
fn patterns(file: Option<std::path::PathBuf>, per_line: bool) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let out = std::io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    let result = match &file {
        Some(path) => {
            let f = std::fs::File::open(path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            sonde_logs::summarize(
                std::io::BufReader::with_capacity(256 * 1024, f),
                per_line,
                out,
            )
        }
        None => sonde_logs::summarize(std::io::stdin().lock(), per_line, out),
    };
    match result {
        // A closed pipe (`| head`) is a normal end for a command-line tool.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("cannot mine patterns"),
    }
}

fn init_logging(args: &AgentArgs) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SONDE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(args.log_level.as_str()));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colour only on a terminal: journald, kubectl logs and shippers get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}

fn run_agent(args: AgentArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        // Two workers are plenty: the agent is I/O-bound and must stay small on every node.
        .worker_threads(2)
        .enable_all()
        .thread_name("sonde")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(agent(args))
}

async fn agent(args: AgentArgs) -> anyhow::Result<()> {
    let version = env!("CARGO_PKG_VERSION").to_owned();
    tracing::info!(version = %version, listen = %args.listen, "Starting sonde");
    if !is_root() {
        tracing::warn!(
            "Not running as root: some subsystems will be off (each says which below). \
             Run privileged (Kubernetes: securityContext.privileged=true, hostPID; Docker: --privileged --pid host)"
        );
    }
    // Bind first: a port conflict is the most common start-up failure and must be said at once.
    let listener = server::bind(args.listen).await?;
    let push_endpoints = push::endpoints(&args)?;
    let traces_endpoint = traces::endpoint(&args)?;
    let traces_slot = Arc::new(std::sync::OnceLock::new());

    let health = Health::new();
    let config = RegistryConfig {
        node_paths: NodePaths {
            procfs: args.procfs_root.clone(),
            sysfs: args.sysfs_root.clone(),
            host_root: args.host_root(),
        },
        cgroupfs_root: args.cgroupfs_root.clone(),
        runtime_sockets: args.runtime_sockets(),
        runtime_timeout: args.runtime_timeout,
        filters: Filters {
            allowlist: args.container_allowlist.clone(),
            denylist: args.container_denylist.clone(),
            min_container_age: args.min_container_age,
        },
        scan_interval: args.proc_scan_interval,
        gc_grace: args.container_gc_grace,
        event_queue: args.event_queue_size,
        version,
        enable_delay_accounting: args.enable_delay_accounting,
        resources: sonde_registry::resources::ResourcesConfig {
            enable_blkio_accounting: args.enable_blkio_accounting,
            disable_gpu_monitoring: args.disable_gpu_monitoring,
            nvml_library: args.nvml_library.clone(),
            disable_pinger: args.disable_pinger,
        },
        cloud: Some(sonde_cloud::spawn(cloud_config(&args))),
        logs: sonde_logs::LogManagerConfig {
            max_patterns_per_level: args.log_patterns_per_container as usize,
            max_sample_len: args.max_label_length as usize,
            host_root: args.host_root(),
            disabled: args.disable_log_parsing,
            ..Default::default()
        },
        tracer: sonde_registry::TracerSettings {
            enabled: !args.disable_ebpf,
            ephemeral_ports: sonde_tracer::filter::EphemeralPorts::new(
                args.ephemeral_port_range.clone(),
            ),
            public_networks: args.track_public_network.clone(),
            conntrack: (!args.disable_conntrack).then(|| sonde_nat::NatConfig {
                table_size: args.conntrack_table_size as usize,
                ..Default::default()
            }),
            l7: !args.disable_l7_tracing,
            exclude_http_paths: args.exclude_http_requests_by_path.clone(),
            max_fqdns_per_container: args.max_fqdns_per_container,
            spans: traces_endpoint
                .is_some()
                .then(|| traces::hook(&traces_slot)),
        },
    };
    let registry = Registry::start(config, health);
    // The registry keeps state; the exporter renders each scrape of it.
    let exporter = sonde_exporter::Exporter::new(registry.clone());

    let push_slot = Arc::new(std::sync::OnceLock::new());
    let render_exporter = exporter.clone();
    let render_slot = push_slot.clone();
    let render_traces = traces_slot.clone();
    let render: server::Renderer = Arc::new(move || {
        render_exporter
            .render(|node, out| {
                push::extra_families(&render_slot, node, out);
                traces::families(&render_traces, node, out);
            })
            .map_err(anyhow::Error::from)
    });
    if let Some(endpoint) = traces_endpoint {
        traces::start(&args, endpoint, &registry, &traces_slot);
    }
    push::start(&args, push_endpoints, &exporter, push_slot);
    let observe_exporter = exporter.clone();
    let ready_registry = registry.clone();
    let metrics = server::Metrics {
        render,
        observe: Arc::new(move |elapsed| observe_exporter.observe_scrape(elapsed)),
        ready: Arc::new(move || ready_registry.readiness()),
    };

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let server = tokio::spawn(server::serve(listener, metrics, shutdown_rx));
    tracing::info!("Serving /metrics and /healthz");
    wait_for_signal().await;
    tracing::info!("Shutting down");
    let _ = shutdown_tx.send(true);
    server.await.context("HTTP server task failed")??;
    Ok(())
}

/// The agent's own process_* families, added to every scrape and push.
pub(crate) fn add_process_metrics(
    node: &sonde_registry::NodeLabels,
    out: &mut Vec<prometheus::proto::MetricFamily>,
) {
    if let Some(reading) = process_metrics::read() {
        process_metrics::families(&reading, node, out);
    }
}

/// The cloud subsystem's settings: DMI under the host root, coroot's override flags, and the
/// hidden test settings (mock base URL, timeout, refresh).
fn cloud_config(args: &AgentArgs) -> sonde_cloud::CloudConfig {
    let dmi_root = args.cloud_dmi_root.clone().unwrap_or_else(|| {
        args.sysfs_root
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_else(|| "/".into())
    });
    let mut config = sonde_cloud::CloudConfig {
        host_root: dmi_root,
        overrides: sonde_cloud::Overrides {
            provider: args.provider.clone(),
            region: args.region.clone(),
            availability_zone: args.availability_zone.clone(),
            instance_type: args.instance_type.clone(),
            instance_life_cycle: args.instance_life_cycle.clone(),
        },
        timeout: args.cloud_metadata_timeout,
        refresh_interval: args.cloud_metadata_refresh,
        ..Default::default()
    };
    if let Some(base) = &args.cloud_metadata_base_url {
        config.endpoints = sonde_cloud::Endpoints::all(base);
    }
    config
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "Cannot listen for SIGTERM; stop with SIGINT");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
