//! The seed's examples (routing-tunnel.md) parse as written, from a file and
//! from the command line, into the expected model.

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use rgost_config::*;
use rgost_routing::Route;
use uuid::Uuid;

const NS1: &str = "e87f56dd-fd57-4921-9ab8-a0847662daae";
const NS2: &str = "ef502590-c5f4-437e-a81f-fe4083505075";

const SERVER_YAML: &str = r#"
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
      - dst: 192.168.100.0/24
        gateway: host-1
      - dst: 192.168.123.2
        gateway: host-2
      - dst: 192.168.200.0/24
        gateway: host-2
"#;

const SERVER_JSON: &str = r#"{
  "services": [{
    "name": "service-0",
    "addr": ":8443",
    "handler": {"type": "router", "metadata": {"router": "router-0"}},
    "listener": {"type": "tcp"}
  }],
  "routers": [{
    "name": "router-0",
    "routes": [
      {"dst": "192.168.123.1", "gateway": "host-1"},
      {"dst": "192.168.100.0/24", "gateway": "host-1"},
      {"dst": "192.168.123.2", "gateway": "host-2"},
      {"dst": "192.168.200.0/24", "gateway": "host-2"}
    ]
  }]
}"#;

const CLIENT_YAML: &str = r#"
services:
- name: service-0
  handler:
    type: tun
  listener:
    type: tun
    metadata:
      net: 192.168.123.1/24
      route: 192.168.200.0/24
  forwarder:
    nodes:
    - name: host
      addr: host-1
chains:
- name: chain-0
  hops:
  - name: hop-0
    nodes:
    - name: node-0
      addr: 203.0.113.7:8443
      connector:
        type: router
      dialer:
        type: tcp
"#;

const NAMESPACE_SERVER_YAML: &str = r#"
services:
  - name: service-0
    addr: :8443
    handler:
      type: router
      metadata:
        router: router-0 # optional
    listener:
      type: tcp

routers:
  - name: e87f56dd-fd57-4921-9ab8-a0847662daae
    routes:
      - dst: 192.168.123.1
        gateway: host-1
      - dst: 192.168.10.0/24
        gateway: host-1
      - dst: 192.168.123.2
        gateway: host-2
      - dst: 192.168.11.0/24
        gateway: host-2
  - name: ef502590-c5f4-437e-a81f-fe4083505075
    routes: 
      - dst: 192.168.124.1
        gateway: host-1
      - dst: 192.168.100.0/24
        gateway: host-1
      - dst: 192.168.124.2
        gateway: host-2
      - dst: 192.168.101.0/24
        gateway: host-2
  - name: router-0
    plugin:
      type: http
      addr: http://127.0.0.1:8000
"#;

const NAMESPACE_CLIENT_YAML: &str = r#"
services:
- name: service-0
  handler:
    type: tun
  listener:
    type: tun
    metadata:
      net: 192.168.123.1/24
      route: 192.168.200.0/24
  forwarder:
    nodes:
    - name: host
      addr: host-1
chains:
- name: chain-0
  hops:
  - name: hop-0
    nodes:
    - name: node-0
      addr: 203.0.113.7:8443
      connector:
        type: router
        metadata:
          router.id: e87f56dd-fd57-4921-9ab8-a0847662daae
      dialer:
        type: tcp
"#;

const INGRESS_SERVER_YAML: &str = r#"
services:
  - name: service-0
    addr: :8443
    handler:
      type: router
      metadata:
        router: router-0
        ingress: ingress-0
    listener:
      type: tcp

ingresses:
  - name: ingress-0
    rules:
     - hostname: host-1-ns1
       endpoint: e87f56dd-fd57-4921-9ab8-a0847662daae
     - hostname: host-2-ns1
       endpoint: e87f56dd-fd57-4921-9ab8-a0847662daae
     - hostname: host-1-ns2
       endpoint: ef502590-c5f4-437e-a81f-fe4083505075
     - hostname: host-2-ns2
       endpoint: ef502590-c5f4-437e-a81f-fe4083505075
    
