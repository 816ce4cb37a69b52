//! GOST's HTTP plugin protocol: router, ingress, auther, traffic limiter
//! and observer plugins.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use rgost_config::PluginConfig;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::PluginError;
use crate::body::{BodyError, read_limited};

/// Largest plugin answer accepted (64 KiB).
pub const PLUGIN_BODY_LIMIT: usize = 64 << 10;

/// A router plugin: `GET {addr}?dst={ip}&id={router-id}` answered by
/// `{"dst"|"net": "...", "gateway": "..."}`.
#[derive(Debug, Clone)]
pub struct RouterPlugin {
    http: PluginHttp,
}

impl RouterPlugin {
    /// Builds the client (reads the TLS files named by the config).
    pub fn new(config: &PluginConfig) -> Result<Self, PluginError> {
        Ok(Self { http: PluginHttp::new(config)? })
    }

    /// Asks for the route to `dst` in router `router_id`. `Ok(None)` = no route
    /// (any status but 200, or an answer without a gateway); `Ok(Some((dst,
    /// gateway)))` gives the route's destination (`dst`, or `net`, or the
    /// queried address if the plugin names neither) and its gateway.
    pub async fn lookup(&self, dst: IpAddr, router_id: &str) -> Result<Option<(String, String)>, PluginError> {
        #[derive(Deserialize)]
        struct Answer {
            #[serde(default)]
            dst: Option<String>,
            #[serde(default)]
            net: Option<String>,
            #[serde(default)]
            gateway: Option<String>,
        }
        let mut url = self.http.base.clone();
        url.query_pairs_mut().append_pair("dst", &dst.to_string()).append_pair("id", router_id);
        let Some(answer) = self.http.call::<Answer>(self.http.client.get(url)).await? else {
            return Ok(None);
        };
        let Some(gateway) = answer.gateway.filter(|g| !g.is_empty()) else {
            return Ok(None);
        };
        let route_dst = answer
            .dst
            .filter(|d| !d.is_empty())
            .or(answer.net.filter(|n| !n.is_empty()))
            .unwrap_or_else(|| dst.to_string());
        Ok(Some((route_dst, gateway)))
    }
}

/// An ingress plugin: `GET {addr}?host={host}&service={service}` answered by
/// `{"endpoint": "..."}`.
#[derive(Debug, Clone)]
pub struct IngressPlugin {
    http: PluginHttp,
}

impl IngressPlugin {
    /// Builds the client (reads the TLS files named by the config).
    pub fn new(config: &PluginConfig) -> Result<Self, PluginError> {
        Ok(Self { http: PluginHttp::new(config)? })
    }

    /// Asks for the endpoint of `host`. `Ok(None)` = no rule (any status but
    /// 200, or an empty endpoint).
    pub async fn lookup(&self, host: &str, service: &str) -> Result<Option<String>, PluginError> {
        #[derive(Deserialize)]
        struct Answer {
            #[serde(default)]
            endpoint: Option<String>,
        }
        let mut url = self.http.base.clone();
        url.query_pairs_mut().append_pair("host", host).append_pair("service", service);
        let answer = self.http.call::<Answer>(self.http.client.get(url)).await?;
        Ok(answer.and_then(|a| a.endpoint).filter(|e| !e.is_empty()))
    }
}

/// An auther plugin: `POST {addr}` with JSON `{"service", "username",
/// "password", "client"}` answered by `{"ok": true, "id": "..."}`.
#[derive(Debug, Clone)]
pub struct AuthPlugin {
    http: PluginHttp,
}

impl AuthPlugin {
    /// Builds the client (reads the TLS files named by the config).
    pub fn new(config: &PluginConfig) -> Result<Self, PluginError> {
        Ok(Self { http: PluginHttp::new(config)? })
    }

    /// Checks credentials. `Ok(Some(id))` = accepted (the id may be empty);
    /// `Ok(None)` = rejected (`ok` false or missing, or any status but 200).
    pub async fn authenticate(
        &self,
        service: &str,
        username: &str,
        password: &str,
        client: &str,
    ) -> Result<Option<String>, PluginError> {
        #[derive(serde::Serialize)]
        struct Request<'a> {
            service: &'a str,
            username: &'a str,
            password: &'a str,
            client: &'a str,
        }
        #[derive(Deserialize)]
        struct Answer {
            #[serde(default)]
            ok: bool,
            #[serde(default)]
            id: Option<String>,
        }
        let body = Request { service, username, password, client };
        let request = self.http.client.post(self.http.base.clone()).json(&body);
        let answer = self.http.call::<Answer>(request).await?;
        Ok(answer.filter(|a| a.ok).map(|a| a.id.unwrap_or_default()))
    }
}

