//! Where one packet goes: pure decisions, no I/O.

use std::net::IpAddr;
use std::sync::Arc;

use rgost_relay::ip::IpHeader;
use rgost_routing::RouteTable;

use crate::namespace::{HostMap, Peer};
use crate::stats::DropReason;

/// The decision for one packet.
#[derive(Debug)]
pub enum Verdict<'a> {
    /// Queue the packet on this connection.
    Deliver(&'a Peer),
    /// Drop it, for this reason.
    Drop(DropReason),
}

/// Who sent a packet, for the source check.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// The sending connection's host name.
    pub host: &'a str,
    /// Whether the packet's source address must route back to `host`.
    pub strict_source: bool,
}

/// The last (source, destination) pair routed through one table snapshot
/// and where it led. Consecutive packets of a flow (most of a read batch)
/// then cost no route lookup at all.
#[derive(Debug, Default)]
pub struct Memo<'t> {
    last: Option<(Addrs, Result<&'t Arc<str>, DropReason>)>,
}

/// A packet's source and destination.
type Addrs = (IpAddr, IpAddr);

/// Routes `packet` by its destination through `table` to a connection of
/// the gateway host in `hosts`. Packets of one flow always go to the same
/// connection while it is registered (see [`pick`]). `memo` must be used
/// with this one `table` only.
///
/// With `origin.strict_source`, a packet whose source address does not
/// route back to the sending host is dropped as spoofed, as OpenVPN's iroute
/// check does: a host may only send from addresses the router gives it.
pub fn route<'a, 't>(
    packet: &[u8],
    table: &'t RouteTable,
    memo: &mut Memo<'t>,
    hosts: &'a HostMap,
    origin: Origin<'_>,
) -> Verdict<'a> {
    let header = match parse(packet) {
        Ok(header) => header,
        Err(reason) => return Verdict::Drop(reason),
    };
    let key = (header.src(), header.dst());
    let gateway = match memo.last {
        Some((last, gateway)) if last == key => gateway,
        _ => {
            let gateway = if origin.strict_source && table.lookup(key.0).is_none_or(|gw| gw.as_ref() != origin.host) {
                Err(DropReason::Spoofed)
            } else {
                table.lookup(key.1).ok_or(DropReason::NoRoute)
            };
            memo.last = Some((key, gateway));
            gateway
        }
    };
    match gateway {
        Ok(gateway) => to_gateway(hosts, gateway, header.flow_hash()),
        Err(reason) => Verdict::Drop(reason),
    }
}

/// Checks that `packet` is a routable IP packet and returns its header view.
pub fn parse(packet: &[u8]) -> Result<IpHeader<&[u8]>, DropReason> {
    if packet.is_empty() {
        return Err(DropReason::Empty);
    }
    IpHeader::new_checked(packet).map_err(|_| DropReason::NotIp)
}

/// The connection of host `gateway` that carries flow `flow_hash`.
pub fn to_gateway<'a>(hosts: &'a HostMap, gateway: &str, flow_hash: u64) -> Verdict<'a> {
    match hosts.get(gateway).and_then(|peers| pick(peers, flow_hash)) {
        Some(peer) => Verdict::Deliver(peer),
        None => Verdict::Drop(DropReason::NoHost),
    }
}

/// Picks the connection for a flow by rendezvous (highest random weight)
/// hashing: a flow stays on its connection while that connection lives, and
/// when one closes only its own flows move, spread over the others.
pub fn pick(peers: &[Peer], flow_hash: u64) -> Option<&Peer> {
    match peers {
        [] => None,
        [only] => Some(only),
        _ => peers.iter().max_by_key(|p| mix(flow_hash ^ p.id.wrapping_mul(0x9e37_79b9_7f4a_7c15))),
    }
}

/// A 64-bit finaliser (from SplitMix64): every input bit affects every output bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use tokio::sync::mpsc;

    use super::*;

    fn peers(ids: &[u64]) -> Vec<Peer> {
        ids.iter().map(|&id| Peer { id, tx: mpsc::channel(1).0 }).collect()
    }

    /// A minimal IPv4 header from `src` to `dst`.
    fn ipv4(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0];
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        p
    }

    fn delivered_to(verdict: Verdict<'_>) -> Result<u64, DropReason> {
        match verdict {
            Verdict::Deliver(peer) => Ok(peer.id),
            Verdict::Drop(reason) => Err(reason),
        }
    }

    #[test]
    fn the_memo_never_lets_a_spoofed_packet_through() {
        let table = RouteTable::new([
            rgost_routing::Route::parse("10.0.0.1", "h1").unwrap(),
            rgost_routing::Route::parse("10.0.0.2", "h2").unwrap(),
        ]);
        let mut hosts = HostMap::new();
        hosts.insert(Arc::from("h1"), peers(&[1]).into_boxed_slice());
        hosts.insert(Arc::from("h2"), peers(&[2]).into_boxed_slice());
        let origin = Origin { host: "h1", strict_source: true };
        let mut memo = Memo::default();
        let mut send = |src, dst| delivered_to(route(&ipv4(src, dst), &table, &mut memo, &hosts, origin));
        assert_eq!(send([10, 0, 0, 1], [10, 0, 0, 2]), Ok(2));
        assert_eq!(send([10, 0, 0, 1], [10, 0, 0, 2]), Ok(2), "memo hit");
        assert_eq!(send([10, 0, 0, 2], [10, 0, 0, 2]), Err(DropReason::Spoofed), "same dst, other src");
        assert_eq!(send([10, 0, 0, 2], [10, 0, 0, 2]), Err(DropReason::Spoofed), "memo hit");
        assert_eq!(send([10, 0, 0, 1], [10, 0, 0, 9]), Err(DropReason::NoRoute));
        assert_eq!(send([10, 0, 0, 1], [10, 0, 0, 1]), Ok(1));
    }

    #[test]
    fn pick_is_stable_and_moves_only_the_closed_connections_flows() {
        let all = peers(&[1, 2, 3, 4]);
        let flows: Vec<u64> = (0..10_000u64).map(mix).collect();
        let before: Vec<u64> = flows.iter().map(|&f| pick(&all, f).map(|p| p.id).unwrap_or(0)).collect();
        // Balanced within reason.
        for id in 1..=4 {
            let share = before.iter().filter(|&&p| p == id).count();
            assert!((1_500..3_500).contains(&share), "peer {id} got {share} of 10000 flows");
        }
        let without_3: Vec<Peer> = all.iter().filter(|p| p.id != 3).cloned().collect();
        for (f, was) in flows.iter().zip(&before) {
            let now = pick(&without_3, *f).map(|p| p.id).unwrap_or(0);
            if *was != 3 {
                assert_eq!(now, *was, "a flow of a live connection moved");
            } else {
                assert_ne!(now, 3);
            }
        }
        assert!(pick(&[], 1).is_none());
    }
}
