//! Raw schema -> validated model. The first error wins; nothing partial.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use rgost_routing::{Route, RouteError};
use serde_json::Value;
use uuid::Uuid;

use crate::defaults;
use crate::metadata::{Md, check_keys, duration_value, invalid, scalar, shown};
use crate::raw::{
    RawApi, RawAuth, RawAuther, RawChain, RawIngress, RawLimiter, RawMetrics, RawNode, RawObserver, RawPlugin,
    RawRouter, RawSd, RawSelector, RawService, RawSources, RawTls,
};
use crate::{
    AutherConfig, Chain, ClusterSettings, Config, ConfigError, Credentials, DialerKind, FileSource, HttpSource,
    IngressConfig, Keepalive, LimiterConfig, Limits, ListenAddr, ListenerKind, Loaded, Node, Observe, ObserverConfig,
    PluginConfig, RateLimit, RateLimiterConfig, RedisKind, RedisSource, RouterConfig, RouterConnector, RouterService,
    SdBackend, SdConfig, SdRedis, Selector, Service, ServiceKind, Shaping, Sources, Strategy, TlsClientSettings,
    TlsServerSettings, TrafficLimit, TunRouteSetting, TunService, TunSettings, UserEntry,
};

/// One item and where it was read from (a file or a flag).
#[derive(Debug, Clone)]
pub(crate) struct Sourced<T> {
    pub(crate) origin: String,
    pub(crate) item: T,
}

/// Everything read, from the file and the flags, in order.
#[derive(Debug, Default, Clone)]
pub(crate) struct Input {
    pub(crate) services: Vec<Sourced<RawService>>,
    pub(crate) chains: Vec<Sourced<RawChain>>,
    pub(crate) routers: Vec<Sourced<RawRouter>>,
    pub(crate) ingresses: Vec<Sourced<RawIngress>>,
    pub(crate) authers: Vec<Sourced<RawAuther>>,
    pub(crate) limiters: Vec<Sourced<RawLimiter>>,
    pub(crate) rlimiters: Vec<Sourced<RawLimiter>>,
    pub(crate) observers: Vec<Sourced<RawObserver>>,
    pub(crate) sds: Vec<Sourced<RawSd>>,
    pub(crate) api: Option<Sourced<RawApi>>,
    pub(crate) metrics: Option<Sourced<RawMetrics>>,
}

type Result<T> = std::result::Result<T, ConfigError>;

pub(crate) fn missing(origin: &str, key: impl Into<String>, hint: impl Into<String>) -> ConfigError {
    ConfigError::Missing { origin: origin.to_owned(), key: key.into(), hint: hint.into() }
}

pub(crate) fn unsupported(
    origin: &str,
    key: impl Into<String>,
    value: impl Into<String>,
    hint: impl Into<String>,
) -> ConfigError {
    ConfigError::Unsupported { origin: origin.to_owned(), key: key.into(), value: value.into(), hint: hint.into() }
}

pub(crate) fn undefined(origin: &str, key: impl Into<String>, value: impl Into<String>) -> ConfigError {
    ConfigError::Undefined { origin: origin.to_owned(), key: key.into(), value: value.into() }
}

/// A non-empty, trimmed string.
pub(crate) fn text(value: Option<&String>) -> Option<&str> {
    value.map(|s| s.trim()).filter(|s| !s.is_empty())
}

/// What validation noticed besides the model.
#[derive(Debug, Default)]
pub(crate) struct Notes {
    /// Warnings for the log.
    warnings: Vec<String>,
    /// Files the model refers to and rgost opens at start.
    files: Vec<FileRef>,
    /// The metadata keys known to the maps checked (read or ignored).
    keys: Vec<&'static str>,
}

impl Notes {
    pub(crate) fn warn(&mut self, warning: String) {
        self.warnings.push(warning);
    }

    /// Rejects unknown keys of one component's metadata maps (see
    /// [`check_keys`]) and remembers the keys they know.
    pub(crate) fn check_metadata(&mut self, maps: &[&Md<'_>]) -> Result<()> {
        check_keys(maps, &mut self.warnings)?;
        self.keys.extend(maps.iter().flat_map(|md| md.known()));
        Ok(())
    }

    /// `path` (a key's value) names a file rgost reads at start.
    fn file(&mut self, origin: &str, key: String, path: &Option<PathBuf>) {
        if let Some(path) = path {
            self.files.push(FileRef { origin: origin.to_owned(), key, path: path.clone() });
        }
    }
}

/// A file named by a key (a certificate, key or CA), which must be readable
/// when rgost starts.
#[derive(Debug, Clone)]
pub(crate) struct FileRef {
    pub(crate) origin: String,
    pub(crate) key: String,
    pub(crate) path: PathBuf,
}

impl FileRef {
    /// An error when the file cannot be opened for reading. Relative paths
    /// are relative to the working directory, as at start.
    pub(crate) fn check(&self) -> Result<()> {
        match std::fs::File::open(&self.path) {
            Ok(_) => Ok(()),
            Err(err) => Err(invalid(
                &self.origin,
                &self.key,
                self.path.display().to_string(),
                format!("cannot read the file: {err}"),
            )),
        }
    }
}

/// Validates everything read into the model; also returns the files the
/// model names, for [`crate::load`] to check.
pub(crate) fn validate(input: &Input) -> Result<(Loaded, Vec<FileRef>)> {
    validate_with_notes(input).map(|(loaded, notes)| (loaded, notes.files))
}

fn validate_with_notes(input: &Input) -> Result<(Loaded, Notes)> {
    let mut notes = Notes::default();

    let routers: Vec<RouterConfig> =
        section("routers", &input.routers, |o, i, r| router(o, i, r, &mut notes), |r| &r.name)?;
    let ingresses: Vec<IngressConfig> =
        section("ingresses", &input.ingresses, |o, i, r| ingress(o, i, r, &mut notes), |r| &r.name)?;
    let authers: Vec<AutherConfig> =
        section("authers", &input.authers, |o, i, r| auther(o, i, r, &mut notes), |r| &r.name)?;
    let limiters: Vec<LimiterConfig> =
        section("limiters", &input.limiters, |o, i, r| limiter(o, i, r, &mut notes), |r| &r.name)?;
    let rlimiters: Vec<RateLimiterConfig> =
        section("rlimiters", &input.rlimiters, |o, i, r| rate_limiter(o, i, r, &mut notes), |r| &r.name)?;
    let observers: Vec<ObserverConfig> =
        section("observers", &input.observers, |o, i, r| observer(o, i, r, &mut notes), |r| &r.name)?;
    let chains: Vec<Chain> = section("chains", &input.chains, |o, i, r| chain(o, i, r, &mut notes), |c| &c.name)?;
    let sds: Vec<SdConfig> = section("sds", &input.sds, |o, i, r| sd(o, i, r, &mut notes), |s| &s.name)?;

    let refs = Refs {
        routers: &routers,
        ingresses: &ingresses,
        authers: &authers,
        chains: &chains,
        limiters: &limiters,
        rlimiters: &rlimiters,
        observers: &observers,
        sds: &sds,
    };
    let services: Vec<Service> =
        section("services", &input.services, |o, i, r| service(o, i, r, &refs, &mut notes), |s| &s.name)?;
    let api = input.api.as_ref().map(|s| crate::web::api_section(&s.origin, &s.item, refs.authers)).transpose()?;
    let metrics =
        input.metrics.as_ref().map(|s| crate::web::metrics_section(&s.origin, &s.item, refs.authers)).transpose()?;

    let loaded = Loaded {
        config: Config { services, routers, ingresses, authers, limiters, rlimiters, observers, api, metrics },
        warnings: std::mem::take(&mut notes.warnings),
    };
    Ok((loaded, notes))
}

/// Validates every item of a section in order, then checks that their names are unique.
fn section<R, T>(
    name: &str,
    items: &[Sourced<R>],
    mut validate: impl FnMut(&str, usize, &R) -> Result<T>,
    name_of: impl Fn(&T) -> &String,
) -> Result<Vec<T>> {
    let validated =
        items.iter().enumerate().map(|(i, src)| validate(&src.origin, i, &src.item)).collect::<Result<Vec<T>>>()?;
    check_unique(name, items.iter().map(|s| s.origin.as_str()).zip(validated.iter().map(name_of)))?;
    Ok(validated)
}

fn check_unique<'a>(section: &str, names: impl Iterator<Item = (&'a str, &'a String)>) -> Result<()> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, (origin, name)) in names.enumerate() {
        if let Some(first) = seen.insert(name.as_str(), i) {
            seen.insert(name.as_str(), first);
            return Err(invalid(
                origin,
                format!("{section}[{i}].name"),
                name.as_str(),
                format!("duplicate name, also used by {section}[{first}]"),
            ));
        }
    }
    Ok(())
}

