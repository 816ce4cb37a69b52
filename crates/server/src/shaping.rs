//! Traffic limits at run time: which token buckets pace a connection.
//!
//! A [`TrafficLimiter`] holds one `limiters[]` entry's rules (inline lines
//! merged with its data sources, or a plugin's answers) and the buckets
//! they created. A connection asks it once for its buckets in each
//! direction ([`TrafficLimiter::buckets`]) and keeps them; it asks again
//! only when limits change anywhere ([`epoch`] moved), so the packet path of
//! a connection that no limit applies to does nothing per batch but compare
//! two integers.
//!
//! Buckets are shared where the scope says so (`$` by the whole service, a
//! client's by all its connections, an address's by all connections from
//! it) and found in a registry by key. When rules change, a bucket that
//! keeps its key keeps its state and gets the new rate.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use ipnet::IpNet;
use rgost_config::{LimitScope, TrafficLimit};
use rgost_relay::TunnelId;
use rgost_sources::{LimitQuery, LimiterPlugin};
use rgost_transport::{FrameWriter, WriteHalf};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::bucket::TokenBucket;

/// Bumped whenever limits may have changed (a reload, a source that
/// changed a limiter's lines): connections then choose their buckets again.
static EPOCH: AtomicU64 = AtomicU64::new(1);

/// The current limits generation.
pub fn epoch() -> u64 {
    // A plain load on x86 (a load-acquire on ARM): once per batch, and it
    // pairs with the Release in `limits_changed`.
    EPOCH.load(Ordering::Acquire)
}

/// Tells every connection to choose its buckets again.
pub fn limits_changed() {
    // Release: whoever sees the new generation also sees the limits stored before it.
    EPOCH.fetch_add(1, Ordering::Release);
}

/// The buckets' clock: time since the first time it was read.
pub(crate) fn now() -> Duration {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed()
}

/// The smallest default bucket: a few full-size packets, so a low rate
/// still lets a packet through without a wait longer than its own time.
const MIN_BURST: u64 = 16 << 10;

/// Client buckets kept in a registry before the dead ones are swept.
const SWEEP_AT: usize = 1024;

/// A direction, from the server's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dir {
    /// What the server reads from a client.
    In,
    /// What the server writes to a client.
    Out,
}

/// One rate: bytes per second and the bucket's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Bytes per second.
    pub per_second: u64,
    /// The bucket's size in bytes.
    pub burst: u64,
}

impl Rate {
    /// `per_second` with `burst`, or rgost's default burst: a tenth of a
    /// second of the rate, at least [`MIN_BURST`].
    pub fn new(per_second: u64, burst: Option<u64>) -> Rate {
        Rate { per_second, burst: burst.unwrap_or((per_second / 10).max(MIN_BURST)) }
    }
}

/// A shared token bucket of one direction. Without a rate (a plugin said
/// "unlimited") it lets everything through at once.
#[derive(Debug)]
pub struct Bucket {
    state: Mutex<Option<TokenBucket>>,
}

impl Bucket {
    fn new(rate: Option<Rate>) -> Bucket {
        Bucket { state: Mutex::new(rate.map(|r| TokenBucket::new(r.per_second as f64, r.burst as f64, now()))) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<TokenBucket>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Gives the bucket `rate`, keeping what it holds.
    fn set(&self, rate: Option<Rate>) {
        let mut state = self.lock();
        match (state.as_mut(), rate) {
            (Some(bucket), Some(rate)) => {
                let (per_second, burst) = (rate.per_second as f64, rate.burst as f64);
                if bucket.rate() != per_second || bucket.burst() != burst {
                    bucket.set(per_second, burst, now());
                }
            }
            (_, rate) => *state = rate.map(|r| TokenBucket::new(r.per_second as f64, r.burst as f64, now())),
        }
    }

    /// Takes `n` bytes; how long the caller waits before going on.
    pub fn take(&self, n: u64) -> Duration {
        match self.lock().as_mut() {
            Some(bucket) => bucket.take(n, now()),
            None => Duration::ZERO,
        }
    }
}

/// Who a connection is, as limits see it.
#[derive(Debug, Clone)]
pub struct Who {
    /// Its host name.
    pub host: Arc<str>,
    /// Its namespace.
    pub router: TunnelId,
    /// Its address.
    pub remote: SocketAddr,
}

impl Who {
    /// GOST's client id: `host@router-id`.
    pub fn client(&self) -> String {
        format!("{}@{}", self.host, self.router)
    }
}

/// How a limiter's lines apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The router handler's `limiter`: `$$`, host names and addresses are
    /// per client, the most specific line deciding.
    Client,
    /// The service's `limiter` (GOST's listener limiter): `$$` per
    /// connection, addresses per source address, both applying.
    Conn,
}

/// The rates of one line, each way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Rates {
    input: Option<Rate>,
    output: Option<Rate>,
}

