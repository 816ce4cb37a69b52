//! A load generator for the rgost router server that needs no TUN device
//! (issue 5's second benchmark).
//!
//! It speaks the relay protocol itself: every client opens one TCP connection
//! to the server, sends an ASSOCIATE registering host `h{i}`, and then
//! exchanges `LEN(2) | PACKET` frames carrying IPv4/UDP packets. The server's
//! routes must map `10.77.(i >> 8).(i & 255)/32` to `h{i}` (the bench script
//! generates that YAML; see [`client_addr`]).
//!
//! Modes:
//! * `flow`: N clients in pairs (`h0 <-> h1`, `h2 <-> h3`, ...) send packets
//!   to each other as fast as TCP lets them for a bounded time; reports the
//!   packets and bytes delivered per second through the server and the
//!   server's CPU seconds per GB (from `/proc/PID/stat` of `--server-pid`).
//!   `--extra reading|stalled` adds one more client that every sender also
//!   addresses (every 8th packet); `stalled` never reads its socket, so the
//!   server's queue for it fills up: compare the pairs' throughput.
//! * `idle`: opens many connections, completes their handshakes and holds
//!   them; reports the server's RSS growth per connection.
//!
//! Output: human-readable lines on stderr, and one machine-readable line on
//! stdout starting with `RESULT` (`key=value` pairs) for the bench script.
//!
//! Every phase is bounded in time; all traffic goes to `--server` (loopback
//! inside the namespace the bench script created).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use rgost_relay::{Addr, DecodeError, Host, Request, Response, Status, frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Linux reports CPU times in /proc in USER_HZ ticks, 100 per second on every
/// architecture rgost targets.
const TICKS_PER_SEC: f64 = 100.0;

/// Bound on connecting and completing one handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// Handshakes in flight at once while connecting many clients.
const CONNECT_CONCURRENCY: usize = 200;

/// Every this many packets of a sender's batch go to the extra client.
const EXTRA_EVERY: usize = 8;

/// How long a closed-loop sender waits for its peer's progress before it
/// counts the packets in flight as lost.
const STALL_WAIT: Duration = Duration::from_millis(20);

#[derive(Parser)]
#[command(about = "Loopback load generator for the rgost router server")]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Clients in pairs send framed IPv4/UDP packets to each other.
    Flow(FlowArgs),
    /// Open many idle connections; report the server's RSS per connection.
    Idle(IdleArgs),
}

/// What the extra client (host `h{clients}`) does, if there is one.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Debug)]
enum Extra {
    /// No extra client; senders address only their peer.
    None,
    /// An extra client that reads everything sent to it.
    Reading,
    /// An extra client that registers and never reads.
    Stalled,
}

#[derive(clap::Args)]
struct Common {
    /// The router server (ip:port).
    #[arg(long)]
    server: SocketAddr,
    /// The server's pid, for its CPU time and RSS (/proc/PID/...).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Runtime worker threads (default: half the CPUs, at least 1).
    #[arg(long)]
    threads: Option<usize>,
    /// Bind client i to its own loopback source address 127.1.x.y (so the
    /// server's per-address connection limit and the ephemeral port range do
    /// not cap the client count). Only valid when the server is on loopback.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    spread_sources: bool,
}

#[derive(clap::Args)]
struct FlowArgs {
    #[command(flatten)]
    common: Common,
    /// Number of clients (even: they form pairs).
    #[arg(long, default_value_t = 2)]
    clients: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 5.0)]
    secs: f64,
    /// Seconds of traffic before measuring.
    #[arg(long, default_value_t = 0.5)]
    warmup: f64,
    /// UDP payload bytes per packet (the IP packet is 28 bytes longer).
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// Frames per write.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// The extra client.
    #[arg(long, value_enum, default_value_t = Extra::None)]
    extra: Extra,
    /// Closed loop: each sender keeps at most this many packets to its peer
    /// in flight (sent, not yet received); packets not received within 20 ms
    /// of a stall count as lost. 0 = open loop (write as fast as TCP allows,
    /// which overloads the server: a test of behaviour under overload).
    #[arg(long, default_value_t = 256)]
    window: u64,
}

