//! Authentication of router clients (GOST's step 2). rgost's binding of
//! users to the host names they may register is [`rgost_routing::HostBinding`].

use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rgost_routing::{BindingError, HostRule};

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

/// A user of a table: the password and, when a data source line says so
/// (`alice s3cret hosts=h2@ROUTER-ID,h3`), the host names the user may
/// register. `hosts: None` leaves the user to the config's binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The password.
    pub password: String,
    /// Host rules from the data source, if it gave any.
    pub hosts: Option<Arc<[HostRule]>>,
}

impl User {
    /// A user with a password and no rules of its own.
    pub fn new(password: impl Into<String>) -> User {
        User { password: password.into(), hosts: None }
    }

    /// Reads a user's value from an auther data source: `PASSWORD`, or
    /// `PASSWORD hosts=RULE[,RULE...]` with rules as in the config (`NAME`,
    /// `NAME@ROUTER-ID`, `*@ROUTER-ID`). A password cannot contain white
    /// space there (the fields of a line are split on it).
    pub fn parse(value: &str) -> Result<User, UserError> {
        let mut fields = value.split_whitespace();
        let (Some(password), rules, None) = (fields.next(), fields.next(), fields.next()) else {
            return Err(UserError::Fields);
        };
        let Some(rules) = rules else { return Ok(User::new(password)) };
        let rules = rules.strip_prefix(HOSTS_FIELD).ok_or(UserError::Fields)?;
        let hosts = rules.split(',').map(HostRule::parse).collect::<Result<Vec<_>, _>>()?;
        Ok(User { password: password.to_owned(), hosts: Some(hosts.into()) })
    }
}

/// The third field of an auther data source line.
const HOSTS_FIELD: &str = "hosts=";

/// Why an auther data source entry was skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UserError {
    /// Not `PASSWORD` or `PASSWORD hosts=RULES`.
    #[error("expected `USER PASSWORD` or `USER PASSWORD hosts=NAME[@ROUTER-ID],...`")]
    Fields,
    /// A host rule that does not read.
    #[error(transparent)]
    Rule(#[from] BindingError),
}

/// What an accepted client brings to the host binding check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accepted {
    /// The user's own host rules (from a data source), if any.
    pub hosts: Option<Arc<[HostRule]>>,
}

/// A service's authenticator. Clones share the user table, so a reloader
/// holds a clone and replaces it for everyone.
#[derive(Debug, Clone)]
pub enum Auther {
    /// User name -> user (inline `auth`/`auths` and data sources), replaced as a whole on reload.
    Users(Arc<ArcSwap<HashMap<String, User>>>),
    /// A plugin.
    Plugin(Arc<dyn AuthResolver>),
}

impl Auther {
    /// A user table (name -> password) that can be reloaded.
    pub fn users(users: HashMap<String, String>) -> Auther {
        Auther::from_users(users.into_iter().map(|(name, password)| (name, User::new(password))))
    }

    /// A user table from (user, password) pairs in priority order: the
    /// first pair for a user wins.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Auther {
        Auther::from_users(pairs.into_iter().map(|(name, password)| (name, User::new(password))))
    }

    /// A user table from (name, user) pairs in priority order: the first
    /// for a name wins.
    pub fn from_users(users: impl IntoIterator<Item = (String, User)>) -> Auther {
        Auther::Users(Arc::new(ArcSwap::from_pointee(first_wins(users))))
    }

    /// Replaces the user table with (name, user) pairs in priority order
    /// (a reload); no effect on a plugin.
    pub fn replace_users(&self, users: impl IntoIterator<Item = (String, User)>) {
        if let Auther::Users(current) = self {
            current.store(Arc::new(first_wins(users)));
        }
    }

    /// Whether the credentials are valid. Missing credentials never are.
    pub async fn check(&self, service: &str, credentials: Option<(&[u8], &[u8])>, client: SocketAddr) -> bool {
        self.accept(service, credentials, client).await.is_some()
    }

    /// `Some` with what the user brings to the host binding when the
    /// credentials are valid. Missing credentials never are.
    pub async fn accept(
        &self,
        service: &str,
        credentials: Option<(&[u8], &[u8])>,
        client: SocketAddr,
    ) -> Option<Accepted> {
        let (user, pass) = credentials?;
        let (Ok(user), Ok(pass)) = (std::str::from_utf8(user), std::str::from_utf8(pass)) else {
            return None;
        };
        match self {
            Auther::Users(users) => {
                let users = users.load();
                let known = users.get(user)?;
                constant_time_eq(known.password.as_bytes(), pass.as_bytes())
                    .then(|| Accepted { hosts: known.hosts.clone() })
            }
            Auther::Plugin(plugin) => {
                plugin.authenticate(service, user, pass, client).await.map(|_| Accepted::default())
            }
        }
    }
}

fn first_wins(users: impl IntoIterator<Item = (String, User)>) -> HashMap<String, User> {
    let mut table = HashMap::new();
    for (name, user) in users {
        table.entry(name).or_insert(user);
    }
    table
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

    #[test]
    fn source_lines_carry_host_rules() {
        assert_eq!(User::parse("s3cret"), Ok(User::new("s3cret")));
        let user = User::parse("s3cret hosts=h2@e87f56dd-fd57-4921-9ab8-a0847662daae,h3").unwrap();
        assert_eq!(user.password, "s3cret");
        let hosts = user.hosts.unwrap();
        assert_eq!(hosts.len(), 2);
        assert!(hosts[1].allows("h3", &[0; 16]));
        assert_eq!(User::parse("s3cret h2"), Err(UserError::Fields), "a third field must say hosts=");
        assert_eq!(User::parse("a b hosts=h2"), Err(UserError::Fields));
        assert!(matches!(User::parse("s3cret hosts=h2@tenant"), Err(UserError::Rule(_))));
        assert!(matches!(User::parse("s3cret hosts="), Err(UserError::Rule(_))));
    }

    #[tokio::test]
    async fn accepted_users_bring_their_rules() {
        let auther = Auther::from_users([
            ("alice".to_owned(), User::parse("pw hosts=h2").unwrap()),
            ("alice".to_owned(), User::new("other")),
            ("bob".to_owned(), User::new("pw")),
        ]);
        let client: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let alice = auther.accept("s", Some((b"alice", b"pw")), client).await.unwrap();
        assert!(alice.hosts.is_some_and(|h| h.len() == 1), "the first entry of a name wins");
        assert_eq!(auther.accept("s", Some((b"bob", b"pw")), client).await, Some(Accepted::default()));
        assert_eq!(auther.accept("s", Some((b"alice", b"other")), client).await, None);
    }
}
