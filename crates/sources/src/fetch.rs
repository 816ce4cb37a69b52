//! Reading the file, redis and http sources.

use std::time::Duration;

use redis::IntoConnectionInfo as _;
use redis::aio::MultiplexedConnection;
use rgost_config::{FileSource, HttpSource, RedisKind, RedisSource, Sources};

use crate::body::{BodyError, read_limited};
use crate::lines::{BadLine, LineFormat};
use crate::{Entry, SourceError};

/// Bound on connecting to redis and on each redis command.
pub const REDIS_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest http source body accepted (16 MiB).
pub const SOURCE_BODY_LIMIT: usize = 16 << 20;
/// Default redis port when `addr` has none.
const REDIS_DEFAULT_PORT: u16 = 6379;

/// What one source gave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fetched {
    /// Its entries, in source order (redis: sorted by key, since redis
    /// hashes and sets have no order).
    pub entries: Vec<Entry>,
    /// Lines skipped because they did not have exactly two fields.
    pub bad: Vec<BadLine>,
}

/// The result of reading every configured source once. A field is `None`
/// when that source is not configured.
#[derive(Debug, Default)]
pub struct FetchResult {
    /// The file source.
    pub file: Option<Result<Fetched, SourceError>>,
    /// The redis source.
    pub redis: Option<Result<Fetched, SourceError>>,
    /// The http source.
    pub http: Option<Result<Fetched, SourceError>>,
}

/// Reads sources, keeping an HTTP client and a redis connection between
/// reads (a [`Reloader`](crate::Reloader) owns one).
#[derive(Debug)]
pub struct Fetcher {
    /// Built on first use (building can fail; then the next read retries).
    http: Option<reqwest::Client>,
    redis: Option<(RedisSource, MultiplexedConnection)>,
    /// How lines become entries.
    format: LineFormat,
}

impl Default for Fetcher {
    fn default() -> Self {
        Self::new()
    }
}

impl Fetcher {
    /// A fetcher with no open connection.
    pub fn new() -> Self {
        Self { http: None, redis: None, format: LineFormat::Pairs }
    }

    /// A fetcher that reads lines in `format`.
    pub fn with_format(format: LineFormat) -> Self {
        Self { format, ..Self::new() }
    }

    /// Reads every configured source of `sources` concurrently; each one
    /// succeeds or fails on its own.
    pub async fn fetch(&mut self, sources: &Sources) -> FetchResult {
        let Self { http, redis, format } = self;
        let format = *format;
        let file_fut = async {
            match &sources.file {
                Some(src) => Some(fetch_file(src, format).await),
                None => None,
            }
        };
        let http_fut = async {
            match &sources.http {
                Some(src) => Some(fetch_http(http, src, format).await),
                None => None,
            }
        };
        let redis_fut = async {
            match &sources.redis {
                Some(src) => Some(fetch_redis(redis, src, format).await),
                None => None,
            }
        };
        let (file, http, redis) = tokio::join!(file_fut, http_fut, redis_fut);
        FetchResult { file, redis, http }
    }
}

/// Reads every configured source of `sources` once, with fresh connections.
pub async fn fetch(sources: &Sources) -> FetchResult {
    Fetcher::new().fetch(sources).await
}

async fn fetch_file(src: &FileSource, format: LineFormat) -> Result<Fetched, SourceError> {
    let bytes =
        tokio::fs::read(&src.path).await.map_err(|error| SourceError::File { path: src.path.clone(), error })?;
    let text = String::from_utf8(bytes).map_err(|_| SourceError::FileNotUtf8 { path: src.path.clone() })?;
    Ok(from_text(&text, format))
}

fn from_text(text: &str, format: LineFormat) -> Fetched {
    let parsed = format.parse(text);
    Fetched { entries: parsed.entries, bad: parsed.bad }
}

async fn fetch_http(
    client: &mut Option<reqwest::Client>,
    src: &HttpSource,
    format: LineFormat,
) -> Result<Fetched, SourceError> {
    let url = &src.url;
    let client = match client {
        Some(client) => client.clone(),
        None => {
            // Like GOST's loader, ignore proxy environment variables.
            let built = reqwest::Client::builder()
                .no_proxy()
                .build()
                .map_err(|error| SourceError::HttpClient { url: url.clone(), error })?;
            client.insert(built).clone()
        }
    };
    let work = async {
        let resp = client
            .get(url)
            .send()
            .await
            .map_err(|error| SourceError::Http { url: url.clone(), error: error.without_url() })?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err(SourceError::HttpStatus { url: url.clone(), status });
        }
        let body = read_limited(resp, SOURCE_BODY_LIMIT).await.map_err(|e| match e {
            BodyError::TooLarge => SourceError::HttpBodyTooLarge { url: url.clone(), limit: SOURCE_BODY_LIMIT },
            BodyError::Transfer(error) => SourceError::Http { url: url.clone(), error: error.without_url() },
        })?;
        let text = String::from_utf8(body).map_err(|_| SourceError::HttpNotUtf8 { url: url.clone() })?;
        Ok(from_text(&text, format))
    };
    // One deadline for the whole exchange, body included.
    match tokio::time::timeout(src.timeout, work).await {
        Ok(result) => result,
        Err(_) => Err(SourceError::HttpTimeout { url: url.clone(), timeout: src.timeout }),
    }
}

