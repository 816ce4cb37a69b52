//! The Redis registry, rgost's engine.
//!
//! Keys (prefix `P`, default `rgost`):
//!
//! * `P:seq`: the counter every registration draws its number from;
//! * `P:h:{router-id}:{node}:{host}`: a node's record of a host, `SEQ VER
//!   CONNECTOR SINCE-MS ADDR` (its newest connection's number, the record's
//!   version, ... and the node's link address), expiring after three renew
//!   intervals unless renewed;
//! * `P:i:{router-id}:{host}`: the nodes that have a record of the host (for lookups);
//! * `P:n:{node}`: the node's link address, expiring after [`NODE_LEASE`]
//!   unless renewed every [`HEARTBEAT`]: a node whose key expired is gone;
//! * channel `P:ev`: `set ROUTER NODE SEQ VER ADDR HOST` and `del ROUTER
//!   NODE VER HOST`, published by the same script that writes the record,
//!   so every node hears of a change within a round trip.
//!
//! A node writes only its own records. Everything it reads is checked by
//! version ([`crate::mirror`]), so pushed events, full reads and lookups
//! may arrive in any order. When Redis is out of reach, forwarding goes on
//! with what is known and registrations wait; when it is back, the node
//! raises the counter above every number it knows (Redis may have lost
//! it), writes all its records again and reads everyone's.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{MultiplexedConnection, PubSubStream};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{AsyncConnectionConfig, ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo, Value};
use rgost_config::SdRedis;
use rgost_forward::NodeId;
use rgost_relay::TunnelId;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::local::{Local, Plan};
use crate::mirror::{Apply, Key, Mirror, Record};
use crate::registry::{retry_delay, split_host_port};
use crate::{Deliver, Event, Inner};

/// How often a node renews its liveness key.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// A node whose liveness key has not been seen for this long is gone.
pub const NODE_LEASE: Duration = Duration::from_secs(5);
/// Bound on connecting and on each command.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Commands per pipeline.
const CHUNK: usize = 1000;
/// How long deletions are remembered (longer than any full read takes).
const TOMBSTONE_TTL: Duration = Duration::from_secs(120);
/// How often everything is read again, for changes whose events were lost.
const FULL_READ: Duration = Duration::from_secs(300);
/// How far the counter is raised above the highest number known after a
/// reconnection (numbers drawn by nodes that have not reconnected yet).
const COUNTER_MARGIN: u64 = 1_000_000;

/// Writes a node's record of a host, drawing `count` numbers first when
/// `draw` is 1, and tells every node.
const SET: &str = r"
local seq = tonumber(ARGV[1])
if ARGV[2] == '1' then seq = redis.call('INCRBY', KEYS[1], ARGV[1]) end
local s = string.format('%d', seq)
redis.call('SET', KEYS[2], s .. ' ' .. ARGV[3] .. ' ' .. ARGV[4] .. ' ' .. ARGV[5] .. ' ' .. ARGV[6], 'PX', ARGV[7])
redis.call('SADD', KEYS[3], ARGV[10])
redis.call('PEXPIRE', KEYS[3], ARGV[7])
redis.call('PUBLISH', ARGV[8], 'set ' .. ARGV[9] .. ' ' .. ARGV[10] .. ' ' .. s .. ' ' .. ARGV[3] .. ' ' .. ARGV[6] .. ' ' .. ARGV[11])
return seq
";

/// Deletes a node's record of a host and tells every node.
const DEL: &str = r"
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
";

/// Raises the counter to ARGV[2] when it is below ARGV[1].
const BUMP: &str = r"
local c = tonumber(redis.call('GET', KEYS[1]) or '0')
if c < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[2]) end
return 1
";

/// Key names under a prefix.
#[derive(Debug, Clone)]
struct Keys {
    prefix: String,
}

impl Keys {
    fn seq(&self) -> String {
        format!("{}:seq", self.prefix)
    }

    fn record(&self, router: TunnelId, node: &str, host: &str) -> String {
        format!("{}:h:{router}:{node}:{host}", self.prefix)
    }

    fn index(&self, router: TunnelId, host: &str) -> String {
        format!("{}:i:{router}:{host}", self.prefix)
    }

    fn node(&self, node: &str) -> String {
        format!("{}:n:{node}", self.prefix)
    }

