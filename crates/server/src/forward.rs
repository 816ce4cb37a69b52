//! Where one packet goes: pure decisions, no I/O.

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

/// Routes `packet` by its destination through `table` to a connection of
/// the gateway host in `hosts`. Packets of one flow always go to the same
/// connection while it is registered (see [`pick`]).
///
/// With `origin.strict_source`, a packet whose source address does not
/// route back to the sending host is dropped as spoofed, as OpenVPN's iroute
/// check does: a host may only send from addresses the router gives it.
pub fn route<'a>(packet: &[u8], table: &RouteTable, hosts: &'a HostMap, origin: Origin<'_>) -> Verdict<'a> {
    let header = match parse(packet) {
        Ok(header) => header,
        Err(reason) => return Verdict::Drop(reason),
    };
    if origin.strict_source && table.lookup(header.src()).is_none_or(|gw| gw.as_ref() != origin.host) {
        return Verdict::Drop(DropReason::Spoofed);
    }
    match table.lookup(header.dst()) {
        Some(gateway) => to_gateway(hosts, gateway, header.flow_hash()),
        None => Verdict::Drop(DropReason::NoRoute),
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