#[derive(clap::Args)]
struct IdleArgs {
    #[command(flatten)]
    common: Common,
    /// Connections to open.
    #[arg(long, default_value_t = 10_000)]
    conns: usize,
    /// Seconds to wait after connecting before reading the RSS.
    #[arg(long, default_value_t = 2.0)]
    settle: f64,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let common = match &cli.mode {
        Mode::Flow(a) => &a.common,
        Mode::Idle(a) => &a.common,
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = common.threads.unwrap_or((cpus / 2).max(1));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()?;
    let result = runtime.block_on(async {
        match cli.mode {
            Mode::Flow(args) => flow(args).await,
            Mode::Idle(args) => idle(args).await,
        }
    });
    // Do not wait for tasks blocked on sockets (the stalled client's peers).
    runtime.shutdown_timeout(Duration::from_millis(200));
    result
}

/// The tunnel address of client `i`: 10.77.(i >> 8).(i & 255).
fn client_addr(i: usize) -> [u8; 4] {
    [10, 77, ((i >> 8) & 0xff) as u8, (i & 0xff) as u8]
}

/// The loopback source address client `i` binds to: 127.1.x.y, y in 1..=250.
fn source_addr(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 1, ((i / 250) & 0xff) as u8, (i % 250 + 1) as u8))
}

