//! Routers: where a namespace's route lookups go.
//!
//! A router is either a table (inline routes plus data sources; a reload
//! swaps the whole table, so the next packet sees the new routes and nothing
//! else is disturbed) or a plugin that answers one address at a time. The
//! forwarding core caches plugin answers per (namespace, address) and holds
//! the few packets that wait for one; this module only asks the plugin.

use std::fmt::Debug;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use rgost_forward::Plugin;
use rgost_relay::TunnelId;
use rgost_routing::RouteTable;

/// Answers route lookups one address at a time (an HTTP plugin).
/// Failures (plugin down, slow, bad answer) are "no route": log them inside.
pub trait RouteResolver: Send + Sync + Debug + 'static {
    /// The gateway host for `addr` in namespace `router_id`, if any.
    fn resolve(&self, addr: IpAddr, router_id: TunnelId) -> Pin<Box<dyn Future<Output = Option<Arc<str>>> + Send>>;
}

/// A router.
#[derive(Debug)]
pub enum Router {
    /// A routing table, replaced as a whole on reload.
    Table(ArcSwap<RouteTable>),
    /// A plugin.
    Plugin {
        /// The plugin.
        resolver: Arc<dyn RouteResolver>,
        /// Identifies this router to the core's answer caches, and how long an answer is reused.
        plugin: Plugin,
    },
}

/// Plugin router keys: unique per process, so a namespace whose router is
/// replaced never reuses the old router's answers.
static NEXT_PLUGIN_KEY: AtomicU64 = AtomicU64::new(1);

impl Router {
    /// A table router.
    pub fn table(table: RouteTable) -> Router {
        Router::Table(ArcSwap::from_pointee(table))
    }

    /// A plugin router whose answers (also "no route") are reused for `ttl`.
    pub fn plugin(resolver: Arc<dyn RouteResolver>, ttl: Duration) -> Router {
        Router::Plugin { resolver, plugin: Plugin { key: NEXT_PLUGIN_KEY.fetch_add(1, Ordering::Relaxed), ttl } }
    }

    /// Replaces a table router's table (a reload); no effect on a plugin.
    pub fn replace(&self, table: RouteTable) {
        if let Router::Table(current) = self {
            current.store(Arc::new(table));
        }
    }

    /// The number of routes of a table router (`None` for a plugin).
    pub fn routes(&self) -> Option<usize> {
        match self {
            Router::Table(table) => Some(table.load().len()),
            Router::Plugin { .. } => None,
        }
    }
}
