//! A token bucket over a clock the caller gives: no timer, no lock, no I/O.
//!
//! Tokens are bytes (traffic limits) or connections (rate limits). The
//! bucket fills at `rate` tokens per second up to `burst`. Traffic is
//! shaped with [`TokenBucket::take`], which always takes and may leave the
//! bucket in debt: the caller sends what it has and then waits until the
//! debt is paid, so a packet larger than the bucket still passes and the
//! long-run rate is exact. Admission is checked with
//! [`TokenBucket::try_take`], which takes only what is there.
//!
//! Time is a [`Duration`] since any fixed origin, always from the same
//! monotonic clock; a time earlier than the last one seen counts as no time.

use std::time::Duration;

/// A token bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBucket {
    /// Tokens added per second (> 0).
    rate: f64,
    /// Most tokens held.
    burst: f64,
    /// Tokens now; negative when in debt.
    tokens: f64,
    /// When `tokens` was last brought up to date.
    last: Duration,
}

impl TokenBucket {
    /// A full bucket of `burst` tokens filling at `rate` per second. A rate
    /// or burst that is not positive is raised to the smallest usable one.
    pub fn new(rate: f64, burst: f64, now: Duration) -> TokenBucket {
        let (rate, burst) = sane(rate, burst);
        TokenBucket { rate, burst, tokens: burst, last: now }
    }

    /// Tokens per second.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// The bucket's size.
    pub fn burst(&self) -> f64 {
        self.burst
    }

    /// Changes the rate and size, keeping the tokens earned so far (at most
    /// the new size) and any debt.
    pub fn set(&mut self, rate: f64, burst: f64, now: Duration) {
        self.refill(now);
        (self.rate, self.burst) = sane(rate, burst);
        self.tokens = self.tokens.min(self.burst);
    }

    /// Takes `n` tokens, going into debt if there are fewer; returns how
    /// long until the debt is paid (zero when there was enough).
    pub fn take(&mut self, n: u64, now: Duration) -> Duration {
        self.refill(now);
        self.tokens -= n as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            // Rounded up to the next microsecond, so that waiting this long
            // always pays the debt off.
            Duration::from_micros((-self.tokens / self.rate * 1e6).ceil() as u64)
        }
    }

    /// Takes `n` tokens if there are that many; otherwise takes nothing.
    pub fn try_take(&mut self, n: u64, now: Duration) -> bool {
        self.refill(now);
        if self.tokens >= n as f64 {
            self.tokens -= n as f64;
            true
        } else {
            false
        }
    }

    /// Whether `n` tokens are there at `now`, taking none.
    pub fn has(&mut self, n: u64, now: Duration) -> bool {
        self.refill(now);
        self.tokens >= n as f64
    }

    /// Whether the bucket is full at `now`: it then behaves exactly like a
    /// new one, so whoever keeps many buckets may forget it.
    pub fn is_full(&self, now: Duration) -> bool {
        self.tokens + now.saturating_sub(self.last).as_secs_f64() * self.rate >= self.burst
    }

    fn refill(&mut self, now: Duration) {
        if now > self.last {
            let earned = (now - self.last).as_secs_f64() * self.rate;
            self.tokens = (self.tokens + earned).min(self.burst);
            self.last = now;
        }
    }
}