/// What services may refer to.
pub(crate) struct Refs<'a> {
    routers: &'a [RouterConfig],
    ingresses: &'a [IngressConfig],
    pub(crate) authers: &'a [AutherConfig],
    chains: &'a [Chain],
    limiters: &'a [LimiterConfig],
    rlimiters: &'a [RateLimiterConfig],
    observers: &'a [ObserverConfig],
    sds: &'a [SdConfig],
}

// GOST options rgost deliberately does not implement, per metadata map:
// accepted with a notice. The keys rgost reads are not listed anywhere: a
// read registers its key (see `metadata`).

const ROUTER_HANDLER_IGNORED: &[&str] = &["bufferSize", "limiter.cleanupInterval"];
pub(crate) const LISTENER_IGNORED: &[&str] = &[
    "backlog",
    "mptcp",
    "proxyProtocol",
    "header",
    "handshakeTimeout",
    "readHeaderTimeout",
    "readBufferSize",
    "writeBufferSize",
    "enableCompression",
    "keepAlive",
    "limiter.refreshInterval",
    "limiter.cleanupInterval",
];
const TUN_LISTENER_IGNORED: &[&str] = &["peer", "bufferSize", "readBufferSize", "ttl", "p2p", "passphrase"];
const TUN_HANDLER_IGNORED: &[&str] = &["bufferSize", "keepAlive", "ttl", "p2p", "passphrase", "observer.period"];
pub(crate) const SERVICE_IGNORED: &[&str] = &[
    "interface",
    "so_mark",
    "soMark",
    "preUp",
    "postUp",
    "preDown",
    "postDown",
    "observer.period",
    "dialTimeout",
    "limiter.refreshInterval",
    "limiter.cleanupInterval",
    "limiter.scope",
];
const CONNECTOR_IGNORED: &[&str] = &[];
const DIALER_IGNORED: &[&str] = &[
    "header",
    "handshakeTimeout",
    "readHeaderTimeout",
    "readBufferSize",
    "writeBufferSize",
    "enableCompression",
    "keepAlive",
    "ttl",
    "mptcp",
];

// ---------------------------------------------------------------- services

fn service(origin: &str, i: usize, raw: &RawService, refs: &Refs<'_>, notes: &mut Notes) -> Result<Service> {
    let path = format!("services[{i}]");
    let name = text(raw.name.as_ref()).map_or_else(|| format!("service-{i}"), str::to_owned);
    let handler = raw.handler.as_ref().and_then(|h| text(h.kind.as_ref())).map(str::to_ascii_lowercase);
    let listener = raw.listener.as_ref().and_then(|l| text(l.kind.as_ref())).map(str::to_ascii_lowercase);
    const HINT: &str = "rgost implements handler router (listener tcp, tls, ws or wss), handler tun (listener tun), \
                        and handler api or metrics (listener tcp or tls)";
    let kind = match (handler.as_deref(), listener.as_deref()) {
        (None | Some("tun" | "auto"), Some("tun")) => ServiceKind::Tun(tun_service(origin, &path, raw, refs, notes)?),
        (Some(other), Some("tun")) => {
            return Err(unsupported(origin, format!("{path}.handler.type"), other, "a tun listener needs handler tun"));
        }
        (Some("router"), None | Some("tcp" | "tls" | "ws" | "wss")) => {
            ServiceKind::Router(router_service(origin, &path, raw, refs, notes)?)
        }
        (Some("router"), Some(other)) => {
            return Err(unsupported(origin, format!("{path}.listener.type"), other, "use tcp, tls, ws or wss"));
        }
        (Some(kind @ ("api" | "metrics")), None | Some("tcp" | "tls")) => {
            let web = crate::web::web_service(origin, &path, raw, refs, notes)?;
            if kind == "api" { ServiceKind::Api(web.api()) } else { ServiceKind::Metrics(web.metrics()) }
        }
        (Some("api" | "metrics"), Some(other)) => {
            return Err(unsupported(origin, format!("{path}.listener.type"), other, "use tcp or tls"));
        }
        (Some("tun"), other) => {
            return Err(unsupported(
                origin,
                format!("{path}.listener.type"),
                other.unwrap_or("tcp"),
                "handler tun needs listener tun",
            ));
        }
        (Some(other), _) => return Err(unsupported(origin, format!("{path}.handler.type"), other, HINT)),
        (None, _) => return Err(missing(origin, format!("{path}.handler.type"), HINT)),
    };
    Ok(Service { name, kind })
}

