//! Rejected configs: every error names the origin, the key path and the value.

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

use proptest::prelude::*;
use rgost_config::*;

fn error(yaml: &str) -> ConfigError {
    match parse_str(yaml, "test.yaml") {
        Ok(loaded) => panic!("accepted: {:?}", loaded.config),
        Err(err) => err,
    }
}

fn assert_names(err: &ConfigError, parts: &[&str]) {
    let text = err.to_string();
    assert!(text.contains("test.yaml"), "no origin in {text}");
    for part in parts {
        assert!(text.contains(part), "{part:?} not in {text}");
    }
}

const TUN_HEAD: &str = "services:\n- handler: {type: tun}\n  forwarder: {nodes: [{addr: host-1}]}\n";
const CHAIN: &str =
    "chains:\n- name: chain-0\n  hops:\n  - nodes:\n    - addr: 1.2.3.4:8443\n      connector: {type: router}\n";

#[test]
fn bad_cidr() {
    let err = error(&format!("{TUN_HEAD}  listener: {{type: tun, metadata: {{net: 192.168.123.300/24}}}}\n{CHAIN}"));
    assert!(matches!(err, ConfigError::Invalid { .. }), "{err}");
    assert_names(&err, &["services[0].listener.metadata.net", "192.168.123.300/24"]);

    let err = error(&format!(
        "{TUN_HEAD}  listener: {{type: tun, metadata: {{net: 10.0.0.1/24, route: 10.1.0.0/33}}}}\n{CHAIN}"
    ));
    assert_names(&err, &["services[0].listener.metadata.route", "10.1.0.0/33"]);

    let err = error("routers:\n- name: r\n  routes:\n  - dst: 10.0.0.0/40\n    gateway: h\n");
    assert_names(&err, &["routers[0].routes[0].dst", "10.0.0.0/40"]);
}

#[test]
fn missing_net() {
    let err = error(&format!("{TUN_HEAD}  listener: {{type: tun}}\n{CHAIN}"));
    assert!(matches!(err, ConfigError::Missing { .. }), "{err}");
    assert_names(&err, &["services[0].listener.metadata.net"]);
}

#[test]
fn bad_mtu() {
    let err = error(&format!("{TUN_HEAD}  listener: {{type: tun, metadata: {{net: 10.0.0.1/24, mtu: 40}}}}\n{CHAIN}"));
    assert_names(&err, &["services[0].listener.metadata.mtu", "40"]);
}

#[test]
fn bad_uuid() {
    let err = error(
        "chains:\n- name: c\n  hops:\n  - nodes:\n    - addr: h:1\n      connector:\n        type: router\n        metadata: {router.id: not-a-uuid}\n",
    );
    assert_names(&err, &["chains[0].hops[0].nodes[0].connector.metadata.router.id", "not-a-uuid"]);

    let err = error("ingresses:\n- name: i\n  rules:\n  - hostname: h\n    endpoint: ns-1\n");
    assert_names(&err, &["ingresses[0].rules[0].endpoint", "ns-1"]);
}

#[test]
fn bad_port() {
    let err = error("services:\n- addr: :70000\n  handler: {type: router}\n");
    assert_names(&err, &["services[0].addr", ":70000"]);
    let err = error("chains:\n- name: c\n  hops:\n  - nodes:\n    - addr: h:0\n      connector: {type: router}\n");
    assert_names(&err, &["chains[0].hops[0].nodes[0].addr", "h:0"]);
}

#[test]
fn unsupported_types() {
    let err = error("services:\n- addr: :8080\n  handler: {type: http}\n  listener: {type: tcp}\n");
    assert!(matches!(err, ConfigError::Unsupported { .. }), "{err}");
    assert_names(&err, &["services[0].handler.type", "http"]);
    let err = error("services:\n- addr: :8080\n  handler: {type: router}\n  listener: {type: udp}\n");
    assert_names(&err, &["services[0].listener.type", "udp"]);
    let err = error("chains:\n- name: c\n  hops:\n  - nodes:\n    - addr: h:1\n      connector: {type: socks5}\n");
    assert_names(&err, &["chains[0].hops[0].nodes[0].connector.type", "socks5"]);
    let err = error(
        "chains:\n- name: c\n  hops:\n  - nodes:\n    - addr: h:1\n      connector: {type: router}\n      dialer: {type: kcp}\n",
    );
    assert_names(&err, &["chains[0].hops[0].nodes[0].dialer.type", "kcp"]);
    let err = error(
        "chains:\n- name: c\n  hops:\n  - nodes: [{addr: 'h:1', connector: {type: router}}]\n  - nodes: [{addr: 'g:1', connector: {type: router}}]\n",
    );
    assert_names(&err, &["chains[0].hops", "2 hops"]);
    let err = error("routers:\n- name: r\n  plugin: {type: grpc, addr: 'x:1'}\n");
    assert_names(&err, &["routers[0].plugin.type", "grpc"]);
}

