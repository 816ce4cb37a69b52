//! Which of a hop's nodes to connect to: GOST's selector (`strategy`,
//! `maxFails`, `failTimeout`) over the router servers of a cluster.
//!
//! A node that failed `maxFails` times (a connection refused or failed, or
//! a session lost) is skipped for `failTimeout`; when every node is
//! skipped, all are tried anyway (a client has nothing better to do). Time
//! is an argument, so tests drive it.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

use rgost_config::{Selector, Strategy};
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, Default)]
struct Mark {
    fails: u32,
    last: Option<Instant>,
}

/// Picks nodes by index.
#[derive(Debug)]
pub struct NodeSelector {
    strategy: Strategy,
    max_fails: u32,
    fail_timeout: Duration,
    marks: Vec<Mark>,
    /// Round-robin position.
    next: usize,
    /// Where the hash strategy starts.
    home: usize,
}

impl NodeSelector {
    /// A selector over `nodes` nodes for a client registering as `host`.
    pub fn new(selector: &Selector, nodes: usize, host: &str) -> NodeSelector {
        let mut hasher = DefaultHasher::new();
        host.hash(&mut hasher);
        let home = if nodes == 0 { 0 } else { (hasher.finish() % nodes as u64) as usize };
        NodeSelector {
            strategy: selector.strategy,
            max_fails: selector.max_fails.max(1),
            fail_timeout: selector.fail_timeout,
            marks: vec![Mark::default(); nodes],
            next: 0,
            home,
        }
    }

    /// The node to try next among those not `tried` yet in this round;
    /// `None` when every node was tried.
    pub fn pick(&mut self, now: Instant, tried: &[bool]) -> Option<usize> {
        let n = self.marks.len();
        let untried: Vec<usize> = (0..n).filter(|i| !tried.get(*i).copied().unwrap_or(false)).collect();
        if untried.is_empty() {
            return None;
        }
        let alive: Vec<usize> = untried.iter().copied().filter(|i| self.alive(*i, now)).collect();
        let candidates = if alive.is_empty() { untried } else { alive };
        let pick = match self.strategy {
            Strategy::RoundRobin => {
                // The first candidate at or after the round-robin position.
                let pick = (0..n).map(|k| (self.next + k) % n).find(|i| candidates.contains(i));
                self.next = pick.map_or(self.next, |i| (i + 1) % n);
                pick
            }
            Strategy::Random => candidates.get(fastrand::usize(..candidates.len())).copied(),
            Strategy::Fifo => candidates.first().copied(),
            Strategy::Hash => (0..n).map(|k| (self.home + k) % n).find(|i| candidates.contains(i)),
        };
        pick.or_else(|| candidates.first().copied())
    }

    /// Node `i` failed (refused, failed, or lost its session).
    pub fn failed(&mut self, i: usize, now: Instant) {
        if let Some(mark) = self.marks.get_mut(i) {
            mark.fails = mark.fails.saturating_add(1);
            mark.last = Some(now);
        }
    }

    /// Node `i` took a session: its failures are forgotten.
    pub fn succeeded(&mut self, i: usize) {
        if let Some(mark) = self.marks.get_mut(i) {
            *mark = Mark::default();
        }
    }

    fn alive(&self, i: usize, now: Instant) -> bool {
        self.marks.get(i).is_none_or(|m| {
            m.fails < self.max_fails
                || m.last.is_none_or(|last| now.saturating_duration_since(last) >= self.fail_timeout)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selector(strategy: Strategy, max_fails: u32) -> Selector {
        Selector { strategy, max_fails, fail_timeout: Duration::from_secs(10) }
    }

    /// The nodes one round tries, in order, when every attempt fails.
    fn round(s: &mut NodeSelector, now: Instant) -> Vec<usize> {
        let mut tried = vec![false; s.marks.len()];
        let mut order = Vec::new();
        while let Some(i) = s.pick(now, &tried) {
            tried[i] = true;
            order.push(i);
        }
        order
    }

    #[tokio::test(start_paused = true)]
    async fn fifo_keeps_the_first_node_until_it_fails_and_comes_back_after_the_timeout() {
        let t = Instant::now();
        let mut s = NodeSelector::new(&selector(Strategy::Fifo, 1), 3, "h");
        assert_eq!(s.pick(t, &[false; 3]), Some(0));
        assert_eq!(s.pick(t, &[false; 3]), Some(0), "sticks to the first");
        s.failed(0, t);
        assert_eq!(s.pick(t, &[false; 3]), Some(1), "a failed node is skipped");
        assert_eq!(s.pick(t, &[false, true, false]), Some(2));
        assert_eq!(s.pick(t, &[false, true, true]), Some(0), "all others tried: the failed one too");
        assert_eq!(s.pick(t, &[true; 3]), None);
        assert_eq!(s.pick(t + Duration::from_secs(10), &[false; 3]), Some(0), "back after failTimeout");
        s.failed(0, t);
        s.succeeded(0);
        assert_eq!(s.pick(t, &[false; 3]), Some(0));
    }

    #[tokio::test(start_paused = true)]
    async fn round_robin_and_max_fails() {
        let t = Instant::now();
        let mut s = NodeSelector::new(&selector(Strategy::RoundRobin, 2), 3, "h");
        assert_eq!(
            [s.pick(t, &[false; 3]), s.pick(t, &[false; 3]), s.pick(t, &[false; 3])],
            [Some(0), Some(1), Some(2)]
        );
        s.failed(0, t);
        assert_eq!(s.pick(t, &[false; 3]), Some(0), "one failure of two allowed");
        s.failed(0, t);
        assert_eq!(round(&mut s, t), vec![1, 2, 0], "a round tries every node, the failing one last");
    }

    #[tokio::test(start_paused = true)]
    async fn hash_sticks_per_host_and_random_stays_among_the_nodes() {
        let t = Instant::now();
        let homes: Vec<Option<usize>> = (0..20)
            .map(|i| NodeSelector::new(&selector(Strategy::Hash, 1), 3, &format!("host-{i}")).pick(t, &[false; 3]))
            .collect();
        assert!(homes.iter().all(|h| h.is_some_and(|i| i < 3)));
        assert!(homes.iter().collect::<std::collections::HashSet<_>>().len() > 1, "hosts spread over nodes");
        let mut s = NodeSelector::new(&selector(Strategy::Hash, 1), 3, "host-1");
        let home = s.pick(t, &[false; 3]).unwrap();
        assert_eq!(s.pick(t, &[false; 3]), Some(home));
        s.failed(home, t);
        assert_ne!(s.pick(t, &[false; 3]), Some(home));
        let mut r = NodeSelector::new(&selector(Strategy::Random, 1), 3, "h");
        let mut order = round(&mut r, t);
        order.sort_unstable();
        assert_eq!(order, vec![0, 1, 2]);
        assert_eq!(NodeSelector::new(&selector(Strategy::Fifo, 1), 0, "h").pick(t, &[]), None);
    }
}
