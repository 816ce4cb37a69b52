//! Reconnection delays: exponential with jitter, capped, reset after a healthy session.

use std::time::Duration;

/// First retry delay ceiling (the first retry happens within this).
pub const FIRST: Duration = Duration::from_millis(500);
/// Ceiling of any delay.
pub const CAP: Duration = Duration::from_secs(10);
/// Ceiling while the server actively refuses connections (it is restarting:
/// nothing listens yet). Probing costs it one RST, and a client must be back
/// within 2 s of the server listening again.
pub const SERVER_DOWN_CAP: Duration = Duration::from_millis(1500);
/// A session that lasted this long resets the backoff.
pub const HEALTHY_SESSION: Duration = Duration::from_secs(5);

/// Delay n (from 0) is uniformly random in `[c/2, c]` where
/// `c = min(CAP, FIRST * 2^n)`: 0.25-0.5 s, 0.5-1 s, 1-2 s, ... 5-10 s.
/// The jitter keeps many clients of one restarted server from reconnecting in lockstep.
#[derive(Debug, Default, Clone)]
pub struct Backoff {
    attempt: u32,
}

impl Backoff {
    /// The next delay; each call doubles the ceiling up to [`CAP`].
    pub fn next_delay(&mut self) -> Duration {
        self.next_delay_capped(CAP)
    }

    /// The next delay with its ceiling lowered to `cap` (still jittered).
    pub fn next_delay_capped(&mut self, cap: Duration) -> Duration {
        let ceiling = self.ceiling().min(cap);
        self.attempt = self.attempt.saturating_add(1);
        let half = ceiling / 2;
        half + half.mul_f64(fastrand::f64())
    }

    /// Back to the first delay.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(16)).unwrap_or(u32::MAX);
        FIRST.saturating_mul(factor).min(CAP)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_cap_and_resets() {
        let mut b = Backoff::default();
        let first = b.next_delay();
        assert!(first >= FIRST / 2 && first <= FIRST, "{first:?}");
        let mut last = first;
        for _ in 0..40 {
            last = b.next_delay();
            assert!(last <= CAP);
        }
        assert!(last >= CAP / 2);
        b.reset();
        assert!(b.next_delay() <= FIRST);
    }

    #[test]
    fn ceilings_double() {
        let mut b = Backoff::default();
        let ceilings: Vec<_> = (0..7)
            .map(|_| {
                let c = b.ceiling();
                b.next_delay();
                c.as_millis()
            })
            .collect();
        assert_eq!(ceilings, [500, 1000, 2000, 4000, 8000, 10000, 10000]);
    }
}