#[test]
fn undefined_references() {
    let err = error("services:\n- addr: :8443\n  handler: {type: router, metadata: {router: nope}}\n");
    assert!(matches!(err, ConfigError::Undefined { .. }), "{err}");
    assert_names(&err, &["services[0].handler.metadata.router", "nope"]);
    let err = error("services:\n- addr: :8443\n  handler: {type: router, metadata: {ingress: nope}}\n");
    assert_names(&err, &["services[0].handler.metadata.ingress", "nope"]);
    let err = error("services:\n- addr: :8443\n  handler: {type: router, auther: nope}\n");
    assert_names(&err, &["services[0].handler.auther", "nope"]);
    let err = error(&format!(
        "{TUN_HEAD}  listener: {{type: tun, metadata: {{net: 10.0.0.1/24}}}}\n  handler: {{type: tun, chain: nope}}\n"
    ));
    // Duplicate `handler` key: the YAML reader refuses it.
    assert!(matches!(err, ConfigError::Syntax { .. }), "{err}");
    let err = error(
        "services:\n- handler: {type: tun, chain: nope}\n  forwarder: {nodes: [{addr: host-1}]}\n  listener: {type: tun, metadata: {net: 10.0.0.1/24}}\n",
    );
    assert_names(&err, &["services[0].handler.chain", "nope"]);
}

#[test]
fn missing_chain_and_gateway() {
    let err = error(&format!("{TUN_HEAD}  listener: {{type: tun, metadata: {{net: 10.0.0.1/24}}}}\n"));
    assert!(matches!(err, ConfigError::Missing { .. }), "{err}");
    assert_names(&err, &["services[0].handler.chain"]);
    let err = error("routers:\n- name: r\n  routes:\n  - dst: 10.0.0.1\n");
    assert_names(&err, &["routers[0].routes[0].gateway"]);
}

#[test]
fn unknown_keys() {
    let err = error("log:\n  level: debug\n");
    assert!(matches!(err, ConfigError::Unsupported { .. }), "{err}");
    assert_names(&err, &["log"]);
    let err = error("hosts:\n- name: h\n");
    assert_names(&err, &["hosts"]);
    let err = error("servicez: []\n");
    assert!(matches!(err, ConfigError::UnknownKey { .. }), "{err}");
    assert_names(&err, &["servicez", "line 1"]);
    let err = error("services:\n- addr: :8443\n  handler: {type: router, typo: 1}\n");
    assert_names(&err, &["services[0].handler.typo", "line 3"]);
}

#[test]
fn duplicates_and_pairs() {
    let err = error("routers:\n- name: r\n- name: r\n");
    assert_names(&err, &["routers[1].name", "\"r\""]);
    let err = error(
        "services:\n- addr: :1\n  handler: {type: router}\n- addr: :2\n  handler: {type: router}\n  name: service-0\n",
    );
    assert_names(&err, &["services[1].name", "service-0"]);
    let err =
        error("services:\n- addr: :1\n  handler: {type: router}\n  listener: {type: tls, tls: {keyFile: /k.pem}}\n");
    assert_names(&err, &["services[0].listener.tls.keyFile", "/k.pem"]);
    let err = error("services:\n- addr: :1\n  handler: {type: router, metadata: {maxConnections: 0}}\n");
    assert_names(&err, &["services[0].handler.metadata.maxConnections", "0"]);
    let err = error("services:\n- addr: :1\n  handler: {type: router, metadata: {readTimeout: 10 parsecs}}\n");
    assert_names(&err, &["services[0].handler.metadata.readTimeout", "10 parsecs"]);
}

