//! Live status over loopback: the snapshot's hosts and counters, events
//! when connections come and go, "who owns this address", closing one
//! connection from outside.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::*;
use rgost_relay::TunnelId;
use rgost_server::build::Hooks;
use rgost_server::events::{Event, Events};
use rgost_server::{Server, Settings};
use rgost_transport::Listener;
use tokio_util::sync::CancellationToken;

fn start_with_events(settings: Settings, events: &Events) -> Running {
    let listener = Listener::bind(
        rgost_config::ListenAddr { ip: Some(std::net::Ipv4Addr::LOCALHOST.into()), port: 0 },
        &rgost_config::ListenerKind::Tcp,
    )
    .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = Server::with_hooks(settings, Hooks { events: events.clone(), meters: Arc::default() });
    let stop = CancellationToken::new();
    tokio::spawn(Arc::clone(&server).serve(listener, stop.clone()));
    Running { server, addr, stop }
}

#[tokio::test]
async fn status_events_lookup_and_close() {
    let events = Events::new();
    let mut rx = events.subscribe();
    let running = start_with_events(settings(), &events);
    let mut c1 = Client::ok(running.addr, "host-1").await;
    let mut c2 = Client::ok(running.addr, "host-2").await;
    for _ in 0..2 {
        let Event::HostUp { host, router, connections, .. } = &*rx.recv().await.unwrap() else { panic!("not host_up") };
        assert!(host == "host-1" || host == "host-2");
        assert_eq!(router, &TunnelId::ZERO.to_string());
        assert_eq!(*connections, 1);
    }

    // Traffic host-1 -> host-2, and one packet without a route.
    for i in 0..5u8 {
        c1.send(&udp4(H1, H2, 1000, 2000, &[i; 100])).await;
        assert_eq!(c2.recv().await.len(), 128);
    }
    c1.send(&udp4(H1, [10, 9, 9, 9], 1, 2, b"x")).await;
    until(|| running.server.totals().drops(rgost_server::DropReason::NoRoute) == 1).await;

    let namespaces = running.server.namespaces_status();
    assert_eq!(namespaces.len(), 1);
    let ns = &namespaces[0];
    assert_eq!(ns.router_name.as_deref(), Some("router-0"));
    assert!(ns.default_router);
    assert_eq!(ns.routes, Some(5));
    let hosts: Vec<&str> = ns.hosts.iter().map(|h| h.host.as_str()).collect();
    assert_eq!(hosts, ["host-1", "host-2"]);
    let h1 = &ns.hosts[0].connections[0];
    assert_eq!((h1.counters.packets_in, h1.counters.bytes_in), (6, 5 * 128 + 29));
    assert_eq!(h1.counters.drops.get("no_route"), Some(&1));
    assert!(h1.receiving);
    let h2 = &ns.hosts[1].connections[0];
    assert_eq!((h2.counters.packets_out, h2.counters.bytes_out), (5, 5 * 128));
    let json = serde_json::to_value(ns).unwrap();
    assert_eq!(json["hosts"][1]["connections"][0]["packets_out"], 5, "{json}");

    // Who owns 192.168.123.2 (and the LAN behind host-2) in the zero namespace.
    let answer = running.server.lookup(TunnelId::ZERO, "192.168.200.7".parse().unwrap()).await;
    assert_eq!(answer.router_kind, "table");
    let route = answer.route.as_ref().unwrap();
    assert_eq!((route.dst.as_deref(), route.gateway.as_str()), (Some("192.168.200.0/24"), "host-2"));
    assert_eq!(answer.connection.as_ref().unwrap().connector, h2.connector);
    assert!(answer.verdict.starts_with("delivered to host-2"), "{}", answer.verdict);
    let answer = running.server.lookup(TunnelId::ZERO, "192.168.123.3".parse().unwrap()).await;
    assert!(answer.connection.is_none());
    assert!(answer.verdict.contains("no_host"), "{}", answer.verdict);
    let answer = running.server.lookup(TunnelId::ZERO, "10.1.1.1".parse().unwrap()).await;
    assert!(answer.route.is_none() && answer.verdict.contains("no_route"), "{}", answer.verdict);

    // Closing host-2's connection from outside: its client sees the end, an event says so.
    let connector: TunnelId = TunnelId::from_uuid(*uuid::Uuid::parse_str(&h2.connector).unwrap().as_bytes());
    assert!(running.server.close_connection(&connector));
    assert!(c2.recv_within(T).await.is_none(), "the connection was closed");
    let Event::HostDown { host, gone, .. } = &*rx.recv().await.unwrap() else { panic!("not host_down") };
    assert_eq!((host.as_str(), *gone), ("host-2", true));
    assert!(!running.server.close_connection(&connector), "already gone");
    until(|| running.server.connections_now() == 1).await;
}
