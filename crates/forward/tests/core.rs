//! The forwarding core driven in memory: registrations, tables, plugin
//! answers and time are all given by the test; no socket, no sleep.
#![allow(clippy::disallowed_types, clippy::unwrap_used)]

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rgost_forward::{Action, DropReason, Fabric, Held, Plugin, ReaderCache, Routes};
use rgost_relay::TunnelId;
use rgost_routing::{Route, RouteTable};

const NS: TunnelId = TunnelId::ZERO;
const PLUGIN: Plugin = Plugin { key: 7, ttl: Duration::from_secs(1) };

/// An IPv4/UDP packet from `src` to `dst` with ports and a payload, its
/// lengths consistent.
fn udp(src: [u8; 4], dst: [u8; 4], sport: u16) -> Bytes {
    let mut p = vec![0x45, 0, 0, 32, 0, 0, 0, 0, 64, 17, 0, 0];
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&[0, 53, 0, 12, 0, 0]);
    p.extend_from_slice(b"ping");
    Bytes::from(p)
}

fn table() -> RouteTable {
    RouteTable::new([
        Route::parse("10.0.0.1", "h1").unwrap(),
        Route::parse("10.0.0.2", "h2").unwrap(),
        Route::parse("10.9.0.0/16", "gone").unwrap(),
    ])
}

/// The connection id a packet is delivered to, or the reason it is not.
fn outcome<C>(action: Action<'_, C>) -> Result<u64, String> {
    match action {
        Action::Deliver(id, _) => Ok(id),
        Action::Forward { node, host } => Err(format!("forward {host} to {node}")),
        Action::Pending { start, dropped } => {
            Err(format!("pending {:?} {:?}", start.iter().collect::<Vec<_>>(), dropped.map(|r| r.name())))
        }
        Action::Lookup { host } => Err(format!("lookup {host}")),
        Action::Drop(reason) => Err(reason.name().to_owned()),
    }
}

fn register(fabric: &Fabric<u64>, host: &str) -> u64 {
    // Registrations are dropped without unregistering: these tests only look.
    fabric.register(NS, Arc::from(host), |id, _| id).conn
}

#[test]
fn table_routes_check_sources_and_drop_malformed_frames() {
    let fabric = Fabric::new();
    let h1 = register(&fabric, "h1");
    let h2 = register(&fabric, "h2");
    let ns = fabric.namespace(&NS).unwrap();
    let table = table();
    let view = ns.view(Routes::Table(&table), true, Instant::now());
    let mut cache = ReaderCache::default();
    let from_h1: Arc<str> = Arc::from("h1");
    let mut send = |p: &Bytes| outcome(view.route(p, &from_h1, &mut cache));
    assert_eq!(send(&udp([10, 0, 0, 1], [10, 0, 0, 2], 1)), Ok(h2));
    assert_eq!(send(&udp([10, 0, 0, 1], [10, 0, 0, 2], 2)), Ok(h2), "memo hit");
    assert_eq!(send(&udp([10, 0, 0, 2], [10, 0, 0, 2], 1)).unwrap_err(), "spoofed_source", "another host's source");
    assert_eq!(send(&udp([10, 0, 0, 2], [10, 0, 0, 2], 1)).unwrap_err(), "spoofed_source", "memo hit");
    assert_eq!(send(&udp([0, 0, 0, 0], [10, 0, 0, 2], 1)).unwrap_err(), "spoofed_source", "unrouted source");
    assert_eq!(send(&udp([10, 0, 0, 1], [10, 0, 0, 1], 1)), Ok(h1), "to itself");
    assert_eq!(send(&udp([10, 0, 0, 1], [10, 0, 0, 9], 1)).unwrap_err(), "no_route");
    assert_eq!(send(&udp([10, 0, 0, 1], [10, 9, 0, 1], 1)).unwrap_err(), "no_host");
    let mut long = udp([10, 0, 0, 1], [10, 0, 0, 2], 1).to_vec();
    long.push(0);
    assert_eq!(send(&Bytes::from(long)).unwrap_err(), "malformed");
    assert_eq!(send(&Bytes::new()).unwrap_err(), "zero_length");
    assert_eq!(send(&Bytes::from_static(&[0x10; 30])).unwrap_err(), "not_ip");

    // The check is off with strict_source = false.
    let loose = ns.view(Routes::Table(&table), false, Instant::now());
    assert_eq!(outcome(loose.route(&udp([10, 0, 0, 2], [10, 0, 0, 2], 1), &from_h1, &mut cache)), Ok(h2));
    // No router: no route.
    let none = ns.view(Routes::None, true, Instant::now());
    assert_eq!(
        outcome(none.route(&udp([10, 0, 0, 1], [10, 0, 0, 2], 1), &from_h1, &mut cache)).unwrap_err(),
        "no_route"
    );
}

