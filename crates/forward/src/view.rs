//! The per-packet decision: given a packet, its sender and a namespace's
//! current tables, what the connection code must do with it.

use std::cell::Cell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLockReadGuard};
use std::time::Instant;

use bytes::Bytes;
use rgost_routing::RouteTable;

use crate::hosts::{HostEntry, Namespace, NodeId, Owner};
use crate::lookup::{Held, Known, Plugin, ReaderCache};
use crate::{ConnId, DropReason, packet};

/// Where a namespace's routes come from, for one batch of packets.
#[derive(Debug, Clone, Copy)]
pub enum Routes<'a> {
    /// No router: every packet has no route.
    None,
    /// A route table (a snapshot: reloads swap whole tables between batches).
    Table(&'a RouteTable),
    /// A plugin, asked one address at a time through the namespace's cache.
    Plugin(Plugin),
}

/// What to do with one packet.
#[derive(Debug, PartialEq, Eq)]
pub enum Action<'v, C> {
    /// Queue it on this local connection.
    Deliver(ConnId, &'v C),
    /// Send it to the node the host is connected to, naming the host.
    Forward {
        /// The node.
        node: &'v NodeId,
        /// The destination host on that node.
        host: &'v Arc<str>,
    },
    /// Start a plugin lookup for each address in `start` and report each
    /// answer with [`Namespace::answered`]. The core holds the packet until
    /// the answer it needs is known (`dropped` is `None`), or the packet is
    /// dropped for the reason given.
    Pending {
        /// Lookups to start (none when the ones needed already run).
        start: Lookups,
        /// Why the packet was dropped, if it is not held.
        dropped: Option<DropReason>,
    },
    /// The route's host is not known here: ask the cluster where it is
    /// (only from a view with [`View::remote_lookups`] on; otherwise such a
    /// packet is dropped with [`DropReason::NoHost`]).
    Lookup {
        /// The host to look up.
        host: Arc<str>,
    },
    /// Drop it.
    Drop(DropReason),
}

/// Addresses whose plugin lookups the caller must start (at most two: the
/// source and the destination of one packet).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Lookups {
    addrs: [Option<IpAddr>; 2],
}

impl Lookups {
    fn push(&mut self, addr: IpAddr) {
        if let Some(slot) = self.addrs.iter_mut().find(|a| a.is_none()) {
            *slot = Some(addr);
        }
    }

    /// The addresses to look up.
    pub fn iter(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.addrs.iter().flatten().copied()
    }
}

/// A (source, destination) pair and the gateway (or drop) it led to.
type FlowMemo<'a> = (IpAddr, IpAddr, Result<&'a Arc<str>, DropReason>);

/// One batch's view of a namespace: its hosts (read-locked for the batch,
/// so keep batches short) and its routes, with the source-check policy.
pub struct View<'a, C> {
    namespace: &'a Namespace<C>,
    hosts: RwLockReadGuard<'a, HashMap<Arc<str>, HostEntry<C>>>,
    routes: Routes<'a>,
    strict_source: bool,
    now: Instant,
    /// Whether an unknown host is looked up in the cluster.
    lookups: bool,
    /// The last (source, destination) pair routed by the table and the
    /// gateway it led to: consecutive packets of a flow (most of a batch)
    /// cost no route lookup.
    memo: Cell<Option<FlowMemo<'a>>>,
}

impl<C> std::fmt::Debug for View<'_, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("View").field("namespace", &self.namespace.id()).field("routes", &self.routes).finish()
    }
}

impl<C> Namespace<C> {
    /// A view for one batch of packets at time `now`. With `strict_source`,
    /// a packet whose source address does not route back to its sender is
    /// dropped, whatever the router kind (as OpenVPN's iroute check does).
    pub fn view<'a>(&'a self, routes: Routes<'a>, strict_source: bool, now: Instant) -> View<'a, C> {
        View { namespace: self, hosts: self.read(), routes, strict_source, now, lookups: false, memo: Cell::new(None) }
    }

    /// Records a plugin's answer for `addr` (`None`: no route) and returns
    /// the packets held for it. Route each again with a fresh view: it goes
    /// through the same checks as any packet, the source check included.
    pub fn answered(&self, plugin: Plugin, addr: IpAddr, gateway: Option<Arc<str>>, now: Instant) -> Vec<Held> {
        self.lock_answers().answer(plugin, addr, gateway, now)
    }

    fn lock_answers(&self) -> std::sync::MutexGuard<'_, crate::lookup::Answers> {
        self.answers.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A plugin's answer for one address, as far as it is known.
enum Resolved {
    Gateway(Option<Arc<str>>),
    Pending,
}

impl<'a, C> View<'a, C> {
    /// With `on`, a packet whose route names a host unknown here is
    /// [`Action::Lookup`] instead of a [`DropReason::NoHost`] drop (a node of
    /// a cluster asks where the host is connected).
    pub fn remote_lookups(mut self, on: bool) -> Self {
        self.lookups = on;
        self
    }

