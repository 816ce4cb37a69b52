//! Loading at start and reloading every `reload` period.

use std::fmt;
use std::sync::Arc;

use rgost_config::Sources;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::fetch::{FetchResult, Fetched, Fetcher};
use crate::{Entry, ReloadStats, SourceError, merge};

/// The result of [`Reloader::load_initial`].
#[derive(Debug)]
pub struct InitialLoad {
    /// The merged entries (sources that failed contribute nothing).
    pub entries: Vec<Entry>,
    /// The sources that failed; the caller decides whether that is fatal.
    /// They are not logged by the reloader (a later failure of the same
    /// source is not logged again until it has recovered).
    pub errors: Vec<SourceError>,
}

/// Keeps a router's, ingress's or auther's entries up to date from its data
/// sources.
///
/// Each source keeps its last good data when a read fails, so one broken
/// source does not drop the others' entries nor its own earlier ones. A
/// read that yields no valid entry (see [`Reloader::with_validity`]) is a
/// failure too: an empty or truncated file, or a redis restarted without
/// its key, never empties a router. A failure is logged once per streak: a warning on the first failure, an
/// info "recovered" when the source works again, nothing in between. Lines
/// that do not parse are logged (with the source and line) whenever the set
/// of bad lines of a source changes.
pub struct Reloader {
    name: String,
    sources: Sources,
    inline: Vec<Entry>,
    fetcher: Fetcher,
    file: Slot,
    redis: Slot,
    http: Slot,
    /// What the caller was last given.
    applied: Option<Vec<Entry>>,
    /// Whether the caller can take an entry.
    valid: Validity,
    /// Reads by result, for metrics.
    stats: Arc<ReloadStats>,
}

/// Decides whether an entry is usable (a route that parses, an endpoint that is a UUID).
type Validity = Arc<dyn Fn(&Entry) -> bool + Send + Sync>;

/// One source's state.
#[derive(Debug, Default)]
struct Slot {
    last_good: Option<Fetched>,
    failing: bool,
}

/// Which source a log line is about.
#[derive(Debug, Clone, Copy)]
enum Which {
    File,
    Redis,
    Http,
}

impl fmt::Display for Which {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::File => "file",
            Self::Redis => "redis",
            Self::Http => "http",
        })
    }
}

impl Reloader {
    /// A reloader for the entries named `name` (used in log lines), reading
    /// `sources` over the `inline` entries from the config.
    pub fn new(name: impl Into<String>, sources: Sources, inline: Vec<Entry>) -> Self {
        Self {
            name: name.into(),
            sources,
            inline,
            fetcher: Fetcher::new(),
            file: Slot::default(),
            redis: Slot::default(),
            http: Slot::default(),
            applied: None,
            valid: Arc::new(|_| true),
            stats: Arc::default(),
        }
    }

    /// Counts reads in `stats` (shared with whoever reports them).
    pub fn with_stats(mut self, stats: Arc<ReloadStats>) -> Self {
        self.stats = stats;
        self
    }

    /// Counts each source's read in the stats.
    fn count(&self, result: &FetchResult) {
        for (i, outcome) in [&result.file, &result.redis, &result.http].into_iter().enumerate() {
            if let Some(outcome) = outcome {
                self.stats.record(i, outcome.is_ok());
            }
        }
    }

    /// Counts only entries `valid` accepts: a source whose every entry it
    /// rejects (or that has none) keeps its last good entries.
    pub fn with_validity(mut self, valid: impl Fn(&Entry) -> bool + Send + Sync + 'static) -> Self {
        self.valid = Arc::new(valid);
        self
    }

    /// Reads lines in `format` (limit lines have more than two fields).
    pub fn with_format(mut self, format: crate::LineFormat) -> Self {
        self.fetcher = Fetcher::with_format(format);
        self
    }

    /// A successful read with no valid entry becomes [`SourceError::NoValidEntry`].
    fn judge(&self, result: FetchResult) -> FetchResult {
        let describe = |which: Which| {
            match which {
                Which::File => self.sources.file.as_ref().map(|f| format!("file {}", f.path.display())),
                Which::Redis => self.sources.redis.as_ref().map(|r| format!("redis {} key {}", r.addr, r.key)),
                Which::Http => self.sources.http.as_ref().map(|h| format!("http {}", h.url)),
            }
            .unwrap_or_else(|| which.to_string())
        };
        let judge = |which: Which, outcome: Option<Result<Fetched, SourceError>>| match outcome {
            Some(Ok(fetched)) if !fetched.entries.iter().any(|e| (self.valid)(e)) => {
                Some(Err(SourceError::NoValidEntry {
                    source_name: describe(which),
                    entries: fetched.entries.len(),
                    bad: fetched.bad.len(),
                }))
            }
            other => other,
        };
        FetchResult {
            file: judge(Which::File, result.file),
            redis: judge(Which::Redis, result.redis),
            http: judge(Which::Http, result.http),
        }
    }

