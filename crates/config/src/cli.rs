//! GOST's command line: `-L` service URLs and `-F` node URLs, turned into the
//! raw schema exactly as the equivalent config file would read.

use percent_encoding::percent_decode_str;
use serde_json::Value;

use crate::ConfigError;
use crate::raw::{
    Metadata, RawApi, RawAuth, RawConnector, RawDialer, RawForwardNode, RawForwarder, RawHandler, RawListener,
    RawMetrics, RawNode, RawSelector, RawService, RawTls,
};

/// Listener types GOST registers: a single scheme names the listener too
/// only when it is one of these (`tun://` = tun handler + tun listener,
/// `router://` = router handler + tcp listener).
const GOST_LISTENERS: &[&str] = &[
    "tcp",
    "udp",
    "tls",
    "mtls",
    "ws",
    "mws",
    "wss",
    "mwss",
    "kcp",
    "quic",
    "ssh",
    "sshd",
    "rtcp",
    "rudp",
    "tun",
    "tap",
    "dns",
    "red",
    "redir",
    "redu",
    "h2",
    "h2c",
    "http2",
    "http3",
    "h3",
    "wt",
    "icmp",
    "pht",
    "phts",
    "grpc",
    "obfs-http",
    "obfs-tls",
    "ohttp",
    "otls",
    "ftcp",
    "dtls",
    "serial",
    "unix",
    "mtcp",
];

/// Dialer types GOST registers (same rule for `-F`).
const GOST_DIALERS: &[&str] = &[
    "tcp",
    "udp",
    "tls",
    "mtls",
    "ws",
    "mws",
    "wss",
    "mwss",
    "kcp",
    "quic",
    "ssh",
    "sshd",
    "h2",
    "h2c",
    "http2",
    "http3",
    "h3",
    "wt",
    "icmp",
    "pht",
    "phts",
    "grpc",
    "obfs-http",
    "obfs-tls",
    "ohttp",
    "otls",
    "ftcp",
    "dtls",
    "serial",
    "unix",
    "mtcp",
];

/// A URL split the way Go's `net/url` does for GOST's flags.
#[derive(Debug)]
struct FlagUrl {
    scheme: String,
    /// User name and password, percent-decoded.
    user: Option<(String, String)>,
    /// `host:port` (may be empty, or `:port`).
    host: String,
    /// The path, still percent-encoded.
    path: String,
    /// Query parameters, decoded; the first value of a repeated key wins.
    query: Vec<(String, String)>,
}

/// Adds `auto://` the way GOST does, for a URL without a scheme.
fn with_scheme(text: &str) -> String {
    let text = text.trim();
    if !text.contains("://") || text.starts_with(':') { format!("auto://{text}") } else { text.to_owned() }
}

fn decode(text: &str) -> String {
    percent_decode_str(text).decode_utf8_lossy().into_owned()
}

fn decode_query_part(text: &str) -> String {
    decode(&text.replace('+', " "))
}

