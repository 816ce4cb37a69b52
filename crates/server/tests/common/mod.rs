//! Shared loopback-test helpers: a server on 127.0.0.1 and raw relay clients.
#![allow(dead_code, unreachable_pub, clippy::expect_used, clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rgost_config::{ListenAddr, ListenerKind, defaults};
use rgost_relay::{Addr, DecodeError, Request, Response, Status, TunnelId, frame};
use rgost_routing::{Route, RouteTable};
use rgost_server::{Router, Server, Settings};
use rgost_transport::Listener;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

pub const T: Duration = Duration::from_secs(5);
pub const NS1: [u8; 16] =
    [0xe8, 0x7f, 0x56, 0xdd, 0xfd, 0x57, 0x49, 0x21, 0x9a, 0xb8, 0xa0, 0x84, 0x76, 0x62, 0xda, 0xae];

pub fn route(dst: &str, gateway: &str) -> Route {
    let dst = dst.parse().unwrap_or_else(|_| ipnet::IpNet::from(dst.parse::<IpAddr>().expect("address")));
    Route { dst, gateway: Arc::from(gateway) }
}

pub fn seed_table() -> RouteTable {
    RouteTable::new([
        route("192.168.123.1/32", "host-1"),
        route("192.168.100.0/24", "host-1"),
        route("192.168.123.2/32", "host-2"),
        route("192.168.200.0/24", "host-2"),
        route("192.168.123.3/32", "host-3"),
    ])
}

pub fn settings() -> Settings {
    Settings {
        read_timeout: Duration::from_millis(500),
        queue: rgost_server::QueueLimits { packets: 64, bytes: defaults::QUEUE_BYTES },
        host_queue_bytes: defaults::HOST_QUEUE_BYTES,
        server_queue_bytes: defaults::SERVER_QUEUE_BYTES,
        routers: HashMap::from([("router-0".to_owned(), Arc::new(Router::table(seed_table())))]),
        default_router: Some("router-0".to_owned()),
        auther: None,
        host_binding: None,
        service: "service-0".to_owned(),
        ingress: None,
        strict_source: true,
        max_request: 2048,
        max_connections: 64,
        max_connections_per_ip: 32,
        shaping: Default::default(),
    }
}

pub struct Running {
    pub server: Arc<Server>,
    pub addr: SocketAddr,
    pub stop: CancellationToken,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub fn start(settings: Settings) -> Running {
    let listener =
        Listener::bind(ListenAddr { ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)), port: 0 }, &ListenerKind::Tcp)
            .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = Server::new(settings);
    let stop = CancellationToken::new();
    tokio::spawn(Arc::clone(&server).serve(listener, stop.clone()));
    Running { server, addr, stop }
}

/// A raw client: handshake, then frames.
pub struct Client {
    pub stream: TcpStream,
    pub buf: BytesMut,
}

pub fn associate(host: &str, router_id: Option<[u8; 16]>) -> Vec<u8> {
    associate_as(None, host, router_id)
}

pub fn associate_as(auth: Option<(&str, &str)>, host: &str, router_id: Option<[u8; 16]>) -> Vec<u8> {
    let mut out = Vec::new();
    Request::associate(
        auth.map(|(u, p)| (u.as_bytes(), p.as_bytes())),
        Addr { host: rgost_relay::Host::Ipv4(Ipv4Addr::new(10, 0, 0, 2)), port: 0 },
        host.as_bytes(),
        router_id.map(TunnelId::from_uuid),
    )
    .encode(&mut out);
    out
}

pub async fn read_response(stream: &mut TcpStream, buf: &mut BytesMut) -> Option<Response> {
    loop {
        match Response::decode(buf) {
            Ok((r, used)) => {
                let _ = buf.split_to(used);
                return Some(r);
            }
            Err(DecodeError::Incomplete(_)) => {
                if timeout(T, stream.read_buf(buf)).await.ok()?.ok()? == 0 {
                    return None;
                }
            }
            Err(e) => panic!("bad response: {e}"),
        }
    }
}

impl Client {
    pub async fn connect(addr: SocketAddr, host: &str, router_id: Option<[u8; 16]>) -> (Client, Response) {
        Client::connect_as(addr, None, host, router_id).await
    }

    pub async fn connect_as(
        addr: SocketAddr,
        auth: Option<(&str, &str)>,
        host: &str,
        router_id: Option<[u8; 16]>,
    ) -> (Client, Response) {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.write_all(&associate_as(auth, host, router_id)).await.expect("send request");
        let mut buf = BytesMut::new();
        let response = read_response(&mut stream, &mut buf).await.expect("response");
        (Client { stream, buf }, response)
    }

    pub async fn ok(addr: SocketAddr, host: &str) -> Client {
        let (client, response) = Client::connect(addr, host, None).await;
        assert_eq!(response.status, Status::Ok);
        client
    }

    pub async fn send(&mut self, packet: &[u8]) {
        let mut out = Vec::new();
        assert!(frame::encode(packet, &mut out));
        self.stream.write_all(&out).await.expect("send frame");
    }

    /// The next packet, or None after `wait` without one.
    pub async fn recv_within(&mut self, wait: Duration) -> Option<Vec<u8>> {
        loop {
            if let Some((packet, rest)) = frame::split(&self.buf) {
                let packet = packet.to_vec();
                let used = self.buf.len() - rest.len();
                let _ = self.buf.split_to(used);
                return Some(packet);
            }
            match timeout(wait, self.stream.read_buf(&mut self.buf)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return None,
            }
        }
    }

    pub async fn recv(&mut self) -> Vec<u8> {
        self.recv_within(T).await.expect("a packet")
    }
}

/// An IPv4/UDP packet (checksums are not checked by the relay).
pub fn udp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let total = 28 + payload.len();
    let mut p = vec![0x45, 0, (total >> 8) as u8, total as u8, 0, 1, 0, 0, 64, 17, 0, 0];
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    p
}

pub const H1: [u8; 4] = [192, 168, 123, 1];
pub const H2: [u8; 4] = [192, 168, 123, 2];
pub const H3: [u8; 4] = [192, 168, 123, 3];

pub async fn until(mut cond: impl FnMut() -> bool) {
    for _ in 0..200 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached");
}
