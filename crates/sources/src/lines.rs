//! GOST's data-source line format.

use crate::Entry;

/// Longest part of a bad line kept for the log.
const BAD_LINE_KEEP: usize = 120;

/// The result of [`parse_lines`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    /// The well-formed entries, in input order.
    pub entries: Vec<Entry>,
    /// Lines that were skipped because they did not have exactly two fields.
    pub bad: Vec<BadLine>,
}

/// A skipped line, for a warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    /// 1-based line number.
    pub line_no: usize,
    /// The line without its comment, trimmed, cut to a bounded length.
    pub line: String,
}

/// Parses text in the data-source line format: one entry per line, two fields
/// separated by spaces or tabs; `#` starts a comment anywhere on a line; blank
/// (or comment-only) lines are ignored; lines with one field or more than two
/// are skipped and reported in [`Parsed::bad`]. Never panics.
pub fn parse_lines(text: &str) -> Parsed {
    let mut parsed = Parsed::default();
    for (idx, raw) in text.lines().enumerate() {
        let content = raw.split('#').next().unwrap_or_default();
        let mut fields = content.split_whitespace();
        match (fields.next(), fields.next(), fields.next()) {
            (None, _, _) => {}
            (Some(key), Some(value), None) => parsed.entries.push((key.to_owned(), value.to_owned())),
            _ => parsed.bad.push(BadLine { line_no: idx + 1, line: truncate(content.trim(), BAD_LINE_KEEP) }),
        }
    }
    parsed
}

/// How a line becomes an entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LineFormat {
    /// Exactly two fields, `key value` ([`parse_lines`]): routes, ingress
    /// rules, users.
    #[default]
    Pairs,
    /// At least two fields: the first is the key, the others (joined by one
    /// space) the value ([`parse_keyed_lines`]): limit lines such as
    /// `$ 100MB 100MB`.
    Keyed,
}

impl LineFormat {
    /// Parses `text` in this format.
    pub fn parse(self, text: &str) -> Parsed {
        match self {
            LineFormat::Pairs => parse_lines(text),
            LineFormat::Keyed => parse_keyed_lines(text),
        }
    }
}

/// Parses text whose lines have a key and one or more value fields, like
/// GOST's limit lines (`$ 100MB 100MB`, `host-1 1MB`): the first field is
/// the key, the rest joined by single spaces is the value. Comments and
/// blank lines as in [`parse_lines`]; a line with one field is skipped and
/// reported in [`Parsed::bad`]. Never panics.
pub fn parse_keyed_lines(text: &str) -> Parsed {
    let mut parsed = Parsed::default();
    for (idx, raw) in text.lines().enumerate() {
        let content = raw.split('#').next().unwrap_or_default();
        let mut fields = content.split_whitespace();
        let Some(key) = fields.next() else { continue };
        let value: Vec<&str> = fields.collect();
        if value.is_empty() {
            parsed.bad.push(BadLine { line_no: idx + 1, line: truncate(content.trim(), BAD_LINE_KEEP) });
        } else {
            parsed.entries.push((key.to_owned(), value.join(" ")));
        }
    }
    parsed
}

/// Cuts `s` to at most `max` bytes on a character boundary.
fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(k: &str, v: &str) -> Entry {
        (k.to_owned(), v.to_owned())
    }

    #[test]
    fn comments_blanks_tabs_and_bad_lines() {
        let text = "# header\n\n10.0.0.0/8 host-1\n  192.168.1.1\thost-2 # trailing\n\
                    \t\t\nonlyone\na b c\n#x y\n  # indented comment\nfd00::/8\t \thost-3\r\n";
        let parsed = parse_lines(text);
        assert_eq!(
            parsed.entries,
            vec![e("10.0.0.0/8", "host-1"), e("192.168.1.1", "host-2"), e("fd00::/8", "host-3")]
        );
        assert_eq!(
            parsed.bad,
            vec![BadLine { line_no: 6, line: "onlyone".into() }, BadLine { line_no: 7, line: "a b c".into() },]
        );
    }

    #[test]
    fn comment_glued_to_a_field() {
        let parsed = parse_lines("a b#c d\nx#y z\n");
        assert_eq!(parsed.entries, vec![e("a", "b")]);
        assert_eq!(parsed.bad, vec![BadLine { line_no: 2, line: "x".into() }]);
    }

    #[test]
    fn keyed_lines_keep_every_value_field() {
        let parsed = parse_keyed_lines("# limits\n$ 100MB\t100MB\n$$ 10MB # per client\nlonely\n\nh 1MB 2MB 64KB\n");
        assert_eq!(parsed.entries, vec![e("$", "100MB 100MB"), e("$$", "10MB"), e("h", "1MB 2MB 64KB")]);
        assert_eq!(parsed.bad, vec![BadLine { line_no: 4, line: "lonely".into() }]);
        assert_eq!(LineFormat::Pairs.parse("a b c").bad.len(), 1);
        assert_eq!(LineFormat::Keyed.parse("a b c").entries, vec![e("a", "b c")]);
    }

    #[test]
    fn empty_input() {
        assert_eq!(parse_lines(""), Parsed::default());
        assert_eq!(parse_lines("\n\n   \n"), Parsed::default());
    }

    #[test]
    fn long_bad_line_is_cut_on_a_char_boundary() {
        let line = "é".repeat(200);
        let parsed = parse_lines(&line);
        assert_eq!(parsed.bad.len(), 1);
        assert!(parsed.bad[0].line.len() <= BAD_LINE_KEEP + 3);
    }
}
