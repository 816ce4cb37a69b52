//! The raw schema: GOST's YAML/JSON config as written, before validation.
//!
//! Every object rejects keys it does not know, so a typo is an error rather
//! than a silently ignored setting. GOST's top-level sections that rgost does
//! not implement are read only to be reported by name.
//!
//! The objects also serialise back to the same schema: the running config
//! as a document ([`crate::Document`]) is shown and edited through the web
//! API in GOST's shape. Absent keys are `None` and are left out of the
//! output (see `document`).

use std::collections::BTreeMap;

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Free-form metadata: strings, numbers, bools or lists.
pub(crate) type Metadata = BTreeMap<String, Value>;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub(crate) services: Option<Vec<RawService>>,
    pub(crate) chains: Option<Vec<RawChain>>,
    pub(crate) routers: Option<Vec<RawRouter>>,
    pub(crate) ingresses: Option<Vec<RawIngress>>,
    pub(crate) authers: Option<Vec<RawAuther>>,
    pub(crate) limiters: Option<Vec<RawLimiter>>,
    pub(crate) rlimiters: Option<Vec<RawLimiter>>,
    pub(crate) observers: Option<Vec<RawObserver>>,
    pub(crate) sds: Option<Vec<RawSd>>,
    // GOST sections rgost does not implement: read to be reported by name.
    hops: Option<IgnoredAny>,
    admissions: Option<IgnoredAny>,
    bypasses: Option<IgnoredAny>,
    resolvers: Option<IgnoredAny>,
    hosts: Option<IgnoredAny>,
    recorders: Option<IgnoredAny>,
    climiters: Option<IgnoredAny>,
    loggers: Option<IgnoredAny>,
    tls: Option<IgnoredAny>,
    log: Option<IgnoredAny>,
    profiling: Option<IgnoredAny>,
    pub(crate) api: Option<RawApi>,
    pub(crate) metrics: Option<RawMetrics>,
}

impl RawConfig {
    /// The first GOST top-level section present that rgost does not implement.
    pub(crate) fn unsupported_section(&self) -> Option<&'static str> {
        [
            ("hops", self.hops.is_some()),
            ("admissions", self.admissions.is_some()),
            ("bypasses", self.bypasses.is_some()),
            ("resolvers", self.resolvers.is_some()),
            ("hosts", self.hosts.is_some()),
            ("recorders", self.recorders.is_some()),
            ("climiters", self.climiters.is_some()),
            ("loggers", self.loggers.is_some()),
            ("tls", self.tls.is_some()),
            ("log", self.log.is_some()),
            ("profiling", self.profiling.is_some()),
        ]
        .into_iter()
        .find_map(|(key, present)| present.then_some(key))
    }
}

/// `api: {addr, pathPrefix, accesslog, auth, auther}`: the web API.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApi {
    pub(crate) addr: Option<String>,
    #[serde(rename = "pathPrefix")]
    pub(crate) path_prefix: Option<String>,
    /// GOST writes `accesslog`; viper reads keys case-insensitively, so `accessLog` too.
    #[serde(alias = "accessLog")]
    pub(crate) accesslog: Option<Value>,
    pub(crate) auth: Option<RawAuth>,
    pub(crate) auther: Option<String>,
}

/// `metrics: {addr, path, auth, auther}`: Prometheus metrics. `hostLabels`
/// is rgost's (per-host series, off by default).
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMetrics {
    pub(crate) addr: Option<String>,
    pub(crate) path: Option<String>,
    pub(crate) auth: Option<RawAuth>,
    pub(crate) auther: Option<String>,
    #[serde(rename = "hostLabels")]
    pub(crate) host_labels: Option<Value>,
}

