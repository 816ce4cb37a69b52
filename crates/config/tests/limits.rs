//! `limiters`, `rlimiters`, `observers` and the keys that use them.

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::time::Duration;

use rgost_config::*;

fn router_service(loaded: &Loaded, i: usize) -> &RouterService {
    match &loaded.config.services[i].kind {
        ServiceKind::Router(service) => service,
        other => panic!("not a router service: {other:?}"),
    }
}

fn parse(yaml: &str) -> Result<Loaded, ConfigError> {
    parse_str(yaml, "t.yaml")
}

const SERVICE: &str = "services:\n- name: s\n  addr: :8443\n";

#[test]
fn a_gost_config_with_limiters_rlimiters_and_an_observer() {
    let yaml = format!(
        "{SERVICE}  limiter: per-conn\n  rlimiter: conns\n  handler:\n    type: router\n    limiter: per-client\n    \
         observer: stats\n    metadata:\n      observePeriod: 2s\n      observer.resetTraffic: true\n      \
         limiter.refreshInterval: 10s\n\
         limiters:\n- name: per-client\n  limits:\n  - '$ 100MB 100MB'\n  - '$$ 10MB'\n  - 'host-1 50Mbit 50Mbit'\n  \
         - '192.168.0.0/16  1MB  5MB'\n  reload: 30s\n  file: {{path: limits.txt}}\n  redis: {{addr: 127.0.0.1:6379, \
         key: gost:limiters, type: list}}\n\
         - name: per-conn\n  limits: ['$$ 1MB']\n\
         rlimiters:\n- name: conns\n  limits: ['$ 100', '$$ 10', '10.0.0.0/8 0.5']\n\
         observers:\n- name: stats\n  plugin: {{type: http, addr: 'http://127.0.0.1:8000/observer', timeout: 2s}}\n"
    );
    let loaded = parse(&yaml).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let service = router_service(&loaded, 0);
    assert_eq!(
        service.shaping,
        Shaping {
            limiter: Some("per-client".into()),
            service_limiter: Some("per-conn".into()),
            rate_limiter: Some("conns".into()),
            observer: Some("stats".into()),
            observe: Observe { period: Duration::from_secs(2), reset_traffic: true },
            limiter_refresh: Duration::from_secs(10),
        }
    );
    let limiter = &loaded.config.limiters[0];
    assert_eq!(limiter.name, "per-client");
    assert_eq!(limiter.limits.len(), 4);
    assert_eq!(limiter.limits[0].scope, LimitScope::Service);
    assert_eq!(limiter.limits[2].scope, LimitScope::Client { host: "host-1".into(), router: None });
    assert_eq!(limiter.limits[2].input, Some(6_250_000));
    assert_eq!(limiter.sources.reload, Some(Duration::from_secs(30)));
    assert_eq!(limiter.sources.redis.as_ref().unwrap().kind, RedisKind::List);
    let lines: Vec<String> = limiter.limits.iter().map(TrafficLimit::line).collect();
    assert_eq!(lines, ["$ 100MB 100MB", "$$ 10MB", "host-1 50Mbit 50Mbit", "192.168.0.0/16 1MB 5MB"]);
    let rates = &loaded.config.rlimiters[0].limits;
    assert_eq!(rates.iter().map(|r| r.per_second).collect::<Vec<_>>(), [100.0, 10.0, 0.5]);
    assert_eq!(loaded.config.observers[0].plugin.timeout, Duration::from_secs(2));

    let summary = loaded.config.summary();
    assert!(summary[0].contains("limiter per-client per client (4 lines + file limits.txt"), "{summary:?}");
    assert!(summary[0].contains("limiter per-conn per connection (1 line)"), "{summary:?}");
    assert!(summary[0].contains("rlimiter conns (3 lines)"), "{summary:?}");
    assert!(summary[0].contains("observer stats every 2s"), "{summary:?}");
}

#[test]
fn defaults_and_gosts_clamps() {
    let yaml = format!("{SERVICE}  handler: {{type: router}}\n");
    assert_eq!(router_service(&parse(&yaml).unwrap(), 0).shaping, Shaping::default());
    assert_eq!(Shaping::default().observe.period, Duration::from_secs(5));
    assert_eq!(Shaping::default().limiter_refresh, Duration::from_secs(30));
    for (value, period) in [("0s", 5000), ("100ms", 1000), ("3", 3000)] {
        let yaml = format!("{SERVICE}  handler: {{type: router, metadata: {{observer.period: {value}}}}}\n");
        let shaping = router_service(&parse(&yaml).unwrap(), 0).shaping.clone();
        assert_eq!(shaping.observe.period, Duration::from_millis(period), "{value}");
    }
    // The first of GOST's three names that is set wins.
    let yaml =
        format!("{SERVICE}  handler: {{type: router, metadata: {{observer.observePeriod: 9s, observePeriod: 7s}}}}\n");
    assert_eq!(router_service(&parse(&yaml).unwrap(), 0).shaping.observe.period, Duration::from_secs(7));
    let yaml = format!("{SERVICE}  handler: {{type: router, metadata: {{limiter.refreshInterval: 10ms}}}}\n");
    assert_eq!(router_service(&parse(&yaml).unwrap(), 0).shaping.limiter_refresh, Duration::from_secs(1));
}

