//! The router server over loopback, driven by raw relay-protocol clients:
//! handshake and statuses, routing, drops, same-host flows, disconnects and
//! a receiver that stops reading. No TUN, no root.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rgost_relay::{Addr, Command, Request, Status, TunnelId, frame};
use rgost_routing::{Ingress, RouteTable};
use rgost_server::{DropReason, IngressSource, Router, Settings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

mod common;
use common::*;

#[tokio::test]
async fn handshake_ok_gives_fresh_connector_ids() {
    let srv = start(settings());
    let (_a, ra) = Client::connect(srv.addr, "host-1", None).await;
    let (_b, rb) = Client::connect(srv.addr, "host-2", Some(NS1)).await;
    assert_eq!(ra.status, Status::Ok);
    assert_eq!(rb.status, Status::Ok);
    let (ia, ib) = (ra.connector_id().expect("id"), rb.connector_id().expect("id"));
    assert!(!ia.is_zero() && ia != ib);
}

#[tokio::test]
async fn bad_version_closes_without_reply() {
    let srv = start(settings());
    let mut stream = TcpStream::connect(srv.addr).await.expect("connect");
    let mut request = associate("host-1", None);
    request[0] = 0x05;
    stream.write_all(&request).await.expect("send");
    let mut buf = Vec::new();
    let n = timeout(T, stream.read_to_end(&mut buf)).await.expect("closed in time").unwrap_or(0);
    assert_eq!(n, 0, "no reply expected, got {buf:02x?}");
}

#[tokio::test]
async fn other_commands_get_bad_request() {
    let srv = start(settings());
    for command in [Command::Connect, Command::Bind] {
        let mut stream = TcpStream::connect(srv.addr).await.expect("connect");
        let mut out = Vec::new();
        Request { command, features: vec![] }.encode(&mut out);
        stream.write_all(&out).await.expect("send");
        let mut buf = Vec::new();
        timeout(T, stream.read_to_end(&mut buf)).await.expect("closed").expect("read");
        assert_eq!(buf, [0x01, 0x01, 0x00, 0x00]);
    }
}

#[tokio::test]
async fn handshake_read_is_bounded_in_time() {
    let srv = start(settings());
    let mut stream = TcpStream::connect(srv.addr).await.expect("connect");
    stream.write_all(&[0x01, 0x03, 0x00]).await.expect("send partial");
    let mut buf = Vec::new();
    let started = tokio::time::Instant::now();
    let n = timeout(T, stream.read_to_end(&mut buf)).await.expect("closed by the server").unwrap_or(0);
    assert_eq!(n, 0);
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert!(srv.server.stats().refused_total() >= 1);
}

#[tokio::test]
async fn ingress_refuses_wrong_namespace() {
    let mut s = settings();
    s.ingress = Some(IngressSource::rules(Ingress::new([("host-1".to_owned(), NS1)])));
    let srv = start(s);
    let (_c, r) = Client::connect(srv.addr, "host-1", None).await;
    assert_eq!(r.status, Status::HostUnreachable);
    let (_c, r) = Client::connect(srv.addr, "host-1", Some(NS1)).await;
    assert_eq!(r.status, Status::Ok);
    // No rule: only the zero id is allowed.
    let (_c, r) = Client::connect(srv.addr, "host-9", Some(NS1)).await;
    assert_eq!(r.status, Status::HostUnreachable);
    let (_c, r) = Client::connect(srv.addr, "host-9", None).await;
    assert_eq!(r.status, Status::Ok);
}

#[tokio::test]
async fn routes_by_host_address_and_cidr_both_ways() {
    let srv = start(settings());
    let mut c1 = Client::ok(srv.addr, "host-1").await;
    let mut c2 = Client::ok(srv.addr, "host-2").await;
    let p = udp4(H1, H2, 1000, 2000, b"hi");
    c1.send(&p).await;
    assert_eq!(c2.recv().await, p);
    let lan = udp4(H2, [192, 168, 100, 7], 1000, 2000, b"to the LAN");
    c2.send(&lan).await;
    assert_eq!(c1.recv().await, lan);
    // The spec's example frame, byte for byte.
    let spec = [
        0x45, 0x00, 0x00, 0x16, 0x12, 0x34, 0x00, 0x00, 0x40, 0x11, 0xf1, 0x4e, 0xc0, 0xa8, 0x7b, 0x01, 0xc0, 0xa8,
        0x7b, 0x02, 0x68, 0x69,
    ];
    c1.stream.write_all(&[&[0x00, 0x16][..], &spec[..]].concat()).await.expect("send");
    assert_eq!(c2.recv().await, spec);
}

#[tokio::test]
async fn drops_are_counted_and_the_stream_goes_on() {
    let srv = start(settings());
    let mut c1 = Client::ok(srv.addr, "host-1").await;
    let mut c2 = Client::ok(srv.addr, "host-2").await;
    c1.send(&[]).await; // zero-length frame
    c1.send(&[0x00, 0x01, 0x02]).await; // not IP
    c1.send(&[0x45, 0x00]).await; // truncated IPv4
    c1.send(&udp4(H1, [10, 9, 9, 9], 1, 2, b"no route")).await;
    c1.send(&udp4(H1, H3, 1, 2, b"no host-3 connected")).await;
    let good = udp4(H1, H2, 1, 2, b"still flowing");
    c1.send(&good).await;
    assert_eq!(c2.recv().await, good);
    let stats = &srv.server;
    until(|| stats.totals().drops(DropReason::NoHost) == 1).await;
    assert_eq!(stats.totals().drops(DropReason::ZeroLength), 1);
    assert_eq!(stats.totals().drops(DropReason::NotIp), 2);
    assert_eq!(stats.totals().drops(DropReason::NoRoute), 1);
}

#[tokio::test]
async fn frames_split_across_reads() {
    let srv = start(settings());
    let mut c1 = Client::ok(srv.addr, "host-1").await;
    let mut c2 = Client::ok(srv.addr, "host-2").await;
    let p = udp4(H1, H2, 5, 6, &[7u8; 1000]);
    let mut framed = Vec::new();
    frame::encode(&p, &mut framed);
    framed.extend_from_slice(&framed.clone());
    for chunk in framed.chunks(7) {
        c1.stream.write_all(chunk).await.expect("send");
        c1.stream.flush().await.expect("flush");
    }
    assert_eq!(c2.recv().await, p);
    assert_eq!(c2.recv().await, p);
}

#[tokio::test]
async fn request_and_first_frames_in_one_write() {
    let srv = start(settings());
    let mut c2 = Client::ok(srv.addr, "host-2").await;
    let mut stream = TcpStream::connect(srv.addr).await.expect("connect");
    let p = udp4(H1, H2, 5, 6, b"early");
    let mut bytes = associate("host-1", None);
    frame::encode(&p, &mut bytes);
    stream.write_all(&bytes).await.expect("send");
    assert_eq!(c2.recv().await, p);
}

#[tokio::test]
async fn the_newest_connection_of_a_host_receives_and_standbys_take_over() {
    let srv = start(settings());
    let mut sender = Client::ok(srv.addr, "host-1").await;
    let mut a = Client::ok(srv.addr, "host-2").await;
    let mut b = Client::ok(srv.addr, "host-2").await;
    let mut c = Client::ok(srv.addr, "host-2").await;
    until(|| srv.server.connections(&TunnelId::ZERO, "host-2") == 3).await;

    // Every flow goes to the newest connection, c; the others get nothing.
    let send_flows = |tag: &'static [u8]| {
        let packets: Vec<Vec<u8>> = (0..64u16).map(|port| udp4(H1, H2, 10_000 + port, 53, tag)).collect();
        packets
    };
    for p in send_flows(b"one") {
        sender.send(&p).await;
    }
    let mut got = 0;
    while c.recv_within(Duration::from_millis(300)).await.is_some() {
        got += 1;
    }
    assert_eq!(got, 64, "all flows on the newest connection");
    assert!(a.recv_within(Duration::from_millis(50)).await.is_none());
    assert!(b.recv_within(Duration::from_millis(50)).await.is_none());

    // A standby closing changes nothing; the receiver closing hands every
    // flow to the newest standby.
    drop(a);
    until(|| srv.server.connections(&TunnelId::ZERO, "host-2") == 2).await;
    drop(c);
    until(|| srv.server.connections(&TunnelId::ZERO, "host-2") == 1).await;
    for p in send_flows(b"two") {
        sender.send(&p).await;
    }
    let mut got = 0;
    while b.recv_within(Duration::from_millis(300)).await.is_some() {
        got += 1;
    }
    assert_eq!(got, 64, "all flows moved to the remaining standby");
}

