//! rgost's live status, beyond GOST: `{prefix}/status`,
//! `{prefix}/status/lookup`, `DELETE {prefix}/status/connections/{id}` and
//! the event stream `{prefix}/events`.
//!
//! Rates come from a sampler that reads every connection's counters every
//! [`SAMPLE_EVERY`] while the API runs; each sample is also sent on the
//! event stream as a `stats` event (per-host rates, drops by reason), which
//! the dashboard draws.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use rgost_relay::TunnelId;
use rgost_server::status::{Rates, ServiceStatus};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::broadcast;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::Web;
use crate::gost::{ApiError, INVALID, NOT_FOUND};

/// How often rates are measured (and `stats` events sent).
pub const SAMPLE_EVERY: Duration = Duration::from_secs(2);
/// Samples kept for the dashboard's chart (five minutes).
pub const HISTORY_SAMPLES: usize = 150;
/// Hosts kept per sample for the chart: the busiest ones.
pub const HISTORY_HOSTS: usize = 64;
/// Events kept for a dashboard that opens later.
pub const RECENT_EVENTS: usize = 50;

/// One sample of the chart's history.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryPoint {
    /// When (milliseconds since the Unix epoch).
    pub time: u64,
    /// The busiest hosts' rates, at most [`HISTORY_HOSTS`].
    pub hosts: Vec<HostRates>,
}

/// The whole process now.
#[derive(Debug, Serialize)]
pub struct Status {
    /// rgost's version.
    pub version: &'static str,
    /// When the process started (seconds since the Unix epoch).
    pub started: u64,
    /// Seconds since then.
    pub uptime: f64,
    /// Router services, with their namespaces, hosts and connections.
    pub services: Vec<ServiceStatus>,
    /// TUN clients of this process.
    pub clients: Vec<ClientStatus>,
    /// Config changes applied and refused (SIGHUP and API).
    pub reloads: Reloads,
}

/// A TUN client.
#[derive(Debug, Serialize)]
pub struct ClientStatus {
    /// The service's name.
    pub name: String,
    /// Whether it is connected to its router server now.
    pub connected: bool,
    /// Sessions after the first.
    pub reconnects: u64,
    /// Connection attempts that failed.
    pub failed: u64,
}

/// Config changes.
#[derive(Debug, Serialize)]
pub struct Reloads {
    /// Applied.
    pub applied: u64,
    /// Refused (the running config stayed).
    pub refused: u64,
}

/// One host's rates in a `stats` event.
#[derive(Debug, Clone, Serialize)]
pub struct HostRates {
    /// The router service.
    pub service: String,
    /// The namespace.
    pub router: String,
    /// The host name.
    pub host: String,
    /// Its connections.
    pub connections: usize,
    /// Summed over its connections.
    #[serde(flatten)]
    pub rates: Rates,
}

/// A `stats` event: every host's rates and each service's drops.
#[derive(Debug, Clone, Serialize)]
pub struct StatsEvent {
    /// When (milliseconds since the Unix epoch).
    pub time: u64,
    /// Every host.
    pub hosts: Vec<HostRates>,
    /// Drops by reason per service, since start.
    pub drops: BTreeMap<String, BTreeMap<&'static str, u64>>,
}

/// What the sampler remembers of a connection.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    packets_in: u64,
    bytes_in: u64,
    packets_out: u64,
    bytes_out: u64,
}

// Counters as f64 for rates: exact far beyond what a connection moves.
#[allow(clippy::cast_precision_loss)]
fn per_second(now: u64, before: u64, secs: f64) -> f64 {
    now.saturating_sub(before) as f64 / secs
}