/// A traffic limiter plugin: `POST {addr}` with JSON `{"service", "scope",
/// "network", "addr", "client", "src"}` answered by `{"in": N, "out": N}`,
/// bytes per second (zero or less: unlimited).
#[derive(Debug, Clone)]
pub struct LimiterPlugin {
    http: PluginHttp,
}

/// What a limiter plugin is asked about: GOST's limiter options.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct LimitQuery<'a> {
    /// The service's name.
    pub service: &'a str,
    /// `client` for the router handler's per-client limiter.
    pub scope: &'a str,
    /// The client's network (`ip` for the routing tunnel).
    pub network: &'a str,
    /// The target address (empty for the routing tunnel).
    pub addr: &'a str,
    /// The client: `host@router-id`.
    pub client: &'a str,
    /// The client's address, `IP:PORT`.
    pub src: &'a str,
}

impl LimiterPlugin {
    /// Builds the client (reads the TLS files named by the config).
    pub fn new(config: &PluginConfig) -> Result<Self, PluginError> {
        Ok(Self { http: PluginHttp::new(config)? })
    }

    /// Asks for the input and output rates of `query`'s client, in bytes
    /// per second; `None` for unlimited (zero or less). `Ok(None)` as a
    /// whole for an answer other than 200 (GOST then applies no limit).
    pub async fn limits(&self, query: &LimitQuery<'_>) -> Result<Option<(Option<u64>, Option<u64>)>, PluginError> {
        #[derive(Deserialize)]
        struct Answer {
            #[serde(default, rename = "in")]
            input: i64,
            #[serde(default, rename = "out")]
            output: i64,
        }
        let request = self.http.client.post(self.http.base.clone()).json(query);
        let answer = self.http.call::<Answer>(request).await?;
        let positive = |n: i64| u64::try_from(n).ok().filter(|n| *n > 0);
        Ok(answer.map(|a| (positive(a.input), positive(a.output))))
    }
}

/// An observer plugin: `POST {addr}` with JSON `{"events": [...]}`
/// answered by `{"ok": true}`.
#[derive(Debug, Clone)]
pub struct ObserverPlugin {
    http: PluginHttp,
}

/// One event for an observer, as GOST's HTTP observer plugin sends it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ObserverEvent {
    /// Who sends it: `handler`.
    pub kind: String,
    /// The service's name.
    pub service: String,
    /// The client (`host@router-id`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub client: String,
    /// `stats`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The client's counters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats: Option<ObserverStats>,
}

/// The counters of a `stats` event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObserverStats {
    /// Connections made so far.
    pub total_conns: u64,
    /// Connections open now.
    pub current_conns: u64,
    /// Bytes read from the client.
    pub input_bytes: u64,
    /// Bytes written to the client.
    pub output_bytes: u64,
    /// Connections that ended with an error.
    pub total_errs: u64,
}

impl ObserverPlugin {
    /// Builds the client (reads the TLS files named by the config). An
    /// address without a scheme gets `http://`, as in GOST.
    pub fn new(config: &PluginConfig) -> Result<Self, PluginError> {
        let mut config = config.clone();
        if !config.addr.starts_with("http") {
            config.addr = format!("http://{}", config.addr);
        }
        Ok(Self { http: PluginHttp::new(&config)? })
    }

    /// Posts `events`. Only a 200 answer `{"ok": true}` is a success.
    pub async fn observe(&self, events: &[ObserverEvent]) -> Result<(), PluginError> {
        #[derive(serde::Serialize)]
        struct Request<'a> {
            events: &'a [ObserverEvent],
        }
        #[derive(Deserialize)]
        struct Answer {
            #[serde(default)]
            ok: bool,
        }
        let request = self.http.client.post(self.http.base.clone()).json(&Request { events });
        let addr = || self.http.addr.clone();
        match self.http.call_status::<Answer>(request).await? {
            Err(status) => Err(PluginError::Status { addr: addr(), status }),
            Ok(Answer { ok: true }) => Ok(()),
            Ok(Answer { ok: false }) => Err(PluginError::NotOk { addr: addr() }),
        }
    }
}

/// What the plugins share: the client, base URL, token and timeout.
#[derive(Debug, Clone)]
struct PluginHttp {
    client: reqwest::Client,
    base: url::Url,
    /// The configured address, for error messages.
    addr: String,
    token: Option<String>,
    timeout: Duration,
}