impl Rates {
    fn of(limit: &TrafficLimit) -> Rates {
        Rates {
            input: limit.input.map(|r| Rate::new(r, limit.burst)),
            output: limit.output.map(|r| Rate::new(r, limit.burst)),
        }
    }

    fn get(&self, dir: Dir) -> Option<Rate> {
        match dir {
            Dir::In => self.input,
            Dir::Out => self.output,
        }
    }

    fn is_unlimited(&self) -> bool {
        self.input.is_none() && self.output.is_none()
    }
}

/// A limiter's lines, indexed for choosing a connection's rates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    service: Rates,
    each: Rates,
    /// `NAME@ROUTER-ID` (with the id) and `NAME` (without).
    clients: HashMap<(String, Option<TunnelId>), Rates>,
    /// Addresses and CIDRs, longest prefix first.
    nets: Vec<(IpNet, Rates)>,
}

impl Rules {
    /// Rules from lines; of two lines with one scope the first counts
    /// (sources come merged by priority, the highest first).
    pub fn new<'a>(lines: impl IntoIterator<Item = &'a TrafficLimit>) -> Rules {
        let mut rules = Rules::default();
        let mut seen_service = false;
        let mut seen_each = false;
        for line in lines {
            let rates = Rates::of(line);
            match &line.scope {
                LimitScope::Service if !seen_service => (rules.service, seen_service) = (rates, true),
                LimitScope::Each if !seen_each => (rules.each, seen_each) = (rates, true),
                LimitScope::Service | LimitScope::Each => {}
                LimitScope::Client { host, router } => {
                    let key = (host.clone(), router.map(|id| TunnelId::from_uuid(*id.as_bytes())));
                    rules.clients.entry(key).or_insert(rates);
                }
                LimitScope::Addr(net) => {
                    if !rules.nets.iter().any(|(n, _)| n == net) {
                        rules.nets.push((*net, rates));
                    }
                }
            }
        }
        rules.nets.sort_by_key(|(net, _)| std::cmp::Reverse(net.prefix_len()));
        rules
    }

    /// Whether no line limits anything.
    pub fn is_empty(&self) -> bool {
        self.service.is_unlimited()
            && self.each.is_unlimited()
            && self.clients.values().all(Rates::is_unlimited)
            && self.nets.iter().all(|(_, r)| r.is_unlimited())
    }

    fn net(&self, ip: IpAddr) -> Option<Rates> {
        let ip = ip.to_canonical();
        self.nets.iter().find(|(net, _)| net.contains(&ip)).map(|(_, rates)| *rates)
    }

    /// A client's own rates: the most specific line that names it.
    fn client(&self, who: &Who) -> Rates {
        let host = who.host.to_string();
        self.clients
            .get(&(host.clone(), Some(who.router)))
            .or_else(|| self.clients.get(&(host, None)))
            .copied()
            .or_else(|| self.net(who.remote.ip()))
            .unwrap_or(self.each)
    }
}

/// Registry keys of shared buckets.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Service(Dir),
    Client(Arc<str>, TunnelId, Dir),
    Addr(IpAddr, Dir),
}

/// One `limiters[]` entry at run time.
pub struct TrafficLimiter {
    name: String,
    rules: ArcSwap<Rules>,
    registry: Mutex<Registry>,
    plugin: Option<Plugin>,
}

#[derive(Debug, Default)]
struct Registry {
    buckets: HashMap<Key, Weak<Bucket>>,
    /// The size at which dead entries are swept next.
    sweep_at: usize,
}

/// A limiter plugin and its answers per client.
struct Plugin {
    client: LimiterPlugin,
    /// The service's name, sent with each question.
    service: String,
    answers: Mutex<HashMap<(Arc<str>, TunnelId), Answer>>,
}

/// What the plugin said about a client, and where the client was.
#[derive(Debug, Clone, Copy)]
struct Answer {
    rates: Rates,
    src: SocketAddr,
}

impl fmt::Debug for TrafficLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrafficLimiter").field("name", &self.name).finish_non_exhaustive()
    }
}

