//! Issue 3 over loopback, from config text to packets: the default-router
//! fallback, the HTTP router and ingress plugins (a small real HTTP server
//! here checks the exact queries), plugin cache expiry and a plugin that is
//! down or slow, and redis as a route and ingress source with reloads while
//! traffic flows. Needs `redis-server` (installed by `.ci/run`).
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use rgost_config::ServiceKind;
use rgost_relay::Status;
use rgost_server::{DropReason, Settings, build};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const NS1_TEXT: &str = "e87f56dd-fd57-4921-9ab8-a0847662daae";
const NS2_TEXT: &str = "ef502590-2a5c-4d0e-9b3a-1e2b3c4d5e6f";
const NS2: [u8; 16] = [0xef, 0x50, 0x25, 0x90, 0x2a, 0x5c, 0x4d, 0x0e, 0x9b, 0x3a, 0x1e, 0x2b, 0x3c, 0x4d, 0x5e, 0x6f];
const ZERO_TEXT: &str = "00000000-0000-0000-0000-000000000000";

/// Settings of the first router service in `yaml`, built as `rgost` builds
/// them (data sources loaded, plugins attached), with reloaders stopped by
/// `stop`.
async fn settings_from(yaml: &str, stop: &CancellationToken) -> Settings {
    let loaded = rgost_config::parse_str(yaml, "test.yaml").expect("config");
    let config = loaded.config;
    let (name, service) = config
        .services
        .iter()
        .find_map(|s| match &s.kind {
            ServiceKind::Router(r) => Some((s.name.clone(), r.clone())),
            _ => None,
        })
        .expect("a router service");
    let mut settings = build::settings(&name, &service, &config, stop).await.expect("build");
    settings.read_timeout = Duration::from_secs(2);
    settings
}

