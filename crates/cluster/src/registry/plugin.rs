//! GOST's SD HTTP plugin as the registry.
//!
//! Each connection is registered as GOST registers it (`POST`, `id` the
//! connector id, `name` `host@router-id`, `node` this node's id, `address`
//! its link address), renewed every `sd.renewInterval` (`PUT`) and
//! deregistered when it closes (`DELETE`). A host this node does not know
//! is looked up (`GET ?name=host@router-id`); the first service of another
//! node is where its packets go, for `sd.cache.expiration`, after which it
//! is asked again (while the host is in use, without holding its packets).
//!
//! The protocol has no order between registrations and no pushed changes:
//! a host with a connection here is delivered here (as in GOST), and a move
//! is seen within the cache expiration. Redis, rgost's engine, has both.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use rgost_config::PluginConfig;
use rgost_forward::ConnId;
use rgost_sources::{SdPlugin, SdService};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::mirror::{Key, Mirror, Record};
use crate::{Deliver, Event, Inner};

/// Requests in flight at once.
const CONCURRENCY: usize = 32;
/// Hosts asked again per refresh.
const REFRESH_MAX: usize = 1024;
/// What rgost registers as the network: its node link (GOST's nodes use UDP).
const NETWORK: &str = "tcp";

/// One of this node's connections, as registered.
#[derive(Debug, Clone)]
struct Registered {
    service: SdService,
    /// Whether the plugin accepted it (otherwise it is registered again at the next renewal).
    done: bool,
}

/// The SD plugin registry of one node.
pub(crate) struct Registry<C> {
    inner: Arc<Inner<C>>,
    plugin: SdPlugin,
    conns: HashMap<ConnId, Registered>,
    mirror: Mirror,
    /// Versions for answers, so that a later answer wins.
    ver: u64,
    /// Whether the last request failed (failures are logged once per streak).
    failing: bool,
}

impl<C> std::fmt::Debug for Registry<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("conns", &self.conns.len()).finish_non_exhaustive()
    }
}

/// `host@router-id`, GOST's service name for a connection.
fn name(key: &Key) -> String {
    format!("{}@{}", key.1, key.0)
}

impl<C: Deliver> Registry<C> {
    /// A registry speaking to the plugin at `config`.
    pub(crate) fn new(inner: Arc<Inner<C>>, config: &PluginConfig) -> Result<Self, String> {
        let plugin = SdPlugin::new(config).map_err(|e| e.to_string())?;
        Ok(Registry { inner, plugin, conns: HashMap::new(), mirror: Mirror::new(), ver: 0, failing: false })
    }