impl TrafficLimiter {
    /// A limiter with `rules`.
    pub fn new(name: &str, rules: Rules) -> TrafficLimiter {
        TrafficLimiter {
            name: name.to_owned(),
            rules: ArcSwap::from_pointee(rules),
            registry: Mutex::default(),
            plugin: None,
        }
    }

    /// A limiter whose rates come from `plugin`, asked about each client
    /// of service `service`.
    pub fn plugin(name: &str, plugin: LimiterPlugin, service: &str) -> TrafficLimiter {
        TrafficLimiter {
            plugin: Some(Plugin { client: plugin, service: service.to_owned(), answers: Mutex::default() }),
            ..TrafficLimiter::new(name, Rules::default())
        }
    }

    /// The limiter's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Puts new rules in force: buckets that keep their scope get the new
    /// rates at once; connections choose their buckets again.
    pub fn replace(&self, rules: Rules) {
        if **self.rules.load() == rules {
            return;
        }
        let service = rules.service;
        self.rules.store(Arc::new(rules));
        let registry = self.lock();
        for dir in [Dir::In, Dir::Out] {
            if let Some(bucket) = registry.buckets.get(&Key::Service(dir)).and_then(Weak::upgrade) {
                bucket.set(service.get(dir));
            }
        }
        drop(registry);
        limits_changed();
    }

    /// The buckets that pace a connection in direction `dir`; empty when no
    /// limit applies to it.
    pub fn buckets(&self, who: &Who, mode: Mode, dir: Dir) -> Vec<Arc<Bucket>> {
        let rules = self.rules.load();
        let mut buckets = Vec::new();
        if let Some(rate) = rules.service.get(dir) {
            buckets.push(self.shared(Key::Service(dir), Some(rate)));
        }
        match (mode, &self.plugin) {
            (Mode::Client, Some(plugin)) => {
                // A plugin's client always has its bucket, unlimited until
                // the plugin says otherwise, so a later answer applies to it.
                // A client it was never asked about (connected before the
                // limiter came with a reload) is asked at the next refresh.
                let key = (Arc::clone(&who.host), who.router);
                let rate = plugin
                    .lock()
                    .entry(key)
                    .or_insert(Answer { rates: Rates::default(), src: who.remote })
                    .rates
                    .get(dir);
                buckets.push(self.shared(Key::Client(Arc::clone(&who.host), who.router, dir), rate));
            }
            (Mode::Client, None) => {
                if let Some(rate) = rules.client(who).get(dir) {
                    buckets.push(self.shared(Key::Client(Arc::clone(&who.host), who.router, dir), Some(rate)));
                }
            }
            (Mode::Conn, _) => {
                if let Some(rate) = rules.each.get(dir) {
                    buckets.push(Arc::new(Bucket::new(Some(rate))));
                }
                if let Some(rate) = rules.net(who.remote.ip()).and_then(|r| r.get(dir)) {
                    buckets.push(self.shared(Key::Addr(who.remote.ip().to_canonical(), dir), Some(rate)));
                }
            }
        }
        buckets
    }