/// A usable rate and burst: positive and finite.
fn sane(rate: f64, burst: f64) -> (f64, f64) {
    let rate = if rate.is_finite() && rate > 0.0 { rate } else { f64::MIN_POSITIVE };
    let burst = if burst.is_finite() && burst >= 1.0 { burst } else { 1.0 };
    (rate, burst)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn starts_full_then_goes_into_debt_and_says_how_long_to_wait() {
        // 1000 bytes per second, 100 bytes of burst.
        let mut b = TokenBucket::new(1000.0, 100.0, ms(0));
        assert_eq!(b.take(100, ms(0)), Duration::ZERO);
        // 50 more: 50 in debt, paid in 50 ms.
        assert_eq!(b.take(50, ms(0)), ms(50));
        // At 50 ms the debt is paid; 10 ms later there are 10 tokens.
        assert_eq!(b.take(10, ms(60)), Duration::ZERO);
        // A packet larger than the bucket passes, at the price of a wait.
        assert_eq!(b.take(1500, ms(60)), ms(1500));
    }

    #[test]
    fn the_long_run_rate_is_the_rate() {
        // A sender that always has 1400-byte packets and waits as told.
        let rate = 6_250_000.0; // 50 Mbit/s
        let mut b = TokenBucket::new(rate, 625_000.0, Duration::ZERO);
        let mut now = Duration::ZERO;
        let mut sent = 0u64;
        while now < Duration::from_secs(10) {
            sent += 1400;
            now += b.take(1400, now);
        }
        // 10 s of the rate plus the initial burst, within one packet.
        let expected = rate * 10.0 + 625_000.0;
        assert!((sent as f64 - expected).abs() <= 1400.0 * 2.0, "sent {sent}, expected {expected}");
    }

    #[test]
    fn never_holds_more_than_its_burst() {
        let mut b = TokenBucket::new(1000.0, 100.0, ms(0));
        // An hour idle earns no more than the burst.
        assert!(b.try_take(100, Duration::from_secs(3600)));
        assert!(!b.try_take(1, Duration::from_secs(3600)));
        assert!(b.try_take(1, Duration::from_secs(3600) + ms(1)));
    }

    #[test]
    fn try_take_takes_nothing_when_short() {
        // GOST's rate limiter: r per second, a burst of r + 1.
        let mut b = TokenBucket::new(2.0, 3.0, ms(0));
        assert!(b.try_take(1, ms(0)));
        assert!(b.try_take(1, ms(0)));
        assert!(b.try_take(1, ms(0)));
        assert!(!b.try_take(1, ms(0)));
        assert!(!b.has(1, ms(400)), "0.8 tokens");
        assert!(!b.try_take(1, ms(400)), "0.8 tokens");
        assert!(b.has(1, ms(500)));
        assert!(b.try_take(1, ms(500)));
        assert!(!b.try_take(1, ms(500)));
    }

    #[test]
    fn time_going_backwards_earns_nothing() {
        let mut b = TokenBucket::new(1000.0, 100.0, ms(100));
        assert_eq!(b.take(100, ms(100)), Duration::ZERO);
        assert_eq!(b.take(10, ms(50)), ms(10));
    }

    #[test]
    fn full_means_like_new() {
        let mut b = TokenBucket::new(10.0, 5.0, ms(0));
        assert!(b.is_full(ms(0)));
        b.take(5, ms(0));
        assert!(!b.is_full(ms(499)));
        assert!(b.is_full(ms(500)));
    }

    #[test]
    fn set_keeps_debt_and_caps_tokens() {
        let mut b = TokenBucket::new(1000.0, 1000.0, ms(0));
        b.set(100.0, 10.0, ms(0));
        assert_eq!((b.rate(), b.burst()), (100.0, 10.0));
        assert!(b.try_take(10, ms(0)));
        assert!(!b.try_take(1, ms(0)));
        assert_eq!(b.take(100, ms(0)), ms(1000));
        b.set(1000.0, 1000.0, ms(0));
        assert_eq!(b.take(0, ms(0)), ms(100), "the debt stays, paid at the new rate");
    }

    #[test]
    fn unusable_rates_are_made_usable() {
        let mut b = TokenBucket::new(0.0, 0.0, ms(0));
        assert!(b.rate() > 0.0 && b.burst() >= 1.0);
        assert!(b.try_take(1, ms(0)));
        let mut b = TokenBucket::new(f64::NAN, f64::INFINITY, ms(0));
        assert!(b.rate() > 0.0 && b.burst() == 1.0);
        assert!(b.take(10, ms(0)) > Duration::from_secs(1));
    }
}
