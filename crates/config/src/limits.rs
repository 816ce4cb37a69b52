//! GOST's limit lines: traffic limits (`limiters[].limits`, `SCOPE IN [OUT
//! [BURST]]`) and rate limits (`rlimiters[].limits`, `SCOPE RATE`).
//!
//! Pure parsing, shared by the config's validation (inline lines, where a
//! bad line is an error) and the server (lines from file, redis and http
//! sources, where a bad line is skipped with a warning).
//!
//! Rates are written with GOST's units: `B`, `KB`/`KiB`, `MB`/`MiB`,
//! `GB`/`GiB`, `TB`/`TiB`, `PB`/`PiB`, `EB`/`EiB`, all powers of 1024, with
//! GOST's spelling (case-sensitive), a fraction allowed (`1.5MB`) and parts
//! added up (`1MB512KB`). rgost also takes bits per second, powers of 1000
//! as networks count them: `bit`, `Kbit`, `Mbit`, `Gbit`, `Tbit` (any case).
//! Zero or a negative rate means unlimited, as in GOST.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use uuid::Uuid;

/// One traffic limit line: a scope and its rates in bytes per second.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrafficLimit {
    /// Who the line applies to.
    pub scope: LimitScope,
    /// Bytes per second the server reads from the client (`None` = unlimited).
    pub input: Option<u64>,
    /// Bytes per second the server writes to the client (`None` = unlimited).
    pub output: Option<u64>,
    /// The bucket's size in bytes (`None` = rgost's default, a tenth of a
    /// second of the rate and at least 16 KiB).
    pub burst: Option<u64>,
}

/// The first field of a traffic limit line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LimitScope {
    /// `$`: the whole service, all its clients (connections) together.
    Service,
    /// `$$`: each client (handler limiter) or each connection (service
    /// limiter) on its own.
    Each,
    /// `NAME` or `NAME@ROUTER-ID`: the client with this host name, in that
    /// namespace or in any (handler limiter only).
    Client {
        /// The host name.
        host: String,
        /// The namespace, when given.
        router: Option<Uuid>,
    },
    /// An IP address or CIDR: clients connecting from these addresses.
    Addr(IpNet),
}

/// One rate limit line: new connections per second.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimit {
    /// Whose connections.
    pub scope: RateScope,
    /// Connections per second (a fraction allowed); the bucket holds one
    /// second of them plus one, as in GOST.
    pub per_second: f64,
}

/// The first field of a rate limit line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateScope {
    /// `$`: all connections to the service together.
    Service,
    /// `$$`: each source address on its own.
    EachAddr,
    /// An IP address or CIDR: each source address in it on its own,
    /// instead of `$$`.
    Addr(IpNet),
}

/// Why a limit line was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitLineError {
    /// The line has no field.
    #[error("empty line")]
    Empty,
    /// The line has a scope but no rate.
    #[error("missing the rate after the scope")]
    MissingRate,
    /// More fields than the line format has.
    #[error("too many fields (expected {expected})")]
    TooManyFields {
        /// The format, e.g. `SCOPE IN [OUT [BURST]]`.
        expected: &'static str,
    },
    /// A rate or burst that does not parse.
    #[error("{field} {value:?}: {reason}")]
    BadRate {
        /// `input`, `output`, `burst` or `rate`.
        field: &'static str,
        /// The text.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The scope is neither `$`, `$$`, an address or CIDR, nor a host name.
    #[error("scope {value:?}: {reason}")]
    BadScope {
        /// The text.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

const TRAFFIC_FORMAT: &str = "SCOPE IN [OUT [BURST]]";
const RATE_FORMAT: &str = "SCOPE RATE";

impl TrafficLimit {
    /// Parses `SCOPE IN [OUT [BURST]]` (fields separated by spaces or tabs).
    pub fn parse(line: &str) -> Result<TrafficLimit, LimitLineError> {
        let mut fields = line.split_whitespace();
        let scope = fields.next().ok_or(LimitLineError::Empty)?;
        let input = fields.next().ok_or(LimitLineError::MissingRate)?;
        let output = fields.next();
        let burst = fields.next();
        if fields.next().is_some() {
            return Err(LimitLineError::TooManyFields { expected: TRAFFIC_FORMAT });
        }
        let rate = |field, text: &str| {
            parse_rate(text).map_err(|reason| LimitLineError::BadRate { field, value: text.to_owned(), reason })
        };
        Ok(TrafficLimit {
            scope: LimitScope::parse(scope)?,
            input: rate("input", input)?,
            output: output.map(|o| rate("output", o)).transpose()?.flatten(),
            burst: burst.map(|b| rate("burst", b)).transpose()?.flatten(),
        })
    }

    /// The line as GOST writes it (rates in the largest exact unit).
    pub fn line(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for TrafficLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.scope, Rate(self.input))?;
        if self.output.is_some() || self.burst.is_some() {
            write!(f, " {}", Rate(self.output))?;
        }
        if self.burst.is_some() {
            write!(f, " {}", Rate(self.burst))?;
        }
        Ok(())
    }
}

impl LimitScope {
    /// Parses a traffic limit scope.
    pub fn parse(text: &str) -> Result<LimitScope, LimitLineError> {
        let bad = |reason| LimitLineError::BadScope { value: text.to_owned(), reason };
        match text {
            "$" => return Ok(LimitScope::Service),
            "$$" => return Ok(LimitScope::Each),
            _ => {}
        }
        if let Some(net) = parse_net(text) {
            return Ok(LimitScope::Addr(net));
        }
        if text.starts_with('$') {
            return Err(bad("a scope is $, $$, an address or CIDR, or a host name"));
        }
        let (host, router) = match text.rsplit_once('@') {
            Some((host, id)) => {
                let id = Uuid::parse_str(id).map_err(|_| bad("NAME@ROUTER-ID needs a UUID after @"))?;
                (host, Some(id))
            }
            None => (text, None),
        };
        if host.is_empty() {
            return Err(bad("empty host name"));
        }
        Ok(LimitScope::Client { host: host.to_owned(), router })
    }
}

impl fmt::Display for LimitScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitScope::Service => f.write_str("$"),
            LimitScope::Each => f.write_str("$$"),
            LimitScope::Client { host, router: None } => f.write_str(host),
            LimitScope::Client { host, router: Some(id) } => write!(f, "{host}@{}", id.hyphenated()),
            LimitScope::Addr(net) => write_net(f, net),
        }
    }
}

