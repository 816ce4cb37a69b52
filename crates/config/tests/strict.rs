//! Strictness: unknown keys, in the schema and in metadata, are errors that
//! name the origin, the dotted key path and the closest known key.

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

use rgost_config::*;

fn error(yaml: &str) -> ConfigError {
    match parse_str(yaml, "test.yaml") {
        Ok(loaded) => panic!("accepted: {:?} (warnings {:?})", loaded.config, loaded.warnings),
        Err(err) => err,
    }
}

/// The error is an unknown key at `path` and its message suggests `hint`.
fn assert_unknown(err: &ConfigError, path: &str, hint: Option<&str>) {
    let text = err.to_string();
    match err {
        ConfigError::UnknownKey { key, suggestion, .. } => {
            assert_eq!(key, path, "{text}");
            assert_eq!(suggestion.as_deref(), hint, "{text}");
        }
        other => panic!("not an unknown key error: {other:?}"),
    }
    assert!(text.contains(path), "{path} not in {text}");
    if let Some(hint) = hint {
        assert!(text.contains(&format!("did you mean `{hint}`?")), "no suggestion in {text}");
    }
}

#[test]
fn unknown_schema_keys_have_their_dotted_path() {
    let err = error("services:\n- addr: :8443\n  handler:\n    type: router\n    metdata: {router: r}\n");
    assert_unknown(&err, "services[0].handler.metdata", Some("metadata"));
    let text = err.to_string();
    assert!(text.starts_with("test.yaml: "), "{text}");
    assert!(text.contains("line 5"), "no line in {text}");

    let err = error("servicez: []\n");
    assert_unknown(&err, "servicez", Some("services"));

    let err = error(
        "services:\n- addr: :1\n  handler: {type: router}\n- addr: :2\n  handler: {type: router}\n  listener: {type: tls, tls: {certfile: x}}\n",
    );
    assert_unknown(&err, "services[1].listener.tls.certfile", Some("certFile"));

    let err = error("routers:\n- name: r\n  routes:\n  - dst: 10.0.0.0/8\n    gatway: h\n");
    assert_unknown(&err, "routers[0].routes[0].gatway", Some("gateway"));

    // Nothing close: no suggestion, but the keys that are allowed there.
    let err = error("authers:\n- name: a\n  zzzzzzzz: 1\n");
    assert_unknown(&err, "authers[0].zzzzzzzz", None);
    assert!(err.to_string().contains("auths"), "{err}");
}