routers:
  - name: e87f56dd-fd57-4921-9ab8-a0847662daae
    routes:
      - dst: 192.168.123.1
        gateway: host-1
      - dst: 192.168.10.0/24
        gateway: host-1
      - dst: 192.168.123.2
        gateway: host-2
      - dst: 192.168.11.0/24
        gateway: host-2
  - name: ef502590-c5f4-437e-a81f-fe4083505075
    routes: 
      - dst: 192.168.124.1
        gateway: host-1
      - dst: 192.168.100.0/24
        gateway: host-1
      - dst: 192.168.124.2
        gateway: host-2
      - dst: 192.168.101.0/24
        gateway: host-2
  - name: router-0
    plugin:
      type: http
      addr: http://127.0.0.1:8000
"#;

fn route(dst: &str, gateway: &str) -> Route {
    Route { dst: dst.parse().unwrap(), gateway: Arc::from(gateway) }
}

fn net(text: &str) -> IpNet {
    text.parse().unwrap()
}

fn tcp_router_service(default_router: &str, ingress: Option<&str>) -> Service {
    Service {
        name: "service-0".into(),
        kind: ServiceKind::Router(RouterService {
            listen: ListenAddr { ip: None, port: 8443 },
            listener: ListenerKind::Tcp,
            read_timeout: defaults::READ_TIMEOUT,
            default_router: Some(default_router.into()),
            ingress: ingress.map(Into::into),
            auth: None,
            auther: None,
            host_binding: vec![],
            strict_source: true,
            route_cache_ttl: Duration::ZERO,
            limits: Limits::default(),
            keepalive: Keepalive::default(),
            shaping: Shaping::default(),
            cluster: None,
        }),
    }
}

fn seed_server_config() -> Config {
    Config {
        services: vec![tcp_router_service("router-0", None)],
        routers: vec![RouterConfig {
            name: "router-0".into(),
            routes: vec![
                route("192.168.123.1/32", "host-1"),
                route("192.168.100.0/24", "host-1"),
                route("192.168.123.2/32", "host-2"),
                route("192.168.200.0/24", "host-2"),
            ],
            sources: Sources::default(),
            plugin: None,
        }],
        ingresses: vec![],
        authers: vec![],
        api: None,
        metrics: None,
        limiters: vec![],
        rlimiters: vec![],
        observers: vec![],
    }
}

fn tun(name: &str, router_id: Option<&str>, chain_nodes_addr: &str, routes: Vec<TunRouteSetting>) -> Service {
    Service {
        name: name.into(),
        kind: ServiceKind::Tun(TunService {
            tun: TunSettings {
                name: None,
                addrs: vec![net("192.168.123.1/24")],
                mtu: defaults::MTU,
                routes,
                gateway: None,
                dns: vec![],
                offload: true,
            },
            host: "host-1".into(),
            chain: Chain {
                name: "chain-0".into(),
                nodes: vec![Node {
                    name: "node-0".into(),
                    addr: chain_nodes_addr.into(),
                    connector: RouterConnector { router_id: router_id.map(|id| id.parse().unwrap()), auth: None },
                    dialer: DialerKind::Tcp,
                    connect_timeout: defaults::CONNECT_TIMEOUT,
                    keepalive: Keepalive::default(),
                }],
                selector: Selector::default(),
            },
        }),
    }
}

fn route_200() -> Vec<TunRouteSetting> {
    vec![TunRouteSetting { dst: net("192.168.200.0/24"), gateway: None }]
}

