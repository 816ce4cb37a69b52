//! The registries a cluster keeps its hosts in: Redis (rgost's engine) and
//! GOST's SD HTTP plugin. Each runs as one task that owns this node's
//! registrations ([`crate::local`]) and its copy of the others'
//! ([`crate::mirror`]); the server talks to it through a channel, so no
//! packet and no handshake ever waits for the registry.

pub mod plugin;
pub mod redis;

use std::time::Duration;

/// Delay before reconnection attempt `n` (from 1): 0.25-0.5 s, 0.5-1 s, ...
/// up to 1-2 s, so a registry that comes back is used again within 2 s.
pub(crate) fn retry_delay(failures: u32) -> Duration {
    let first = Duration::from_millis(500);
    let cap = Duration::from_secs(2);
    let factor = 1u32.checked_shl(failures.saturating_sub(1).min(8)).unwrap_or(u32::MAX);
    let ceiling = first.saturating_mul(factor).min(cap);
    ceiling / 2 + (ceiling / 2).mul_f64(fastrand::f64())
}

/// `host:port` or `[v6]:port` split for a TCP address.
pub(crate) fn split_host_port(addr: &str) -> Option<(String, u16)> {
    let (host, port) = addr.trim().rsplit_once(':')?;
    let port = port.parse().ok()?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    (!host.is_empty()).then(|| (host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_delays() {
        assert_eq!(split_host_port("redis:6379"), Some(("redis".into(), 6379)));
        assert_eq!(split_host_port("[::1]:26379"), Some(("::1".into(), 26379)));
        assert_eq!(split_host_port(":1"), None);
        assert_eq!(split_host_port("x"), None);
        for n in 0..40 {
            assert!(retry_delay(n) <= Duration::from_secs(2));
        }
    }
}
