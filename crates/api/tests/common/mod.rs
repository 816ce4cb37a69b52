//! A router service, its control, the web API and metrics, all in this
//! process on 127.0.0.1, and raw relay clients. No root needed.
#![allow(dead_code, unreachable_pub, clippy::expect_used, clippy::unwrap_used)]

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::BytesMut;
use rgost_api::{Endpoint, Web, WebAuth, WebListener};
use rgost_config::{Args, Document, ListenAddr, ListenerKind, ServiceKind};
use rgost_relay::{Addr, DecodeError, Host, Request, Response, Status, TunnelId, frame};
use rgost_server::control::Control;
use rgost_server::events::Events;
use rgost_server::service::Service;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

pub const T: Duration = Duration::from_secs(5);

pub struct Harness {
    pub relay: SocketAddr,
    pub api: String,
    pub metrics: String,
    pub web: Arc<Web>,
    pub stop: CancellationToken,
    pub http: reqwest::Client,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn localhost() -> ListenAddr {
    ListenAddr { ip: Some(Ipv4Addr::LOCALHOST.into()), port: 0 }
}

/// Starts everything `yaml` defines (router services on 127.0.0.1:0), and
/// the API and metrics endpoints its `api:` and `metrics:` sections define
/// (their addresses are replaced with 127.0.0.1:0).
pub async fn start(yaml: &str) -> Harness {
    let document = Document::parse(yaml, "test.yaml").expect("config");
    let loaded = document.validate().expect("valid config");
    let config = loaded.config;
    let stop = CancellationToken::new();
    let events = Events::new();
    let mut routers = Vec::new();
    let mut relay = None;
    for service in &config.services {
        if let ServiceKind::Router(router) = &service.kind {
            let (running, listener) =
                Service::start(&service.name, router, &config, &stop, &events).await.expect("start service");
            relay.get_or_insert(listener.local_addr().expect("addr"));
            tokio::spawn(Arc::clone(&running).serve(listener));
            routers.push(running);
        }
    }
    let control = Arc::new(Control::new(Args::default(), document, config.clone(), routers, events));
    let web = Web::new(control, Vec::new(), SystemTime::now(), config.services.len());
    web.spawn_sampler(stop.clone());

    let api_config = config.api.clone().expect("an api section");
    let api_listener = WebListener::bind(localhost(), &ListenerKind::Tcp).expect("bind api");
    let api_addr = api_listener.local_addr().expect("addr");
    let api_auth = Arc::new(WebAuth::new("@api"));
    let api_router = rgost_api::api_router(Arc::clone(&web), &api_config, Arc::clone(&api_auth), "@api");
    tokio::spawn(rgost_api::follow_auth(Arc::clone(&web), Endpoint::Api, api_auth, stop.clone()));
    tokio::spawn(api_listener.serve(api_router, stop.clone()));

    let metrics_config = config.metrics.clone().expect("a metrics section");
    let metrics_listener = WebListener::bind(localhost(), &ListenerKind::Tcp).expect("bind metrics");
    let metrics_addr = metrics_listener.local_addr().expect("addr");
    let metrics_auth = Arc::new(WebAuth::new("@metrics"));
    let metrics_router =
        rgost_api::metrics_router(Arc::clone(&web), &metrics_config, Arc::clone(&metrics_auth), "@metrics");
    tokio::spawn(rgost_api::follow_auth(Arc::clone(&web), Endpoint::Metrics, metrics_auth, stop.clone()));
    tokio::spawn(metrics_listener.serve(metrics_router, stop.clone()));
    // Let the auth followers read the config once.
    tokio::time::sleep(Duration::from_millis(100)).await;

    Harness {
        relay: relay.expect("a router service"),
        api: format!("http://{api_addr}{}", api_config.path_prefix),
        metrics: format!("http://{metrics_addr}{}", metrics_config.path),
        web,
        stop,
        http: reqwest::Client::builder().timeout(T).build().unwrap(),
    }
}

/// A raw relay client: handshake, then frames.
pub struct Client {
    pub stream: TcpStream,
    pub buf: BytesMut,
}

impl Client {
    pub async fn connect(addr: SocketAddr, host: &str, router_id: Option<TunnelId>) -> Client {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let mut out = Vec::new();
        Request::associate(
            None,
            Addr { host: Host::Ipv4(Ipv4Addr::new(10, 0, 0, 9)), port: 0 },
            host.as_bytes(),
            router_id,
        )
        .encode(&mut out);
        stream.write_all(&out).await.expect("send request");
        let mut buf = BytesMut::new();
        let response = loop {
            match Response::decode(&buf) {
                Ok((r, used)) => {
                    let _ = buf.split_to(used);
                    break r;
                }
                Err(DecodeError::Incomplete(_)) => {
                    assert!(timeout(T, stream.read_buf(&mut buf)).await.unwrap().unwrap() > 0, "closed");
                }
                Err(e) => panic!("bad response: {e}"),
            }
        };
        assert_eq!(response.status, Status::Ok);
        Client { stream, buf }
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
}

/// An IPv4/UDP packet.
pub fn udp4(src: [u8; 4], dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let total = 28 + payload.len();
    let mut p = vec![0x45, 0, (total >> 8) as u8, total as u8, 0, 1, 0, 0, 64, 17, 0, 0];
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(&1000u16.to_be_bytes());
    p.extend_from_slice(&2000u16.to_be_bytes());
    p.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    p
}

/// Polls `cond` until it holds (5 s at most).
pub async fn until<F: Future<Output = bool>>(mut cond: impl FnMut() -> F) {
    for _ in 0..100 {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not reached");
}

/// Prometheus text: `name{labels}` -> value, for every sample line.
pub fn parse_metrics(text: &str) -> std::collections::BTreeMap<String, f64> {
    let mut out = std::collections::BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad sample line {line:?}"));
        let value = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        assert!(out.insert(series.to_owned(), value).is_none(), "duplicate series {series}");
    }
    out
}
