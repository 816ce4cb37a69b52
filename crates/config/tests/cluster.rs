//! Cluster keys: `sds`, the router handler's `sd`, `entrypoint`,
//! `nodeSecret`, ..., and a hop's several nodes with their selector.
#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::time::Duration;

use rgost_config::*;

const SECRET: &str = "0123456789abcdef0123";

fn server(metadata: &str, sds: &str) -> String {
    format!(
        "services:\n- addr: :8443\n  handler:\n    type: router\n    metadata: {{{metadata}}}\n\
         sds:\n{sds}"
    )
}

const REDIS_SD: &str = "- name: sd-0\n  redis: {addr: 10.0.0.9:6379, db: 2, password: pw, prefix: prod}\n";

fn cluster(loaded: &Loaded) -> &ClusterSettings {
    match &loaded.config.services[0].kind {
        ServiceKind::Router(router) => router.cluster.as_ref().unwrap(),
        _ => panic!("not a router"),
    }
}

fn error(yaml: &str) -> String {
    parse_str(yaml, "c.yaml").unwrap_err().to_string()
}

#[test]
fn a_redis_cluster_node() {
    let yaml = server(
        &format!(
            "sd: sd-0, entrypoint: '10.0.0.1:7443', nodeSecret: {SECRET}, sd.renewInterval: 5s, \
             sd.cache.expiration: 2s, nodeQueueBytes: 8MiB"
        ),
        REDIS_SD,
    );
    let loaded = parse_str(&yaml, "c.yaml").unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let c = cluster(&loaded);
    assert_eq!(c.entrypoint, ListenAddr { ip: Some([10, 0, 0, 1].into()), port: 7443 });
    assert_eq!(c.advertise, "10.0.0.1:7443");
    assert_eq!(c.node_secret, SECRET);
    assert_eq!(c.renew_interval, Duration::from_secs(5));
    assert_eq!(c.cache_expiration, Duration::from_secs(2));
    assert_eq!(c.node_queue_bytes, 8 << 20);
    assert_eq!(
        c.sd,
        SdConfig {
            name: "sd-0".into(),
            backend: SdBackend::Redis(SdRedis {
                addrs: vec!["10.0.0.9:6379".into()],
                sentinel: None,
                db: 2,
                username: None,
                password: Some("pw".into()),
                prefix: "prod".into(),
            }),
        }
    );
    assert!(!format!("{c:?}").contains(SECRET), "the secret is not in Debug output");
    assert!(!format!("{:?}", c.sd).contains("pw"), "nor the redis password");
    let summary = loaded.config.summary();
    assert!(summary[0].contains("cluster node: links on 10.0.0.1:7443"), "{summary:?}");
}

#[test]
fn defaults_sentinels_and_plugins() {
    let sds = "- name: sd-0\n  redis: {addr: 's1:26379, s2:26379', sentinel: mymaster}\n\
               - name: sd-1\n  plugin: {type: http, addr: 'http://127.0.0.1:8000/sd'}\n";
    let yaml =
        server(&format!("sd: sd-0, entrypoint: ':7443', entrypoint.advertise: 'n1:7443', nodeSecret: {SECRET}"), sds);
    let loaded = parse_str(&yaml, "c.yaml").unwrap();
    let c = cluster(&loaded);
    assert_eq!(c.advertise, "n1:7443");
    assert_eq!(c.renew_interval, defaults::SD_RENEW_INTERVAL);
    assert_eq!(c.cache_expiration, defaults::SD_CACHE_EXPIRATION);
    assert_eq!(c.node_queue_bytes, defaults::NODE_QUEUE_BYTES);
    match &c.sd.backend {
        SdBackend::Redis(r) => {
            assert_eq!(r.addrs, ["s1:26379", "s2:26379"]);
            assert_eq!(r.sentinel.as_deref(), Some("mymaster"));
            assert_eq!(r.prefix, defaults::SD_REDIS_PREFIX);
        }
        other => panic!("{other:?}"),
    }
    let yaml = server(&format!("sd: sd-1, entrypoint: '10.0.0.1:7443', nodeSecret: {SECRET}"), sds);
    let loaded = parse_str(&yaml, "c.yaml").unwrap();
    assert!(matches!(&cluster(&loaded).sd.backend, SdBackend::Plugin(p) if p.addr == "http://127.0.0.1:8000/sd"));
    // GOST clamps a renew interval under a second to its default.
    let yaml =
        server(&format!("sd: sd-1, entrypoint: '10.0.0.1:7443', nodeSecret: {SECRET}, sd.renewInterval: 10ms"), sds);
    let loaded = parse_str(&yaml, "c.yaml").unwrap();
    assert_eq!(cluster(&loaded).renew_interval, defaults::SD_RENEW_INTERVAL);
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
}

