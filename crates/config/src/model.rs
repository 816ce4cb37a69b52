//! The validated runtime model.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use rgost_routing::Route;
use uuid::Uuid;

use crate::defaults;

/// Everything rgost runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Services in file order (file services first, then `-L` ones).
    pub services: Vec<Service>,
    /// Routers by name, in file order.
    pub routers: Vec<RouterConfig>,
    /// Ingresses by name, in file order.
    pub ingresses: Vec<IngressConfig>,
    /// Authers by name, in file order.
    pub authers: Vec<AutherConfig>,
    /// Traffic limiters by name, in file order.
    pub limiters: Vec<LimiterConfig>,
    /// Rate limiters (new connections per second) by name, in file order.
    pub rlimiters: Vec<RateLimiterConfig>,
    /// Observers by name, in file order.
    pub observers: Vec<ObserverConfig>,
    /// The web API (`api:` or `-api`), if enabled.
    pub api: Option<ApiConfig>,
    /// The Prometheus metrics endpoint (`metrics:` or `-metrics`), if enabled.
    pub metrics: Option<MetricsConfig>,
}

/// One service.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    /// The service's name (`service-0`, ... when not given).
    pub name: String,
    /// What it does.
    pub kind: ServiceKind,
}

/// What a service does.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant, reason = "a config holds a handful of services, built once")]
pub enum ServiceKind {
    /// `handler: router` (server side).
    Router(RouterService),
    /// `listener: tun` + `handler: tun` (client side).
    Tun(TunService),
    /// `handler: api`: the web API on this service's address.
    Api(ApiConfig),
    /// `handler: metrics`: Prometheus metrics on this service's address.
    Metrics(MetricsConfig),
}

/// The web API: GOST's config endpoints and rgost's live status.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiConfig {
    /// Where to listen.
    pub listen: ListenAddr,
    /// `tcp`, or `tls` for HTTPS (a service's `listener`; the top-level `api:` is plain HTTP).
    pub listener: ListenerKind,
    /// `pathPrefix`: every path starts with it (`""` or e.g. `/api`, no trailing slash).
    pub path_prefix: String,
    /// `accesslog`: one log line per request.
    pub access_log: bool,
    /// Inline credentials (HTTP Basic); checked before `auther`.
    pub auth: Option<Credentials>,
    /// An auther's name (HTTP Basic checked against it).
    pub auther: Option<String>,
}

/// The Prometheus metrics endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsConfig {
    /// Where to listen.
    pub listen: ListenAddr,
    /// `tcp`, or `tls` for HTTPS (a service's `listener`; the top-level `metrics:` is plain HTTP).
    pub listener: ListenerKind,
    /// `path` (default `/metrics`).
    pub path: String,
    /// Inline credentials (HTTP Basic); checked before `auther`.
    pub auth: Option<Credentials>,
    /// An auther's name (HTTP Basic checked against it).
    pub auther: Option<String>,
    /// rgost extension `hostLabels`: per-host series (off by default: a
    /// server with 20,000 clients would emit millions of series).
    pub host_labels: bool,
}

/// A router server.
#[derive(Debug, Clone, PartialEq)]
pub struct RouterService {
    /// Where to listen. An empty host (`:8443`) means every address, IPv4 and IPv6.
    pub listen: ListenAddr,
    /// The listener type.
    pub listener: ListenerKind,
    /// Bound on reading the handshake (`readTimeout`, default 10 s).
    pub read_timeout: Duration,
    /// The default router's name (`router`), used when the client's router id names no router.
    pub default_router: Option<String>,
    /// The ingress name (`ingress`).
    pub ingress: Option<String>,
    /// Inline credentials (`handler.auth`, or the `-L` URL's userinfo).
    pub auth: Option<Credentials>,
    /// The auther's name (`handler.auther`); checked after `auth` is absent.
    pub auther: Option<String>,
    /// rgost extension: user -> host names that user may register (from
    /// `hosts` lists on `auth` / `auths` entries). Empty = no binding.
    pub host_binding: Vec<(String, Vec<String>)>,
    /// Anti-spoofing (`strictSource`, default true).
    pub strict_source: bool,
    /// How long plugin route answers are reused (`router.cache.expiration`, default 1 s);
    /// zero when `router.cache` is off, which is GOST's default.
    pub route_cache_ttl: Duration,
    /// Abuse limits.
    pub limits: Limits,
    /// Dead-peer detection.
    pub keepalive: Keepalive,
    /// Traffic limits, rate limits and the observer.
    pub shaping: Shaping,
    /// Membership of a cluster of router servers (`sd`, `entrypoint`,
    /// `nodeSecret`); `None` for a single server.
    pub cluster: Option<Box<ClusterSettings>>,
}

