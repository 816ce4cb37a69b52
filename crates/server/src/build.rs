//! Building a router service's [`Settings`] from the config: inline entries
//! first, then data sources (read once at start, then every `reload`
//! period, each reload swapping whole tables), and HTTP plugins.
//!
//! A reload changes what the next packet or handshake sees and nothing
//! else: established connections stay. A source that fails at start is a
//! warning (its entries are missing until it works), as in GOST.

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use rgost_config::{
    AutherConfig, Config, IngressConfig, LimiterConfig, RateLimit, RateLimiterConfig, RouterConfig, RouterService,
    TrafficLimit, defaults,
};
use rgost_relay::TunnelId;
use rgost_routing::{Ingress, Route, RouteTable};
use rgost_sources::{AuthPlugin, Entry, IngressPlugin, LimiterPlugin, LineFormat, PluginError, Reloader, RouterPlugin};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::Settings;
use crate::auth::{AuthResolver, Auther, User};
use crate::events::{Event, Events};
use crate::ingress::{IngressResolver, IngressSource};
use crate::meters::{Meters, PluginStats};
use crate::observe::Observer;
use crate::ratelimit::RateLimiter;
use crate::router::{RouteResolver, Router};
use crate::shaping::{Rules, TrafficLimiter};

/// Where the built settings report what they do: route changes from data
/// sources as events, source reads and plugin lookups as counters.
#[derive(Debug, Clone, Default)]
pub struct Hooks {
    /// The bus for route changes.
    pub events: Events,
    /// The counters of sources and plugins.
    pub meters: Arc<Meters>,
}

/// Why a service's settings could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A plugin's configuration is unusable (bad URL, TLS files).
    #[error("{what} {name}: plugin: {source}")]
    Plugin {
        /// "router", "ingress", "auther", "limiter" or "observer".
        what: &'static str,
        /// Its name.
        name: String,
        /// What failed.
        #[source]
        source: PluginError,
    },
}

/// The settings of router service `name`, with data sources loaded and
/// their reloaders running until `shutdown`.
pub async fn settings(
    name: &str,
    service: &RouterService,
    config: &Config,
    shutdown: &CancellationToken,
) -> Result<Settings, BuildError> {
    settings_with(name, service, config, shutdown, &Hooks::default()).await
}

/// [`settings`], reporting to `hooks`.
pub async fn settings_with(
    name: &str,
    service: &RouterService,
    config: &Config,
    shutdown: &CancellationToken,
    hooks: &Hooks,
) -> Result<Settings, BuildError> {
    let mut settings = Settings::from_config(name, service, config);
    // With `router.cache` off the packet path still never waits on HTTP:
    // rgost then caches answers briefly.
    let ttl = if service.route_cache_ttl.is_zero() { defaults::ROUTE_CACHE_TTL } else { service.route_cache_ttl };
    for router in &config.routers {
        if let Some(built) = build_router(name, router, ttl, shutdown, hooks).await? {
            settings.routers.insert(router.name.clone(), built);
        }
    }
    if let Some(ingress) = service.ingress.as_ref().and_then(|n| config.ingresses.iter().find(|i| &i.name == n))
        && let Some(built) = build_ingress(ingress, shutdown, &hooks.meters).await?
    {
        settings.ingress = Some(built);
    }
    // The handler's own `auth` wins over `auther` (from_config already chose it).
    if service.auth.is_none()
        && let Some(auther) = service.auther.as_ref().and_then(|n| config.authers.iter().find(|a| &a.name == n))
        && let Some(built) = auther_with(auther, shutdown, &hooks.meters).await?
    {
        settings.auther = Some(built);
    }
    attach_shapers(&mut settings, name, service, config, shutdown, &hooks.meters).await?;
    Ok(settings)
}