    fn channel(&self) -> String {
        format!("{}:ev", self.prefix)
    }

    /// SCAN's pattern for every record (the prefix's glob characters escaped).
    fn records(&self) -> String {
        let mut pattern = String::new();
        for c in self.prefix.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push_str(":h:*");
        pattern
    }

    /// Splits a record key into its namespace, node and host.
    fn parse_record<'k>(&self, key: &'k str) -> Option<(TunnelId, &'k str, &'k str)> {
        let rest = key.strip_prefix(&self.prefix)?.strip_prefix(":h:")?;
        let (router, rest) = (rest.get(..36)?, rest.get(36..)?.strip_prefix(':')?);
        let (node, host) = rest.split_once(':')?;
        let router = uuid::Uuid::parse_str(router).ok()?;
        (!node.is_empty() && !host.is_empty()).then(|| (TunnelId::from_uuid(*router.as_bytes()), node, host))
    }
}

/// A record's value: `SEQ VER CONNECTOR SINCE-MS ADDR`.
fn parse_value(value: &str) -> Option<(u64, u64, &str)> {
    let mut fields = value.splitn(5, ' ');
    let seq = fields.next()?.parse().ok()?;
    let ver = fields.next()?.parse().ok()?;
    let addr = fields.nth(2)?;
    (!addr.is_empty()).then_some((seq, ver, addr))
}

/// A pushed change.
#[derive(Debug, PartialEq, Eq)]
enum Message<'a> {
    Set { router: TunnelId, node: &'a str, seq: u64, ver: u64, addr: &'a str, host: &'a str },
    Del { router: TunnelId, node: &'a str, ver: u64, host: &'a str },
}

fn parse_message(text: &str) -> Option<Message<'_>> {
    let router = |s: &str| uuid::Uuid::parse_str(s).ok().map(|u| TunnelId::from_uuid(*u.as_bytes()));
    let (kind, rest) = text.split_once(' ')?;
    match kind {
        "set" => {
            let f: Vec<&str> = rest.splitn(6, ' ').collect();
            let [r, node, seq, ver, addr, host] = f.as_slice() else { return None };
            Some(Message::Set { router: router(r)?, node, seq: seq.parse().ok()?, ver: ver.parse().ok()?, addr, host })
        }
        "del" => {
            let f: Vec<&str> = rest.splitn(4, ' ').collect();
            let [r, node, ver, host] = f.as_slice() else { return None };
            Some(Message::Del { router: router(r)?, node, ver: ver.parse().ok()?, host })
        }
        _ => None,
    }
}

/// How a connection to Redis is made: directly, or to the master the
/// sentinels name (asked again at every reconnection, so a failover is followed).
enum Source {
    Direct(redis::Client),
    Sentinel(Box<SentinelClient>),
}

impl Source {
    async fn client(&mut self) -> redis::RedisResult<redis::Client> {
        match self {
            Source::Direct(client) => Ok(client.clone()),
            Source::Sentinel(sentinel) => sentinel.async_get_client().await,
        }
    }
}

/// An open session: commands and pushed events.
struct Session {
    conn: MultiplexedConnection,
    events: PubSubStream,
}

/// The Redis registry of one node.
pub(crate) struct Registry<C> {
    inner: Arc<Inner<C>>,
    source: Source,
    keys: Keys,
    local: Local,
    mirror: Mirror,
    /// The last record version written.
    ver: u64,
    /// How long a record lives unless renewed.
    lease: Duration,
    /// Lookups waiting for the next round.
    lookups: Vec<Key>,
}

impl<C> std::fmt::Debug for Registry<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("prefix", &self.keys.prefix).finish_non_exhaustive()
    }
}

type Result<T> = redis::RedisResult<T>;

