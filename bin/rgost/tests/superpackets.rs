//! Super-packets end to end (issue 14): between rgost clients whose TUN
//! devices have offload, TCP super-packets cross the server whole (GSO
//! frames) in both directions; a client without offload (which does not
//! ask for them) gets ordinary packets cut by the server, and its own
//! packets reach the other side as before. Data arrives intact either way.

// Blocking test code timing real processes: std Instant is right here.
#![allow(clippy::disallowed_types, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;

const SERVER_YAML: &str = "\
services:
  - name: service-0
    addr: :8443
    handler:
      type: router
      metadata:
        router: router-0
    listener:
      type: tcp
routers:
  - name: router-0
    routes:
      - dst: 192.168.123.1
        gateway: host-1
      - dst: 192.168.123.2
        gateway: host-2
      - dst: 192.168.123.3
        gateway: host-3
";

/// The `gso_frames_in` the server logged when `host`'s connection closed.
fn gso_frames_in(server_log: &str, host: &str) -> u64 {
    server_log
        .lines()
        .filter(|l| l.contains("disconnected") && l.contains(&format!("host={host}")))
        .filter_map(|l| l.split("gso_frames_in=").nth(1)?.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn super_packets_cross_the_server_whole_and_are_cut_for_peers_without_offload() {
    if !can_run() {
        return;
    }
    let dir = TempDir::new("gso");
    let server_ns = Netns::new("srv");
    let h1 = Netns::new("h1");
    let h2 = Netns::new("h2");
    let h3 = Netns::new("h3");
    veth(&server_ns, "10.15.1.1/24", &h1, "10.15.1.2/24");
    veth(&server_ns, "10.15.2.1/24", &h2, "10.15.2.2/24");
    veth(&server_ns, "10.15.3.1/24", &h3, "10.15.3.2/24");
    let yaml = dir.write("server.yaml", SERVER_YAML);
    let mut server = Rgost::start(&server_ns, &dir, "server", &["-C", yaml.to_str().expect("path")]);
    let client = |ns: &Netns, host: &str, addr: &str, server: &str, offload: bool| {
        let listen = format!("tun:///{host}?net={addr}/24&offload={offload}");
        Rgost::start(ns, &dir, host, &["-L", &listen, "-F", &format!("router://{server}:8443")])
    };
    let mut c1 = client(&h1, "host-1", "192.168.123.1", "10.15.1.1", true);
    let mut c2 = client(&h2, "host-2", "192.168.123.2", "10.15.2.1", true);
    let mut c3 = client(&h3, "host-3", "192.168.123.3", "10.15.3.1", false);
    for (ns, to) in [(&h1, "192.168.123.2"), (&h1, "192.168.123.3"), (&h3, "192.168.123.2")] {
        assert!(wait_until(Duration::from_secs(20), || ns.ping(to, 1)), "no tunnel to {to}");
    }
    let log = server.log();
    assert!(log.lines().any(|l| l.contains("host=host-1") && l.contains("gso=true")), "host-1 not granted: {log}");
    assert!(log.lines().any(|l| l.contains("host=host-3") && l.contains("gso=false")), "host-3 granted: {log}");

    // Both rgost clients with offload: each way, 8 MB intact.
    let data = pattern(8 << 20, 1);
    assert!(tcp_transfer(&h1, &h2, "192.168.123.2", 5001, data.clone(), Duration::from_secs(60)) == data);
    let data = pattern(8 << 20, 2);
    assert!(tcp_transfer(&h2, &h1, "192.168.123.1", 5002, data.clone(), Duration::from_secs(60)) == data);
    // To and from the client without offload: the server cuts super-packets for it.
    let data = pattern(8 << 20, 3);
    assert!(tcp_transfer(&h1, &h3, "192.168.123.3", 5003, data.clone(), Duration::from_secs(60)) == data);
    let data = pattern(8 << 20, 4);
    assert!(tcp_transfer(&h3, &h1, "192.168.123.1", 5004, data.clone(), Duration::from_secs(60)) == data);

    for c in [&mut c1, &mut c2, &mut c3] {
        assert!(c.terminate().is_some_and(|s| s.success()));
    }
    assert!(wait_until(Duration::from_secs(5), || server.log().matches("disconnected").count() >= 3));
    let log = server.log();
    assert!(gso_frames_in(&log, "host-1") > 10, "host-1 sent no super-packets: {log}");
    assert!(gso_frames_in(&log, "host-2") > 10, "host-2 sent no super-packets: {log}");
    assert_eq!(gso_frames_in(&log, "host-3"), 0, "a client without offload sent a GSO frame");
    assert!(server.terminate().is_some_and(|s| s.success()));
}

/// A GOST-shaped router server for two hosts: answers each ASSOCIATE with
/// the spec's success response (a connector id with zero flag, reserved
/// and weight bytes) and relays frames between the two connections byte for
/// byte, checking that each is an ordinary IP packet.
fn gost_shaped_server(ns: &Netns, addr: &str) -> std::thread::JoinHandle<(Vec<Vec<u8>>, u64)> {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    let bind: std::net::SocketAddr = addr.parse().expect("address");
    ns.run(move || {
        let listener = TcpListener::bind(bind).expect("bind");
        let mut requests = Vec::new();
        let mut conns: Vec<TcpStream> = Vec::new();
        for _ in 0..2 {
            let (mut stream, _) = listener.accept().expect("accept");
            let mut buf = Vec::new();
            let mut chunk = [0u8; 512];
            let used = loop {
                match rgost_relay::Request::decode(&buf) {
                    Ok((_, used)) => break used,
                    Err(_) => {
                        let n = stream.read(&mut chunk).expect("read request");
                        assert!(n > 0, "closed during the handshake");
                        buf.extend_from_slice(&chunk[..n]);
                    }
                }
            };
            requests.push(buf[..used].to_vec());
            let mut response = Vec::new();
            rgost_relay::Response::ok(rgost_relay::TunnelId::from_uuid([0x3f; 16])).encode(&mut response);
            stream.write_all(&response).expect("respond");
            conns.push(stream);
        }
        // Relay both ways, frame by frame; count frames that are not IP packets.
        let not_ip = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let pump = |mut from: TcpStream, mut to: TcpStream, not_ip: std::sync::Arc<std::sync::atomic::AtomicU64>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = vec![0u8; 65536];
                loop {
                    let Ok(n) = from.read(&mut chunk) else { return };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some((packet, rest)) = rgost_relay::frame::split(&buf) {
                        if !matches!(packet.first().map(|b| b >> 4), Some(4 | 6)) {
                            not_ip.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        let used = buf.len() - rest.len();
                        if to.write_all(&buf[..used]).is_err() {
                            return;
                        }
                        buf.drain(..used);
                    }
                }
            })
        };
        let (a, b) = (conns.remove(0), conns.remove(0));
        let ab = pump(a.try_clone().expect("clone"), b.try_clone().expect("clone"), not_ip.clone());
        let ba = pump(b, a, not_ip.clone());
        let _ = ab.join();
        let _ = ba.join();
        (requests, not_ip.load(std::sync::atomic::Ordering::Relaxed))
    })
}

