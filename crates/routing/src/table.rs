//! Route tables with longest-prefix match.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use prefix_trie::PrefixMap;

/// One route: packets to `dst` go to the connection(s) registered as `gateway`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Destination network; a single address is a /32 or /128.
    pub dst: IpNet,
    /// The gateway's host name.
    pub gateway: Arc<str>,
}

/// Why a route's text could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// The destination is neither an address nor a CIDR.
    #[error("{0:?} is neither an IP address nor a CIDR")]
    BadDestination(String),
    /// The gateway is empty.
    #[error("empty gateway")]
    EmptyGateway,
}

impl Route {
    /// Reads a route from its config/source form: `dst` is an address
    /// (`10.0.0.1`, `fd00::1`) or a CIDR (`10.0.0.0/8`; host bits are
    /// dropped), `gateway` a host name.
    pub fn parse(dst: &str, gateway: &str) -> Result<Route, RouteError> {
        let gateway = gateway.trim();
        if gateway.is_empty() {
            return Err(RouteError::EmptyGateway);
        }
        Ok(Route { dst: parse_dst(dst)?, gateway: Arc::from(gateway) })
    }
}

/// Reads a destination: an address becomes a host route, a CIDR is truncated
/// to its network.
pub fn parse_dst(text: &str) -> Result<IpNet, RouteError> {
    let text = text.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    text.parse::<IpAddr>().map(IpNet::from).map_err(|_| RouteError::BadDestination(text.to_owned()))
}

/// An immutable routing table. Lookup is longest-prefix match over IPv4 and
/// IPv6 separately; when the same prefix appears more than once, the first
/// one given wins (as in GOST, which scans in order).
///
/// Lookups allocate nothing and take time independent of the table size
/// (bounded by the address length). An IPv4-mapped IPv6 destination
/// (`::ffff:a.b.c.d`) is looked up as the IPv4 address.
#[derive(Clone, Default)]
pub struct RouteTable {
    v4: PrefixMap<Ipv4Net, Arc<str>>,
    v6: PrefixMap<Ipv6Net, Arc<str>>,
}

impl std::fmt::Debug for RouteTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteTable").field("v4", &self.v4.len()).field("v6", &self.v6.len()).finish()
    }
}

impl RouteTable {
    /// Builds a table from routes in priority order.
    pub fn new(routes: impl IntoIterator<Item = Route>) -> Self {
        let mut table = RouteTable::default();
        for route in routes {
            match route.dst.trunc() {
                IpNet::V4(net) => {
                    table.v4.entry(net).or_insert(route.gateway);
                }
                IpNet::V6(net) => match net.addr().to_ipv4_mapped() {
                    // `::ffff:10.0.0.0/104` is the IPv4 network 10.0.0.0/8.
                    Some(v4) if net.prefix_len() >= 96 => {
                        if let Ok(net) = Ipv4Net::new(v4, net.prefix_len() - 96) {
                            table.v4.entry(net).or_insert(route.gateway);
                        }
                    }
                    _ => {
                        table.v6.entry(net).or_insert(route.gateway);
                    }
                },
            }
        }
        table
    }

    /// The gateway for `dst`, by longest-prefix match.
    pub fn lookup(&self, dst: IpAddr) -> Option<&Arc<str>> {
        self.lookup_route(dst).map(|(_, gateway)| gateway)
    }

    /// The matched route's prefix and gateway.
    pub fn lookup_route(&self, dst: IpAddr) -> Option<(IpNet, &Arc<str>)> {
        match dst {
            IpAddr::V4(addr) => self.lookup_v4(addr),
            IpAddr::V6(addr) => match addr.to_ipv4_mapped() {
                Some(v4) => self.lookup_v4(v4),
                None => self.lookup_v6(addr),
            },
        }
    }

    fn lookup_v4(&self, addr: Ipv4Addr) -> Option<(IpNet, &Arc<str>)> {
        self.v4.get_lpm(&Ipv4Net::from(addr)).map(|(net, gateway)| (IpNet::V4(net), gateway))
    }

    fn lookup_v6(&self, addr: Ipv6Addr) -> Option<(IpNet, &Arc<str>)> {
        self.v6.get_lpm(&Ipv6Net::from(addr)).map(|(net, gateway)| (IpNet::V6(net), gateway))
    }