fn parse_url(text: &str, origin: &str) -> Result<FlagUrl, ConfigError> {
    let full = with_scheme(text);
    let syntax = |message: String| ConfigError::Syntax { origin: origin.to_owned(), message };
    let (scheme, rest) = full.split_once("://").ok_or_else(|| syntax("not a URL".to_owned()))?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme.is_empty()
        || !scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        || !scheme.starts_with(|c: char| c.is_ascii_alphabetic())
    {
        return Err(syntax(format!("invalid URL scheme {scheme:?}")));
    }
    let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = rest.find('/').map_or((rest, ""), |at| rest.split_at(at));
    let (user, host) = match authority.rfind('@') {
        Some(at) => {
            let (userinfo, host) = (&authority[..at], &authority[at + 1..]);
            let (name, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            (Some((decode(name), decode(password))), host)
        }
        None => (None, authority),
    };
    let mut pairs: Vec<(String, String)> = Vec::new();
    for part in query.split('&').filter(|part| !part.is_empty()) {
        let (key, value) = part.split_once('=').unwrap_or((part, ""));
        let key = decode_query_part(key);
        if !pairs.iter().any(|(seen, _)| *seen == key) {
            pairs.push((key, decode_query_part(value)));
        }
    }
    Ok(FlagUrl { scheme, user, host: host.to_owned(), path: path.to_owned(), query: pairs })
}

/// The flag and its URL as shown in error messages, with any password masked.
pub(crate) fn flag_origin(flag: &str, text: &str) -> String {
    let text = text.trim();
    let shown = match text.split_once("://") {
        Some((scheme, rest)) => {
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            match rest[..end].rfind('@') {
                Some(at) if rest[..at].contains(':') => {
                    let name = rest[..at].split_once(':').map_or("", |(name, _)| name);
                    format!("{scheme}://{name}:***@{}", &rest[at + 1..])
                }
                _ => text.to_owned(),
            }
        }
        None => text.to_owned(),
    };
    format!("{flag} {shown:?}")
}

/// The flags that [`flag_origin`] names.
const FLAGS: &[&str] = &["-L", "-F", "-api", "-metrics"];

/// Whether `origin` is a flag's (made by [`flag_origin`]) rather than a file's.
pub(crate) fn is_flag_origin(origin: &str) -> bool {
    FLAGS.iter().any(|flag| origin.strip_prefix(flag).is_some_and(|rest| rest.starts_with(" \"")))
}

fn split_scheme(scheme: &str, origin: &str, known_second: &[&str]) -> Result<(String, String), ConfigError> {
    let parts: Vec<&str> = scheme.split('+').collect();
    match parts.as_slice() {
        [single] => {
            let second = if known_second.contains(single) { (*single).to_owned() } else { "tcp".to_owned() };
            Ok(((*single).to_owned(), second))
        }
        [first, second] if !first.is_empty() && !second.is_empty() => Ok(((*first).to_owned(), (*second).to_owned())),
        _ => Err(ConfigError::Syntax {
            origin: origin.to_owned(),
            message: format!("invalid URL scheme {scheme:?}: expected `a` or `a+b`"),
        }),
    }
}

/// Splits query parameters into the two parts' metadata: `first.x` goes to
/// the first part only, `second.x` to the second, anything else to both.
fn split_metadata(query: Vec<(String, String)>, first: &str, second: &str) -> (Metadata, Metadata) {
    let (mut a, mut b) = (Metadata::new(), Metadata::new());
    for (key, value) in query {
        if let Some(key) = key.strip_prefix(first).and_then(|k| k.strip_prefix('.')).filter(|k| !k.is_empty()) {
            a.insert(key.to_owned(), Value::String(value));
        } else if let Some(key) = key.strip_prefix(second).and_then(|k| k.strip_prefix('.')).filter(|k| !k.is_empty()) {
            b.insert(key.to_owned(), Value::String(value));
        } else {
            a.insert(key.clone(), Value::String(value.clone()));
            b.insert(key, Value::String(value));
        }
    }
    (a, b)
}

/// Takes GOST's TLS query parameters (`certFile`, `keyFile`, `caFile`,
/// `secure`, `serverName`) out of the query into a `tls` block. On a
/// listener, `secure` and `serverName` then get the same notice as in a file.
fn take_tls(query: &mut Vec<(String, String)>) -> Option<RawTls> {
    let mut tls = RawTls::default();
    let mut found = false;
    query.retain(|(key, value)| {
        let value = Some(value.clone());
        match key.to_ascii_lowercase().as_str() {
            "certfile" => tls.cert_file = value,
            "keyfile" => tls.key_file = value,
            "cafile" => tls.ca_file = value,
            "servername" => tls.server_name = value,
            "secure" => {
                tls.secure =
                    Some(matches!(value.as_deref().map(str::trim), Some("1" | "t" | "T" | "true" | "TRUE" | "True")));
            }
            _ => return true,
        }
        found = true;
        false
    });
    found.then_some(tls)
}

fn some_metadata(md: Metadata) -> Option<Metadata> {
    (!md.is_empty()).then_some(md)
}

/// A `-L` URL as a service (without a name or chain; the caller sets them).
pub(crate) fn service(text: &str, origin: &str) -> Result<RawService, ConfigError> {
    let mut url = parse_url(text, origin)?;
    let (mut handler, listener) = split_scheme(&url.scheme, origin, GOST_LISTENERS)?;
    if listener == "tun" {
        handler = "tun".to_owned();
    }
    let tls = take_tls(&mut url.query);
    let (handler_md, listener_md) = split_metadata(url.query, "handler", "listener");
    let auth = url.user.map(|(username, password)| RawAuth {
        username: Some(username),
        password: Some(password),
        hosts: None,
    });
    let targets = url.path.trim_matches('/');
    let forwarder = (!targets.is_empty()).then(|| RawForwarder {
        nodes: Some(
            targets
                .split(',')
                .enumerate()
                .map(|(i, addr)| RawForwardNode { name: Some(format!("target-{i}")), addr: Some(decode(addr)) })
                .collect(),
        ),
    });
    Ok(RawService {
        name: None,
        addr: (!url.host.is_empty()).then_some(url.host),
        handler: Some(RawHandler {
            kind: Some(handler),
            chain: None,
            auth,
            auther: None,
            limiter: None,
            observer: None,
            metadata: some_metadata(handler_md),
        }),
        listener: Some(RawListener { kind: Some(listener), chain: None, tls, metadata: some_metadata(listener_md) }),
        forwarder,
        ..RawService::default()
    })
}

/// GOST's limiter query keys of a `-L` URL, taken out of the service's
/// metadata: `limiter.in`, `limiter.out` (the service, `$`),
/// `limiter.conn.in`, `limiter.conn.out` (each connection, `$$`) become the
/// lines of a traffic limiter for `services[].limiter`, and `rlimiter` (new
/// connections per second) the `$` line of a rate limiter.
#[derive(Debug, Default)]
pub(crate) struct FlagLimits {
    /// The traffic limiter's lines, if any key was given.
    pub(crate) traffic: Vec<String>,
    /// The rate limiter's line, if `rlimiter` was given.
    pub(crate) rate: Option<String>,
}

pub(crate) fn take_limits(service: &mut RawService) -> FlagLimits {
    let mut values: Vec<(String, String)> = Vec::new();
    let maps = [
        service.handler.as_mut().and_then(|h| h.metadata.as_mut()),
        service.listener.as_mut().and_then(|l| l.metadata.as_mut()),
    ];
    for map in maps.into_iter().flatten() {
        for key in ["limiter.in", "limiter.out", "limiter.conn.in", "limiter.conn.out", "rlimiter"] {
            let found: Vec<String> = map.keys().filter(|k| k.eq_ignore_ascii_case(key)).cloned().collect();
            for k in found {
                if let Some(Value::String(v)) = map.remove(&k)
                    && !values.iter().any(|(seen, _)| seen == key)
                {
                    values.push((key.to_owned(), v.trim().to_owned()));
                }
            }
        }
    }
    let get = |key: &str| values.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty());
    let mut limits = FlagLimits::default();
    for (scope, input, output) in
        [("$", get("limiter.in"), get("limiter.out")), ("$$", get("limiter.conn.in"), get("limiter.conn.out"))]
    {
        if input.is_some() || output.is_some() {
            limits.traffic.push(format!("{scope} {} {}", input.unwrap_or("0"), output.unwrap_or("0")));
        }
    }
    limits.rate = get("rlimiter").map(|rate| format!("$ {rate}"));
    limits
}

