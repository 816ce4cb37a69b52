//! parse_lines never panics and its output is consistent with its input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use rgost_sources::parse_lines;

proptest! {
    #[test]
    fn never_panics_on_any_string(text in any::<String>()) {
        let parsed = parse_lines(&text);
        prop_assert!(parsed.entries.len() + parsed.bad.len() <= text.lines().count());
    }

    #[test]
    fn entries_have_two_clean_fields(text in "[a-z0-9 \t#/:.\n\r]{0,400}") {
        let parsed = parse_lines(&text);
        for (k, v) in &parsed.entries {
            prop_assert!(!k.is_empty() && !v.is_empty());
            prop_assert!(!k.contains(char::is_whitespace) && !v.contains(char::is_whitespace));
            prop_assert!(!k.contains('#') && !v.contains('#'));
        }
        for bad in &parsed.bad {
            prop_assert!(bad.line_no >= 1 && bad.line_no <= text.lines().count());
        }
    }

    #[test]
    fn well_formed_lines_round_trip(pairs in proptest::collection::vec(("[a-z0-9./:]{1,20}", "[a-z0-9-]{1,20}"), 0..50)) {
        let text: String = pairs.iter().map(|(k, v)| format!("{k}\t {v} # c\n")).collect();
        let parsed = parse_lines(&text);
        prop_assert_eq!(parsed.entries, pairs);
        prop_assert!(parsed.bad.is_empty());
    }
}