impl<C: Deliver> Registry<C> {
    /// A registry for `config` (nothing is connected yet).
    pub(crate) fn new(inner: Arc<Inner<C>>, config: &SdRedis) -> std::result::Result<Self, String> {
        let addr = |text: &str| {
            split_host_port(text)
                .map(|(host, port)| ConnectionAddr::Tcp(host, port))
                .ok_or_else(|| format!("redis address {text:?} is not host:port"))
        };
        let source = match &config.sentinel {
            None => {
                let first = config.addrs.first().ok_or("no redis address")?;
                let mut settings = RedisConnectionInfo::default().set_db(config.db);
                if let Some(user) = &config.username {
                    settings = settings.set_username(user);
                }
                if let Some(password) = &config.password {
                    settings = settings.set_password(password);
                }
                let info = addr(first)?.into_connection_info().map_err(|e| e.to_string())?.set_redis_settings(settings);
                Source::Direct(redis::Client::open(info).map_err(|e| e.to_string())?)
            }
            Some(master) => {
                let sentinels = config.addrs.iter().map(|a| addr(a)).collect::<std::result::Result<Vec<_>, _>>()?;
                let mut builder = SentinelClientBuilder::new(sentinels, master, SentinelServerType::Master)
                    .map_err(|e| e.to_string())?
                    .set_client_to_redis_db(config.db);
                if let Some(user) = &config.username {
                    builder = builder.set_client_to_redis_username(user);
                }
                if let Some(password) = &config.password {
                    builder = builder.set_client_to_redis_password(password);
                }
                Source::Sentinel(Box::new(builder.build().map_err(|e| e.to_string())?))
            }
        };
        let lease = inner.settings.renew_interval * 3;
        Ok(Registry {
            inner,
            source,
            keys: Keys { prefix: config.prefix.clone() },
            local: Local::new(),
            mirror: Mirror::new(),
            ver: 0,
            lease,
            lookups: Vec::new(),
        })
    }

