//! `rgost`: GOST v3's routing tunnel. Accepts GOST's `-L`, `-F`, `-C`, `-D`,
//! `-api` and `-metrics`; `rgost status` shows a running one.
#![forbid(unsafe_code)]

mod status;

use std::fmt;
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use rgost_api::{Endpoint, Web, WebAuth, WebListener};
use rgost_client::Client;
use rgost_config::{Args, Config, Document, Loaded, ServiceKind};
use rgost_server::control::{Control, warn_if_no_routes};
use rgost_server::events::Events;
use rgost_server::service::Service;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// How to run it, shown under `--help`.
const AFTER_HELP: &str = "\
Router server (routes from a GOST config file; port 8443 needs no privilege):
  rgost -C /etc/rgost/server.yaml
  rgost -L router://:8443
TUN client host-1, tunnel address 192.168.123.1, server at SERVER:8443:
  rgost -L 'tun:///host-1?net=192.168.123.1/24' -F router://SERVER:8443
  rgost -C /etc/rgost/host-1.yaml

A TUN client needs root or the CAP_NET_ADMIN capability; a server on a port
below 1024 needs root or CAP_NET_BIND_SERVICE. Logs go to stderr: -D for debug,
RUST_LOG for finer filters (e.g. RUST_LOG=rgost_server=debug).

Web API, metrics and live status (as in GOST, -api and -metrics take one dash):
  rgost -C /etc/rgost/server.yaml -api 127.0.0.1:18080 -metrics :9000
  rgost status                      (namespaces, hosts, connections, drops)
  rgost status lookup ROUTER-ID IP  (who gets a packet for IP right now)
  dashboard: http://127.0.0.1:18080/

Install, systemd units (rgost.service, rgost@HOST.service), logs and reload:
see README.md (installed by the .deb in /usr/share/doc/rgost/).";

/// A GOST v3 compatible routing tunnel: router server and TUN client.
#[derive(Debug, Parser)]
#[command(name = "rgost", version, about, long_about = None, after_help = AFTER_HELP)]
#[command(args_conflicts_with_subcommands = true)]
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
    /// Log format: text for people, json (one object per line) for log shippers.
    #[arg(long, value_enum, value_name = "FORMAT", env = "RGOST_LOG_FORMAT", default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// The web API, as GOST's -api: "[user:pass@]addr[?pathPrefix=/api&accesslog=true]".
    #[arg(long = "api", value_name = "ADDR")]
    api: Option<String>,
    /// Prometheus metrics, as GOST's -metrics: "[user:pass@]addr[?path=/metrics&hostLabels=true]".
    #[arg(long = "metrics", value_name = "ADDR")]
    metrics: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Shows a running rgost's services, namespaces, hosts, connections with
    /// their rates, and drops by reason (through its web API).
    Status(status::StatusArgs),
}

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines; coloured only when stderr is a terminal.
    Text,
    /// One JSON object per line.
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse_from(gost_flags(std::env::args_os()));
    if let Some(Command::Status(args)) = &cli.command {
        return status::run(args);
    }
    init_logging(&cli);

    let args = Args {
        file: cli.config.clone(),
        services: cli.services.clone(),
        nodes: cli.nodes.clone(),
        api: cli.api.clone(),
        metrics: cli.metrics.clone(),
    };
    let result = Document::load(&args)
        .and_then(|document| document.validate().map(|loaded| (document, loaded)))
        .map_err(anyhow::Error::from)
        .and_then(|(document, loaded)| Ok((document, something_to_run(loaded, cli.config.as_deref())?)))
        .and_then(|(document, loaded)| {
            if cli.check {
                check(&loaded);
                return Ok(());
            }
            runtime_for(&loaded.config)
                .enable_all()
                .build()
                .context("cannot start the async runtime")?
                .block_on(run(document, loaded, args))
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Said once, through the log, so it reaches the journal or a log
            // shipper in the same format as everything else.
            tracing::error!("{}", Report(&e));
            ExitCode::FAILURE
        }
    }
}