/// A router service's place in a cluster of router servers (handler
/// metadata `sd`, `entrypoint`, `nodeSecret`, ...). Defaults: [`defaults`].
#[derive(Clone, PartialEq)]
pub struct ClusterSettings {
    /// The service discovery the hosts are registered in (`sd`, naming an `sds` entry).
    pub sd: SdConfig,
    /// Where the node link listener listens (`entrypoint`).
    pub entrypoint: ListenAddr,
    /// The address other nodes dial to reach this one (`entrypoint.advertise`,
    /// default: `entrypoint`).
    pub advertise: String,
    /// The secret every node of the cluster holds (`nodeSecret`): node links
    /// are authenticated with it.
    pub node_secret: String,
    /// How often registrations are renewed (`sd.renewInterval`, default
    /// 15 s); a registration lives three times as long unless renewed.
    pub renew_interval: Duration,
    /// How long an answer of the service discovery is reused (`sd.cache.expiration`,
    /// default 1 s): a host found nowhere, and, with an HTTP plugin, where a host is.
    pub cache_expiration: Duration,
    /// Bytes queued at most for one node link (`nodeQueueBytes`, default 4 MiB).
    pub node_queue_bytes: usize,
}

impl std::fmt::Debug for ClusterSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterSettings")
            .field("sd", &self.sd)
            .field("entrypoint", &self.entrypoint)
            .field("advertise", &self.advertise)
            .field("renew_interval", &self.renew_interval)
            .field("cache_expiration", &self.cache_expiration)
            .field("node_queue_bytes", &self.node_queue_bytes)
            .finish_non_exhaustive()
    }
}

/// A service discovery (`sds[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdConfig {
    /// Its name.
    pub name: String,
    /// Where registrations are kept.
    pub backend: SdBackend,
}

/// Where a service discovery keeps registrations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SdBackend {
    /// A redis server, or a master found through Redis Sentinel (rgost's engine).
    Redis(SdRedis),
    /// GOST's SD HTTP plugin protocol (`plugin: {type: http, addr}`).
    Plugin(PluginConfig),
}

/// `sds[].redis`.
#[derive(Clone, PartialEq, Eq)]
pub struct SdRedis {
    /// `host:port` of the redis server, or of each sentinel (`addr`, comma-separated).
    pub addrs: Vec<String>,
    /// The master's name when `addrs` are sentinels (`sentinel`).
    pub sentinel: Option<String>,
    /// Database number (`db`, default 0).
    pub db: i64,
    /// User name (ACL), if any.
    pub username: Option<String>,
    /// Password, if any.
    pub password: Option<String>,
    /// Prefix of every key and channel rgost uses (`prefix`, default `rgost`).
    pub prefix: String,
}

impl std::fmt::Debug for SdRedis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SdRedis")
            .field("addrs", &self.addrs)
            .field("sentinel", &self.sentinel)
            .field("db", &self.db)
            .field("username", &self.username)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// What a router service limits and reports, by name of the limiters and
/// observer it uses (the config crate has checked that they exist).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shaping {
    /// `handler.limiter`: the traffic limiter applied to each client
    /// (`host@router-id`): `$` is every client together, `$$` each client,
    /// a host name or an address/CIDR one client.
    pub limiter: Option<String>,
    /// `services[].limiter`: GOST's listener limiter, applied to each
    /// connection: `$` is the service, `$$` each connection, an address or
    /// CIDR each source address.
    pub service_limiter: Option<String>,
    /// `services[].rlimiter`: new connections per second, refused at accept.
    pub rate_limiter: Option<String>,
    /// `handler.observer`: gets each client's stats every `observe.period`.
    pub observer: Option<String>,
    /// How the observer is fed.
    pub observe: Observe,
    /// `limiter.refreshInterval`: how often a limiter plugin is asked again
    /// about each connected client (default 30 s, at least 1 s).
    pub limiter_refresh: Duration,
}