fn router_service(
    origin: &str,
    path: &str,
    raw: &RawService,
    refs: &Refs<'_>,
    notes: &mut Notes,
) -> Result<RouterService> {
    let handler = raw.handler.clone().unwrap_or_default();
    let listener = raw.listener.clone().unwrap_or_default();
    let hmd = Md::new(origin, format!("{path}.handler.metadata"), handler.metadata.as_ref(), ROUTER_HANDLER_IGNORED);
    let lmd = Md::new(origin, format!("{path}.listener.metadata"), listener.metadata.as_ref(), LISTENER_IGNORED);
    let smd = Md::new(origin, format!("{path}.metadata"), raw.metadata.as_ref(), SERVICE_IGNORED);

    let addr = text(raw.addr.as_ref()).ok_or_else(|| missing(origin, format!("{path}.addr"), "e.g. \":8443\""))?;
    let listen = listen_addr(addr).map_err(|reason| invalid(origin, format!("{path}.addr"), addr, reason))?;

    let tls_path = format!("{path}.listener.tls");
    let listener_type = text(listener.kind.as_ref()).map_or_else(|| "tcp".to_owned(), str::to_ascii_lowercase);
    let ws_path = http_path(&lmd)?;
    let kind = match listener_type.as_str() {
        "tls" => ListenerKind::Tls(tls_server(origin, &tls_path, listener.tls.as_ref(), notes)?),
        "ws" => ListenerKind::Ws { path: ws_path },
        "wss" => ListenerKind::Wss { path: ws_path, tls: tls_server(origin, &tls_path, listener.tls.as_ref(), notes)? },
        _ => ListenerKind::Tcp,
    };
    if matches!(kind, ListenerKind::Tcp | ListenerKind::Ws { .. }) && listener.tls.is_some() {
        notes.warn(format!("{origin}: {tls_path}: ignored by a {listener_type} listener"));
    }
    if matches!(kind, ListenerKind::Tcp | ListenerKind::Tls(_))
        && let Some(key) = lmd.present("path")
    {
        notes.warn(format!("{origin}: {key}: ignored by a {listener_type} listener (ws and wss read it)"));
    }

    let read_timeout = hmd.positive_duration("readTimeout")?.unwrap_or(defaults::READ_TIMEOUT);
    let default_router = match hmd.string("router")? {
        Some((key, name)) if !refs.routers.iter().any(|r| r.name == name) => return Err(undefined(origin, key, name)),
        other => other.map(|(_, name)| name),
    };
    let ingress = match hmd.string("ingress")? {
        Some((key, name)) if !refs.ingresses.iter().any(|r| r.name == name) => {
            return Err(undefined(origin, key, name));
        }
        other => other.map(|(_, name)| name),
    };

    let mut host_binding = Vec::new();
    let auth = match &handler.auth {
        Some(raw_auth) => {
            let entry = user_entry(origin, &format!("{path}.handler.auth"), raw_auth)?;
            if !entry.hosts.is_empty() {
                host_binding.push((entry.credentials.username.clone(), entry.hosts.clone()));
            }
            Some(entry.credentials)
        }
        None => None,
    };
    let auther = match text(handler.auther.as_ref()) {
        Some(name) => {
            let auther = refs
                .authers
                .iter()
                .find(|a| a.name == name)
                .ok_or_else(|| undefined(origin, format!("{path}.handler.auther"), name))?;
            host_binding.extend(
                auther
                    .auths
                    .iter()
                    .filter(|u| !u.hosts.is_empty())
                    .map(|u| (u.credentials.username.clone(), u.hosts.clone())),
            );
            Some(name.to_owned())
        }
        None => None,
    };
    if handler.chain.is_some() || listener.chain.is_some() {
        notes.warn(format!("{origin}: {path}.handler.chain: a router service forwards nothing, chain ignored"));
    }

    let strict_source = hmd.bool("strictSource")?.unwrap_or(defaults::STRICT_SOURCE);
    let cache = hmd.bool("router.cache")?.unwrap_or(defaults::ROUTE_CACHE);
    let expiration = hmd.duration("router.cache.expiration")?.unwrap_or(defaults::ROUTE_CACHE_TTL);
    let route_cache_ttl = if cache { expiration } else { Duration::ZERO };

    let limits = Limits {
        max_connections: hmd.positive("maxConnections")?.unwrap_or(defaults::MAX_CONNECTIONS),
        max_connections_per_ip: hmd.positive("maxConnectionsPerIP")?.unwrap_or(defaults::MAX_CONNECTIONS_PER_IP),
        max_handshake_bytes: hmd.positive("maxHandshakeBytes")?.unwrap_or(defaults::MAX_HANDSHAKE_BYTES),
        queue_packets: hmd.positive("queuePackets")?.unwrap_or(defaults::QUEUE_PACKETS),
        queue_bytes: hmd.size("queueBytes")?.unwrap_or(defaults::QUEUE_BYTES),
        host_queue_bytes: hmd.size("hostQueueBytes")?.unwrap_or(defaults::HOST_QUEUE_BYTES),
        server_queue_bytes: hmd.size("serverQueueBytes")?.unwrap_or(defaults::SERVER_QUEUE_BYTES),
    };
    // A wider budget below a narrower one is legal (the smaller bound
    // wins) but most likely a slip.
    let budgets = [
        ("queueBytes", limits.queue_bytes),
        ("hostQueueBytes", limits.host_queue_bytes),
        ("serverQueueBytes", limits.server_queue_bytes),
    ];
    for pair in budgets.windows(2) {
        if let [(narrow, narrow_bytes), (wide, wide_bytes)] = pair
            && narrow_bytes > wide_bytes
        {
            notes.warn(format!(
                "{origin}: {path}.handler.metadata: {narrow} ({narrow_bytes} bytes) exceeds {wide} ({wide_bytes} bytes); \
                 the smaller bound wins"
            ));
        }
    }
    let keepalive = keepalive(&[&hmd, &lmd])?;
    let shaping = shaping(origin, path, raw, &hmd, refs)?;
    let cluster = cluster(&hmd, refs, notes)?;

    notes.check_metadata(&[&hmd, &lmd, &smd])?;
    if raw.forwarder.is_some() {
        notes.warn(format!("{origin}: {path}.forwarder: a router service forwards nothing, ignored"));
    }

    Ok(RouterService {
        listen,
        listener: kind,
        read_timeout,
        default_router,
        ingress,
        auth,
        auther,
        host_binding,
        strict_source,
        route_cache_ttl,
        limits,
        keepalive,
        shaping,
        cluster,
    })
}

/// The limiters, rate limiter and observer a router service names, and the
/// handler metadata that tunes them.
fn shaping(origin: &str, path: &str, raw: &RawService, hmd: &Md<'_>, refs: &Refs<'_>) -> Result<Shaping> {
    let handler = raw.handler.as_ref();
    let named = |key: String, name: Option<&String>, exists: &dyn Fn(&str) -> bool| -> Result<Option<String>> {
        match text(name) {
            None => Ok(None),
            Some(name) if exists(name) => Ok(Some(name.to_owned())),
            Some(name) => Err(undefined(origin, key, name)),
        }
    };
    let is_limiter = |name: &str| refs.limiters.iter().any(|l| l.name == name);
    let limiter = named(format!("{path}.handler.limiter"), handler.and_then(|h| h.limiter.as_ref()), &is_limiter)?;
    let service_limiter = named(format!("{path}.limiter"), raw.limiter.as_ref(), &is_limiter)?;
    if let Some(name) = &service_limiter
        && refs.limiters.iter().any(|l| &l.name == name && l.plugin.is_some())
    {
        return Err(unsupported(
            origin,
            format!("{path}.limiter"),
            name.as_str(),
            "a limiter with a plugin limits clients: name it in handler.limiter",
        ));
    }
    let rate_limiter = named(format!("{path}.rlimiter"), raw.rlimiter.as_ref(), &|name| {
        refs.rlimiters.iter().any(|l| l.name == name)
    })?;
    let observer = named(format!("{path}.handler.observer"), handler.and_then(|h| h.observer.as_ref()), &|name| {
        refs.observers.iter().any(|o| o.name == name)
    })?;

    // GOST reads the first of these keys that is set; zero means the default
    // and anything shorter than a second is raised to one.
    let mut period = None;
    for key in ["observePeriod", "observer.period", "observer.observePeriod"] {
        period = period.or(hmd.duration(key)?);
    }
    let period = match period {
        None => defaults::OBSERVE_PERIOD,
        Some(p) if p.is_zero() => defaults::OBSERVE_PERIOD,
        Some(p) => p.max(defaults::OBSERVE_PERIOD_MIN),
    };
    let reset_traffic = hmd.bool("observer.resetTraffic")?.unwrap_or(false);
    let limiter_refresh = match hmd.duration("limiter.refreshInterval")? {
        None => defaults::LIMITER_REFRESH,
        Some(p) if p.is_zero() => defaults::LIMITER_REFRESH,
        Some(p) => p.max(defaults::LIMITER_REFRESH_MIN),
    };
    Ok(Shaping {
        limiter,
        service_limiter,
        rate_limiter,
        observer,
        observe: Observe { period, reset_traffic },
        limiter_refresh,
    })
}

/// A router handler's cluster keys: `sd` names the service discovery; then
/// `entrypoint` and `nodeSecret` are required. Without `sd` the other keys
/// are read (so they are known) and ignored with a notice.
fn cluster(md: &Md<'_>, refs: &Refs<'_>, notes: &mut Notes) -> Result<Option<Box<ClusterSettings>>> {
    let origin = md.origin();
    let sd = md.string("sd")?;
    let entrypoint = md.string("entrypoint")?;
    let advertise = md.string("entrypoint.advertise")?;
    let secret = md.get("nodeSecret").map(|(key, value)| (key, scalar(value).unwrap_or_default()));
    let renew = md.duration("sd.renewInterval")?;
    let expiration = md.duration("sd.cache.expiration")?;
    let queue = md.size("nodeQueueBytes")?;
    let Some((sd_key, sd_name)) = sd else {
        for (key, set) in [
            ("entrypoint", entrypoint.is_some()),
            ("entrypoint.advertise", advertise.is_some()),
            ("nodeSecret", secret.is_some()),
            ("sd.renewInterval", renew.is_some()),
            ("sd.cache.expiration", expiration.is_some()),
            ("nodeQueueBytes", queue.is_some()),
        ] {
            if set {
                notes.warn(format!(
                    "{origin}: {}.{key}: ignored without sd (this server is not a cluster node)",
                    md.path()
                ));
            }
        }
        return Ok(None);
    };
    let sd = refs.sds.iter().find(|s| s.name == sd_name).ok_or_else(|| undefined(origin, &sd_key, &sd_name))?;
    let entry_hint = "the node link's listen address other nodes dial, e.g. 10.0.0.1:7443";
    let (entry_key, entry_text) =
        entrypoint.ok_or_else(|| missing(origin, format!("{}.entrypoint", md.path()), entry_hint))?;
    let entrypoint =
        listen_addr(&entry_text).map_err(|reason| invalid(origin, &entry_key, entry_text.as_str(), reason))?;
    let advertise = match (advertise, entrypoint.ip) {
        (Some((key, addr)), _) => {
            dial_addr(&addr).map_err(|reason| invalid(origin, key, addr.as_str(), reason))?;
            addr
        }
        (None, Some(ip)) if !ip.is_unspecified() => entry_text.clone(),
        (None, _) => {
            return Err(missing(
                origin,
                format!("{}.entrypoint.advertise", md.path()),
                format!("entrypoint {entry_text} listens on every address: give the address other nodes dial"),
            ));
        }
    };
    let secret_hint = format!(
        "a secret of at least {} characters that every node of the cluster holds, e.g. from `openssl rand -hex 32`",
        defaults::NODE_SECRET_MIN_LEN
    );
    let (secret_key, node_secret) =
        secret.ok_or_else(|| missing(origin, format!("{}.nodeSecret", md.path()), secret_hint.as_str()))?;
    if node_secret.len() < defaults::NODE_SECRET_MIN_LEN {
        return Err(invalid(origin, secret_key, "***", secret_hint));
    }
    // GOST replaces a renew interval under a second by its default.
    let renew_interval = match renew {
        Some(interval) if interval >= Duration::from_secs(1) => interval,
        Some(interval) => {
            notes.warn(format!(
                "{origin}: {}.sd.renewInterval: {interval:?} is under 1s; using {:?}, as GOST does",
                md.path(),
                defaults::SD_RENEW_INTERVAL
            ));
            defaults::SD_RENEW_INTERVAL
        }
        None => defaults::SD_RENEW_INTERVAL,
    };
    let cache_expiration = expiration.filter(|d| !d.is_zero()).unwrap_or(defaults::SD_CACHE_EXPIRATION);
    Ok(Some(Box::new(ClusterSettings {
        sd: sd.clone(),
        entrypoint,
        advertise,
        node_secret,
        renew_interval,
        cache_expiration,
        node_queue_bytes: queue.unwrap_or(defaults::NODE_QUEUE_BYTES),
    })))
}

