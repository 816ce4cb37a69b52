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