/// The limiters' data sources and plugins, and the observer.
async fn attach_shapers(
    settings: &mut Settings,
    name: &str,
    service: &RouterService,
    config: &Config,
    shutdown: &CancellationToken,
    meters: &Meters,
) -> Result<(), BuildError> {
    let shaping = &service.shaping;
    let limiter = |wanted: &Option<String>| config.limiters.iter().find(|l| Some(&l.name) == wanted.as_ref());
    if let Some(limiter) = limiter(&shaping.limiter) {
        settings.shaping.limiter = Some(build_limiter(limiter, name, shaping.limiter_refresh, shutdown, meters).await?);
    }
    if let Some(limiter) = limiter(&shaping.service_limiter) {
        settings.shaping.service_limiter =
            Some(build_limiter(limiter, name, shaping.limiter_refresh, shutdown, meters).await?);
    }
    if let Some(limiter) = config.rlimiters.iter().find(|l| Some(&l.name) == shaping.rate_limiter.as_ref()) {
        settings.shaping.rate_limiter = Some(build_rate_limiter(limiter, shutdown, meters).await);
    }
    if let Some(observer) = config.observers.iter().find(|o| Some(&o.name) == shaping.observer.as_ref()) {
        let built = Observer::new(observer, shaping.observe.period, shaping.observe.reset_traffic)
            .map_err(|source| BuildError::Plugin { what: "observer", name: observer.name.clone(), source })?;
        settings.shaping.observer = Some(Arc::new(built));
    }
    Ok(())
}

/// A traffic limiter: its inline lines and data sources, reloaded; or its
/// plugin, asked again about connected clients every `refresh`.
async fn build_limiter(
    config: &LimiterConfig,
    service: &str,
    refresh: Duration,
    shutdown: &CancellationToken,
    meters: &Meters,
) -> Result<Arc<TrafficLimiter>, BuildError> {
    if let Some(plugin) = &config.plugin {
        let plugin = LimiterPlugin::new(plugin).map_err(|source| BuildError::Plugin {
            what: "limiter",
            name: config.name.clone(),
            source,
        })?;
        let limiter = Arc::new(TrafficLimiter::plugin(&config.name, plugin, service));
        tokio::spawn(Arc::clone(&limiter).refresh(refresh, shutdown.clone()));
        return Ok(limiter);
    }
    if config.sources.is_empty() {
        return Ok(Arc::new(TrafficLimiter::new(&config.name, Rules::new(&config.limits))));
    }
    let inline = config.limits.iter().map(|l| split_line(&l.line())).collect();
    let label = format!("limiter {}", config.name);
    let valid = |(scope, rates): &Entry| TrafficLimit::parse(&format!("{scope} {rates}")).is_ok();
    let stats = meters.source("limiter", &config.name);
    let (initial, reloader) = load_lines(&label, config.sources.clone(), inline, valid, stats).await;
    let limiter = Arc::new(TrafficLimiter::new(&config.name, Rules::new(&traffic_lines(&label, &initial))));
    let target = Arc::clone(&limiter);
    reloader.spawn(move |entries| target.replace(Rules::new(&traffic_lines(&label, &entries))), shutdown.clone());
    Ok(limiter)
}

/// A rate limiter: its inline lines and data sources, reloaded.
async fn build_rate_limiter(
    config: &RateLimiterConfig,
    shutdown: &CancellationToken,
    meters: &Meters,
) -> Arc<RateLimiter> {
    if config.sources.is_empty() {
        return Arc::new(RateLimiter::new(&config.name, &config.limits));
    }
    let inline = config.limits.iter().map(|l| split_line(&l.to_string())).collect();
    let label = format!("rlimiter {}", config.name);
    let valid = |(scope, rate): &Entry| RateLimit::parse(&format!("{scope} {rate}")).is_ok();
    let stats = meters.source("rlimiter", &config.name);
    let (initial, reloader) = load_lines(&label, config.sources.clone(), inline, valid, stats).await;
    let limiter = Arc::new(RateLimiter::new(&config.name, &rate_lines(&label, &initial)));
    let target = Arc::clone(&limiter);
    reloader.spawn(move |entries| target.replace(&rate_lines(&label, &entries)), shutdown.clone());
    limiter
}

/// `SCOPE REST` as an entry.
fn split_line(line: &str) -> Entry {
    let (scope, rest) = line.split_once(' ').unwrap_or((line, ""));
    (scope.to_owned(), rest.to_owned())
}

/// Limit lines from sources; a line that does not parse is skipped.
fn traffic_lines(label: &str, entries: &[Entry]) -> Vec<TrafficLimit> {
    entries
        .iter()
        .filter_map(|(scope, rates)| match TrafficLimit::parse(&format!("{scope} {rates}")) {
            Ok(line) => Some(line),
            Err(e) => {
                tracing::warn!("{label}: skipping limit {scope:?} {rates:?}: {e}");
                None
            }
        })
        .collect()
}

