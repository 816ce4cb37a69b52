//! Route tables with longest-prefix match.

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

/// One route: packets to `dst` go to the connection(s) registered as `gateway`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Destination network; a single address is a /32 or /128.
    pub dst: IpNet,
    /// The gateway's host name.
    pub gateway: Arc<str>,
}

/// An immutable routing table. Lookup is longest-prefix match over IPv4 and
/// IPv6 separately; when the same prefix appears more than once, the first
/// one given wins (as in GOST, which scans in order).
///
/// Lookups allocate nothing and take time independent of the table size
/// (bounded by the address length).
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    // implementation-defined
}

impl RouteTable {
    /// Builds a table from routes in priority order.
    pub fn new(routes: impl IntoIterator<Item = Route>) -> Self {
        todo!()
    }

    /// The gateway for `dst`, by longest-prefix match.
    pub fn lookup(&self, dst: IpAddr) -> Option<&Arc<str>> {
        todo!()
    }

    /// The matched route's prefix and gateway.
    pub fn lookup_route(&self, dst: IpAddr) -> Option<(IpNet, &Arc<str>)> {
        todo!()
    }

    /// Number of distinct prefixes.
    pub fn len(&self) -> usize {
        todo!()
    }

    /// Whether the table has no routes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
