//! rgost's web side: GOST's web API (config endpoints) with rgost's live
//! status, event stream and dashboard, and Prometheus metrics.
//!
//! * [`gost`]: `{prefix}/config...`, GOST's paths, bodies and answers;
//!   changes go through the process's [`Control`], as SIGHUP does.
//! * [`live`]: `{prefix}/status`, `{prefix}/status/lookup`,
//!   `DELETE {prefix}/status/connections/{id}`, `{prefix}/events`.
//! * `{prefix}/`: the dashboard, one static page embedded in the binary.
//! * [`metrics`]: the Prometheus endpoint.
//! * [`serve`]: HTTP on rgost's listeners (tcp, or tls for a service).
//!
//! Every path of an endpoint needs its credentials when it has any (HTTP
//! Basic, checked against `auth` and the named `auther`). No CORS headers
//! are sent: only pages from the endpoint itself (the dashboard) can call
//! it from a browser.
#![forbid(unsafe_code)]

pub mod auth;
pub mod gost;
pub mod live;
pub mod metrics;
pub mod serve;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{delete, get, post};
use rgost_client::ClientStats;
use rgost_config::{ApiConfig, Config, MetricsConfig};
use rgost_server::control::Control;
use rgost_server::events::Event;
use rgost_server::status::Rates;
use serde_json::json;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

pub use auth::WebAuth;
/// The HTTP router type the endpoints are built as.
pub use axum::Router as HttpRouter;
pub use serve::{ServeError, WebListener};

/// The dashboard page.
const DASHBOARD: &str = include_str!("dashboard.html");

/// What the web endpoints of one process share.
#[derive(Debug)]
pub struct Web {
    control: Arc<Control>,
    clients: Vec<(String, Arc<ClientStats>)>,
    started: SystemTime,
    hostname: String,
    service_count: usize,
    rates: ArcSwap<HashMap<String, Rates>>,
    history: std::sync::Mutex<std::collections::VecDeque<live::HistoryPoint>>,
    recent: std::sync::Mutex<std::collections::VecDeque<(u64, Arc<Event>)>>,
    stats_tx: broadcast::Sender<Arc<String>>,
}

impl Web {
    /// The web side of a process run by `control`, with its TUN clients'
    /// counters, started at `started`; `service_count` services configured.
    pub fn new(
        control: Arc<Control>,
        clients: Vec<(String, Arc<ClientStats>)>,
        started: SystemTime,
        service_count: usize,
    ) -> Arc<Web> {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "localhost".to_owned());
        Arc::new(Web {
            control,
            clients,
            started,
            hostname,
            service_count,
            rates: ArcSwap::default(),
            history: std::sync::Mutex::default(),
            recent: std::sync::Mutex::default(),
            stats_tx: broadcast::channel(16).0,
        })
    }

    /// The process's control (its config and router services).
    pub fn control(&self) -> &Arc<Control> {
        &self.control
    }

    /// Starts measuring rates (for `/status`, `/events` and the dashboard),
    /// and keeping the last events, until `shutdown`.
    pub fn spawn_sampler(self: &Arc<Self>, shutdown: CancellationToken) {
        tokio::spawn(Arc::clone(self).sample(shutdown.clone()));
        tokio::spawn(Arc::clone(self).remember(shutdown));
    }

    /// A router service's status as GOST shows it in `GET /config`.
    fn gost_service_status(&self, name: &str) -> Option<serde_json::Value> {
        let service = self.control.routers().iter().find(|s| s.name() == name)?;
        let server = service.server();
        let stats = server.stats();
        let totals = server.totals();
        let created = server.started().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        Some(json!({
            "createTime": created,
            "state": "running",
            "stats": {
                "totalConns": stats.accepted_total() + stats.refused_total(),
                "currentConns": server.connections_now(),
                "totalErrs": stats.refused_total(),
                "inputBytes": totals.bytes_in + 2 * totals.packets_in,
                "outputBytes": totals.bytes_out + 2 * totals.packets_out,
            }
        }))
    }
}

/// One web API endpoint.
#[derive(Debug, Clone)]
struct ApiState {
    auth: Arc<WebAuth>,
    access_log: bool,
    name: String,
}