    /// Runs until `shutdown`, then deletes this node's records.
    pub(crate) async fn run(mut self, mut events: UnboundedReceiver<Event>, shutdown: CancellationToken) {
        let mut session: Option<Session> = None;
        let mut failures: u32 = 0;
        let mut next_attempt = Instant::now();
        let mut second_read: Option<Instant> = None;
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut renew = tokio::time::interval(self.inner.settings.renew_interval);
        renew.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut full_read = tokio::time::interval(FULL_READ);
        full_read.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            if session.is_none() && Instant::now() >= next_attempt {
                match self.connect().await {
                    Ok(s) => {
                        let mut s = s;
                        if failures > 0 {
                            tracing::info!("registry reachable again: registering this node's hosts again");
                        } else {
                            tracing::info!(node = %self.inner.node, "registry connected");
                        }
                        failures = 0;
                        self.inner.stats.registry_up(true);
                        let now = Instant::now();
                        self.mirror.reset_liveness(now);
                        self.local.republish_all();
                        match self.flush(&mut s.conn).await {
                            Ok(()) => match self.read_all(&mut s.conn, false).await {
                                Ok(()) => {
                                    second_read = Some(now + NODE_LEASE + HEARTBEAT);
                                    session = Some(s);
                                }
                                Err(e) => self.lost(&e, &mut failures, &mut next_attempt),
                            },
                            Err(e) => self.lost(&e, &mut failures, &mut next_attempt),
                        }
                    }
                    Err(e) => self.lost(&e, &mut failures, &mut next_attempt),
                }
            }
            // Without a session, wake up for the next attempt.
            let retry =
                tokio::time::sleep_until(if session.is_some() { Instant::now() + FULL_READ } else { next_attempt });
            let outcome: Result<()> = tokio::select! {
                () = shutdown.cancelled() => {
                    if let Some(s) = session.as_mut() {
                        self.leave(&mut s.conn).await;
                    }
                    return;
                }
                event = events.recv() => {
                    let Some(event) = event else { return };
                    self.on_event(event);
                    while let Ok(event) = events.try_recv() {
                        self.on_event(event);
                    }
                    match session.as_mut() {
                        Some(s) => self.round(&mut s.conn).await,
                        None => {
                            self.answer_offline();
                            Ok(())
                        }
                    }
                }
                message = next_message(&mut session) => match message {
                    Some(text) => {
                        self.on_message(&text);
                        Ok(())
                    }
                    None => Err(redis::RedisError::from(std::io::Error::other("event subscription closed"))),
                },
                _ = heartbeat.tick() => match session.as_mut() {
                    Some(s) => {
                        let due = second_read.is_some_and(|at| Instant::now() >= at);
                        let result = self.heartbeat(&mut s.conn).await;
                        if result.is_ok() && due {
                            second_read = None;
                            self.read_all(&mut s.conn, true).await
                        } else {
                            result
                        }
                    }
                    None => Ok(()),
                },
                _ = renew.tick() => match session.as_mut() {
                    Some(s) => self.renew(&mut s.conn).await,
                    None => Ok(()),
                },
                _ = full_read.tick() => match session.as_mut() {
                    Some(s) => self.read_all(&mut s.conn, true).await,
                    None => Ok(()),
                },
                () = retry => Ok(()),
            };
            if let Err(e) = outcome
                && session.is_some()
            {
                session = None;
                self.lost(&e, &mut failures, &mut next_attempt);
            }
        }
    }

    /// The registry is out of reach: say so once, and try again later.
    fn lost(&mut self, error: &redis::RedisError, failures: &mut u32, next_attempt: &mut Instant) {
        self.inner.stats.registry_error();
        if *failures == 0 {
            self.inner.stats.registry_up(false);
            tracing::warn!(
                error = %error,
                "registry unreachable: forwarding with what is known, registrations wait; retrying"
            );
        } else {
            tracing::debug!(error = %error, failures = *failures, "registry still unreachable");
        }
        *failures = failures.saturating_add(1);
        *next_attempt = Instant::now() + retry_delay(*failures);
        self.answer_offline();
    }

    async fn connect(&mut self) -> Result<Session> {
        let timeout =
            |what: &'static str| redis::RedisError::from(std::io::Error::new(std::io::ErrorKind::TimedOut, what));
        let client =
            tokio::time::timeout(TIMEOUT, self.source.client()).await.map_err(|_| timeout("finding the master"))??;
        let config =
            AsyncConnectionConfig::new().set_connection_timeout(Some(TIMEOUT)).set_response_timeout(Some(TIMEOUT));
        let mut conn = client.get_multiplexed_async_connection_with_config(&config).await?;
        let mut pubsub =
            tokio::time::timeout(TIMEOUT, client.get_async_pubsub()).await.map_err(|_| timeout("subscribing"))??;
        tokio::time::timeout(TIMEOUT, pubsub.subscribe(self.keys.channel()))
            .await
            .map_err(|_| timeout("subscribing"))??;
        // Redis may have lost the counter: raise it above every number known here.
        let known = self.local.max_seq().max(self.mirror.max_seq());
        if known > 0 {
            redis::cmd("EVAL")
                .arg(BUMP)
                .arg(1)
                .arg(self.keys.seq())
                .arg(known)
                .arg(known + COUNTER_MARGIN)
                .query_async::<()>(&mut conn)
                .await?;
        }
        self.heartbeat(&mut conn).await?;
        Ok(Session { conn, events: pubsub.into_on_message() })
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Registered(key, conn) => self.local.add(key, conn),
            Event::Unregistered(key, id) => self.local.remove(&key, id),
            Event::Lookup(key) => {
                self.inner.stats.lookup();
                self.lookups.push(key);
            }
        }
    }

    /// Writes what changed and answers lookups.
    async fn round(&mut self, conn: &mut MultiplexedConnection) -> Result<()> {
        self.flush(conn).await?;
        if !self.lookups.is_empty() {
            let keys = std::mem::take(&mut self.lookups);
            self.lookup(conn, keys).await?;
        }
        Ok(())
    }

    /// Without Redis, lookups are answered from what is known.
    fn answer_offline(&mut self) {
        for key in std::mem::take(&mut self.lookups) {
            let found = self.mirror.best(&key).is_some();
            self.inner.answered(&key, found);
        }
    }

    fn next_ver(&mut self) -> u64 {
        self.ver += 1;
        self.ver
    }

    /// Writes this node's record of every dirty host.
    async fn flush(&mut self, conn: &mut MultiplexedConnection) -> Result<()> {
        while self.local.has_dirty() {
            let mut dirty = self.local.take_dirty();
            let rest = if dirty.len() > CHUNK { dirty.split_off(CHUNK) } else { Vec::new() };
            for key in rest {
                self.local.mark(key);
            }
            let mut pipe = redis::pipe();
            let mut planned = Vec::new();
            for key in dirty {
                let plan = self.local.plan(&key);
                let ver = self.next_ver();
                let (router, host) = (key.0, &*key.1);
                let node = &*self.inner.node;
                match &plan {
                    Plan::Nothing => {
                        if self.local.newest(&key).is_none() {
                            self.local.published(&key, None);
                        }
                        continue;
                    }
                    Plan::Delete => {
                        let message = format!("del {router} {node} {ver} {host}");
                        pipe.cmd("EVAL")
                            .arg(DEL)
                            .arg(2)
                            .arg(self.keys.record(router, node, host))
                            .arg(self.keys.index(router, host))
                            .arg(node)
                            .arg(self.keys.channel())
                            .arg(message);
                    }
                    Plan::Draw { .. } | Plan::Put { .. } => {
                        let (first, draw, newest) = match &plan {
                            Plan::Draw { count, newest } => (*count, "1", newest),
                            Plan::Put { newest } => (newest.seq.unwrap_or(0), "0", newest),
                            Plan::Nothing | Plan::Delete => continue,
                        };
                        pipe.cmd("EVAL")
                            .arg(SET)
                            .arg(3)
                            .arg(self.keys.seq())
                            .arg(self.keys.record(router, node, host))
                            .arg(self.keys.index(router, host))
                            .arg(first)
                            .arg(draw)
                            .arg(ver)
                            .arg(&newest.connector)
                            .arg(newest.since_ms)
                            .arg(&*self.inner.advertise)
                            .arg(self.lease.as_millis() as u64)
                            .arg(self.keys.channel())
                            .arg(router.to_string())
                            .arg(node)
                            .arg(host);
                    }
                }
                planned.push((key, plan));
            }
            if planned.is_empty() {
                continue;
            }
            let results: Vec<Value> = match pipe.query_async(conn).await {
                Ok(results) => results,
                Err(e) => {
                    for (key, _) in planned {
                        self.local.mark(key);
                    }
                    return Err(e);
                }
            };
            self.inner.stats.written(planned.len() as u64);
            for ((key, plan), result) in planned.into_iter().zip(results) {
                match plan {
                    Plan::Nothing => {}
                    Plan::Delete => self.local.published(&key, None),
                    Plan::Put { newest } => self.local.published(&key, newest.seq),
                    Plan::Draw { count, .. } => {
                        let last: u64 = redis::from_redis_value(result).map_err(redis::RedisError::from)?;
                        for (id, seq) in self.local.drawn(&key, count, last) {
                            if let Some(owner) = self.inner.fabric.set_seq(key.0, &key.1, id, seq) {
                                tracing::info!(host = %key.1, router = %key.0, ?owner, "a newer registration on another node receives this host's packets");
                            }
                        }
                        self.local.published(&key, Some(last));
                    }
                }
            }
        }
        Ok(())
    }

    /// Renews this node's liveness key and checks the other nodes'.
    async fn heartbeat(&mut self, conn: &mut MultiplexedConnection) -> Result<()> {
        let nodes = self.mirror.nodes();
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(self.keys.node(&self.inner.node))
            .arg(&*self.inner.advertise)
            .arg("PX")
            .arg(NODE_LEASE.as_millis() as u64)
            .ignore();
        if !nodes.is_empty() {
            pipe.cmd("MGET").arg(nodes.iter().map(|n| self.keys.node(n)).collect::<Vec<_>>());
        }
        let results: Vec<Value> = pipe.query_async(conn).await?;
        let now = Instant::now();
        if let Some(alive) = results.into_iter().next() {
            let alive: Vec<Option<String>> = redis::from_redis_value(alive)?;
            for (node, addr) in nodes.iter().zip(alive) {
                if addr.is_some() {
                    self.mirror.node_seen(node, now);
                }
            }
        }
        for node in self.mirror.expired_nodes(now, NODE_LEASE) {
            tracing::info!(node = %node, "node gone (its lease expired): forgetting its hosts");
            let applies = self.mirror.remove_node(&node);
            self.inner.apply(applies);
            self.inner.links.remove(&node);
        }
        self.mirror.prune(now, TOMBSTONE_TTL);
        self.inner.stats.remote_hosts(self.mirror.len());
        Ok(())
    }

    /// Renews the lease of every record this node holds; a record Redis
    /// lost is written again.
    async fn renew(&mut self, conn: &mut MultiplexedConnection) -> Result<()> {
        let lease = self.lease.as_millis() as u64;
        let node = Arc::clone(&self.inner.node);
        for chunk in self.local.published_keys().chunks(CHUNK) {
            let mut pipe = redis::pipe();
            for (router, host) in chunk {
                pipe.cmd("PEXPIRE").arg(self.keys.record(*router, &node, host)).arg(lease);
                pipe.cmd("PEXPIRE").arg(self.keys.index(*router, host)).arg(lease).ignore();
            }
            let renewed: Vec<bool> = pipe.query_async(conn).await?;
            for (key, renewed) in chunk.iter().zip(renewed) {
                if !renewed {
                    tracing::debug!(host = %key.1, router = %key.0, "record lost by the registry: writing it again");
                    self.local.published(key, None);
                    self.local.mark(key.clone());
                }
            }
        }
        self.flush(conn).await
    }

    /// Reads every node's records. With `sweep`, records this read did not
    /// see (and no event confirmed meanwhile) are forgotten.
    async fn read_all(&mut self, conn: &mut MultiplexedConnection, sweep: bool) -> Result<()> {
        self.mirror.begin_resync();
        let pattern = self.keys.records();
        let mut cursor: u64 = 0;
        let mut alive: HashMap<String, Option<String>> = HashMap::new();
        let mut applies = Vec::new();
        let mut seen = 0usize;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(CHUNK)
                .query_async(conn)
                .await?;
            let keys: Vec<String> = keys
                .into_iter()
                .filter(|k| self.keys.parse_record(k).is_some_and(|(_, node, _)| node != &*self.inner.node))
                .collect();
            if !keys.is_empty() {
                let values: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query_async(conn).await?;
                let unknown: Vec<String> = keys
                    .iter()
                    .filter_map(|k| self.keys.parse_record(k).map(|(_, node, _)| node.to_owned()))
                    .filter(|n| !alive.contains_key(n))
                    .collect::<std::collections::HashSet<_>>()
                    .into_iter()
                    .collect();
                if !unknown.is_empty() {
                    let addrs: Vec<Option<String>> = redis::cmd("MGET")
                        .arg(unknown.iter().map(|n| self.keys.node(n)).collect::<Vec<_>>())
                        .query_async(conn)
                        .await?;
                    alive.extend(unknown.into_iter().zip(addrs));
                }
                let now = Instant::now();
                for (key, value) in keys.iter().zip(values) {
                    let (Some((router, node, host)), Some(value)) = (self.keys.parse_record(key), value) else {
                        continue;
                    };
                    // A node whose liveness key is gone is not counted on.
                    if alive.get(node).is_none_or(Option::is_none) {
                        continue;
                    }
                    let Some((seq, ver, addr)) = parse_value(&value) else { continue };
                    seen += 1;
                    let record = Record { node: Arc::from(node), seq, ver, addr: Arc::from(addr) };
                    applies.extend(self.mirror.set((router, Arc::from(host)), record, now));
                }
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        if sweep {
            applies.extend(self.mirror.sweep());
        }
        tracing::debug!(records = seen, changes = applies.len(), sweep, "registry read");
        self.inner.apply(applies);
        self.inner.stats.remote_hosts(self.mirror.len());
        Ok(())
    }

    /// Asks where each host is; the held packets follow the answer.
    async fn lookup(&mut self, conn: &mut MultiplexedConnection, keys: Vec<Key>) -> Result<()> {
        for chunk in keys.chunks(CHUNK) {
            let mut pipe = redis::pipe();
            for (router, host) in chunk {
                pipe.cmd("SMEMBERS").arg(self.keys.index(*router, host));
            }
            let members: Vec<Vec<String>> = pipe.query_async(conn).await?;
            let mut pipe = redis::pipe();
            let mut asked = Vec::new();
            for ((router, host), nodes) in chunk.iter().zip(&members) {
                for node in nodes.iter().filter(|n| **n != *self.inner.node) {
                    pipe.cmd("GET").arg(self.keys.record(*router, node, host));
                    pipe.cmd("EXISTS").arg(self.keys.node(node));
                    asked.push(((*router, Arc::clone(host)), node.clone()));
                }
            }
            let mut applies: Vec<Apply> = Vec::new();
            if !asked.is_empty() {
                let answers: Vec<Value> = pipe.query_async(conn).await?;
                let now = Instant::now();
                for ((key, node), pair) in asked.into_iter().zip(answers.chunks(2)) {
                    let [value, alive] = pair else { continue };
                    let value: Option<String> = redis::from_redis_value(value.clone()).ok().flatten();
                    let alive: bool = redis::from_redis_value(alive.clone()).unwrap_or(false);
                    let Some((seq, ver, addr)) = value.as_deref().and_then(parse_value) else { continue };
                    if alive {
                        let record = Record { node: Arc::from(node.as_str()), seq, ver, addr: Arc::from(addr) };
                        applies.extend(self.mirror.set(key, record, now));
                    }
                }
            }
            self.inner.apply(applies);
            for key in chunk {
                let found = self.mirror.best(key).is_some();
                self.inner.answered(key, found);
            }
        }
        Ok(())
    }

    /// A pushed change.
    fn on_message(&mut self, text: &str) {
        let now = Instant::now();
        let apply = match parse_message(text) {
            Some(Message::Set { node, .. } | Message::Del { node, .. }) if node == &*self.inner.node => None,
            Some(Message::Set { router, node, seq, ver, addr, host }) => {
                let node: NodeId = Arc::from(node);
                self.mirror.node_seen(&node, now);
                self.mirror.set((router, Arc::from(host)), Record { node, seq, ver, addr: Arc::from(addr) }, now)
            }
            Some(Message::Del { router, node, ver, host }) => {
                self.mirror.delete((router, Arc::from(host)), &Arc::from(node), ver, now)
            }
            None => {
                tracing::debug!(message = text, "ignoring a malformed registry event");
                None
            }
        };
        self.inner.apply(apply);
    }

    /// Shutting down: this node's records go now rather than when their leases end.
    async fn leave(&mut self, conn: &mut MultiplexedConnection) {
        let node = Arc::clone(&self.inner.node);
        let mut pipe = redis::pipe();
        for (router, host) in self.local.published_keys() {
            let ver = self.next_ver();
            pipe.cmd("EVAL")
                .arg(DEL)
                .arg(2)
                .arg(self.keys.record(router, &node, &host))
                .arg(self.keys.index(router, &host))
                .arg(&*node)
                .arg(self.keys.channel())
                .arg(format!("del {router} {node} {ver} {host}"))
                .ignore();
        }
        pipe.cmd("DEL").arg(self.keys.node(&node)).ignore();
        match tokio::time::timeout(Duration::from_secs(2), pipe.query_async::<()>(conn)).await {
            Ok(Ok(())) => tracing::info!("left the cluster: this node's records are removed"),
            _ => tracing::warn!("could not remove this node's records; they expire with their leases"),
        }
    }
}