/// Rate limit lines from sources; a line that does not parse is skipped.
fn rate_lines(label: &str, entries: &[Entry]) -> Vec<RateLimit> {
    entries
        .iter()
        .filter_map(|(scope, rate)| match RateLimit::parse(&format!("{scope} {rate}")) {
            Ok(line) => line,
            Err(e) => {
                tracing::warn!("{label}: skipping limit {scope:?} {rate:?}: {e}");
                None
            }
        })
        .collect()
}

/// As [`load`], for sources whose lines are limit lines (`SCOPE VALUE...`).
async fn load_lines(
    label: &str,
    sources: rgost_config::Sources,
    inline: Vec<Entry>,
    valid: impl Fn(&Entry) -> bool + Send + Sync + 'static,
    stats: Arc<rgost_sources::ReloadStats>,
) -> (Vec<Entry>, Reloader) {
    let mut reloader =
        Reloader::new(label, sources, inline).with_validity(valid).with_format(LineFormat::Keyed).with_stats(stats);
    let initial = reloader.load_initial().await;
    for error in &initial.errors {
        tracing::warn!("{label}: data source failed at start, its entries are missing until it works: {error}");
    }
    (initial.entries, reloader)
}

async fn build_router(
    service: &str,
    config: &RouterConfig,
    ttl: Duration,
    shutdown: &CancellationToken,
    hooks: &Hooks,
) -> Result<Option<Arc<Router>>, BuildError> {
    if let Some(plugin) = &config.plugin {
        let plugin = RouterPlugin::new(plugin).map_err(|source| BuildError::Plugin {
            what: "router",
            name: config.name.clone(),
            source,
        })?;
        let resolver = HttpRoutes {
            router: config.name.clone(),
            plugin,
            failing: Default::default(),
            stats: hooks.meters.plugin("router", &config.name),
        };
        return Ok(Some(Arc::new(Router::plugin(Arc::new(resolver), ttl))));
    }
    if config.sources.is_empty() {
        return Ok(None);
    }
    let inline = config.routes.iter().map(|r| (r.dst.to_string(), r.gateway.to_string())).collect();
    let label = format!("router {}", config.name);
    let valid = |(dst, gateway): &Entry| Route::parse(dst, gateway).is_ok();
    let stats = hooks.meters.source("router", &config.name);
    let (initial, reloader) = load(&label, config.sources.clone(), inline, valid, stats).await;
    let router = Arc::new(Router::table(route_table(&label, &initial)));
    let target = Arc::clone(&router);
    let (events, service, name) = (hooks.events.clone(), service.to_owned(), config.name.clone());
    let apply = move |entries: Vec<Entry>| {
        let table = route_table(&label, &entries);
        let routes = table.len();
        target.replace(table);
        events.send_with(|| Event::RouteChange { service: service.clone(), router: name.clone(), routes });
    };
    reloader.spawn(apply, shutdown.clone());
    Ok(Some(router))
}

async fn build_ingress(
    config: &IngressConfig,
    shutdown: &CancellationToken,
    meters: &Meters,
) -> Result<Option<IngressSource>, BuildError> {
    if let Some(plugin) = &config.plugin {
        let plugin = IngressPlugin::new(plugin).map_err(|source| BuildError::Plugin {
            what: "ingress",
            name: config.name.clone(),
            source,
        })?;
        let resolver = HttpIngress {
            ingress: config.name.clone(),
            plugin,
            failing: Default::default(),
            stats: meters.plugin("ingress", &config.name),
        };
        return Ok(Some(IngressSource::Plugin(Arc::new(resolver))));
    }
    if config.sources.is_empty() {
        return Ok(None);
    }
    let inline = config.rules.iter().map(|(host, id)| (host.clone(), id.to_string())).collect();
    let label = format!("ingress {}", config.name);
    let valid = |(_, endpoint): &Entry| uuid::Uuid::parse_str(endpoint.trim()).is_ok();
    let stats = meters.source("ingress", &config.name);
    let (initial, reloader) = load(&label, config.sources.clone(), inline, valid, stats).await;
    let source = IngressSource::rules(ingress_rules(&label, &initial));
    let target = source.clone();
    reloader.spawn(move |entries| target.replace(ingress_rules(&label, &entries)), shutdown.clone());
    Ok(Some(source))
}