    /// The bucket of `key`, made with `rate` if there is none; an existing
    /// one gets `rate`.
    fn shared(&self, key: Key, rate: Option<Rate>) -> Arc<Bucket> {
        let mut registry = self.lock();
        if let Some(bucket) = registry.buckets.get(&key).and_then(Weak::upgrade) {
            bucket.set(rate);
            return bucket;
        }
        if registry.buckets.len() >= registry.sweep_at {
            registry.buckets.retain(|_, b| b.strong_count() > 0);
            registry.sweep_at = (registry.buckets.len() * 2).max(SWEEP_AT);
        }
        let bucket = Arc::new(Bucket::new(rate));
        registry.buckets.insert(key, Arc::downgrade(&bucket));
        bucket
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// For a plugin limiter: asks the plugin about `who` unless it has been
    /// asked already, so that the client's first connection starts limited.
    /// Bounded by the plugin's timeout; a failure means unlimited.
    pub async fn prepare(&self, who: &Who) {
        let Some(plugin) = &self.plugin else { return };
        let key = (Arc::clone(&who.host), who.router);
        if plugin.lock().contains_key(&key) {
            return;
        }
        let rates = plugin.ask(&self.name, who.remote, &who.client()).await.unwrap_or_default();
        plugin.lock().insert(key, Answer { rates, src: who.remote });
    }

    /// For a plugin limiter: asks the plugin again about every client that
    /// has buckets, every `period` until `shutdown`; a changed answer
    /// changes the client's buckets at once. Clients without buckets left
    /// are forgotten. A failed question keeps the last answer, as GOST's
    /// cache does.
    pub async fn refresh(self: Arc<Self>, period: Duration, shutdown: CancellationToken) {
        let Some(plugin) = &self.plugin else { return };
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(period) => {}
            }
            let live: std::collections::HashSet<(Arc<str>, TunnelId)> = self
                .lock()
                .buckets
                .iter()
                .filter(|(_, b)| b.strong_count() > 0)
                .filter_map(|(key, _)| match key {
                    Key::Client(host, router, _) => Some((Arc::clone(host), *router)),
                    _ => None,
                })
                .collect();
            let asked: Vec<(Arc<str>, TunnelId, SocketAddr)> = {
                let mut answers = plugin.lock();
                answers.retain(|key, _| live.contains(key));
                answers.iter().map(|((host, router), a)| (Arc::clone(host), *router, a.src)).collect()
            };
            for (host, router, src) in asked {
                let client = format!("{host}@{router}");
                let Some(rates) = plugin.ask(&self.name, src, &client).await else { continue };
                plugin.lock().insert((Arc::clone(&host), router), Answer { rates, src });
                let registry = self.lock();
                for dir in [Dir::In, Dir::Out] {
                    let key = Key::Client(Arc::clone(&host), router, dir);
                    if let Some(bucket) = registry.buckets.get(&key).and_then(Weak::upgrade) {
                        bucket.set(rates.get(dir));
                    }
                }
            }
        }
    }
}

impl Plugin {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(Arc<str>, TunnelId), Answer>> {
        self.answers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The plugin's rates for `client`; `None` when it could not answer.
    async fn ask(&self, limiter: &str, src: SocketAddr, client: &str) -> Option<Rates> {
        let src_text = src.to_string();
        let query =
            LimitQuery { service: &self.service, scope: "client", network: "ip", addr: "", client, src: &src_text };
        match self.client.limits(&query).await {
            Ok(Some((input, output))) => {
                Some(Rates { input: input.map(|r| Rate::new(r, None)), output: output.map(|r| Rate::new(r, None)) })
            }
            // Any status but 200: no limit, as in GOST.
            Ok(None) => Some(Rates::default()),
            Err(e) => {
                tracing::warn!(limiter, client, "limiter plugin failed: {e}");
                None
            }
        }
    }
}

/// The buckets of one direction of one connection, chosen again when
/// limits change.
#[derive(Debug)]
pub struct Pacer {
    epoch: u64,
    buckets: Vec<Arc<Bucket>>,
}

impl Pacer {
    /// A pacer that has not chosen yet.
    pub fn new() -> Pacer {
        Pacer { epoch: 0, buckets: Vec::new() }
    }

    /// Whether limits changed since the buckets were chosen.
    pub fn stale(&self) -> bool {
        self.epoch != epoch()
    }

    /// Puts `buckets` in force, as chosen at `epoch`.
    pub fn set(&mut self, epoch: u64, buckets: Vec<Arc<Bucket>>) {
        self.epoch = epoch;
        self.buckets = buckets;
    }

    /// Whether any bucket paces this connection.
    pub fn is_paced(&self) -> bool {
        !self.buckets.is_empty()
    }

    /// How many bytes to send between two takes: the smallest bucket, at
    /// most [`PACED_CHUNK`], so that no bucket's wait is longer than its own
    /// burst's time.
    pub fn chunk(&self) -> usize {
        self.buckets
            .iter()
            .filter_map(|b| b.lock().as_ref().map(|t| t.burst() as usize))
            .min()
            .unwrap_or(PACED_CHUNK)
            .min(PACED_CHUNK)
    }