#[test]
fn unknown_schema_keys_in_json_have_their_dotted_path() {
    let err = error(r#"{"services": [{"addr": ":8443", "handler": {"type": "router", "metdata": {}}}]}"#);
    assert_unknown(&err, "services[0].handler.metdata", Some("metadata"));
}

fn cli_error(services: &[&str], nodes: &[&str]) -> ConfigError {
    let services: Vec<String> = services.iter().map(|s| (*s).to_owned()).collect();
    let nodes: Vec<String> = nodes.iter().map(|s| (*s).to_owned()).collect();
    match load(None, &services, &nodes) {
        Ok(loaded) => panic!("accepted: {:?} (warnings {:?})", loaded.config, loaded.warnings),
        Err(err) => err,
    }
}

const CHAIN: &str =
    "chains:\n- name: chain-0\n  hops:\n  - nodes:\n    - addr: 1.2.3.4:8443\n      connector: {type: router}\n";

#[test]
fn unknown_handler_metadata_is_an_error() {
    let err = error(
        "services:\n- addr: :8443\n  handler:\n    type: router\n    metadata: {routr: r}\nrouters:\n- name: r\n",
    );
    assert_unknown(&err, "services[0].handler.metadata.routr", Some("router"));
    assert!(err.to_string().starts_with("test.yaml: "), "{err}");

    let err = error("services:\n- addr: :8443\n  handler: {type: router, metadata: {frobnicate: true}}\n");
    assert_unknown(&err, "services[0].handler.metadata.frobnicate", None);
    // Nothing is close: the message lists what is read there.
    assert!(err.to_string().contains("maxConnections"), "{err}");
}

#[test]
fn unknown_tun_url_query_key_is_an_error() {
    let err = cli_error(&["tun:///host-1?net=10.0.0.1/24&rout=10.1.0.0/16"], &["router://h:1"]);
    assert_unknown(&err, "services[0].listener.metadata.rout", Some("route"));
    let text = err.to_string();
    assert!(text.starts_with(r#"-L "tun:///host-1?net=10.0.0.1/24&rout=10.1.0.0/16""#), "{text}");
    // Reported once, although the query key is in both the handler's and the listener's metadata.
    assert_eq!(text.matches("rout").count(), 3, "{text}");
}

#[test]
fn unknown_node_url_query_key_is_an_error() {
    let err =
        cli_error(&["tun:///host-1?net=10.0.0.1/24"], &["router://h:1?routerid=e87f56dd-fd57-4921-9ab8-a0847662daae"]);
    assert_unknown(&err, "chains[0].hops[0].nodes[0].connector.metadata.routerid", Some("router.id"));
    assert!(err.to_string().starts_with(r#"-F "router://h:1?routerid="#), "{err}");

    let err = cli_error(&["router://:8443?maxConections=5"], &[]);
    assert_unknown(&err, "services[0].handler.metadata.maxConections", Some("maxConnections"));
}

#[test]
fn unknown_listener_dialer_connector_service_metadata_is_an_error() {
    let err =
        error("services:\n- addr: :8443\n  handler: {type: router}\n  listener: {type: ws, metadata: {pth: /x}}\n");
    assert_unknown(&err, "services[0].listener.metadata.pth", Some("path"));

    let err = error(&format!(
        "services:\n- handler: {{type: tun}}\n  listener: {{type: tun, metadata: {{net: 10.0.0.1/24, mut: 1400}}}}\n  forwarder: {{nodes: [{{addr: h}}]}}\n{CHAIN}"
    ));
    assert_unknown(&err, "services[0].listener.metadata.mut", Some("mtu"));

    let err = error(&format!(
        "services:\n- handler: {{type: tun, metadata: {{keepAlve: true}}}}\n  listener: {{type: tun, metadata: {{net: 10.0.0.1/24}}}}\n  forwarder: {{nodes: [{{addr: h}}]}}\n{CHAIN}"
    ));
    assert_unknown(&err, "services[0].handler.metadata.keepAlve", Some("keepAlive"));

    let err = error("services:\n- addr: :8443\n  handler: {type: router}\n  metadata: {so_mak: 1}\n");
    assert_unknown(&err, "services[0].metadata.so_mak", Some("so_mark"));

    let err = error(
        "chains:\n- name: c\n  hops:\n  - nodes:\n    - addr: h:1\n      connector: {type: router, metadata: {conectTimeout: 1s}}\n",
    );
    assert_unknown(&err, "chains[0].hops[0].nodes[0].connector.metadata.conectTimeout", Some("connectTimeout"));

    let err = error(
        "chains:\n- name: c\n  hops:\n  - nodes:\n    - addr: h:1\n      connector: {type: router}\n      dialer: {type: wss, metadata: {hots: example.org}}\n",
    );
    assert_unknown(&err, "chains[0].hops[0].nodes[0].dialer.metadata.hots", Some("host"));
}

#[test]
fn a_key_read_in_another_map_is_pointed_at() {
    // `path` is the listener's; in the handler's metadata it is unknown.
    let err =
        error("services:\n- addr: :8443\n  handler: {type: router, metadata: {path: /x}}\n  listener: {type: ws}\n");
    assert_unknown(&err, "services[0].handler.metadata.path", Some("services[0].listener.metadata.path"));
}

#[test]
fn ignored_gost_keys_are_one_notice_each() {
    let loaded = parse_str(
        "services:\n- addr: :8443\n  handler:\n    type: router\n    metadata: {bufferSize: 8192, entrypoint: ':8000'}\n  \
         listener: {type: tcp, metadata: {backlog: 128}}\n  metadata: {interface: eth0}\n",
        "w.yaml",
    )
    .unwrap();
    assert_eq!(loaded.warnings.len(), 4, "{:?}", loaded.warnings);
    for key in [
        "services[0].handler.metadata.bufferSize",
        "services[0].handler.metadata.entrypoint",
        "services[0].listener.metadata.backlog",
        "services[0].metadata.interface",
    ] {
        let notices: Vec<&String> = loaded.warnings.iter().filter(|w| w.contains(key)).collect();
        assert_eq!(notices.len(), 1, "{key}: {:?}", loaded.warnings);
        assert!(notices[0].starts_with("w.yaml: ") && !notices[0].contains('\n'), "{notices:?}");
    }

    // A query key goes to both parts; one notice.
    let loaded =
        load(None, &["tun:///host-1?net=10.0.0.1/24&bufferSize=1500".into()], &["router://h:1".into()]).unwrap();
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    assert!(loaded.warnings[0].contains("bufferSize"), "{:?}", loaded.warnings);
}

#[test]
fn keys_read_in_either_of_two_maps_are_known_in_both() {
    // The dialer's connectTimeout wins over the connector's; both are read.
    let yaml = format!(
        "{}      dialer: {{type: ws, metadata: {{connectTimeout: 2s, path: /t}}}}\n      connector:\n        type: router\n        metadata: {{connectTimeout: 5s, keepAlivePeriod: 3s}}\n",
        "chains:\n- name: c\n  hops:\n  - nodes:\n    - addr: h:1\n"
    );
    let loaded = parse_str(&yaml, "t.yaml").unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);

    // Keepalive keys on the handler and the listener at once.
    let loaded = parse_str(
        "services:\n- addr: :1\n  handler: {type: router, metadata: {keepAlivePeriod: 5s}}\n  listener: {type: tcp, metadata: {keepAlivePeriod: 6s, userTimeout: 9s}}\n",
        "t.yaml",
    )
    .unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn a_websocket_key_on_a_plain_transport_is_a_notice() {
    let loaded = parse_str(
        "services:\n- addr: :1\n  handler: {type: router}\n  listener: {type: tcp, metadata: {path: /x}}\n",
        "t.yaml",
    )
    .unwrap();
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    assert!(loaded.warnings[0].contains("services[0].listener.metadata.path"), "{:?}", loaded.warnings);
}

#[test]
fn client_tls_keys_on_a_listener_url_are_a_notice() {
    let loaded = load(None, &["router+tls://:8443?serverName=x.example&secure=true".into()], &[]).unwrap();
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    assert!(loaded.warnings[0].contains("services[0].listener.tls"), "{:?}", loaded.warnings);
}