/// An auther from its config: its inline users, data sources (read now,
/// then reloaded until `shutdown`) or plugin. Also used by the web
/// endpoints, whose `auther` names one. `None` when it has no data source
/// and no plugin (then its inline users are the whole table).
pub async fn auther(config: &AutherConfig, shutdown: &CancellationToken) -> Result<Option<Auther>, BuildError> {
    auther_with(config, shutdown, &Meters::default()).await
}

async fn auther_with(
    config: &AutherConfig,
    shutdown: &CancellationToken,
    meters: &Meters,
) -> Result<Option<Auther>, BuildError> {
    if let Some(plugin) = &config.plugin {
        let plugin = AuthPlugin::new(plugin).map_err(|source| BuildError::Plugin {
            what: "auther",
            name: config.name.clone(),
            source,
        })?;
        let resolver = HttpAuth {
            auther: config.name.clone(),
            plugin,
            failing: Default::default(),
            stats: meters.plugin("auther", &config.name),
        };
        return Ok(Some(Auther::Plugin(Arc::new(resolver))));
    }
    if config.sources.is_empty() {
        return Ok(None);
    }
    // Source lines are `USER PASSWORD [hosts=RULES]` (see `auth::User`);
    // inline users are kept apart, their passwords as written.
    let label = format!("auther {}", config.name);
    let stats = meters.source("auther", &config.name);
    let valid = |(_, value): &Entry| User::parse(value).is_ok();
    let (initial, reloader) = load_lines(&label, config.sources.clone(), Vec::new(), valid, stats).await;
    let inline: Arc<[(String, User)]> =
        config.auths.iter().map(|u| (u.credentials.username.clone(), User::new(&u.credentials.password))).collect();
    // Priority as for other sources: every data source over inline users.
    let users = move |entries: Vec<Entry>| {
        let from_sources = entries.into_iter().filter_map(|(name, value)| Some((name, User::parse(&value).ok()?)));
        from_sources.chain(inline.iter().cloned()).collect::<Vec<_>>()
    };
    let auther = Auther::from_users(users(initial));
    let target = auther.clone();
    reloader.spawn(move |entries| target.replace_users(users(entries)), shutdown.clone());
    Ok(Some(auther))
}

/// Reads the sources once; start-up failures are warnings. A source counts
/// only the entries `valid` accepts: one that yields none keeps its last
/// good entries, like a source that fails.
async fn load(
    label: &str,
    sources: rgost_config::Sources,
    inline: Vec<Entry>,
    valid: impl Fn(&Entry) -> bool + Send + Sync + 'static,
    stats: Arc<rgost_sources::ReloadStats>,
) -> (Vec<Entry>, Reloader) {
    let mut reloader = Reloader::new(label, sources, inline).with_validity(valid).with_stats(stats);
    let initial = reloader.load_initial().await;
    for error in &initial.errors {
        tracing::warn!("{label}: data source failed at start, its entries are missing until it works: {error}");
    }
    (initial.entries, reloader)
}

/// Entries come in priority order; the table keeps the first of duplicates.
fn route_table(label: &str, entries: &[Entry]) -> RouteTable {
    RouteTable::new(entries.iter().filter_map(|(dst, gateway)| match Route::parse(dst, gateway) {
        Ok(route) => Some(route),
        Err(e) => {
            tracing::warn!("{label}: skipping route {dst:?} -> {gateway:?}: {e}");
            None
        }
    }))
}

fn ingress_rules(label: &str, entries: &[Entry]) -> Ingress {
    Ingress::new(entries.iter().filter_map(|(host, endpoint)| match uuid::Uuid::parse_str(endpoint.trim()) {
        Ok(id) => Some((host.clone(), *id.as_bytes())),
        Err(e) => {
            tracing::warn!("{label}: skipping rule {host:?}: endpoint {endpoint:?} is not a UUID: {e}");
            None
        }
    }))
}

/// Logs a plugin failure once per failure streak.
#[derive(Debug, Default)]
struct Streak(std::sync::atomic::AtomicBool);

