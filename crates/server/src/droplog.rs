//! Dropped packets in the log: the first drops of each (namespace, reason)
//! with an example destination at info, then at most one line per
//! (namespace, reason) every [`INTERVAL`] with the count since the last one,
//! and a summary of every drop once a minute. The metrics are the full view.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use rgost_relay::TunnelId;
use tokio::time::Instant;

use crate::stats::{DropCounts, DropReason};

/// How often the drops of all namespaces are summed up in one line.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(60);
/// At most one line per (namespace, reason) this often.
pub const INTERVAL: Duration = Duration::from_secs(10);
/// A reader hands its drops over at most this often (the first at once).
const READER_FLUSH: Duration = Duration::from_secs(1);
/// (namespace, reason) pairs remembered; beyond, the memory starts over.
const MAX_KEYS: usize = 4096;

/// The shared rate limiter.
#[derive(Debug, Default)]
pub struct DropLog {
    keys: Mutex<HashMap<(TunnelId, DropReason), Key>>,
}

#[derive(Debug)]
struct Key {
    /// When a line was last written.
    logged: Instant,
    /// Drops since then.
    pending: u64,
}

impl DropLog {
    fn note(&self, namespace: TunnelId, notes: &DropNotes, now: Instant) {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if keys.len() >= MAX_KEYS {
            keys.clear();
        }
        for reason in DropReason::ALL {
            let count = notes.counts.get(reason);
            if count == 0 {
                continue;
            }
            let example = notes.examples.get(reason.index()).copied().flatten();
            match keys.get_mut(&(namespace, reason)) {
                None => {
                    keys.insert((namespace, reason), Key { logged: now, pending: 0 });
                    log(namespace, reason, count, example, true);
                }
                Some(key) => {
                    key.pending += count;
                    if now.duration_since(key.logged) >= INTERVAL {
                        log(namespace, reason, key.pending, example, false);
                        key.logged = now;
                        key.pending = 0;
                    }
                }
            }
        }
    }
}

fn log(namespace: TunnelId, reason: DropReason, count: u64, example: Option<IpAddr>, first: bool) {
    let dst = example.map_or_else(|| "-".to_owned(), |a| a.to_string());
    if first {
        tracing::info!(router = %namespace, reason = reason.name(), %dst, count, "packets dropped (first in this namespace for this reason; more are counted, one line per 10 s)");
    } else {
        tracing::info!(router = %namespace, reason = reason.name(), %dst, count, "packets dropped in the last 10 s or more");
    }
}

/// One reader's drops not yet handed to the [`DropLog`].
#[derive(Debug)]
pub struct DropNotes {
    counts: DropCounts,
    examples: [Option<IpAddr>; DropReason::COUNT],
    flushed: Option<Instant>,
}

impl Default for DropNotes {
    fn default() -> Self {
        DropNotes { counts: DropCounts::default(), examples: [None; DropReason::COUNT], flushed: None }
    }
}

impl DropNotes {
    /// Whether an example destination for `reason` is still wanted.
    pub fn wants_example(&self, reason: DropReason) -> bool {
        self.examples.get(reason.index()).is_some_and(Option::is_none)
    }

    /// Records an example destination for `reason`.
    pub fn example(&mut self, reason: DropReason, dst: IpAddr) {
        if let Some(slot) = self.examples.get_mut(reason.index()) {
            *slot = Some(dst);
        }
    }

    /// Adds a batch's drops; hands them to `log` when due.
    pub fn add(&mut self, counts: &DropCounts, log: &DropLog, namespace: TunnelId) {
        let mut any = false;
        for (sum, n) in self.counts.0.iter_mut().zip(counts.0) {
            *sum += n;
            any |= n > 0;
        }
        if !any {
            return;
        }
        let now = Instant::now();
        if self.flushed.is_none_or(|at| now.duration_since(at) >= READER_FLUSH) {
            log.note(namespace, self, now);
            *self = DropNotes { flushed: Some(now), ..DropNotes::default() };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn first_drops_at_once_then_one_line_per_interval() {
        let log = DropLog::default();
        let ns = TunnelId::ZERO;
        let mut counts = DropCounts::default();
        counts.add(DropReason::NoRoute);
        let mut notes = DropNotes::default();
        notes.example(DropReason::NoRoute, "10.9.9.9".parse().unwrap());
        notes.add(&counts, &log, ns);
        let pending = |log: &DropLog| log.keys.lock().unwrap().get(&(ns, DropReason::NoRoute)).map(|k| k.pending);
        assert_eq!(pending(&log), Some(0), "the first drop is logged at once");
        // Within a second: kept by the reader.
        notes.add(&counts, &log, ns);
        assert_eq!(pending(&log), Some(0));
        tokio::time::advance(READER_FLUSH).await;
        notes.add(&counts, &log, ns);
        assert_eq!(pending(&log), Some(2), "handed over, not yet logged");
        tokio::time::advance(INTERVAL).await;
        notes.add(&counts, &log, ns);
        assert_eq!(pending(&log), Some(0), "logged after the interval");
    }
}
