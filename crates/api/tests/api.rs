//! The web API and metrics with a real HTTP client, against a router
//! service in this process with raw relay clients pushing packets.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use rgost_relay::TunnelId;
use serde_json::{Value, json};

const H1: [u8; 4] = [10, 0, 0, 1];
const H2: [u8; 4] = [10, 0, 0, 2];
const NS: &str = "7d3f0b8e-5c1a-4e2b-9f6d-0a1b2c3d4e5f";

const SERVER: &str = "\
services:
  - name: hub
    addr: 127.0.0.1:0
    handler:
      type: router
      metadata:
        router: r0
routers:
  - name: r0
    routes:
      - dst: 10.0.0.1
        gateway: h1
      - dst: 10.0.0.2
        gateway: h2
authers:
  - name: admins
    auths:
      - username: admin
        password: s3cret
api:
  addr: 127.0.0.1:0
  pathPrefix: /api
  auther: admins
metrics:
  addr: 127.0.0.1:0
  auth:
    username: prom
    password: scrape
";

impl Harness {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.api)).basic_auth("admin", Some("s3cret"));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn scrape(&self) -> std::collections::BTreeMap<String, f64> {
        let response = self.http.get(&self.metrics).basic_auth("prom", Some("scrape")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
        parse_metrics(&response.text().await.unwrap())
    }
}

/// Sends h1 -> `dst` and says whether h2 got it.
async fn delivered(h1: &mut Client, h2: &mut Client, dst: [u8; 4]) -> bool {
    h1.send(&udp4(H1, dst, b"ping")).await;
    h2.recv_within(Duration::from_millis(500)).await.is_some()
}