impl Default for Shaping {
    fn default() -> Self {
        Shaping {
            limiter: None,
            service_limiter: None,
            rate_limiter: None,
            observer: None,
            observe: Observe::default(),
            limiter_refresh: defaults::LIMITER_REFRESH,
        }
    }
}

/// The router handler's observer settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observe {
    /// `observePeriod` (also `observer.period`, `observer.observePeriod`):
    /// default 5 s, at least 1 s.
    pub period: Duration,
    /// `observer.resetTraffic`: report the bytes since the last report
    /// instead of the totals.
    pub reset_traffic: bool,
}

impl Default for Observe {
    fn default() -> Self {
        Observe { period: defaults::OBSERVE_PERIOD, reset_traffic: false }
    }
}

/// Abuse limits of a router service (handler metadata). Defaults: [`defaults`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `maxConnections` (default 20000).
    pub max_connections: usize,
    /// `maxConnectionsPerIP` (default 512).
    pub max_connections_per_ip: usize,
    /// `maxHandshakeBytes`: largest accepted ASSOCIATE request (default 2048).
    pub max_handshake_bytes: usize,
    /// `queuePackets`: packets queued per connection before drops (default 256).
    pub queue_packets: usize,
    /// `queueBytes`: bytes queued per connection before drops (default 1 MiB).
    pub queue_bytes: usize,
    /// `hostQueueBytes`: bytes queued for one host across all its
    /// connections (default 4 MiB).
    pub host_queue_bytes: usize,
    /// `serverQueueBytes`: bytes queued in the whole router service, all
    /// connections together (default 256 MiB).
    pub server_queue_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: defaults::MAX_CONNECTIONS,
            max_connections_per_ip: defaults::MAX_CONNECTIONS_PER_IP,
            max_handshake_bytes: defaults::MAX_HANDSHAKE_BYTES,
            queue_packets: defaults::QUEUE_PACKETS,
            queue_bytes: defaults::QUEUE_BYTES,
            host_queue_bytes: defaults::HOST_QUEUE_BYTES,
            server_queue_bytes: defaults::SERVER_QUEUE_BYTES,
        }
    }
}

/// TCP keepalive and user timeout (`keepAlivePeriod`, `userTimeout` metadata on
/// the listener or dialer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// Idle time before the first probe, and the probe interval (default 15 s).
    pub period: Duration,
    /// TCP_USER_TIMEOUT: unacknowledged data for this long kills the connection (default 30 s).
    pub user_timeout: Duration,
}

impl Default for Keepalive {
    fn default() -> Self {
        Keepalive { period: defaults::KEEPALIVE_PERIOD, user_timeout: defaults::USER_TIMEOUT }
    }
}

/// A listen address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenAddr {
    /// The address, or `None` for every address (dual stack).
    pub ip: Option<IpAddr>,
    /// The port.
    pub port: u16,
}

/// Listener types rgost implements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenerKind {
    /// Plain TCP.
    Tcp,
    /// TLS (`listener.tls`).
    Tls(TlsServerSettings),
    /// WebSocket on `path` (default `/ws`).
    Ws {
        /// HTTP path.
        path: String,
    },
    /// WebSocket over TLS.
    Wss {
        /// HTTP path.
        path: String,
        /// TLS settings.
        tls: TlsServerSettings,
    },
}

/// A listener's `tls` block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsServerSettings {
    /// `certFile`; none = a self-signed certificate generated at start.
    pub cert_file: Option<PathBuf>,
    /// `keyFile`.
    pub key_file: Option<PathBuf>,
    /// `caFile`: when set, clients must present a certificate signed by it (mTLS).
    pub ca_file: Option<PathBuf>,
}