/// `services[]`.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawService {
    pub(crate) name: Option<String>,
    pub(crate) addr: Option<String>,
    pub(crate) handler: Option<RawHandler>,
    pub(crate) listener: Option<RawListener>,
    pub(crate) forwarder: Option<RawForwarder>,
    /// The listener's traffic limiter (`$` service, `$$` per connection).
    pub(crate) limiter: Option<String>,
    /// New connections per second.
    pub(crate) rlimiter: Option<String>,
    pub(crate) metadata: Option<Metadata>,
    /// GOST's read-only service status, in configs saved from its API
    /// (`GET /config`): accepted and ignored, never written back.
    #[serde(default, skip_serializing)]
    #[allow(dead_code, reason = "read only so that GOST's saved configs load")]
    pub(crate) status: Option<Value>,
}

/// `services[].handler`.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHandler {
    #[serde(rename = "type")]
    pub(crate) kind: Option<String>,
    pub(crate) chain: Option<String>,
    pub(crate) auth: Option<RawAuth>,
    pub(crate) auther: Option<String>,
    /// The traffic limiter applied to each client (`host@router-id`).
    pub(crate) limiter: Option<String>,
    /// The observer that gets each client's stats.
    pub(crate) observer: Option<String>,
    pub(crate) metadata: Option<Metadata>,
}

/// `services[].listener`.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawListener {
    #[serde(rename = "type")]
    pub(crate) kind: Option<String>,
    pub(crate) chain: Option<String>,
    pub(crate) tls: Option<RawTls>,
    pub(crate) metadata: Option<Metadata>,
}

/// A `tls` block (listener, dialer, node or plugin).
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawTls {
    pub(crate) cert_file: Option<String>,
    pub(crate) key_file: Option<String>,
    pub(crate) ca_file: Option<String>,
    pub(crate) server_name: Option<String>,
    pub(crate) secure: Option<bool>,
}

/// `auth` / `auths[]`.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAuth {
    pub(crate) username: Option<String>,
    pub(crate) password: Option<String>,
    /// rgost extension: the host names this user may register.
    pub(crate) hosts: Option<Vec<String>>,
}

/// `services[].forwarder`.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawForwarder {
    pub(crate) nodes: Option<Vec<RawForwardNode>>,
}

/// `services[].forwarder.nodes[]`.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawForwardNode {
    #[allow(dead_code, reason = "part of GOST's schema; rgost uses only the addr")]
    pub(crate) name: Option<String>,
    pub(crate) addr: Option<String>,
}

/// `chains[]`.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawChain {
    pub(crate) name: Option<String>,
    pub(crate) hops: Option<Vec<RawHop>>,
    pub(crate) metadata: Option<Metadata>,
}

/// `chains[].hops[]`.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHop {
    #[allow(dead_code, reason = "part of GOST's schema; rgost's chains have one hop")]
    pub(crate) name: Option<String>,
    pub(crate) nodes: Option<Vec<RawNode>>,
    pub(crate) selector: Option<RawSelector>,
}

/// `chains[].hops[].selector`.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawSelector {
    pub(crate) strategy: Option<String>,
    pub(crate) max_fails: Option<Value>,
    pub(crate) fail_timeout: Option<Value>,
    /// GOST's latency filter; rgost does not measure latency.
    pub(crate) max_latency: Option<Value>,
}

/// `sds[]`: a service discovery.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSd {
    pub(crate) name: Option<String>,
    pub(crate) plugin: Option<RawPlugin>,
    /// rgost's engine.
    pub(crate) redis: Option<RawSdRedis>,
}

/// `sds[].redis`.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSdRedis {
    pub(crate) addr: Option<String>,
    pub(crate) sentinel: Option<String>,
    pub(crate) db: Option<i64>,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<String>,
    pub(crate) prefix: Option<String>,
}

/// `chains[].hops[].nodes[]`.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNode {
    pub(crate) name: Option<String>,
    pub(crate) addr: Option<String>,
    pub(crate) connector: Option<RawConnector>,
    pub(crate) dialer: Option<RawDialer>,
    pub(crate) tls: Option<RawTls>,
    pub(crate) metadata: Option<Metadata>,
}

/// `...nodes[].connector`.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConnector {
    #[serde(rename = "type")]
    pub(crate) kind: Option<String>,
    pub(crate) auth: Option<RawAuth>,
    pub(crate) metadata: Option<Metadata>,
}

