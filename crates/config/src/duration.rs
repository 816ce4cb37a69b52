//! Go-style durations (`10s`, `1m30s`, `500ms`, `1.5h`); a plain integer is seconds.

use std::time::Duration;

/// Parses a Go duration (`time.ParseDuration`), or a plain integer as seconds
/// (as GOST's metadata reader does). Negative durations are rejected.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, &'static str> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration");
    }
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let rest = match text.as_bytes().first() {
        Some(b'-') => return Err("negative duration"),
        Some(b'+') => &text[1..],
        _ => text,
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err("not a duration like 10s, 1m30s or 500ms");
    }
    let mut total: f64 = 0.0;
    let mut rest = rest;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (number, tail) = rest.split_at(number_len);
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err("not a duration like 10s, 1m30s or 500ms");
        }
        let value: f64 = number.parse().map_err(|_| "not a duration like 10s, 1m30s or 500ms")?;
        let unit_len = tail.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let nanos_per_unit = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err("missing unit (ns, us, ms, s, m, h)"),
            _ => return Err("unknown unit (use ns, us, ms, s, m or h)"),
        };
        total += value * nanos_per_unit;
        rest = tail;
    }
    // Go's limit is about 292 years; anything above is an overflow there too.
    if !total.is_finite() || total > 9.2e18 {
        return Err("duration too large");
    }
    // Truncation is intended: nanoseconds are the finest unit.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let nanos = total.round() as u64;
    Ok(Duration::from_nanos(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2h45m0.5s"), Ok(Duration::from_millis((2 * 3600 + 45 * 60) * 1000 + 500)));
        assert_eq!(parse_duration("100us"), Ok(Duration::from_micros(100)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("+3s"), Ok(Duration::from_secs(3)));
        for bad in ["", "s", "-1s", "10x", "1..5s", ".s", "1s2", "ms10"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }
}
