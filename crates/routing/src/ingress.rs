//! Ingress: which namespace a host name may use.

/// Host name -> endpoint (a namespace UUID, kept as its 16 bytes).
///
/// Lookup is exact first (case-insensitive, ignoring a trailing dot), then
/// the wildcard forms walking up the labels: for `a.b.example.org` it tries
/// `.a.b.example.org`, `.b.example.org`, `.example.org`, `.org`. A rule
/// written `*.example.org` is the same as `.example.org`.
#[derive(Debug, Clone, Default)]
pub struct Ingress {
    // implementation-defined
}

impl Ingress {
    /// Builds the rule set; when a host name appears more than once, the first wins.
    pub fn new(rules: impl IntoIterator<Item = (String, [u8; 16])>) -> Self {
        todo!()
    }

    /// The endpoint for `host`, if any rule matches.
    pub fn lookup(&self, host: &str) -> Option<[u8; 16]> {
        todo!()
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        todo!()
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
