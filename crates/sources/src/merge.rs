//! Merging the sources by priority.

use std::collections::HashSet;

use crate::Entry;

/// Merges entries with the priority http > redis > file > inline.
///
/// The result lists http's entries first, then redis's, file's and inline's,
/// each in its own order, and drops every entry whose key already appeared
/// earlier. A consumer that takes the first entry for a key therefore gets
/// the highest-priority one, and a later duplicate within one source never
/// replaces the first. Keys are compared as strings; normalise them (e.g.
/// CIDRs) before merging if two spellings must be the same key.
pub fn merge(inline: Vec<Entry>, file: Vec<Entry>, redis: Vec<Entry>, http: Vec<Entry>) -> Vec<Entry> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(inline.len() + file.len() + redis.len() + http.len());
    for (key, value) in http.into_iter().chain(redis).chain(file).chain(inline) {
        if seen.insert(key.clone()) {
            out.push((key, value));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn es(pairs: &[(&str, &str)]) -> Vec<Entry> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn priority_http_redis_file_inline() {
        let merged = merge(
            es(&[("a", "inline"), ("b", "inline"), ("c", "inline"), ("d", "inline")]),
            es(&[("a", "file"), ("b", "file"), ("c", "file")]),
            es(&[("a", "redis"), ("b", "redis")]),
            es(&[("a", "http")]),
        );
        assert_eq!(merged, es(&[("a", "http"), ("b", "redis"), ("c", "file"), ("d", "inline")]));
    }

    #[test]
    fn first_duplicate_within_a_source_wins() {
        let merged = merge(es(&[("k", "1"), ("k", "2")]), vec![], vec![], vec![]);
        assert_eq!(merged, es(&[("k", "1")]));
    }

    #[test]
    fn empty() {
        assert!(merge(vec![], vec![], vec![], vec![]).is_empty());
    }
}