#[test]
fn errors_name_the_key() {
    let cases: [(String, &str); 9] = [
        (format!("{SERVICE}  handler: {{type: router, limiter: nope}}\n"), "services[0].handler.limiter"),
        (format!("{SERVICE}  handler: {{type: router, observer: nope}}\n"), "services[0].handler.observer"),
        (format!("{SERVICE}  rlimiter: nope\n  handler: {{type: router}}\n"), "services[0].rlimiter"),
        (format!("{SERVICE}  limiter: nope\n  handler: {{type: router}}\n"), "services[0].limiter"),
        ("limiters:\n- name: l\n  limits: ['$ 100mb']\n".into(), "limiters[0].limits[0]"),
        ("limiters:\n- name: l\n  limits: ['$ 1MB', 'h 1MB', '$ 2MB']\n".into(), "limiters[0].limits[2]"),
        ("rlimiters:\n- name: l\n  limits: ['host-1 10']\n".into(), "rlimiters[0].limits[0]"),
        ("observers:\n- name: o\n".into(), "observers[0].plugin"),
        ("limiters:\n- limits: ['$ 1MB']\n".into(), "limiters[0].name"),
    ];
    for (yaml, key) in cases {
        let err = parse(&yaml).unwrap_err();
        assert!(err.to_string().contains(&format!("{key}:")), "{key}: {err}");
    }
    // A plugin limiter asks about clients: the listener's limiter cannot use one.
    let yaml = format!(
        "{SERVICE}  limiter: l\n  handler: {{type: router}}\nlimiters:\n- name: l\n  plugin: {{addr: 'http://x'}}\n"
    );
    let err = parse(&yaml).unwrap_err();
    assert!(matches!(&err, ConfigError::Unsupported { key, .. } if key == "services[0].limiter"), "{err}");
    let err = parse("rlimiters:\n- name: r\n  plugin: {addr: 'http://x'}\n").unwrap_err();
    assert!(matches!(&err, ConfigError::Unsupported { key, .. } if key == "rlimiters[0].plugin"), "{err}");
    // A redis list holds lines, which only limiters read.
    let err = parse("routers:\n- name: r\n  redis: {addr: 'x:1', type: list}\n").unwrap_err();
    assert!(matches!(&err, ConfigError::Unsupported { key, .. } if key == "routers[0].redis.type"), "{err}");
    // Unknown keys in the new sections are errors with their path.
    let err = parse("observers:\n- name: o\n  plugn: {}\n").unwrap_err();
    assert!(err.to_string().contains("observers[0].plugn"), "{err}");
    // Names are unique per section.
    let err = parse("limiters:\n- name: l\n- name: l\n").unwrap_err();
    assert!(err.to_string().contains("limiters[1].name"), "{err}");
}

#[test]
fn notices() {
    let loaded = parse("rlimiters:\n- name: r\n  limits: ['$ 0', '$$ 5']\n").unwrap();
    assert_eq!(loaded.config.rlimiters[0].limits.len(), 1);
    assert!(loaded.warnings.iter().any(|w| w.contains("rlimiters[0].limits[0]")), "{:?}", loaded.warnings);
    let loaded = parse("limiters:\n- name: l\n  limits: ['$ 1MB']\n  plugin: {addr: 'http://127.0.0.1:1/'}\n").unwrap();
    assert!(loaded.warnings.iter().any(|w| w.contains("limiters[0].plugin")), "{:?}", loaded.warnings);
    // A tun client limits nothing.
    let yaml = "services:\n- limiter: l\n  handler: {type: tun, observer: o}\n  listener: {type: tun, metadata: \
                {net: 10.0.0.1/24}}\n  forwarder: {nodes: [{addr: h}]}\nchains:\n- name: c\n  hops:\n  - nodes:\n    \
                - addr: h:1\n      connector: {type: router}\nlimiters:\n- name: l\nobservers:\n- name: o\n  \
                plugin: {addr: 'http://x'}\n";
    let loaded = parse(yaml).unwrap();
    for key in ["services[0].limiter:", "services[0].handler.observer:"] {
        assert!(loaded.warnings.iter().any(|w| w.contains(key)), "{key}: {:?}", loaded.warnings);
    }
}

#[test]
fn command_line_limiter_keys_make_gost_named_limiters() {
    let url = "router://:8443?limiter.in=100MB&limiter.out=50Mbit&limiter.conn.out=1MB&rlimiter=2.5".to_owned();
    let loaded = load(None, &[url], &[]).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let shaping = &router_service(&loaded, 0).shaping;
    assert_eq!(shaping.service_limiter.as_deref(), Some("limiter-0"));
    assert_eq!(shaping.rate_limiter.as_deref(), Some("rlimiter-0"));
    assert_eq!(shaping.limiter, None);
    let lines: Vec<String> = loaded.config.limiters[0].limits.iter().map(TrafficLimit::line).collect();
    assert_eq!(lines, ["$ 100MB 50Mbit", "$$ 0 1MB"]);
    assert_eq!(loaded.config.rlimiters[0].limits, [RateLimit { scope: RateScope::Service, per_second: 2.5 }]);

    // Two services get two limiters; a bad rate names the flag.
    let urls = ["router://:1?limiter.in=1MB".to_owned(), "router://:2?LIMITER.IN=2MB".to_owned()];
    let loaded = load(None, &urls, &[]).unwrap();
    assert_eq!(router_service(&loaded, 1).shaping.service_limiter.as_deref(), Some("limiter-1"));
    let err = load(None, &["router://:1?limiter.in=fast".to_owned()], &[]).unwrap_err();
    assert!(err.to_string().contains("-L") && err.to_string().contains("limits[0]"), "{err}");
}
