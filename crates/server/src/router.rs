//! Routers: where a namespace's route lookups go.
//!
//! A router is either a table (inline routes plus data sources; a reload
//! swaps the whole table, so the next packet sees the new routes and nothing
//! else is disturbed) or a plugin that answers one destination at a time.
//! Plugin answers are cached per (namespace, destination) by
//! [`PluginCache`]: the packet path never waits on the plugin. A miss starts
//! one lookup per destination (concurrent misses join it), holds a few
//! packets until it answers, and drops the rest.

use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use rgost_relay::TunnelId;
use rgost_relay::ip::IpHeader;
use rgost_routing::RouteTable;
use tokio::time::Instant;

use crate::forward::{self, Verdict};
use crate::namespace::Namespace;
use crate::stats::{DropReason, Stats};

/// Answers route lookups one destination at a time (an HTTP plugin).
/// Failures (plugin down, slow, bad answer) are "no route": log them inside.
pub trait RouteResolver: Send + Sync + Debug + 'static {
    /// The gateway host for `dst` in namespace `router_id`, if any.
    fn resolve(&self, dst: IpAddr, router_id: TunnelId) -> Pin<Box<dyn Future<Output = Option<Arc<str>>> + Send>>;
}

/// A router.
#[derive(Debug)]
pub enum Router {
    /// A routing table, replaced as a whole on reload.
    Table(ArcSwap<RouteTable>),
    /// A plugin, with its cache settings.
    Plugin {
        /// The plugin.
        resolver: Arc<dyn RouteResolver>,
        /// How long an answer (also "no route") is reused.
        ttl: Duration,
    },
}

impl Router {
    /// A table router.
    pub fn table(table: RouteTable) -> Router {
        Router::Table(ArcSwap::from_pointee(table))
    }

    /// Replaces a table router's table (a reload); no effect on a plugin.
    pub fn replace(&self, table: RouteTable) {
        if let Router::Table(current) = self {
            current.store(Arc::new(table));
        }
    }
}

/// Packets held per destination while its lookup runs.
pub const MAX_HELD_PER_DESTINATION: usize = 4;
/// Lookups running at once per namespace; misses beyond it are dropped.
pub const MAX_LOOKUPS_IN_FLIGHT: usize = 256;
/// Cached destinations per namespace.
pub const MAX_CACHED: usize = 65_536;

/// A namespace's cache of plugin answers and lookups in flight.
#[derive(Debug)]
pub struct PluginCache {
    resolver: Arc<dyn RouteResolver>,
    ttl: Duration,
    state: Mutex<CacheState>,
}

#[derive(Debug, Default)]
struct CacheState {
    entries: HashMap<IpAddr, Entry>,
    in_flight: usize,
}

#[derive(Debug)]
enum Entry {
    Ready { gateway: Option<Arc<str>>, expires: Instant },
    Pending { held: Vec<Bytes> },
}

/// The result of a cached lookup.
#[derive(Debug)]
pub enum Lookup {
    /// The answer, valid until the instant.
    Ready(Option<Arc<str>>, Instant),
    /// The packet is held until the plugin answers.
    Held,
    /// The packet was dropped (too many held or too many lookups).
    Dropped(DropReason),
}

impl PluginCache {
    /// An empty cache in front of `resolver`.
    pub fn new(resolver: Arc<dyn RouteResolver>, ttl: Duration) -> PluginCache {
        PluginCache { resolver, ttl, state: Mutex::default() }
    }

    /// Looks `dst` up for `packet`. On a miss, starts (or joins) the
    /// destination's lookup and holds a copy of the packet for it.
    pub fn lookup(
        &self,
        namespace: &Arc<Namespace>,
        stats: &Arc<Stats>,
        dst: IpAddr,
        packet: &Bytes,
        now: Instant,
    ) -> Lookup {
        let mut state = self.lock();
        match state.entries.get_mut(&dst) {
            Some(Entry::Ready { gateway, expires }) if *expires > now => {
                return Lookup::Ready(gateway.clone(), *expires);
            }
            Some(Entry::Pending { held }) => {
                if held.len() >= MAX_HELD_PER_DESTINATION {
                    return Lookup::Dropped(DropReason::Unresolved);
                }
                held.push(packet.clone());
                return Lookup::Held;
            }
            _ => {}
        }
        if state.in_flight >= MAX_LOOKUPS_IN_FLIGHT {
            return Lookup::Dropped(DropReason::Unresolved);
        }
        if state.entries.len() >= MAX_CACHED {
            state.entries.retain(|_, e| {
                matches!(e, Entry::Pending { .. }) || matches!(e, Entry::Ready { expires, .. } if *expires > now)
            });
            if state.entries.len() >= MAX_CACHED {
                return Lookup::Dropped(DropReason::Unresolved);
            }
        }
        state.in_flight += 1;
        state.entries.insert(dst, Entry::Pending { held: vec![packet.clone()] });
        drop(state);

        let lookup = self.resolver.resolve(dst, namespace.id);
        let namespace = Arc::clone(namespace);
        let stats = Arc::clone(stats);
        tokio::spawn(async move {
            let gateway = lookup.await;
            let Some(cache) = namespace.plugin() else { return };
            let held = {
                let mut state = cache.lock();
                state.in_flight = state.in_flight.saturating_sub(1);
                let expires = Instant::now() + cache.ttl;
                match state.entries.insert(dst, Entry::Ready { gateway: gateway.clone(), expires }) {
                    Some(Entry::Pending { held }) => held,
                    _ => Vec::new(),
                }
            };
            deliver_held(&namespace, &stats, gateway.as_deref(), held);
        });
        Lookup::Held
    }

    fn lock(&self) -> MutexGuard<'_, CacheState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Sends the packets held for a destination now that its gateway is known.
fn deliver_held(namespace: &Namespace, stats: &Stats, gateway: Option<&str>, held: Vec<Bytes>) {
    let hosts = namespace.hosts();
    for packet in held {
        let Some(gateway) = gateway else {
            stats.drop_packet(DropReason::NoRoute);
            continue;
        };
        let flow = IpHeader::new_checked(&packet[..]).map(|h| h.flow_hash()).unwrap_or(0);
        match forward::to_gateway(&hosts, gateway, flow) {
            Verdict::Deliver(peer) => match peer.tx.try_send(packet) {
                Ok(()) => stats.forwarded(1),
                Err(_) => stats.drop_packet(DropReason::QueueFull),
            },
            Verdict::Drop(reason) => stats.drop_packet(reason),
        }
    }
}

/// A reader's own small cache in front of the shared one, so packets to a
/// known destination take no lock.
#[derive(Debug, Default)]
pub struct LocalCache {
    entries: HashMap<IpAddr, (Option<Arc<str>>, Instant)>,
}

/// Entries a reader keeps before starting over.
const LOCAL_CACHE_MAX: usize = 1024;

impl LocalCache {
    /// A fresh cached answer for `dst`.
    pub fn get(&self, dst: IpAddr, now: Instant) -> Option<Option<Arc<str>>> {
        self.entries.get(&dst).filter(|(_, expires)| *expires > now).map(|(g, _)| g.clone())
    }

    /// Remembers an answer.
    pub fn put(&mut self, dst: IpAddr, gateway: Option<Arc<str>>, expires: Instant) {
        if self.entries.len() >= LOCAL_CACHE_MAX {
            self.entries.clear();
        }
        self.entries.insert(dst, (gateway, expires));
    }
}