/// `keepAlivePeriod` and `userTimeout` from the first map that has them
/// (every map is read, so each knows the keys).
fn keepalive(maps: &[&Md<'_>]) -> Result<Keepalive> {
    let mut period = None;
    let mut user_timeout = None;
    for md in maps {
        period = period.or(md.positive_duration("keepAlivePeriod")?);
        user_timeout = user_timeout.or(md.positive_duration("userTimeout")?);
    }
    Ok(Keepalive {
        period: period.unwrap_or(defaults::KEEPALIVE_PERIOD),
        user_timeout: user_timeout.unwrap_or(defaults::USER_TIMEOUT),
    })
}

/// The WebSocket `path` (default `/ws`); read whatever the transport, so
/// the key is known to the map.
fn http_path(md: &Md<'_>) -> Result<String> {
    match md.string("path")? {
        None => Ok(defaults::WS_PATH.to_owned()),
        Some((_, p)) if p.starts_with('/') => Ok(p),
        Some((key, p)) => Err(invalid(md.origin(), key, p, "an HTTP path starts with /")),
    }
}

/// `:8443`, `0.0.0.0:8443`, `127.0.0.1:8443`, `[::1]:8443`.
pub(crate) fn listen_addr(addr: &str) -> std::result::Result<ListenAddr, String> {
    let (host, port) = addr.rsplit_once(':').ok_or("expected [address]:port, e.g. :8443")?;
    let port: u16 = port.parse().map_err(|_| format!("bad port {port:?}"))?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if host.is_empty() {
        return Ok(ListenAddr { ip: None, port });
    }
    let ip: IpAddr =
        host.parse().map_err(|_| format!("{host:?} is not an IP address (host names are not supported)"))?;
    Ok(ListenAddr { ip: Some(ip), port })
}

/// `host:port` to dial: a non-empty host and a port 1-65535.
fn dial_addr(addr: &str) -> std::result::Result<(), String> {
    let (host, port) = addr.rsplit_once(':').ok_or("expected host:port")?;
    match port.parse::<u16>() {
        Ok(0) | Err(_) => return Err(format!("bad port {port:?}")),
        Ok(_) => {}
    }
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or("unclosed [ in the host")?;
        inner.parse::<std::net::Ipv6Addr>().map_err(|_| format!("{inner:?} is not an IPv6 address"))?;
        return Ok(());
    }
    if host.is_empty() {
        return Err("empty host".to_owned());
    }
    if host.contains(':') {
        return Err("an IPv6 address needs brackets, e.g. [::1]:8443".to_owned());
    }
    Ok(())
}

pub(crate) fn tls_server(
    origin: &str,
    path: &str,
    tls: Option<&RawTls>,
    notes: &mut Notes,
) -> Result<TlsServerSettings> {
    let Some(tls) = tls else { return Ok(TlsServerSettings::default()) };
    let (cert_file, key_file) = cert_pair(origin, path, tls)?;
    if tls.server_name.is_some() || tls.secure.is_some() {
        notes.warn(format!("{origin}: {path}: serverName and secure apply to dialers, ignored on a listener"));
    }
    let settings = TlsServerSettings { cert_file, key_file, ca_file: text(tls.ca_file.as_ref()).map(PathBuf::from) };
    notes.file(origin, format!("{path}.certFile"), &settings.cert_file);
    notes.file(origin, format!("{path}.keyFile"), &settings.key_file);
    notes.file(origin, format!("{path}.caFile"), &settings.ca_file);
    Ok(settings)
}

fn tls_client(origin: &str, path: &str, tls: &RawTls, notes: &mut Notes) -> Result<TlsClientSettings> {
    let (cert_file, key_file) = cert_pair(origin, path, tls)?;
    let settings = TlsClientSettings {
        server_name: text(tls.server_name.as_ref()).map(str::to_owned),
        secure: tls.secure.unwrap_or(false),
        ca_file: text(tls.ca_file.as_ref()).map(PathBuf::from),
        cert_file,
        key_file,
    };
    notes.file(origin, format!("{path}.certFile"), &settings.cert_file);
    notes.file(origin, format!("{path}.keyFile"), &settings.key_file);
    notes.file(origin, format!("{path}.caFile"), &settings.ca_file);
    Ok(settings)
}

/// `certFile` and `keyFile` come together.
fn cert_pair(origin: &str, path: &str, tls: &RawTls) -> Result<(Option<PathBuf>, Option<PathBuf>)> {
    match (text(tls.cert_file.as_ref()), text(tls.key_file.as_ref())) {
        (Some(cert), Some(key)) => Ok((Some(PathBuf::from(cert)), Some(PathBuf::from(key)))),
        (None, None) => Ok((None, None)),
        (None, Some(key)) => Err(invalid(origin, format!("{path}.keyFile"), key, "keyFile needs certFile")),
        (Some(_), None) => Err(missing(origin, format!("{path}.keyFile"), "certFile needs keyFile")),
    }
}