#[test]
fn ignored_metadata_is_a_warning_unknown_metadata_an_error() {
    let loaded = parse_str(
        "services:\n- addr: :8443\n  handler:\n    type: router\n    metadata: {bufferSize: 8192}\n",
        "w.yaml",
    )
    .unwrap();
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    assert!(loaded.warnings[0].starts_with("w.yaml: services[0].handler.metadata.bufferSize"), "{:?}", loaded.warnings);

    let err = error("services:\n- addr: :8443\n  handler:\n    type: router\n    metadata: {frobnicate: true}\n");
    assert!(matches!(err, ConfigError::UnknownKey { .. }), "{err}");
    assert_names(&err, &["services[0].handler.metadata.frobnicate"]);
}

#[test]
fn sources_and_host_binding() {
    let yaml = r#"
services:
- addr: :8443
  handler:
    type: router
    auth: {username: admin, password: pw, hosts: [host-0]}
    auther: users
    metadata: {router: r}
routers:
- name: r
  reload: 30s
  file: {path: /etc/routes.txt}
  redis: {addr: "127.0.0.1:6379", db: 2, type: hash}
  http: {url: "http://127.0.0.1/routes", timeout: 2s}
authers:
- name: users
  auths:
  - {username: alice, password: a, hosts: [host-1, host-2]}
  - {username: bob, password: b}
"#;
    let loaded = parse_str(yaml, "s.yaml").unwrap();
    let ServiceKind::Router(service) = &loaded.config.services[0].kind else { panic!() };
    assert_eq!(
        service.host_binding,
        vec![("admin".to_owned(), vec!["host-0".to_owned()]), ("alice".into(), vec!["host-1".into(), "host-2".into()])]
    );
    let sources = &loaded.config.routers[0].sources;
    assert_eq!(sources.reload, Some(std::time::Duration::from_secs(30)));
    assert_eq!(sources.file, Some(FileSource { path: "/etc/routes.txt".into() }));
    assert_eq!(
        sources.redis,
        Some(RedisSource {
            addr: "127.0.0.1:6379".into(),
            db: 2,
            username: None,
            password: None,
            key: "gost".into(),
            kind: RedisKind::Hash
        })
    );
    assert_eq!(
        sources.http,
        Some(HttpSource { url: "http://127.0.0.1/routes".into(), timeout: std::time::Duration::from_secs(2) })
    );
    assert_eq!(loaded.config.authers[0].auths[1].hosts, Vec::<String>::new());
}

proptest! {
    #[test]
    fn random_text_never_panics(text in "\\PC{0,200}") {
        let _ = parse_str(&text, "fuzz.yaml");
    }

    #[test]
    fn random_yamlish_never_panics(text in "[a-z:{}\\[\\] ,\\-\\n.0-9/\"'#&*!|>]{0,200}") {
        let _ = parse_str(&text, "fuzz.yaml");
    }

    #[test]
    fn random_urls_never_panic(l in "[a-z+]{0,8}://[a-z0-9:@/?=&%.,\\[\\]]{0,40}", f in "[a-z+]{0,8}://[a-z0-9:@/?=&%.,\\[\\]]{0,40}") {
        let _ = load(None, &[l], &[f]);
    }
}

#[test]
fn host_bindings_name_namespaces_and_typos_are_errors() {
    let yaml = |hosts: &str| {
        format!(
            "services:\n- name: s\n  addr: :8443\n  handler:\n    type: router\n    auth: {{username: u, password: p, hosts: [{hosts}]}}\n  listener: {{type: tcp}}\n"
        )
    };
    let ok = parse_str(
        &yaml("h2@e87f56dd-fd57-4921-9ab8-a0847662daae, '*@e87f56dd-fd57-4921-9ab8-a0847662daae', h3"),
        "t.yaml",
    );
    assert!(ok.is_ok(), "{:?}", ok.err());
    let err = parse_str(&yaml("h2@tenant-a"), "t.yaml").unwrap_err().to_string();
    assert!(err.contains("hosts[0]") && err.contains("router id"), "{err}");
}
