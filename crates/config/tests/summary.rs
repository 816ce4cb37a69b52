//! `Config::summary`: one line per service saying what it would run.

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

use rgost_config::*;

#[test]
fn router_server_line() {
    let yaml = r#"
services:
- name: srv
  addr: :8443
  handler:
    type: router
    auther: users
    metadata: {router: router-0, ingress: ing}
  listener: {type: wss, metadata: {path: /t}}
- name: local
  addr: "[::1]:9000"
  handler: {type: router, auth: {username: admin, password: x, hosts: [h]}}
routers:
- name: router-0
  routes: [{dst: 10.0.0.0/8, gateway: h1}, {dst: 10.1.0.1, gateway: h2}]
  file: {path: /etc/routes.txt}
  reload: 30s
- name: e87f56dd-fd57-4921-9ab8-a0847662daae
  plugin: {addr: "http://127.0.0.1:8000/route"}
ingresses:
- name: ing
  rules: [{hostname: h1, endpoint: e87f56dd-fd57-4921-9ab8-a0847662daae}]
authers:
- name: users
  auths: [{username: a, password: b}, {username: c, password: d, hosts: [h2]}]
"#;
    let lines = parse_str(yaml, "t.yaml").unwrap().config.summary();
    assert_eq!(
        lines,
        vec![
            "srv: router server on :8443 over wss /t (self-signed certificate); default router router-0 \
             (2 routes + file /etc/routes.txt, reload every 30s), 1 other router; ingress ing (1 rule); \
             auther users (2 users), host names bound for 1 user"
                .to_owned(),
            "local: router server on [::1]:9000 over tcp; no default router, 2 other routers; no ingress; user admin, \
             host names bound for 1 user"
                .to_owned(),
        ]
    );
}

#[test]
fn tun_client_line() {
    let loaded = load(
        None,
        &["tun:///host-1?net=192.168.123.1/24&route=192.168.200.0/24&offload=false".into()],
        &["router+ws://alice:pw@203.0.113.7:8443?router.id=e87f56dd-fd57-4921-9ab8-a0847662daae".into()],
    )
    .unwrap();
    assert_eq!(
        loaded.config.summary(),
        vec![
            "service-0: tun client host-1: device (name chosen by the system) 192.168.123.1/24 mtu 1420, offload off, \
             routes 192.168.200.0/24; to 203.0.113.7:8443 over ws /ws, router.id e87f56dd-fd57-4921-9ab8-a0847662daae, \
             user alice (chain chain-0)"
                .to_owned()
        ]
    );
}

#[test]
fn listen_addresses_display_as_written() {
    assert_eq!(ListenAddr { ip: None, port: 8443 }.to_string(), ":8443");
    assert_eq!(ListenAddr { ip: Some([127, 0, 0, 1].into()), port: 1 }.to_string(), "127.0.0.1:1");
    assert_eq!(ListenAddr { ip: Some("::1".parse().unwrap()), port: 2 }.to_string(), "[::1]:2");
}