fn tun_service(origin: &str, path: &str, raw: &RawService, refs: &Refs<'_>, notes: &mut Notes) -> Result<TunService> {
    let handler = raw.handler.clone().unwrap_or_default();
    let listener = raw.listener.clone().unwrap_or_default();
    let hmd = Md::new(origin, format!("{path}.handler.metadata"), handler.metadata.as_ref(), TUN_HANDLER_IGNORED);
    let lmd = Md::new(origin, format!("{path}.listener.metadata"), listener.metadata.as_ref(), TUN_LISTENER_IGNORED);
    let smd = Md::new(origin, format!("{path}.metadata"), raw.metadata.as_ref(), SERVICE_IGNORED);

    let net_hint = "comma-separated device addresses with prefix, e.g. net=192.168.123.1/24";
    let (net_key, nets) =
        lmd.list("net")?.ok_or_else(|| missing(origin, format!("{path}.listener.metadata.net"), net_hint))?;
    if nets.is_empty() {
        return Err(missing(origin, net_key, net_hint));
    }
    let addrs = nets
        .iter()
        .map(|net| {
            net.parse::<IpNet>().map_err(|_| invalid(origin, &net_key, net.as_str(), "not an address with prefix"))
        })
        .collect::<Result<Vec<_>>>()?;

    let name = lmd.string("name")?.map(|(_, name)| name);
    let mtu = match lmd.get("mtu") {
        None => defaults::MTU,
        Some((key, value)) => scalar(value)
            .and_then(|s| s.parse::<u16>().ok())
            .filter(|mtu| *mtu >= 68)
            .ok_or_else(|| invalid(origin, key, shown(value), "an MTU is 68 to 65535"))?,
    };
    let gateway = match lmd.string("gw")? {
        None => None,
        Some((key, gw)) => {
            Some(gw.parse::<IpAddr>().map_err(|_| invalid(origin, key, gw.as_str(), "not an IP address"))?)
        }
    };
    let mut routes = Vec::new();
    if let Some((key, items)) = lmd.list("route")? {
        for item in items {
            let dst = rgost_routing::parse_dst(&item)
                .map_err(|_| invalid(origin, &key, item.as_str(), "not a CIDR or an IP address"))?;
            routes.push(TunRouteSetting { dst, gateway });
        }
    }
    if let Some((key, items)) = lmd.list("routes")? {
        for item in items {
            let mut fields = item.split_whitespace();
            let (dst, gw) = (fields.next().unwrap_or_default(), fields.next());
            if fields.next().is_some() {
                return Err(invalid(origin, &key, item.as_str(), "expected \"CIDR [gateway]\""));
            }
            let dst = rgost_routing::parse_dst(dst)
                .map_err(|_| invalid(origin, &key, item.as_str(), "not a CIDR or an IP address"))?;
            let gateway = match gw {
                None => None,
                Some(gw) => Some(
                    gw.parse::<IpAddr>()
                        .map_err(|_| invalid(origin, &key, item.as_str(), "the gateway is not an IP address"))?,
                ),
            };
            routes.push(TunRouteSetting { dst, gateway });
        }
    }
    let dns = match lmd.list("dns")? {
        None => Vec::new(),
        Some((key, items)) => items
            .iter()
            .map(|item| item.parse::<IpAddr>().map_err(|_| invalid(origin, &key, item.as_str(), "not an IP address")))
            .collect::<Result<_>>()?,
    };

    // rgost's own key (GOST has none): segmentation offload on the device.
    let offload = lmd.bool("offload")?.unwrap_or(defaults::TUN_OFFLOAD);

    let nodes = raw.forwarder.as_ref().and_then(|f| f.nodes.as_deref()).unwrap_or_default();
    let host_hint =
        "the host name reported to the router: forwarder.nodes[0].addr, or the path of -L \"tun:///host-1?net=...\"";
    let first = nodes.first().ok_or_else(|| missing(origin, format!("{path}.forwarder.nodes"), host_hint))?;
    let host = text(first.addr.as_ref())
        .ok_or_else(|| missing(origin, format!("{path}.forwarder.nodes[0].addr"), host_hint))?
        .to_owned();
    if nodes.len() > 1 {
        notes.warn(format!("{origin}: {path}.forwarder.nodes: only the first node ({host}) is used"));
    }

    let chain = match (text(handler.chain.as_ref()), text(listener.chain.as_ref())) {
        (Some(name), _) => named_chain(origin, &format!("{path}.handler.chain"), name, refs)?,
        (None, Some(name)) => named_chain(origin, &format!("{path}.listener.chain"), name, refs)?,
        (None, None) => match refs.chains {
            [only] => {
                let service = text(raw.name.as_ref()).unwrap_or(path);
                notes.warn(format!(
                    "{origin}: {path}.handler.chain: service {service} names no chain; using the only chain defined, {}",
                    only.name
                ));
                only.clone()
            }
            [] => {
                return Err(missing(
                    origin,
                    format!("{path}.handler.chain"),
                    "a tun service reaches the router server through a chain, e.g. -F \"router://server:8443\"",
                ));
            }
            several => {
                let names: Vec<&str> = several.iter().map(|c| c.name.as_str()).collect();
                return Err(missing(
                    origin,
                    format!("{path}.handler.chain"),
                    format!("name one of the chains: {}", names.join(", ")),
                ));
            }
        },
    };

    notes.check_metadata(&[&lmd, &hmd, &smd])?;
    if handler.auth.is_some() || handler.auther.is_some() {
        notes.warn(format!("{origin}: {path}.handler.auth: a tun handler checks no credentials, ignored"));
    }
    if listener.tls.is_some() {
        notes.warn(format!("{origin}: {path}.listener.tls: ignored by a tun listener"));
    }
    for (key, set) in [
        ("handler.limiter", handler.limiter.is_some()),
        ("handler.observer", handler.observer.is_some()),
        ("limiter", raw.limiter.is_some()),
        ("rlimiter", raw.rlimiter.is_some()),
    ] {
        if set {
            notes.warn(format!("{origin}: {path}.{key}: a tun client limits and reports nothing, ignored"));
        }
    }

    Ok(TunService { tun: TunSettings { name, addrs, mtu, routes, gateway, dns, offload }, host, chain })
}

fn named_chain(origin: &str, key: &str, name: &str, refs: &Refs<'_>) -> Result<Chain> {
    refs.chains.iter().find(|c| c.name == name).cloned().ok_or_else(|| undefined(origin, key, name))
}

pub(crate) fn user_entry(origin: &str, path: &str, raw: &RawAuth) -> Result<UserEntry> {
    let username = text(raw.username.as_ref())
        .ok_or_else(|| missing(origin, format!("{path}.username"), "credentials need a user name"))?;
    let hosts: Vec<String> =
        raw.hosts.iter().flatten().map(|h| h.trim()).filter(|h| !h.is_empty()).map(str::to_owned).collect();
    for (k, host) in hosts.iter().enumerate() {
        rgost_routing::HostRule::parse(host)
            .map_err(|e| invalid(origin, format!("{path}.hosts[{k}]"), host.as_str(), e.to_string()))?;
    }
    Ok(UserEntry {
        credentials: Credentials { username: username.to_owned(), password: raw.password.clone().unwrap_or_default() },
        hosts,
    })
}

// ------------------------------------------------------------------ chains

fn chain(origin: &str, i: usize, raw: &RawChain, notes: &mut Notes) -> Result<Chain> {
    let path = format!("chains[{i}]");
    let name = text(raw.name.as_ref())
        .ok_or_else(|| missing(origin, format!("{path}.name"), "services refer to a chain by name"))?
        .to_owned();
    let hops = raw.hops.as_deref().unwrap_or_default();
    let hop = match hops {
        [] => return Err(missing(origin, format!("{path}.hops"), "one hop whose nodes are router servers")),
        [hop] => hop,
        more => {
            return Err(unsupported(
                origin,
                format!("{path}.hops"),
                format!("{} hops", more.len()),
                "rgost supports chains of exactly one hop; several nodes in that hop are alternatives",
            ));
        }
    };
    let nodes = hop.nodes.as_deref().unwrap_or_default();
    if nodes.is_empty() {
        return Err(missing(origin, format!("{path}.hops[0].nodes"), "at least one router server node"));
    }
    let nodes = nodes
        .iter()
        .enumerate()
        .map(|(j, n)| node(origin, &format!("{path}.hops[0].nodes[{j}]"), j, n, notes))
        .collect::<Result<Vec<_>>>()?;
    if raw.metadata.as_ref().is_some_and(|md| !md.is_empty()) {
        notes.warn(format!("{origin}: {path}.metadata: chain metadata is ignored by rgost"));
    }
    let selector = match &hop.selector {
        Some(raw) => selector(origin, &format!("{path}.hops[0].selector"), raw, notes)?,
        None => Selector::default(),
    };
    Ok(Chain { name, nodes, selector })
}