/// GOST's long flags take one dash (`-api`, `-metrics`); clap reads them as
/// `--api`, `--metrics` (also written `-api=ADDR`).
fn gost_flags(args: impl Iterator<Item = std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    args.map(|arg| {
        let Some(text) = arg.to_str() else { return arg };
        for flag in ["-api", "-metrics"] {
            if text == flag || text.strip_prefix(flag).is_some_and(|rest| rest.starts_with('=')) {
                return format!("-{text}").into();
            }
        }
        arg
    })
    .collect()
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

/// Logs to stderr at the level of -D, unless RUST_LOG says otherwise.
fn init_logging(cli: &Cli) {
    let default_level = if cli.debug { "debug" } else { "info" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match cli.log_format {
        // Colour codes only for a terminal: in the journal or a file they are noise.
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()))
            .init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// An error and its causes, each said once: "what failed: why: root cause".
///
/// Some error types (a few of ours, some of our dependencies') put their
/// source's text into their own message and also return it from `source()`;
/// walking the chain then says the cause twice or more. A level whose text
/// ends with ": <the next level's text>" has that tail cut, and a level whose
/// text is just the next level's is skipped.
struct Report<'a>(&'a anyhow::Error);

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let texts: Vec<String> = self.0.chain().map(ToString::to_string).collect();
        let mut first = true;
        for (i, text) in texts.iter().enumerate() {
            let own = match texts.get(i + 1) {
                Some(next) if text == next => continue,
                Some(next) => text.strip_suffix(next.as_str()).and_then(|t| t.strip_suffix(": ")).unwrap_or(text),
                None => text,
            };
            if own.is_empty() {
                continue;
            }
            if !first {
                f.write_str(": ")?;
            }
            f.write_str(own)?;
            first = false;
        }
        Ok(())
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

async fn run(document: Document, Loaded { config, warnings }: Loaded, args: Args) -> anyhow::Result<()> {
    for warning in &warnings {
        tracing::warn!("{warning}");
    }
    // Set everything up before starting anything, so a bad port or a TUN
    // failure stops the start with nothing half-running.
    let shutdown = CancellationToken::new();
    let events = Events::new();
    let started = std::time::SystemTime::now();
    let mut routers = Vec::new();
    let mut clients = Vec::new();
    // Web endpoints: bound now with the rest, served once everything is set up.
    let mut web_endpoints = Vec::new();
    for service in &config.services {
        match &service.kind {
            ServiceKind::Router(router) => {
                let (running, listener) = Service::start(&service.name, router, &config, &shutdown, &events)
                    .await
                    .with_context(|| format!("service {}", service.name))?;
                let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
                tracing::info!(service = %service.name, %addr, "router service listening");
                warn_if_no_routes(&service.name, router, &config);
                routers.push((running, listener));
            }
            ServiceKind::Tun(tun) => {
                let client = Client::start(tun.clone()).await.with_context(|| format!("service {}", service.name))?;
                clients.push((service.name.clone(), client));
            }
            ServiceKind::Api(api) => {
                web_endpoints.push(WebEndpoint::api(api, &service.name, Endpoint::Service(service.name.clone()))?);
            }
            ServiceKind::Metrics(metrics) => {
                let endpoint = Endpoint::Service(service.name.clone());
                web_endpoints.push(WebEndpoint::metrics(metrics, &service.name, endpoint)?);
            }
        }
    }
    if let Some(api) = &config.api {
        web_endpoints.push(WebEndpoint::api(api, "@api", Endpoint::Api)?);
    }
    if let Some(metrics) = &config.metrics {
        web_endpoints.push(WebEndpoint::metrics(metrics, "@metrics", Endpoint::Metrics)?);
    }

    let client_stats = clients.iter().map(|(name, c)| (name.clone(), c.stats())).collect();
    let service_count = config.services.len();
    let control =
        Arc::new(Control::new(args, document, config, routers.iter().map(|(s, _)| Arc::clone(s)).collect(), events));
    let mut tasks = JoinSet::new();
    if !web_endpoints.is_empty() {
        let web = Web::new(Arc::clone(&control), client_stats, started, service_count);
        if web_endpoints.iter().any(|w| w.is_api) {
            web.spawn_sampler(shutdown.clone());
        }
        for endpoint in web_endpoints {
            endpoint.start(&web, &mut tasks, &shutdown);
        }
    }
    for (service, listener) in routers {
        tasks.spawn(async move {
            service.serve(listener).await;
            Ok(())
        });
    }
    for (_, client) in clients {
        let shutdown = shutdown.clone();
        tasks.spawn(async move { client.run(shutdown).await.map_err(anyhow::Error::from) });
    }

    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
    let stop = shutdown_signal();
    tokio::pin!(stop);
    let mut failure = None;
    loop {
        tokio::select! {
            signal = &mut stop => {
                signal?;
                tracing::info!("shutting down");
                break;
            }
            _ = hangup.recv() => {
                // SIGHUP reads the same config file (and the same flags) again;
                // a config that does not load or apply changes nothing, and
                // Control says so in the log.
                tracing::info!("SIGHUP: reloading the config");
                let _ = control.reload("sighup").await;
            }
            Some(done) = tasks.join_next() => {
                failure = Some(match done {
                    Ok(Ok(())) => anyhow::anyhow!("a service stopped unexpectedly"),
                    Ok(Err(e)) => e,
                    Err(e) => anyhow::anyhow!("a service crashed: {e}"),
                });
                break;
            }
        }
    }
    shutdown.cancel();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!("{}", Report(&e)),
            Err(e) => tracing::error!("a service crashed: {e}"),
        }
    }
    failure.map_or(Ok(()), Err)
}