#[test]
fn the_newest_connection_of_a_host_gets_every_flow() {
    let fabric = Fabric::new();
    register(&fabric, "h1");
    let first = fabric.register(NS, Arc::from("h2"), |id, _| id);
    let extra: Vec<_> = (0..20).map(|_| fabric.register(NS, Arc::from("h2"), |id, _| id)).collect();
    let newest = extra.last().unwrap().conn;
    let ns = fabric.namespace(&NS).unwrap();
    let table = table();
    let from_h1: Arc<str> = Arc::from("h1");
    let mut cache = ReaderCache::default();
    {
        let view = ns.view(Routes::Table(&table), true, Instant::now());
        for port in 0..200 {
            assert_eq!(outcome(view.route(&udp([10, 0, 0, 1], [10, 0, 0, 2], port), &from_h1, &mut cache)), Ok(newest));
        }
    }
    // The newest closes: the next newest takes every flow; the oldest last.
    for (i, reg) in extra.iter().enumerate().rev() {
        fabric.unregister(reg);
        let expected = if i == 0 { first.conn } else { extra[i - 1].conn };
        let view = ns.view(Routes::Table(&table), true, Instant::now());
        assert_eq!(outcome(view.route(&udp([10, 0, 0, 1], [10, 0, 0, 2], 9), &from_h1, &mut cache)), Ok(expected));
    }
}

#[test]
fn plugin_routes_hold_packets_and_check_sources_like_tables() {
    let fabric = Fabric::new();
    let h1 = register(&fabric, "h1");
    let h2 = register(&fabric, "h2");
    let ns = fabric.namespace(&NS).unwrap();
    let t0 = Instant::now();
    let from_h1: Arc<str> = Arc::from("h1");
    let mut cache = ReaderCache::default();
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let packet = udp([10, 0, 0, 1], [10, 0, 0, 2], 1);

    // Nothing known: both lookups start, the packet is held.
    {
        let view = ns.view(Routes::Plugin(PLUGIN), true, t0);
        match view.route(&packet, &from_h1, &mut cache) {
            Action::Pending { start, dropped: None } => {
                assert_eq!(start.iter().collect::<Vec<_>>(), [ip("10.0.0.1"), ip("10.0.0.2")]);
            }
            other => panic!("{:?}", outcome(other)),
        }
        // A second packet joins the running lookups, starts nothing.
        assert_eq!(outcome(view.route(&packet, &from_h1, &mut cache)).unwrap_err(), "pending [] None");
    }
    // The source answers: the held packets come back and wait on the destination.
    let released = ns.answered(PLUGIN, ip("10.0.0.1"), Some(Arc::from("h1")), t0);
    assert_eq!(released, vec![Held { packet: packet.clone(), sender: Arc::clone(&from_h1) }; 2]);
    {
        let view = ns.view(Routes::Plugin(PLUGIN), true, t0);
        for held in &released {
            assert_eq!(outcome(view.route(&held.packet, &held.sender, &mut cache)).unwrap_err(), "pending [] None");
        }
    }
    let released = ns.answered(PLUGIN, ip("10.0.0.2"), Some(Arc::from("h2")), t0);
    assert_eq!(released.len(), 2);
    let view = ns.view(Routes::Plugin(PLUGIN), true, t0);
    for held in &released {
        assert_eq!(outcome(view.route(&held.packet, &held.sender, &mut cache)), Ok(h2));
    }
    // Known answers deliver at once, also from a reader that never asked.
    let mut fresh = ReaderCache::default();
    assert_eq!(outcome(view.route(&packet, &from_h1, &mut fresh)), Ok(h2));
    // Both addresses came from the namespace's cache, then from the reader's own.
    assert_eq!(fresh.take_hits(), 2);
    assert_eq!(outcome(view.route(&packet, &from_h1, &mut fresh)), Ok(h2));
    assert_eq!(fresh.take_hits(), 2);
    assert_eq!(fresh.take_hits(), 0, "taken");
    // A spoofed source is looked up and dropped once the plugin answers.
    let spoofed = udp([10, 0, 0, 2], [10, 0, 0, 1], 1);
    assert_eq!(outcome(view.route(&spoofed, &from_h1, &mut cache)).unwrap_err(), "spoofed_source", "h2's address");
    let from_h2: Arc<str> = Arc::from("h2");
    assert_eq!(outcome(view.route(&spoofed, &from_h2, &mut cache)), Ok(h1), "h2 may send from 10.0.0.2");
    let forged = udp([10, 0, 0, 1], [10, 0, 0, 1], 1);
    assert_eq!(outcome(view.route(&forged, &from_h2, &mut cache)).unwrap_err(), "spoofed_source");
    drop(view);
    // An unrouted source: looked up, then dropped with every later packet.
    let unrouted = udp([192, 0, 2, 1], [10, 0, 0, 2], 1);
    {
        let view = ns.view(Routes::Plugin(PLUGIN), true, t0);
        assert_eq!(outcome(view.route(&unrouted, &from_h1, &mut cache)).unwrap_err(), "pending [192.0.2.1] None");
    }
    let released = ns.answered(PLUGIN, ip("192.0.2.1"), None, t0);
    let view = ns.view(Routes::Plugin(PLUGIN), true, t0);
    assert_eq!(
        outcome(view.route(&released[0].packet, &released[0].sender, &mut cache)).unwrap_err(),
        "spoofed_source"
    );
    assert_eq!(outcome(view.route(&unrouted, &from_h1, &mut cache)).unwrap_err(), "spoofed_source");
    // No route for the destination is an answer too, cached for the TTL.
    drop(view);
    let nowhere = udp([10, 0, 0, 1], [10, 7, 7, 7], 1);
    {
        let view = ns.view(Routes::Plugin(PLUGIN), true, t0);
        assert_eq!(outcome(view.route(&nowhere, &from_h1, &mut cache)).unwrap_err(), "pending [10.7.7.7] None");
    }
    ns.answered(PLUGIN, ip("10.7.7.7"), None, t0);
    let view = ns.view(Routes::Plugin(PLUGIN), true, t0 + Duration::from_millis(900));
    assert_eq!(outcome(view.route(&nowhere, &from_h1, &mut cache)).unwrap_err(), "no_route");
    drop(view);
    // After the TTL every answer is asked again.
    let later = t0 + PLUGIN.ttl;
    let view = ns.view(Routes::Plugin(PLUGIN), true, later);
    assert_eq!(outcome(view.route(&packet, &from_h1, &mut cache)).unwrap_err(), "pending [10.0.0.1, 10.0.0.2] None");
}