impl Web {
    /// Measures rates every [`SAMPLE_EVERY`] until `shutdown`.
    pub(crate) async fn sample(self: Arc<Self>, shutdown: CancellationToken) {
        let mut previous: HashMap<String, Sample> = HashMap::new();
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let now = Instant::now();
            let mut current = HashMap::new();
            let mut rates = HashMap::new();
            let mut hosts = Vec::new();
            let mut drops = BTreeMap::new();
            for service in self.control.routers() {
                let status = service.status();
                drops.insert(status.name.clone(), status.totals.drops.clone());
                for ns in &status.namespaces {
                    for host in &ns.hosts {
                        let mut sum = Rates::default();
                        for conn in &host.connections {
                            let c = &conn.counters;
                            let sample = Sample {
                                at: now,
                                packets_in: c.packets_in,
                                bytes_in: c.bytes_in,
                                packets_out: c.packets_out,
                                bytes_out: c.bytes_out,
                            };
                            if let Some(before) = previous.get(&conn.connector) {
                                let secs = now.duration_since(before.at).as_secs_f64().max(1e-3);
                                let r = Rates {
                                    bps_in: 8.0 * per_second(sample.bytes_in, before.bytes_in, secs),
                                    bps_out: 8.0 * per_second(sample.bytes_out, before.bytes_out, secs),
                                    pps_in: per_second(sample.packets_in, before.packets_in, secs),
                                    pps_out: per_second(sample.packets_out, before.packets_out, secs),
                                };
                                sum.bps_in += r.bps_in;
                                sum.bps_out += r.bps_out;
                                sum.pps_in += r.pps_in;
                                sum.pps_out += r.pps_out;
                                rates.insert(conn.connector.clone(), r);
                            }
                            current.insert(conn.connector.clone(), sample);
                        }
                        hosts.push(HostRates {
                            service: status.name.clone(),
                            router: ns.router.clone(),
                            host: host.host.clone(),
                            connections: host.connections.len(),
                            rates: sum,
                        });
                    }
                }
            }
            previous = current;
            self.rates.store(Arc::new(rates));
            let time = unix_millis(SystemTime::now());
            {
                let mut busiest = hosts.clone();
                let total = |h: &HostRates| h.rates.bps_in + h.rates.bps_out;
                busiest.sort_by(|a, b| total(b).total_cmp(&total(a)));
                busiest.truncate(HISTORY_HOSTS);
                let mut history = self.history.lock().unwrap_or_else(|p| p.into_inner());
                if history.len() >= HISTORY_SAMPLES {
                    history.pop_front();
                }
                history.push_back(HistoryPoint { time, hosts: busiest });
            }
            if self.stats_tx.receiver_count() > 0 {
                let event = StatsEvent { time, hosts, drops };
                if let Ok(text) = serde_json::to_string(&event) {
                    let _ = self.stats_tx.send(Arc::new(text));
                }
            }
        }
    }

    /// Keeps the last [`RECENT_EVENTS`] events until `shutdown`.
    pub(crate) async fn remember(self: Arc<Self>, shutdown: CancellationToken) {
        let mut events = self.control.events().subscribe();
        loop {
            let event = tokio::select! {
                () = shutdown.cancelled() => return,
                event = events.recv() => event,
            };
            match event {
                Ok(event) => {
                    let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
                    if recent.len() >= RECENT_EVENTS {
                        recent.pop_front();
                    }
                    recent.push_back((unix_millis(SystemTime::now()), event));
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    /// The process's status now, with the last measured rates.
    pub fn status(&self) -> Status {
        let rates = self.rates.load();
        let mut services: Vec<ServiceStatus> = self.control.routers().iter().map(|s| s.status()).collect();
        for service in &mut services {
            for conn in
                service.namespaces.iter_mut().flat_map(|ns| ns.hosts.iter_mut()).flat_map(|h| h.connections.iter_mut())
            {
                conn.rates = Some(rates.get(&conn.connector).copied().unwrap_or_default());
            }
        }
        let (applied, refused) = self.control.reloads();
        Status {
            version: env!("CARGO_PKG_VERSION"),
            started: unix_millis(self.started) / 1000,
            uptime: self.started.elapsed().map_or(0.0, |d| d.as_secs_f64()),
            services,
            clients: self
                .clients
                .iter()
                .map(|(name, stats)| ClientStatus {
                    name: name.clone(),
                    connected: stats.connected(),
                    reconnects: stats.reconnects(),
                    failed: stats.failed(),
                })
                .collect(),
            reloads: Reloads { applied, refused },
        }
    }
}

fn unix_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `GET /status`.
pub(crate) async fn status(State(web): State<Arc<Web>>) -> Json<Status> {
    Json(web.status())
}

/// `GET /status/history`: the last five minutes of per-host rates (the
/// busiest hosts), one point every [`SAMPLE_EVERY`], and the last events.
pub(crate) async fn history(State(web): State<Arc<Web>>) -> Response {
    let points: Vec<HistoryPoint> = web.history.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect();
    let recent: Vec<Value> = web
        .recent
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|(time, event)| json!({"time": time, "type": event.kind(), "event": &**event}))
        .collect();
    let period = u64::try_from(SAMPLE_EVERY.as_millis()).unwrap_or(2000);
    Json(json!({"period_ms": period, "points": points, "events": recent})).into_response()
}

/// `?router=UUID&ip=ADDR[&service=NAME]`.
#[derive(Debug, Deserialize)]
pub(crate) struct LookupQuery {
    router: Option<String>,
    ip: Option<String>,
    service: Option<String>,
}

/// `GET /status/lookup`: which route matches and which connection gets a
/// packet for `ip` in namespace `router` right now.
pub(crate) async fn lookup(State(web): State<Arc<Web>>, Query(query): Query<LookupQuery>) -> Response {
    let bad = |msg: String| ApiError::new(StatusCode::BAD_REQUEST, INVALID, msg).into_response();
    let router_text = query.router.as_deref().map(str::trim).unwrap_or_default();
    let router = if router_text.is_empty() {
        TunnelId::ZERO
    } else {
        match uuid::Uuid::parse_str(router_text) {
            Ok(id) => TunnelId::from_uuid(*id.as_bytes()),
            Err(_) => return bad(format!("router: {router_text:?} is not a router id (UUID)")),
        }
    };
    let ip_text = query.ip.as_deref().map(str::trim).unwrap_or_default();
    let Ok(ip) = ip_text.parse::<IpAddr>() else {
        return bad(format!("ip: {ip_text:?} is not an IP address"));
    };
    let services = web.control.routers();
    let service = match query.service.as_deref() {
        Some(name) => services.iter().find(|s| s.name() == name),
        None => services.first(),
    };
    let Some(service) = service else {
        return ApiError::new(StatusCode::NOT_FOUND, NOT_FOUND, "no such router service").into_response();
    };
    let answer = service.server().lookup(router, ip.to_canonical()).await;
    let mut value = serde_json::to_value(&answer).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.insert("service".to_owned(), json!(service.name()));
    }
    Json(value).into_response()
}

/// `DELETE /status/connections/{connector}`: closes one connection.
pub(crate) async fn close(State(web): State<Arc<Web>>, Path(connector): Path<String>) -> Response {
    let Ok(id) = uuid::Uuid::parse_str(connector.trim()) else {
        return ApiError::new(StatusCode::BAD_REQUEST, INVALID, format!("{connector:?} is not a connector id (UUID)"))
            .into_response();
    };
    let id = TunnelId::from_uuid(*id.as_bytes());
    let closed = web.control.routers().iter().any(|s| s.server().close_connection(&id));
    if closed {
        Json(json!({"msg": "OK"})).into_response()
    } else {
        ApiError::new(StatusCode::NOT_FOUND, NOT_FOUND, format!("connection {id} not found")).into_response()
    }
}

/// `GET /events`: server-sent events `host_up`, `host_down`,
/// `route_change`, `reload` (as they happen) and `stats` (every few seconds).
pub(crate) async fn events(State(web): State<Arc<Web>>) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let changes = web.control.events().subscribe();
    let stats = web.stats_tx.subscribe();
    let stream = futures_util::stream::unfold((changes, stats), |(mut changes, mut stats)| async move {
        loop {
            let event = tokio::select! {
                change = changes.recv() => match change {
                    Ok(change) => serde_json::to_string(&*change).ok().map(|text| SseEvent::default().event(change.kind()).data(text)),
                    Err(broadcast::error::RecvError::Lagged(n)) => Some(SseEvent::default().event("lagged").data(n.to_string())),
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                sample = stats.recv() => match sample {
                    Ok(text) => Some(SseEvent::default().event("stats").data(text.as_str())),
                    // A slow reader skips samples: the next one is as good.
                    Err(broadcast::error::RecvError::Lagged(_)) => None,
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
            };
            if let Some(event) = event {
                return Some((Ok(event), (changes, stats)));
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
