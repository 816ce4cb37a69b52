//! "Did you mean ...?": the known key closest to a misspelt one.

/// The candidate closest to `key` by edit distance (case-insensitive, a
/// swap of two neighbouring letters counts as one edit), when it is close
/// enough to be a likely typo. Ties go to the earlier candidate.
pub(crate) fn closest<'a>(key: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let key: Vec<char> = key.to_lowercase().chars().collect();
    // One edit in four letters, at least one: `rout` -> `route`, `metdata`
    // -> `metadata`, but `zzz` suggests nothing.
    let limit = 1 + key.len() / 4;
    let mut best: Option<(usize, &'a str)> = None;
    for candidate in candidates {
        let lower: Vec<char> = candidate.to_lowercase().chars().collect();
        let distance = edit_distance(&key, &lower);
        if distance <= limit && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, candidate)| candidate)
}

/// Optimal string alignment distance: insertions, deletions, substitutions
/// and transpositions of neighbours, each one edit.
fn edit_distance(a: &[char], b: &[char]) -> usize {
    let width = b.len() + 1;
    let mut rows = vec![0usize; (a.len() + 1) * width];
    for (j, cell) in rows.iter_mut().take(width).enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        rows[i * width] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (rows[(i - 1) * width + j] + 1)
                .min(rows[i * width + j - 1] + 1)
                .min(rows[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(rows[(i - 2) * width + j - 2] + 1);
            }
            rows[i * width + j] = d;
        }
    }
    rows[a.len() * width + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_likely_typos_only() {
        let keys = ["router", "route", "routes", "metadata", "readTimeout"];
        assert_eq!(closest("routr", keys), Some("router"));
        assert_eq!(closest("rout", keys), Some("route"));
        assert_eq!(closest("metdata", keys), Some("metadata"));
        assert_eq!(closest("mtedata", keys), Some("metadata"));
        assert_eq!(closest("READTIMEOUT", keys), Some("readTimeout"));
        assert_eq!(closest("readTimout", keys), Some("readTimeout"));
        assert_eq!(closest("zzz", keys), None);
        assert_eq!(closest("frobnicate", keys), None);
        assert_eq!(closest("x", Vec::<&str>::new()), None);
    }

    #[test]
    fn distances() {
        let d = |a: &str, b: &str| edit_distance(&a.chars().collect::<Vec<_>>(), &b.chars().collect::<Vec<_>>());
        assert_eq!(d("", ""), 0);
        assert_eq!(d("abc", ""), 3);
        assert_eq!(d("", "ab"), 2);
        assert_eq!(d("kitten", "sitting"), 3);
        assert_eq!(d("ab", "ba"), 1);
        assert_eq!(d("router", "router"), 0);
    }
}
