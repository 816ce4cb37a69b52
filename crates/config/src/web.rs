//! The web endpoints: GOST's web API (`api:`, `-api`, `handler: api`) and
//! Prometheus metrics (`metrics:`, `-metrics`, `handler: metrics`).
//!
//! Both are an HTTP server on an address, with optional HTTP Basic
//! authentication (inline `auth`, or an `auther` by name). The top-level
//! sections are plain HTTP, as in GOST; as a service, the listener may be
//! `tls` for HTTPS.

use serde_json::Value;

use crate::metadata::{Md, invalid, scalar, shown};
use crate::raw::{RawApi, RawAuth, RawMetrics, RawService};
use crate::validate::{
    LISTENER_IGNORED, Notes, Refs, SERVICE_IGNORED, listen_addr, missing, text, tls_server, undefined, user_entry,
};
use crate::{ApiConfig, AutherConfig, ConfigError, Credentials, ListenAddr, ListenerKind, MetricsConfig, defaults};

type Result<T> = std::result::Result<T, ConfigError>;

/// GOST options of the api and metrics handlers rgost does not implement.
const WEB_HANDLER_IGNORED: &[&str] = &[];

/// What an api or metrics service has in common, before it is one or the other.
pub(crate) struct WebService {
    listen: ListenAddr,
    listener: ListenerKind,
    /// `pathPrefix` (api) or `path` (metrics), normalised.
    path: String,
    access_log: bool,
    auth: Option<Credentials>,
    auther: Option<String>,
    host_labels: bool,
}

impl WebService {
    pub(crate) fn api(self) -> ApiConfig {
        ApiConfig {
            listen: self.listen,
            listener: self.listener,
            path_prefix: self.path,
            access_log: self.access_log,
            auth: self.auth,
            auther: self.auther,
        }
    }

    pub(crate) fn metrics(self) -> MetricsConfig {
        MetricsConfig {
            listen: self.listen,
            listener: self.listener,
            path: self.path,
            auth: self.auth,
            auther: self.auther,
            host_labels: self.host_labels,
        }
    }
}

/// A service with handler `api` or `metrics` (the caller has checked the
/// listener type: tcp or tls).
pub(crate) fn web_service(
    origin: &str,
    path: &str,
    raw: &RawService,
    refs: &Refs<'_>,
    notes: &mut Notes,
) -> Result<WebService> {
    let handler = raw.handler.clone().unwrap_or_default();
    let listener = raw.listener.clone().unwrap_or_default();
    let kind = text(handler.kind.as_ref()).map(str::to_ascii_lowercase).unwrap_or_default();
    let hmd = Md::new(origin, format!("{path}.handler.metadata"), handler.metadata.as_ref(), WEB_HANDLER_IGNORED);
    let lmd = Md::new(origin, format!("{path}.listener.metadata"), listener.metadata.as_ref(), LISTENER_IGNORED);
    let smd = Md::new(origin, format!("{path}.metadata"), raw.metadata.as_ref(), SERVICE_IGNORED);

    let addr = text(raw.addr.as_ref()).ok_or_else(|| missing(origin, format!("{path}.addr"), "e.g. \":18080\""))?;
    let listen = listen_addr(addr).map_err(|reason| invalid(origin, format!("{path}.addr"), addr, reason))?;
    let tls_path = format!("{path}.listener.tls");
    let listener_kind = match text(listener.kind.as_ref()).map(str::to_ascii_lowercase).as_deref() {
        Some("tls") => ListenerKind::Tls(tls_server(origin, &tls_path, listener.tls.as_ref(), notes)?),
        _ => {
            if listener.tls.is_some() {
                notes.warn(format!("{origin}: {tls_path}: ignored by a tcp listener"));
            }
            ListenerKind::Tcp
        }
    };
    // GOST reads `api.pathPrefix` or `pathPrefix`, `metrics.path` or `path`.
    let (path_value, access_log, host_labels) = if kind == "api" {
        let prefix = match first_string(&hmd, "api.pathPrefix", "pathPrefix")? {
            Some((key, prefix)) => http_path(origin, &key, &prefix)?,
            None => String::new(),
        };
        (prefix, first_bool(&hmd, "api.accessLog", "accessLog")?.unwrap_or(false), false)
    } else {
        let path = match first_string(&hmd, "metrics.path", "path")? {
            Some((key, path)) => root_if_empty(http_path(origin, &key, &path)?),
            None => defaults::METRICS_PATH.to_owned(),
        };
        let host_labels =
            first_bool(&hmd, "metrics.hostLabels", "hostLabels")?.unwrap_or(defaults::METRICS_HOST_LABELS);
        (path, false, host_labels)
    };
    let auth =
        handler.auth.as_ref().map(|auth| credentials(origin, &format!("{path}.handler.auth"), auth)).transpose()?;
    let auther = auther_ref(origin, &format!("{path}.handler.auther"), handler.auther.as_ref(), refs.authers)?;
    if handler.chain.is_some() || listener.chain.is_some() {
        notes.warn(format!("{origin}: {path}.handler.chain: an {kind} service forwards nothing, chain ignored"));
    }
    notes.check_metadata(&[&hmd, &lmd, &smd])?;
    Ok(WebService { listen, listener: listener_kind, path: path_value, access_log, auth, auther, host_labels })
}

