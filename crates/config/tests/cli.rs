//! `-L` and `-F` URLs.

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use rgost_config::*;

fn router_service(loaded: &Loaded, i: usize) -> &RouterService {
    match &loaded.config.services[i].kind {
        ServiceKind::Router(service) => service,
        other => panic!("not a router service: {other:?}"),
    }
}

fn tun_service(loaded: &Loaded, i: usize) -> &TunService {
    match &loaded.config.services[i].kind {
        ServiceKind::Tun(service) => service,
        other => panic!("not a tun service: {other:?}"),
    }
}

fn serve(url: &str) -> Loaded {
    load(None, &[url.to_owned()], &[]).unwrap()
}

fn client(node: &str) -> Loaded {
    load(None, &["tun:///host-1?net=10.0.0.1/24".to_owned()], &[node.to_owned()]).unwrap()
}

#[test]
fn router_with_userinfo() {
    let loaded = serve("router://user:pass@:8443");
    let service = router_service(&loaded, 0);
    assert_eq!(service.listen, ListenAddr { ip: None, port: 8443 });
    assert_eq!(service.listener, ListenerKind::Tcp);
    assert_eq!(service.auth, Some(Credentials { username: "user".into(), password: "pass".into() }));
    assert_eq!(loaded.config.services[0].name, "service-0");
}

#[test]
fn router_listeners() {
    let loaded = serve("router+tls://:8443");
    assert_eq!(router_service(&loaded, 0).listener, ListenerKind::Tls(TlsServerSettings::default()));
    let loaded = serve("router+ws://[::1]:8080");
    let service = router_service(&loaded, 0);
    assert_eq!(service.listener, ListenerKind::Ws { path: "/ws".into() });
    assert_eq!(service.listen.ip, Some("::1".parse::<IpAddr>().unwrap()));
    let loaded = serve("router+wss://:443?path=/x");
    assert_eq!(
        router_service(&loaded, 0).listener,
        ListenerKind::Wss { path: "/x".into(), tls: TlsServerSettings::default() }
    );
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn router_handler_metadata() {
    let loaded = serve(
        "router://:8443?readTimeout=3s&strictSource=false&router.cache=true&router.cache.expiration=1m30s\
         &maxConnections=10&handler.maxConnectionsPerIP=2&maxHandshakeBytes=4096&queuePackets=8\
         &listener.keepAlivePeriod=5s&userTimeout=7",
    );
    let service = router_service(&loaded, 0);
    assert_eq!(service.read_timeout, Duration::from_secs(3));
    assert!(!service.strict_source);
    assert_eq!(service.route_cache_ttl, Duration::from_secs(90));
    assert_eq!(
        service.limits,
        Limits {
            max_connections: 10,
            max_connections_per_ip: 2,
            max_handshake_bytes: 4096,
            queue_packets: 8,
            ..Limits::default()
        }
    );
    assert_eq!(service.keepalive, Keepalive { period: Duration::from_secs(5), user_timeout: Duration::from_secs(7) });
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);

    // The cache is off by default (as in GOST), whatever the expiration.
    let loaded = serve("router://:8443?router.cache.expiration=5s");
    assert_eq!(router_service(&loaded, 0).route_cache_ttl, Duration::ZERO);
}

