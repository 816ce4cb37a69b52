//! The web API and metrics sections, flags and services, and the config
//! document the API shows and edits.

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

use rgost_config::*;
use serde_json::json;

const SERVER: &str = "\
services:
  - name: hub
    addr: :8443
    handler:
      type: router
      auther: users
      metadata:
        router: r0
routers:
  - name: r0
    routes:
      - dst: 10.0.0.1
        gateway: h1
authers:
  - name: users
    auths:
      - username: alice
        password: s3cret
";

fn args(api: Option<&str>, metrics: Option<&str>) -> Args {
    Args {
        services: vec!["router://:8443".to_owned()],
        api: api.map(str::to_owned),
        metrics: metrics.map(str::to_owned),
        ..Args::default()
    }
}

#[test]
fn api_and_metrics_flags_are_read_as_gost_reads_them() {
    let loaded = load_args(&args(Some("user:pass@:18080?pathPrefix=/api/&accesslog=true"), Some(":9000"))).unwrap();
    let api = loaded.config.api.unwrap();
    assert_eq!(api.listen, ListenAddr { ip: None, port: 18080 });
    assert_eq!(api.path_prefix, "/api");
    assert!(api.access_log);
    assert_eq!(api.auth.unwrap().username, "user");
    let metrics = loaded.config.metrics.unwrap();
    assert_eq!(metrics.path, "/metrics");
    assert!(!metrics.host_labels, "per-host series are off by default");
    assert!(metrics.auth.is_none());

    let loaded = load_args(&args(None, Some("u:p@127.0.0.1:9000?path=/m&hostLabels=true"))).unwrap();
    let metrics = loaded.config.metrics.unwrap();
    assert_eq!(metrics.listen.ip, Some("127.0.0.1".parse().unwrap()));
    assert_eq!(metrics.path, "/m");
    assert!(metrics.host_labels);
    assert_eq!(metrics.auth.unwrap().password, "p");
    assert!(loaded.config.api.is_none());

    // A misspelt query key is an error naming the closest key.
    let err = load_args(&args(Some(":18080?pathPrefx=/api"), None)).unwrap_err();
    assert!(
        matches!(&err, ConfigError::UnknownKey { key, suggestion: Some(s), .. } if key == "api.pathPrefx" && s == "pathPrefix"),
        "{err}"
    );
    assert!(err.to_string().starts_with("-api \":18080?pathPrefx=/api\""), "{err}");
    let err = load_args(&args(None, Some(":9000?path=metrics"))).unwrap_err();
    assert_eq!(err.key(), Some("metrics.path"), "{err}");
}

