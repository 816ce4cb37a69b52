//! A running router service whose settings can be replaced while it runs
//! (SIGHUP, or a change through the web API).
//!
//! Routers, ingresses, authers and their data sources are rebuilt from the
//! new config and swapped in whole, as a source reload swaps a table:
//! connections stay and the next packet or handshake sees the change. What
//! cannot change while the service runs (its listener, connection limits,
//! the service's byte budget) is reported as needing a restart, and the
//! rest is applied. A config that cannot be built changes nothing.

use std::sync::{Arc, Mutex, MutexGuard};

use rgost_config::{Config, RouterService};
use rgost_transport::Listener;
use tokio_util::sync::CancellationToken;

use crate::build::{self, BuildError, Hooks};
use crate::events::Events;
use crate::{Server, ServerError, Settings};

/// A router service: its server, the config it runs and the data-source
/// reloaders of its current settings.
#[derive(Debug)]
pub struct Service {
    name: String,
    server: Arc<Server>,
    state: Mutex<State>,
    shutdown: CancellationToken,
    hooks: Hooks,
}

#[derive(Debug)]
struct State {
    config: RouterService,
    /// Cancels the reloaders of the settings in force.
    generation: CancellationToken,
}

/// What a reload did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Changes that were not applied: each says what needs a restart.
    pub need_restart: Vec<String>,
}

impl Service {
    /// Binds the listener and builds the settings (loading data sources once);
    /// nothing runs until [`Service::serve`]. Connections coming and going
    /// and route changes are reported on `events`.
    pub async fn start(
        name: &str,
        service: &RouterService,
        config: &Config,
        shutdown: &CancellationToken,
        events: &Events,
    ) -> Result<(Arc<Service>, Listener), StartError> {
        let listener = crate::bind(service)?;
        let generation = shutdown.child_token();
        let hooks = Hooks { events: events.clone(), meters: Arc::default() };
        let settings = build::settings_with(name, service, config, &generation, &hooks).await?;
        let server = match &service.cluster {
            Some(cluster) => Server::clustered(settings, hooks.clone(), cluster, shutdown).await?,
            None => Server::with_hooks(settings, hooks.clone()),
        };
        let service = Arc::new(Service {
            name: name.to_owned(),
            server,
            state: Mutex::new(State { config: service.clone(), generation }),
            shutdown: shutdown.clone(),
            hooks,
        });
        Ok((service, listener))
    }

    /// Serves `listener` until shutdown.
    pub async fn serve(self: Arc<Self>, listener: Listener) {
        Arc::clone(&self.server).serve(listener, self.shutdown.clone()).await;
    }

    /// The service's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The server.
    pub fn server(&self) -> &Arc<Server> {
        &self.server
    }

    /// The router service config in force.
    pub fn config(&self) -> RouterService {
        self.lock().config.clone()
    }

    /// Applies `service` (from the whole `config`): routers, ingress,
    /// authers, their sources and plugins, and the handler's settings are
    /// rebuilt and swapped in; connections stay. On an error nothing changes.
    pub async fn reload(&self, service: &RouterService, config: &Config) -> Result<Applied, BuildError> {
        Ok(self.prepare(service, config).await?.commit())
    }

    /// Builds the settings of `service` (from the whole `config`), loading
    /// data sources, without putting them in force: see [`Prepared::commit`].
    /// Several services prepared first and committed together change all or
    /// nothing.
    pub async fn prepare(&self, service: &RouterService, config: &Config) -> Result<Prepared<'_>, BuildError> {
        let generation = self.shutdown.child_token();
        match build::settings_with(&self.name, service, config, &generation, &self.hooks).await {
            Ok(settings) => Ok(Prepared {
                service: self,
                config: service.clone(),
                whole: config.clone(),
                settings: Some(settings),
                generation: Some(generation),
            }),
            Err(e) => {
                generation.cancel();
                Err(e)
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Settings built by [`Service::prepare`], not yet in force. Dropped
/// without [`Prepared::commit`], they change nothing (their data-source
/// reloaders stop).
#[derive(Debug)]
pub struct Prepared<'a> {
    service: &'a Service,
    config: RouterService,
    whole: Config,
    settings: Option<Settings>,
    generation: Option<CancellationToken>,
}

impl Prepared<'_> {
    /// Puts the settings in force: the next packet and the next handshake
    /// see them; connections stay. Says what needs a restart.
    pub fn commit(mut self) -> Applied {
        let this = self.service;
        let (Some(settings), Some(generation)) = (self.settings.take(), self.generation.take()) else {
            return Applied::default();
        };
        let mut state = this.lock();
        let applied = Applied { need_restart: fixed_changes(&state.config, &self.config) };
        this.server.reload(settings);
        let old = std::mem::replace(&mut state.generation, generation);
        old.cancel();
        this.hooks.meters.retain(&self.whole);
        // What runs is the new config, except what needs a restart.
        let mut running = self.config.clone();
        running.listen = state.config.listen;
        running.listener = state.config.listener.clone();
        running.keepalive = state.config.keepalive;
        running.limits.max_connections = state.config.limits.max_connections;
        running.limits.max_connections_per_ip = state.config.limits.max_connections_per_ip;
        running.limits.server_queue_bytes = state.config.limits.server_queue_bytes;
        state.config = running;
        applied
    }
}

impl Drop for Prepared<'_> {
    fn drop(&mut self) {
        // Not committed: stop the reloaders these settings started.
        if let Some(generation) = self.generation.take() {
            generation.cancel();
        }
    }
}

/// Why a service could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// Its listener.
    #[error(transparent)]
    Bind(#[from] ServerError),
    /// Its routers, ingress or authers.
    #[error(transparent)]
    Build(#[from] BuildError),
}

/// What changed between `old` and `new` that a running service cannot apply.
fn fixed_changes(old: &RouterService, new: &RouterService) -> Vec<String> {
    let mut out = Vec::new();
    let mut note = |changed: bool, what: &str| {
        if changed {
            out.push(format!("{what} changed: restart to apply it"));
        }
    };
    note(old.listen != new.listen, "the listen address (addr)");
    note(old.listener != new.listener, "the listener (type, tls, path)");
    note(old.keepalive != new.keepalive, "keepAlivePeriod or userTimeout");
    note(old.limits.max_connections != new.limits.max_connections, "maxConnections");
    note(old.limits.max_connections_per_ip != new.limits.max_connections_per_ip, "maxConnectionsPerIP");
    note(old.limits.server_queue_bytes != new.limits.server_queue_bytes, "serverQueueBytes");
    out
}
