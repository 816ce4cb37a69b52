//! Where routers, ingresses and authers get their entries besides the inline
//! config, and GOST's HTTP plugin protocol.
//!
//! - [`parse_lines`]: GOST's data-source line format (`key value`, `#` comments);
//!   [`parse_keyed_lines`] for limit lines (`key value...`).
//! - [`Fetcher`] / [`fetch`]: read the file, redis and http sources of a
//!   [`Sources`](rgost_config::Sources) block, each independently.
//! - [`merge`]: combine them with the priority http > redis > file > inline.
//! - [`Reloader`] / [`spawn_reloader`]: load at start, re-read every `reload`
//!   period, keep each source's last good data when it fails, and hand the
//!   merged entries to the caller only when they changed.
//! - [`RouterPlugin`], [`IngressPlugin`], [`AuthPlugin`], [`LimiterPlugin`],
//!   [`ObserverPlugin`], [`SdPlugin`]: HTTP plugin clients.
//!
//! Nothing here knows about tunnels, sockets or TUN devices; keys and values
//! are plain strings that the caller interprets (and normalises).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod body;
mod error;
mod fetch;
mod lines;
mod merge;
mod plugin;
mod reload;
mod stats;

pub use error::{PluginError, SourceError};
pub use fetch::{FetchResult, Fetched, Fetcher, REDIS_TIMEOUT, SOURCE_BODY_LIMIT, fetch};
pub use lines::{BadLine, LineFormat, Parsed, parse_keyed_lines, parse_lines};
pub use merge::merge;
pub use plugin::{
    AuthPlugin, IngressPlugin, LimitQuery, LimiterPlugin, ObserverEvent, ObserverPlugin, ObserverStats,
    PLUGIN_BODY_LIMIT, RouterPlugin, SdPlugin, SdService,
};
pub use reload::{InitialLoad, Reloader, spawn_reloader};
pub use stats::{ReloadStats, SOURCE_KINDS, SourceCounts};

/// One entry: a key and its value (`dst gateway`, `hostname endpoint`,
/// `username password`).
pub type Entry = (String, String);