    /// Every route, IPv4 first, each family in prefix order.
    pub fn routes(&self) -> impl Iterator<Item = Route> + '_ {
        let v4 = self.v4.iter().map(|(net, gw)| Route { dst: IpNet::V4(net), gateway: gw.clone() });
        let v6 = self.v6.iter().map(|(net, gw)| Route { dst: IpNet::V6(net), gateway: gw.clone() });
        v4.chain(v6)
    }

    /// Number of distinct prefixes.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// Whether the table has no routes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl PartialEq for RouteTable {
    fn eq(&self, other: &Self) -> bool {
        self.v4 == other.v4 && self.v6 == other.v6
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    fn route(dst: &str, gw: &str) -> Route {
        Route::parse(dst, gw).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn seed_routes() {
        let table = RouteTable::new([
            route("192.168.123.1", "host-1"),
            route("192.168.123.2", "host-2"),
            route("192.168.100.0/24", "host-1"),
            route("192.168.200.0/24", "host-2"),
        ]);
        assert_eq!(table.len(), 4);
        assert_eq!(table.lookup(ip("192.168.123.1")).map(|g| &**g), Some("host-1"));
        assert_eq!(table.lookup(ip("192.168.123.2")).map(|g| &**g), Some("host-2"));
        assert_eq!(table.lookup(ip("192.168.100.77")).map(|g| &**g), Some("host-1"));
        assert_eq!(table.lookup(ip("192.168.200.1")).map(|g| &**g), Some("host-2"));
        assert_eq!(table.lookup(ip("192.168.123.3")), None);
        assert_eq!(table.lookup(ip("10.0.0.1")), None);
    }

    #[test]
    fn longest_prefix_wins_and_first_duplicate_wins() {
        let table = RouteTable::new([
            route("10.0.0.0/8", "wide"),
            route("10.1.0.0/16", "narrow"),
            route("10.1.2.3", "host"),
            route("10.1.0.0/16", "duplicate"),
            route("0.0.0.0/0", "default"),
        ]);
        assert_eq!(table.len(), 4);
        assert_eq!(&**table.lookup(ip("10.2.0.1")).unwrap(), "wide");
        assert_eq!(&**table.lookup(ip("10.1.9.9")).unwrap(), "narrow");
        assert_eq!(&**table.lookup(ip("10.1.2.3")).unwrap(), "host");
        assert_eq!(&**table.lookup(ip("11.0.0.1")).unwrap(), "default");
        let (net, _) = table.lookup_route(ip("10.1.9.9")).unwrap();
        assert_eq!(net, "10.1.0.0/16".parse::<IpNet>().unwrap());
    }

    #[test]
    fn ipv6_and_mapped() {
        let table = RouteTable::new([
            route("fd00::/64", "v6net"),
            route("fd00::1", "v6host"),
            route("192.168.1.0/24", "v4"),
            route("::ffff:10.0.0.0/104", "mapped"),
        ]);
        assert_eq!(&**table.lookup(ip("fd00::2")).unwrap(), "v6net");
        assert_eq!(&**table.lookup(ip("fd00::1")).unwrap(), "v6host");
        assert_eq!(table.lookup(ip("fd01::1")), None);
        assert_eq!(&**table.lookup(ip("::ffff:192.168.1.9")).unwrap(), "v4");
        assert_eq!(&**table.lookup(ip("10.3.4.5")).unwrap(), "mapped");
    }

    #[test]
    fn parse_forms() {
        assert_eq!(parse_dst("10.1.2.3/8").unwrap(), "10.0.0.0/8".parse::<IpNet>().unwrap());
        assert_eq!(parse_dst(" 10.1.2.3 ").unwrap(), "10.1.2.3/32".parse::<IpNet>().unwrap());
        assert_eq!(parse_dst("fd00::1").unwrap(), "fd00::1/128".parse::<IpNet>().unwrap());
        assert!(matches!(parse_dst("10.0.0.0/33"), Err(RouteError::BadDestination(_))));
        assert!(matches!(parse_dst("host-1"), Err(RouteError::BadDestination(_))));
        assert_eq!(Route::parse("10.0.0.1", " "), Err(RouteError::EmptyGateway));
    }

    proptest! {
        /// LPM agrees with GOST's linear scan whenever routes do not overlap, and
        /// with a brute-force longest match always.
        #[test]
        fn matches_brute_force(routes in proptest::collection::vec((any::<u32>(), 0u8..=32, 0u8..4), 0..40), probe in any::<u32>()) {
            let routes: Vec<Route> = routes
                .into_iter()
                .map(|(a, len, gw)| Route {
                    dst: IpNet::V4(Ipv4Net::new(Ipv4Addr::from(a), len).unwrap().trunc()),
                    gateway: Arc::from(format!("gw{gw}")),
                })
                .collect();
            let table = RouteTable::new(routes.clone());
            let dst = IpAddr::V4(Ipv4Addr::from(probe));
            let mut best: Option<&Route> = None;
            for r in &routes {
                if r.dst.contains(&dst) && best.is_none_or(|b| r.dst.prefix_len() > b.dst.prefix_len()) {
                    best = Some(r);
                }
            }
            prop_assert_eq!(table.lookup(dst), best.map(|r| &r.gateway));
        }

        #[test]
        fn parse_never_panics(s in ".{0,64}", g in ".{0,16}") {
            let _ = Route::parse(&s, &g);
        }
    }
}