/// A hop's selector, read as GOST reads it: an unknown strategy is
/// round-robin, and `maxFails` or `failTimeout` of zero take the defaults.
fn selector(origin: &str, path: &str, raw: &RawSelector, notes: &mut Notes) -> Result<Selector> {
    let strategy = match text(raw.strategy.as_ref()).map(str::to_ascii_lowercase).as_deref() {
        None | Some("round" | "rr") => Strategy::RoundRobin,
        Some("random" | "rand") => Strategy::Random,
        Some("fifo" | "ha") => Strategy::Fifo,
        Some("hash") => Strategy::Hash,
        Some(other) => {
            notes.warn(format!(
                "{origin}: {path}.strategy: {other:?} is not implemented by rgost (round, random, fifo, hash); using round, as GOST does for a strategy it does not know"
            ));
            Strategy::RoundRobin
        }
    };
    let max_fails = match raw.max_fails.as_ref().filter(|v| !v.is_null()) {
        None => defaults::SELECTOR_MAX_FAILS,
        Some(value) => match scalar(value).and_then(|s| s.parse::<i64>().ok()) {
            Some(n) if n <= 0 => defaults::SELECTOR_MAX_FAILS,
            Some(n) => u32::try_from(n).unwrap_or(u32::MAX),
            None => return Err(invalid(origin, format!("{path}.maxFails"), shown(value), "expected an integer")),
        },
    };
    let fail_timeout = match raw.fail_timeout.as_ref().filter(|v| !v.is_null()) {
        None => defaults::SELECTOR_FAIL_TIMEOUT,
        Some(value) => Some(duration_value(origin, &format!("{path}.failTimeout"), value)?)
            .filter(|d| !d.is_zero())
            .unwrap_or(defaults::SELECTOR_FAIL_TIMEOUT),
    };
    if raw.max_latency.as_ref().is_some_and(|v| !v.is_null()) {
        notes.warn(format!("{origin}: {path}.maxLatency: a GOST option rgost does not implement, ignored"));
    }
    Ok(Selector { strategy, max_fails, fail_timeout })
}

// ------------------------------------------------------------------- sds

fn sd(origin: &str, i: usize, raw: &RawSd, notes: &mut Notes) -> Result<SdConfig> {
    let path = format!("sds[{i}]");
    let name = section_name(origin, &path, raw.name.as_ref())?;
    let backend = match (&raw.redis, &raw.plugin) {
        (Some(_), Some(_)) => {
            return Err(invalid(origin, format!("{path}.plugin"), "plugin", "give either redis or plugin, not both"));
        }
        (None, None) => {
            return Err(missing(
                origin,
                format!("{path}.redis"),
                "where registrations are kept: redis: {addr} (rgost's engine) or plugin: {type: http, addr} (GOST's)",
            ));
        }
        (None, Some(plugin)) => {
            let kind = text(plugin.kind.as_ref()).map(str::to_ascii_lowercase);
            if kind.as_deref() != Some("http") {
                // GOST takes anything but http as grpc.
                return Err(unsupported(
                    origin,
                    format!("{path}.plugin.type"),
                    kind.unwrap_or_else(|| "grpc".to_owned()),
                    "rgost implements the SD plugin of type http; write type: http",
                ));
            }
            SdBackend::Plugin(plugin_config(origin, &format!("{path}.plugin"), plugin, notes)?)
        }
        (Some(redis), None) => {
            let addr = text(redis.addr.as_ref()).ok_or_else(|| {
                missing(origin, format!("{path}.redis.addr"), "host:port of the redis server (or of each sentinel)")
            })?;
            let addrs: Vec<String> =
                addr.split(',').map(str::trim).filter(|a| !a.is_empty()).map(str::to_owned).collect();
            for a in &addrs {
                dial_addr(a).map_err(|reason| invalid(origin, format!("{path}.redis.addr"), a.as_str(), reason))?;
            }
            let sentinel = text(redis.sentinel.as_ref()).map(str::to_owned);
            if sentinel.is_none() && addrs.len() > 1 {
                return Err(invalid(
                    origin,
                    format!("{path}.redis.addr"),
                    addr,
                    "several addresses are sentinels: also give sentinel (the master's name)",
                ));
            }
            let db = redis.db.unwrap_or(0);
            if db < 0 {
                return Err(invalid(origin, format!("{path}.redis.db"), db.to_string(), "a database number is >= 0"));
            }
            let prefix = text(redis.prefix.as_ref()).unwrap_or(defaults::SD_REDIS_PREFIX).to_owned();
            if prefix.contains(char::is_whitespace) {
                return Err(invalid(origin, format!("{path}.redis.prefix"), prefix, "no white space in a prefix"));
            }
            SdBackend::Redis(SdRedis {
                addrs,
                sentinel,
                db,
                username: text(redis.username.as_ref()).map(str::to_owned),
                password: redis.password.clone().filter(|p| !p.is_empty()),
                prefix,
            })
        }
    };
    Ok(SdConfig { name, backend })
}

fn node(origin: &str, path: &str, j: usize, raw: &RawNode, notes: &mut Notes) -> Result<Node> {
    let name = text(raw.name.as_ref()).map_or_else(|| format!("node-{j}"), str::to_owned);
    let addr = text(raw.addr.as_ref())
        .ok_or_else(|| missing(origin, format!("{path}.addr"), "host:port of the router server"))?
        .to_owned();
    dial_addr(&addr).map_err(|reason| invalid(origin, format!("{path}.addr"), addr.as_str(), reason))?;

    let connector = raw.connector.clone().unwrap_or_default();
    match text(connector.kind.as_ref()).map(str::to_ascii_lowercase).as_deref() {
        Some("router") => {}
        Some(other) => {
            return Err(unsupported(
                origin,
                format!("{path}.connector.type"),
                other,
                "rgost implements connector router",
            ));
        }
        None => return Err(missing(origin, format!("{path}.connector.type"), "rgost implements connector router")),
    }
    let dialer = raw.dialer.clone().unwrap_or_default();
    let cmd = Md::new(origin, format!("{path}.connector.metadata"), connector.metadata.as_ref(), CONNECTOR_IGNORED);
    let dmd = Md::new(origin, format!("{path}.dialer.metadata"), dialer.metadata.as_ref(), DIALER_IGNORED);

    let router_id = match cmd.string("router.id")? {
        None => None,
        Some((key, id)) => {
            Some(Uuid::parse_str(&id).map_err(|_| invalid(origin, key, id.as_str(), "router.id must be a UUID"))?)
        }
    };
    let auth = match &connector.auth {
        Some(auth) => Some(user_entry(origin, &format!("{path}.connector.auth"), auth)?.credentials),
        None => None,
    };

    let (tls_path, raw_tls) = match (&dialer.tls, &raw.tls) {
        (Some(tls), _) => (format!("{path}.dialer.tls"), Some(tls)),
        (None, Some(tls)) => (format!("{path}.tls"), Some(tls)),
        (None, None) => (String::new(), None),
    };
    let tls = |notes: &mut Notes| -> Result<TlsClientSettings> {
        raw_tls.map_or_else(|| Ok(TlsClientSettings::default()), |tls| tls_client(origin, &tls_path, tls, notes))
    };
    let ws_path = http_path(&dmd)?;
    let ws_host = dmd.string("host")?.map(|(_, h)| h);
    let dialer_type = text(dialer.kind.as_ref()).map_or_else(|| "tcp".to_owned(), str::to_ascii_lowercase);
    let kind = match dialer_type.as_str() {
        "tcp" => DialerKind::Tcp,
        "tls" => DialerKind::Tls(tls(notes)?),
        "ws" => DialerKind::Ws { path: ws_path, host: ws_host },
        "wss" => DialerKind::Wss { path: ws_path, host: ws_host, tls: tls(notes)? },
        other => {
            return Err(unsupported(origin, format!("{path}.dialer.type"), other, "use tcp, tls, ws or wss"));
        }
    };
    if matches!(kind, DialerKind::Tcp | DialerKind::Ws { .. }) && raw_tls.is_some() {
        notes.warn(format!("{origin}: {tls_path}: ignored by a {dialer_type} dialer"));
    }
    if matches!(kind, DialerKind::Tcp | DialerKind::Tls(_)) {
        for key in [dmd.present("path"), dmd.present("host")].into_iter().flatten() {
            notes.warn(format!("{origin}: {key}: ignored by a {dialer_type} dialer (ws and wss read it)"));
        }
    }

    // The dialer's timeout wins over the connector's; both are read, so
    // both maps know the key.
    let dialer_timeout = dmd.positive_duration("connectTimeout")?;
    let connector_timeout = cmd.positive_duration("connectTimeout")?;
    let connect_timeout = dialer_timeout.or(connector_timeout).unwrap_or(defaults::CONNECT_TIMEOUT);
    let keepalive = keepalive(&[&dmd, &cmd])?;

    notes.check_metadata(&[&cmd, &dmd])?;
    if let Some(md) = raw.metadata.as_ref().filter(|md| !md.is_empty()) {
        let keys: Vec<&str> = md.keys().map(String::as_str).collect();
        notes.warn(format!("{origin}: {path}.metadata: node metadata is ignored by rgost ({})", keys.join(", ")));
    }

    Ok(Node { name, addr, connector: RouterConnector { router_id, auth }, dialer: kind, connect_timeout, keepalive })
}

