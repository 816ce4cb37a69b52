//! Counters that outlive a reload: data-source reads and plugin lookups,
//! kept per (kind, name) so that a reload, which rebuilds the routers,
//! ingresses and authers, does not reset them. Read when metrics are
//! scraped; nothing here is on the packet path.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rgost_config::Config;
use rgost_sources::ReloadStats;

/// Upper bounds (seconds) of the plugin lookup latency histogram's buckets.
pub const LOOKUP_BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// What a counter belongs to: `router`, `ingress`, `auther`, `limiter` or
/// `rlimiter`, and its name.
pub type Key = (&'static str, String);

/// One plugin's lookups.
#[derive(Debug, Default)]
pub struct PluginStats {
    ok: AtomicU64,
    failed: AtomicU64,
    /// Lookups per bucket (not cumulative); the last one is above every bound.
    buckets: [AtomicU64; LOOKUP_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

/// A plugin's lookups at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginCounts {
    /// Lookups answered (a "no route" answer included).
    pub ok: u64,
    /// Lookups that failed (plugin down, slow, bad answer).
    pub failed: u64,
    /// The time all lookups took, in seconds.
    pub sum_seconds: f64,
    /// Lookups per bucket, by its upper bound ([`LOOKUP_BUCKETS`], then
    /// +Inf); each counts only the lookups above the previous bound, as
    /// Prometheus encoders take them (they add them up).
    pub buckets: Vec<(f64, u64)>,
}

impl PluginStats {
    /// Counts one lookup that took `elapsed`.
    pub fn observe(&self, elapsed: Duration, ok: bool) {
        let counter = if ok { &self.ok } else { &self.failed };
        counter.fetch_add(1, Ordering::Relaxed);
        let secs = elapsed.as_secs_f64();
        let bucket = LOOKUP_BUCKETS.iter().position(|bound| secs <= *bound).unwrap_or(LOOKUP_BUCKETS.len());
        if let Some(b) = self.buckets.get(bucket) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> PluginCounts {
        let bounds = LOOKUP_BUCKETS.iter().copied().chain([f64::INFINITY]);
        let buckets = bounds.zip(&self.buckets).map(|(bound, count)| (bound, count.load(Ordering::Relaxed))).collect();
        // Microseconds as f64: exact far beyond any uptime.
        #[allow(clippy::cast_precision_loss)]
        let sum_seconds = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        PluginCounts {
            ok: self.ok.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            sum_seconds,
            buckets,
        }
    }
}

/// The counters of one router service's sources and plugins.
#[derive(Debug, Default)]
pub struct Meters {
    sources: Mutex<BTreeMap<Key, Arc<ReloadStats>>>,
    plugins: Mutex<BTreeMap<Key, Arc<PluginStats>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Meters {
    /// The data-source counters of `kind` `name` (created on first use).
    pub fn source(&self, kind: &'static str, name: &str) -> Arc<ReloadStats> {
        Arc::clone(lock(&self.sources).entry((kind, name.to_owned())).or_default())
    }

    /// The plugin counters of `kind` `name` (created on first use).
    pub fn plugin(&self, kind: &'static str, name: &str) -> Arc<PluginStats> {
        Arc::clone(lock(&self.plugins).entry((kind, name.to_owned())).or_default())
    }

    /// Every data source's counters, by (kind, name).
    pub fn sources(&self) -> Vec<(Key, Arc<ReloadStats>)> {
        lock(&self.sources).iter().map(|(k, v)| (k.clone(), Arc::clone(v))).collect()
    }

    /// Every plugin's counters, by (kind, name).
    pub fn plugins(&self) -> Vec<(Key, Arc<PluginStats>)> {
        lock(&self.plugins).iter().map(|(k, v)| (k.clone(), Arc::clone(v))).collect()
    }

    /// Forgets the counters of what `config` no longer defines.
    pub fn retain(&self, config: &Config) {
        let defined = |(kind, name): &Key| match *kind {
            "router" => config.routers.iter().any(|r| &r.name == name),
            "ingress" => config.ingresses.iter().any(|i| &i.name == name),
            "auther" => config.authers.iter().any(|a| &a.name == name),
            "limiter" => config.limiters.iter().any(|l| &l.name == name),
            "rlimiter" => config.rlimiters.iter().any(|l| &l.name == name),
            _ => false,
        };
        lock(&self.sources).retain(|k, _| defined(k));
        lock(&self.plugins).retain(|k, _| defined(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_fall_in_buckets() {
        let stats = PluginStats::default();
        stats.observe(Duration::from_micros(500), true);
        stats.observe(Duration::from_millis(30), true);
        stats.observe(Duration::from_secs(9), false);
        let counts = stats.snapshot();
        assert_eq!((counts.ok, counts.failed), (2, 1));
        assert!((counts.sum_seconds - 9.0305).abs() < 1e-9, "{}", counts.sum_seconds);
        assert_eq!(counts.buckets.first(), Some(&(0.001, 1)));
        assert_eq!(counts.buckets.iter().find(|(b, _)| *b == 0.05).map(|(_, n)| *n), Some(1));
        assert_eq!(counts.buckets.last(), Some(&(f64::INFINITY, 1)));
        assert_eq!(counts.buckets.iter().map(|(_, n)| n).sum::<u64>(), 3);
    }
}
