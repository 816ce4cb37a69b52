//! Router servers as a cluster on loopback: a real redis-server (started
//! here on a free port, as `.ci/run` installs it), several nodes in this
//! process, raw relay clients. Packets cross nodes; the newest registration
//! of a host wins on every node; a node with another secret gets nothing;
//! a redis restart does not stop traffic and registrations come back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use rgost_config::{ClusterSettings, ListenAddr, ListenerKind, PluginConfig, SdBackend, SdConfig, SdRedis, defaults};
use rgost_forward::DropReason;
use rgost_server::Server;
use rgost_transport::Listener;
use tokio_util::sync::CancellationToken;

const SECRET: &str = "a cluster secret of some length";

/// A redis-server on a loopback port, stopped on drop; restartable on the same port.
struct Redis {
    port: u16,
    child: Option<Child>,
    dir: PathBuf,
}

fn free_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap().port()
}

impl Redis {
    async fn start() -> Redis {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("rgost-cluster-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut redis = Redis { port, child: None, dir };
        redis.run().await;
        redis
    }

    async fn run(&mut self) {
        // No persistence: a restart loses everything, the hardest case.
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is needed for these tests (apt-get install redis-server; .ci/run installs it)");
        self.child = Some(child);
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server did not start");
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A sentinel watching `master` as `mymaster`, stopped on drop.
struct Sentinel {
    port: u16,
    child: Child,
    dir: PathBuf,
}

impl Sentinel {
    async fn start(master: &Redis) -> Sentinel {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("rgost-cluster-sentinel-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // A sentinel rewrites its config file: it lives in a scratch directory.
        let conf = dir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\nsentinel monitor mymaster 127.0.0.1 {} 1\n",
                dir.display(),
                master.port
            ),
        )
        .unwrap();
        let child = Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server --sentinel");
        // Dropped (killed and waited for) if it never listens.
        let sentinel = Sentinel { port, child, dir };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return sentinel;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the sentinel did not start");
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn cluster_settings(redis: &Redis, prefix: &str, secret: &str) -> ClusterSettings {
    cluster_settings_at(vec![format!("127.0.0.1:{}", redis.port)], None, prefix, secret)
}

fn cluster_settings_at(addrs: Vec<String>, sentinel: Option<&str>, prefix: &str, secret: &str) -> ClusterSettings {
    let port = free_port();
    ClusterSettings {
        sd: SdConfig {
            name: "sd-0".into(),
            backend: SdBackend::Redis(SdRedis {
                addrs,
                sentinel: sentinel.map(str::to_owned),
                db: 0,
                username: None,
                password: None,
                prefix: prefix.into(),
            }),
        },
        entrypoint: ListenAddr { ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)), port },
        advertise: format!("127.0.0.1:{port}"),
        node_secret: secret.into(),
        renew_interval: Duration::from_secs(1),
        cache_expiration: Duration::from_millis(200),
        node_queue_bytes: defaults::NODE_QUEUE_BYTES,
    }
}

struct Node {
    server: Arc<Server>,
    addr: SocketAddr,
    stop: CancellationToken,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn node(redis: &Redis, prefix: &str, secret: &str) -> Node {
    node_with(&cluster_settings(redis, prefix, secret)).await
}

async fn node_with(cluster: &ClusterSettings) -> Node {
    let stop = CancellationToken::new();
    let server = Server::clustered(settings(), Default::default(), cluster, &stop).await.expect("join");
    let listener =
        Listener::bind(ListenAddr { ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)), port: 0 }, &ListenerKind::Tcp)
            .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(Arc::clone(&server).serve(listener, stop.clone()));
    Node { server, addr, stop }
}

/// Sends `payload` from `from` to `to` every 50 ms until `to` receives it;
/// false if it never does within `within`.
async fn reaches(
    from: &mut Client,
    src: [u8; 4],
    to: &mut Client,
    dst: [u8; 4],
    payload: &[u8],
    within: Duration,
) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        from.send(&udp4(src, dst, 1, 2, payload)).await;
        while let Some(p) = to.recv_within(Duration::from_millis(50)).await {
            if p.ends_with(payload) {
                // Drain duplicates of earlier tries.
                while to.recv_within(Duration::from_millis(100)).await.is_some() {}
                return true;
            }
        }
    }
    false
}