#[tokio::test]
async fn config_endpoints_change_the_running_config_at_once() {
    let h = start(SERVER).await;
    // Credentials are required, in GOST's answer.
    let response = h.http.get(format!("{}/config", h.api)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers()["www-authenticate"].to_str().unwrap().starts_with("Basic"));
    assert_eq!(response.json::<Value>().await.unwrap(), json!({"code": 401, "msg": "Unauthorized"}));

    let mut h1 = Client::connect(h.relay, "h1", None).await;
    let mut h2 = Client::connect(h.relay, "h2", None).await;
    assert!(delivered(&mut h1, &mut h2, H2).await);
    assert!(!delivered(&mut h1, &mut h2, [10, 5, 0, 1]).await, "no route yet");

    // GOST's list and object answers.
    let (code, list) = h.get("/config/routers").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(list["data"]["count"], 1);
    assert_eq!(list["data"]["list"][0]["name"], "r0");
    let (_, one) = h.get("/config/routers/r0").await;
    assert_eq!(one["data"]["routes"][1], json!({"dst": "10.0.0.2", "gateway": "h2"}));

    // A route added to the running router: the next packet of the same connections uses it.
    let routes = json!({"routes": [
        {"dst": "10.0.0.1", "gateway": "h1"}, {"dst": "10.0.0.2", "gateway": "h2"}, {"dst": "10.5.0.0/16", "gateway": "h2"}]});
    let (code, answer) = h.call(reqwest::Method::PUT, "/config/routers/r0", Some(routes.clone())).await;
    assert_eq!((code, answer), (StatusCode::OK, json!({"msg": "OK"})));
    assert!(delivered(&mut h1, &mut h2, [10, 5, 0, 1]).await, "the new route works at once");

    // Invalid bodies are refused with the key at fault, and change nothing.
    let mut bad = routes.clone();
    bad["routes"][2]["dst"] = json!("10.5.0.0/33");
    let (code, answer) = h.call(reqwest::Method::PUT, "/config/routers/r0", Some(bad)).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(answer["code"], 40001);
    assert_eq!(answer["key"], "routes[2].dst", "{answer}");
    assert!(answer["msg"].as_str().unwrap().contains("10.5.0.0/33"), "{answer}");
    let (code, answer) = h
        .call(
            reqwest::Method::PUT,
            "/config/routers/r0",
            Some(json!({"routes": [{"dst": "10.9.0.0/16", "gatway": "h2"}]})),
        )
        .await;
    assert_eq!(
        (code, answer["code"].clone(), answer["key"].clone()),
        (StatusCode::BAD_REQUEST, json!(40001), json!("routes[0].gatway"))
    );
    assert!(answer["msg"].as_str().unwrap().contains("did you mean `gateway`"), "{answer}");
    let response = h
        .http
        .put(format!("{}/config/routers/r0", h.api))
        .basic_auth("admin", Some("s3cret"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(h.get("/config/routers/r0").await.1["data"]["routes"].as_array().unwrap().len(), 3, "unchanged");
    assert!(delivered(&mut h1, &mut h2, [10, 5, 0, 1]).await, "still routed");

    // GOST's codes: duplicate, name required, not found; a router in use cannot go.
    let (code, answer) = h.call(reqwest::Method::POST, "/config/routers", Some(json!({"name": "r0"}))).await;
    assert_eq!((code, answer), (StatusCode::BAD_REQUEST, json!({"code": 40002, "msg": "router r0 already exists"})));
    let (_, answer) = h.call(reqwest::Method::POST, "/config/routers", Some(json!({"routes": []}))).await;
    assert_eq!(answer, json!({"code": 40001, "msg": "router name is required"}));
    let (_, answer) = h.get("/config/routers/nope").await;
    assert_eq!(answer, json!({"code": 40004, "msg": "router nope not found"}));
    let (_, answer) = h.call(reqwest::Method::DELETE, "/config/ingresses/nope", None).await;
    assert_eq!(answer, json!({"code": 40004, "msg": "ingress nope not found"}));
    let (code, answer) = h.call(reqwest::Method::DELETE, "/config/routers/r0", None).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(answer["key"], "services[0].handler.metadata.router", "{answer}");
    assert!(delivered(&mut h1, &mut h2, H2).await);

    // A namespace router created, used by a client with that router id, deleted.
    let (code, _) = h
        .call(
            reqwest::Method::POST,
            "/config/routers",
            Some(json!({"name": NS, "routes": [{"dst": "10.0.0.1", "gateway": "h1"}, {"dst": "10.0.0.2", "gateway": "h2"}]})),
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    let ns = TunnelId::from_uuid(*uuid::Uuid::parse_str(NS).unwrap().as_bytes());
    let mut n1 = Client::connect(h.relay, "h1", Some(ns)).await;
    let mut n2 = Client::connect(h.relay, "h2", Some(ns)).await;
    assert!(delivered(&mut n1, &mut n2, H2).await, "the new namespace routes");
    let (_, lookup) = h.get(&format!("/status/lookup?router={NS}&ip=10.0.0.2")).await;
    assert_eq!(lookup["router_name"], NS);
    assert_eq!(h.get("/config/routers").await.1["data"]["count"], 2);
    let (code, _) = h.call(reqwest::Method::DELETE, &format!("/config/routers/{NS}"), None).await;
    assert_eq!(code, StatusCode::OK);
    // Without its own router the namespace uses the default router (still isolated from others).
    let (_, lookup) = h.get(&format!("/status/lookup?router={NS}&ip=10.0.0.2")).await;
    assert_eq!(lookup["router_name"], "r0", "{lookup}");
    assert!(delivered(&mut n1, &mut n2, H2).await);

    // Ingresses and authers; the API's own auther follows its change at once.
    let ingress = json!({"name": "in0", "rules": [{"hostname": "h1", "endpoint": NS}]});
    assert_eq!(h.call(reqwest::Method::POST, "/config/ingresses", Some(ingress)).await.0, StatusCode::OK);
    assert_eq!(h.get("/config/ingresses/in0").await.1["data"]["rules"][0]["endpoint"], NS);
    let admins = json!({"auths": [{"username": "admin", "password": "n3w"}]});
    assert_eq!(h.call(reqwest::Method::PUT, "/config/authers/admins", Some(admins)).await.0, StatusCode::OK);
    let with = |pass: &'static str| {
        let request = h.http.get(format!("{}/config/authers", h.api)).basic_auth("admin", Some(pass));
        async move { request.send().await.unwrap().status() }
    };
    until(|| async { with("n3w").await == StatusCode::OK }).await;
    assert_eq!(with("s3cret").await, StatusCode::UNAUTHORIZED);
    let admins = json!({"auths": [{"username": "admin", "password": "s3cret"}]});
    let response = h
        .http
        .put(format!("{}/config/authers/admins", h.api))
        .basic_auth("admin", Some("n3w"))
        .json(&admins)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    until(|| async { with("s3cret").await == StatusCode::OK }).await;

    // The whole config, in JSON with each service's status, and in YAML that reads back.
    let (_, config) = h.get("/config").await;
    assert_eq!(config["routers"][0]["routes"].as_array().unwrap().len(), 3);
    assert_eq!(config["services"][0]["status"]["state"], "running");
    assert_eq!(config["services"][0]["status"]["stats"]["currentConns"], 4);
    let yaml = h
        .http
        .get(format!("{}/config?format=yaml", h.api))
        .basic_auth("admin", Some("s3cret"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let reread = rgost_config::Document::parse(&yaml, "api.yaml").unwrap().validate().unwrap();
    assert_eq!(reread.config.routers[0].routes.len(), 3);
    assert_eq!(reread.config.ingresses[0].name, "in0");

    // Services and chains are shown, not changed; sections rgost lacks are named.
    assert_eq!(h.get("/config/services").await.1["data"]["list"][0]["name"], "hub");
    assert_eq!(h.get("/config/services/hub").await.1["data"]["addr"], "127.0.0.1:0");
    let (code, answer) = h.call(reqwest::Method::POST, "/config/services", Some(json!({"name": "x"}))).await;
    assert_eq!((code, answer["code"].clone()), (StatusCode::BAD_REQUEST, json!(40001)));
    let (code, answer) = h.get("/config/bypasses").await;
    assert_eq!(
        (code, answer),
        (StatusCode::NOT_FOUND, json!({"code": 40004, "msg": "rgost does not implement bypasses"}))
    );

    // Saving without a config file to write to is refused (the harness has
    // none); to a path, it writes a config that loads back; only config files.
    let (code, answer) = h.call(reqwest::Method::POST, "/config", None).await;
    assert_eq!((code, answer["code"].clone()), (StatusCode::BAD_REQUEST, json!(40005)));
    let dir = std::env::temp_dir().join(format!("rgost-save-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, format) in [("saved.yaml", ""), ("saved.json", "&format=json")] {
        let path = dir.join(name);
        let (code, answer) =
            h.call(reqwest::Method::POST, &format!("/config?path={}{format}", path.display()), None).await;
        assert_eq!((code, answer), (StatusCode::OK, json!({"msg": "OK"})));
        let saved = rgost_config::load(Some(&path), &[], &[]).unwrap();
        assert_eq!(saved.config.routers[0].routes.len(), 3, "{name}");
        assert_eq!(saved.config.ingresses[0].name, "in0");
    }
    let (code, answer) =
        h.call(reqwest::Method::POST, &format!("/config?path={}", dir.join("cron").display()), None).await;
    assert_eq!((code, answer["code"].clone()), (StatusCode::BAD_REQUEST, json!(40005)));
    assert!(!dir.join("cron").exists());
    std::fs::remove_dir_all(&dir).unwrap();
    // The dashboard lives under the prefix; the bare prefix redirects to it.
    let page = h.http.get(format!("{}/", h.api)).basic_auth("admin", Some("s3cret")).send().await.unwrap();
    assert!(page.text().await.unwrap().contains("<title>rgost</title>"));
    let (_, reloads) = h.get("/status").await;
    assert!(reloads["reloads"]["applied"].as_u64().unwrap() >= 5, "{}", reloads["reloads"]);
}

#[tokio::test]
async fn status_lookup_close_and_events() {
    let h = start(SERVER).await;
    let mut events = h
        .http
        .get(format!("{}/events", h.api))
        .basic_auth("admin", Some("s3cret"))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap();
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    let mut h1 = Client::connect(h.relay, "h1", None).await;
    let mut h2 = Client::connect(h.relay, "h2", None).await;

    // Traffic for a few sampling periods, so that rates are measured.
    let sender = tokio::spawn(async move {
        for i in 0..300u32 {
            h1.send(&udp4(H1, H2, &i.to_be_bytes().repeat(100))).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        h1
    });
    let receiver = tokio::spawn(async move {
        let mut n = 0;
        while n < 300 && h2.recv_within(Duration::from_secs(2)).await.is_some() {
            n += 1;
        }
        (h2, n)
    });

    // Events: both hosts up, then a stats sample with h1 sending.
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !(seen.contains("\"host\":\"h2\"") && seen.contains("event: stats") && stats_with_rate(&seen, "h1")) {
        assert!(tokio::time::Instant::now() < deadline, "events so far: {seen}");
        let chunk = tokio::time::timeout(Duration::from_secs(5), events.chunk()).await.unwrap().unwrap().unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("event: host_up\ndata: {\"type\":\"host_up\",\"service\":\"hub\""), "{seen}");

    let (_, status) = h.get("/status").await;
    let hosts = &status["services"][0]["namespaces"][0]["hosts"];
    assert_eq!(hosts[0]["host"], "h1");
    let h1_conn = &hosts[0]["connections"][0];
    assert!(h1_conn["packets_in"].as_u64().unwrap() > 0);
    assert!(h1_conn["rates"]["bps_in"].as_f64().unwrap() > 0.0, "{h1_conn}");
    let h2_connector = hosts[1]["connections"][0]["connector"].as_str().unwrap().to_owned();

    // Who owns 10.0.0.2 in the zero namespace: h2's connection.
    let (code, lookup) = h.get(&format!("/status/lookup?router={}&ip=10.0.0.2", TunnelId::ZERO)).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(lookup["route"], json!({"dst": "10.0.0.2/32", "gateway": "h2"}));
    assert_eq!(lookup["connection"]["connector"], h2_connector.as_str());
    let (code, answer) = h.get("/status/lookup?router=nope&ip=10.0.0.2").await;
    assert_eq!((code, answer["code"].clone()), (StatusCode::BAD_REQUEST, json!(40001)));
    let (_, answer) = h.get("/status/lookup?ip=10.7.7.7").await;
    assert!(answer["verdict"].as_str().unwrap().contains("no_route"), "{answer}");

    // Closing h2's connection: its client sees the end, the stream says so.
    let _h1 = sender.await.unwrap();
    let (mut h2, got) = receiver.await.unwrap();
    assert!(got > 250, "h2 received {got}");
    let (code, _) = h.call(reqwest::Method::DELETE, &format!("/status/connections/{h2_connector}"), None).await;
    assert_eq!(code, StatusCode::OK);
    assert!(h2.recv_within(Duration::from_secs(2)).await.is_none(), "closed");
    let (code, answer) = h.call(reqwest::Method::DELETE, &format!("/status/connections/{h2_connector}"), None).await;
    assert_eq!((code, answer["code"].clone()), (StatusCode::NOT_FOUND, json!(40004)));
    let mut seen = String::new();
    while !seen.contains("event: host_down") {
        let chunk = tokio::time::timeout(Duration::from_secs(5), events.chunk()).await.unwrap().unwrap().unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("\"host\":\"h2\"") && seen.contains("\"gone\":true"), "{seen}");

    // A reload through the API is an event too.
    let routes = json!({"routes": [{"dst": "10.0.0.1", "gateway": "h1"}]});
    assert_eq!(h.call(reqwest::Method::PUT, "/config/routers/r0", Some(routes)).await.0, StatusCode::OK);
    let mut seen = String::new();
    while !seen.contains("event: reload") {
        let chunk = tokio::time::timeout(Duration::from_secs(5), events.chunk()).await.unwrap().unwrap().unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("\"by\":\"api\",\"applied\":true"), "{seen}");
}

/// Whether a `stats` event in `seen` gives `host` a non-zero input rate.
fn stats_with_rate(seen: &str, host: &str) -> bool {
    seen.split("event: stats\ndata: ").skip(1).any(|rest| {
        let line = rest.lines().next().unwrap_or_default();
        serde_json::from_str::<Value>(line).is_ok_and(|v| {
            v["hosts"].as_array().into_iter().flatten().any(|h| h["host"] == host && h["bps_in"].as_f64() > Some(0.0))
        })
    })
}

#[tokio::test]
async fn metrics_count_what_happened() {
    let h = start(SERVER).await;
    assert_eq!(h.http.get(&h.metrics).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let mut h1 = Client::connect(h.relay, "h1", None).await;
    let mut h2 = Client::connect(h.relay, "h2", None).await;
    for _ in 0..5 {
        assert!(delivered(&mut h1, &mut h2, H2).await);
    }
    h1.send(&udp4(H1, [10, 9, 9, 9], b"x")).await;
    h1.send(&udp4(H1, [10, 9, 9, 8], b"x")).await;
    // A handshake that fails (not GOST's relay version): no answer, counted.
    let mut bad = tokio::net::TcpStream::connect(h.relay).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut bad, &[0x09, 0x01, 0, 0, 0, 0]).await.unwrap();

    let hub = "service=\"hub\"";
    let series = |m: &std::collections::BTreeMap<String, f64>, name: &str, labels: &str| {
        let key = if labels.is_empty() { name.to_owned() } else { format!("{name}{{{labels}}}") };
        m.get(&key).copied().unwrap_or_else(|| panic!("no {key} in {m:#?}"))
    };
    let mut m = h.scrape().await;
    for _ in 0..50 {
        if series(&m, "rgost_handshakes_total", &format!("{hub},result=\"failed\"")) == 1.0
            && series(&m, "rgost_packets_dropped_total", &format!("{hub},reason=\"no_route\"")) == 2.0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        m = h.scrape().await;
    }
    let machine = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_owned();
    let gost = format!("host=\"{machine}\",{hub}");
    assert_eq!(series(&m, "gost_services", &format!("host=\"{machine}\"")), 1.0);
    assert_eq!(series(&m, "gost_service_requests_total", &gost), 3.0);
    assert_eq!(series(&m, "gost_service_requests_in_flight", &gost), 2.0);
    assert_eq!(series(&m, "gost_service_handler_errors_total", &gost), 1.0);
    assert_eq!(series(&m, "gost_service_transfer_input_bytes_total", &gost), 5.0 * (32.0 + 2.0) + 2.0 * (29.0 + 2.0));
    assert_eq!(series(&m, "rgost_packets_received_total", hub), 7.0);
    assert_eq!(series(&m, "rgost_packets_sent_total", hub), 5.0);
    assert_eq!(series(&m, "rgost_packets_forwarded_total", &format!("{hub},router=\"{}\"", TunnelId::ZERO)), 5.0);
    assert_eq!(series(&m, "rgost_packets_dropped_total", &format!("{hub},reason=\"no_route\"")), 2.0);
    assert_eq!(series(&m, "rgost_packets_dropped_total", &format!("{hub},reason=\"queue_full\"")), 0.0);
    assert_eq!(series(&m, "rgost_handshakes_total", &format!("{hub},result=\"ok\"")), 2.0);
    assert_eq!(series(&m, "rgost_handshakes_total", &format!("{hub},result=\"failed\"")), 1.0);
    assert_eq!(series(&m, "rgost_connections", hub), 2.0);
    assert_eq!(series(&m, "rgost_connections_accepted_total", hub), 2.0);
    assert_eq!(series(&m, "rgost_routes", &format!("{hub},router=\"r0\"")), 2.0);
    assert_eq!(series(&m, "rgost_hosts", &format!("{hub},router=\"{}\"", TunnelId::ZERO)), 2.0);
    assert!(series(&m, "process_resident_memory_bytes", "") > 1e6);
    assert!(m.keys().all(|k| !k.starts_with("rgost_host_")), "per-host series are off by default");

    // A config change counts, and OpenMetrics is served when asked for.
    let routes = json!({"routes": [{"dst": "10.0.0.1", "gateway": "h1"}]});
    assert_eq!(h.call(reqwest::Method::PUT, "/config/routers/r0", Some(routes)).await.0, StatusCode::OK);
    let m = h.scrape().await;
    assert_eq!(series(&m, "rgost_config_reloads_total", "result=\"applied\""), 1.0);
    assert_eq!(series(&m, "rgost_routes", &format!("{hub},router=\"r0\"")), 1.0);
    let open = h
        .http
        .get(&h.metrics)
        .basic_auth("prom", Some("scrape"))
        .header("accept", "application/openmetrics-text; version=1.0.0")
        .send()
        .await
        .unwrap();
    assert!(open.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    assert!(open.text().await.unwrap().trim_end().ends_with("# EOF"));
}

#[tokio::test]
async fn per_host_plugin_and_source_series() {
    // A plugin router answered by a small HTTP server here, and a file source.
    let plugin = axum::Router::new().route(
        "/route",
        axum::routing::get(|axum::extract::RawQuery(q): axum::extract::RawQuery| async move {
            let q = q.unwrap_or_default();
            let gateway = if q.contains("dst=10.0.0.1") {
                "h1"
            } else if q.contains("dst=10.0.0.2") {
                "h2"
            } else {
                ""
            };
            axum::Json(json!({"gateway": gateway}))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let plugin_addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, plugin).await });
    let dir = std::env::temp_dir().join(format!("rgost-api-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("routes.txt");
    std::fs::write(&file, "10.8.0.0/16 h2\n").unwrap();
    let yaml = SERVER
        .replace("auth:\n    username: prom\n    password: scrape\n", "auth:\n    username: prom\n    password: scrape\n  hostLabels: true\n")
        .replace(
            "authers:",
            &format!(
                "  - name: {NS}\n    plugin:\n      addr: http://{plugin_addr}/route\n  - name: filed\n    file:\n      path: {}\n\
                 authers:",
                file.display()
            ),
        );
    let h = start(&yaml).await;
    let ns = TunnelId::from_uuid(*uuid::Uuid::parse_str(NS).unwrap().as_bytes());
    let mut h1 = Client::connect(h.relay, "h1", Some(ns)).await;
    let mut h2 = Client::connect(h.relay, "h2", Some(ns)).await;
    // The first packets wait for the plugin; later ones find its answers cached.
    h1.send(&udp4(H1, H2, b"first")).await;
    assert!(h2.recv_within(Duration::from_secs(3)).await.is_some(), "routed by the plugin");
    for _ in 0..3 {
        assert!(delivered(&mut h1, &mut h2, H2).await);
    }
    let m = h.scrape().await;
    let plugin = format!("service=\"hub\",kind=\"router\",name=\"{NS}\"");
    assert!(m[&format!("rgost_plugin_lookups_total{{{plugin},result=\"ok\"}}")] >= 2.0, "{m:#?}");
    assert_eq!(m[&format!("rgost_plugin_lookups_total{{{plugin},result=\"error\"}}")], 0.0);
    assert!(m[&format!("rgost_plugin_lookup_duration_seconds_count{{{plugin}}}")] >= 2.0);
    assert!(m[&format!("rgost_plugin_lookup_duration_seconds_bucket{{{plugin},le=\"+Inf\"}}")] >= 2.0);
    assert!(m["rgost_plugin_cache_hits_total{service=\"hub\"}"] >= 3.0, "{m:#?}");
    let source = "service=\"hub\",kind=\"router\",name=\"filed\",source=\"file\"";
    assert_eq!(m[&format!("rgost_source_reloads_total{{{source},result=\"ok\"}}")], 1.0);
    assert!(m[&format!("rgost_source_last_good_age_seconds{{{source}}}")] < 60.0);
    assert_eq!(m["rgost_routes{service=\"hub\",router=\"filed\"}"], 1.0);
    // Per-host series with hostLabels.
    let host = format!("service=\"hub\",router=\"{NS}\",client=\"h1\"");
    assert_eq!(m[&format!("rgost_host_packets_received_total{{{host}}}")], 4.0);
    assert_eq!(m[&format!("rgost_host_connections{{{host}}}")], 1.0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn limiters_rlimiters_and_observers_through_the_api() {
    let yaml = SERVER
        .replace("      type: router\n", "      type: router\n      limiter: per-client\n")
        .replace("    addr: 127.0.0.1:0\n    handler:", "    addr: 127.0.0.1:0\n    rlimiter: conns\n    handler:")
        .replace(
            "authers:",
            "limiters:\n  - name: per-client\n    limits: ['$$ 10MB 10MB']\nrlimiters:\n  - name: conns\n    limits: ['$ 100']\nauthers:",
        );
    let h = start(&yaml).await;
    let mut h1 = Client::connect(h.relay, "h1", None).await;
    let mut h2 = Client::connect(h.relay, "h2", None).await;
    assert!(delivered(&mut h1, &mut h2, H2).await);

    // GOST's limiter object, listed and changed; the running config has it at once.
    let (_, list) = h.get("/config/limiters").await;
    assert_eq!(list["data"]["list"][0], json!({"name": "per-client", "limits": ["$$ 10MB 10MB"]}));
    let body = json!({"limits": ["$$ 1MB 1MB", "h2 50Mbit"]});
    assert_eq!(h.call(reqwest::Method::PUT, "/config/limiters/per-client", Some(body)).await.0, StatusCode::OK);
    let config = h.web.control().config().await;
    assert_eq!(config.limiters[0].limits.len(), 2);
    assert_eq!(config.limiters[0].limits[1].input, Some(6_250_000), "50 Mbit/s in bytes per second");
    assert!(delivered(&mut h1, &mut h2, H2).await, "connections stay");

    // A bad limit line is refused naming it; nothing changes.
    let (code, answer) = h
        .call(reqwest::Method::PUT, "/config/limiters/per-client", Some(json!({"limits": ["$$ 1MB", "$ lots"]})))
        .await;
    assert_eq!(
        (code, answer["code"].clone(), answer["key"].clone()),
        (StatusCode::BAD_REQUEST, json!(40001), json!("limits[1]"))
    );
    assert_eq!(h.web.control().config().await.limiters[0].limits.len(), 2);
    let (_, answer) = h.call(reqwest::Method::POST, "/config/limiters", Some(json!({"name": "per-client"}))).await;
    assert_eq!(answer, json!({"code": 40002, "msg": "limiter per-client already exists"}));

    // Rate limiters and observers alike.
    let body = json!({"limits": ["$ 50", "$$ 5"]});
    assert_eq!(h.call(reqwest::Method::PUT, "/config/rlimiters/conns", Some(body)).await.0, StatusCode::OK);
    assert_eq!(h.web.control().config().await.rlimiters[0].limits.len(), 2);
    let (code, answer) = h.call(reqwest::Method::DELETE, "/config/rlimiters/conns", None).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "the service uses it: {answer}");
    let observer = json!({"name": "stats", "plugin": {"type": "http", "addr": "http://127.0.0.1:9/observer"}});
    assert_eq!(h.call(reqwest::Method::POST, "/config/observers", Some(observer)).await.0, StatusCode::OK);
    assert_eq!(h.get("/config/observers/stats").await.1["data"]["plugin"]["addr"], "http://127.0.0.1:9/observer");
    assert_eq!(h.call(reqwest::Method::DELETE, "/config/observers/stats", None).await.0, StatusCode::OK);
    assert_eq!(h.get("/config/observers").await.1["data"]["count"], 0);
}
