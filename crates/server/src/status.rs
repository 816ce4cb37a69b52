//! Live status of a router service for the web API and `rgost status`:
//! its namespaces, hosts and connections with their counters, who gets a
//! packet for an address right now, and closing one connection.
//!
//! A snapshot walks every connection once, reading its counters (atomics
//! its reader and writer add to once per batch) and its queue's depth; it
//! takes each namespace's host lock for reading, as a batch of packets does.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use rgost_forward::OwnerId;
use rgost_relay::{Status, TunnelId};
use serde::Serialize;

use crate::router::Router;
use crate::service::Service;
use crate::stats::Totals;
use crate::{Peer, Server};

/// A router service now.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceStatus {
    /// Its name.
    pub name: String,
    /// `router`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The listen address, as configured.
    pub addr: String,
    /// When it started (seconds since the Unix epoch).
    pub since: u64,
    /// Connections held now.
    pub connections: usize,
    /// Handshakes by result.
    pub handshakes: Handshakes,
    /// Every counter summed, closed connections included.
    pub totals: Counters,
    /// The namespaces with at least one host.
    pub namespaces: Vec<NamespaceStatus>,
}

/// Handshakes by result.
#[derive(Debug, Clone, Serialize)]
pub struct Handshakes {
    /// Accepted.
    pub accepted: u64,
    /// Refused or failed (malformed, timed out, or answered with an error status).
    pub refused: u64,
    /// Refusals by the status sent (`unauthorized`, `forbidden`, ...).
    pub by_status: BTreeMap<&'static str, u64>,
}

/// Traffic counters.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counters {
    /// Packets read from the client(s).
    pub packets_in: u64,
    /// Their bytes (IP packets).
    pub bytes_in: u64,
    /// Packets written to the client(s).
    pub packets_out: u64,
    /// Their bytes.
    pub bytes_out: u64,
    /// Packets read and queued for another connection.
    pub packets_forwarded: u64,
    /// Packets dropped, by reason (only reasons with drops).
    pub drops: BTreeMap<&'static str, u64>,
}

impl From<&Totals> for Counters {
    fn from(t: &Totals) -> Counters {
        Counters {
            packets_in: t.packets_in,
            bytes_in: t.bytes_in,
            packets_out: t.packets_out,
            bytes_out: t.bytes_out,
            packets_forwarded: t.packets_forwarded,
            drops: t.drop_counts().filter(|(_, n)| *n > 0).collect(),
        }
    }
}

/// One namespace (router id).
#[derive(Debug, Clone, Serialize)]
pub struct NamespaceStatus {
    /// The router id.
    pub router: String,
    /// The router it uses, by name (`None`: no router, every packet is dropped).
    pub router_name: Option<String>,
    /// Whether that is the default router standing in for a router the id does not name.
    pub default_router: bool,
    /// Routes of a table router (`None` for a plugin).
    pub routes: Option<usize>,
    /// Its hosts, by name.
    pub hosts: Vec<HostStatus>,
}

/// One host name in a namespace.
#[derive(Debug, Clone, Serialize)]
pub struct HostStatus {
    /// The host name.
    pub host: String,
    /// Another node holding a newer registration (cluster), if any.
    pub node: Option<String>,
    /// Its connections here, oldest first; the last one receives unless `node` is set.
    pub connections: Vec<ConnectionStatus>,
}

/// One connection.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionStatus {
    /// The connector id it was given.
    pub connector: String,
    /// The client's address.
    pub remote: String,
    /// When it registered (seconds since the Unix epoch).
    pub since: u64,
    /// Whether it receives the host's packets (the others are standbys).
    pub receiving: bool,
    /// Its counters.
    #[serde(flatten)]
    pub counters: Counters,
    /// Packets for it dropped at its queue.
    pub dropped_to: u64,
    /// Packets and bytes queued for it now.
    pub queue: QueueDepth,
    /// Rates over the last few seconds, when the caller measured them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rates: Option<Rates>,
}

/// A queue's depth.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct QueueDepth {
    /// Packets.
    pub packets: usize,
    /// Bytes.
    pub bytes: usize,
}

/// Per-second rates of a connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Rates {
    /// Bits per second read from the client.
    pub bps_in: f64,
    /// Bits per second written to the client.
    pub bps_out: f64,
    /// Packets per second read.
    pub pps_in: f64,
    /// Packets per second written.
    pub pps_out: f64,
}