/// An IPv4/UDP packet with a valid header checksum (UDP checksum 0 = none).
fn udp_packet(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: usize) -> Vec<u8> {
    let total = 20 + 8 + payload;
    let total16 = u16::try_from(total).unwrap_or(u16::MAX);
    let mut p = Vec::with_capacity(total);
    p.extend_from_slice(&[0x45, 0]);
    p.extend_from_slice(&total16.to_be_bytes());
    p.extend_from_slice(&[0, 1, 0x40, 0, 64, 17, 0, 0]); // id 1, DF, TTL 64, UDP, checksum later
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    let mut sum: u32 = 0;
    for pair in p.chunks_exact(2) {
        sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let checksum = !(sum as u16);
    p[10..12].copy_from_slice(&checksum.to_be_bytes());
    let udp_len = u16::try_from(8 + payload).unwrap_or(u16::MAX);
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&udp_len.to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend((0..payload).map(|k| k as u8));
    p
}

/// Connects client `i` and registers it as host `h{i}`; returns the stream
/// and any bytes that arrived after the response.
async fn connect(common: &Common, i: usize) -> Result<Client> {
    let work = async {
        let socket = if common.server.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        if common.spread_sources && common.server.ip().is_loopback() && common.server.is_ipv4() {
            socket.bind(SocketAddr::new(source_addr(i), 0))?;
        }
        let mut stream = socket.connect(common.server).await?;
        stream.set_nodelay(true)?;
        let src = Addr { host: Host::Ipv4(Ipv4Addr::from(client_addr(i))), port: 0 };
        let mut out = Vec::new();
        Request::associate(None, src, format!("h{i}").as_bytes(), None).encode(&mut out);
        stream.write_all(&out).await?;
        let mut buf = Vec::with_capacity(256);
        loop {
            match Response::decode(&buf) {
                Ok((response, used)) => {
                    if response.status != Status::Ok {
                        bail!("the server refused host h{i}: {:?}", response.status);
                    }
                    return Ok((stream, buf.split_off(used)));
                }
                Err(DecodeError::Incomplete(_)) => {
                    if stream.read_buf(&mut buf).await? == 0 {
                        bail!("the server closed the connection of h{i} during the handshake");
                    }
                }
                Err(e) => bail!("bad response for h{i}: {e}"),
            }
        }
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, work).await.with_context(|| format!("handshake of h{i} timed out"))?
}

/// A registered client: its stream and the bytes read past the handshake.
type Client = (TcpStream, Vec<u8>);

/// Connects clients `range` with bounded concurrency, in order.
async fn connect_many(common: &Arc<Common>, range: std::ops::Range<usize>) -> Result<Vec<Client>> {
    let mut out = Vec::with_capacity(range.len());
    let ids: Vec<usize> = range.collect();
    for chunk in ids.chunks(CONNECT_CONCURRENCY) {
        let tasks: Vec<JoinHandle<Result<Client>>> = chunk
            .iter()
            .map(|&i| {
                let common = Arc::clone(common);
                tokio::spawn(async move { connect(&common, i).await })
            })
            .collect();
        for task in tasks {
            out.push(task.await??);
        }
    }
    Ok(out)
}

/// Shared counters, added to once per read or write (not per packet).
#[derive(Default)]
struct Counters {
    sent_pkts: AtomicU64,
    recv_pkts: AtomicU64,
    recv_bytes: AtomicU64,
    extra_pkts: AtomicU64,
}

#[derive(Clone, Copy)]
struct Snapshot {
    at: Instant,
    sent_pkts: u64,
    recv_pkts: u64,
    recv_bytes: u64,
    extra_pkts: u64,
    server_ticks: Option<u64>,
    own_ticks: Option<u64>,
}

impl Counters {
    fn snapshot(&self, server_pid: Option<u32>) -> Snapshot {
        Snapshot {
            at: Instant::now(),
            sent_pkts: self.sent_pkts.load(Ordering::Relaxed),
            recv_pkts: self.recv_pkts.load(Ordering::Relaxed),
            recv_bytes: self.recv_bytes.load(Ordering::Relaxed),
            extra_pkts: self.extra_pkts.load(Ordering::Relaxed),
            server_ticks: server_pid.and_then(|p| cpu_ticks(&p.to_string())),
            own_ticks: cpu_ticks("self"),
        }
    }
}

/// utime + stime of a process, in ticks, from /proc/PID/stat.
fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; the fields after it are fixed.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Resident set size of a process in KiB, from /proc/PID/status.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// One direction of a pair: packets its sender wrote to the peer, and the
/// packets the peer received from it (for the closed loop).
#[derive(Default)]
struct Lane {
    received: AtomicU64,
    progress: tokio::sync::Notify,
}

/// Sends `batch` (many frames, `to_peer` of them to the peer) over and over
/// until aborted; with `window > 0` keeps at most `window` packets to the
/// peer in flight.
async fn send_loop(
    mut writer: tokio::net::tcp::OwnedWriteHalf,
    batch: Arc<Vec<u8>>,
    frames: u64,
    to_peer: u64,
    window: u64,
    lane: Arc<Lane>,
    c: Arc<Counters>,
) {
    let (mut sent, mut forgiven) = (0u64, 0u64);
    loop {
        if window > 0 {
            loop {
                let received = lane.received.load(Ordering::Relaxed);
                let in_flight = sent.saturating_sub(received + forgiven);
                if in_flight + to_peer <= window.max(to_peer) {
                    break;
                }
                if tokio::time::timeout(STALL_WAIT, lane.progress.notified()).await.is_err() {
                    // No progress for a while: what is in flight was dropped.
                    forgiven += in_flight;
                }
            }
        }
        if writer.write_all(&batch).await.is_err() {
            return;
        }
        sent += to_peer;
        c.sent_pkts.fetch_add(frames, Ordering::Relaxed);
    }
}

/// Reads frames until aborted or the connection ends, counting packets and
/// their bytes (IP packets, without the 2-byte frame headers).
async fn recv_loop(
    mut reader: tokio::net::tcp::OwnedReadHalf,
    initial: Vec<u8>,
    lane: Option<Arc<Lane>>,
    c: Arc<Counters>,
) {
    let mut buf = vec![0u8; 256 * 1024];
    let mut filled = initial.len().min(buf.len());
    buf[..filled].copy_from_slice(&initial[..filled]);
    loop {
        let mut pos = 0;
        let (mut pkts, mut bytes) = (0u64, 0u64);
        while let Some(view) = buf.get(pos..filled) {
            match frame::peek(view) {
                frame::FrameStatus::Complete { total } => {
                    pkts += 1;
                    bytes += (total - frame::HEADER_LEN) as u64;
                    pos += total;
                }
                frame::FrameStatus::Incomplete(_) => break,
            }
        }
        match &lane {
            None => {
                c.extra_pkts.fetch_add(pkts, Ordering::Relaxed);
            }
            Some(lane) => {
                c.recv_pkts.fetch_add(pkts, Ordering::Relaxed);
                c.recv_bytes.fetch_add(bytes, Ordering::Relaxed);
                if pkts > 0 {
                    lane.received.fetch_add(pkts, Ordering::Relaxed);
                    lane.progress.notify_one();
                }
            }
        }
        buf.copy_within(pos..filled, 0);
        filled -= pos;
        match reader.read(&mut buf[filled..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => filled += n,
        }
    }
}

async fn flow(args: FlowArgs) -> Result<()> {
    if args.clients < 2 || !args.clients.is_multiple_of(2) {
        bail!("--clients must be even and at least 2");
    }
    if args.batch == 0 || args.secs <= 0.0 {
        bail!("--batch and --secs must be positive");
    }
    let n = args.clients;
    let server_pid = args.common.server_pid;
    let common = Arc::new(args.common);
    let with_extra = args.extra != Extra::None;
    let total = n + usize::from(with_extra);

    let t0 = Instant::now();
    let conns = connect_many(&common, 0..total).await?;
    eprintln!("loadgen: {total} clients connected in {:.2} s", t0.elapsed().as_secs_f64());

    let counters = Arc::new(Counters::default());
    // lanes[i]: packets from client i to its peer.
    let lanes: Vec<Arc<Lane>> = (0..n).map(|_| Arc::new(Lane::default())).collect();
    let mut tasks: Vec<JoinHandle<()>> = Vec::with_capacity(2 * total);
    let mut held = Vec::new(); // the stalled client's socket, kept open and never read
    let mut held_writers = Vec::new(); // the reading extra client's (unused) write half
    for (i, (stream, initial)) in conns.into_iter().enumerate() {
        if i == n {
            // The extra client.
            if args.extra == Extra::Stalled {
                held.push(stream);
            } else {
                // Keep the write half: dropping it would send a FIN.
                let (reader, writer) = stream.into_split();
                held_writers.push(writer);
                tasks.push(tokio::spawn(recv_loop(reader, initial, None, Arc::clone(&counters))));
            }
            continue;
        }
        let me = client_addr(i);
        let peer = client_addr(i ^ 1);
        let extra = client_addr(n);
        let mut batch = Vec::with_capacity(args.batch * (args.payload + 30));
        let mut to_peer = 0u64;
        for k in 0..args.batch {
            let dst = if with_extra && k % EXTRA_EVERY == EXTRA_EVERY - 1 { extra } else { peer };
            to_peer += u64::from(dst == peer);
            // Ports vary per packet so a multi-connection host spreads flows.
            let sport = 10_000 + (k % 16) as u16;
            frame::encode(&udp_packet(me, dst, sport, 9, args.payload), &mut batch);
        }
        let (reader, writer) = stream.into_split();
        // What this client receives comes from its peer: credit the peer's lane.
        tasks.push(tokio::spawn(recv_loop(reader, initial, Some(Arc::clone(&lanes[i ^ 1])), Arc::clone(&counters))));
        tasks.push(tokio::spawn(send_loop(
            writer,
            Arc::new(batch),
            args.batch as u64,
            to_peer,
            args.window,
            Arc::clone(&lanes[i]),
            Arc::clone(&counters),
        )));
    }

    tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;
    let a = counters.snapshot(server_pid);
    tokio::time::sleep(Duration::from_secs_f64(args.secs)).await;
    let b = counters.snapshot(server_pid);
    for task in &tasks {
        task.abort();
    }
    drop(held);
    drop(held_writers);

    let secs = (b.at - a.at).as_secs_f64();
    let pkts = b.recv_pkts - a.recv_pkts;
    let bytes = b.recv_bytes - a.recv_bytes;
    let sent = b.sent_pkts - a.sent_pkts;
    let extra_pkts = b.extra_pkts - a.extra_pkts;
    let pps = pkts as f64 / secs;
    let gbps = bytes as f64 * 8.0 / secs / 1e9;
    let gb = bytes as f64 / 1e9;
    let fmt_opt = |v: Option<f64>| v.map_or_else(|| "NA".to_owned(), |v| format!("{v:.3}"));
    let server_cpu = match (a.server_ticks, b.server_ticks) {
        (Some(x), Some(y)) => Some((y - x) as f64 / TICKS_PER_SEC),
        _ => None,
    };
    let own_cpu = match (a.own_ticks, b.own_ticks) {
        (Some(x), Some(y)) => Some((y - x) as f64 / TICKS_PER_SEC),
        _ => None,
    };
    let per_gb = server_cpu.filter(|_| gb > 0.0).map(|c| c / gb);
    // Packets the senders wrote to the pairs (the extra client's share excluded).
    let sent_to_pairs = if with_extra { sent - sent / EXTRA_EVERY as u64 } else { sent };
    let delivered_pct = if sent_to_pairs > 0 { 100.0 * pkts as f64 / sent_to_pairs as f64 } else { 0.0 };
    eprintln!(
        "loadgen: flow clients={n} extra={:?} payload={} : {:.0} packets/s delivered ({:.3} Gb/s), {:.0} sent/s, \
         {delivered_pct:.1}% delivered, server CPU {} s ({} s/GB), loadgen CPU {} s",
        args.extra,
        args.payload,
        pps,
        gbps,
        sent as f64 / secs,
        fmt_opt(server_cpu),
        fmt_opt(per_gb),
        fmt_opt(own_cpu),
    );
    println!(
        "RESULT mode=flow clients={n} extra={} payload={} window={} secs={secs:.3} pps={pps:.0} gbps={gbps:.4} \
         sent_pps={:.0} delivered_pct={delivered_pct:.1} extra_pps={:.0} server_cpu_s={} server_cpu_s_per_gb={} \
         loadgen_cpu_s={}",
        format!("{:?}", args.extra).to_lowercase(),
        args.payload,
        args.window,
        sent as f64 / secs,
        extra_pkts as f64 / secs,
        fmt_opt(server_cpu),
        fmt_opt(per_gb),
        fmt_opt(own_cpu),
    );
    if pkts == 0 {
        bail!("no packet was delivered through the server");
    }
    Ok(())
}

async fn idle(args: IdleArgs) -> Result<()> {
    let Some(pid) = args.common.server_pid else { bail!("idle mode needs --server-pid") };
    let common = Arc::new(args.common);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib(pid).context("read the server's RSS")?;
    let t0 = Instant::now();
    let conns = connect_many(&common, 0..args.conns).await?;
    let connect_secs = t0.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs_f64(args.settle)).await;
    let after = rss_kib(pid).context("read the server's RSS")?;
    let per_conn = (after.saturating_sub(before) * 1024) as f64 / conns.len().max(1) as f64;
    eprintln!(
        "loadgen: idle {} connections in {connect_secs:.2} s; server RSS {before} KiB -> {after} KiB: {per_conn:.0} bytes per connection",
        conns.len()
    );
    println!(
        "RESULT mode=idle conns={} rss_before_kib={before} rss_after_kib={after} per_conn_bytes={per_conn:.0} connect_secs={connect_secs:.2}",
        conns.len()
    );
    drop(conns);
    Ok(())
}