    /// Takes `n` bytes from every bucket; how long to wait before going on
    /// (the longest of their waits).
    pub fn take(&self, n: u64) -> Duration {
        self.buckets.iter().map(|b| b.take(n)).max().unwrap_or_default()
    }
}

/// At most this many bytes are written between two takes from the
/// buckets, so paced output leaves in steady steps.
const PACED_CHUNK: usize = 64 << 10;

/// Writes `packets` as frames like [`FrameWriter::write_all`], in chunks of
/// at most the smallest bucket (and [`PACED_CHUNK`]), each after the wait
/// `pacer` asks for. Limits that change meanwhile apply from the next chunk
/// on (`repace` chooses the buckets again). Returns the packets skipped as
/// too long for a frame.
pub async fn write_paced(
    out: &mut FrameWriter,
    w: &mut WriteHalf,
    packets: &[bytes::Bytes],
    pacer: &mut Pacer,
    repace: &(dyn Fn(&mut Pacer) + Send + Sync),
) -> std::io::Result<usize> {
    let mut skipped = 0;
    let mut rest = packets;
    while !rest.is_empty() {
        if pacer.stale() {
            repace(pacer);
        }
        if !pacer.is_paced() {
            return Ok(skipped + out.write_all(w, rest).await?);
        }
        let limit = pacer.chunk();
        let mut bytes = 0;
        let end = rest
            .iter()
            .position(|p| {
                bytes += p.len();
                bytes > limit
            })
            .unwrap_or(rest.len())
            .max(1);
        let (chunk, after) = rest.split_at(end);
        let wait = pacer.take(chunk.iter().map(|p| p.len() as u64).sum());
        if !wait.is_zero() {
            // Boxed: a timer is large, and only paced connections need one.
            Box::pin(tokio::time::sleep(wait)).await;
        }
        skipped += out.write_all(w, chunk).await?;
        rest = after;
    }
    Ok(skipped)
}

impl Default for Pacer {
    fn default() -> Self {
        Pacer::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(host: &str, router: u8, remote: &str) -> Who {
        Who { host: Arc::from(host), router: TunnelId::from_uuid([router; 16]), remote: remote.parse().unwrap() }
    }

    fn limiter(lines: &[&str]) -> TrafficLimiter {
        let lines: Vec<TrafficLimit> = lines.iter().map(|l| TrafficLimit::parse(l).unwrap()).collect();
        TrafficLimiter::new("l", Rules::new(&lines))
    }

    fn rates(buckets: &[Arc<Bucket>]) -> Vec<f64> {
        buckets.iter().map(|b| b.lock().as_ref().map_or(0.0, TokenBucket::rate)).collect()
    }

    #[test]
    fn the_most_specific_line_decides_a_clients_rate_and_dollar_applies_on_top() {
        let router = TunnelId::from_uuid([1; 16]);
        let l = limiter(&[
            "$ 100MB 50MB",
            "$$ 1MB",
            "host-1 2MB 2MB",
            &format!("host-1@{router} 3MB"),
            "10.0.0.0/8 4MB",
            "10.1.0.0/16 5MB",
        ]);
        let m = 1024.0 * 1024.0;
        let rate_of = |w: &Who, dir| rates(&l.buckets(w, Mode::Client, dir));
        assert_eq!(rate_of(&who("host-1", 1, "10.1.2.3:1"), Dir::In), [100.0 * m, 3.0 * m]);
        assert_eq!(rate_of(&who("host-1", 2, "10.1.2.3:1"), Dir::In), [100.0 * m, 2.0 * m]);
        assert_eq!(rate_of(&who("host-2", 2, "10.1.2.3:1"), Dir::In), [100.0 * m, 5.0 * m]);
        assert_eq!(rate_of(&who("host-2", 2, "10.9.2.3:1"), Dir::In), [100.0 * m, 4.0 * m]);
        assert_eq!(rate_of(&who("host-2", 2, "[::ffff:10.9.2.3]:1"), Dir::In), [100.0 * m, 4.0 * m]);
        assert_eq!(rate_of(&who("host-2", 2, "192.0.2.1:1"), Dir::In), [100.0 * m, 1.0 * m]);
        // Output: only `$` and host-1's own line say anything.
        assert_eq!(rate_of(&who("host-1", 2, "10.1.2.3:1"), Dir::Out), [50.0 * m, 2.0 * m]);
        assert_eq!(rate_of(&who("host-2", 2, "192.0.2.1:1"), Dir::Out), [50.0 * m]);
        assert!(limiter(&["$$ 0 0"]).buckets(&who("h", 1, "10.0.0.1:1"), Mode::Client, Dir::In).is_empty());
    }

    #[test]
    fn buckets_are_shared_by_scope() {
        let l = limiter(&["$ 10MB", "$$ 1MB"]);
        let a1 = l.buckets(&who("a", 1, "10.0.0.1:1"), Mode::Client, Dir::In);
        let a2 = l.buckets(&who("a", 1, "10.0.0.2:2"), Mode::Client, Dir::In);
        let b = l.buckets(&who("b", 1, "10.0.0.1:1"), Mode::Client, Dir::In);
        let a_elsewhere = l.buckets(&who("a", 2, "10.0.0.1:1"), Mode::Client, Dir::In);
        assert!(Arc::ptr_eq(&a1[0], &b[0]), "$ is one bucket for everyone");
        assert!(Arc::ptr_eq(&a1[1], &a2[1]), "a client's connections share its bucket");
        assert!(!Arc::ptr_eq(&a1[1], &b[1]), "clients do not share");
        assert!(!Arc::ptr_eq(&a1[1], &a_elsewhere[1]), "one name in two namespaces is two clients");
    }

    #[test]
    fn service_limiter_lines_apply_per_connection_and_per_address_together() {
        let l = limiter(&["$$ 1MB", "10.0.0.0/8 2MB", "host-1 9MB"]);
        let one = l.buckets(&who("host-1", 1, "10.0.0.1:1"), Mode::Conn, Dir::In);
        let two = l.buckets(&who("host-2", 1, "10.0.0.1:2"), Mode::Conn, Dir::In);
        assert_eq!(rates(&one), [1048576.0, 2097152.0], "host names do not count here");
        assert!(!Arc::ptr_eq(&one[0], &two[0]), "each connection has its own");
        assert!(Arc::ptr_eq(&one[1], &two[1]), "one source address shares its bucket");
    }

    #[test]
    fn new_rules_change_rates_in_place_and_move_the_epoch() {
        let l = limiter(&["$ 1MB", "$$ 1MB"]);
        let w = who("a", 1, "10.0.0.1:1");
        let before = l.buckets(&w, Mode::Client, Dir::In);
        let old_epoch = epoch();
        let lines = [TrafficLimit::parse("$ 2MB").unwrap(), TrafficLimit::parse("$$ 3MB").unwrap()];
        l.replace(Rules::new(&lines));
        assert!(epoch() > old_epoch);
        assert_eq!(rates(&before), [2097152.0, 1048576.0], "the shared bucket now, the client's on its next choice");
        let after = l.buckets(&w, Mode::Client, Dir::In);
        assert!(Arc::ptr_eq(&before[1], &after[1]));
        assert_eq!(rates(&after), [2097152.0, 3145728.0]);
        // The same rules again change nothing.
        let rules = l.rules.load_full();
        l.replace(Rules::new(&lines));
        assert!(Arc::ptr_eq(&rules, &l.rules.load_full()));
    }

    #[test]
    fn dead_buckets_are_swept() {
        let l = limiter(&["$$ 1MB"]);
        for n in 0..5000u32 {
            let w = who(&format!("h{n}"), 1, "10.0.0.1:1");
            drop(l.buckets(&w, Mode::Client, Dir::In));
        }
        assert!(l.lock().buckets.len() <= 2 * SWEEP_AT, "{}", l.lock().buckets.len());
    }

    #[test]
    fn first_line_of_a_scope_wins_and_default_bursts() {
        let lines: Vec<TrafficLimit> =
            ["$ 1MB", "$ 2MB", "h 1KB"].iter().map(|l| TrafficLimit::parse(l).unwrap()).collect();
        let rules = Rules::new(&lines);
        assert_eq!(rules.service.input, Some(Rate { per_second: 1 << 20, burst: (1 << 20) / 10 }));
        let h = rules.clients.get(&("h".to_owned(), None)).unwrap();
        assert_eq!(h.input, Some(Rate { per_second: 1024, burst: MIN_BURST }));
        assert!(!rules.is_empty());
        assert!(Rules::new(&[TrafficLimit::parse("$ 0 0").unwrap()]).is_empty());
    }

    #[test]
    fn a_pacer_waits_for_its_slowest_bucket() {
        let fast = Arc::new(Bucket::new(Some(Rate { per_second: 1_000_000, burst: 1000 })));
        let slow = Arc::new(Bucket::new(Some(Rate { per_second: 1000, burst: 1000 })));
        let mut pacer = Pacer::new();
        assert!(pacer.stale() && !pacer.is_paced());
        assert_eq!(pacer.take(1 << 20), Duration::ZERO, "no bucket, no wait");
        pacer.set(epoch(), vec![fast, slow]);
        assert!(!pacer.stale() && pacer.is_paced());
        pacer.take(1000);
        let wait = pacer.take(500);
        assert!(wait >= Duration::from_millis(490) && wait <= Duration::from_millis(501), "{wait:?}");
    }
}
