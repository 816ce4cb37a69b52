//! HTTP source and plugin clients against a raw loopback HTTP server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{HttpServer, Reply};
use rgost_config::{HttpSource, PluginConfig, Sources, TlsClientSettings};
use rgost_sources::{
    AuthPlugin, IngressPlugin, LimitQuery, LimiterPlugin, ObserverEvent, ObserverPlugin, ObserverStats,
    PLUGIN_BODY_LIMIT, PluginError, RouterPlugin, SourceError, fetch,
};

fn http_sources(url: String, timeout: Duration) -> Sources {
    Sources { http: Some(HttpSource { url, timeout }), ..Sources::default() }
}

fn plugin(addr: String) -> PluginConfig {
    PluginConfig { addr, timeout: Duration::from_secs(2), tls: None, token: None }
}

fn e(k: &str, v: &str) -> (String, String) {
    (k.to_owned(), v.to_owned())
}

#[tokio::test]
async fn http_source_reads_lines() {
    let server = HttpServer::start(Reply::ok("# routes\n10.0.0.0/8 host-1\nbad\n\n2001:db8::/32\thost-2\n")).await;
    let result = fetch(&http_sources(server.url("/routes"), Duration::from_secs(2))).await;
    assert!(result.file.is_none() && result.redis.is_none());
    let fetched = result.http.unwrap().unwrap();
    assert_eq!(fetched.entries, vec![e("10.0.0.0/8", "host-1"), e("2001:db8::/32", "host-2")]);
    assert_eq!(fetched.bad.len(), 1);
    assert_eq!(fetched.bad[0].line_no, 3);
    let seen = server.seen();
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].target, "/routes");
}

#[tokio::test]
async fn http_source_non_200_is_an_error() {
    let server = HttpServer::start(Reply::status(404, "a b\n")).await;
    let url = server.url("/x");
    let err = fetch(&http_sources(url.clone(), Duration::from_secs(2))).await.http.unwrap().unwrap_err();
    assert!(matches!(err, SourceError::HttpStatus { status: 404, .. }), "{err:?}");
    assert_eq!(err.to_string(), format!("http {url}: status 404"));
}

#[tokio::test]
async fn http_source_timeout() {
    let server = HttpServer::start(Reply::ok("a b\n").delayed(Duration::from_secs(3))).await;
    let err = fetch(&http_sources(server.url("/"), Duration::from_millis(200))).await.http.unwrap().unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert!(err.to_string().contains("timed out"), "{err}");
}