#[test]
fn tun_with_percent_encoded_lists() {
    let loaded = load(
        None,
        &["tun:///host-1?net=192.168.123.1/24,fd00::1/64&route=192.168.200.0%2F24,10.0.0.0%2F8&gw=192.168.123.254\
           &routes=172.16.0.0/12%20192.168.123.253,172.17.0.0/16&dns=1.1.1.1,2606:4700::1111&mtu=1350&name=tun9"
            .into()],
        &["router+wss://server.example:443?path=/tunnel&host=cdn.example&connectTimeout=2s".into()],
    )
    .unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let service = tun_service(&loaded, 0);
    let gw: IpAddr = "192.168.123.254".parse().unwrap();
    assert_eq!(service.host, "host-1");
    assert_eq!(service.tun.name.as_deref(), Some("tun9"));
    assert_eq!(service.tun.mtu, 1350);
    assert_eq!(service.tun.addrs, vec!["192.168.123.1/24".parse().unwrap(), "fd00::1/64".parse().unwrap()]);
    assert_eq!(service.tun.gateway, Some(gw));
    assert_eq!(
        service.tun.routes,
        vec![
            TunRouteSetting { dst: "192.168.200.0/24".parse().unwrap(), gateway: Some(gw) },
            TunRouteSetting { dst: "10.0.0.0/8".parse().unwrap(), gateway: Some(gw) },
            TunRouteSetting {
                dst: "172.16.0.0/12".parse().unwrap(),
                gateway: Some("192.168.123.253".parse().unwrap())
            },
            TunRouteSetting { dst: "172.17.0.0/16".parse().unwrap(), gateway: None },
        ]
    );
    assert_eq!(service.tun.dns, vec!["1.1.1.1".parse::<IpAddr>().unwrap(), "2606:4700::1111".parse().unwrap()]);
    let node = &service.chain.nodes[0];
    assert_eq!(node.addr, "server.example:443");
    assert_eq!(node.connect_timeout, Duration::from_secs(2));
    assert_eq!(
        node.dialer,
        DialerKind::Wss { path: "/tunnel".into(), host: Some("cdn.example".into()), tls: TlsClientSettings::default() }
    );
}

#[test]
fn node_schemes_and_credentials() {
    let loaded = client("router://alice:s%40cret@1.2.3.4:8443?router.id=e87f56dd-fd57-4921-9ab8-a0847662daae");
    let node = &tun_service(&loaded, 0).chain.nodes[0];
    assert_eq!(node.dialer, DialerKind::Tcp);
    assert_eq!(node.connector.auth, Some(Credentials { username: "alice".into(), password: "s@cret".into() }));
    assert_eq!(node.connector.router_id, Some("e87f56dd-fd57-4921-9ab8-a0847662daae".parse().unwrap()));

    let loaded = client("router+tls://1.2.3.4:8443");
    assert_eq!(tun_service(&loaded, 0).chain.nodes[0].dialer, DialerKind::Tls(TlsClientSettings::default()));
    let loaded = client("router+ws://1.2.3.4:80");
    assert_eq!(tun_service(&loaded, 0).chain.nodes[0].dialer, DialerKind::Ws { path: "/ws".into(), host: None });
}

#[test]
fn several_forward_targets_keep_the_first() {
    let loaded = load(None, &["tun:///host-1,host-2?net=10.0.0.1/24".into()], &["router://h:1".into()]).unwrap();
    assert_eq!(tun_service(&loaded, 0).host, "host-1");
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
}