#[test]
fn a_known_no_route_destination_does_not_wait_for_the_source() {
    let fabric = Fabric::new();
    register(&fabric, "h1");
    let ns = fabric.namespace(&NS).unwrap();
    let t0 = Instant::now();
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    {
        let view = ns.view(Routes::Plugin(PLUGIN), false, t0);
        let mut cache = ReaderCache::default();
        view.route(&udp([10, 0, 0, 1], [10, 7, 7, 7], 1), &Arc::from("h1"), &mut cache);
    }
    ns.answered(PLUGIN, ip("10.7.7.7"), None, t0);
    let view = ns.view(Routes::Plugin(PLUGIN), true, t0);
    let mut cache = ReaderCache::default();
    // The source lookup starts (for later packets) but this packet is dropped now.
    assert_eq!(
        outcome(view.route(&udp([10, 0, 0, 1], [10, 7, 7, 7], 1), &Arc::from("h1"), &mut cache)).unwrap_err(),
        "pending [10.0.0.1] Some(\"no_route\")"
    );
}

#[test]
fn packets_for_remote_hosts_are_forwarded_and_node_packets_only_delivered_locally() {
    let fabric = Fabric::new();
    register(&fabric, "h1");
    let h2_here = register(&fabric, "h2");
    fabric.set_seq(NS, "h2", h2_here, 3);
    fabric.claim_remote(NS, Arc::from("h2"), Arc::from("node-b"), 4);
    let ns = fabric.namespace(&NS).unwrap();
    let table = table();
    let view = ns.view(Routes::Table(&table), true, Instant::now());
    let mut cache = ReaderCache::default();
    assert_eq!(
        outcome(view.route(&udp([10, 0, 0, 1], [10, 0, 0, 2], 1), &Arc::from("h1"), &mut cache)).unwrap_err(),
        "forward h2 to node-b"
    );
    // A packet from a node link goes to a local connection only, whatever the claim.
    assert_eq!(outcome(view.deliver_local("h2")), Ok(h2_here));
    assert_eq!(outcome(view.deliver_local("h3")).unwrap_err(), DropReason::NotLocal.name());
    // A host known nowhere here: dropped, or looked up in a cluster.
    let to_gone = udp([10, 0, 0, 1], [10, 9, 0, 1], 1);
    assert_eq!(outcome(view.route(&to_gone, &Arc::from("h1"), &mut cache)).unwrap_err(), "no_host");
    drop(view);
    let view = ns.view(Routes::Table(&table), true, Instant::now()).remote_lookups(true);
    assert_eq!(outcome(view.route(&to_gone, &Arc::from("h1"), &mut cache)).unwrap_err(), "lookup gone");
}