/// A `-F` URL as the nodes of one hop, `node-0`, `node-1`, ... one per
/// comma-separated address (`router://a:8443,b:8443`), as GOST reads it,
/// and the hop's selector from the `strategy`, `maxFails` and
/// `failTimeout` query keys (also `max_fails`, `fail_timeout`).
pub(crate) fn nodes(text: &str, origin: &str) -> Result<(Vec<RawNode>, Option<RawSelector>), ConfigError> {
    let mut url = parse_url(text, origin)?;
    let selector = take_selector(&mut url.query);
    let hosts: Vec<String> = url.host.split(',').map(str::trim).filter(|h| !h.is_empty()).map(str::to_owned).collect();
    let node = node(url, origin)?;
    if hosts.len() <= 1 {
        return Ok((vec![node], selector));
    }
    let nodes = hosts
        .into_iter()
        .enumerate()
        .map(|(i, host)| RawNode { name: Some(format!("node-{i}")), addr: Some(host), ..node.clone() })
        .collect();
    Ok((nodes, selector))
}

/// Takes GOST's selector query keys out of the query.
fn take_selector(query: &mut Vec<(String, String)>) -> Option<RawSelector> {
    let mut selector = RawSelector::default();
    let mut found = false;
    query.retain(|(key, value)| {
        let value = Some(value.clone());
        match key.to_ascii_lowercase().as_str() {
            "strategy" => selector.strategy = value,
            "maxfails" | "max_fails" => selector.max_fails = value.map(Value::String),
            "failtimeout" | "fail_timeout" => selector.fail_timeout = value.map(Value::String),
            _ => return true,
        }
        found = true;
        false
    });
    found.then_some(selector)
}