impl Streak {
    fn failed(&self, what: &dyn fmt::Display, error: &PluginError) {
        if !self.0.swap(true, std::sync::atomic::Ordering::Relaxed) {
            tracing::warn!("{what}: plugin failed, answering \"none\" until it works: {error}");
        }
    }

    fn worked(&self, what: &dyn fmt::Display) {
        if self.0.swap(false, std::sync::atomic::Ordering::Relaxed) {
            tracing::info!("{what}: plugin works again");
        }
    }
}

/// A router plugin as a [`RouteResolver`].
struct HttpRoutes {
    router: String,
    plugin: RouterPlugin,
    failing: Arc<Streak>,
    stats: Arc<PluginStats>,
}

impl fmt::Debug for HttpRoutes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpRoutes").field("router", &self.router).finish_non_exhaustive()
    }
}

impl RouteResolver for HttpRoutes {
    fn resolve(&self, dst: IpAddr, router_id: TunnelId) -> Pin<Box<dyn Future<Output = Option<Arc<str>>> + Send>> {
        let plugin = self.plugin.clone();
        let failing = Arc::clone(&self.failing);
        let stats = Arc::clone(&self.stats);
        let what = format!("router {}", self.router);
        Box::pin(async move {
            let started = Instant::now();
            let result = plugin.lookup(dst, &router_id.to_string()).await;
            stats.observe(started.elapsed(), result.is_ok());
            match result {
                Ok(answer) => {
                    failing.worked(&what);
                    answer.map(|(_, gateway)| Arc::from(gateway))
                }
                Err(e) => {
                    failing.failed(&what, &e);
                    None
                }
            }
        })
    }
}

/// An ingress plugin as an [`IngressResolver`].
struct HttpIngress {
    ingress: String,
    plugin: IngressPlugin,
    failing: Arc<Streak>,
    stats: Arc<PluginStats>,
}

impl fmt::Debug for HttpIngress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpIngress").field("ingress", &self.ingress).finish_non_exhaustive()
    }
}

impl IngressResolver for HttpIngress {
    fn resolve(&self, host: &str, service: &str) -> Pin<Box<dyn Future<Output = Option<[u8; 16]>> + Send>> {
        let plugin = self.plugin.clone();
        let failing = Arc::clone(&self.failing);
        let stats = Arc::clone(&self.stats);
        let what = format!("ingress {}", self.ingress);
        let (host, service) = (host.to_owned(), service.to_owned());
        Box::pin(async move {
            let started = Instant::now();
            let result = plugin.lookup(&host, &service).await;
            stats.observe(started.elapsed(), result.is_ok());
            match result {
                Ok(answer) => {
                    failing.worked(&what);
                    let endpoint = answer?;
                    match uuid::Uuid::parse_str(endpoint.trim()) {
                        Ok(id) => Some(*id.as_bytes()),
                        Err(_) => {
                            tracing::warn!(host = %host, "{what}: plugin endpoint {endpoint:?} is not a UUID");
                            None
                        }
                    }
                }
                Err(e) => {
                    failing.failed(&what, &e);
                    None
                }
            }
        })
    }
}

/// An auther plugin as an [`AuthResolver`].
struct HttpAuth {
    auther: String,
    plugin: AuthPlugin,
    failing: Arc<Streak>,
    stats: Arc<PluginStats>,
}

impl fmt::Debug for HttpAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpAuth").field("auther", &self.auther).finish_non_exhaustive()
    }
}

impl AuthResolver for HttpAuth {
    fn authenticate(
        &self,
        service: &str,
        username: &str,
        password: &str,
        client: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = Option<String>> + Send>> {
        let plugin = self.plugin.clone();
        let failing = Arc::clone(&self.failing);
        let stats = Arc::clone(&self.stats);
        let what = format!("auther {}", self.auther);
        let (service, username, password) = (service.to_owned(), username.to_owned(), password.to_owned());
        Box::pin(async move {
            let started = Instant::now();
            let result = plugin.authenticate(&service, &username, &password, &client.to_string()).await;
            stats.observe(started.elapsed(), result.is_ok());
            match result {
                Ok(answer) => {
                    failing.worked(&what);
                    answer
                }
                Err(e) => {
                    failing.failed(&what, &e);
                    None
                }
            }
        })
    }
}