#[test]
fn cli_errors_name_the_flag() {
    let err = load(None, &["router://user:secret@:99999".into()], &[]).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ConfigError::Invalid { .. }), "{text}");
    assert!(text.contains(r#"-L "router://user:***@:99999""#), "{text}");
    assert!(text.contains("services[0].addr") && text.contains(":99999"), "{text}");
    assert!(!text.contains("secret"), "{text}");

    let err = load(None, &["tun:///host-1?net=10.0.0.1/24".into()], &["router://h:1".into(), "router://g:1".into()])
        .unwrap_err();
    assert!(matches!(&err, ConfigError::Unsupported { key, .. } if key == "chains[0].hops"), "{err}");
    assert!(err.to_string().contains(r#"-F "router://g:1""#), "{err}");

    let err =
        load(None, &["tun:///host-1?net=10.0.0.1/24".into()], &["router://h:1?router.id=nope".into()]).unwrap_err();
    let text = err.to_string();
    assert!(text.contains(r#"-F "router://h:1?router.id=nope""#), "{text}");
    assert!(
        text.contains("chains[0].hops[0].nodes[0].connector.metadata.router.id") && text.contains("nope"),
        "{text}"
    );

    let err = load(None, &["http://:8080".into()], &[]).unwrap_err();
    assert!(matches!(&err, ConfigError::Unsupported { value, .. } if value == "http"), "{err}");
    let err = load(None, &[":8080".into()], &[]).unwrap_err();
    assert!(matches!(&err, ConfigError::Unsupported { value, .. } if value == "auto"), "{err}");
    let err = load(None, &["tun://?net=10.0.0.1/24".into()], &["router://h:1".into()]).unwrap_err();
    assert!(matches!(&err, ConfigError::Missing { key, .. } if key == "services[0].forwarder.nodes"), "{err}");
}

#[test]
fn tls_files_from_yaml() {
    let yaml = r#"
services:
- name: s
  addr: 0.0.0.0:443
  handler: {type: router}
  listener:
    type: wss
    tls: {certFile: /c.pem, keyFile: /k.pem, caFile: /ca.pem}
    metadata: {path: /tunnel}
chains:
- name: c
  hops:
  - nodes:
    - addr: "[fd00::1]:443"
      connector: {type: router, auth: {username: u, password: 123}}
      dialer: {type: tls, tls: {serverName: tunnel.example, secure: true}}
    - addr: b:443
      connector: {type: router}
      dialer: {type: tls}
      tls: {caFile: /ca.pem, certFile: /c.pem, keyFile: /k.pem}
"#;
    let loaded = parse_str(yaml, "tls.yaml").unwrap();
    let service = router_service(&loaded, 0);
    assert_eq!(
        service.listener,
        ListenerKind::Wss {
            path: "/tunnel".into(),
            tls: TlsServerSettings {
                cert_file: Some(PathBuf::from("/c.pem")),
                key_file: Some(PathBuf::from("/k.pem")),
                ca_file: Some(PathBuf::from("/ca.pem")),
            }
        }
    );
    // The chain is defined but no tun service uses it; it is still validated.
    assert!(loaded.config.services.len() == 1);
}

/// A directory with empty `ca.pem`, `c.pem` and `k.pem`: `load` checks
/// that the files a config names can be read.
fn tls_files(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rgost-config-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for name in ["ca.pem", "c.pem", "k.pem"] {
        std::fs::write(dir.join(name), "").unwrap();
    }
    dir
}

#[test]
fn tls_query_parameters() {
    let dir = tls_files("query");
    let file = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    let loaded =
        client(&format!("router+tls://10.0.0.1:8443?caFile={}&serverName=rgost.test&secure=true", file("ca.pem")));
    assert_eq!(
        tun_service(&loaded, 0).chain.nodes[0].dialer,
        DialerKind::Tls(TlsClientSettings {
            server_name: Some("rgost.test".into()),
            secure: true,
            ca_file: Some(dir.join("ca.pem")),
            cert_file: None,
            key_file: None,
        })
    );
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);

    let loaded = serve(&format!("router+tls://:8443?certFile={}&keyFile={}", file("c.pem"), file("k.pem")));
    assert_eq!(
        router_service(&loaded, 0).listener,
        ListenerKind::Tls(TlsServerSettings {
            cert_file: Some(dir.join("c.pem")),
            key_file: Some(dir.join("k.pem")),
            ca_file: None
        })
    );
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unreadable_tls_files_are_errors_at_load() {
    let dir = tls_files("missing");
    let missing = dir.join("missing.pem");
    let err = load(
        None,
        &[format!("router+tls://:8443?certFile={}&keyFile={}", dir.join("c.pem").display(), missing.display())],
        &[],
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(matches!(&err, ConfigError::Invalid { key, .. } if key == "services[0].listener.tls.keyFile"), "{text}");
    assert!(text.contains("missing.pem") && text.starts_with("-L "), "{text}");

    let yaml = format!(
        "services:\n- addr: :1\n  handler: {{type: router, metadata: {{router: r}}}}\nrouters:\n- name: r\n  plugin: {{addr: 'https://p', tls: {{caFile: {}}}}}\n",
        missing.display()
    );
    let config = dir.join("server.yaml");
    std::fs::write(&config, &yaml).unwrap();
    let err = load(Some(&config), &[], &[]).unwrap_err();
    assert!(matches!(&err, ConfigError::Invalid { key, .. } if key == "routers[0].plugin.tls.caFile"), "{err}");
    assert!(err.to_string().starts_with(&config.display().to_string()), "{err}");

    // Parsing alone touches no file.
    assert!(parse_str(&yaml, "t.yaml").is_ok());
    // A TLS block a plain listener ignores is not checked either.
    let err = load(None, &["router+tls://:8443".into(), format!("router://:8444?caFile={}", missing.display())], &[]);
    assert!(err.is_ok(), "{err:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
