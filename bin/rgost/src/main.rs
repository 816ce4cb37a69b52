//! `rgost`: GOST v3's routing tunnel. Accepts GOST's `-L`, `-F`, `-C` and `-D`.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use rgost_client::Client;
use rgost_config::{Config, Loaded, ServiceKind};
use rgost_server::Server;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// A GOST v3 compatible routing tunnel: router server and TUN client.
#[derive(Debug, Parser)]
#[command(name = "rgost", version, about, long_about = None)]
struct Cli {
    /// A service, as a GOST URL (e.g. "tun:///host-1?net=192.168.123.1/24"). Repeatable.
    #[arg(short = 'L', value_name = "URL")]
    services: Vec<String>,
    /// A chain node, as a GOST URL (e.g. "router://server:8443"). Repeatable; all form one chain.
    #[arg(short = 'F', value_name = "URL")]
    nodes: Vec<String>,
    /// A GOST config file (YAML or JSON).
    #[arg(short = 'C', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Debug logging (RUST_LOG overrides).
    #[arg(short = 'D')]
    debug: bool,
    /// Dry run: load and validate the config (and the files it names), print
    /// one line per service saying what it would run, and exit. Creates no
    /// TUN device and opens no socket.
    #[arg(long)]
    check: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = if cli.debug { "debug" } else { "info" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();

    let result = rgost_config::load(cli.config.as_deref(), &cli.services, &cli.nodes)
        .map_err(anyhow::Error::from)
        .and_then(|loaded| something_to_run(loaded, cli.config.as_deref()))
        .and_then(|loaded| {
            if cli.check {
                check(&loaded);
                return Ok(());
            }
            runtime_for(&loaded.config)
                .enable_all()
                .build()
                .context("cannot start the async runtime")?
                .block_on(run(loaded))
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("rgost: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A config without services is an error, at start and in `--check` alike.
fn something_to_run(loaded: Loaded, file: Option<&std::path::Path>) -> anyhow::Result<Loaded> {
    if loaded.config.services.is_empty() {
        match file {
            Some(file) => anyhow::bail!("nothing to run: {} defines no services (and no -L was given)", file.display()),
            None => anyhow::bail!("nothing to run: give services with -L or a config file with -C"),
        }
    }
    Ok(loaded)
}

/// `--check`: the warnings, then one line per service on stdout.
fn check(loaded: &Loaded) {
    for warning in &loaded.warnings {
        eprintln!("rgost: warning: {warning}");
    }
    for line in loaded.config.summary() {
        println!("{line}");
    }
}

/// A process that only runs TUN clients gets one thread: each client is a
/// single task, and on one thread its packets never wait for another
/// thread to wake up (a wake-up across CPUs costs tens of microseconds on
/// virtual machines, each hop of a round trip). A router server serves
/// many connections and uses a thread per core.
fn runtime_for(config: &Config) -> tokio::runtime::Builder {
    let serves = config.services.iter().any(|s| matches!(s.kind, ServiceKind::Router(_)));
    if serves { tokio::runtime::Builder::new_multi_thread() } else { tokio::runtime::Builder::new_current_thread() }
}

async fn run(Loaded { config, warnings }: Loaded) -> anyhow::Result<()> {
    for warning in &warnings {
        tracing::warn!("{warning}");
    }
    // Set everything up before starting anything, so a bad port or a TUN
    // failure stops the start with nothing half-running.
    let shutdown = CancellationToken::new();
    let mut routers = Vec::new();
    let mut clients = Vec::new();
    for service in &config.services {
        match &service.kind {
            ServiceKind::Router(router) => {
                let listener = rgost_server::bind(router).with_context(|| format!("service {}", service.name))?;
                let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
                tracing::info!(service = %service.name, %addr, "router service listening");
                let settings = rgost_server::build::settings(&service.name, router, &config, &shutdown)
                    .await
                    .with_context(|| format!("service {}", service.name))?;
                routers.push((Server::new(settings), listener));
            }
            ServiceKind::Tun(tun) => {
                let client = Client::start(tun.clone())
                    .await
                    .with_context(|| format!("service {}: cannot set up the TUN device", service.name))?;
                clients.push(client);
            }
        }
    }

    let mut tasks = JoinSet::new();
    for (server, listener) in routers {
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            server.serve(listener, shutdown).await;
            Ok(())
        });
    }
    for client in clients {
        let shutdown = shutdown.clone();
        tasks.spawn(async move { client.run(shutdown).await.map_err(anyhow::Error::from) });
    }

    let mut failure = None;
    tokio::select! {
        signal = shutdown_signal() => {
            signal?;
            tracing::info!("shutting down");
        }
        Some(done) = tasks.join_next() => {
            failure = Some(match done {
                Ok(Ok(())) => anyhow::anyhow!("a service stopped unexpectedly"),
                Ok(Err(e)) => e,
                Err(e) => anyhow::anyhow!("a service crashed: {e}"),
            });
        }
    }
    shutdown.cancel();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!("{e:#}"),
            Err(e) => tracing::error!("a service crashed: {e}"),
        }
    }
    failure.map_or(Ok(()), Err)
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