    /// Decides where `packet`, sent by a connection registered as `sender`,
    /// goes. `cache` is the sending connection's own cache of plugin answers.
    pub fn route(&self, packet: &Bytes, sender: &Arc<str>, cache: &mut ReaderCache) -> Action<'_, C> {
        let header = match packet::check(packet) {
            Ok(header) => header,
            Err(reason) => return Action::Drop(reason),
        };
        let (src, dst) = (header.src(), header.dst());
        match self.routes {
            Routes::None => Action::Drop(DropReason::NoRoute),
            Routes::Table(table) => match self.by_table(table, src, dst, sender) {
                Ok(gateway) => self.to_host(gateway),
                Err(reason) => Action::Drop(reason),
            },
            Routes::Plugin(plugin) => match self.by_plugin(plugin, src, dst, sender, packet, cache) {
                Ok(gateway) => self.to_host(&gateway),
                Err(action) => action,
            },
        }
    }

    /// Where a packet that arrived from another node for `host` goes: only
    /// to a local connection (one hop; a node never passes a packet on).
    pub fn deliver_local(&self, host: &str) -> Action<'_, C> {
        match self.hosts.get(host).and_then(|e| e.newest_local()) {
            Some((id, conn)) => Action::Deliver(id, conn),
            None => Action::Drop(DropReason::NotLocal),
        }
    }

    fn by_table(
        &self,
        table: &'a RouteTable,
        src: IpAddr,
        dst: IpAddr,
        sender: &str,
    ) -> Result<&'a Arc<str>, DropReason> {
        if let Some((s, d, gateway)) = self.memo.get()
            && (s, d) == (src, dst)
        {
            return gateway;
        }
        let gateway = if self.strict_source && table.lookup(src).is_none_or(|gw| &**gw != sender) {
            Err(DropReason::SpoofedSource)
        } else {
            table.lookup(dst).ok_or(DropReason::NoRoute)
        };
        self.memo.set(Some((src, dst, gateway)));
        gateway
    }

    /// The gateway by the plugin, the source checked the same way: `Err`
    /// carries the action when it is not a delivery.
    fn by_plugin(
        &self,
        plugin: Plugin,
        src: IpAddr,
        dst: IpAddr,
        sender: &Arc<str>,
        packet: &Bytes,
        cache: &mut ReaderCache,
    ) -> Result<Arc<str>, Action<'_, C>> {
        let mut start = Lookups::default();
        // Every exit below must report the lookups started on the way.
        let outcome = (|| {
            let mut waiting_on = None;
            if self.strict_source {
                match self.resolve(plugin, src, cache, &mut start)? {
                    Resolved::Gateway(Some(gw)) if gw == *sender => {}
                    Resolved::Gateway(_) => return Err(DropReason::SpoofedSource),
                    Resolved::Pending => waiting_on = Some(src),
                }
            }
            match (self.resolve(plugin, dst, cache, &mut start)?, waiting_on) {
                (Resolved::Gateway(None), _) => Err(DropReason::NoRoute),
                (Resolved::Gateway(Some(gateway)), None) => Ok(Ok(gateway)),
                (Resolved::Gateway(Some(_)), Some(addr)) | (Resolved::Pending, Some(addr)) => Ok(Err(addr)),
                (Resolved::Pending, None) => Ok(Err(dst)),
            }
        })();
        match outcome {
            // Both answers were known, so no lookup was started.
            Ok(Ok(gateway)) => Ok(gateway),
            Ok(Err(addr)) => {
                // Held on the first address still unknown; once it answers the
                // packet is routed again and, if need be, held on the other.
                let held = Held { packet: Bytes::copy_from_slice(packet), sender: Arc::clone(sender) };
                let held = self.namespace.lock_answers().hold(addr, held);
                Err(Action::Pending { start, dropped: (!held).then_some(DropReason::PluginPendingFull) })
            }
            Err(reason) if start == Lookups::default() => Err(Action::Drop(reason)),
            Err(reason) => Err(Action::Pending { start, dropped: Some(reason) }),
        }
    }

    fn resolve(
        &self,
        plugin: Plugin,
        addr: IpAddr,
        cache: &mut ReaderCache,
        start: &mut Lookups,
    ) -> Result<Resolved, DropReason> {
        if let Some(gateway) = cache.get(plugin.key, addr, self.now) {
            cache.hits += 1;
            return Ok(Resolved::Gateway(gateway));
        }
        let (known, expires) = self.namespace.lock_answers().query(plugin, addr, self.now);
        match known {
            Known::Answer(gateway) => {
                cache.hits += 1;
                if let Some(expires) = expires {
                    cache.put(addr, gateway.clone(), expires);
                }
                Ok(Resolved::Gateway(gateway))
            }
            Known::Pending { start: new } => {
                if new {
                    start.push(addr);
                }
                Ok(Resolved::Pending)
            }
            Known::Busy => Err(DropReason::PluginPendingFull),
        }
    }

    fn to_host(&self, gateway: &Arc<str>) -> Action<'_, C> {
        match self.hosts.get_key_value(&**gateway).and_then(|(host, e)| e.owner().map(|o| (host, o))) {
            Some((_, Owner::Local(id, conn))) => Action::Deliver(id, conn),
            Some((host, Owner::Node(node))) => Action::Forward { node, host },
            None if self.lookups => Action::Lookup { host: Arc::clone(gateway) },
            None => Action::Drop(DropReason::NoHost),
        }
    }
}