#[test]
fn api_and_metrics_sections() {
    let yaml = format!(
        "{SERVER}api:\n  addr: 127.0.0.1:18080\n  pathPrefix: /api\n  accesslog: true\n  auther: users\n\
         metrics:\n  addr: :9000\n  path: /m\n  hostLabels: true\n  auth: {{username: prom, password: x}}\n"
    );
    let loaded = parse_str(&yaml, "s.yaml").unwrap();
    let api = loaded.config.api.as_ref().unwrap();
    assert_eq!(api.auther.as_deref(), Some("users"));
    assert_eq!(api.path_prefix, "/api");
    let metrics = loaded.config.metrics.as_ref().unwrap();
    assert!(metrics.host_labels);
    assert_eq!(metrics.auth.as_ref().unwrap().username, "prom");
    let summary = loaded.config.summary();
    assert!(summary.iter().any(|l| l.starts_with("@api: web API on 127.0.0.1:18080 over tcp at /api; auther users")));
    assert!(summary.iter().any(|l| l.starts_with("@metrics: Prometheus metrics on :9000")), "{summary:?}");

    // An auther that does not exist, a bad path, a unix socket, a typo.
    let err = parse_str(&format!("{SERVER}api:\n  addr: :1\n  auther: nobody\n"), "s.yaml").unwrap_err();
    assert!(matches!(&err, ConfigError::Undefined { key, .. } if key == "api.auther"), "{err}");
    let err = parse_str(&format!("{SERVER}api:\n  addr: :1\n  pathPrefix: api\n"), "s.yaml").unwrap_err();
    assert_eq!(err.key(), Some("api.pathPrefix"));
    let err = parse_str(&format!("{SERVER}metrics:\n  addr: unix:///run/m.sock\n"), "s.yaml").unwrap_err();
    assert!(matches!(&err, ConfigError::Unsupported { key, .. } if key == "metrics.addr"), "{err}");
    let err = parse_str(&format!("{SERVER}metrics:\n  addr: :1\n  hostlabel: true\n"), "s.yaml").unwrap_err();
    assert!(matches!(&err, ConfigError::UnknownKey { suggestion: Some(s), .. } if s == "hostLabels"), "{err}");
    let err = parse_str(&format!("{SERVER}metrics:\n  path: /m\n"), "s.yaml").unwrap_err();
    assert!(matches!(&err, ConfigError::Missing { key, .. } if key == "metrics.addr"), "{err}");

    // The flag replaces the file's section.
    let dir = std::env::temp_dir().join(format!("rgost-web-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("s.yaml");
    std::fs::write(&file, &yaml).unwrap();
    let loaded = load_args(&Args { file: Some(file.clone()), api: Some(":7000".into()), ..Args::default() }).unwrap();
    let api = loaded.config.api.unwrap();
    assert_eq!((api.listen.port, api.path_prefix.as_str(), api.auther), (7000, "", None));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn api_and_metrics_services() {
    let yaml = SERVER.replace(
        "routers:\n",
        "  - name: api\n    addr: :18080\n    handler:\n      type: api\n      auther: users\n      \
         metadata: {pathPrefix: /x, accessLog: true}\n    listener: {type: tls}\n  \
         - name: metrics\n    addr: :9000\n    handler:\n      type: metrics\n      metadata: {metrics.path: /m, hostLabels: 1}\nrouters:\n",
    );
    let loaded = parse_str(&yaml, "s.yaml").unwrap();
    let ServiceKind::Api(api) = &loaded.config.services[1].kind else { panic!("not an api service") };
    assert_eq!(api.path_prefix, "/x");
    assert!(api.access_log);
    assert!(matches!(api.listener, ListenerKind::Tls(_)));
    let ServiceKind::Metrics(metrics) = &loaded.config.services[2].kind else { panic!("not a metrics service") };
    assert_eq!(metrics.path, "/m");
    assert!(metrics.host_labels);
    assert!(matches!(metrics.listener, ListenerKind::Tcp));

    let bad = yaml.replace("listener: {type: tls}", "listener: {type: ws}");
    let err = parse_str(&bad, "s.yaml").unwrap_err();
    assert!(matches!(&err, ConfigError::Unsupported { key, .. } if key == "services[1].listener.type"), "{err}");
    let bad = yaml.replace("hostLabels: 1", "hostLabel: 1");
    let err = parse_str(&bad, "s.yaml").unwrap_err();
    assert_eq!(err.key(), Some("services[2].handler.metadata.hostLabel"), "{err}");
}

#[test]
fn the_document_shows_the_config_in_gost_shape() {
    let document = Document::parse(&format!("{SERVER}api:\n  addr: :18080\n"), "s.yaml").unwrap();
    let json = document.to_json();
    assert_eq!(json["routers"][0], json!({"name": "r0", "routes": [{"dst": "10.0.0.1", "gateway": "h1"}]}));
    assert_eq!(json["services"][0]["handler"]["metadata"]["router"], "r0");
    assert_eq!(json["api"], json!({"addr": ":18080"}));
    assert!(json.get("ingresses").is_none(), "empty sections are left out");
    // A config saved from GOST's API carries each service's read-only status: accepted, not kept.
    let saved = SERVER.replace("    addr: :8443\n", "    addr: :8443\n    status: {createTime: 1, state: running}\n");
    let saved = Document::parse(&saved, "saved.yaml").unwrap();
    assert!(saved.to_json()["services"][0].get("status").is_none());
    // The YAML form reads back into the same document.
    let again = Document::parse(&document.to_yaml(), "again.yaml").unwrap();
    assert_eq!(again.to_json(), json);
    assert_eq!(again.validate().unwrap().config, document.validate().unwrap().config);
}

#[test]
fn edits_change_one_object_and_validation_names_the_key() {
    let mut document = Document::parse(SERVER, "s.yaml").unwrap();
    let name = document
        .create(Section::Routers, json!({"name": " r1 ", "routes": [{"dst": "10.1.0.0/16", "gateway": "h2"}]}))
        .unwrap();
    assert_eq!(name, "r1");
    assert_eq!(document.items(Section::Routers).len(), 2);
    assert_eq!(document.item(Section::Routers, "r1").unwrap()["routes"][0]["gateway"], "h2");
    let config = document.validate().unwrap().config;
    assert_eq!(config.routers[1].routes.len(), 1);

    // Duplicates, missing names, unknown objects.
    assert_eq!(
        document.create(Section::Routers, json!({"name": "r1"})),
        Err(EditError::Duplicate { section: Section::Routers, name: "r1".into() })
    );
    assert_eq!(document.create(Section::Authers, json!({"auths": []})), Err(EditError::NameRequired(Section::Authers)));
    assert_eq!(
        document.delete(Section::Ingresses, "none"),
        Err(EditError::NotFound { section: Section::Ingresses, name: "none".into() })
    );

    // A body of the wrong shape names the key; the document is unchanged.
    let before = document.to_json();
    let err = document.update(Section::Routers, "r1", json!({"routes": [{"dst": "x", "gatway": "h"}]})).unwrap_err();
    let EditError::Invalid(err) = err else { panic!("{err}") };
    assert_eq!(err.key(), Some("routers[1].routes[0].gatway"), "{err}");
    assert!(err.to_string().contains("did you mean `gateway`"), "{err}");
    assert_eq!(document.to_json(), before);

    // A body that parses but does not validate: the caller validates before applying.
    let mut edited = document.clone();
    edited
        .update(Section::Routers, "r1", json!({"name": "ignored", "routes": [{"dst": "10.1.0.0/33", "gateway": "h"}]}))
        .unwrap();
    let err = edited.validate().unwrap_err();
    assert_eq!(err.key(), Some("routers[1].routes[0].dst"), "{err}");
    assert!(err.to_string().starts_with("api: "), "{err}");

    // Deleting a router a service uses does not validate.
    let mut edited = document.clone();
    edited.delete(Section::Routers, "r0").unwrap();
    let err = edited.validate().unwrap_err();
    assert_eq!(err.key(), Some("services[0].handler.metadata.router"), "{err}");

    // The name comes from the path on update.
    document.update(Section::Routers, "r1", json!({"name": "other", "routes": []})).unwrap();
    assert!(document.item(Section::Routers, "other").is_none());
    assert_eq!(document.item(Section::Routers, "r1").unwrap(), json!({"name": "r1", "routes": []}));
}

#[test]
fn the_file_part_leaves_out_what_the_flags_added() {
    let dir = std::env::temp_dir().join(format!("rgost-doc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("s.yaml");
    std::fs::write(&file, SERVER).unwrap();
    let args = Args { file: Some(file), ..args(Some(":18080"), None) };
    let document = Document::load(&args).unwrap();
    let full = document.to_json();
    assert_eq!(full["services"].as_array().unwrap().len(), 2);
    assert_eq!(full["services"][1]["handler"]["type"], "router");
    assert_eq!(full["api"]["addr"], ":18080");
    let file_part = document.file_part().to_json();
    assert_eq!(file_part["services"].as_array().unwrap().len(), 1);
    assert!(file_part.get("api").is_none());
    std::fs::remove_dir_all(&dir).unwrap();
}