/// A dialer's (or node's) `tls` block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsClientSettings {
    /// `serverName` (default: the node address's host).
    pub server_name: Option<String>,
    /// `secure`: verify against the system roots when no `caFile` is given.
    pub secure: bool,
    /// `caFile`: verify the server against this CA.
    pub ca_file: Option<PathBuf>,
    /// `certFile` (client certificate for mTLS).
    pub cert_file: Option<PathBuf>,
    /// `keyFile`.
    pub key_file: Option<PathBuf>,
}

/// A TUN client service.
#[derive(Debug, Clone, PartialEq)]
pub struct TunService {
    /// The device.
    pub tun: TunSettings,
    /// The host name reported to the router (the forwarder node's addr).
    pub host: String,
    /// The chain used to reach the router server.
    pub chain: Chain,
}

/// TUN listener metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunSettings {
    /// `name`.
    pub name: Option<String>,
    /// `net`: device addresses with prefix.
    pub addrs: Vec<IpNet>,
    /// `mtu`.
    pub mtu: u16,
    /// `route` (gateway = `gw`) and `routes` ("CIDR gateway") merged in that order.
    pub routes: Vec<TunRouteSetting>,
    /// `gw`.
    pub gateway: Option<IpAddr>,
    /// `dns` servers.
    pub dns: Vec<IpAddr>,
    /// rgost extension `offload` (default true): TUN segmentation offload
    /// (GSO/GRO) when the kernel allows it. The environment variable
    /// `RGOST_TUN_OFFLOAD` overrides it (see `rgost-client`).
    pub offload: bool,
}

/// One route into the TUN device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunRouteSetting {
    /// Destination.
    pub dst: IpNet,
    /// Gateway, if any.
    pub gateway: Option<IpAddr>,
}

/// A chain: rgost supports exactly one hop; its nodes are alternatives
/// (router servers of one cluster, or standbys), chosen by the hop's selector.
#[derive(Debug, Clone, PartialEq)]
pub struct Chain {
    /// The chain's name.
    pub name: String,
    /// The hop's nodes (at least one).
    pub nodes: Vec<Node>,
    /// How a node is chosen and when a failing one is skipped (`hops[].selector`).
    pub selector: Selector,
}

/// A hop's node selector (GOST's `selector: {strategy, maxFails, failTimeout}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Selector {
    /// Which node is tried next.
    pub strategy: Strategy,
    /// Failures (a refused or failed connection, or a lost one) after which
    /// a node is skipped (`maxFails`, default 1).
    pub max_fails: u32,
    /// How long a node that reached `max_fails` is skipped (`failTimeout`, default 10 s).
    pub fail_timeout: Duration,
}

impl Default for Selector {
    fn default() -> Self {
        Selector {
            strategy: Strategy::RoundRobin,
            max_fails: defaults::SELECTOR_MAX_FAILS,
            fail_timeout: defaults::SELECTOR_FAIL_TIMEOUT,
        }
    }
}

/// A selector's strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// `round` (`rr`): each attempt takes the next node.
    RoundRobin,
    /// `random` (`rand`): a random node.
    Random,
    /// `fifo` (`ha`): the first node that is not failing; the others are standbys.
    Fifo,
    /// `hash`: a node picked by the client's host name, so a client keeps its node.
    Hash,
}

/// One node of a hop.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The node's name.
    pub name: String,
    /// `host:port` of the router server.
    pub addr: String,
    /// The connector.
    pub connector: RouterConnector,
    /// The dialer.
    pub dialer: DialerKind,
    /// Dial timeout (`connectTimeout` on the dialer or connector, default 10 s).
    pub connect_timeout: Duration,
    /// Dead-peer detection on the dialed connection.
    pub keepalive: Keepalive,
}

/// The `router` connector's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterConnector {
    /// `router.id`.
    pub router_id: Option<Uuid>,
    /// Credentials from the URL's userinfo or the connector's `auth`.
    pub auth: Option<Credentials>,
}

/// User name and password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("username", &self.username).finish_non_exhaustive()
    }
}

