//! GOST's config endpoints (`{prefix}/config...`): same paths, bodies and
//! answers as GOST's web API for what rgost implements.
//!
//! Answers: a list is `{"data": {"count": N, "list": [...]}}`, one object
//! `{"data": {...}}`, a change `{"msg": "OK"}`; an error is `{"code": C,
//! "msg": "..."}` with GOST's codes (40001 invalid, 40002 duplicate, 40003
//! creation failed, 40004 not found, 40005 save failed). rgost adds `key`
//! to an error that concerns one key of the body, and `data.needRestart` /
//! `data.warnings` to a change that has them.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rgost_config::{ConfigError, EditError, Section};
use rgost_server::control::{ApplyError, Format, Outcome, SaveError};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Web;

/// GOST's error codes.
pub(crate) const INVALID: u32 = 40001;
pub(crate) const DUPLICATE: u32 = 40002;
pub(crate) const FAILED: u32 = 40003;
pub(crate) const NOT_FOUND: u32 = 40004;
pub(crate) const SAVE_FAILED: u32 = 40005;

/// An error answer in GOST's shape.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) code: u32,
    pub(crate) msg: String,
    pub(crate) key: Option<String>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: u32, msg: impl Into<String>) -> ApiError {
        ApiError { status, code, msg: msg.into(), key: None }
    }

    fn invalid(error: &ConfigError, section: Option<Section>) -> ApiError {
        // The key as the body names it: `routes[0].dst` rather than `routers[2].routes[0].dst`.
        let key = error.key().map(|key| match section {
            Some(section) => strip_index(key, section.key()).unwrap_or(key).to_owned(),
            None => key.to_owned(),
        });
        ApiError { status: StatusCode::BAD_REQUEST, code: INVALID, msg: error.to_string(), key }
    }
}

/// `rest` of `section[N].rest`.
fn strip_index<'k>(key: &'k str, section: &str) -> Option<&'k str> {
    let rest = key.strip_prefix(section)?.strip_prefix('[')?;
    let (index, rest) = rest.split_once(']')?;
    index.parse::<usize>().ok()?;
    Some(rest.strip_prefix('.').unwrap_or(rest))
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"code": self.code, "msg": self.msg});
        if let (Some(key), Some(map)) = (self.key, body.as_object_mut()) {
            map.insert("key".to_owned(), Value::String(key));
        }
        (self.status, Json(body)).into_response()
    }
}

fn edit_error(error: EditError) -> ApiError {
    match &error {
        EditError::Invalid(e) => ApiError::invalid(e, None),
        EditError::NameRequired(_) => ApiError::new(StatusCode::BAD_REQUEST, INVALID, error.to_string()),
        EditError::Duplicate { .. } => ApiError::new(StatusCode::BAD_REQUEST, DUPLICATE, error.to_string()),
        EditError::NotFound { .. } => ApiError::new(StatusCode::BAD_REQUEST, NOT_FOUND, error.to_string()),
        _ => ApiError::new(StatusCode::BAD_REQUEST, INVALID, error.to_string()),
    }
}

fn apply_error(error: ApplyError, section: Option<Section>) -> ApiError {
    match error {
        ApplyError::Edit(e) => {
            let mut answer = edit_error(e);
            if let (Some(key), Some(section)) = (answer.key.take(), section) {
                answer.key = Some(strip_index(&key, section.key()).unwrap_or(&key).to_owned());
            }
            answer
        }
        ApplyError::Config(e) => ApiError::invalid(&e, section),
        ApplyError::Build { .. } => ApiError::new(StatusCode::CONFLICT, FAILED, report(&error)),
        other => ApiError::new(StatusCode::BAD_REQUEST, INVALID, report(&other)),
    }
}

/// An error and its causes, each once.
fn report(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// `{"msg": "OK"}`, with what was not applied, if anything.
fn ok(outcome: &Outcome) -> Response {
    let mut body = json!({"msg": "OK"});
    if (!outcome.need_restart.is_empty() || !outcome.warnings.is_empty())
        && let Some(map) = body.as_object_mut()
    {
        map.insert("data".to_owned(), json!({"needRestart": outcome.need_restart, "warnings": outcome.warnings}));
    }
    Json(body).into_response()
}

fn section(key: &str) -> Result<Section, ApiError> {
    Section::from_key(key).ok_or_else(|| unknown_section(key))
}

/// The answer for a section that cannot be edited.
fn unknown_section(key: &str) -> ApiError {
    match key {
        "services" | "chains" => ApiError::new(
            StatusCode::BAD_REQUEST,
            INVALID,
            format!("{key} cannot be changed while rgost runs: edit the config file and restart"),
        ),
        _ => ApiError::new(StatusCode::NOT_FOUND, NOT_FOUND, format!("rgost does not implement {key}")),
    }
}

/// The body as JSON (GOST ignores a body it cannot read; rgost says so).
fn body(bytes: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, INVALID, format!("the body is not a JSON object: {e}")))
}

/// `?format=json|yaml` of `GET /config`; `?format=&path=` of `POST /config`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ConfigQuery {
    format: Option<String>,
    path: Option<String>,
}