/// Who gets a packet for an address in a namespace right now.
#[derive(Debug, Clone, Serialize)]
pub struct LookupAnswer {
    /// The router id asked about.
    pub router: String,
    /// The address asked about.
    pub ip: String,
    /// The router the namespace uses, by name.
    pub router_name: Option<String>,
    /// `table`, `plugin` or `none`.
    pub router_kind: &'static str,
    /// The route that matches: its destination (tables only) and gateway host.
    pub route: Option<MatchedRoute>,
    /// The connection that receives for the gateway host here, if one does.
    pub connection: Option<ConnectionRef>,
    /// The other node that holds the gateway host (cluster), if one does.
    pub node: Option<String>,
    /// What happens to the packet, in words.
    pub verdict: String,
}

/// A matched route.
#[derive(Debug, Clone, Serialize)]
pub struct MatchedRoute {
    /// The destination prefix (`None` for a plugin's answer).
    pub dst: Option<String>,
    /// The gateway host.
    pub gateway: String,
}

/// A connection, by its ids.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionRef {
    /// The host name.
    pub host: String,
    /// The connector id.
    pub connector: String,
    /// The client's address.
    pub remote: String,
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The statuses a refusal counter is kept for, with their names.
const STATUSES: [(Status, &str); 8] = [
    (Status::BadRequest, "bad_request"),
    (Status::Unauthorized, "unauthorized"),
    (Status::Forbidden, "forbidden"),
    (Status::Timeout, "timeout"),
    (Status::ServiceUnavailable, "service_unavailable"),
    (Status::HostUnreachable, "host_unreachable"),
    (Status::NetworkUnreachable, "network_unreachable"),
    (Status::InternalServerError, "internal_server_error"),
];

impl Server {
    /// Refusals by status name (every status, zero included).
    pub fn refusals(&self) -> Vec<(&'static str, u64)> {
        STATUSES.iter().map(|(status, name)| (*name, self.stats.refused_with(*status))).collect()
    }

    /// Every namespace with its hosts and connections.
    pub fn namespaces_status(&self) -> Vec<NamespaceStatus> {
        let settings = self.settings();
        let mut out: Vec<NamespaceStatus> = self
            .fabric
            .namespaces()
            .iter()
            .map(|ns| {
                let id = ns.id();
                let router = settings.router_for(&id);
                let mut hosts: BTreeMap<String, HostStatus> = ns
                    .hosts()
                    .into_iter()
                    .map(|info| {
                        let status = HostStatus {
                            host: info.host.to_string(),
                            node: info.node.as_ref().map(ToString::to_string),
                            connections: Vec::new(),
                        };
                        (info.host.to_string(), status)
                    })
                    .collect();
                let mut conns: Vec<(String, u64, ConnectionStatus)> = Vec::new();
                ns.for_each_connection(|host, conn_id, peer| {
                    conns.push((host.to_string(), conn_id, connection_status(peer)));
                });
                // Oldest first, as registered; the newest receives unless another node does.
                conns.sort_by_key(|(_, id, _)| *id);
                for (host, _, conn) in conns {
                    if let Some(h) = hosts.get_mut(&host) {
                        h.connections.push(conn);
                    }
                }
                for h in hosts.values_mut() {
                    let remote_owner = h.node.is_some();
                    let last = h.connections.len().saturating_sub(1);
                    for (i, c) in h.connections.iter_mut().enumerate() {
                        c.receiving = !remote_owner && i == last;
                    }
                }
                NamespaceStatus {
                    router: id.to_string(),
                    router_name: router.map(|(name, _, _)| name.to_owned()),
                    default_router: router.is_some_and(|(_, _, default)| default),
                    routes: router.and_then(|(_, r, _)| r.routes()),
                    hosts: hosts.into_values().collect(),
                }
            })
            .collect();
        out.sort_by(|a, b| a.router.cmp(&b.router));
        out
    }