/// Dialer types rgost implements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialerKind {
    /// Plain TCP.
    Tcp,
    /// TLS.
    Tls(TlsClientSettings),
    /// WebSocket.
    Ws {
        /// HTTP path (default `/ws`).
        path: String,
        /// `host` metadata: the HTTP Host header (default: the node address).
        host: Option<String>,
    },
    /// WebSocket over TLS.
    Wss {
        /// HTTP path (default `/ws`).
        path: String,
        /// HTTP Host header.
        host: Option<String>,
        /// TLS settings.
        tls: TlsClientSettings,
    },
}

/// A router (routing table) definition.
#[derive(Debug, Clone, PartialEq)]
pub struct RouterConfig {
    /// Its name (a UUID string for a namespace, or any name for a default router).
    pub name: String,
    /// Inline routes in order.
    pub routes: Vec<Route>,
    /// Data sources (merged over the inline routes).
    pub sources: Sources,
    /// A plugin instead of a table; when set, routes and sources are ignored (with a warning).
    pub plugin: Option<PluginConfig>,
}

/// An ingress definition.
#[derive(Debug, Clone, PartialEq)]
pub struct IngressConfig {
    /// Its name.
    pub name: String,
    /// Inline rules: host name -> endpoint namespace.
    pub rules: Vec<(String, Uuid)>,
    /// Data sources (merged over the inline rules).
    pub sources: Sources,
    /// A plugin instead of rules.
    pub plugin: Option<PluginConfig>,
}

/// An auther definition.
#[derive(Debug, Clone, PartialEq)]
pub struct AutherConfig {
    /// Its name.
    pub name: String,
    /// Inline users in order.
    pub auths: Vec<UserEntry>,
    /// Data sources (`username password` lines).
    pub sources: Sources,
    /// A plugin instead of a user table.
    pub plugin: Option<PluginConfig>,
}

/// A traffic limiter definition (`limiters[]`).
#[derive(Debug, Clone, PartialEq)]
pub struct LimiterConfig {
    /// Its name.
    pub name: String,
    /// Inline limit lines, in order.
    pub limits: Vec<crate::TrafficLimit>,
    /// Data sources (lines `SCOPE IN [OUT [BURST]]`).
    pub sources: Sources,
    /// A plugin that gives each client's rates instead of lines.
    pub plugin: Option<PluginConfig>,
}

/// A rate limiter definition (`rlimiters[]`).
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimiterConfig {
    /// Its name.
    pub name: String,
    /// Inline limit lines, in order (lines with a rate of zero or less,
    /// which GOST skips, are left out).
    pub limits: Vec<crate::RateLimit>,
    /// Data sources (lines `SCOPE RATE`).
    pub sources: Sources,
}

/// An observer definition (`observers[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObserverConfig {
    /// Its name.
    pub name: String,
    /// The HTTP plugin the events are posted to.
    pub plugin: PluginConfig,
}

/// One user of an auther (or a handler's `auth`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEntry {
    /// Credentials.
    pub credentials: Credentials,
    /// rgost extension: the host names this user may register (empty = no binding for it).
    pub hosts: Vec<String>,
}

/// Where a router's, ingress's, auther's or limiter's entries come from besides inline.
/// Priority when two give the same key: http > redis > file > inline.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sources {
    /// `file: {path}`.
    pub file: Option<FileSource>,
    /// `redis: {...}`.
    pub redis: Option<RedisSource>,
    /// `http: {url, timeout}`.
    pub http: Option<HttpSource>,
    /// `reload`: re-read period; none = read once at start.
    pub reload: Option<Duration>,
}

impl Sources {
    /// Whether any data source is configured.
    pub fn is_empty(&self) -> bool {
        self.file.is_none() && self.redis.is_none() && self.http.is_none()
    }
}

/// A file source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSource {
    /// The file.
    pub path: PathBuf,
}

/// A redis source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSource {
    /// `host:port`.
    pub addr: String,
    /// Database number (default 0).
    pub db: i64,
    /// User name (ACL), if any.
    pub username: Option<String>,
    /// Password, if any.
    pub password: Option<String>,
    /// The key (default `gost`).
    pub key: String,
    /// How the key is read.
    pub kind: RedisKind,
}