/// A tiny HTTP/1.1 server answering every request with `answer(target)`
/// (status, JSON body) after `delay`, recording each request target.
struct Http {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Http {
    async fn start(delay: Duration, answer: impl Fn(&str) -> (u16, String) + Send + Sync + 'static) -> Http {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let answer = Arc::new(answer);
        let seen = Arc::clone(&requests);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else { return };
                let seen = Arc::clone(&seen);
                let answer = Arc::clone(&answer);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 65536 {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&buf).into_owned();
                    let target = text.split_whitespace().nth(1).unwrap_or_default().to_owned();
                    seen.lock().unwrap().push(target.clone());
                    tokio::time::sleep(delay).await;
                    let (status, body) = answer(&target);
                    let response = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                });
            }
        });
        Http { addr, requests, task }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Http {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn default_router_for_unknown_and_absent_ids() {
    let yaml = format!(
        "services:
- name: s
  addr: 127.0.0.1:0
  handler:
    type: router
    metadata:
      router: router-0
  listener:
    type: tcp
routers:
- name: router-0
  routes:
  - {{dst: 192.168.123.1, gateway: host-1}}
  - {{dst: 192.168.123.2, gateway: host-2}}
- name: {NS1_TEXT}
  routes:
  - {{dst: 192.168.123.1, gateway: host-1}}
  - {{dst: 192.168.123.2, gateway: host-2}}
"
    );
    let stop = CancellationToken::new();
    let server = start(settings_from(&yaml, &stop).await);
    // No id: the zero namespace, routed by the default router.
    let mut a = Client::ok(server.addr, "host-1").await;
    let mut b = Client::ok(server.addr, "host-2").await;
    // An id that names no router: its own namespace, also routed by the default.
    let (mut c, r) = Client::connect(server.addr, "host-1", Some(NS2)).await;
    assert_eq!(r.status, Status::Ok);
    let (mut d, r) = Client::connect(server.addr, "host-2", Some(NS2)).await;
    assert_eq!(r.status, Status::Ok);
    // An id that names a router.
    let (mut e, r) = Client::connect(server.addr, "host-2", Some(NS1)).await;
    assert_eq!(r.status, Status::Ok);
    a.send(&udp4(H1, H2, 1, 2, b"zero ns")).await;
    assert_eq!(&b.recv().await[28..], b"zero ns");
    c.send(&udp4(H1, H2, 1, 2, b"unknown id")).await;
    assert_eq!(&d.recv().await[28..], b"unknown id");
    // Nothing crosses namespaces, although the tables are the same.
    assert!(b.recv_within(Duration::from_millis(200)).await.is_none(), "a packet crossed namespaces");
    assert!(e.recv_within(Duration::from_millis(200)).await.is_none(), "a packet crossed namespaces");
    let (mut f, r) = Client::connect(server.addr, "host-1", Some(NS1)).await;
    assert_eq!(r.status, Status::Ok);
    f.send(&udp4(H1, H2, 1, 2, b"named router")).await;
    assert_eq!(&e.recv().await[28..], b"named router");
    assert!(d.recv_within(Duration::from_millis(200)).await.is_none(), "a packet crossed namespaces");
    stop.cancel();
}

#[tokio::test]
async fn http_router_plugin_queries_caches_and_expires() {
    let http = Http::start(Duration::ZERO, |target| {
        if target.contains("dst=192.168.123.2") {
            (200, r#"{"dst": "192.168.123.2", "gateway": "host-2"}"#.to_owned())
        } else if target.contains("dst=192.168.123.1") {
            (200, r#"{"net": "192.168.123.1", "gateway": "host-1"}"#.to_owned())
        } else {
            (404, "{}".to_owned())
        }
    })
    .await;
    let yaml = format!(
        "services:
- name: s
  addr: 127.0.0.1:0
  handler:
    type: router
    metadata:
      router: router-0
      router.cache: true
      router.cache.expiration: 400ms
  listener:
    type: tcp
routers:
- name: router-0
  plugin:
    type: http
    addr: http://{}/route
    timeout: 1s
",
        http.addr
    );
    let stop = CancellationToken::new();
    let server = start(settings_from(&yaml, &stop).await);
    let mut a = Client::ok(server.addr, "host-1").await;
    let mut b = Client::ok(server.addr, "host-2").await;
    // The first packets are held while the plugin answers, then delivered.
    a.send(&udp4(H1, H2, 1, 2, b"one")).await;
    a.send(&udp4(H1, H2, 1, 2, b"two")).await;
    assert_eq!(&b.recv().await[28..], b"one");
    assert_eq!(&b.recv().await[28..], b"two");
    let to_h2 = |r: &Vec<String>| r.iter().filter(|t| t.contains("dst=192.168.123.2")).count();
    let requests = http.requests();
    assert!(
        requests.contains(&format!("/route?dst=192.168.123.2&id={ZERO_TEXT}")),
        "exact query not seen: {requests:?}"
    );
    // Within the expiry: answered from the cache.
    for i in 0..20u8 {
        a.send(&udp4(H1, H2, 1, 2, &[i])).await;
        assert_eq!(b.recv().await[28..], [i]);
    }
    assert_eq!(to_h2(&http.requests()), 1, "cached answers were asked again: {:?}", http.requests());
    // After the expiry: asked again.
    tokio::time::sleep(Duration::from_millis(600)).await;
    a.send(&udp4(H1, H2, 1, 2, b"later")).await;
    assert_eq!(&b.recv().await[28..], b"later");
    assert_eq!(to_h2(&http.requests()), 2, "an expired answer was not refreshed");
    // "No route" answers are cached and counted as drops.
    let before = server.server.totals().drops(DropReason::NoRoute);
    a.send(&udp4(H1, H3, 1, 2, b"nowhere")).await;
    until(|| server.server.totals().drops(DropReason::NoRoute) > before).await;
    // The plugin goes away: after the expiry, nothing is known (the source
    // cannot be checked: dropped as spoofed); the server keeps serving.
    drop(http);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let before = server.server.totals().drops(DropReason::SpoofedSource);
    a.send(&udp4(H1, H2, 1, 2, b"plugin down")).await;
    until(|| server.server.totals().drops(DropReason::SpoofedSource) > before).await;
    assert!(b.recv_within(Duration::from_millis(200)).await.is_none());
    let (_c, r) = Client::connect(server.addr, "host-3", None).await;
    assert_eq!(r.status, Status::Ok, "the server stopped serving with its plugin down");
    stop.cancel();
}

#[tokio::test]
async fn a_slow_router_plugin_degrades_to_no_route() {
    let http = Http::start(Duration::from_secs(3), |_| (200, r#"{"dst": "x", "gateway": "host-2"}"#.to_owned())).await;
    let yaml = format!(
        "services:
- name: s
  addr: 127.0.0.1:0
  handler:
    type: router
    metadata:
      router: router-0
  listener:
    type: tcp
routers:
- name: router-0
  plugin:
    addr: http://{}/slow
    timeout: 300ms
",
        http.addr
    );
    let stop = CancellationToken::new();
    let server = start(settings_from(&yaml, &stop).await);
    let mut a = Client::ok(server.addr, "host-1").await;
    let mut b = Client::ok(server.addr, "host-2").await;
    // Beyond the few held packets, the rest are dropped at once.
    for i in 0..10u8 {
        a.send(&udp4(H1, H2, 1, 2, &[i])).await;
    }
    until(|| server.server.totals().drops(DropReason::PluginPendingFull) >= 6).await;
    // The timeout answers "no route" for the held ones' source: they are
    // dropped, as the source cannot be checked.
    until(|| server.server.totals().drops(DropReason::SpoofedSource) >= 4).await;
    assert!(b.recv_within(Duration::from_millis(200)).await.is_none());
    stop.cancel();
}

#[tokio::test]
async fn http_ingress_plugin_pins_hosts() {
    let http = Http::start(Duration::ZERO, |target| {
        if target.contains("host=host-1&") {
            (200, format!(r#"{{"endpoint": "{NS1_TEXT}"}}"#))
        } else {
            (404, "{}".to_owned())
        }
    })
    .await;
    let yaml = format!(
        "services:
- name: service-0
  addr: 127.0.0.1:0
  handler:
    type: router
    metadata:
      ingress: ingress-0
      router: router-0
  listener:
    type: tcp
routers:
- name: router-0
  routes: []
ingresses:
- name: ingress-0
  plugin:
    type: http
    addr: http://{}/ingress
",
        http.addr
    );
    let stop = CancellationToken::new();
    let server = start(settings_from(&yaml, &stop).await);
    let (_a, r) = Client::connect(server.addr, "host-1", Some(NS1)).await;
    assert_eq!(r.status, Status::Ok);
    let (_b, r) = Client::connect(server.addr, "host-1", None).await;
    assert_eq!(r.status, Status::HostUnreachable);
    let (_c, r) = Client::connect(server.addr, "host-1", Some(NS2)).await;
    assert_eq!(r.status, Status::HostUnreachable);
    // No rule: the zero id is the right one.
    let (_d, r) = Client::connect(server.addr, "host-9", None).await;
    assert_eq!(r.status, Status::Ok);
    let (_e, r) = Client::connect(server.addr, "host-9", Some(NS1)).await;
    assert_eq!(r.status, Status::HostUnreachable);
    assert!(
        http.requests().contains(&"/ingress?host=host-1&service=service-0".to_owned()),
        "exact query not seen: {:?}",
        http.requests()
    );
    stop.cancel();
}

#[tokio::test]
async fn inline_ingress_exact_and_wildcards() {
    let yaml = format!(
        "services:
- name: s
  addr: 127.0.0.1:0
  handler:
    type: router
    metadata:
      ingress: ingress-0
  listener:
    type: tcp
ingresses:
- name: ingress-0
  rules:
  - {{hostname: host-1, endpoint: {NS1_TEXT}}}
  - {{hostname: '*.example.org', endpoint: {NS1_TEXT}}}
  - {{hostname: .b.example.org, endpoint: {NS2_TEXT}}}
"
    );
    let stop = CancellationToken::new();
    let server = start(settings_from(&yaml, &stop).await);
    for (host, id, expected) in [
        ("host-1", Some(NS1), Status::Ok),
        ("host-1", None, Status::HostUnreachable),
        ("x.example.org", Some(NS1), Status::Ok),
        ("a.b.example.org", Some(NS2), Status::Ok),
        ("a.b.example.org", Some(NS1), Status::HostUnreachable),
        ("c.example.org", Some(NS2), Status::HostUnreachable),
        ("other", None, Status::Ok),
    ] {
        let (_c, r) = Client::connect(server.addr, host, id).await;
        assert_eq!(r.status, expected, "{host} with {id:?}");
    }
    stop.cancel();
}

#[tokio::test]
async fn auther_from_a_file_source_and_from_an_http_plugin() {
    let dir = std::env::temp_dir().join(format!("rgost-auth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let users = dir.join("users.txt");
    std::fs::write(&users, "# user password\nalice s3cret\nbob\thunter2\n").unwrap();
    let http = Http::start(Duration::ZERO, |_| (200, r#"{"ok": true, "id": "carol-id"}"#.to_owned())).await;
    let yaml = format!(
        "services:
- name: by-file
  addr: 127.0.0.1:0
  handler:
    type: router
    auther: file-users
  listener:
    type: tcp
authers:
- name: file-users
  auths:
  - {{username: alice, password: inline-loses}}
  file:
    path: {}
- name: by-plugin
  plugin:
    addr: http://{}/auth
",
        users.display(),
        http.addr
    );
    let stop = CancellationToken::new();
    let server = start(settings_from(&yaml, &stop).await);
    for (auth, expected) in [
        (Some(("alice", "s3cret")), Status::Ok),
        (Some(("bob", "hunter2")), Status::Ok),
        (Some(("alice", "inline-loses")), Status::Unauthorized),
        (Some(("alice", "wrong")), Status::Unauthorized),
        (None, Status::Unauthorized),
    ] {
        let (_c, r) = Client::connect_as(server.addr, auth, "host-1", None).await;
        assert_eq!(r.status, expected, "{auth:?}");
    }

    // The same through the plugin: the JSON body it gets, and its verdicts.
    let yaml = yaml.replace("auther: file-users", "auther: by-plugin");
    let server = start(settings_from(&yaml, &stop).await);
    let (_c, r) = Client::connect_as(server.addr, Some(("carol", "pw")), "host-1", None).await;
    assert_eq!(r.status, Status::Ok);
    assert!(http.requests().iter().any(|t| t == "/auth"), "{:?}", http.requests());
    drop(http);
    let (_c, r) = Client::connect_as(server.addr, Some(("carol", "pw")), "host-1", None).await;
    assert_eq!(r.status, Status::Unauthorized, "a plugin that is down must refuse");
    stop.cancel();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Host bindings from an auther's data source: a line's third field
/// `hosts=RULES` binds that user; a line with another third field is
/// skipped; a user without rules is bound only when the config binds users.
#[tokio::test]
async fn host_bindings_from_an_auther_data_source() {
    let dir = std::env::temp_dir().join(format!("rgost-auth-hosts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let users = dir.join("users.txt");
    std::fs::write(
        &users,
        format!("alice s3cret hosts=h2@{NS1_TEXT}\ncarol pw hosts=*@{NS2_TEXT},h9\ndave pw h2\nbob hunter2\n"),
    )
    .unwrap();
    let yaml = |inline: &str| {
        format!(
            "services:
- name: s
  addr: 127.0.0.1:0
  handler:
    type: router
    auther: users
  listener:
    type: tcp
authers:
- name: users
  auths: [{inline}]
  file:
    path: {}
",
            users.display()
        )
    };
    let stop = CancellationToken::new();
    let server = start(settings_from(&yaml(""), &stop).await);
    for (user, host, id, expected) in [
        (("alice", "s3cret"), "h2", Some(NS1), Status::Ok),
        (("alice", "s3cret"), "h2", Some(NS2), Status::Forbidden),
        (("alice", "s3cret"), "h2", None, Status::Forbidden),
        (("alice", "s3cret"), "h3", Some(NS1), Status::Forbidden),
        (("carol", "pw"), "anything", Some(NS2), Status::Ok),
        (("carol", "pw"), "h9", Some(NS1), Status::Ok),
        (("carol", "pw"), "h8", Some(NS1), Status::Forbidden),
        (("dave", "pw"), "h2", Some(NS1), Status::Unauthorized),
        (("bob", "hunter2"), "h2", Some(NS1), Status::Ok),
    ] {
        let (_c, r) = Client::connect_as(server.addr, Some(user), host, id).await;
        assert_eq!(r.status, expected, "{user:?} registering {host} in {id:?}");
    }
    // With a binding in the config, a user without rules may register nothing;
    // a source's rules still decide for its user.
    let server = start(settings_from(&yaml("{username: erin, password: pw, hosts: [e1]}"), &stop).await);
    for (user, host, expected) in [
        (("bob", "hunter2"), "h2", Status::Forbidden),
        (("erin", "pw"), "e1", Status::Ok),
        (("alice", "s3cret"), "h2", Status::Ok),
    ] {
        let (_c, r) = Client::connect_as(server.addr, Some(user), host, Some(NS1)).await;
        assert_eq!(r.status, expected, "{user:?} registering {host}");
    }
    stop.cancel();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A redis-server on a free loopback port, stopped on drop.
struct Redis {
    port: u16,
    child: Child,
    dir: PathBuf,
}

impl Redis {
    async fn start() -> Redis {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = probe.local_addr().unwrap().port();
        drop(probe);
        let dir = std::env::temp_dir().join(format!("rgost-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is needed for these tests (apt-get install redis-server; .ci/run installs it)");
        let redis = Redis { port, child, dir };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return redis;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server did not start");
    }

    /// Runs one command through the plain-text protocol.
    async fn cmd(&self, args: &[&str]) {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.unwrap();
        let mut out = format!("*{}\r\n", args.len());
        for a in args {
            out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        stream.write_all(out.as_bytes()).await.unwrap();
        let mut reply = [0u8; 256];
        let n = stream.read(&mut reply).await.unwrap();
        assert!(n > 0 && reply[0] != b'-', "redis refused {args:?}: {}", String::from_utf8_lossy(&reply[..n]));
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn redis_routes_and_ingress_reload_while_traffic_flows() {
    let redis = Redis::start().await;
    // Routes as a hash (dst -> gateway); ingress as a set of "host endpoint" lines.
    redis.cmd(&["HSET", "routes", "192.168.123.2", "host-2"]).await;
    // A second route, so that removing the first leaves the source a valid
    // entry (a source with none keeps its last good entries).
    redis.cmd(&["HSET", "routes", "10.8.8.8", "host-2"]).await;
    redis.cmd(&["SADD", "ingress", &format!("host-1 {ZERO_TEXT}")]).await;
    redis.cmd(&["SADD", "ingress", &format!("host-3 {NS1_TEXT}")]).await;
    let yaml = format!(
        "services:
- name: s
  addr: 127.0.0.1:0
  handler:
    type: router
    metadata:
      router: router-0
      ingress: ingress-0
  listener:
    type: tcp
routers:
- name: router-0
  routes:
  - {{dst: 192.168.123.1, gateway: host-1}}
  - {{dst: 192.168.123.2, gateway: host-1}}
  - {{dst: 192.168.123.3, gateway: host-3}}
  redis:
    addr: 127.0.0.1:{port}
    key: routes
    type: hash
  reload: 200ms
ingresses:
- name: ingress-0
  redis:
    addr: 127.0.0.1:{port}
    key: ingress
    type: set
  reload: 200ms
",
        port = redis.port
    );
    let stop = CancellationToken::new();
    let server = start(settings_from(&yaml, &stop).await);
    let mut a = Client::ok(server.addr, "host-1").await;
    let mut b = Client::ok(server.addr, "host-2").await;
    // Redis overrides the inline route for .2 (priority redis > inline).
    a.send(&udp4(H1, H2, 1, 2, b"via redis")).await;
    assert_eq!(&b.recv().await[28..], b"via redis");
    // Ingress from the redis set: host-3 belongs to NS1.
    let (_x, r) = Client::connect(server.addr, "host-3", None).await;
    assert_eq!(r.status, Status::HostUnreachable);

    // Remove the route while traffic flows: packets to .2 fall back to the
    // inline route (host-1 itself, so b stops receiving).
    redis.cmd(&["HDEL", "routes", "192.168.123.2"]).await;
    // Traffic keeps flowing (one packet per 20 ms, at most 5 s) until the reload shows.
    let mut moved = false;
    for i in 0..250u8 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        a.send(&udp4(H1, H2, 1, 2, &[i])).await;
        if b.recv_within(Duration::from_millis(50)).await.is_none() {
            moved = true;
            break;
        }
    }
    assert!(moved, "removing a redis route did not change routing");
    // Add a new route and a new ingress rule.
    redis.cmd(&["HSET", "routes", "10.9.9.9", "host-2"]).await;
    redis.cmd(&["SREM", "ingress", &format!("host-3 {NS1_TEXT}")]).await;
    let mut added = false;
    for i in 0..250u8 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        a.send(&udp4(H1, [10, 9, 9, 9], 1, 2, &[i])).await;
        if b.recv_within(Duration::from_millis(50)).await.is_some() {
            added = true;
            break;
        }
    }
    assert!(added, "a route added in redis was not picked up");
    let mut ingress_changed = false;
    for _ in 0..50 {
        let (_y, r) = Client::connect(server.addr, "host-3", None).await;
        if r.status == Status::Ok {
            ingress_changed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ingress_changed, "a removed ingress rule still applied");
    // The connections made before the reloads are still the same and working
    // (first drain what came back to host-1 while .2 routed to it).
    while a.recv_within(Duration::from_millis(100)).await.is_some() {}
    b.send(&udp4([10, 9, 9, 9], H1, 2, 1, b"still here")).await;
    assert_eq!(&a.recv().await[28..], b"still here");

    // Redis goes down: the last good data stays.
    drop(redis);
    tokio::time::sleep(Duration::from_millis(500)).await;
    a.send(&udp4(H1, [10, 9, 9, 9], 1, 2, b"last good")).await;
    assert_eq!(&b.recv().await[28..], b"last good");
    stop.cancel();
}
