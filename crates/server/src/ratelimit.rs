//! New connections per second (`rlimiters[]`), checked at accept.
//!
//! As in GOST: `$` is one bucket for the whole service; `$$` gives each
//! source address its own; an address or CIDR line gives each source
//! address in it its own bucket at that rate, instead of `$$`. A connection
//! is admitted when its address's bucket and the service's both have a
//! token. Each bucket holds one second of its rate plus one.
//!
//! The per-address buckets are bounded: a bucket that has filled up again
//! behaves like a new one and is forgotten when the table grows.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use ipnet::IpNet;
use rgost_config::{RateLimit, RateScope};

use crate::bucket::TokenBucket;
use crate::shaping::now;

/// Source addresses with a bucket before full ones are forgotten.
const MAX_ADDRS: usize = 65_536;

/// One `rlimiters[]` entry at run time.
#[derive(Debug)]
pub struct RateLimiter {
    name: String,
    state: Mutex<State>,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct RateRules {
    service: Option<f64>,
    each: Option<f64>,
    /// Longest prefix first.
    nets: Vec<(IpNet, f64)>,
}

#[derive(Debug, Default)]
struct State {
    rules: RateRules,
    service: Option<TokenBucket>,
    addrs: HashMap<IpAddr, TokenBucket>,
}

impl RateRules {
    /// Of two lines with one scope the first counts (sources come merged by
    /// priority, the highest first).
    fn new<'a>(lines: impl IntoIterator<Item = &'a RateLimit>) -> RateRules {
        let mut rules = RateRules::default();
        for line in lines {
            match line.scope {
                RateScope::Service => rules.service = rules.service.or(Some(line.per_second)),
                RateScope::EachAddr => rules.each = rules.each.or(Some(line.per_second)),
                RateScope::Addr(net) => {
                    if !rules.nets.iter().any(|(n, _)| *n == net) {
                        rules.nets.push((net, line.per_second));
                    }
                }
            }
        }
        rules.nets.sort_by_key(|(net, _)| std::cmp::Reverse(net.prefix_len()));
        rules
    }

    fn is_empty(&self) -> bool {
        self.service.is_none() && self.each.is_none() && self.nets.is_empty()
    }
}

impl State {
    fn new(rules: RateRules) -> State {
        State { service: rules.service.map(bucket), rules, addrs: HashMap::new() }
    }
}

fn bucket(per_second: f64) -> TokenBucket {
    // GOST: a burst of the rate, rounded down, plus one.
    TokenBucket::new(per_second, per_second.floor() + 1.0, now())
}

impl RateLimiter {
    /// A rate limiter with these lines; of two lines with one scope the
    /// first counts (sources come merged by priority, the highest first).
    pub fn new<'a>(name: &str, lines: impl IntoIterator<Item = &'a RateLimit>) -> RateLimiter {
        RateLimiter { name: name.to_owned(), state: Mutex::new(State::new(RateRules::new(lines))) }
    }

    /// Puts these lines in force (a data source changed). Different rules
    /// start every bucket afresh, as GOST's reload does; the same rules
    /// change nothing.
    pub fn replace<'a>(&self, lines: impl IntoIterator<Item = &'a RateLimit>) {
        let rules = RateRules::new(lines);
        let mut state = self.lock();
        if state.rules != rules {
            *state = State::new(rules);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The limiter's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether a new connection from `ip` is admitted now (and counts it).
    pub fn allow(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        let now = now();
        let mut state = self.lock();
        if state.rules.is_empty() {
            return true;
        }
        let rules = &state.rules;
        let per_addr = rules.nets.iter().find(|(net, _)| net.contains(&ip)).map(|(_, rate)| *rate).or(rules.each);
        // Check both before taking from either: a refused connection costs
        // no one else a token.
        let addr_ok = match per_addr {
            None => true,
            Some(rate) => {
                if !state.addrs.contains_key(&ip) && state.addrs.len() >= MAX_ADDRS {
                    state.addrs.retain(|_, b| !b.is_full(now));
                    if state.addrs.len() >= MAX_ADDRS {
                        // Every address is busy: start over rather than grow.
                        state.addrs.clear();
                    }
                }
                state.addrs.entry(ip).or_insert_with(|| bucket(rate)).has(1, now)
            }
        };
        let service_ok = state.service.as_mut().is_none_or(|b| b.has(1, now));
        if !(addr_ok && service_ok) {
            return false;
        }
        if let Some(b) = per_addr.and_then(|_| state.addrs.get_mut(&ip)) {
            b.try_take(1, now);
        }
        if let Some(b) = state.service.as_mut() {
            b.try_take(1, now);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(lines: &[&str]) -> RateLimiter {
        let lines: Vec<RateLimit> = lines.iter().filter_map(|l| RateLimit::parse(l).unwrap()).collect();
        RateLimiter::new("r", &lines)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn admitted(l: &RateLimiter, from: &str, tries: usize) -> usize {
        (0..tries).filter(|_| l.allow(ip(from))).count()
    }

    #[test]
    fn each_address_has_its_own_burst_of_rate_plus_one() {
        let l = limiter(&["$$ 2"]);
        assert_eq!(admitted(&l, "10.0.0.1", 10), 3);
        assert_eq!(admitted(&l, "10.0.0.2", 10), 3, "another address is not affected");
        assert_eq!(admitted(&l, "::ffff:10.0.0.1", 1), 0, "a mapped IPv4 address is that address");
    }

    #[test]
    fn an_address_line_replaces_dollar_dollar_and_dollar_caps_everyone() {
        let l = limiter(&["$ 5", "$$ 1", "10.0.0.0/8 3"]);
        assert_eq!(admitted(&l, "10.0.0.1", 10), 4, "the CIDR's rate, not $$'s");
        assert_eq!(admitted(&l, "192.0.2.1", 10), 2, "the rest of $'s 6 tokens");
        assert_eq!(admitted(&l, "192.0.2.2", 10), 0, "$ is spent");
    }

    #[test]
    fn a_refusal_costs_the_other_bucket_nothing() {
        let l = limiter(&["$ 3", "$$ 1"]);
        assert_eq!(admitted(&l, "10.0.0.1", 10), 2);
        // $ had 4 tokens; the eight refusals above took none of them.
        assert_eq!(admitted(&l, "10.0.0.2", 10), 2);
    }

    #[test]
    fn no_lines_admit_everyone_and_new_lines_start_afresh() {
        let l = limiter(&[]);
        assert_eq!(admitted(&l, "10.0.0.1", 1000), 1000);
        let one = [RateLimit::parse("$$ 1").unwrap().unwrap()];
        l.replace(&one);
        assert_eq!(admitted(&l, "10.0.0.1", 10), 2);
        l.replace(&one);
        assert_eq!(admitted(&l, "10.0.0.1", 10), 0, "the same lines keep the buckets");
        l.replace(&[RateLimit::parse("$$ 2").unwrap().unwrap()]);
        assert_eq!(admitted(&l, "10.0.0.1", 10), 3);
    }

    #[test]
    fn the_address_table_is_bounded() {
        let l = limiter(&["$$ 1000000"]);
        for n in 0..(MAX_ADDRS as u32 + 10) {
            assert!(l.allow(IpAddr::from(n.to_be_bytes())));
        }
        assert!(l.lock().addrs.len() <= MAX_ADDRS);
    }
}