// ------------------------------------------- routers, ingresses, authers

fn router(origin: &str, i: usize, raw: &RawRouter, notes: &mut Notes) -> Result<RouterConfig> {
    let path = format!("routers[{i}]");
    let name = section_name(origin, &path, raw.name.as_ref())?;
    let mut routes = Vec::new();
    for (j, route) in raw.routes.iter().flatten().enumerate() {
        let route_path = format!("{path}.routes[{j}]");
        let (dst_key, dst) = match (text(route.dst.as_ref()), text(route.net.as_ref())) {
            (Some(dst), _) => ("dst", dst),
            (None, Some(net)) => ("net", net),
            (None, None) => {
                return Err(missing(origin, format!("{route_path}.dst"), "an IP address or CIDR"));
            }
        };
        let gateway = text(route.gateway.as_ref())
            .ok_or_else(|| missing(origin, format!("{route_path}.gateway"), "the host name that gets the packets"))?;
        let route = Route::parse(dst, gateway).map_err(|err| match err {
            RouteError::EmptyGateway => missing(origin, format!("{route_path}.gateway"), "the host name"),
            other => invalid(origin, format!("{route_path}.{dst_key}"), dst, other.to_string()),
        })?;
        routes.push(route);
    }
    let (sources, plugin) = sources(origin, &path, raw.sources(), notes)?;
    if plugin.is_some() && (!routes.is_empty() || !sources.is_empty()) {
        notes.warn(format!("{origin}: {path}.plugin: the plugin answers; routes and data sources are ignored"));
    }
    Ok(RouterConfig { name, routes, sources, plugin })
}

fn ingress(origin: &str, i: usize, raw: &RawIngress, notes: &mut Notes) -> Result<IngressConfig> {
    let path = format!("ingresses[{i}]");
    let name = section_name(origin, &path, raw.name.as_ref())?;
    let mut rules = Vec::new();
    for (j, rule) in raw.rules.iter().flatten().enumerate() {
        let rule_path = format!("{path}.rules[{j}]");
        // An empty host name is a rule too: it admits clients that send none.
        let hostname = rule
            .hostname
            .as_deref()
            .map(str::trim)
            .ok_or_else(|| missing(origin, format!("{rule_path}.hostname"), "a host name (\"\" for none)"))?;
        let endpoint = text(rule.endpoint.as_ref())
            .ok_or_else(|| missing(origin, format!("{rule_path}.endpoint"), "a router id (UUID)"))?;
        let endpoint = Uuid::parse_str(endpoint).map_err(|_| {
            invalid(origin, format!("{rule_path}.endpoint"), endpoint, "an endpoint must be a router id (UUID)")
        })?;
        rules.push((hostname.to_owned(), endpoint));
    }
    let (sources, plugin) = sources(origin, &path, raw.sources(), notes)?;
    if plugin.is_some() && (!rules.is_empty() || !sources.is_empty()) {
        notes.warn(format!("{origin}: {path}.plugin: the plugin answers; rules and data sources are ignored"));
    }
    Ok(IngressConfig { name, rules, sources, plugin })
}

fn auther(origin: &str, i: usize, raw: &RawAuther, notes: &mut Notes) -> Result<AutherConfig> {
    let path = format!("authers[{i}]");
    let name = section_name(origin, &path, raw.name.as_ref())?;
    let auths = raw
        .auths
        .iter()
        .flatten()
        .enumerate()
        .map(|(j, auth)| user_entry(origin, &format!("{path}.auths[{j}]"), auth))
        .collect::<Result<Vec<_>>>()?;
    let (sources, plugin) = sources(origin, &path, raw.sources(), notes)?;
    if plugin.is_some() && (!auths.is_empty() || !sources.is_empty()) {
        notes.warn(format!("{origin}: {path}.plugin: the plugin answers; auths and data sources are ignored"));
    }
    Ok(AutherConfig { name, auths, sources, plugin })
}

fn limiter(origin: &str, i: usize, raw: &RawLimiter, notes: &mut Notes) -> Result<LimiterConfig> {
    let path = format!("limiters[{i}]");
    let name = section_name(origin, &path, raw.name.as_ref())?;
    let mut limits: Vec<TrafficLimit> = Vec::new();
    for (j, line) in raw.limits.iter().flatten().enumerate() {
        let key = format!("{path}.limits[{j}]");
        let limit = TrafficLimit::parse(line).map_err(|e| invalid(origin, &key, line.as_str(), e.to_string()))?;
        if let Some(first) = limits.iter().position(|l| l.scope == limit.scope) {
            return Err(invalid(
                origin,
                key,
                line.as_str(),
                format!("scope {} is already limited by limits[{first}]", limit.scope),
            ));
        }
        limits.push(limit);
    }
    let (sources, plugin) = sources_of(origin, &path, raw.sources(), true, notes)?;
    if plugin.is_some() && (!limits.is_empty() || !sources.is_empty()) {
        notes.warn(format!("{origin}: {path}.plugin: the plugin answers; limits and data sources are ignored"));
    }
    Ok(LimiterConfig { name, limits, sources, plugin })
}

fn rate_limiter(origin: &str, i: usize, raw: &RawLimiter, notes: &mut Notes) -> Result<RateLimiterConfig> {
    let path = format!("rlimiters[{i}]");
    let name = section_name(origin, &path, raw.name.as_ref())?;
    let mut limits: Vec<RateLimit> = Vec::new();
    for (j, line) in raw.limits.iter().flatten().enumerate() {
        let key = format!("{path}.limits[{j}]");
        let limit = RateLimit::parse(line).map_err(|e| invalid(origin, &key, line.as_str(), e.to_string()))?;
        let Some(limit) = limit else {
            notes.warn(format!("{origin}: {key}: a rate of zero or less limits nothing, line ignored"));
            continue;
        };
        if let Some(first) = limits.iter().position(|l| l.scope == limit.scope) {
            return Err(invalid(
                origin,
                key,
                line.as_str(),
                format!("scope {} is already limited by an earlier line ({})", limit.scope, limits[first]),
            ));
        }
        limits.push(limit);
    }
    if raw.plugin.is_some() {
        return Err(unsupported(origin, format!("{path}.plugin"), "plugin", "GOST's rate limiters have no plugin"));
    }
    let (sources, _) = sources_of(origin, &path, raw.sources(), true, notes)?;
    Ok(RateLimiterConfig { name, limits, sources })
}

fn observer(origin: &str, i: usize, raw: &RawObserver, notes: &mut Notes) -> Result<ObserverConfig> {
    let path = format!("observers[{i}]");
    let name = section_name(origin, &path, raw.name.as_ref())?;
    let plugin = raw
        .plugin
        .as_ref()
        .ok_or_else(|| missing(origin, format!("{path}.plugin"), "an observer is an HTTP plugin the events go to"))?;
    let plugin = plugin_config(origin, &format!("{path}.plugin"), plugin, notes)?;
    Ok(ObserverConfig { name, plugin })
}

fn section_name(origin: &str, path: &str, name: Option<&String>) -> Result<String> {
    text(name).map(str::to_owned).ok_or_else(|| missing(origin, format!("{path}.name"), "services refer to it by name"))
}

fn sources(
    origin: &str,
    path: &str,
    raw: RawSources<'_>,
    notes: &mut Notes,
) -> Result<(Sources, Option<PluginConfig>)> {
    sources_of(origin, path, raw, false, notes)
}

