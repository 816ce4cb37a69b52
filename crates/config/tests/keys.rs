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