    /// Reads every source once and returns the merged entries with the
    /// errors, for the caller to apply (and to warn about or fail on). The
    /// returned entries count as applied: a later [`reload`](Self::reload)
    /// reports only changes against them.
    pub async fn load_initial(&mut self) -> InitialLoad {
        let fetched = self.fetcher.fetch(&self.sources).await;
        let result = self.judge(fetched);
        self.count(&result);
        let mut errors = Vec::new();
        let name = self.name.as_str();
        for (which, slot, outcome) in slots(&mut self.file, &mut self.redis, &mut self.http, result) {
            match outcome {
                Some(Ok(fetched)) => {
                    log_bad_lines(name, which, &fetched, None);
                    slot.last_good = Some(fetched);
                }
                Some(Err(error)) => {
                    slot.failing = true;
                    errors.push(error);
                }
                None => {}
            }
        }
        let entries = self.current();
        self.applied = Some(entries.clone());
        InitialLoad { entries, errors }
    }

    /// Reads every source again. Returns the merged entries when they
    /// differ from what was last returned (by this or by
    /// [`load_initial`](Self::load_initial)), `None` when nothing changed.
    pub async fn reload(&mut self) -> Option<Vec<Entry>> {
        let fetched = self.fetcher.fetch(&self.sources).await;
        let result = self.judge(fetched);
        self.count(&result);
        let name = self.name.as_str();
        for (which, slot, outcome) in slots(&mut self.file, &mut self.redis, &mut self.http, result) {
            match outcome {
                Some(Ok(fetched)) => {
                    if slot.failing {
                        tracing::info!(name, source = %which, "data source recovered");
                        slot.failing = false;
                    }
                    log_bad_lines(name, which, &fetched, slot.last_good.as_ref());
                    slot.last_good = Some(fetched);
                }
                Some(Err(error)) if !slot.failing => {
                    tracing::warn!(
                        name,
                        source = %which,
                        keeping = slot.last_good.as_ref().map_or(0, |f| f.entries.len()),
                        "data source failed, keeping its last good entries: {error}"
                    );
                    slot.failing = true;
                }
                // Still failing: already reported for this streak.
                Some(Err(_)) | None => {}
            }
        }
        let merged = self.current();
        if self.applied.as_ref() == Some(&merged) {
            return None;
        }
        self.applied = Some(merged.clone());
        Some(merged)
    }

    /// The merged entries from each source's last good data.
    pub fn current(&self) -> Vec<Entry> {
        let take = |slot: &Slot| slot.last_good.as_ref().map(|f| f.entries.clone()).unwrap_or_default();
        merge(self.inline.clone(), take(&self.file), take(&self.redis), take(&self.http))
    }

    /// Reloads every `reload` period until `shutdown`, calling `apply` with
    /// the merged entries each time they change. Returns at once when the
    /// sources have no (or a zero) reload period or no source at all.
    pub async fn run(mut self, apply: impl Fn(Vec<Entry>) + Send + Sync + 'static, shutdown: CancellationToken) {
        let Some(period) = self.sources.reload.filter(|p| !p.is_zero()) else {
            return;
        };
        if self.sources.is_empty() {
            return;
        }
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(period) => {}
            }
            let changed = tokio::select! {
                () = shutdown.cancelled() => return,
                changed = self.reload() => changed,
            };
            if let Some(entries) = changed {
                tracing::info!(name = %self.name, entries = entries.len(), "data sources changed, applying");
                apply(entries);
            }
        }
    }

    /// [`run`](Self::run) on a new task.
    pub fn spawn(
        self,
        apply: impl Fn(Vec<Entry>) + Send + Sync + 'static,
        shutdown: CancellationToken,
    ) -> JoinHandle<()> {
        tokio::spawn(self.run(apply, shutdown))
    }
}

/// Loads `sources` over `inline` on a new task, calls `apply` with the
/// result (warning about sources that failed), then keeps reloading as
/// [`Reloader::run`] does. For startup that must see the first result (to
/// fail or warn), use [`Reloader::load_initial`] then [`Reloader::spawn`].
pub fn spawn_reloader(
    name: impl Into<String>,
    sources: Sources,
    inline: Vec<Entry>,
    apply: impl Fn(Vec<Entry>) + Send + Sync + 'static,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    let mut reloader = Reloader::new(name, sources, inline);
    tokio::spawn(async move {
        let initial = tokio::select! {
            () = shutdown.cancelled() => return,
            initial = reloader.load_initial() => initial,
        };
        for error in &initial.errors {
            tracing::warn!(name = %reloader.name, "data source failed at start: {error}");
        }
        apply(initial.entries);
        reloader.run(apply, shutdown).await;
    })
}

impl fmt::Debug for Reloader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reloader").field("name", &self.name).field("sources", &self.sources).finish_non_exhaustive()
    }
}

type SlotOutcome<'a> = (Which, &'a mut Slot, Option<Result<Fetched, SourceError>>);

fn slots<'a>(file: &'a mut Slot, redis: &'a mut Slot, http: &'a mut Slot, result: FetchResult) -> [SlotOutcome<'a>; 3] {
    [(Which::File, file, result.file), (Which::Redis, redis, result.redis), (Which::Http, http, result.http)]
}

fn log_bad_lines(name: &str, which: Which, fetched: &Fetched, previous: Option<&Fetched>) {
    if fetched.bad.is_empty() || previous.is_some_and(|p| p.bad == fetched.bad) {
        return;
    }
    for bad in &fetched.bad {
        tracing::warn!(
            name,
            source = %which,
            line = bad.line_no,
            "skipping a data-source line that does not have the fields of its format: {:?}",
            bad.line
        );
    }
}