/// [`sources`], where `lines` says the entries are whole lines (limiters),
/// which a redis list can hold too.
fn sources_of(
    origin: &str,
    path: &str,
    raw: RawSources<'_>,
    lines: bool,
    notes: &mut Notes,
) -> Result<(Sources, Option<PluginConfig>)> {
    let reload = match raw.reload.filter(|v| !v.is_null()) {
        None => None,
        Some(value) => Some(duration_value(origin, &format!("{path}.reload"), value)?).filter(|d| !d.is_zero()),
    };
    let file = match raw.file {
        None => None,
        Some(file) => Some(FileSource {
            path: text(file.path.as_ref())
                .map(PathBuf::from)
                .ok_or_else(|| missing(origin, format!("{path}.file.path"), "the file to read"))?,
        }),
    };
    let redis = match raw.redis {
        None => None,
        Some(redis) => {
            let addr = text(redis.addr.as_ref())
                .ok_or_else(|| missing(origin, format!("{path}.redis.addr"), "host:port of the redis server"))?;
            let db = redis.db.unwrap_or(0);
            if db < 0 {
                return Err(invalid(origin, format!("{path}.redis.db"), db.to_string(), "a database number is >= 0"));
            }
            let kind = match text(redis.kind.as_ref()).map(str::to_ascii_lowercase).as_deref() {
                None | Some("set") => RedisKind::Set,
                Some("hash") => RedisKind::Hash,
                Some("list") if lines => RedisKind::List,
                Some(other) => {
                    let hint = if lines { "use set, list or hash" } else { "use set or hash" };
                    return Err(unsupported(origin, format!("{path}.redis.type"), other, hint));
                }
            };
            Some(RedisSource {
                addr: addr.to_owned(),
                db,
                username: text(redis.username.as_ref()).map(str::to_owned),
                password: redis.password.clone().filter(|p| !p.is_empty()),
                key: text(redis.key.as_ref()).unwrap_or(defaults::REDIS_KEY).to_owned(),
                kind,
            })
        }
    };
    let http = match raw.http {
        None => None,
        Some(http) => {
            let url =
                text(http.url.as_ref()).ok_or_else(|| missing(origin, format!("{path}.http.url"), "the URL to GET"))?;
            let timeout = match http.timeout.as_ref().filter(|v| !v.is_null()) {
                None => defaults::HTTP_TIMEOUT,
                Some(value) => positive(origin, &format!("{path}.http.timeout"), value)?,
            };
            Some(HttpSource { url: url.to_owned(), timeout })
        }
    };
    let plugin =
        raw.plugin.map(|plugin| plugin_config(origin, &format!("{path}.plugin"), plugin, notes)).transpose()?;
    Ok((Sources { file, redis, http, reload }, plugin))
}

fn positive(origin: &str, key: &str, value: &Value) -> Result<Duration> {
    let duration = duration_value(origin, key, value)?;
    if duration.is_zero() {
        return Err(invalid(origin, key, shown(value), "must be more than zero"));
    }
    Ok(duration)
}

fn plugin_config(origin: &str, path: &str, raw: &RawPlugin, notes: &mut Notes) -> Result<PluginConfig> {
    match text(raw.kind.as_ref()).map(str::to_ascii_lowercase).as_deref() {
        None | Some("http") => {}
        Some(other) => return Err(unsupported(origin, format!("{path}.type"), other, "rgost implements http plugins")),
    }
    let addr = text(raw.addr.as_ref()).ok_or_else(|| missing(origin, format!("{path}.addr"), "the plugin's URL"))?;
    let timeout = match raw.timeout.as_ref().filter(|v| !v.is_null()) {
        None => defaults::PLUGIN_TIMEOUT,
        Some(value) => positive(origin, &format!("{path}.timeout"), value)?,
    };
    let tls = raw.tls.as_ref().map(|tls| tls_client(origin, &format!("{path}.tls"), tls, notes)).transpose()?;
    Ok(PluginConfig { addr: addr.to_owned(), timeout, tls, token: text(raw.token.as_ref()).map(str::to_owned) })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/config.md names every metadata key rgost reads or accepts, so a
    /// key added in code without its documentation fails here.
    #[test]
    fn docs_name_every_metadata_key() {
        let yaml = "services:\n- addr: :1\n  handler: {type: router}\n  listener: {type: wss}\n\
                    - addr: :2\n  handler: {type: api}\n- addr: :3\n  handler: {type: metrics}\n\
                    - handler: {type: tun}\n  listener: {type: tun, metadata: {net: 10.0.0.1/24}}\n  \
                    forwarder: {nodes: [{addr: h}]}\n\
                    chains:\n- name: c\n  hops:\n  - nodes:\n    - addr: h:1\n      connector: {type: router}\n      dialer: {type: wss}\n";
        let mut input = Input::default();
        crate::add_file(&mut input, crate::parse_raw(yaml, "t.yaml").unwrap(), "t.yaml");
        let (_, notes) = validate_with_notes(&input).unwrap();
        assert!(notes.keys.len() > 40, "{:?}", notes.keys);
        let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/config.md")).unwrap();
        let missing: Vec<&str> = notes.keys.iter().copied().filter(|key| !docs.contains(&format!("`{key}`"))).collect();
        assert!(missing.is_empty(), "docs/config.md does not name {missing:?}");
    }

    /// Every ignored key is accepted with exactly one notice: none of them is
    /// also read (a read key would give no notice, or an error for the value).
    #[test]
    fn ignored_lists_and_reads_agree() {
        const CHAIN: &str =
            "chains:\n- name: c\n  hops:\n  - nodes:\n    - addr: h:1\n      connector: {type: router}\n";
        const TUN: &str = "services:\n- forwarder: {nodes: [{addr: h}]}\n";
        let cases: [(&[&str], String); 9] = [
            (ROUTER_HANDLER_IGNORED, "services:\n- addr: :1\n  handler: {type: router, metadata: {KEY: 1}}\n".into()),
            (LISTENER_IGNORED, "services:\n- addr: :1\n  handler: {type: router}\n  listener: {type: wss, metadata: {KEY: 1}}\n".into()),
            (SERVICE_IGNORED, "services:\n- addr: :1\n  handler: {type: router}\n  metadata: {KEY: 1}\n".into()),
            (TUN_LISTENER_IGNORED, format!("{TUN}  listener: {{type: tun, metadata: {{net: 10.0.0.1/24, KEY: 1}}}}\n{CHAIN}")),
            (TUN_HANDLER_IGNORED, format!("{TUN}  listener: {{type: tun, metadata: {{net: 10.0.0.1/24}}}}\n  handler: {{type: tun, metadata: {{KEY: 1}}}}\n{CHAIN}")),
            (SERVICE_IGNORED, format!("{TUN}  listener: {{type: tun, metadata: {{net: 10.0.0.1/24}}}}\n  metadata: {{KEY: 1}}\n{CHAIN}")),
            (DIALER_IGNORED, format!("{CHAIN}      dialer: {{type: wss, metadata: {{KEY: 1}}}}\n")),
            (DIALER_IGNORED, format!("{CHAIN}      dialer: {{type: tcp, metadata: {{KEY: 1}}}}\n")),
            (CONNECTOR_IGNORED, "chains:\n- name: c\n  hops:\n  - nodes:\n    - addr: h:1\n      connector: {type: router, metadata: {KEY: 1}}\n".into()),
        ];
        for (list, template) in cases {
            for key in list {
                let yaml = template.replace("KEY", &format!("{key:?}"));
                let loaded = crate::parse_str(&yaml, "t.yaml").unwrap_or_else(|err| panic!("{key}: {err}"));
                let notices: Vec<&String> =
                    loaded.warnings.iter().filter(|w| w.contains(&format!(".{key}:"))).collect();
                assert_eq!(notices.len(), 1, "{key}: {:?}", loaded.warnings);
            }
        }
    }

    #[test]
    fn listen_addrs() {
        assert_eq!(listen_addr(":8443"), Ok(ListenAddr { ip: None, port: 8443 }));
        assert_eq!(listen_addr("127.0.0.1:1").map(|a| a.ip), Ok(Some(IpAddr::from([127, 0, 0, 1]))));
        assert_eq!(listen_addr("[::1]:8443").map(|a| a.port), Ok(8443));
        assert!(listen_addr(":65536").is_err());
        assert!(listen_addr("8443").is_err());
        assert!(listen_addr("localhost:8443").is_err());
    }

    #[test]
    fn dial_addrs() {
        assert!(dial_addr("server:8443").is_ok());
        assert!(dial_addr("[fd00::1]:8443").is_ok());
        assert!(dial_addr("server").is_err());
        assert!(dial_addr("server:0").is_err());
        assert!(dial_addr(":8443").is_err());
        assert!(dial_addr("fd00::1:8443").is_err());
    }
}
