//! HTTP Basic authentication of the web endpoints: the section's inline
//! `auth`, or its `auther` (inline users, data sources or a plugin, built
//! as a router service builds one). Either one that accepts lets the
//! request through, as GOST's api does with both set.

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use base64::Engine as _;
use rgost_config::{Config, Credentials};
use rgost_server::auth::Auther;
use tokio_util::sync::CancellationToken;

/// Who may use an endpoint.
#[derive(Debug)]
pub struct WebAuth {
    /// What the auther is called to check, as GOST names it (`@api`, `@metrics`).
    service: String,
    inline: ArcSwapOption<Credentials>,
    auther: ArcSwapOption<Auther>,
    /// Stops the current auther's data-source reloads.
    generation: std::sync::Mutex<CancellationToken>,
}

impl WebAuth {
    /// Nobody configured yet: everyone may pass until [`WebAuth::set`].
    pub fn new(service: &str) -> WebAuth {
        WebAuth {
            service: service.to_owned(),
            inline: ArcSwapOption::empty(),
            auther: ArcSwapOption::empty(),
            generation: std::sync::Mutex::new(CancellationToken::new()),
        }
    }

    /// Uses `auth` and the auther named `auther` in `config` from now on.
    /// An auther that cannot be built (a plugin's TLS files) refuses every
    /// request rather than letting everyone in.
    pub async fn set(
        &self,
        auth: Option<&Credentials>,
        auther: Option<&str>,
        config: &Config,
        shutdown: &CancellationToken,
    ) {
        let generation = shutdown.child_token();
        let built = match auther.and_then(|name| config.authers.iter().find(|a| a.name == name)) {
            None => None,
            Some(auther_config) => match rgost_server::build::auther(auther_config, &generation).await {
                Ok(Some(auther)) => Some(Arc::new(auther)),
                // No source and no plugin: its inline users are the table.
                Ok(None) => Some(Arc::new(Auther::from_pairs(
                    auther_config
                        .auths
                        .iter()
                        .map(|u| (u.credentials.username.clone(), u.credentials.password.clone())),
                ))),
                Err(e) => {
                    tracing::error!(service = %self.service, "auther {}: {e}; every request is refused", auther_config.name);
                    Some(Arc::new(Auther::from_pairs([])))
                }
            },
        };
        self.inline.store(auth.cloned().map(Arc::new));
        self.auther.store(built);
        let old = std::mem::replace(&mut *self.generation.lock().unwrap_or_else(|p| p.into_inner()), generation);
        old.cancel();
    }

    /// Whether anything is configured (otherwise every request passes).
    pub fn required(&self) -> bool {
        self.inline.load().is_some() || self.auther.load().is_some()
    }

    /// Whether the request's Basic credentials are accepted.
    pub async fn check(&self, headers: &HeaderMap, client: SocketAddr) -> bool {
        let inline = self.inline.load_full();
        let auther = self.auther.load_full();
        if inline.is_none() && auther.is_none() {
            return true;
        }
        let Some((user, pass)) = basic(headers) else { return false };
        if let Some(expected) = &inline
            && expected.username == user
            && constant_time_eq(expected.password.as_bytes(), pass.as_bytes())
        {
            return true;
        }
        match &auther {
            Some(auther) => auther.check(&self.service, Some((user.as_bytes(), pass.as_bytes())), client).await,
            None => false,
        }
    }
}

/// The user name and password of an `Authorization: Basic` header.
fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.to_owned(), pass.to_owned()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[tokio::test]
    async fn inline_credentials() {
        let auth = WebAuth::new("@api");
        let client: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let mut headers = HeaderMap::new();
        assert!(auth.check(&headers, client).await, "nothing configured: open");
        let config = rgost_config::parse_str("services: [{addr: ':1', handler: {type: router}}]", "t").unwrap().config;
        let credentials = Credentials { username: "u".into(), password: "p:w".into() };
        auth.set(Some(&credentials), None, &config, &CancellationToken::new()).await;
        assert!(!auth.check(&headers, client).await);
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Basic dTpwOnc=")); // u:p:w
        assert!(auth.check(&headers, client).await);
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Basic dTpw")); // u:p
        assert!(!auth.check(&headers, client).await);
    }
}