/// `GET /config`: the running config, with each router service's status
/// as GOST fills it in (`status.createTime`, `state`, `stats`).
pub(crate) async fn get_config(State(web): State<Arc<Web>>, Query(query): Query<ConfigQuery>) -> Response {
    let document = web.control.document().await;
    let mut value = document.to_json();
    if let Some(services) = value.get_mut("services").and_then(Value::as_array_mut) {
        for service in services {
            let name = service.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
            if let (Some(status), Some(map)) = (web.gost_service_status(&name), service.as_object_mut()) {
                map.insert("status".to_owned(), status);
            }
        }
    }
    if query.format.as_deref() == Some("yaml") {
        let text = serde_saphyr::to_string(&value).unwrap_or_default();
        ([(header::CONTENT_TYPE, HeaderValue::from_static("text/x-yaml"))], text).into_response()
    } else {
        Json(value).into_response()
    }
}

/// `POST /config`: saves the running config (what the file holds plus the
/// API's changes, without what the command line added) to `path` or the
/// config file.
pub(crate) async fn save_config(State(web): State<Arc<Web>>, Query(query): Query<ConfigQuery>) -> Response {
    let format = match query.format.as_deref().map(str::to_ascii_lowercase).as_deref() {
        Some("json") => Some(Format::Json),
        Some("yaml") => Some(Format::Yaml),
        _ => None,
    };
    let path = query.path.as_deref().filter(|p| !p.is_empty()).map(std::path::Path::new);
    match web.control.save(path, format).await {
        Ok(_) => Json(json!({"msg": "OK"})).into_response(),
        Err(e @ (SaveError::NoFile | SaveError::NotAConfigFile(_))) => {
            ApiError::new(StatusCode::BAD_REQUEST, SAVE_FAILED, e.to_string()).into_response()
        }
        Err(e) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, SAVE_FAILED, report(&e)).into_response(),
    }
}

/// `POST /config/reload`: reads the config file and the command line again, as SIGHUP does.
pub(crate) async fn reload_config(State(web): State<Arc<Web>>) -> Response {
    match web.control.reload("api").await {
        Ok(outcome) => ok(&outcome),
        Err(e) => apply_error(e, None).into_response(),
    }
}

/// `GET /config/{section}`.
pub(crate) async fn list(State(web): State<Arc<Web>>, Path(key): Path<String>) -> Response {
    let items = match Section::from_key(&key) {
        Some(section) => web.control.document().await.items(section),
        None if key == "services" || key == "chains" => {
            let document = web.control.document().await.to_json();
            document.get(&key).and_then(Value::as_array).cloned().unwrap_or_default()
        }
        None => return unknown_section(&key).into_response(),
    };
    Json(json!({"data": {"count": items.len(), "list": items}})).into_response()
}

/// `GET /config/{section}/{name}`.
pub(crate) async fn get(State(web): State<Arc<Web>>, Path((key, name)): Path<(String, String)>) -> Response {
    let found = match Section::from_key(&key) {
        Some(section) => web.control.document().await.item(section, &name),
        None if key == "services" || key == "chains" => {
            let document = web.control.document().await.to_json();
            document
                .get(&key)
                .and_then(Value::as_array)
                .and_then(|items| items.iter().find(|i| i.get("name").and_then(Value::as_str) == Some(name.trim())))
                .cloned()
        }
        None => return unknown_section(&key).into_response(),
    };
    match found {
        Some(item) => Json(json!({"data": item})).into_response(),
        None => {
            let what = Section::from_key(&key)
                .map_or_else(|| key.trim_end_matches('s').to_owned(), |s| s.singular().to_owned());
            ApiError::new(StatusCode::BAD_REQUEST, NOT_FOUND, format!("{what} {} not found", name.trim()))
                .into_response()
        }
    }
}

/// `POST /config/{section}`: creates an object (its name must be new).
pub(crate) async fn create(State(web): State<Arc<Web>>, Path(key): Path<String>, bytes: Bytes) -> Response {
    let result = async {
        let section = section(&key)?;
        let body = body(&bytes)?;
        let (_, outcome) = web
            .control
            .edit("api", |document| document.create(section, body))
            .await
            .map_err(|e| apply_error(e, Some(section)))?;
        Ok::<_, ApiError>(ok(&outcome))
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

/// `PUT /config/{section}/{name}`: replaces an object.
pub(crate) async fn update(
    State(web): State<Arc<Web>>,
    Path((key, name)): Path<(String, String)>,
    bytes: Bytes,
) -> Response {
    let result = async {
        let section = section(&key)?;
        let body = body(&bytes)?;
        let (_, outcome) = web
            .control
            .edit("api", |document| document.update(section, &name, body))
            .await
            .map_err(|e| apply_error(e, Some(section)))?;
        Ok::<_, ApiError>(ok(&outcome))
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

/// `DELETE /config/{section}/{name}`.
pub(crate) async fn delete(State(web): State<Arc<Web>>, Path((key, name)): Path<(String, String)>) -> Response {
    let result = async {
        let section = section(&key)?;
        let (_, outcome) = web
            .control
            .edit("api", |document| document.delete(section, &name))
            .await
            .map_err(|e| apply_error(e, Some(section)))?;
        Ok::<_, ApiError>(ok(&outcome))
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_as_the_body_names_them() {
        assert_eq!(strip_index("routers[2].routes[0].dst", "routers"), Some("routes[0].dst"));
        assert_eq!(strip_index("routers[2]", "routers"), Some(""));
        assert_eq!(strip_index("services[0].handler", "routers"), None);
    }
}