#[test]
fn mistakes_are_named() {
    let ok = format!("sd: sd-0, entrypoint: '10.0.0.1:7443', nodeSecret: {SECRET}");
    assert!(
        error(&server(&ok.replace("sd-0", "sd-9"), REDIS_SD)).contains("handler.metadata.sd: \"sd-9\" is not defined")
    );
    let e = error(&server("sd: sd-0, entrypoint: '10.0.0.1:7443'", REDIS_SD));
    assert!(e.contains("nodeSecret: missing") && e.contains("openssl rand"), "{e}");
    let e = error(&server("sd: sd-0, entrypoint: '10.0.0.1:7443', nodeSecret: short", REDIS_SD));
    assert!(e.contains("nodeSecret: invalid value \"***\"") && !e.contains("short"), "{e}");
    let e = error(&server(&format!("sd: sd-0, nodeSecret: {SECRET}"), REDIS_SD));
    assert!(e.contains("entrypoint: missing"), "{e}");
    let e = error(&server(&format!("sd: sd-0, entrypoint: ':7443', nodeSecret: {SECRET}"), REDIS_SD));
    assert!(e.contains("entrypoint.advertise: missing"), "{e}");
    let e = error(&server(&ok, "- name: sd-0\n"));
    assert!(e.contains("sds[0].redis: missing"), "{e}");
    let e = error(&server(&ok, "- name: sd-0\n  plugin: {addr: 'http://x/'}\n"));
    assert!(e.contains("sds[0].plugin.type: \"grpc\" is not supported"), "{e}");
    let e = error(&server(&ok, "- name: sd-0\n  redis: {addr: 'a:1,b:2'}\n"));
    assert!(e.contains("also give sentinel"), "{e}");
    let e = error(&server(&ok, "- name: sd-0\n  redis: {addr: a:1, prefx: x}\n"));
    assert!(e.contains("prefx") && e.contains("prefix"), "{e}");
    // Without sd the other keys do nothing, and say so.
    let loaded =
        parse_str(&server(&format!("entrypoint: '10.0.0.1:7443', nodeSecret: {SECRET}"), REDIS_SD), "c.yaml").unwrap();
    assert_eq!(loaded.warnings.len(), 2, "{:?}", loaded.warnings);
    assert!(loaded.warnings.iter().all(|w| w.contains("ignored without sd")));
}

fn chain_of(loaded: &Loaded) -> &Chain {
    match &loaded.config.services[0].kind {
        ServiceKind::Tun(tun) => &tun.chain,
        _ => panic!("not a client"),
    }
}

#[test]
fn several_nodes_on_the_command_line_and_in_a_file() {
    let loaded = load(
        None,
        &["tun:///host-1?net=10.0.0.1/24".into()],
        &["router://u:p@n1:8443,n2:8443,[fd00::3]:8443?strategy=fifo&maxFails=3&fail_timeout=30s&router.id=e87f56dd-fd57-4921-9ab8-a0847662daae".into()],
    )
    .unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let chain = chain_of(&loaded);
    let addrs: Vec<&str> = chain.nodes.iter().map(|n| n.addr.as_str()).collect();
    assert_eq!(addrs, ["n1:8443", "n2:8443", "[fd00::3]:8443"]);
    let names: Vec<&str> = chain.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["node-0", "node-1", "node-2"]);
    assert!(chain.nodes.iter().all(|n| n.connector.auth.as_ref().is_some_and(|a| a.username == "u")));
    assert!(chain.nodes.iter().all(|n| n.connector.router_id.is_some()));
    assert_eq!(
        chain.selector,
        Selector { strategy: Strategy::Fifo, max_fails: 3, fail_timeout: Duration::from_secs(30) }
    );
    assert!(loaded.config.summary()[0].contains("strategy fifo"), "{:?}", loaded.config.summary());

    let loaded = load(None, &["tun:///host-1?net=10.0.0.1/24".into()], &["router://n1:8443".into()]).unwrap();
    assert_eq!(chain_of(&loaded).selector, Selector::default());

    let yaml = "services:\n- handler: {type: tun, chain: c}\n  listener: {type: tun, metadata: {net: 10.0.0.1/24}}\n  \
                forwarder: {nodes: [{addr: host-1}]}\n\
                chains:\n- name: c\n  hops:\n  - selector: {strategy: hash, maxFails: 0, failTimeout: 5s, maxLatency: 1s}\n    nodes:\n    \
                - {addr: 'n1:1', connector: {type: router}}\n    - {addr: 'n2:1', connector: {type: router}}\n";
    let loaded = parse_str(yaml, "c.yaml").unwrap();
    assert_eq!(
        chain_of(&loaded).selector,
        Selector { strategy: Strategy::Hash, max_fails: 1, fail_timeout: Duration::from_secs(5) }
    );
    assert_eq!(loaded.warnings.len(), 1, "maxLatency: {:?}", loaded.warnings);
    let loaded = parse_str(&yaml.replace("hash", "parallel"), "c.yaml").unwrap();
    assert_eq!(chain_of(&loaded).selector.strategy, Strategy::RoundRobin);
}