#[tokio::test]
async fn a_frozen_receiver_loses_its_host_to_its_replacement_at_once() {
    let srv = start(settings());
    let mut sender = Client::ok(srv.addr, "host-1").await;
    // The old connection is alive as far as TCP knows but never reads (a
    // frozen process, or a path that died behind a NAT).
    let _frozen = Client::ok(srv.addr, "host-2").await;
    let mut replacement = Client::ok(srv.addr, "host-2").await;
    until(|| srv.server.connections(&TunnelId::ZERO, "host-2") == 2).await;
    for port in 0..64u16 {
        sender.send(&udp4(H1, H2, 20_000 + port, 53, b"x")).await;
    }
    let mut got = 0;
    while replacement.recv_within(Duration::from_millis(300)).await.is_some() {
        got += 1;
    }
    assert_eq!(got, 64);
}

#[tokio::test]
async fn a_closed_connection_is_removed_at_once() {
    let srv = start(settings());
    let mut c1 = Client::ok(srv.addr, "host-1").await;
    let c2 = Client::ok(srv.addr, "host-2").await;
    assert_eq!(srv.server.connections(&TunnelId::ZERO, "host-2"), 1);
    drop(c2);
    until(|| srv.server.connections(&TunnelId::ZERO, "host-2") == 0).await;
    c1.send(&udp4(H1, H2, 1, 2, b"x")).await;
    let stats = &srv.server;
    until(|| stats.totals().drops(DropReason::NoHost) == 1).await;
    // A replacement registers under the same name and gets traffic.
    let mut again = Client::ok(srv.addr, "host-2").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let p = udp4(H1, H2, 1, 2, b"y");
    c1.send(&p).await;
    assert_eq!(again.recv().await, p);
}