/// The web API's routes under `api.path_prefix`, checked against `auth`.
pub fn api_router(web: Arc<Web>, api: &ApiConfig, auth: Arc<WebAuth>, name: &str) -> Router {
    let prefix = api.path_prefix.as_str();
    let state = ApiState { auth, access_log: api.access_log, name: name.to_owned() };
    let at = |path: &str| format!("{prefix}{path}");
    let mut app = Router::new()
        .route(&at("/config"), get(gost::get_config).post(gost::save_config))
        .route(&at("/config/reload"), post(gost::reload_config))
        .route(&at("/config/{section}"), get(gost::list).post(gost::create))
        .route(&at("/config/{section}/{name}"), get(gost::get).put(gost::update).delete(gost::delete))
        .route(&at("/status"), get(live::status))
        .route(&at("/status/lookup"), get(live::lookup))
        .route(&at("/status/history"), get(live::history))
        .route(&at("/status/connections/{connector}"), delete(live::close))
        .route(&at("/events"), get(live::events))
        .route(&at("/"), get(dashboard))
        .with_state(web);
    if !prefix.is_empty() {
        // The dashboard's relative links need the trailing slash.
        let slash = at("/");
        app = app.route(prefix, get(move || async move { Redirect::permanent(&slash) }));
    }
    app.fallback(not_found).layer(middleware::from_fn_with_state(state, guard))
}

/// The metrics endpoint's route, checked against `auth`.
pub fn metrics_router(web: Arc<Web>, metrics: &MetricsConfig, auth: Arc<WebAuth>, name: &str) -> Router {
    let collector = Arc::new(metrics::Metrics::new(Arc::clone(&web), metrics.host_labels));
    let state = ApiState { auth, access_log: false, name: name.to_owned() };
    Router::new()
        .route(&metrics.path, get(metrics::scrape))
        .with_state(collector)
        .fallback(|| async { StatusCode::NOT_FOUND })
        .layer(middleware::from_fn_with_state(state, guard))
}

async fn not_found() -> Response {
    gost::ApiError::new(StatusCode::NOT_FOUND, gost::NOT_FOUND, "not found").into_response()
}

async fn dashboard() -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        DASHBOARD,
    )
        .into_response()
}

/// Authentication, and the access log when asked for.
async fn guard(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)), |c| c.0);
    let started = tokio::time::Instant::now();
    let (method, uri) = (request.method().clone(), request.uri().clone());
    let response = if state.auth.check(request.headers(), client).await {
        next.run(request).await
    } else {
        tracing::debug!(service = %state.name, %client, %uri, "web: unauthorized");
        let body = json!({"code": 401, "msg": "Unauthorized"});
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"rgost\""))],
            axum::Json(body),
        )
            .into_response()
    };
    if state.access_log {
        tracing::info!(
            service = %state.name,
            %client,
            %method,
            uri = %uri,
            code = response.status().as_u16(),
            duration = ?started.elapsed(),
            "api request"
        );
    }
    response
}

/// What an endpoint is, for its auth to follow config changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// The top-level `api:`.
    Api,
    /// The top-level `metrics:`.
    Metrics,
    /// A service with handler `api` or `metrics`, by name.
    Service(String),
}

impl Endpoint {
    /// The endpoint's `auth` and `auther` in `config`.
    fn auth_in<'c>(&self, config: &'c Config) -> Option<(Option<&'c rgost_config::Credentials>, Option<&'c str>)> {
        match self {
            Endpoint::Api => config.api.as_ref().map(|a| (a.auth.as_ref(), a.auther.as_deref())),
            Endpoint::Metrics => config.metrics.as_ref().map(|m| (m.auth.as_ref(), m.auther.as_deref())),
            Endpoint::Service(name) => config.services.iter().find(|s| &s.name == name).and_then(|s| match &s.kind {
                rgost_config::ServiceKind::Api(a) => Some((a.auth.as_ref(), a.auther.as_deref())),
                rgost_config::ServiceKind::Metrics(m) => Some((m.auth.as_ref(), m.auther.as_deref())),
                _ => None,
            }),
        }
    }
}

/// Sets `auth` from the running config, and again after every applied
/// change (an auther edited through the API applies to the API at once),
/// until `shutdown`.
pub async fn follow_auth(web: Arc<Web>, endpoint: Endpoint, auth: Arc<WebAuth>, shutdown: CancellationToken) {
    let mut events = web.control.events().subscribe();
    let set = |config: Config| {
        let (auth, endpoint, shutdown) = (Arc::clone(&auth), endpoint.clone(), shutdown.clone());
        async move {
            let (credentials, auther) = endpoint.auth_in(&config).unwrap_or((None, None));
            auth.set(credentials, auther, &config, &shutdown).await;
        }
    };
    set(web.control.config().await).await;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            event = events.recv() => match event {
                Ok(event) if matches!(&*event, Event::Reload { applied: true, .. }) => set(web.control.config().await).await,
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => set(web.control.config().await).await,
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}

/// Whether an address is only reachable from this machine.
pub fn is_loopback(addr: &rgost_config::ListenAddr) -> bool {
    addr.ip.is_some_and(|ip| ip.is_loopback())
}

/// How long [`live::SAMPLE_EVERY`] is, for callers that wait for a rate.
pub const RATE_PERIOD: Duration = live::SAMPLE_EVERY;
