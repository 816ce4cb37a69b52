//! `cluster`: the registry of a cluster of router servers under churn.
//!
//! Many hosts register across the nodes at once (round-robin); the Redis
//! the nodes share is asked (a few raw commands, no client library) how
//! many keys and how much memory that made, and when every record was
//! written. Then a host moves between nodes again and again while one
//! prober per node keeps sending it packets: how long after the move did
//! every node's packets reach the new connection? Last, everything closes
//! and the time until Redis holds no record of them is measured.
//!
//! Reports `RESULT hosts=.. handshakes_per_s=.. registrations_per_s=..
//! redis_bytes_per_host=.. keys_per_host=.. move_ms_median=.. move_ms_p90=..
//! move_ms_max=.. moves=.. deregistrations_per_s=..`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rgost_relay::frame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::{Client, Common, client_addr, connect_as, percentile, udp_packet};

/// Bound on waiting for Redis to show the registrations (or their removal).
const WRITE_TIMEOUT: Duration = Duration::from_secs(120);
/// Bound on one move reaching every node.
const MOVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Index of the first churning host (0..3 probers, 3 the moving host).
const FIRST: usize = 10;

#[derive(clap::Args)]
pub(crate) struct ClusterArgs {
    /// The nodes' router services (ip:port), comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    servers: Vec<SocketAddr>,
    /// The redis the nodes share (ip:port).
    #[arg(long)]
    redis: SocketAddr,
    /// Hosts that register, spread over the nodes.
    #[arg(long, default_value_t = 10_000)]
    hosts: usize,
    /// Handshakes in flight at once.
    #[arg(long, default_value_t = 500)]
    concurrency: usize,
    /// How many times the moving host moves.
    #[arg(long, default_value_t = 30)]
    moves: usize,
    /// Runtime worker threads (default: half the CPUs, at least 1).
    #[arg(long)]
    pub(crate) threads: Option<usize>,
}