#[tokio::test]
async fn namespaces_are_isolated() {
    let mut s = settings();
    s.routers.insert(TunnelId::from_uuid(NS1).to_string(), Arc::new(Router::table(seed_table())));
    let srv = start(s);
    let mut a1 = Client::connect(srv.addr, "host-1", Some(NS1)).await.0;
    let mut a2 = Client::connect(srv.addr, "host-2", Some(NS1)).await.0;
    let mut z2 = Client::ok(srv.addr, "host-2").await;
    let p = udp4(H1, H2, 1, 2, b"ns1");
    a1.send(&p).await;
    assert_eq!(a2.recv().await, p);
    assert!(z2.recv_within(Duration::from_millis(300)).await.is_none(), "packet leaked into the zero namespace");
}

#[tokio::test]
async fn a_receiver_that_stops_reading_does_not_stall_others() {
    let srv = start(settings());
    let mut sender = Client::ok(srv.addr, "host-1").await;
    let _stuck = Client::ok(srv.addr, "host-2").await; // never reads
    let mut healthy = Client::ok(srv.addr, "host-3").await;
    let big = udp4(H1, H2, 1, 2, &[0u8; 1400]);
    let mut burst = Vec::new();
    for _ in 0..200 {
        frame::encode(&big, &mut burst);
    }
    // Enough to fill the stuck peer's socket buffers and queue many times over.
    for _ in 0..100 {
        timeout(T, sender.stream.write_all(&burst)).await.expect("sender never blocks").expect("send");
    }
    let p = udp4(H1, H3, 1, 2, b"still served");
    sender.send(&p).await;
    assert_eq!(healthy.recv().await, p);
    assert!(srv.server.totals().drops(DropReason::QueueFull) > 0);
}

#[tokio::test]
async fn spoofed_sources_are_dropped_unless_turned_off() {
    let srv = start(settings());
    let mut c1 = Client::ok(srv.addr, "host-1").await;
    let mut c2 = Client::ok(srv.addr, "host-2").await;
    // host-1 claims host-3's address, then an address nobody routes.
    c1.send(&udp4(H3, H2, 1, 2, b"spoofed")).await;
    c1.send(&udp4([8, 8, 8, 8], H2, 1, 2, b"spoofed")).await;
    let good = udp4([192, 168, 100, 9], H2, 1, 2, b"from host-1's LAN");
    c1.send(&good).await;
    assert_eq!(c2.recv().await, good);
    assert_eq!(srv.server.totals().drops(DropReason::SpoofedSource), 2);

    let mut s = settings();
    s.strict_source = false;
    let srv = start(s);
    let mut c1 = Client::ok(srv.addr, "host-1").await;
    let mut c2 = Client::ok(srv.addr, "host-2").await;
    let p = udp4([8, 8, 8, 8], H2, 1, 2, b"allowed");
    c1.send(&p).await;
    assert_eq!(c2.recv().await, p);
}