/// How a redis key is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisKind {
    /// HGETALL: field -> value.
    Hash,
    /// SMEMBERS: each member is a line.
    Set,
    /// LRANGE: each element is a line (limiters only, as in GOST).
    List,
}

/// An HTTP source (body in the line format).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSource {
    /// The URL.
    pub url: String,
    /// Request timeout (default 10 s).
    pub timeout: Duration,
}

/// An HTTP plugin (`plugin: {type: http, addr, timeout, tls, token}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginConfig {
    /// The plugin's URL.
    pub addr: String,
    /// Request timeout (default 5 s).
    pub timeout: Duration,
    /// TLS settings for an https URL.
    pub tls: Option<TlsClientSettings>,
    /// Sent as `Authorization: Bearer {token}`.
    pub token: Option<String>,
}

/// Why a config was rejected. Its message names where (file or command-line
/// flag), the key path (e.g. `services[0].listener.metadata.net`) and the
/// offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{origin}: cannot read: {reason}")]
    Read {
        /// File path.
        origin: String,
        /// The OS error text.
        reason: String,
    },
    /// The text is not valid YAML/JSON or does not fit the schema.
    #[error("{origin}: {message}")]
    Syntax {
        /// File path or flag.
        origin: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A value is malformed (bad CIDR, UUID, port, duration...).
    #[error("{origin}: {key}: invalid value {value:?}: {reason}")]
    Invalid {
        /// File path or flag.
        origin: String,
        /// Key path.
        key: String,
        /// The value as given.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// A key or type rgost does not implement.
    #[error("{origin}: {key}: {value:?} is not supported by rgost{}", if .hint.is_empty() { String::new() } else { format!(" ({})", .hint) })]
    Unsupported {
        /// File path or flag.
        origin: String,
        /// Key path.
        key: String,
        /// The value (type name, section name...).
        value: String,
        /// What is supported instead.
        hint: String,
    },
    /// A required key is missing.
    #[error("{origin}: {key}: missing{}", if .hint.is_empty() { String::new() } else { format!(" ({})", .hint) })]
    Missing {
        /// File path or flag.
        origin: String,
        /// Key path.
        key: String,
        /// What is expected.
        hint: String,
    },
    /// A key nothing reads: a misspelt key of the schema or of a metadata
    /// map. GOST options that rgost deliberately ignores are warnings instead.
    #[error("{origin}: {key}: unknown key{}{}",
        .line.map(|(line, column)| format!(" at line {line} column {column}")).unwrap_or_default(),
        unknown_key_hint(.suggestion.as_deref(), .known))]
    UnknownKey {
        /// File path or flag.
        origin: String,
        /// Key path, ending in the unknown key (e.g. `services[0].handler.metdata`).
        key: String,
        /// The known key closest to it, when one is close enough to be a likely typo.
        suggestion: Option<String>,
        /// The keys known at that place (listed when nothing is close).
        known: Vec<String>,
        /// Line and column in the file, when known.
        line: Option<(u64, u64)>,
    },
    /// A reference names nothing (a chain, router or ingress that is not defined).
    #[error("{origin}: {key}: {value:?} is not defined")]
    Undefined {
        /// File path or flag.
        origin: String,
        /// Key path.
        key: String,
        /// The name referred to.
        value: String,
    },
}

impl ConfigError {
    /// The key path at fault (e.g. `routers[0].routes[1].dst`), when the error names one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Read { .. } | ConfigError::Syntax { .. } => None,
            ConfigError::Invalid { key, .. }
            | ConfigError::Unsupported { key, .. }
            | ConfigError::Missing { key, .. }
            | ConfigError::UnknownKey { key, .. }
            | ConfigError::Undefined { key, .. } => Some(key),
        }
    }
}

/// `: did you mean `x`?`, or the keys known there, or nothing.
fn unknown_key_hint(suggestion: Option<&str>, known: &[String]) -> String {
    match (suggestion, known) {
        (Some(key), _) => format!(": did you mean `{key}`?"),
        (None, []) => String::new(),
        (None, known) => format!(" (known keys here: {})", known.join(", ")),
    }
}
