//! Host binding (beyond GOST): which host names a user may register, and in
//! which namespaces.
//!
//! A rule is written `host` (that name in any namespace), `host@ROUTER-ID`
//! (that name in the namespace of that router id only, a UUID), or with `*`
//! as the host (any name): `*@ROUTER-ID` lets a user register any name in
//! one namespace. The same text works in YAML (`hosts: [h2@e87f...]`) and in
//! auther data sources (a third field: `alice s3cret hosts=h2@e87f...,h3`).

use std::collections::HashMap;

/// One parsed rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostRule {
    /// The host name, or `None` for any (`*`).
    pub host: Option<String>,
    /// The namespace's 16 id bytes, or `None` for any.
    pub namespace: Option<[u8; 16]>,
}

/// Why a rule's text could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BindingError {
    /// Nothing before the `@`.
    #[error("{0:?}: empty host name (use * for any name)")]
    EmptyHost(String),
    /// The part after `@` is not a router id.
    #[error("{0:?}: the part after @ must be a router id (a UUID such as e87f56dd-fd57-4921-9ab8-a0847662daae)")]
    BadNamespace(String),
}

impl HostRule {
    /// Reads `host`, `host@ROUTER-ID`, `*` or `*@ROUTER-ID`.
    pub fn parse(text: &str) -> Result<HostRule, BindingError> {
        let text = text.trim();
        let (host, namespace) = match text.rsplit_once('@') {
            Some((host, id)) => {
                (host, Some(parse_uuid(id).ok_or_else(|| BindingError::BadNamespace(text.to_owned()))?))
            }
            None => (text, None),
        };
        let host = match host.trim() {
            "" => return Err(BindingError::EmptyHost(text.to_owned())),
            "*" => None,
            name => Some(name.to_owned()),
        };
        Ok(HostRule { host, namespace })
    }

    /// Whether this rule allows `host` in namespace `namespace`.
    pub fn allows(&self, host: &str, namespace: &[u8; 16]) -> bool {
        self.host.as_deref().is_none_or(|h| h == host) && self.namespace.as_ref().is_none_or(|n| n == namespace)
    }
}

/// User name -> the rules of the host names that user may register.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostBinding {
    users: HashMap<String, Vec<HostRule>>,
}

impl HostBinding {
    /// A binding from (user, rules) pairs; rules of one user add up.
    pub fn new(entries: impl IntoIterator<Item = (String, Vec<HostRule>)>) -> HostBinding {
        let mut users: HashMap<String, Vec<HostRule>> = HashMap::new();
        for (user, rules) in entries {
            users.entry(user).or_default().extend(rules);
        }
        HostBinding { users }
    }

    /// Whether `user` may register `host` in namespace `namespace`. A user
    /// without rules may register nothing.
    pub fn allows(&self, user: &str, host: &str, namespace: &[u8; 16]) -> bool {
        self.users.get(user).is_some_and(|rules| rules.iter().any(|r| r.allows(host, namespace)))
    }

    /// Whether no user has rules.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

/// Reads a UUID in its hyphenated form (any case), as router ids are written.
fn parse_uuid(text: &str) -> Option<[u8; 16]> {
    let text = text.trim();
    let groups: Vec<&str> = text.split('-').collect();
    if groups.iter().map(|g| g.len()).collect::<Vec<_>>() != [8, 4, 4, 4, 12] {
        return None;
    }
    let hex: String = groups.concat();
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS1: &str = "e87f56dd-fd57-4921-9ab8-a0847662daae";
    const NS1_BYTES: [u8; 16] =
        [0xe8, 0x7f, 0x56, 0xdd, 0xfd, 0x57, 0x49, 0x21, 0x9a, 0xb8, 0xa0, 0x84, 0x76, 0x62, 0xda, 0xae];

    #[test]
    fn rules_read_and_match() {
        let any_ns = HostRule::parse("h2").unwrap();
        assert!(any_ns.allows("h2", &NS1_BYTES) && any_ns.allows("h2", &[0; 16]));
        assert!(!any_ns.allows("h3", &NS1_BYTES));
        let pinned = HostRule::parse(&format!("h2@{}", NS1.to_uppercase())).unwrap();
        assert_eq!(pinned.namespace, Some(NS1_BYTES));
        assert!(pinned.allows("h2", &NS1_BYTES));
        assert!(!pinned.allows("h2", &[0; 16]), "another tenant's h2");
        let wildcard = HostRule::parse(&format!("*@{NS1}")).unwrap();
        assert!(wildcard.allows("anything", &NS1_BYTES) && !wildcard.allows("anything", &[1; 16]));
        assert_eq!(HostRule::parse("@x"), Err(BindingError::BadNamespace("@x".to_owned())));
        assert!(matches!(HostRule::parse(&format!("@{NS1}")), Err(BindingError::EmptyHost(_))));
        assert!(matches!(
            HostRule::parse("h2@e87f56dd-fd57-4921-9ab8-a0847662daa"),
            Err(BindingError::BadNamespace(_))
        ));
        assert!(matches!(
            HostRule::parse("h2@e87f56dd-fd57-4921-9ab8-a0847662daaz"),
            Err(BindingError::BadNamespace(_))
        ));
    }

    #[test]
    fn users_without_rules_may_register_nothing() {
        let binding = HostBinding::new([("alice".to_owned(), vec![HostRule::parse(&format!("h2@{NS1}")).unwrap()])]);
        assert!(binding.allows("alice", "h2", &NS1_BYTES));
        assert!(!binding.allows("alice", "h2", &[0; 16]));
        assert!(!binding.allows("bob", "h2", &NS1_BYTES));
    }
}
