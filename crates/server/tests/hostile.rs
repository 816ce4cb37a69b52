//! The router server against hostile or careless clients, over loopback:
//! half frames, forged lengths, receivers that never read, spoofed sources
//! under a plugin router, and clients that send no host name.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use rgost_relay::{Status, TunnelId};
use rgost_routing::{Ingress, RouteTable};
use rgost_server::router::RouteResolver;
use rgost_server::{DropReason, IngressSource, QueueLimits, Router};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{Instant, timeout};

mod common;
use common::*;

/// Reads until the server closes the connection; how long that took.
async fn closed_after(client: &mut Client) -> Duration {
    let started = Instant::now();
    let mut sink = [0u8; 4096];
    loop {
        match timeout(T, client.stream.read(&mut sink)).await.expect("the server closed the connection") {
            Ok(0) | Err(_) => return started.elapsed(),
            Ok(_) => {}
        }
    }
}

#[tokio::test]
async fn a_frame_begun_and_not_finished_within_read_timeout_closes_the_connection() {
    let srv = start(settings()); // readTimeout 500 ms
    let mut stalled = Client::ok(srv.addr, "host-1").await;
    // A frame header announcing 65535 bytes, then ten of them, then nothing.
    stalled.stream.write_all(&[0xff, 0xff]).await.unwrap();
    stalled.stream.write_all(&[0x45; 10]).await.unwrap();
    let took = closed_after(&mut stalled).await;
    assert!(took >= Duration::from_millis(400), "closed too early: {took:?}");
    until(|| srv.server.connections(&TunnelId::ZERO, "host-1") == 0).await;

    // A frame that trickles in, each piece within the bound, is still cut
    // when the whole frame takes longer than readTimeout.
    let mut trickle = Client::ok(srv.addr, "host-1").await;
    let p = udp4(H1, H2, 1, 2, &[7; 100]);
    let mut frame = vec![0, p.len() as u8];
    frame.extend_from_slice(&p);
    let started = Instant::now();
    for byte in &frame[..frame.len() - 1] {
        if trickle.stream.write_all(&[*byte]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        if started.elapsed() > Duration::from_secs(2) {
            break;
        }
    }
    closed_after(&mut trickle).await;
    assert!(started.elapsed() < Duration::from_secs(3));

    // An idle connection between whole frames is never cut.
    let mut idle = Client::ok(srv.addr, "host-1").await;
    let mut receiver = Client::ok(srv.addr, "host-2").await;
    tokio::time::sleep(Duration::from_millis(900)).await;
    idle.send(&p).await;
    assert_eq!(receiver.recv().await, p);
}

#[tokio::test]
async fn frames_whose_ip_length_disagrees_are_dropped_as_malformed() {
    let srv = start(settings());
    let mut c1 = Client::ok(srv.addr, "host-1").await;
    let mut c2 = Client::ok(srv.addr, "host-2").await;
    let good = udp4(H1, H2, 1, 2, b"good");
    // Trailing bytes past the IP total length.
    let mut long = good.clone();
    long.extend_from_slice(&[0; 40]);
    c1.send(&long).await;
    // A total length beyond the frame.
    let mut short = good.clone();
    short[2..4].copy_from_slice(&1000u16.to_be_bytes());
    c1.send(&short).await;
    c1.send(&good).await;
    assert_eq!(c2.recv().await, good, "only the well-formed packet arrives");
    assert!(c2.recv_within(Duration::from_millis(100)).await.is_none());
    assert_eq!(srv.server.totals().drops(DropReason::Malformed), 2);
}

/// Sends `count` 1400-byte packets from host-1 to `dst` as fast as TCP allows.
async fn flood(sender: &mut Client, dst: [u8; 4], count: usize) {
    let p = udp4(H1, dst, 1, 2, &[0x55; 1372]);
    let mut batch = Vec::new();
    for _ in 0..64 {
        rgost_relay::frame::encode(&p, &mut batch);
    }
    for _ in 0..count / 64 {
        sender.stream.write_all(&batch).await.unwrap();
    }
}

#[tokio::test]
async fn what_the_server_holds_is_bounded_in_bytes_per_connection_host_and_service() {
    const PER_CONN: usize = 256 << 10;
    const PER_HOST: usize = 512 << 10;
    const SERVICE: usize = 640 << 10;
    let mut s = settings();
    s.queue = QueueLimits { packets: 1 << 20, bytes: PER_CONN };
    s.host_queue_bytes = PER_HOST;
    s.server_queue_bytes = SERVICE;
    let srv = start(s);
    let mut sender = Client::ok(srv.addr, "host-1").await;
    let stats = &srv.server;

    // One connection of host-2 that never reads: its queue stops at its bound.
    let a = Client::ok(srv.addr, "host-2").await;
    flood(&mut sender, H2, 20_000).await;
    until(|| stats.totals().drops(DropReason::QueueFull) > 0).await;
    assert!(srv.server.queued_bytes() <= PER_CONN, "{} queued", srv.server.queued_bytes());

    // A newer connection of host-2 receives from now on (and never reads):
    // the host's two queues together stop at the host's bound.
    let b = Client::ok(srv.addr, "host-2").await;
    until(|| srv.server.connections(&TunnelId::ZERO, "host-2") == 2).await;
    flood(&mut sender, H2, 20_000).await;
    let c = Client::ok(srv.addr, "host-2").await;
    until(|| srv.server.connections(&TunnelId::ZERO, "host-2") == 3).await;
    flood(&mut sender, H2, 20_000).await;
    until(|| stats.totals().drops(DropReason::HostBudget) > 0).await;
    assert!(srv.server.queued_bytes() <= PER_HOST, "{} queued", srv.server.queued_bytes());

    // Another host that never reads: the service's bound holds for both.
    let d = Client::ok(srv.addr, "host-3").await;
    flood(&mut sender, H3, 20_000).await;
    until(|| stats.totals().drops(DropReason::ServerBudget) > 0).await;
    assert!(srv.server.queued_bytes() <= SERVICE, "{} queued", srv.server.queued_bytes());

    // Everything is given back when they close.
    drop((a, b, c, d));
    until(|| srv.server.queued_bytes() == 0).await;
    assert_eq!(srv.server.queued_bytes(), 0);
}

/// A plugin stand-in answering from a table at once.
#[derive(Debug)]
struct TablePlugin(RouteTable);

impl RouteResolver for TablePlugin {
    fn resolve(&self, addr: IpAddr, _: TunnelId) -> Pin<Box<dyn Future<Output = Option<Arc<str>>> + Send>> {
        let answer = self.0.lookup(addr).cloned();
        Box::pin(async move { answer })
    }
}

#[tokio::test]
async fn plugin_routers_drop_spoofed_sources_like_tables() {
    let mut s = settings();
    let plugin = Arc::new(TablePlugin(seed_table()));
    s.routers.insert("router-0".to_owned(), Arc::new(Router::plugin(plugin, Duration::from_secs(60))));
    let srv = start(s);
    let mut c1 = Client::ok(srv.addr, "host-1").await;
    let mut c2 = Client::ok(srv.addr, "host-2").await;
    let stats = &srv.server;
    let spoofed_sources: [[u8; 4]; 6] = [
        H2,                   // another host's address
        H3,                   // a third host's
        [0, 0, 0, 0],         // the unspecified address
        [255, 255, 255, 255], // broadcast
        [10, 99, 0, 1],       // an address no route covers
        [192, 168, 200, 9],   // host-2's LAN
    ];
    // Twice: first while the plugin is asked, then from its cached answers.
    for round in 0..2 {
        for src in spoofed_sources {
            c1.send(&udp4(src, H2, 1, 2, b"spoofed")).await;
        }
        let mut v6 = vec![0x60, 0, 0, 0, 0, 8, 17, 64];
        v6.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        v6.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        v6.extend_from_slice(&[0, 1, 0, 2, 0, 8, 0, 0]);
        c1.send(&v6).await;
        until(|| stats.totals().drops(DropReason::SpoofedSource) >= 7 * (round + 1)).await;
    }
    assert_eq!(stats.totals().drops(DropReason::SpoofedSource), 14);
    // host-2 may send from its own address and its LAN, host-1 from its own.
    let legit = udp4(H1, H2, 1, 2, b"legit");
    c1.send(&legit).await;
    assert_eq!(c2.recv().await, legit);
    let from_lan = udp4([192, 168, 200, 9], H1, 1, 2, b"from the LAN");
    c2.send(&from_lan).await;
    assert_eq!(c1.recv().await, from_lan);
    assert!(c2.recv_within(Duration::from_millis(100)).await.is_none(), "a spoofed packet was delivered");
    assert_eq!(stats.totals().drops(DropReason::SpoofedSource), 14);
}

#[tokio::test]
async fn with_an_ingress_an_empty_host_name_needs_a_rule() {
    let mut s = settings();
    s.ingress = Some(IngressSource::rules(Ingress::new([("host-1".to_owned(), NS1)])));
    let srv = start(s);
    // Every name is pinned; a client sending none does not get past.
    let (_c, r) = Client::connect(srv.addr, "", None).await;
    assert_eq!(r.status, Status::HostUnreachable);
    let (_c, r) = Client::connect(srv.addr, "", Some(NS1)).await;
    assert_eq!(r.status, Status::HostUnreachable);

    // A rule for the empty name admits it, to that namespace only.
    let mut s = settings();
    s.ingress = Some(IngressSource::rules(Ingress::new([("host-1".to_owned(), NS1), (String::new(), NS1)])));
    let srv = start(s);
    let (_c, r) = Client::connect(srv.addr, "", Some(NS1)).await;
    assert_eq!(r.status, Status::Ok);
    let (_c, r) = Client::connect(srv.addr, "", None).await;
    assert_eq!(r.status, Status::HostUnreachable);

    // Without an ingress, an empty host name is GOST's: accepted.
    let srv = start(settings());
    let (_c, r) = Client::connect(srv.addr, "", None).await;
    assert_eq!(r.status, Status::Ok);
}
