//! Keys added for deployment: the TUN offload switch, the router's byte
//! budgets, and their defaults.

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

use rgost_config::*;

fn tun(loaded: &Loaded) -> &TunService {
    match &loaded.config.services[0].kind {
        ServiceKind::Tun(service) => service,
        other => panic!("not a tun service: {other:?}"),
    }
}

fn client(query: &str) -> Result<Loaded, ConfigError> {
    load(None, &[format!("tun:///host-1?net=10.0.0.1/24{query}")], &["router://h:1".into()])
}

#[test]
fn tun_offload_is_a_listener_key_on_by_default() {
    assert!(tun(&client("").unwrap()).tun.offload);
    assert!(!tun(&client("&offload=false").unwrap()).tun.offload);
    assert!(!tun(&client("&listener.offload=0").unwrap()).tun.offload);
    assert!(tun(&client("&offload=true").unwrap()).tun.offload);
    let loaded = parse_str(
        "services:\n- handler: {type: tun}\n  listener: {type: tun, metadata: {net: 10.0.0.1/24, offload: false}}\n  \
         forwarder: {nodes: [{addr: h}]}\nchains:\n- name: c\n  hops:\n  - nodes: [{addr: 'h:1', connector: {type: router}}]\n",
        "t.yaml",
    )
    .unwrap();
    assert!(!tun(&loaded).tun.offload);
    assert!(loaded.warnings.iter().all(|w| !w.contains("offload")), "{:?}", loaded.warnings);

    let err = client("&offload=maybe").unwrap_err();
    assert!(
        matches!(&err, ConfigError::Invalid { key, .. } if key == "services[0].listener.metadata.offload"),
        "{err}"
    );
}

fn router(loaded: &Loaded) -> &RouterService {
    match &loaded.config.services[0].kind {
        ServiceKind::Router(service) => service,
        other => panic!("not a router service: {other:?}"),
    }
}

fn serve(metadata: &str) -> Result<Loaded, ConfigError> {
    parse_str(&format!("services:\n- addr: :8443\n  handler: {{type: router, metadata: {{{metadata}}}}}\n"), "t.yaml")
}

#[test]
fn queue_byte_budgets_default_to_1_4_and_256_mib() {
    let limits = router(&serve("").unwrap()).limits;
    assert_eq!(limits.queue_bytes, 1 << 20);
    assert_eq!(limits.host_queue_bytes, 4 << 20);
    assert_eq!(limits.server_queue_bytes, 256 << 20);
    assert_eq!(limits, Limits::default());
    assert_eq!(limits.queue_packets, 256);
}

#[test]
fn queue_byte_budgets_take_integers_or_units() {
    let loaded = serve("queueBytes: 512KiB, hostQueueBytes: 4MB, serverQueueBytes: 1gib").unwrap();
    let limits = router(&loaded).limits;
    assert_eq!(limits.queue_bytes, 512 * 1024);
    assert_eq!(limits.host_queue_bytes, 4_000_000);
    assert_eq!(limits.server_queue_bytes, 1 << 30);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);

    let limits = router(&serve("queueBytes: 65536, hostQueueBytes: '131072'").unwrap()).limits;
    assert_eq!((limits.queue_bytes, limits.host_queue_bytes), (65536, 131_072));

    let loaded = load(None, &["router://:8443?queueBytes=2mib&serverQueueBytes=64MiB".into()], &[]).unwrap();
    let limits = router(&loaded).limits;
    assert_eq!((limits.queue_bytes, limits.server_queue_bytes), (2 << 20, 64 << 20));
}

#[test]
fn bad_queue_byte_budgets_are_errors() {
    for (metadata, key, value) in [
        ("queueBytes: 0", "queueBytes", "0"),
        ("hostQueueBytes: 4 megs", "hostQueueBytes", "4 megs"),
        ("serverQueueBytes: -1", "serverQueueBytes", "-1"),
        ("queueBytes: 1.5MiB", "queueBytes", "1.5MiB"),
        ("queueBytes: [1]", "queueBytes", "[1]"),
    ] {
        let err = serve(metadata).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, ConfigError::Invalid { .. }), "{metadata}: {text}");
        assert!(text.contains(&format!("services[0].handler.metadata.{key}")) && text.contains(value), "{text}");
    }
    let err = serve("queueByte: 1MiB").unwrap_err();
    assert!(matches!(&err, ConfigError::UnknownKey { suggestion: Some(s), .. } if s == "queueBytes"), "{err}");
}

#[test]
fn a_budget_below_a_narrower_one_is_a_notice() {
    let loaded = serve("queueBytes: 8MiB").unwrap();
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    assert!(loaded.warnings[0].contains("queueBytes") && loaded.warnings[0].contains("hostQueueBytes"));
}