/// A web endpoint (API or metrics), bound, not yet served.
struct WebEndpoint {
    name: String,
    listener: WebListener,
    is_api: bool,
    auth: Arc<WebAuth>,
    endpoint: Endpoint,
    make: Box<dyn FnOnce(Arc<Web>, Arc<WebAuth>) -> rgost_api::HttpRouter + Send>,
}

impl WebEndpoint {
    fn api(api: &rgost_config::ApiConfig, name: &str, endpoint: Endpoint) -> anyhow::Result<WebEndpoint> {
        let listener = WebListener::bind(api.listen, &api.listener).with_context(|| format!("service {name}"))?;
        let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
        let prefix = if api.path_prefix.is_empty() { "/" } else { api.path_prefix.as_str() };
        tracing::info!(service = %name, %addr, prefix, "web API listening (dashboard at {prefix})");
        if !rgost_api::is_loopback(&api.listen) && api.auth.is_none() && api.auther.is_none() {
            tracing::warn!(service = %name, %addr, "the web API listens beyond this machine without authentication: anyone who reaches it can read and change the config (set auth or auther)");
        }
        let (api, owned_name) = (api.clone(), name.to_owned());
        Ok(WebEndpoint {
            name: name.to_owned(),
            listener,
            is_api: true,
            auth: Arc::new(WebAuth::new("@api")),
            endpoint,
            make: Box::new(move |web, auth| rgost_api::api_router(web, &api, auth, &owned_name)),
        })
    }

    fn metrics(metrics: &rgost_config::MetricsConfig, name: &str, endpoint: Endpoint) -> anyhow::Result<WebEndpoint> {
        let listener =
            WebListener::bind(metrics.listen, &metrics.listener).with_context(|| format!("service {name}"))?;
        let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
        tracing::info!(service = %name, %addr, path = %metrics.path, host_labels = metrics.host_labels, "metrics listening");
        let (metrics, owned_name) = (metrics.clone(), name.to_owned());
        Ok(WebEndpoint {
            name: name.to_owned(),
            listener,
            is_api: false,
            auth: Arc::new(WebAuth::new("@metrics")),
            endpoint,
            make: Box::new(move |web, auth| rgost_api::metrics_router(web, &metrics, auth, &owned_name)),
        })
    }

    fn start(self, web: &Arc<Web>, tasks: &mut JoinSet<anyhow::Result<()>>, shutdown: &CancellationToken) {
        let WebEndpoint { name, listener, auth, endpoint, make, .. } = self;
        tokio::spawn(rgost_api::follow_auth(Arc::clone(web), endpoint, Arc::clone(&auth), shutdown.clone()));
        let router = make(Arc::clone(web), auth);
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            listener.serve(router, shutdown).await;
            tracing::debug!(service = %name, "web endpoint stopped");
            Ok(())
        });
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// An error that, like some dependencies' errors, says its source's text
    /// and also returns it from `source()`.
    #[derive(Debug)]
    struct Repeats(std::io::Error);

    impl fmt::Display for Repeats {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "cannot read TUN device tun0: {}", self.0)
        }
    }

    impl std::error::Error for Repeats {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    /// Says only the source's text, and returns it from `source()`.
    #[derive(Debug)]
    struct SameText(Repeats);

    impl fmt::Display for SameText {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.0.fmt(f)
        }
    }

    impl std::error::Error for SameText {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn each_cause_is_said_once() {
        let io = std::io::Error::from_raw_os_error(5);
        let e = anyhow::Error::new(SameText(Repeats(io))).context("service host-1");
        let text = Report(&e).to_string();
        assert_eq!(
            text,
            format!("service host-1: cannot read TUN device tun0: {}", std::io::Error::from_raw_os_error(5))
        );
    }

    #[test]
    fn gost_single_dash_flags() {
        let args = |list: &[&str]| gost_flags(list.iter().map(std::ffi::OsString::from));
        let cli = Cli::parse_from(args(&["rgost", "-L", "router://:8443", "-api", ":18080", "-metrics=:9000"]));
        assert_eq!(cli.api.as_deref(), Some(":18080"));
        assert_eq!(cli.metrics.as_deref(), Some(":9000"));
        assert_eq!(cli.services, ["router://:8443"]);
        assert!(cli.command.is_none());
        // `-apix` is not GOST's flag: left for clap to refuse.
        assert_eq!(args(&["-apix"]), [std::ffi::OsString::from("-apix")]);
        let cli = Cli::parse_from(args(&["rgost", "status", "-api", "http://h:1", "--json"]));
        assert!(matches!(cli.command, Some(Command::Status(_))));
    }

    #[test]
    fn a_chain_without_repetition_is_kept_whole() {
        let e = anyhow::anyhow!("root cause").context("middle").context("top");
        assert_eq!(Report(&e).to_string(), "top: middle: root cause");
    }
}