#[test]
fn rgost_clients_with_offload_send_a_gost_shaped_server_only_ordinary_packets() {
    if !can_run() {
        return;
    }
    let dir = TempDir::new("gso-gost");
    let server_ns = Netns::new("srv");
    let h1 = Netns::new("h1");
    let h2 = Netns::new("h2");
    veth(&server_ns, "10.16.1.1/24", &h1, "10.16.1.2/24");
    veth(&server_ns, "10.16.2.1/24", &h2, "10.16.2.2/24");
    let server = gost_shaped_server(&server_ns, "0.0.0.0:8443");
    std::thread::sleep(Duration::from_millis(200));
    let mut c1 = Rgost::start(
        &h1,
        &dir,
        "host-1",
        &["-L", "tun:///host-1?net=192.168.123.1/24", "-F", "router://10.16.1.1:8443"],
    );
    std::thread::sleep(Duration::from_millis(300));
    let mut c2 = Rgost::start(
        &h2,
        &dir,
        "host-2",
        &["-L", "tun:///host-2?net=192.168.123.2/24", "-F", "router://10.16.2.1:8443"],
    );
    assert!(
        wait_until(Duration::from_secs(20), || h1.ping("192.168.123.2", 1)),
        "no tunnel through the GOST-shaped server"
    );
    let data = pattern(8 << 20, 5);
    assert!(tcp_transfer(&h1, &h2, "192.168.123.2", 5005, data.clone(), Duration::from_secs(60)) == data);
    for c in [&mut c1, &mut c2] {
        assert!(c.terminate().is_some_and(|s| s.success()));
    }
    let (requests, not_ip) = server.join().expect("server");
    assert_eq!(not_ip, 0, "a GSO frame (or another non-IP frame) reached a GOST-shaped server");
    // The request is GOST's, but for the source address, named ADDR/gso.
    let mut gost = Vec::new();
    let src = rgost_relay::Addr { host: rgost_relay::Host::Ipv4(std::net::Ipv4Addr::new(192, 168, 123, 1)), port: 0 };
    rgost_relay::Request::associate(None, src, b"host-1", None).encode(&mut gost);
    let (ours, _) = rgost_relay::Request::decode(&requests[0]).expect("request");
    let info = ours.associate_info();
    assert_eq!(info.src.map(|a| a.host.clone()), Some(rgost_relay::Host::Domain(b"192.168.123.1/gso".to_vec())));
    let (theirs, _) = rgost_relay::Request::decode(&gost).expect("request");
    assert_eq!(ours.command, theirs.command);
    assert_eq!(info.dst, theirs.associate_info().dst);
    assert_eq!(info.router_id, theirs.associate_info().router_id);
    assert_eq!(info.auth, theirs.associate_info().auth);
}