impl PluginHttp {
    fn new(config: &PluginConfig) -> Result<Self, PluginError> {
        let addr = config.addr.clone();
        let invalid = |reason| PluginError::InvalidAddr { addr: addr.clone(), reason };
        let base = url::Url::parse(&config.addr).map_err(|_| invalid("not an absolute URL"))?;
        if base.scheme() != "http" && base.scheme() != "https" {
            return Err(invalid("scheme must be http or https"));
        }
        if base.host().is_none() {
            return Err(invalid("no host"));
        }
        // GOST's plugin client has its own transport: no proxy from the environment.
        let mut builder = reqwest::Client::builder().no_proxy().timeout(config.timeout);
        if let Some(tls) = &config.tls {
            if let Some(ca) = &tls.ca_file {
                let pem = read_file(&addr, ca)?;
                let certs = reqwest::Certificate::from_pem_bundle(&pem)
                    .map_err(|error| PluginError::Tls { addr: addr.clone(), error })?;
                builder = builder.tls_certs_only(certs);
            } else if !tls.secure {
                tracing::warn!(
                    plugin = %addr,
                    "plugin TLS: secure is false and no caFile is given; the server certificate is NOT verified"
                );
                builder = builder.tls_danger_accept_invalid_certs(true);
            }
            match (&tls.cert_file, &tls.key_file) {
                (Some(cert), Some(key)) => {
                    let mut pem = read_file(&addr, cert)?;
                    pem.push(b'\n');
                    pem.extend_from_slice(&read_file(&addr, key)?);
                    let identity = reqwest::Identity::from_pem(&pem)
                        .map_err(|error| PluginError::Tls { addr: addr.clone(), error })?;
                    builder = builder.identity(identity);
                }
                (None, None) => {}
                _ => return Err(PluginError::TlsIdentityIncomplete { addr }),
            }
            if let Some(name) = &tls.server_name
                && base.host_str() != Some(name.as_str())
            {
                tracing::warn!(
                    plugin = %addr,
                    server_name = %name,
                    "plugin TLS: serverName is not supported for plugins; the URL's host is used"
                );
            }
        }
        let client = builder.build().map_err(|error| PluginError::Tls { addr: addr.clone(), error })?;
        Ok(Self { client, base, addr, token: config.token.clone().filter(|t| !t.is_empty()), timeout: config.timeout })
    }

    /// Sends `request`; `Ok(None)` for any status but 200, the decoded JSON
    /// otherwise.
    async fn call<T: DeserializeOwned>(&self, request: reqwest::RequestBuilder) -> Result<Option<T>, PluginError> {
        Ok(self.call_status(request).await?.ok())
    }

    /// Sends `request`; `Ok(Err(status))` for any status but 200, the
    /// decoded JSON otherwise.
    async fn call_status<T: DeserializeOwned>(
        &self,
        mut request: reqwest::RequestBuilder,
    ) -> Result<Result<T, u16>, PluginError> {
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let work = async {
            let resp = request.send().await.map_err(|e| self.request_error(e))?;
            if resp.status() != reqwest::StatusCode::OK {
                tracing::debug!(plugin = %self.addr, status = resp.status().as_u16(), "plugin: non-200 answer");
                return Ok(Err(resp.status().as_u16()));
            }
            let body = read_limited(resp, PLUGIN_BODY_LIMIT).await.map_err(|e| match e {
                BodyError::TooLarge => PluginError::TooLarge { addr: self.addr.clone(), limit: PLUGIN_BODY_LIMIT },
                BodyError::Transfer(error) => self.request_error(error),
            })?;
            serde_json::from_slice(&body)
                .map(Ok)
                .map_err(|error| PluginError::Decode { addr: self.addr.clone(), error })
        };
        // The client's timeout covers the body too; this outer bound is a
        // safety net that also reports a timeout by its own variant.
        match tokio::time::timeout(self.timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(PluginError::Timeout { addr: self.addr.clone(), timeout: self.timeout }),
        }
    }

    fn request_error(&self, error: reqwest::Error) -> PluginError {
        if error.is_timeout() {
            PluginError::Timeout { addr: self.addr.clone(), timeout: self.timeout }
        } else {
            // The URL carries user data (destinations, host names); keep it out of logs.
            PluginError::Request { addr: self.addr.clone(), error: error.without_url() }
        }
    }
}

fn read_file(addr: &str, path: &Path) -> Result<Vec<u8>, PluginError> {
    std::fs::read(path).map_err(|error| PluginError::TlsFile { addr: addr.to_owned(), path: path.to_owned(), error })
}