impl RateLimit {
    /// Parses `SCOPE RATE`. A rate of zero or less is `Ok(None)`: GOST
    /// skips such a line.
    pub fn parse(line: &str) -> Result<Option<RateLimit>, LimitLineError> {
        let mut fields = line.split_whitespace();
        let scope = fields.next().ok_or(LimitLineError::Empty)?;
        let rate = fields.next().ok_or(LimitLineError::MissingRate)?;
        if fields.next().is_some() {
            return Err(LimitLineError::TooManyFields { expected: RATE_FORMAT });
        }
        let bad_scope = |reason| LimitLineError::BadScope { value: scope.to_owned(), reason };
        let scope = match scope {
            "$" => RateScope::Service,
            "$$" => RateScope::EachAddr,
            other => {
                RateScope::Addr(parse_net(other).ok_or_else(|| bad_scope("a scope is $, $$, an address or CIDR"))?)
            }
        };
        let per_second: f64 = rate.parse().map_err(|_| LimitLineError::BadRate {
            field: "rate",
            value: rate.to_owned(),
            reason: "not a number of connections per second, like 10 or 0.5",
        })?;
        if !per_second.is_finite() {
            return Err(LimitLineError::BadRate {
                field: "rate",
                value: rate.to_owned(),
                reason: "not a finite number",
            });
        }
        Ok((per_second > 0.0).then_some(RateLimit { scope, per_second }))
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.scope, self.per_second)
    }
}

impl fmt::Display for RateScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RateScope::Service => f.write_str("$"),
            RateScope::EachAddr => f.write_str("$$"),
            RateScope::Addr(net) => write_net(f, net),
        }
    }
}

/// An address (as a host prefix) or a CIDR.
fn parse_net(text: &str) -> Option<IpNet> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(IpNet::from(ip));
    }
    text.parse::<IpNet>().ok().map(|net| net.trunc())
}

/// A host prefix as the address alone, any other as a CIDR.
fn write_net(f: &mut fmt::Formatter<'_>, net: &IpNet) -> fmt::Result {
    if net.prefix_len() == net.max_prefix_len() { write!(f, "{}", net.addr()) } else { write!(f, "{net}") }
}