/// The next pushed event's text; pending forever without a session.
async fn next_message(session: &mut Option<Session>) -> Option<String> {
    match session {
        Some(s) => s.events.next().await.map(|msg| String::from_utf8_lossy(msg.get_payload_bytes()).into_owned()),
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: &str = "e87f56dd-fd57-4921-9ab8-a0847662daae";

    #[test]
    fn keys_parse_back() {
        let keys = Keys { prefix: "p*x".into() };
        let router = TunnelId::from_uuid(*uuid::Uuid::parse_str(NS).unwrap().as_bytes());
        let key = keys.record(router, "node-1", "host:with:colons");
        assert_eq!(keys.parse_record(&key), Some((router, "node-1", "host:with:colons")));
        assert_eq!(keys.parse_record("p*x:h:short"), None);
        assert_eq!(keys.parse_record(&keys.index(router, "h")), None);
        assert_eq!(keys.records(), "p\\*x:h:*");
    }

    #[test]
    fn values_and_messages_parse() {
        assert_eq!(parse_value("12 3 conn-id 1700000000000 10.0.0.2:7443"), Some((12, 3, "10.0.0.2:7443")));
        assert_eq!(parse_value("12 3 conn-id"), None);
        assert_eq!(parse_value("x 3 c 1 a"), None);
        let router = TunnelId::from_uuid(*uuid::Uuid::parse_str(NS).unwrap().as_bytes());
        assert_eq!(
            parse_message(&format!("set {NS} n1 7 2 10.0.0.1:7443 a host name")),
            Some(Message::Set { router, node: "n1", seq: 7, ver: 2, addr: "10.0.0.1:7443", host: "a host name" })
        );
        assert_eq!(
            parse_message(&format!("del {NS} n1 3 h")),
            Some(Message::Del { router, node: "n1", ver: 3, host: "h" })
        );
        assert_eq!(parse_message("set x"), None);
        assert_eq!(parse_message(&format!("put {NS} n1 3 h")), None);
    }
}