/// A plugin stand-in: answers from a table after a delay, counting calls.
#[derive(Debug)]
struct FakePlugin {
    table: RouteTable,
    delay: Duration,
    calls: std::sync::atomic::AtomicUsize,
    ids: std::sync::Mutex<Vec<TunnelId>>,
}

impl rgost_server::router::RouteResolver for FakePlugin {
    fn resolve(
        &self,
        dst: IpAddr,
        router_id: TunnelId,
    ) -> std::pin::Pin<Box<dyn Future<Output = Option<Arc<str>>> + Send>> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.ids.lock().unwrap().push(router_id);
        let answer = self.table.lookup(dst).cloned();
        let delay = self.delay;
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            answer
        })
    }
}

fn plugin_settings(delay: Duration, ttl: Duration) -> (Settings, Arc<FakePlugin>) {
    let plugin =
        Arc::new(FakePlugin { table: seed_table(), delay, calls: Default::default(), ids: Default::default() });
    let mut s = settings();
    s.routers.insert("router-0".to_owned(), Arc::new(Router::plugin(plugin.clone(), ttl)));
    (s, plugin)
}

#[tokio::test]
async fn plugin_router_holds_coalesces_and_caches() {
    let (s, plugin) = plugin_settings(Duration::from_millis(200), Duration::from_secs(60));
    let srv = start(s);
    let mut c1 = Client::ok(srv.addr, "host-1").await;
    let mut c2 = Client::ok(srv.addr, "host-2").await;
    // Ten packets to one destination while its lookups run (the source, for
    // the source check, and the destination): one lookup per address, a few
    // packets held and delivered when both answer, the rest dropped.
    for i in 0..10u8 {
        c1.send(&udp4(H1, H2, 1, 2, &[i])).await;
    }
    let mut got = 0;
    while c2.recv_within(Duration::from_millis(800)).await.is_some() {
        got += 1;
    }
    assert_eq!(got, rgost_forward::lookup::MAX_HELD_PER_ADDRESS);
    assert_eq!(plugin.calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert_eq!(srv.server.totals().drops(DropReason::PluginPendingFull), 6);
    assert_eq!(plugin.ids.lock().unwrap()[0], TunnelId::ZERO);
    // Cached now: delivered at once, no new lookup.
    let p = udp4(H1, H2, 1, 2, b"cached");
    c1.send(&p).await;
    assert_eq!(c2.recv_within(Duration::from_millis(100)).await.as_deref(), Some(&p[..]));
    assert_eq!(plugin.calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    // "No route" is cached too.
    c1.send(&udp4(H1, [10, 1, 1, 1], 1, 2, b"x")).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    c1.send(&udp4(H1, [10, 1, 1, 1], 1, 2, b"x")).await;
    let stats = &srv.server;
    until(|| stats.totals().drops(DropReason::NoRoute) == 2).await;
    assert_eq!(plugin.calls.load(std::sync::atomic::Ordering::SeqCst), 3);
}

#[tokio::test]
async fn plugin_answers_expire() {
    let (s, plugin) = plugin_settings(Duration::ZERO, Duration::from_millis(200));
    let srv = start(s);
    let mut c1 = Client::ok(srv.addr, "host-1").await;
    let mut c2 = Client::ok(srv.addr, "host-2").await;
    let p = udp4(H1, H2, 1, 2, b"x");
    c1.send(&p).await;
    assert_eq!(c2.recv().await, p);
    c1.send(&p).await;
    assert_eq!(c2.recv().await, p);
    assert_eq!(plugin.calls.load(std::sync::atomic::Ordering::SeqCst), 2, "source and destination");
    tokio::time::sleep(Duration::from_millis(300)).await;
    c1.send(&p).await;
    assert_eq!(c2.recv().await, p);
    assert_eq!(plugin.calls.load(std::sync::atomic::Ordering::SeqCst), 4);
}

#[tokio::test]
async fn a_slow_plugin_never_stalls_table_routed_traffic() {
    let (mut s, _plugin) = plugin_settings(Duration::from_secs(30), Duration::from_secs(1));
    s.routers.insert(TunnelId::from_uuid(NS1).to_string(), Arc::new(Router::table(seed_table())));
    let srv = start(s);
    let mut slow = Client::ok(srv.addr, "host-1").await;
    let mut a1 = Client::connect(srv.addr, "host-1", Some(NS1)).await.0;
    let mut a2 = Client::connect(srv.addr, "host-2", Some(NS1)).await.0;
    for port in 0..50u16 {
        slow.send(&udp4(H1, [10, 0, (port >> 8) as u8, port as u8], port, 2, b"stuck")).await;
    }
    let p = udp4(H1, H2, 1, 2, b"unaffected");
    a1.send(&p).await;
    assert_eq!(a2.recv_within(Duration::from_millis(500)).await.as_deref(), Some(&p[..]));
    // And the plugin namespace's own reader is not stuck either.
    slow.send(&udp4(H1, H2, 1, 2, b"x")).await;
}

async fn raw_handshake(addr: SocketAddr, auth: Option<(&[u8], &[u8])>, host: &str) -> Vec<u8> {
    raw_handshake_in(addr, auth, host, None).await
}

async fn raw_handshake_in(
    addr: SocketAddr,
    auth: Option<(&[u8], &[u8])>,
    host: &str,
    router_id: Option<[u8; 16]>,
) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let mut out = Vec::new();
    Request::associate(
        auth,
        Addr { host: rgost_relay::Host::Ipv4(Ipv4Addr::new(10, 0, 0, 2)), port: 0 },
        host.as_bytes(),
        router_id.map(TunnelId::from_uuid),
    )
    .encode(&mut out);
    stream.write_all(&out).await.expect("send");
    let mut buf = BytesMut::new();
    let response = read_response(&mut stream, &mut buf).await.expect("response");
    let mut bytes = Vec::new();
    response.encode(&mut bytes);
    bytes
}

#[tokio::test]
async fn authentication_and_host_binding() {
    use rgost_routing::{HostBinding, HostRule};
    use rgost_server::auth::Auther;
    let mut s = settings();
    s.auther = Some(Auther::users(HashMap::from([("alice".to_owned(), "s3cret".to_owned())])));
    let srv = start(s);
    assert_eq!(raw_handshake(srv.addr, Some((b"alice", b"wrong")), "host-1").await, [0x01, 0x02, 0x00, 0x00]);
    assert_eq!(raw_handshake(srv.addr, None, "host-1").await, [0x01, 0x02, 0x00, 0x00]);
    assert_eq!(raw_handshake(srv.addr, Some((b"alice", b"s3cret")), "host-1").await[..2], [0x01, 0x00]);

    let mut s = settings();
    s.auther = Some(Auther::users(HashMap::from([("alice".to_owned(), "s3cret".to_owned())])));
    let ns1 = TunnelId::from_uuid(NS1);
    s.host_binding = Some(HostBinding::new([(
        "alice".to_owned(),
        vec![HostRule::parse("host-1").unwrap(), HostRule::parse(&format!("host-2@{ns1}")).unwrap()],
    )]));
    let srv = start(s);
    let alice = Some((&b"alice"[..], &b"s3cret"[..]));
    assert_eq!(raw_handshake(srv.addr, alice, "host-1").await[..2], [0x01, 0x00]);
    assert_eq!(raw_handshake(srv.addr, alice, "host-3").await, [0x01, 0x03, 0x00, 0x00]);
    // host-2 only in NS1: another tenant's (the zero namespace's) host-2 is refused.
    assert_eq!(raw_handshake(srv.addr, alice, "host-2").await, [0x01, 0x03, 0x00, 0x00]);
    assert_eq!(raw_handshake_in(srv.addr, alice, "host-2", Some(NS1)).await[..2], [0x01, 0x00]);
}

#[tokio::test]
async fn connection_limit_per_address() {
    let mut s = settings();
    s.max_connections_per_ip = 3;
    let srv = start(s);
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(Client::ok(srv.addr, "host-1").await);
    }
    // The fourth is closed at once, without a reply.
    let mut stream = TcpStream::connect(srv.addr).await.expect("connect");
    let _ = stream.write_all(&associate("host-1", None)).await;
    let mut buf = Vec::new();
    let n = timeout(T, stream.read_to_end(&mut buf)).await.expect("closed").unwrap_or(0);
    assert_eq!(n, 0);
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    Client::ok(srv.addr, "host-1").await;
}