/// One raw redis command; its reply as text (integer, status or bulk string).
async fn redis(addr: SocketAddr, args: &[&str]) -> Result<String> {
    let work = async {
        let mut stream = TcpStream::connect(addr).await?;
        let mut out = format!("*{}\r\n", args.len());
        for a in args {
            out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        stream.write_all(out.as_bytes()).await?;
        let mut buf = Vec::new();
        loop {
            if let Some(reply) = parse_reply(&buf)? {
                return Ok(reply);
            }
            if stream.read_buf(&mut buf).await? == 0 {
                bail!("redis closed the connection");
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), work).await.context("redis did not answer")?
}

/// A complete reply at the start of `buf`, if there is one.
fn parse_reply(buf: &[u8]) -> Result<Option<String>> {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else { return Ok(None) };
    let line = String::from_utf8_lossy(&buf[1..end]).into_owned();
    match buf.first() {
        Some(b':' | b'+') => Ok(Some(line)),
        Some(b'-') => bail!("redis: {line}"),
        Some(b'$') => {
            let len: usize = line.parse().context("bulk length")?;
            let body = end + 2;
            Ok(buf.get(body..body + len).map(|b| String::from_utf8_lossy(b).into_owned()))
        }
        _ => bail!("unexpected redis reply"),
    }
}

async fn dbsize(addr: SocketAddr) -> Result<u64> {
    Ok(redis(addr, &["DBSIZE"]).await?.trim().parse()?)
}

async fn used_memory(addr: SocketAddr) -> Result<u64> {
    let info = redis(addr, &["INFO", "memory"]).await?;
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .context("INFO memory has no used_memory")
}

/// Waits until redis holds `want` keys (at least, or at most); returns when.
async fn wait_keys(addr: SocketAddr, at_least: bool, want: u64) -> Result<Instant> {
    let deadline = Instant::now() + WRITE_TIMEOUT;
    loop {
        let n = dbsize(addr).await?;
        if (at_least && n >= want) || (!at_least && n <= want) {
            return Ok(Instant::now());
        }
        if Instant::now() > deadline {
            bail!("redis holds {n} keys, expected {} {want}", if at_least { ">=" } else { "<=" });
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn common(server: SocketAddr) -> Common {
    Common { server, server_pid: None, threads: None, tls: false, spread_sources: true }
}

pub(crate) async fn cluster(args: ClusterArgs) -> Result<()> {
    let servers: Vec<Arc<Common>> = args.servers.iter().map(|s| Arc::new(common(*s))).collect();
    let n = servers.len();
    if n < 2 {
        bail!("cluster mode needs at least two --servers");
    }
    let keys0 = dbsize(args.redis).await?;
    let mem0 = used_memory(args.redis).await?;

    // Registrations: every host on one node, round-robin.
    let t0 = Instant::now();
    let mut held: Vec<Client> = Vec::with_capacity(args.hosts);
    let ids: Vec<usize> = (FIRST..FIRST + args.hosts).collect();
    for chunk in ids.chunks(args.concurrency.max(1)) {
        let tasks: Vec<JoinHandle<Result<Client>>> = chunk
            .iter()
            .map(|&i| {
                let common = Arc::clone(&servers[i % n]);
                tokio::spawn(async move { connect_as(&common, i, &format!("h{i}"), None).await })
            })
            .collect();
        for task in tasks {
            held.push(task.await??);
        }
    }
    let connected = t0.elapsed().as_secs_f64();
    // A record and an index key per host (and a liveness key per node, there before).
    let written_at = wait_keys(args.redis, true, keys0 + 2 * args.hosts as u64).await?;
    let written = written_at.duration_since(t0).as_secs_f64();
    let mem1 = used_memory(args.redis).await?;
    let keys1 = dbsize(args.redis).await?;
    eprintln!(
        "loadgen: {} hosts over {n} nodes: handshakes done after {connected:.2} s, every record in redis after {written:.2} s; redis +{} bytes, +{} keys",
        args.hosts,
        mem1.saturating_sub(mem0),
        keys1.saturating_sub(keys0)
    );

    let moves = moves(&servers, args.moves).await?;

    // Everything closes; the records go.
    let t1 = Instant::now();
    drop(held);
    let released_at = wait_keys(args.redis, false, keys0 + 2).await?;
    let released = released_at.duration_since(t1).as_secs_f64();
    eprintln!("loadgen: every record removed {released:.2} s after the hosts closed");

    let mut sorted = moves.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "RESULT hosts={} nodes={n} handshakes_per_s={:.0} registrations_per_s={:.0} redis_bytes_per_host={:.0} keys_per_host={:.2} \
         move_ms_median={:.2} move_ms_p90={:.2} move_ms_max={:.2} moves={} deregistrations_per_s={:.0}",
        args.hosts,
        args.hosts as f64 / connected,
        args.hosts as f64 / written,
        mem1.saturating_sub(mem0) as f64 / args.hosts as f64,
        keys1.saturating_sub(keys0) as f64 / args.hosts as f64,
        percentile(&sorted, 50.0),
        percentile(&sorted, 90.0),
        sorted.last().copied().unwrap_or(f64::NAN),
        sorted.len(),
        args.hosts as f64 / released,
    );
    Ok(())
}

/// Moves host `h3` from node to node `count` times while a prober on each
/// node (hosts h0..) sends it a packet every millisecond. Returns, per move,
/// the milliseconds until the new connection had a packet from every prober.
async fn moves(servers: &[Arc<Common>], count: usize) -> Result<Vec<f64>> {
    let n = servers.len();
    let target = 3;
    let stop = Arc::new(AtomicU64::new(0));
    let mut probers = Vec::new();
    for (p, common) in servers.iter().enumerate() {
        let (stream, _) = connect_as(common, p, &format!("h{p}"), None).await?;
        let (reader, writer) = stream.split();
        let stop = Arc::clone(&stop);
        probers.push(tokio::spawn(async move {
            let _reader = reader;
            let mut writer = writer;
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut packet = udp_packet(client_addr(p), client_addr(target), 9, 9, 8);
            packet[28] = p as u8;
            let mut out = Vec::new();
            frame::encode(&packet, &mut out);
            while stop.load(Ordering::Relaxed) == 0 {
                tick.tick().await;
                if writer.write_all(&out).await.is_err() {
                    return;
                }
            }
        }));
    }
    let mut delays = Vec::with_capacity(count);
    let mut previous: Option<TcpStream> = None;
    // The first placement is not a move: it only gives the host a home.
    for m in 0..=count {
        let common = &servers[m % n];
        let started = Instant::now();
        let (stream, initial) = connect_as(common, target, &format!("h{target}"), None).await?;
        let seen = first_from_every_prober(stream.into_tcp()?, initial, n, started).await;
        match seen {
            Some((stream, ms)) => {
                if m > 0 {
                    delays.push(ms);
                }
                // The old connection closes; the new one stays until the next move.
                previous = Some(stream);
            }
            None => bail!("move {m}: not every node's packets reached the new connection within {MOVE_TIMEOUT:?}"),
        }
        // Let the old connection's close settle before the next move.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(previous);
    stop.store(1, Ordering::Relaxed);
    for p in probers {
        let _ = p.await;
    }
    Ok(delays)
}

/// Reads the new connection until a packet from every one of `n` probers
/// arrived; returns the stream and the milliseconds since `started`.
async fn first_from_every_prober(
    mut stream: TcpStream,
    initial: Vec<u8>,
    n: usize,
    started: Instant,
) -> Option<(TcpStream, f64)> {
    let mut seen = vec![false; n];
    let mut buf = initial;
    let deadline = started + MOVE_TIMEOUT;
    loop {
        let mut pos = 0;
        while let Some((packet, _)) = buf.get(pos..).and_then(frame::split) {
            if let Some(p) = packet.get(28).map(|b| usize::from(*b)).filter(|p| *p < n) {
                seen[p] = true;
            }
            pos += packet.len() + frame::HEADER_LEN;
        }
        buf.drain(..pos);
        if seen.iter().all(|s| *s) {
            return Some((stream, started.elapsed().as_secs_f64() * 1000.0));
        }
        let mut chunk = [0u8; 16 * 1024];
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(k)) if k > 0 => buf.extend_from_slice(&chunk[..k]),
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_replies() {
        assert_eq!(parse_reply(b":42\r\n").unwrap(), Some("42".into()));
        assert_eq!(parse_reply(b"$5\r\nhel").unwrap(), None);
        assert_eq!(parse_reply(b"$5\r\nhello\r\n").unwrap(), Some("hello".into()));
        assert_eq!(parse_reply(b"+OK\r\n").unwrap(), Some("OK".into()));
        assert!(parse_reply(b"-ERR x\r\n").is_err());
        assert_eq!(parse_reply(b":4").unwrap(), None);
    }
}
