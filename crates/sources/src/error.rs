//! Error types; every message names the source or plugin it is about.

use std::error::Error as StdError;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

/// Why one data source could not be read. The message names the source
/// (`file PATH`, `http URL`, `redis ADDR key KEY`) and the cause.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The file could not be read.
    #[error("file {}: {}", path.display(), error)]
    File {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The file is not UTF-8 text.
    #[error("file {}: not valid UTF-8", path.display())]
    FileNotUtf8 {
        /// The file.
        path: PathBuf,
    },
    /// The HTTP client could not be built (TLS backend initialisation).
    #[error("http {url}: cannot build client: {}", chain(error))]
    HttpClient {
        /// The source URL.
        url: String,
        /// The client error.
        error: reqwest::Error,
    },
    /// The request failed: bad URL, connect, TLS, transfer.
    #[error("http {url}: {}", chain(error))]
    Http {
        /// The source URL.
        url: String,
        /// The request error.
        error: reqwest::Error,
    },
    /// No complete answer within the source's timeout.
    #[error("http {url}: timed out after {timeout:?}")]
    HttpTimeout {
        /// The source URL.
        url: String,
        /// The configured timeout.
        timeout: Duration,
    },
    /// The server answered with a status other than 200.
    #[error("http {url}: status {status}")]
    HttpStatus {
        /// The source URL.
        url: String,
        /// The HTTP status code.
        status: u16,
    },
    /// The body is larger than [`SOURCE_BODY_LIMIT`](crate::SOURCE_BODY_LIMIT).
    #[error("http {url}: body larger than {limit} bytes")]
    HttpBodyTooLarge {
        /// The source URL.
        url: String,
        /// The limit.
        limit: usize,
    },
    /// The body is not UTF-8 text.
    #[error("http {url}: body is not valid UTF-8")]
    HttpNotUtf8 {
        /// The source URL.
        url: String,
    },
    /// `addr` is not `host:port` (or `host`).
    #[error("redis {addr} key {key}: invalid address, expected host:port")]
    RedisAddr {
        /// The configured address.
        addr: String,
        /// The configured key.
        key: String,
    },
    /// Connecting or the command took longer than [`REDIS_TIMEOUT`](crate::REDIS_TIMEOUT).
    #[error("redis {addr} key {key}: timed out after {timeout:?}")]
    RedisTimeout {
        /// The configured address.
        addr: String,
        /// The configured key.
        key: String,
        /// The timeout that expired.
        timeout: Duration,
    },
    /// Connecting, authenticating, selecting the db or the command failed
    /// (including WRONGTYPE when the key holds another type).
    #[error("redis {addr} key {key}: {}", chain(error))]
    Redis {
        /// The configured address.
        addr: String,
        /// The configured key.
        key: String,
        /// The redis error.
        error: redis::RedisError,
    },
    /// The source was read but holds no entry its user can take (an empty
    /// or truncated file, only comments or malformed lines, only invalid
    /// addresses, a missing redis key). Treated as a failure: its last good
    /// entries stay, so a broken write never empties a router.
    #[error("{source_name}: no valid entry ({entries} entries read, {bad} lines skipped)")]
    NoValidEntry {
        /// The source, as the other errors name it (`file PATH`, `redis ADDR key KEY`, `http URL`).
        source_name: String,
        /// Well-formed entries read (none of them valid).
        entries: usize,
        /// Lines skipped as malformed.
        bad: usize,
    },
}

impl SourceError {
    /// Whether the failure is a timeout.
    pub fn is_timeout(&self) -> bool {
        match self {
            Self::HttpTimeout { .. } | Self::RedisTimeout { .. } => true,
            Self::Http { error, .. } => error.is_timeout(),
            Self::Redis { error, .. } => error.is_timeout(),
            _ => false,
        }
    }
}

/// Why a plugin call failed (as opposed to the plugin answering "no").
/// The message names the plugin by its configured address.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    /// `addr` is not an absolute http(s) URL.
    #[error("plugin {addr}: invalid URL: {reason}")]
    InvalidAddr {
        /// The configured address.
        addr: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A TLS file (`caFile`, `certFile`, `keyFile`) could not be read.
    #[error("plugin {addr}: reading {}: {}", path.display(), error)]
    TlsFile {
        /// The configured address.
        addr: String,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The TLS settings are unusable (bad PEM, key without certificate, ...),
    /// or the client could not be built.
    #[error("plugin {addr}: TLS settings: {}", chain(error))]
    Tls {
        /// The configured address.
        addr: String,
        /// The client error.
        error: reqwest::Error,
    },
    /// `certFile` and `keyFile` must be given together.
    #[error("plugin {addr}: certFile and keyFile must be given together")]
    TlsIdentityIncomplete {
        /// The configured address.
        addr: String,
    },
    /// No complete answer within the plugin's timeout.
    #[error("plugin {addr}: timed out after {timeout:?}")]
    Timeout {
        /// The configured address.
        addr: String,
        /// The configured timeout.
        timeout: Duration,
    },
    /// The request failed: connect, TLS handshake, transfer.
    #[error("plugin {addr}: {}", chain(error))]
    Request {
        /// The configured address.
        addr: String,
        /// The request error (without the URL, which may carry user data).
        error: reqwest::Error,
    },
    /// The answer is larger than [`PLUGIN_BODY_LIMIT`](crate::PLUGIN_BODY_LIMIT).
    #[error("plugin {addr}: response larger than {limit} bytes")]
    TooLarge {
        /// The configured address.
        addr: String,
        /// The limit.
        limit: usize,
    },
    /// An answer other than 200 where only 200 means success (an observer).
    #[error("plugin {addr}: status {status}")]
    Status {
        /// The configured address.
        addr: String,
        /// The HTTP status code.
        status: u16,
    },
    /// A 200 answer that says the call did not succeed (`"ok": false`).
    #[error("plugin {addr}: answered ok: false")]
    NotOk {
        /// The configured address.
        addr: String,
    },
    /// A 200 answer whose body is not the expected JSON.
    #[error("plugin {addr}: invalid JSON response: {error}")]
    Decode {
        /// The configured address.
        addr: String,
        /// The JSON error.
        error: serde_json::Error,
    },
}

/// Renders an error and its causes as `outer: inner: innermost`, skipping
/// causes whose text the outer message already contains.
fn chain(error: &(dyn StdError + 'static)) -> String {
    let mut out = error.to_string();
    let mut cur = error.source();
    while let Some(cause) = cur {
        let text = cause.to_string();
        if !out.contains(&text) {
            let _ = write!(out, ": {text}");
        }
        cur = cause.source();
    }
    out
}