async fn fetch_redis(
    cached: &mut Option<(RedisSource, MultiplexedConnection)>,
    src: &RedisSource,
    format: LineFormat,
) -> Result<Fetched, SourceError> {
    let result = tokio::time::timeout(REDIS_TIMEOUT * 2, fetch_redis_inner(cached, src, format)).await;
    let result = result.unwrap_or_else(|_| {
        Err(SourceError::RedisTimeout { addr: src.addr.clone(), key: src.key.clone(), timeout: REDIS_TIMEOUT })
    });
    if result.is_err() {
        // Reconnect next time: the connection may be broken or half-authenticated.
        *cached = None;
    }
    result
}

async fn fetch_redis_inner(
    cached: &mut Option<(RedisSource, MultiplexedConnection)>,
    src: &RedisSource,
    format: LineFormat,
) -> Result<Fetched, SourceError> {
    let err = |error: redis::RedisError| {
        if error.is_timeout() {
            SourceError::RedisTimeout { addr: src.addr.clone(), key: src.key.clone(), timeout: REDIS_TIMEOUT }
        } else {
            SourceError::Redis { addr: src.addr.clone(), key: src.key.clone(), error }
        }
    };
    let mut conn = match cached {
        Some((cfg, conn)) if cfg == src => conn.clone(),
        _ => {
            let conn = connect_redis(src).await?;
            *cached = Some((src.clone(), conn.clone()));
            conn
        }
    };
    let mut entries: Vec<Entry> = Vec::new();
    let mut bad = Vec::new();
    match src.kind {
        RedisKind::Hash => {
            let map: Vec<(Vec<u8>, Vec<u8>)> =
                redis::cmd("HGETALL").arg(&src.key).query_async(&mut conn).await.map_err(err)?;
            for (field, value) in map {
                let field = String::from_utf8_lossy(&field).trim().to_owned();
                let value = String::from_utf8_lossy(&value).trim().to_owned();
                if field.is_empty() || value.is_empty() {
                    bad.push(BadLine { line_no: 0, line: format!("{field} {value}") });
                } else {
                    entries.push((field, value));
                }
            }
        }
        RedisKind::Set | RedisKind::List => {
            // GOST's limiters read a set (SMEMBERS) or a list (LRANGE); each
            // member is a line.
            let command = match src.kind {
                RedisKind::List => redis::cmd("LRANGE").arg(&src.key).arg(0).arg(-1).to_owned(),
                _ => redis::cmd("SMEMBERS").arg(&src.key).to_owned(),
            };
            let members: Vec<Vec<u8>> = command.query_async(&mut conn).await.map_err(err)?;
            for member in members {
                let text = String::from_utf8_lossy(&member);
                let parsed = format.parse(&text);
                entries.extend(parsed.entries);
                // A member has no line number; report 0.
                bad.extend(parsed.bad.into_iter().map(|b| BadLine { line_no: 0, line: b.line }));
            }
        }
    }
    entries.sort();
    Ok(Fetched { entries, bad })
}

async fn connect_redis(src: &RedisSource) -> Result<MultiplexedConnection, SourceError> {
    let err = |error: redis::RedisError| SourceError::Redis { addr: src.addr.clone(), key: src.key.clone(), error };
    let (host, port) = split_host_port(&src.addr)
        .ok_or_else(|| SourceError::RedisAddr { addr: src.addr.clone(), key: src.key.clone() })?;
    let mut settings = redis::RedisConnectionInfo::default().set_db(src.db);
    if let Some(user) = src.username.as_deref().filter(|u| !u.is_empty()) {
        settings = settings.set_username(user);
    }
    if let Some(pass) = src.password.as_deref().filter(|p| !p.is_empty()) {
        settings = settings.set_password(pass);
    }
    let info = redis::ConnectionAddr::Tcp(host, port).into_connection_info().map_err(err)?.set_redis_settings(settings);
    let client = redis::Client::open(info).map_err(err)?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(REDIS_TIMEOUT))
        .set_response_timeout(Some(REDIS_TIMEOUT));
    client.get_multiplexed_async_connection_with_config(&config).await.map_err(|error| {
        if error.is_timeout() {
            SourceError::RedisTimeout { addr: src.addr.clone(), key: src.key.clone(), timeout: REDIS_TIMEOUT }
        } else {
            err(error)
        }
    })
}

/// Splits `host:port`, `[v6]:port`, `host` or `v6` (no port: 6379).
fn split_host_port(addr: &str) -> Option<(String, u16)> {
    let addr = addr.trim();
    if addr.is_empty() {
        return None;
    }
    if let Some(rest) = addr.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after {
            "" => REDIS_DEFAULT_PORT,
            p => p.strip_prefix(':')?.parse().ok()?,
        };
        return (!host.is_empty()).then(|| (host.to_owned(), port));
    }
    if addr.parse::<std::net::Ipv6Addr>().is_ok() {
        return Some((addr.to_owned(), REDIS_DEFAULT_PORT));
    }
    match addr.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() => Some((host.to_owned(), port.parse().ok()?)),
        Some(_) => None,
        None => Some((addr.to_owned(), REDIS_DEFAULT_PORT)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_forms() {
        assert_eq!(split_host_port("127.0.0.1:6380"), Some(("127.0.0.1".into(), 6380)));
        assert_eq!(split_host_port("redis"), Some(("redis".into(), 6379)));
        assert_eq!(split_host_port("[::1]:7000"), Some(("::1".into(), 7000)));
        assert_eq!(split_host_port("[::1]"), Some(("::1".into(), 6379)));
        assert_eq!(split_host_port("::1"), Some(("::1".into(), 6379)));
        assert_eq!(split_host_port(""), None);
        assert_eq!(split_host_port(":6379"), None);
        assert_eq!(split_host_port("h:notaport"), None);
        assert_eq!(split_host_port("[::1]x"), None);
    }
}