/// Within which a change must be seen by every node (the aim is 1 s; this
/// bound is generous for a busy machine and only says "it propagates").
const PROPAGATION: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packets_cross_nodes_and_the_newest_registration_wins_everywhere() {
    let redis = Redis::start().await;
    let a = node(&redis, "t1", SECRET).await;
    let b = node(&redis, "t1", SECRET).await;
    let mut h1 = Client::ok(a.addr, "host-1").await;
    let mut h2 = Client::ok(b.addr, "host-2").await;
    assert!(reaches(&mut h1, H1, &mut h2, H2, b"a to b", PROPAGATION).await, "host-1 on A never reached host-2 on B");
    assert!(reaches(&mut h2, H2, &mut h1, H1, b"b to a", PROPAGATION).await, "host-2 on B never reached host-1 on A");
    // Steady state: every packet arrives, in order.
    for i in 0..50u8 {
        h1.send(&udp4(H1, H2, 1, 2, &[i])).await;
    }
    for i in 0..50u8 {
        assert!(h2.recv().await.ends_with(&[i]), "packet {i} lost or reordered across nodes");
    }
    let totals = a.server.cluster().unwrap().totals();
    assert!(totals.packets_sent >= 50 && totals.links_up >= 1, "{totals:?}");

    // host-2 reconnects on A (its old connection on B lingers): A delivers
    // to the new one, and B, which still has the old one, sends to A too.
    let mut h2_again = Client::ok(a.addr, "host-2").await;
    let mut h3 = Client::ok(b.addr, "host-3").await;
    assert!(
        reaches(&mut h3, H3, &mut h2_again, H2, b"b to moved host-2", PROPAGATION).await,
        "B still delivers to the old connection"
    );
    // What reached the old connection before B heard of the move is gone by now.
    while h2.recv_within(Duration::from_millis(300)).await.is_some() {}
    for i in 0..20u8 {
        h3.send(&udp4(H3, H2, 1, 2, &[i])).await;
        assert!(h2_again.recv().await.ends_with(&[i]), "packet {i} did not reach the moved host");
    }
    assert!(h2.recv_within(Duration::from_millis(300)).await.is_none(), "the old connection still gets packets");
    h1.send(&udp4(H1, H2, 1, 2, b"local now")).await;
    assert!(h2_again.recv().await.ends_with(b"local now"));

    // The new connection closes: the old one on B (the newest left) receives again.
    drop(h2_again);
    assert!(reaches(&mut h1, H1, &mut h2, H2, b"back to b", PROPAGATION).await, "the standby on B was not used again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_another_secret_gets_nothing_and_sends_nothing() {
    let redis = Redis::start().await;
    let a = node(&redis, "t2", SECRET).await;
    let rogue = node(&redis, "t2", "not the cluster's secret at all").await;
    let mut h1 = Client::ok(a.addr, "host-1").await;
    let mut h3 = Client::ok(rogue.addr, "host-3").await;
    // Both nodes know where the other's host is (same registry), but no link authenticates.
    let cluster = a.server.cluster().unwrap();
    let deadline = tokio::time::Instant::now() + PROPAGATION;
    while cluster.totals().remote_hosts < 1 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(cluster.totals().remote_hosts, 1, "A never heard of host-3");
    assert!(
        !reaches(&mut h1, H1, &mut h3, H3, b"to the rogue", Duration::from_secs(3)).await,
        "a packet reached the rogue node"
    );
    assert!(
        !reaches(&mut h3, H3, &mut h1, H1, b"from the rogue", Duration::from_secs(3)).await,
        "the rogue's packet was delivered"
    );
    let totals = a.server.cluster().unwrap().totals();
    assert!(totals.links_refused > 0, "no refused link counted: {totals:?}");
    // Refused at the queue (the link is down) by the server, or dropped from the queue by the link.
    let unreachable = a.server.totals().drops(DropReason::NodeUnreachable) + totals.drops(DropReason::NodeUnreachable);
    assert!(unreachable > 0, "{totals:?}");
    assert_eq!(totals.packets_received, 0, "A read packets from the rogue: {totals:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_keeps_traffic_and_registrations_come_back() {
    let mut redis = Redis::start().await;
    let a = node(&redis, "t3", SECRET).await;
    let b = node(&redis, "t3", SECRET).await;
    let mut h1 = Client::ok(a.addr, "host-1").await;
    let mut h2 = Client::ok(b.addr, "host-2").await;
    assert!(reaches(&mut h1, H1, &mut h2, H2, b"before", PROPAGATION).await);

    redis.stop();
    // Forwarding goes on with what is known.
    for i in 0..20u8 {
        h1.send(&udp4(H1, H2, 1, 2, &[i])).await;
        assert!(h2.recv().await.ends_with(&[i]), "packet {i} lost while redis is down");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A registration while redis is down waits, and is written when it is back.
    let mut h3 = Client::ok(b.addr, "host-3").await;
    redis.run().await;
    assert!(
        reaches(&mut h1, H1, &mut h3, H3, b"after", PROPAGATION).await,
        "a registration made while redis was down never arrived"
    );
    h2.send(&udp4(H2, H1, 1, 2, b"still")).await;
    assert!(h1.recv().await.ends_with(b"still"));
    // Redis lost everything; a node that starts now learns every host from the records written again.
    let c = node(&redis, "t3", SECRET).await;
    let cluster = c.server.cluster().unwrap();
    let deadline = tokio::time::Instant::now() + PROPAGATION;
    while cluster.totals().remote_hosts < 3 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(cluster.totals().remote_hosts >= 3, "{:?}", cluster.totals());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_find_the_master_through_a_sentinel() {
    let redis = Redis::start().await;
    let sentinel = Sentinel::start(&redis).await;
    let sentinels = vec![format!("127.0.0.1:{}", sentinel.port)];
    let a = node_with(&cluster_settings_at(sentinels.clone(), Some("mymaster"), "t4", SECRET)).await;
    let b = node_with(&cluster_settings_at(sentinels, Some("mymaster"), "t4", SECRET)).await;
    let mut h1 = Client::ok(a.addr, "host-1").await;
    let mut h2 = Client::ok(b.addr, "host-2").await;
    assert!(
        reaches(&mut h1, H1, &mut h2, H2, b"via sentinel", PROPAGATION).await,
        "nodes behind a sentinel never linked"
    );
    assert!(a.server.cluster().unwrap().totals().registry_up);
}

/// GOST's SD plugin protocol, served from memory: POST registers a service,
/// DELETE removes it (by id), PUT renews, GET ?name= lists a name's services.
async fn sd_plugin() -> (SocketAddr, Arc<std::sync::Mutex<Vec<serde_json::Value>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let services: Arc<std::sync::Mutex<Vec<serde_json::Value>>> = Arc::default();
    let store = Arc::clone(&services);
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    // One request: head, then Content-Length bytes of body.
                    let head_end = loop {
                        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break end + 4;
                        }
                        let mut chunk = [0u8; 4096];
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                    let length: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    while buf.len() < head_end + length {
                        let mut chunk = [0u8; 4096];
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body: Vec<u8> = buf[head_end..head_end + length].to_vec();
                    buf.drain(..head_end + length);
                    let mut parts = head.split_whitespace();
                    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                    let service: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                    let reply = {
                        let mut services = store.lock().unwrap();
                        match method {
                            "POST" => {
                                services.push(service);
                                String::new()
                            }
                            "DELETE" => {
                                services.retain(|s| s["id"] != service["id"]);
                                String::new()
                            }
                            "PUT" => String::new(),
                            _ => {
                                let name = target.split("name=").nth(1).unwrap_or("").replace("%40", "@");
                                let found: Vec<&serde_json::Value> =
                                    services.iter().filter(|s| s["name"].as_str() == Some(name.as_str())).collect();
                                serde_json::json!({ "services": found }).to_string()
                            }
                        }
                    };
                    let out = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\ncontent-type: application/json\r\n\r\n{reply}",
                        reply.len()
                    );
                    if stream.write_all(out.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, services)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gost_sd_plugin_registers_connections_and_finds_hosts_on_other_nodes() {
    let (addr, services) = sd_plugin().await;
    let plugin =
        PluginConfig { addr: format!("http://{addr}/sd"), timeout: Duration::from_secs(2), tls: None, token: None };
    let settings = || {
        let mut s = cluster_settings_at(Vec::new(), None, "unused", SECRET);
        s.sd.backend = SdBackend::Plugin(plugin.clone());
        s
    };
    let a = node_with(&settings()).await;
    let b = node_with(&settings()).await;
    let mut h1 = Client::ok(a.addr, "host-1").await;
    let mut h2 = Client::ok(b.addr, "host-2").await;
    // Registered as GOST registers a connection.
    let deadline = tokio::time::Instant::now() + PROPAGATION;
    while services.lock().unwrap().len() < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    {
        let services = services.lock().unwrap();
        let h2 = services
            .iter()
            .find(|s| s["name"].as_str().is_some_and(|n| n.starts_with("host-2@")))
            .expect("host-2 registered");
        assert_eq!(h2["node"].as_str(), Some(&**b.server.cluster().unwrap().node_id()));
        assert_eq!(h2["network"], "tcp");
        assert!(h2["address"].as_str().is_some_and(|a| a.starts_with("127.0.0.1:")));
        assert!(h2["id"].as_str().is_some_and(|id| id.len() == 36), "the connector id: {h2}");
    }
    // Looked up on the first packet, then forwarded over the link.
    assert!(reaches(&mut h1, H1, &mut h2, H2, b"via the sd plugin", PROPAGATION).await);
    assert!(reaches(&mut h2, H2, &mut h1, H1, b"and back", PROPAGATION).await);
    assert!(a.server.cluster().unwrap().totals().lookups >= 1);
    // A closed connection is deregistered.
    drop(h2);
    let deadline = tokio::time::Instant::now() + PROPAGATION;
    while services.lock().unwrap().len() > 1 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(services.lock().unwrap().len(), 1, "host-2 was not deregistered");
}
