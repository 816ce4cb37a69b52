//! Authentication of router clients (GOST's step 2). rgost's binding of
//! users to the host names they may register is [`rgost_routing::HostBinding`].

use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use arc_swap::ArcSwap;

/// Authenticates one client at a time (an HTTP plugin). Failures (plugin
/// down, slow) count as a refusal: log them inside.
pub trait AuthResolver: Send + Sync + Debug + 'static {
    /// `Some(id)` when `username`/`password` are accepted for `service`.
    fn authenticate(
        &self,
        service: &str,
        username: &str,
        password: &str,
        client: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = Option<String>> + Send>>;
}

/// A service's authenticator. Clones share the user table, so a reloader
/// holds a clone and replaces it for everyone.
#[derive(Debug, Clone)]
pub enum Auther {
    /// User name -> password (inline `auth`/`auths` and data sources), replaced as a whole on reload.
    Users(Arc<ArcSwap<HashMap<String, String>>>),
    /// A plugin.
    Plugin(Arc<dyn AuthResolver>),
}

impl Auther {
    /// A user table that can be reloaded.
    pub fn users(users: HashMap<String, String>) -> Auther {
        Auther::Users(Arc::new(ArcSwap::from_pointee(users)))
    }

    /// A user table from (user, password) pairs in priority order: the
    /// first pair for a user wins.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Auther {
        Auther::users(first_wins(pairs))
    }

    /// Replaces the user table with (user, password) pairs in priority order
    /// (a reload); no effect on a plugin.
    pub fn replace_pairs(&self, pairs: impl IntoIterator<Item = (String, String)>) {
        self.replace(first_wins(pairs));
    }

    /// Replaces the user table (a reload); no effect on a plugin.
    pub fn replace(&self, users: HashMap<String, String>) {
        if let Auther::Users(current) = self {
            current.store(Arc::new(users));
        }
    }

    /// Whether the credentials are valid. Missing credentials never are.
    pub async fn check(&self, service: &str, credentials: Option<(&[u8], &[u8])>, client: SocketAddr) -> bool {
        let Some((user, pass)) = credentials else { return false };
        let (Ok(user), Ok(pass)) = (std::str::from_utf8(user), std::str::from_utf8(pass)) else {
            return false;
        };
        match self {
            Auther::Users(users) => {
                users.load().get(user).is_some_and(|expected| constant_time_eq(expected.as_bytes(), pass.as_bytes()))
            }
            Auther::Plugin(plugin) => plugin.authenticate(service, user, pass, client).await.is_some(),
        }
    }
}

fn first_wins(pairs: impl IntoIterator<Item = (String, String)>) -> HashMap<String, String> {
    let mut users = HashMap::new();
    for (user, password) in pairs {
        users.entry(user).or_insert(password);
    }
    users
}

/// Compares without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn users() {
        let auther = Auther::users(HashMap::from([("alice".to_owned(), "s3cret".to_owned())]));
        let client: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert!(auther.check("s", Some((b"alice", b"s3cret")), client).await);
        assert!(!auther.check("s", Some((b"alice", b"s3creT")), client).await);
        assert!(!auther.check("s", Some((b"bob", b"s3cret")), client).await);
        assert!(!auther.check("s", None, client).await);
    }
}