/// `...nodes[].dialer`.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDialer {
    #[serde(rename = "type")]
    pub(crate) kind: Option<String>,
    pub(crate) tls: Option<RawTls>,
    pub(crate) metadata: Option<Metadata>,
}

/// `routers[]`.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRouter {
    pub(crate) name: Option<String>,
    pub(crate) routes: Option<Vec<RawRoute>>,
    pub(crate) reload: Option<Value>,
    pub(crate) file: Option<RawFile>,
    pub(crate) redis: Option<RawRedis>,
    pub(crate) http: Option<RawHttp>,
    pub(crate) plugin: Option<RawPlugin>,
}

/// `routers[].routes[]`.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoute {
    pub(crate) dst: Option<String>,
    /// Older name of `dst`.
    pub(crate) net: Option<String>,
    pub(crate) gateway: Option<String>,
}

/// `ingresses[]`.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIngress {
    pub(crate) name: Option<String>,
    pub(crate) rules: Option<Vec<RawRule>>,
    pub(crate) reload: Option<Value>,
    pub(crate) file: Option<RawFile>,
    pub(crate) redis: Option<RawRedis>,
    pub(crate) http: Option<RawHttp>,
    pub(crate) plugin: Option<RawPlugin>,
}

/// `ingresses[].rules[]`.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    pub(crate) hostname: Option<String>,
    pub(crate) endpoint: Option<String>,
}

/// `authers[]`.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAuther {
    pub(crate) name: Option<String>,
    pub(crate) auths: Option<Vec<RawAuth>>,
    pub(crate) reload: Option<Value>,
    pub(crate) file: Option<RawFile>,
    pub(crate) redis: Option<RawRedis>,
    pub(crate) http: Option<RawHttp>,
    pub(crate) plugin: Option<RawPlugin>,
}

/// `limiters[]` and `rlimiters[]` (one schema; rate limiters have no plugin).
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLimiter {
    pub(crate) name: Option<String>,
    pub(crate) limits: Option<Vec<String>>,
    pub(crate) reload: Option<Value>,
    pub(crate) file: Option<RawFile>,
    pub(crate) redis: Option<RawRedis>,
    pub(crate) http: Option<RawHttp>,
    pub(crate) plugin: Option<RawPlugin>,
}

/// `observers[]`.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawObserver {
    pub(crate) name: Option<String>,
    pub(crate) plugin: Option<RawPlugin>,
}

/// Data sources and plugin shared by routers, ingresses, authers and limiters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawSources<'a> {
    pub(crate) reload: Option<&'a Value>,
    pub(crate) file: Option<&'a RawFile>,
    pub(crate) redis: Option<&'a RawRedis>,
    pub(crate) http: Option<&'a RawHttp>,
    pub(crate) plugin: Option<&'a RawPlugin>,
}

macro_rules! sources_of {
    ($($ty:ty),*) => {$(
        impl $ty {
            pub(crate) fn sources(&self) -> RawSources<'_> {
                RawSources {
                    reload: self.reload.as_ref(),
                    file: self.file.as_ref(),
                    redis: self.redis.as_ref(),
                    http: self.http.as_ref(),
                    plugin: self.plugin.as_ref(),
                }
            }
        }
    )*};
}

sources_of!(RawRouter, RawIngress, RawAuther, RawLimiter);

/// `file: {path}`.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFile {
    pub(crate) path: Option<String>,
}

/// `redis: {...}`.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRedis {
    pub(crate) addr: Option<String>,
    pub(crate) db: Option<i64>,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<String>,
    pub(crate) key: Option<String>,
    #[serde(rename = "type")]
    pub(crate) kind: Option<String>,
}

/// `http: {url, timeout}`.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHttp {
    pub(crate) url: Option<String>,
    pub(crate) timeout: Option<Value>,
}

/// `plugin: {type, addr, timeout, tls, token}`.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPlugin {
    #[serde(rename = "type")]
    pub(crate) kind: Option<String>,
    pub(crate) addr: Option<String>,
    pub(crate) timeout: Option<Value>,
    pub(crate) tls: Option<RawTls>,
    pub(crate) token: Option<String>,
}