#[test]
fn seed_server_yaml() {
    let loaded = parse_str(SERVER_YAML, "server.yaml").unwrap();
    assert_eq!(loaded.config, seed_server_config());
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn seed_server_json_equals_yaml() {
    let loaded = parse_str(SERVER_JSON, "server.json").unwrap();
    assert_eq!(loaded.config, seed_server_config());
}

#[test]
fn seed_client_yaml_uses_the_only_chain_and_says_so() {
    let loaded = parse_str(CLIENT_YAML, "client.yaml").unwrap();
    assert_eq!(loaded.config.services, vec![tun("service-0", None, "203.0.113.7:8443", route_200())]);
    assert!(loaded.config.routers.is_empty());
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    let warning = &loaded.warnings[0];
    assert!(warning.contains("client.yaml"), "{warning}");
    assert!(warning.contains("service service-0 names no chain; using the only chain defined, chain-0"), "{warning}");
}

#[test]
fn seed_client_cli() {
    let loaded = load(
        None,
        &["tun:///host-1?net=192.168.123.1/24&route=192.168.200.0/24".into()],
        &["router://203.0.113.7:8443".into()],
    )
    .unwrap();
    assert_eq!(loaded.config.services, vec![tun("service-0", None, "203.0.113.7:8443", route_200())]);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);

    // The seed's own CLI line (no route) as written, with server_ip a name.
    let loaded =
        load(None, &["tun:///host-1?net=192.168.123.1/24".into()], &["router://server_ip:8443".into()]).unwrap();
    assert_eq!(loaded.config.services, vec![tun("service-0", None, "server_ip:8443", vec![])]);
}

#[test]
fn namespace_examples() {
    let loaded = parse_str(NAMESPACE_SERVER_YAML, "ns.yaml").unwrap();
    assert_eq!(loaded.config.services, vec![tcp_router_service("router-0", None)]);
    let names: Vec<&str> = loaded.config.routers.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, [NS1, NS2, "router-0"]);
    assert_eq!(loaded.config.routers[1].routes[1], route("192.168.100.0/24", "host-1"));
    assert_eq!(
        loaded.config.routers[2].plugin,
        Some(PluginConfig {
            addr: "http://127.0.0.1:8000".into(),
            timeout: Duration::from_secs(5),
            tls: None,
            token: None
        })
    );
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);

    let loaded = parse_str(NAMESPACE_CLIENT_YAML, "ns-client.yaml").unwrap();
    assert_eq!(loaded.config.services, vec![tun("service-0", Some(NS1), "203.0.113.7:8443", route_200())]);
    assert_eq!(loaded.warnings.len(), 1);

    let loaded =
        load(None, &["tun:///host-1?net=192.168.123.1/24".into()], &[format!("router://1.2.3.4:8443?router.id={NS1}")])
            .unwrap();
    assert_eq!(loaded.config.services, vec![tun("service-0", Some(NS1), "1.2.3.4:8443", vec![])]);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn ingress_example() {
    let loaded = parse_str(INGRESS_SERVER_YAML, "ingress.yaml").unwrap();
    assert_eq!(loaded.config.services, vec![tcp_router_service("router-0", Some("ingress-0"))]);
    let ns1: Uuid = NS1.parse().unwrap();
    let ns2: Uuid = NS2.parse().unwrap();
    assert_eq!(
        loaded.config.ingresses,
        vec![IngressConfig {
            name: "ingress-0".into(),
            rules: vec![
                ("host-1-ns1".into(), ns1),
                ("host-2-ns1".into(), ns1),
                ("host-1-ns2".into(), ns2),
                ("host-2-ns2".into(), ns2),
            ],
            sources: Sources::default(),
            plugin: None,
        }]
    );
    assert_eq!(loaded.config.routers.len(), 3);
}

#[test]
fn file_services_come_first_then_flags() {
    let dir = std::env::temp_dir().join(format!("rgost-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("server.yaml");
    std::fs::write(&file, SERVER_YAML).unwrap();
    let loaded = load(Some(&file), &["router+tls://127.0.0.1:9443?router=router-0".into()], &[]).unwrap();
    let names: Vec<&str> = loaded.config.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["service-0", "service-1"]);
    let ServiceKind::Router(second) = &loaded.config.services[1].kind else { panic!("not a router service") };
    assert_eq!(second.listen, ListenAddr { ip: Some(IpAddr::from([127, 0, 0, 1])), port: 9443 });
    assert_eq!(second.listener, ListenerKind::Tls(TlsServerSettings::default()));
    assert_eq!(second.default_router.as_deref(), Some("router-0"));
    std::fs::remove_dir_all(&dir).unwrap();

    let err = load(Some(&dir.join("absent.yaml")), &[], &[]).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }), "{err}");
    assert!(err.to_string().contains("absent.yaml"), "{err}");
}