/// Parses a rate in GOST's units (see the module's documentation) into
/// bytes per second; `None` when it is zero or negative (unlimited).
pub fn parse_rate(text: &str) -> Result<Option<u64>, &'static str> {
    const HINT: &str = "not a rate like 100MB, 512KB, 1.5GB or 50Mbit";
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(None);
    }
    if rest.is_empty() {
        return Err(HINT);
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_end);
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(HINT);
        }
        let unit_end = after.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_end);
        let value: f64 = number.parse().map_err(|_| HINT)?;
        let scale = unit_scale(unit).ok_or(if unit.is_empty() {
            "a unit is needed: B, KB, MB, GB (1024-based) or Kbit, Mbit, Gbit"
        } else {
            "unknown unit: use B, KB, MB, GB, TB (1024-based, also KiB...) or bit, Kbit, Mbit, Gbit"
        })?;
        total += value * scale;
        rest = after;
    }
    if !total.is_finite() || total >= u64::MAX as f64 {
        return Err("rate too large");
    }
    // Whole bytes: a fraction of a byte per second is no limit worth keeping.
    let bytes = total as u64;
    Ok((!negative && bytes > 0).then_some(bytes))
}

/// Bytes per unit: GOST's (base 2, case-sensitive) and bits (base 10).
fn unit_scale(unit: &str) -> Option<f64> {
    const K: f64 = 1024.0;
    let bytes = match unit {
        "B" => Some(1.0),
        "KB" | "KiB" => Some(K),
        "MB" | "MiB" => Some(K * K),
        "GB" | "GiB" => Some(K * K * K),
        "TB" | "TiB" => Some(K * K * K * K),
        "PB" | "PiB" => Some(K * K * K * K * K),
        "EB" | "EiB" => Some(K * K * K * K * K * K),
        _ => None,
    };
    bytes.or_else(|| {
        let bits = match unit.to_ascii_lowercase().as_str() {
            "bit" => 1.0,
            "kbit" => 1e3,
            "mbit" => 1e6,
            "gbit" => 1e9,
            "tbit" => 1e12,
            _ => return None,
        };
        Some(bits / 8.0)
    })
}

