//! Ingress: which namespace a host name may use.

use std::collections::HashMap;

/// Host name -> endpoint (a namespace UUID, kept as its 16 bytes).
///
/// Lookup is exact first (case-insensitive, ignoring a trailing dot), then
/// the wildcard forms walking up the labels: for `a.b.example.org` it tries
/// `.a.b.example.org`, `.b.example.org`, `.example.org`, `.org`. A rule
/// written `*.example.org` is the same as `.example.org`. A rule for the
/// empty name matches only clients that send no host name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ingress {
    /// Exact names, lowercased, without a trailing dot.
    exact: HashMap<String, [u8; 16]>,
    /// Wildcard suffixes, lowercased, stored with their leading dot (`.example.org`).
    wildcard: HashMap<String, [u8; 16]>,
    /// The rule for clients that send no host name.
    empty: Option<[u8; 16]>,
}

impl Ingress {
    /// Builds the rule set; when a host name appears more than once, the first wins.
    pub fn new(rules: impl IntoIterator<Item = (String, [u8; 16])>) -> Self {
        let mut ingress = Ingress::default();
        for (host, endpoint) in rules {
            let host = normalize(&host);
            if let Some(rest) = host.strip_prefix("*.") {
                ingress.wildcard.entry(format!(".{rest}")).or_insert(endpoint);
            } else if host.starts_with('.') {
                ingress.wildcard.entry(host).or_insert(endpoint);
            } else if host.is_empty() {
                ingress.empty.get_or_insert(endpoint);
            } else {
                ingress.exact.entry(host).or_insert(endpoint);
            }
        }
        ingress
    }

    /// The endpoint for `host`, if any rule matches.
    pub fn lookup(&self, host: &str) -> Option<[u8; 16]> {
        let host = normalize(host);
        if host.is_empty() {
            return self.empty;
        }
        if let Some(endpoint) = self.exact.get(&host) {
            return Some(*endpoint);
        }
        if self.wildcard.is_empty() {
            return None;
        }
        // `.a.b.example.org`, `.b.example.org`, `.example.org`, `.org`.
        let dotted = if host.starts_with('.') { host } else { format!(".{host}") };
        let mut rest = dotted.as_str();
        loop {
            if let Some(endpoint) = self.wildcard.get(rest) {
                return Some(*endpoint);
            }
            match rest[1..].find('.') {
                Some(i) => rest = &rest[i + 1..],
                None => return None,
            }
        }
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.exact.len() + self.wildcard.len() + usize::from(self.empty.is_some())
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn normalize(host: &str) -> String {
    host.trim().trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const A: [u8; 16] = [1; 16];
    const B: [u8; 16] = [2; 16];
    const C: [u8; 16] = [3; 16];

    #[test]
    fn exact_then_wildcard_walk() {
        let ingress = Ingress::new([
            ("host-1".to_owned(), A),
            ("*.example.org".to_owned(), B),
            (".b.example.org".to_owned(), C),
            ("host-1".to_owned(), C),
        ]);
        assert_eq!(ingress.len(), 3);
        assert_eq!(ingress.lookup("host-1"), Some(A));
        assert_eq!(ingress.lookup("HOST-1."), Some(A));
        assert_eq!(ingress.lookup("host-2"), None);
        assert_eq!(ingress.lookup("x.example.org"), Some(B));
        // As in GOST, the first wildcard tried is `.` + the host itself.
        assert_eq!(ingress.lookup("example.org"), Some(B));
        assert_eq!(ingress.lookup("a.b.example.org"), Some(C));
        assert_eq!(ingress.lookup("b.example.org"), Some(C));
        assert_eq!(ingress.lookup("c.example.org"), Some(B));
        assert_eq!(ingress.lookup(""), None);
        assert_eq!(ingress.lookup("."), None);
        let with_empty = Ingress::new([(String::new(), A), ("*.org".to_owned(), B)]);
        assert_eq!(with_empty.lookup(""), Some(A));
        assert_eq!(with_empty.lookup("x.org"), Some(B));
    }

    #[test]
    fn top_level_wildcard() {
        let ingress = Ingress::new([(".org".to_owned(), A), ("exact.org".to_owned(), B)]);
        assert_eq!(ingress.lookup("a.b.example.org"), Some(A));
        assert_eq!(ingress.lookup("exact.org"), Some(B));
        assert_eq!(ingress.lookup("org"), Some(A));
        assert_eq!(ingress.lookup("example.com"), None);
    }

    proptest! {
        #[test]
        fn lookup_never_panics(host in "[a-z.*\\-é]{0,40}", rule in "[a-z.*]{0,12}") {
            let ingress = Ingress::new([(rule, A)]);
            let _ = ingress.lookup(&host);
        }
    }
}
