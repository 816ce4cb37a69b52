//! Every default of the config, in one place. The model's `Default`
//! implementations and the validation read them from here; docs/config.md
//! lists the same values. Servers and clients take the validated model and
//! need no defaults of their own.

use std::time::Duration;

/// TUN device MTU (`mtu`; GOST's code uses 1420).
pub const MTU: u16 = 1420;
/// The tun listener's `offload` (rgost extension): segmentation offload on.
pub const TUN_OFFLOAD: bool = true;
/// Bound on reading a router handshake (`readTimeout`; none in GOST).
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Dial timeout (`connectTimeout`).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long route answers are cached (`router.cache.expiration`). Plugin
/// answers are cached this long even when `router.cache` is off, so the
/// packet path never waits on HTTP.
pub const ROUTE_CACHE_TTL: Duration = Duration::from_secs(1);
/// Route caching (`router.cache`): off, as in GOST.
pub const ROUTE_CACHE: bool = false;
/// Anti-spoofing (`strictSource`, rgost extension): on.
pub const STRICT_SOURCE: bool = true;
/// WebSocket path (`path`).
pub const WS_PATH: &str = "/ws";
/// HTTP data source timeout (`http.timeout`).
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Plugin timeout (`plugin.timeout`).
pub const PLUGIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Redis source key (`redis.key`).
pub const REDIS_KEY: &str = "gost";
/// Connections at once, in total (`maxConnections`).
pub const MAX_CONNECTIONS: usize = 20_000;
/// Connections at once from one address (`maxConnectionsPerIP`).
pub const MAX_CONNECTIONS_PER_IP: usize = 512;
/// Largest accepted handshake request in bytes (`maxHandshakeBytes`). The
/// largest request a client can mean is about 1.1 KB.
pub const MAX_HANDSHAKE_BYTES: usize = 2048;
/// Packets queued per connection before drops (`queuePackets`).
pub const QUEUE_PACKETS: usize = 256;
/// Bytes queued per connection before drops (`queueBytes`): 1 MiB.
pub const QUEUE_BYTES: usize = 1 << 20;
/// Bytes queued for one host across its connections (`hostQueueBytes`): 4 MiB.
pub const HOST_QUEUE_BYTES: usize = 4 << 20;
/// Bytes queued in the whole router service (`serverQueueBytes`): 256 MiB.
pub const SERVER_QUEUE_BYTES: usize = 256 << 20;
/// TCP keepalive idle time and probe interval (`keepAlivePeriod`).
pub const KEEPALIVE_PERIOD: Duration = Duration::from_secs(15);
/// TCP_USER_TIMEOUT (`userTimeout`).
pub const USER_TIMEOUT: Duration = Duration::from_secs(30);
/// The metrics endpoint's path (`metrics.path`).
pub const METRICS_PATH: &str = "/metrics";
/// Per-host metric series (`metrics.hostLabels`, rgost extension): off.
pub const METRICS_HOST_LABELS: bool = false;
/// How often the router handler reports each client's stats to its
/// observer (`observePeriod`, as in GOST).
pub const OBSERVE_PERIOD: Duration = Duration::from_secs(5);
/// The shortest observer period GOST allows; shorter ones are raised to it.
pub const OBSERVE_PERIOD_MIN: Duration = Duration::from_secs(1);
/// How often a limiter plugin is asked again about a client
/// (`limiter.refreshInterval`, as in GOST).
pub const LIMITER_REFRESH: Duration = Duration::from_secs(30);
/// The shortest `limiter.refreshInterval` GOST allows.
pub const LIMITER_REFRESH_MIN: Duration = Duration::from_secs(1);
/// A node of a hop is skipped after this many failures (`selector.maxFails`; GOST's default).
pub const SELECTOR_MAX_FAILS: u32 = 1;
/// How long a failed node is skipped (`selector.failTimeout`; GOST's default).
pub const SELECTOR_FAIL_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a cluster node renews its registrations (`sd.renewInterval`; GOST's default).
pub const SD_RENEW_INTERVAL: Duration = Duration::from_secs(15);
/// How long service discovery answers are reused (`sd.cache.expiration`; GOST's default).
pub const SD_CACHE_EXPIRATION: Duration = Duration::from_secs(1);
/// Prefix of the redis keys and channel of a cluster (`sds[].redis.prefix`).
pub const SD_REDIS_PREFIX: &str = "rgost";
/// Bytes queued at most for one node link (`nodeQueueBytes`): 4 MiB.
pub const NODE_QUEUE_BYTES: usize = 4 << 20;
/// Shortest `nodeSecret` accepted, in bytes.
pub const NODE_SECRET_MIN_LEN: usize = 16;