#[tokio::test]
async fn http_source_connection_refused_names_the_url() {
    let port = common::free_port();
    let url = format!("http://127.0.0.1:{port}/r");
    let err = fetch(&http_sources(url.clone(), Duration::from_secs(2))).await.http.unwrap().unwrap_err();
    assert!(matches!(err, SourceError::Http { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.starts_with(&format!("http {url}: ")), "{msg}");
}

#[tokio::test]
async fn router_plugin_query_and_answer() {
    let server = HttpServer::start(Reply::ok(r#"{"dst":"10.1.0.0/16","gateway":"host-1"}"#)).await;
    let mut cfg = plugin(server.url("/route?token=a%20b"));
    cfg.token = Some("s3cret".into());
    let p = RouterPlugin::new(&cfg).unwrap();
    let id = "6f9619ff-8b86-d011-b42d-00c04fc964ff";
    let got = p.lookup("10.1.2.3".parse().unwrap(), id).await.unwrap();
    assert_eq!(got, Some(e("10.1.0.0/16", "host-1")));
    let seen = server.seen();
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].target, format!("/route?token=a%20b&dst=10.1.2.3&id={id}"));
    assert_eq!(seen[0].header("authorization"), Some("Bearer s3cret"));

    // IPv6 destination: the colons are query-encoded.
    p.lookup("2001:db8::1".parse().unwrap(), id).await.unwrap();
    assert_eq!(server.seen()[1].target, format!("/route?token=a%20b&dst=2001%3Adb8%3A%3A1&id={id}"));
}

#[tokio::test]
async fn router_plugin_net_is_the_older_name_of_dst() {
    let server = HttpServer::start(Reply::ok(r#"{"net":"10.0.0.0/8","gateway":"gw","extra":1}"#)).await;
    let p = RouterPlugin::new(&plugin(server.url("/"))).unwrap();
    let got = p.lookup("10.9.9.9".parse().unwrap(), "x").await.unwrap();
    assert_eq!(got, Some(e("10.0.0.0/8", "gw")));
    assert_eq!(server.seen()[0].header("authorization"), None);

    server.set_reply(Reply::ok(r#"{"gateway":"gw"}"#));
    let got = p.lookup("10.9.9.9".parse().unwrap(), "x").await.unwrap();
    assert_eq!(got, Some(e("10.9.9.9", "gw")));

    server.set_reply(Reply::ok(r#"{"dst":"10.0.0.0/8","gateway":""}"#));
    assert_eq!(p.lookup("10.9.9.9".parse().unwrap(), "x").await.unwrap(), None);
}

#[tokio::test]
async fn router_plugin_non_200_means_no_route() {
    let server = HttpServer::start(Reply::status(404, r#"{"dst":"10.0.0.0/8","gateway":"gw"}"#)).await;
    let p = RouterPlugin::new(&plugin(server.url("/"))).unwrap();
    assert_eq!(p.lookup("10.0.0.1".parse().unwrap(), "x").await.unwrap(), None);
    server.set_reply(Reply::status(500, ""));
    assert_eq!(p.lookup("10.0.0.1".parse().unwrap(), "x").await.unwrap(), None);
}

#[tokio::test]
async fn plugin_bad_json_timeout_and_oversize_are_errors() {
    let server = HttpServer::start(Reply::ok("not json")).await;
    let mut cfg = plugin(server.url("/"));
    cfg.timeout = Duration::from_millis(300);
    let p = RouterPlugin::new(&cfg).unwrap();
    let err = p.lookup("10.0.0.1".parse().unwrap(), "x").await.unwrap_err();
    assert!(matches!(err, PluginError::Decode { .. }), "{err:?}");

    server.set_reply(Reply::ok(r#"{"gateway":"gw"}"#).delayed(Duration::from_secs(3)));
    let err = p.lookup("10.0.0.1".parse().unwrap(), "x").await.unwrap_err();
    assert!(matches!(err, PluginError::Timeout { .. }), "{err:?}");

    let big = format!(r#"{{"gateway":"{}"}}"#, "x".repeat(PLUGIN_BODY_LIMIT));
    server.set_reply(Reply::ok(big));
    let err = p.lookup("10.0.0.1".parse().unwrap(), "x").await.unwrap_err();
    assert!(matches!(err, PluginError::TooLarge { .. }), "{err:?}");
    assert_eq!(err.to_string(), format!("plugin {}: response larger than {PLUGIN_BODY_LIMIT} bytes", cfg.addr));
}

#[tokio::test]
async fn plugin_connection_refused_is_an_error() {
    let addr = format!("http://127.0.0.1:{}/", common::free_port());
    let p = RouterPlugin::new(&plugin(addr.clone())).unwrap();
    let err = p.lookup("10.0.0.1".parse().unwrap(), "x").await.unwrap_err();
    assert!(matches!(err, PluginError::Request { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.starts_with(&format!("plugin {addr}: ")), "{msg}");
    assert!(!msg.contains("dst="), "the query must stay out of errors: {msg}");
}

#[tokio::test]
async fn plugin_config_errors() {
    for addr in ["not a url", "ftp://h/x", "/relative"] {
        let err = RouterPlugin::new(&plugin(addr.into())).unwrap_err();
        assert!(matches!(err, PluginError::InvalidAddr { .. }), "{addr}: {err:?}");
    }
    let mut cfg = plugin("https://127.0.0.1:1/".into());
    cfg.tls = Some(TlsClientSettings {
        ca_file: Some("/nonexistent/ca.pem".into()),
        secure: true,
        ..TlsClientSettings::default()
    });
    let err = RouterPlugin::new(&cfg).unwrap_err();
    assert!(matches!(err, PluginError::TlsFile { .. }), "{err:?}");
    assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");

    cfg.tls = Some(TlsClientSettings { cert_file: Some("/x".into()), ..TlsClientSettings::default() });
    let err = RouterPlugin::new(&cfg).unwrap_err();
    assert!(matches!(err, PluginError::TlsIdentityIncomplete { .. }), "{err:?}");

    // secure = false without a CA builds (with a warning).
    cfg.tls = Some(TlsClientSettings::default());
    RouterPlugin::new(&cfg).unwrap();
}

#[tokio::test]
async fn ingress_plugin_query_and_answer() {
    let server = HttpServer::start(Reply::ok(r#"{"endpoint":"6f9619ff-8b86-d011-b42d-00c04fc964ff"}"#)).await;
    let mut cfg = plugin(server.url("/ingress"));
    cfg.token = Some("tok".into());
    let p = IngressPlugin::new(&cfg).unwrap();
    let got = p.lookup("host 1&x=y", "svc-0").await.unwrap();
    assert_eq!(got.as_deref(), Some("6f9619ff-8b86-d011-b42d-00c04fc964ff"));
    let seen = server.seen();
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].target, "/ingress?host=host+1%26x%3Dy&service=svc-0");
    assert_eq!(seen[0].header("authorization"), Some("Bearer tok"));

    server.set_reply(Reply::ok(r#"{"endpoint":""}"#));
    assert_eq!(p.lookup("h", "s").await.unwrap(), None);
    server.set_reply(Reply::ok("{}"));
    assert_eq!(p.lookup("h", "s").await.unwrap(), None);
    server.set_reply(Reply::status(403, r#"{"endpoint":"e"}"#));
    assert_eq!(p.lookup("h", "s").await.unwrap(), None);
}

#[tokio::test]
async fn auth_plugin_body_and_answer() {
    let server = HttpServer::start(Reply::ok(r#"{"ok":true,"id":"user-7"}"#)).await;
    let mut cfg = plugin(server.url("/auth"));
    cfg.token = Some("tok".into());
    let p = AuthPlugin::new(&cfg).unwrap();
    let got = p.authenticate("svc", "alice", "p\"w", "10.0.0.9:4444").await.unwrap();
    assert_eq!(got.as_deref(), Some("user-7"));
    let seen = server.seen();
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].target, "/auth");
    assert_eq!(seen[0].header("authorization"), Some("Bearer tok"));
    assert_eq!(seen[0].header("content-type"), Some("application/json"));
    let body: serde_json::Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"service": "svc", "username": "alice", "password": "p\"w", "client": "10.0.0.9:4444"})
    );

    server.set_reply(Reply::ok(r#"{"ok":true}"#));
    assert_eq!(p.authenticate("s", "u", "p", "c").await.unwrap().as_deref(), Some(""));
    server.set_reply(Reply::ok(r#"{"ok":false,"id":"x"}"#));
    assert_eq!(p.authenticate("s", "u", "p", "c").await.unwrap(), None);
    server.set_reply(Reply::status(401, r#"{"ok":true,"id":"x"}"#));
    assert_eq!(p.authenticate("s", "u", "p", "c").await.unwrap(), None);
}

#[tokio::test]
async fn limiter_plugin_posts_gosts_options_and_reads_rates() {
    let server = HttpServer::start(Reply::ok(r#"{"in": 1048576, "out": 0}"#)).await;
    let p = LimiterPlugin::new(&plugin(server.url("/limiter"))).unwrap();
    let query = LimitQuery {
        service: "svc",
        scope: "client",
        network: "ip",
        addr: "",
        client: "host-1@e87f56dd-fd57-4921-9ab8-a0847662daae",
        src: "10.0.0.9:4444",
    };
    assert_eq!(p.limits(&query).await.unwrap(), Some((Some(1 << 20), None)));
    let seen = server.seen();
    assert_eq!((seen[0].method.as_str(), seen[0].target.as_str()), ("POST", "/limiter"));
    let body: serde_json::Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"service": "svc", "scope": "client", "network": "ip", "addr": "",
            "client": "host-1@e87f56dd-fd57-4921-9ab8-a0847662daae", "src": "10.0.0.9:4444"})
    );
    server.set_reply(Reply::ok(r#"{"in": -5, "out": 2048}"#));
    assert_eq!(p.limits(&query).await.unwrap(), Some((None, Some(2048))));
    server.set_reply(Reply::status(500, r#"{"in": 1}"#));
    assert_eq!(p.limits(&query).await.unwrap(), None);
    server.set_reply(Reply::ok("not json"));
    assert!(matches!(p.limits(&query).await, Err(PluginError::Decode { .. })));
}

#[tokio::test]
async fn observer_plugin_posts_events_and_wants_ok() {
    let server = HttpServer::start(Reply::ok(r#"{"ok": true}"#)).await;
    // Without a scheme the address gets http://, as in GOST.
    let addr = server.url("/observer").replacen("http://", "", 1);
    let p = ObserverPlugin::new(&plugin(addr)).unwrap();
    let event = ObserverEvent {
        kind: "handler".into(),
        service: "svc".into(),
        client: "host-1@e87f56dd-fd57-4921-9ab8-a0847662daae".into(),
        event_type: "stats".into(),
        stats: Some(ObserverStats {
            total_conns: 2,
            current_conns: 1,
            input_bytes: 10,
            output_bytes: 20,
            total_errs: 1,
        }),
    };
    p.observe(std::slice::from_ref(&event)).await.unwrap();
    let seen = server.seen();
    assert_eq!((seen[0].method.as_str(), seen[0].target.as_str()), ("POST", "/observer"));
    let body: serde_json::Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"events": [{"kind": "handler", "service": "svc",
            "client": "host-1@e87f56dd-fd57-4921-9ab8-a0847662daae", "type": "stats",
            "stats": {"totalConns": 2, "currentConns": 1, "inputBytes": 10, "outputBytes": 20, "totalErrs": 1}}]})
    );
    server.set_reply(Reply::ok(r#"{"ok": false}"#));
    assert!(matches!(p.observe(std::slice::from_ref(&event)).await, Err(PluginError::NotOk { .. })));
    server.set_reply(Reply::status(503, r#"{"ok": true}"#));
    assert!(matches!(p.observe(&[event]).await, Err(PluginError::Status { status: 503, .. })));
}
