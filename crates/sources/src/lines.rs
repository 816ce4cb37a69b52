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