/// The top-level `api:` section.
pub(crate) fn api_section(origin: &str, raw: &RawApi, authers: &[AutherConfig]) -> Result<ApiConfig> {
    let listen = section_addr(origin, "api", raw.addr.as_ref())?;
    let path_prefix = match text(raw.path_prefix.as_ref()) {
        Some(prefix) => http_path(origin, "api.pathPrefix", prefix)?,
        None => String::new(),
    };
    let access_log = match raw.accesslog.as_ref().filter(|v| !v.is_null()) {
        Some(value) => bool_value(origin, "api.accesslog", value)?,
        None => false,
    };
    Ok(ApiConfig {
        listen,
        listener: ListenerKind::Tcp,
        path_prefix,
        access_log,
        auth: raw.auth.as_ref().map(|auth| credentials(origin, "api.auth", auth)).transpose()?,
        auther: auther_ref(origin, "api.auther", raw.auther.as_ref(), authers)?,
    })
}

/// The top-level `metrics:` section.
pub(crate) fn metrics_section(origin: &str, raw: &RawMetrics, authers: &[AutherConfig]) -> Result<MetricsConfig> {
    let listen = section_addr(origin, "metrics", raw.addr.as_ref())?;
    let path = match text(raw.path.as_ref()) {
        Some(path) => http_path(origin, "metrics.path", path)?,
        None => defaults::METRICS_PATH.to_owned(),
    };
    let path = root_if_empty(path);
    let host_labels = match raw.host_labels.as_ref().filter(|v| !v.is_null()) {
        Some(value) => bool_value(origin, "metrics.hostLabels", value)?,
        None => defaults::METRICS_HOST_LABELS,
    };
    Ok(MetricsConfig {
        listen,
        listener: ListenerKind::Tcp,
        path,
        auth: raw.auth.as_ref().map(|auth| credentials(origin, "metrics.auth", auth)).transpose()?,
        auther: auther_ref(origin, "metrics.auther", raw.auther.as_ref(), authers)?,
        host_labels,
    })
}

fn section_addr(origin: &str, section: &str, addr: Option<&String>) -> Result<ListenAddr> {
    let key = format!("{section}.addr");
    let addr = text(addr).ok_or_else(|| missing(origin, &key, "e.g. \":18080\" or \"127.0.0.1:18080\""))?;
    if addr.starts_with("unix://") {
        return Err(crate::validate::unsupported(origin, key, addr, "rgost listens on TCP addresses"));
    }
    listen_addr(addr).map_err(|reason| invalid(origin, key, addr, reason))
}

/// An HTTP path (prefix): starts with `/`; a trailing `/` is dropped, so
/// `/` and `""` both mean the root.
fn http_path(origin: &str, key: &str, value: &str) -> Result<String> {
    let value = value.trim();
    if !value.starts_with('/') {
        return Err(invalid(origin, key, value, "an HTTP path starts with /"));
    }
    if value.contains(['?', '#', ' ']) {
        return Err(invalid(origin, key, value, "a path without query, fragment or spaces"));
    }
    Ok(value.trim_end_matches('/').to_owned())
}

/// The metrics path `/` is kept as `/` (a prefix of `""` means the root).
fn root_if_empty(path: String) -> String {
    if path.is_empty() { "/".to_owned() } else { path }
}

fn credentials(origin: &str, path: &str, raw: &RawAuth) -> Result<Credentials> {
    let entry = user_entry(origin, path, raw)?;
    if !entry.hosts.is_empty() {
        return Err(invalid(
            origin,
            format!("{path}.hosts"),
            entry.hosts.join(","),
            "hosts binds router clients to host names; it has no meaning here",
        ));
    }
    Ok(entry.credentials)
}

fn auther_ref(origin: &str, key: &str, name: Option<&String>, authers: &[AutherConfig]) -> Result<Option<String>> {
    match text(name) {
        None => Ok(None),
        Some(name) if authers.iter().any(|a| a.name == name) => Ok(Some(name.to_owned())),
        Some(name) => Err(undefined(origin, key, name)),
    }
}

/// The first of two metadata keys present (both are read, so both are known).
fn first_string(md: &Md<'_>, a: &'static str, b: &'static str) -> Result<Option<(String, String)>> {
    let first = md.string(a)?;
    let second = md.string(b)?;
    Ok(first.or(second))
}

fn first_bool(md: &Md<'_>, a: &'static str, b: &'static str) -> Result<Option<bool>> {
    let first = md.bool(a)?;
    let second = md.bool(b)?;
    Ok(first.or(second))
}

/// A boolean as GOST reads one (also the strings `true`, `1`, ...).
fn bool_value(origin: &str, key: &str, value: &Value) -> Result<bool> {
    let parsed = match value {
        Value::Bool(b) => Some(*b),
        other => scalar(other).and_then(|s| match s.as_str() {
            "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
            "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
            _ => None,
        }),
    };
    parsed.ok_or_else(|| invalid(origin, key, shown(value), "expected true or false"))
}