    /// Runs until `shutdown`, then deregisters this node's connections.
    pub(crate) async fn run(mut self, mut events: UnboundedReceiver<Event>, shutdown: CancellationToken) {
        let mut renew = tokio::time::interval(self.inner.settings.renew_interval);
        renew.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut refresh = tokio::time::interval(self.inner.settings.cache_expiration);
        refresh.set_missed_tick_behavior(MissedTickBehavior::Delay);
        self.inner.stats.registry_up(true);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => {
                    let all: Vec<SdService> = self.conns.drain().map(|(_, r)| r.service).collect();
                    let plugin = self.plugin.clone();
                    let work = futures_util::stream::iter(all)
                        .for_each_concurrent(CONCURRENCY, |s| {
                            let plugin = plugin.clone();
                            async move {
                                let _ = plugin.deregister(&s).await;
                            }
                        });
                    let _ = tokio::time::timeout(Duration::from_secs(2), work).await;
                    return;
                }
                event = events.recv() => {
                    let Some(event) = event else { return };
                    let mut batch = vec![event];
                    while let Ok(event) = events.try_recv() {
                        batch.push(event);
                    }
                    self.handle(batch).await;
                }
                _ = renew.tick() => self.renew().await,
                _ = refresh.tick() => self.refresh().await,
            }
        }
    }

    async fn handle(&mut self, batch: Vec<Event>) {
        let mut register = Vec::new();
        let mut deregister = Vec::new();
        let mut lookups = Vec::new();
        for event in batch {
            match event {
                Event::Registered(key, conn) => {
                    let service = SdService {
                        id: conn.connector.clone(),
                        name: name(&key),
                        node: self.inner.node.to_string(),
                        network: NETWORK.to_owned(),
                        address: self.inner.advertise.to_string(),
                    };
                    self.conns.insert(conn.id, Registered { service, done: false });
                    register.push(conn.id);
                }
                Event::Unregistered(_, id) => {
                    if let Some(registered) = self.conns.remove(&id) {
                        deregister.push(registered.service);
                    }
                }
                Event::Lookup(key) => {
                    self.inner.stats.lookup();
                    lookups.push(key);
                }
            }
        }
        let services: Vec<(ConnId, SdService)> =
            register.into_iter().filter_map(|id| self.conns.get(&id).map(|r| (id, r.service.clone()))).collect();
        let plugin = self.plugin.clone();
        let plugin = &plugin;
        let results: Vec<(ConnId, bool)> = futures_util::stream::iter(services)
            .map(|(id, s)| async move { (id, matches!(plugin.register(&s).await, Ok(true))) })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        for (id, ok) in results {
            self.outcome(ok);
            if let Some(registered) = self.conns.get_mut(&id) {
                registered.done = ok;
            }
            if ok {
                self.inner.stats.written(1);
            }
        }
        let results: Vec<bool> = futures_util::stream::iter(deregister)
            .map(|s| async move { matches!(plugin.deregister(&s).await, Ok(true)) })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        for ok in results {
            self.outcome(ok);
        }
        self.ask(lookups, true).await;
    }

    /// Renews every registration (registering again the ones that failed).
    async fn renew(&mut self) {
        let all: Vec<(ConnId, Registered)> = self.conns.iter().map(|(id, r)| (*id, r.clone())).collect();
        let plugin = self.plugin.clone();
        let plugin = &plugin;
        let results: Vec<(ConnId, bool)> = futures_util::stream::iter(all)
            .map(|(id, r)| async move {
                let ok = if r.done { plugin.renew(&r.service).await } else { plugin.register(&r.service).await };
                (id, matches!(ok, Ok(true)))
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        for (id, ok) in results {
            self.outcome(ok);
            if let Some(registered) = self.conns.get_mut(&id) {
                registered.done = ok;
            }
        }
    }

    /// Asks again where the known remote hosts are.
    async fn refresh(&mut self) {
        let mut keys = self.mirror.keys();
        keys.truncate(REFRESH_MAX);
        self.ask(keys, false).await;
        self.inner.stats.remote_hosts(self.mirror.len());
    }

    /// Looks `keys` up; with `held`, packets wait for these answers.
    async fn ask(&mut self, keys: Vec<Key>, held: bool) {
        if keys.is_empty() {
            return;
        }
        let plugin = self.plugin.clone();
        let plugin = &plugin;
        let me = Arc::clone(&self.inner.node);
        let answers: Vec<(Key, Result<Option<SdService>, ()>)> = futures_util::stream::iter(keys)
            .map(|key| {
                let me = Arc::clone(&me);
                async move {
                    let answer = plugin.get(&name(&key)).await.map_err(|e| {
                        tracing::debug!(host = %key.1, router = %key.0, error = %e, "sd plugin lookup failed");
                    });
                    let other = answer.map(|services| {
                        services.into_iter().find(|s| s.node != *me && !s.node.is_empty() && !s.address.is_empty())
                    });
                    (key, other)
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let now = Instant::now();
        for (key, answer) in answers {
            self.outcome(answer.is_ok());
            let apply = match answer {
                Ok(Some(service)) => {
                    self.ver += 1;
                    // Every node of another node ranks alike (number 0): a local
                    // connection, whose number is never known here, wins.
                    let record = Record {
                        node: Arc::from(service.node.as_str()),
                        seq: 0,
                        ver: self.ver,
                        addr: Arc::from(service.address.as_str()),
                    };
                    // One node per host: the one the plugin names now.
                    let mut applies: Vec<_> = self.mirror.forget(&key).into_iter().collect();
                    applies.extend(self.mirror.set(key.clone(), record, now));
                    applies
                }
                Ok(None) => self.mirror.forget(&key).into_iter().collect(),
                // The plugin failed: keep what is known.
                Err(()) => Vec::new(),
            };
            self.inner.apply(apply);
            if held {
                let found = self.mirror.best(&key).is_some();
                self.inner.answered(&key, found);
            }
        }
    }

    fn outcome(&mut self, ok: bool) {
        if ok != self.failing {
            return;
        }
        self.failing = !ok;
        self.inner.stats.registry_up(ok);
        if ok {
            tracing::info!("sd plugin works again");
        } else {
            self.inner.stats.registry_error();
            tracing::warn!("sd plugin failed: forwarding with what is known; retrying at each renewal");
        }
    }
}
