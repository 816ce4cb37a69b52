//! Changes an operator may watch live (the web API's `/events`): a
//! connection registering or leaving, a data source changing a router's
//! routes, a config reload.
//!
//! One bus serves every router service of the process. Sending costs
//! nothing while nobody listens (no event is even built), and a listener
//! that falls behind loses the oldest events rather than slowing anyone.

use std::net::SocketAddr;
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::broadcast;

/// Events kept for a listener that falls behind.
const CAPACITY: usize = 1024;

/// One change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// A connection registered a host name.
    HostUp {
        /// The router service.
        service: String,
        /// The namespace (router id).
        router: String,
        /// The host name.
        host: String,
        /// The connection's connector id.
        connector: String,
        /// The client's address.
        remote: String,
        /// The host's connections here now (more than one: the older ones are standbys).
        connections: usize,
    },
    /// A connection closed.
    HostDown {
        /// The router service.
        service: String,
        /// The namespace (router id).
        router: String,
        /// The host name.
        host: String,
        /// The connection's connector id.
        connector: String,
        /// The client's address.
        remote: String,
        /// Whether the host has no connection left here.
        gone: bool,
    },
    /// A data source changed a router's routes.
    RouteChange {
        /// The router service.
        service: String,
        /// The router's name.
        router: String,
        /// Its routes now.
        routes: usize,
    },
    /// The config was reloaded (SIGHUP, or a change through the web API).
    Reload {
        /// What asked for it: `sighup` or `api`.
        by: String,
        /// Whether the new config was applied.
        applied: bool,
        /// Why it was refused, when it was.
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// Changes that were not applied and need a restart.
        need_restart: Vec<String>,
    },
}

impl Event {
    /// The event's type, as in its JSON (`host_up`, ...): the SSE event name.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::HostUp { .. } => "host_up",
            Event::HostDown { .. } => "host_down",
            Event::RouteChange { .. } => "route_change",
            Event::Reload { .. } => "reload",
        }
    }
}

/// The bus. Clones send to the same listeners.
#[derive(Debug, Clone)]
pub struct Events {
    tx: broadcast::Sender<Arc<Event>>,
}

impl Default for Events {
    fn default() -> Self {
        Events { tx: broadcast::channel(CAPACITY).0 }
    }
}

impl Events {
    /// A bus nobody listens to yet.
    pub fn new() -> Events {
        Events::default()
    }

    /// Listens from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }

    /// Whether anybody listens (so an event is worth building).
    pub fn listened(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    /// Sends the event `make` builds, if anybody listens.
    pub fn send_with(&self, make: impl FnOnce() -> Event) {
        if self.listened() {
            // No listener left meanwhile is fine: the event is simply dropped.
            let _ = self.tx.send(Arc::new(make()));
        }
    }

    pub(crate) fn host_up(
        &self,
        service: &str,
        router: rgost_relay::TunnelId,
        host: &str,
        connector: rgost_relay::TunnelId,
        remote: SocketAddr,
        connections: usize,
    ) {
        self.send_with(|| Event::HostUp {
            service: service.to_owned(),
            router: router.to_string(),
            host: host.to_owned(),
            connector: connector.to_string(),
            remote: remote.to_string(),
            connections,
        });
    }

    pub(crate) fn host_down(
        &self,
        service: &str,
        router: rgost_relay::TunnelId,
        host: &str,
        connector: rgost_relay::TunnelId,
        remote: SocketAddr,
        gone: bool,
    ) {
        self.send_with(|| Event::HostDown {
            service: service.to_owned(),
            router: router.to_string(),
            host: host.to_owned(),
            connector: connector.to_string(),
            remote: remote.to_string(),
            gone,
        });
    }
}

impl crate::Server {
    /// Reports a registration (when anybody listens).
    pub(crate) fn announce_up(
        &self,
        service: &str,
        reg: &rgost_forward::Registration<crate::Peer>,
        connector: rgost_relay::TunnelId,
        remote: SocketAddr,
    ) {
        let events = self.events();
        if events.listened() {
            let id = reg.namespace.id();
            let connections = self.fabric().connections(&id, &reg.host);
            events.host_up(service, id, &reg.host, connector, remote, connections);
        }
    }

    /// Reports a connection gone (when anybody listens).
    pub(crate) fn announce_down(
        &self,
        reg: &rgost_forward::Registration<crate::Peer>,
        connector: rgost_relay::TunnelId,
        remote: SocketAddr,
        gone: bool,
    ) {
        let events = self.events();
        if events.listened() {
            let service = self.settings().service.clone();
            events.host_down(&service, reg.namespace.id(), &reg.host, connector, remote, gone);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn events_reach_listeners_and_cost_nothing_without() {
        let events = Events::new();
        let mut built = false;
        events.send_with(|| {
            built = true;
            Event::RouteChange { service: "s".into(), router: "r".into(), routes: 1 }
        });
        assert!(!built, "no listener: the event is not built");
        let mut rx = events.subscribe();
        events.send_with(|| Event::RouteChange { service: "s".into(), router: "r".into(), routes: 2 });
        let event = rx.recv().await.unwrap();
        assert_eq!(event.kind(), "route_change");
        assert_eq!(
            serde_json::to_value(&*event).unwrap(),
            serde_json::json!({"type": "route_change", "service": "s", "router": "r", "routes": 2})
        );
    }
}