/// A `-F` URL (already parsed) as a node named `node-0`.
fn node(mut url: FlagUrl, origin: &str) -> Result<RawNode, ConfigError> {
    let (connector, dialer) = split_scheme(&url.scheme, origin, GOST_DIALERS)?;
    let tls = take_tls(&mut url.query);
    let (connector_md, dialer_md) = split_metadata(url.query, "connector", "dialer");
    let auth = url.user.map(|(username, password)| RawAuth {
        username: Some(username),
        password: Some(password),
        hosts: None,
    });
    Ok(RawNode {
        name: Some("node-0".to_owned()),
        addr: (!url.host.is_empty()).then_some(url.host),
        connector: Some(RawConnector { kind: Some(connector), auth, metadata: some_metadata(connector_md) }),
        dialer: Some(RawDialer { kind: Some(dialer), tls, metadata: some_metadata(dialer_md) }),
        tls: None,
        metadata: None,
    })
}

/// The query of an `-api` or `-metrics` URL: each key at most once, among
/// `known` (case-insensitive, as GOST's metadata reader); anything else is
/// an unknown key, named with the closest known one.
fn web_query(
    url: &FlagUrl,
    origin: &str,
    section: &str,
    known: &[&'static str],
) -> Result<Vec<(&'static str, String)>, ConfigError> {
    let mut out = Vec::new();
    for (key, value) in &url.query {
        let Some(&name) = known.iter().find(|k| k.eq_ignore_ascii_case(key)) else {
            return Err(ConfigError::UnknownKey {
                origin: origin.to_owned(),
                key: format!("{section}.{key}"),
                suggestion: crate::suggest::closest(key, known.iter().copied()).map(str::to_owned),
                known: known.iter().map(|k| (*k).to_owned()).collect(),
                line: None,
            });
        };
        out.push((name, value.clone()));
    }
    Ok(out)
}

fn web_auth(url: &FlagUrl) -> Option<RawAuth> {
    url.user.clone().map(|(username, password)| RawAuth {
        username: Some(username),
        password: Some(password),
        hosts: None,
    })
}

/// `-api`: `[user:pass@]addr[?pathPrefix=/api&accesslog=true]`, read as GOST does.
pub(crate) fn api(text: &str, origin: &str) -> Result<RawApi, ConfigError> {
    let url = parse_url(text, origin)?;
    let mut api = RawApi { addr: Some(url.host.clone()), auth: web_auth(&url), ..RawApi::default() };
    for (key, value) in web_query(&url, origin, "api", &["pathPrefix", "accesslog"])? {
        match key {
            "pathPrefix" => api.path_prefix = Some(value),
            _ => api.accesslog = Some(Value::String(value)),
        }
    }
    Ok(api)
}

/// `-metrics`: `[user:pass@]addr[?path=/metrics&hostLabels=true]`, read as GOST does.
pub(crate) fn metrics(text: &str, origin: &str) -> Result<RawMetrics, ConfigError> {
    let url = parse_url(text, origin)?;
    let mut metrics = RawMetrics { addr: Some(url.host.clone()), auth: web_auth(&url), ..RawMetrics::default() };
    for (key, value) in web_query(&url, origin, "metrics", &["path", "hostLabels"])? {
        match key {
            "path" => metrics.path = Some(value),
            _ => metrics.host_labels = Some(Value::String(value)),
        }
    }
    Ok(metrics)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_go() {
        let url = parse_url("tun:///host-1,host-2?net=192.168.123.1%2F24&route=a,b&net=x", "o").unwrap();
        assert_eq!(url.scheme, "tun");
        assert_eq!(url.host, "");
        assert_eq!(url.path, "/host-1,host-2");
        assert_eq!(url.query, vec![("net".into(), "192.168.123.1/24".into()), ("route".into(), "a,b".into())]);

        let url = parse_url("router+wss://u%40x:p%3Aw@[::1]:8443/?path=/x", "o").unwrap();
        assert_eq!(url.scheme, "router+wss");
        assert_eq!(url.user, Some(("u@x".into(), "p:w".into())));
        assert_eq!(url.host, "[::1]:8443");

        assert_eq!(parse_url(":8443", "o").unwrap().scheme, "auto");
        assert_eq!(parse_url("host:8443", "o").unwrap().host, "host:8443");
        assert!(parse_url("a+b+c://x", "o").is_ok());
        assert!(split_scheme("a+b+c", "o", GOST_LISTENERS).is_err());
        assert!(parse_url("1x://x", "o").is_err());
    }

    #[test]
    fn masks_passwords() {
        assert_eq!(flag_origin("-L", "router://user:secret@:8443"), r#"-L "router://user:***@:8443""#);
        assert_eq!(flag_origin("-F", "router://h:1?a=b@c"), r#"-F "router://h:1?a=b@c""#);
    }
}