/// A rate written back in the largest unit that shows it exactly.
struct Rate(Option<u64>);

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(bytes) = self.0 else { return f.write_str("0") };
        for (unit, scale) in [("TB", 1u64 << 40), ("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)] {
            if bytes % scale == 0 {
                return write!(f, "{}{unit}", bytes / scale);
            }
        }
        let bits = bytes * 8;
        for (unit, scale) in [("Gbit", 1_000_000_000u64), ("Mbit", 1_000_000)] {
            if bits % scale == 0 {
                return write!(f, "{}{unit}", bits / scale);
            }
        }
        write!(f, "{bytes}B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(host: &str, router: Option<&str>) -> LimitScope {
        LimitScope::Client { host: host.to_owned(), router: router.map(|r| Uuid::parse_str(r).unwrap()) }
    }

    #[test]
    fn gost_units_are_powers_of_1024_and_bits_of_1000() {
        assert_eq!(parse_rate("100MB"), Ok(Some(100 << 20)));
        assert_eq!(parse_rate("100MiB"), Ok(Some(100 << 20)));
        assert_eq!(parse_rate("512KB"), Ok(Some(512 << 10)));
        assert_eq!(parse_rate("1.5GB"), Ok(Some(3 << 29)));
        assert_eq!(parse_rate("1MB512KB"), Ok(Some((1 << 20) + (512 << 10))));
        assert_eq!(parse_rate("128B"), Ok(Some(128)));
        assert_eq!(parse_rate("50Mbit"), Ok(Some(6_250_000)));
        assert_eq!(parse_rate("50mbit"), Ok(Some(6_250_000)));
        assert_eq!(parse_rate("1Gbit"), Ok(Some(125_000_000)));
        assert_eq!(parse_rate("800bit"), Ok(Some(100)));
        assert_eq!(parse_rate("+1KB"), Ok(Some(1024)));
        // Zero and negative: unlimited, as GOST's docs say.
        assert_eq!(parse_rate("0"), Ok(None));
        assert_eq!(parse_rate("0MB"), Ok(None));
        assert_eq!(parse_rate("-1MB"), Ok(None));
        assert_eq!(parse_rate("3bit"), Ok(None), "less than a byte per second");
        // GOST's spelling: "kB" is SI and GOST refuses it, "mb" is not a unit.
        for bad in ["", "100", "MB", "kB", "mb", "10Mb", "1..5MB", ".MB", "1.5", "1MB 2", "10 MB", "1e3MB", "9EB9EB"] {
            assert!(parse_rate(bad).is_err(), "{bad:?} accepted: {:?}", parse_rate(bad));
        }
    }

    #[test]
    fn traffic_lines() {
        let line = TrafficLimit::parse("$ 100MB 100MB").unwrap();
        assert_eq!(
            line,
            TrafficLimit { scope: LimitScope::Service, input: Some(100 << 20), output: Some(100 << 20), burst: None }
        );
        let line = TrafficLimit::parse("$$\t10MB").unwrap();
        assert_eq!((line.scope, line.input, line.output), (LimitScope::Each, Some(10 << 20), None));
        let line = TrafficLimit::parse("192.168.0.0/16  1MB  5MB").unwrap();
        assert_eq!(line.scope, LimitScope::Addr("192.168.0.0/16".parse().unwrap()));
        let line = TrafficLimit::parse("192.168.1.1 512KB 1MB 64KB").unwrap();
        assert_eq!(line.scope, LimitScope::Addr("192.168.1.1/32".parse().unwrap()));
        assert_eq!(line.burst, Some(64 << 10));
        assert_eq!(
            TrafficLimit::parse("10.1.2.3/8 1MB").unwrap().scope,
            LimitScope::Addr("10.0.0.0/8".parse().unwrap())
        );
        assert_eq!(TrafficLimit::parse("fd00::/64 1MB").unwrap().scope, LimitScope::Addr("fd00::/64".parse().unwrap()));
        assert_eq!(TrafficLimit::parse("host-1 50Mbit 50Mbit").unwrap().scope, client("host-1", None));
        let id = "e87f56dd-fd57-4921-9ab8-a0847662daae";
        assert_eq!(
            TrafficLimit::parse(&format!("host-1@{} 1MB", id.to_uppercase())).unwrap().scope,
            client("host-1", Some(id))
        );
        // An input of 0 with an output: only the output is limited.
        let line = TrafficLimit::parse("$ 0 1MB").unwrap();
        assert_eq!((line.input, line.output), (None, Some(1 << 20)));

        assert_eq!(TrafficLimit::parse("   "), Err(LimitLineError::Empty));
        assert_eq!(TrafficLimit::parse("$"), Err(LimitLineError::MissingRate));
        assert!(matches!(TrafficLimit::parse("$ 1MB 1MB 1MB 1MB"), Err(LimitLineError::TooManyFields { .. })));
        assert!(matches!(TrafficLimit::parse("$ 1mb"), Err(LimitLineError::BadRate { field: "input", .. })));
        assert!(matches!(TrafficLimit::parse("$ 1MB x"), Err(LimitLineError::BadRate { field: "output", .. })));
        assert!(matches!(TrafficLimit::parse("$$$ 1MB"), Err(LimitLineError::BadScope { .. })));
        assert!(matches!(TrafficLimit::parse("h@not-a-uuid 1MB"), Err(LimitLineError::BadScope { .. })));
        assert!(matches!(TrafficLimit::parse(&format!("@{id} 1MB")), Err(LimitLineError::BadScope { .. })));
    }

    #[test]
    fn traffic_lines_print_back_as_they_parse() {
        for line in [
            "$ 100MB 100MB",
            "$$ 10MB",
            "10.0.0.0/8 1KB 5MB",
            "10.0.0.1 512KB 0 64KB",
            "host-1@e87f56dd-fd57-4921-9ab8-a0847662daae 50Mbit 50Mbit",
            "h 1000B",
        ] {
            let parsed = TrafficLimit::parse(line).unwrap();
            assert_eq!(parsed.line(), line);
            assert_eq!(TrafficLimit::parse(&parsed.line()).unwrap(), parsed);
        }
        assert_eq!(TrafficLimit::parse("$ 1048576B").unwrap().line(), "$ 1MB");
    }

    #[test]
    fn rate_lines() {
        assert_eq!(RateLimit::parse("$ 100"), Ok(Some(RateLimit { scope: RateScope::Service, per_second: 100.0 })));
        assert_eq!(RateLimit::parse("$$ 0.5").unwrap().unwrap().scope, RateScope::EachAddr);
        assert_eq!(
            RateLimit::parse("192.168.1.1 2").unwrap().unwrap().scope,
            RateScope::Addr("192.168.1.1/32".parse().unwrap())
        );
        assert_eq!(RateLimit::parse("10.0.0.0/8 5").unwrap().unwrap().to_string(), "10.0.0.0/8 5");
        assert_eq!(RateLimit::parse("$ 0"), Ok(None));
        assert_eq!(RateLimit::parse("$ -3"), Ok(None));
        assert_eq!(RateLimit::parse("$"), Err(LimitLineError::MissingRate));
        assert!(matches!(RateLimit::parse("$ 1 2"), Err(LimitLineError::TooManyFields { .. })));
        assert!(matches!(RateLimit::parse("host-1 5"), Err(LimitLineError::BadScope { .. })));
        assert!(matches!(RateLimit::parse("$ ten"), Err(LimitLineError::BadRate { .. })));
        assert!(matches!(RateLimit::parse("$ inf"), Err(LimitLineError::BadRate { .. })));
    }
}