    /// Closes the connection given `connector` (its reader and writer stop,
    /// its host's standby, if any, receives). `false` when none has that id.
    pub fn close_connection(&self, connector: &TunnelId) -> bool {
        let mut found = false;
        for ns in self.fabric.namespaces() {
            ns.for_each_connection(|host, _, peer| {
                if peer.connector == *connector {
                    tracing::info!(%host, %connector, remote = %peer.remote, "closing the connection (asked through the API)");
                    peer.done.cancel();
                    found = true;
                }
            });
        }
        found
    }

    /// The connection with this connector id: its host and handle.
    fn find_connection(&self, namespace: &TunnelId, conn: u64) -> Option<(String, Peer)> {
        let ns = self.fabric.namespace(namespace)?;
        let mut found = None;
        ns.for_each_connection(|host, id, peer| {
            if id == conn {
                found = Some((host.to_string(), peer.clone()));
            }
        });
        found
    }

    /// Who gets a packet for `ip` in namespace `router` now: the route that
    /// matches and the connection receiving for its gateway. A plugin
    /// router is asked (as a packet would make it).
    pub async fn lookup(&self, router: TunnelId, ip: IpAddr) -> LookupAnswer {
        let settings = self.settings();
        let chosen = settings.router_for(&router).map(|(name, r, _)| (name.to_owned(), std::sync::Arc::clone(r)));
        drop(settings);
        let mut answer = LookupAnswer {
            router: router.to_string(),
            ip: ip.to_string(),
            router_name: chosen.as_ref().map(|(name, _)| name.clone()),
            router_kind: "none",
            route: None,
            connection: None,
            node: None,
            verdict: String::new(),
        };
        let Some((_, chosen)) = chosen else {
            answer.verdict =
                "dropped (no_route): no router is named by this router id and there is no default router".to_owned();
            return answer;
        };
        let gateway = match &*chosen {
            Router::Table(table) => {
                answer.router_kind = "table";
                let table = table.load();
                table.lookup_route(ip).map(|(dst, gateway)| (Some(dst.to_string()), gateway.to_string()))
            }
            Router::Plugin { resolver, .. } => {
                answer.router_kind = "plugin";
                resolver.resolve(ip, router).await.map(|gateway| (None, gateway.to_string()))
            }
        };
        let Some((dst, gateway)) = gateway else {
            answer.verdict = "dropped (no_route): no route matches".to_owned();
            return answer;
        };
        answer.route = Some(MatchedRoute { dst, gateway: gateway.clone() });
        let owner = self.fabric.namespace(&router).and_then(|ns| ns.owner(&gateway));
        match owner {
            Some(OwnerId::Local(conn)) => {
                if let Some((host, peer)) = self.find_connection(&router, conn) {
                    answer.verdict = format!("delivered to {host} (connection {})", peer.connector);
                    answer.connection = Some(ConnectionRef {
                        host,
                        connector: peer.connector.to_string(),
                        remote: peer.remote.to_string(),
                    });
                }
            }
            Some(OwnerId::Node(node)) => {
                answer.verdict = format!("forwarded to node {node}, where {gateway} is connected");
                answer.node = Some(node.to_string());
            }
            None => {}
        }
        if answer.verdict.is_empty() {
            answer.verdict = format!("dropped (no_host): {gateway} is not connected in this namespace");
        }
        answer
    }
}

fn connection_status(peer: &Peer) -> ConnectionStatus {
    let totals = peer.stats.totals();
    let (packets, bytes) = peer.queue.depth();
    ConnectionStatus {
        connector: peer.connector.to_string(),
        remote: peer.remote.to_string(),
        since: unix(peer.stats.since),
        receiving: false,
        counters: Counters::from(&totals),
        dropped_to: totals.dropped_to,
        queue: QueueDepth { packets, bytes },
        rates: None,
    }
}

impl Service {
    /// The service's status now.
    pub fn status(&self) -> ServiceStatus {
        let server = self.server();
        let stats = server.stats();
        let config = self.config();
        ServiceStatus {
            name: self.name().to_owned(),
            kind: "router",
            addr: config.listen.to_string(),
            since: unix(server.started()),
            connections: server.connections_now(),
            handshakes: Handshakes {
                accepted: stats.accepted_total(),
                refused: stats.refused_total(),
                by_status: server.refusals().into_iter().filter(|(_, n)| *n > 0).collect(),
            },
            totals: Counters::from(&server.totals()),
            namespaces: server.namespaces_status(),
        }
    }
}
