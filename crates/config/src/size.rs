//! Sizes in bytes: `1048576`, `512KiB`, `4MiB`, `1GiB`, `4MB` (units are
//! case-insensitive; `KiB` is 1024 bytes, `KB` 1000).

/// Parses a size in bytes: an integer, optionally followed by a unit
/// (`B`, `KB`, `MB`, `GB`, `TB` in powers of 1000, `KiB`, `MiB`, `GiB`, `TiB`
/// in powers of 1024), case-insensitive, with optional space before the unit.
pub(crate) fn parse_size(text: &str) -> Result<usize, &'static str> {
    const HINT: &str = "not a size like 1048576, 512KiB, 4MiB, 1GiB or 4MB";
    let text = text.trim();
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    if number.is_empty() {
        return Err(HINT);
    }
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "mb" => 1000_u64.pow(2),
        "gb" => 1000_u64.pow(3),
        "tb" => 1000_u64.pow(4),
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => return Err("unknown unit (use B, KB, MB, GB, KiB, MiB or GiB)"),
    };
    let number: u64 = number.parse().map_err(|_| "size too large")?;
    let bytes = number.checked_mul(multiplier).ok_or("size too large")?;
    usize::try_from(bytes).map_err(|_| "size too large for this machine")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("512KiB"), Ok(512 * 1024));
        assert_eq!(parse_size("4MiB"), Ok(4 << 20));
        assert_eq!(parse_size("4mib"), Ok(4 << 20));
        assert_eq!(parse_size("4 MiB"), Ok(4 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("4MB"), Ok(4_000_000));
        assert_eq!(parse_size("4mb"), Ok(4_000_000));
        assert_eq!(parse_size("2kb"), Ok(2000));
        assert_eq!(parse_size("100B"), Ok(100));
        assert_eq!(parse_size(" 7 "), Ok(7));
        for bad in ["", "MiB", "4M", "4 meg", "-1", "1.5MiB", "4MiBs", "99999999999999999999", "20000000TiB"] {
            assert!(parse_size(bad).is_err(), "{bad:?} accepted");
        }
    }
}
