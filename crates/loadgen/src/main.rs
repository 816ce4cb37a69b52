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
//! * `churn`: while an honest pair exchanges timestamped packets (and a
//!   fresh honest handshake is timed every 250 ms) in one namespace, many
//!   hosts register at once in another namespace, hold, then all close at
//!   once; reports the pair's latency percentiles and losses, the slowest
//!   honest handshake, and how long the server took to release every
//!   connection (its open file descriptors back to the baseline).
//! * `memory`: hosts registered by connections that never read are fed the
//!   largest packets for a while; reports the server's RSS before, at its
//!   peak and some seconds after everything closed.
//! * `cluster`: hosts register across the nodes of a cluster; reports
//!   registrations per second, the Redis memory per host and how long a
//!   host's move takes to be seen by every node (see [`cluster`]).
//!
//! Output: human-readable lines on stderr, and one machine-readable line on
//! stdout starting with `RESULT` (`key=value` pairs) for the bench script.
//!
//! Every phase is bounded in time; all traffic goes to `--server` (loopback
//! inside the namespace the bench script created).

mod cluster;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use rgost_relay::{Addr, DecodeError, Host, Request, Response, Status, TunnelId, frame};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
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
/// counts the packets in flight as lost: TCP's smallest retransmission
/// timeout. Shorter, a server that is only slow (1,000 busy clients on 2
/// CPUs take longer than 20 ms to go round) would be overloaded by the
/// senders' own false alarms: each one puts another window in flight.
const STALL_WAIT: Duration = Duration::from_millis(200);

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
    /// Many hosts register and close at once while an honest pair measures latency.
    Churn(ChurnArgs),
    /// Receivers that never read are fed the largest packets; RSS before, peak, after.
    Memory(MemoryArgs),
    /// A cluster's registry under churn: registrations, Redis memory, how fast a move is seen.
    Cluster(cluster::ClusterArgs),
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
    /// Speak TLS to the server (a `listener: tls`; its certificate is not verified).
    #[arg(long)]
    tls: bool,
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

#[derive(clap::Args)]
struct ChurnArgs {
    #[command(flatten)]
    common: Common,
    /// Hosts that register at once (in a namespace of their own), then close at once.
    #[arg(long, default_value_t = 10_000)]
    hosts: usize,
    /// Handshakes in flight at once while they register.
    #[arg(long, default_value_t = 2_000)]
    concurrency: usize,
    /// Seconds the hosts stay registered.
    #[arg(long, default_value_t = 2.0)]
    hold: f64,
    /// Packets per second the honest pair sends (each way counted once).
    #[arg(long, default_value_t = 500)]
    rate: u64,
    /// Bound on waiting for the server to release every connection.
    #[arg(long, default_value_t = 30.0)]
    release_timeout: f64,
}

#[derive(clap::Args)]
struct MemoryArgs {
    #[command(flatten)]
    common: Common,
    /// Receiving hosts.
    #[arg(long, default_value_t = 1)]
    hosts: usize,
    /// Connections registering each receiving host; none of them reads.
    #[arg(long, default_value_t = 50)]
    conns_per_host: usize,
    /// IP packet length (at most 65535).
    #[arg(long, default_value_t = 65_535)]
    packet: usize,
    /// Seconds of feeding.
    #[arg(long, default_value_t = 5.0)]
    secs: f64,
    /// Seconds after everything closed before the last RSS reading.
    #[arg(long, default_value_t = 10.0)]
    after: f64,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let threads = match &cli.mode {
        Mode::Flow(a) => a.common.threads,
        Mode::Idle(a) => a.common.threads,
        Mode::Churn(a) => a.common.threads,
        Mode::Memory(a) => a.common.threads,
        Mode::Cluster(a) => a.threads,
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = threads.unwrap_or((cpus / 2).max(1));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()?;
    let result = runtime.block_on(async {
        match cli.mode {
            Mode::Flow(args) => flow(args).await,
            Mode::Idle(args) => idle(args).await,
            Mode::Churn(args) => churn(args).await,
            Mode::Memory(args) => memory(args).await,
            Mode::Cluster(args) => cluster::cluster(args).await,
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
    connect_as(common, i, &format!("h{i}"), None).await
}

/// Connects client `i` (its source address) and registers it as `host` in
/// namespace `router_id` (the zero id when `None`).
async fn connect_as(common: &Common, i: usize, host: &str, router_id: Option<TunnelId>) -> Result<Client> {
    let work = async {
        let socket = if common.server.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        if common.spread_sources && common.server.ip().is_loopback() && common.server.is_ipv4() {
            socket.bind(SocketAddr::new(source_addr(i), 0))?;
        }
        let stream = socket.connect(common.server).await?;
        stream.set_nodelay(true)?;
        let src = Addr { host: Host::Ipv4(Ipv4Addr::from(client_addr(i))), port: 0 };
        let mut out = Vec::new();
        Request::associate(None, src, host.as_bytes(), router_id).encode(&mut out);
        if !common.tls {
            let mut stream = stream;
            let rest = associate(&mut stream, &out, host).await?;
            return Ok((Stream::Tcp(stream), rest));
        }
        let settings = rgost_config::TlsClientSettings::default();
        let (config, name) = rgost_transport::tls::client_config(&settings, &common.server.to_string())
            .map_err(|e| anyhow::anyhow!("TLS set-up: {e}"))?;
        let mut stream = tokio_rustls::TlsConnector::from(config)
            .connect(name, rgost_transport::readahead::ReadAhead::new(stream))
            .await?;
        let rest = associate(&mut stream, &out, host).await?;
        Ok((Stream::Tls(Box::new(stream)), rest))
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, work).await.with_context(|| format!("handshake of {host} timed out"))?
}

/// Sends `request` and reads the response; returns the bytes read past it.
async fn associate<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, request: &[u8], host: &str) -> Result<Vec<u8>> {
    stream.write_all(request).await?;
    stream.flush().await?;
    let mut buf = Vec::with_capacity(256);
    loop {
        match Response::decode(&buf) {
            Ok((response, used)) => {
                if response.status != Status::Ok {
                    bail!("the server refused host {host}: {:?}", response.status);
                }
                return Ok(buf.split_off(used));
            }
            Err(DecodeError::Incomplete(_)) => {
                if stream.read_buf(&mut buf).await? == 0 {
                    bail!("the server closed the connection of {host} during the handshake");
                }
            }
            Err(e) => bail!("bad response for {host}: {e}"),
        }
    }
}

/// A client's connection: plain TCP or TLS.
enum Stream {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<rgost_transport::readahead::ReadAhead<TcpStream>>>),
}

type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

impl Stream {
    fn split(self) -> (BoxRead, BoxWrite) {
        match self {
            Stream::Tcp(s) => {
                let (r, w) = s.into_split();
                (Box::new(r), Box::new(w))
            }
            Stream::Tls(s) => {
                let (r, w) = tokio::io::split(*s);
                (Box::new(r), Box::new(w))
            }
        }
    }

    fn into_tcp(self) -> Result<TcpStream> {
        match self {
            Stream::Tcp(s) => Ok(s),
            Stream::Tls(_) => bail!("this mode runs over plain TCP only"),
        }
    }
}

/// A registered client: its stream and the bytes read past the handshake.
type Client = (Stream, Vec<u8>);

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
    mut writer: BoxWrite,
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
async fn recv_loop(mut reader: BoxRead, initial: Vec<u8>, lane: Option<Arc<Lane>>, c: Arc<Counters>) {
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
                let (reader, writer) = stream.split();
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
        let (reader, writer) = stream.split();
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

/// Open file descriptors of a process (its sockets among them).
fn open_fds(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// Percentile `p` (0..=100) of sorted `values`.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// The honest pair's probe traffic: h0 sends `rate` timestamped packets per
/// second to h1, which records each one's delay. Runs until `stop`.
struct Probe {
    sent: AtomicU64,
    /// (sent at, in s since the start; delay in µs) of every packet received.
    delays_us: std::sync::Mutex<Vec<(f64, f64)>>,
}

async fn probe_sender(
    mut writer: tokio::net::tcp::OwnedWriteHalf,
    rate: u64,
    t0: Instant,
    probe: Arc<Probe>,
    stop: tokio_util_stop::Stop,
) {
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut seq = 0u64;
    while !stop.is_set() {
        tick.tick().await;
        let mut packet = udp_packet(client_addr(0), client_addr(1), 7, 7, 16);
        let at = t0.elapsed().as_nanos() as u64;
        packet[28..36].copy_from_slice(&seq.to_be_bytes());
        packet[36..44].copy_from_slice(&at.to_be_bytes());
        let mut out = Vec::with_capacity(packet.len() + 2);
        frame::encode(&packet, &mut out);
        if writer.write_all(&out).await.is_err() {
            return;
        }
        seq += 1;
        probe.sent.store(seq, Ordering::Relaxed);
    }
}

async fn probe_receiver(mut reader: tokio::net::tcp::OwnedReadHalf, initial: Vec<u8>, t0: Instant, probe: Arc<Probe>) {
    let mut buf = initial;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let mut pos = 0;
        while let Some((packet, _)) = buf.get(pos..).and_then(frame::split) {
            if let Some(at) = packet.get(36..44).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
                let at = u64::from_be_bytes(at);
                let delay = (t0.elapsed().as_nanos() as u64).saturating_sub(at);
                if let Ok(mut d) = probe.delays_us.lock() {
                    d.push((at as f64 / 1e9, delay as f64 / 1000.0));
                }
            }
            pos += packet.len() + frame::HEADER_LEN;
        }
        buf.drain(..pos);
        match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A flag tasks poll to stop.
mod tokio_util_stop {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[derive(Clone, Default)]
    pub(crate) struct Stop(Arc<AtomicBool>);

    impl Stop {
        pub(crate) fn set(&self) {
            self.0.store(true, Ordering::Relaxed);
        }

        pub(crate) fn is_set(&self) -> bool {
            self.0.load(Ordering::Relaxed)
        }
    }
}

/// Times a fresh honest handshake every 250 ms until `stop`; returns the slowest (s) and the failures.
async fn handshake_prober(common: Arc<Common>, first: usize, stop: tokio_util_stop::Stop) -> (f64, u64, u64) {
    let (mut slowest, mut count, mut failed) = (0.0f64, 0u64, 0u64);
    let mut k = 0;
    while !stop.is_set() {
        let t = Instant::now();
        match connect_as(&common, first + k, &format!("probe{k}"), None).await {
            Ok(conn) => {
                slowest = slowest.max(t.elapsed().as_secs_f64());
                drop(conn);
            }
            Err(e) => {
                eprintln!("loadgen: honest handshake failed: {e:#}");
                failed += 1;
                slowest = slowest.max(t.elapsed().as_secs_f64());
            }
        }
        count += 1;
        k += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    (slowest, count, failed)
}

async fn churn(args: ChurnArgs) -> Result<()> {
    let Some(pid) = args.common.server_pid else { bail!("churn mode needs --server-pid") };
    let common = Arc::new(args.common);
    // Client indices: 0 and 1 the honest pair, then the churning hosts, then the handshake probes.
    let pair = connect_many(&common, 0..2).await?;
    let baseline_fds = open_fds(pid).context("read the server's open files")?;
    let t0 = Instant::now();
    let probe = Arc::new(Probe { sent: AtomicU64::new(0), delays_us: std::sync::Mutex::new(Vec::new()) });
    let stop = tokio_util_stop::Stop::default();
    let mut pair = pair.into_iter();
    let (Some((s0, _)), Some((s1, initial1))) = (pair.next(), pair.next()) else {
        bail!("the honest pair did not connect")
    };
    // The honest pair and the handshake prober run on a thread of their own,
    // so the load generator's own burst of connections does not delay them:
    // what is measured is the server.
    let (s0, s1) = (s0.into_tcp()?.into_std()?, s1.into_tcp()?.into_std()?);
    let honest = {
        let (probe, stop, common) = (Arc::clone(&probe), stop.clone(), Arc::clone(&common));
        let (rate, first_probe) = (args.rate, 2 + args.hosts);
        std::thread::spawn(move || -> Result<(f64, u64, u64)> {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(async move {
                let (_r0, w0) = TcpStream::from_std(s0)?.into_split();
                let (r1, _w1) = TcpStream::from_std(s1)?.into_split();
                let sender = tokio::spawn(probe_sender(w0, rate, t0, Arc::clone(&probe), stop.clone()));
                let receiver = tokio::spawn(probe_receiver(r1, initial1, t0, probe));
                let prober = handshake_prober(common, first_probe, stop).await;
                let _ = sender.await;
                tokio::time::sleep(Duration::from_millis(200)).await;
                receiver.abort();
                Ok(prober)
            })
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Every churning host registers at once, in a namespace of its own.
    let namespace = TunnelId::from_uuid(*b"rgost-loadgen-ns");
    let opened = Instant::now();
    let semaphore = Arc::new(tokio::sync::Semaphore::new(args.concurrency.max(1)));
    let tasks: Vec<JoinHandle<Result<Client>>> = (0..args.hosts)
        .map(|k| {
            let (common, semaphore) = (Arc::clone(&common), Arc::clone(&semaphore));
            tokio::spawn(async move {
                let _permit = semaphore.acquire_owned().await?;
                connect_as(&common, 2 + k, &format!("c{k}"), Some(namespace)).await
            })
        })
        .collect();
    let mut churners = Vec::with_capacity(args.hosts);
    for task in tasks {
        churners.push(task.await??);
    }
    let open_secs = opened.elapsed().as_secs_f64();
    let open_window = ((opened - t0).as_secs_f64(), (opened - t0).as_secs_f64() + open_secs);
    eprintln!("loadgen: churn: {} hosts registered in {open_secs:.2} s", churners.len());
    tokio::time::sleep(Duration::from_secs_f64(args.hold)).await;

    // ... and all close at once.
    let closed = Instant::now();
    let close_at = (closed - t0).as_secs_f64();
    drop(churners);
    let mut release_secs = None;
    while closed.elapsed().as_secs_f64() < args.release_timeout {
        if open_fds(pid).is_some_and(|n| n <= baseline_fds + 2) {
            release_secs = Some(closed.elapsed().as_secs_f64());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.set();
    let (slowest_handshake, handshakes, failed_handshakes) = match honest.join() {
        Ok(result) => result?,
        Err(_) => bail!("the honest pair's thread panicked"),
    };
    let sent = probe.sent.load(Ordering::Relaxed);
    let samples = probe.delays_us.lock().map(|d| d.clone()).unwrap_or_default();
    let worst_in = |from: f64, to: f64| {
        samples.iter().filter(|(at, _)| (from..to).contains(at)).map(|(_, d)| *d / 1000.0).fold(0.0, f64::max)
    };
    let (worst_open, worst_close) =
        (worst_in(open_window.0, open_window.1), worst_in(close_at, close_at + release_secs.unwrap_or(1.0) + 0.2));
    let mut delays: Vec<f64> = samples.iter().map(|(_, d)| *d).collect();
    delays.sort_by(f64::total_cmp);
    let lost = sent.saturating_sub(delays.len() as u64);
    let (p50, p99, max) = (percentile(&delays, 50.0), percentile(&delays, 99.0), percentile(&delays, 100.0));
    let release = release_secs.map_or_else(|| "NA".to_owned(), |s| format!("{s:.2}"));
    eprintln!(
        "loadgen: churn {} hosts: opened in {open_secs:.2} s, all released {release} s after closing; honest pair: \
         {sent} packets, {lost} lost, delay p50 {:.2} ms p99 {:.2} ms max {:.2} ms; {handshakes} honest handshakes, \
         slowest {slowest_handshake:.3} s, {failed_handshakes} failed; worst delay while registering \
         {worst_open:.2} ms, while releasing {worst_close:.2} ms",
        args.hosts,
        p50 / 1000.0,
        p99 / 1000.0,
        max / 1000.0
    );
    println!(
        "RESULT mode=churn hosts={} open_secs={open_secs:.2} release_secs={release} sent={sent} lost={lost} \
         p50_ms={:.3} p99_ms={:.3} max_ms={:.3} handshakes={handshakes} slowest_handshake_s={slowest_handshake:.3} \
         failed_handshakes={failed_handshakes} worst_open_ms={worst_open:.3} worst_close_ms={worst_close:.3}",
        args.hosts,
        p50 / 1000.0,
        p99 / 1000.0,
        max / 1000.0
    );
    Ok(())
}

async fn memory(args: MemoryArgs) -> Result<()> {
    let Some(pid) = args.common.server_pid else { bail!("memory mode needs --server-pid") };
    if !(28..=frame::MAX_PACKET_LEN).contains(&args.packet) {
        bail!("--packet must be 28..=65535");
    }
    let common = Arc::new(args.common);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib(pid).context("read the server's RSS")?;
    // Client 0 sends; receiving host h{1+h} is registered by conns_per_host connections.
    let sender = connect_many(&common, 0..1).await?;
    let mut receivers = Vec::new();
    for h in 0..args.hosts {
        for k in 0..args.conns_per_host {
            let i = 1 + h;
            receivers
                .push(connect_as(&common, 1 + args.hosts + h * args.conns_per_host + k, &format!("h{i}"), None).await?);
        }
    }
    // One write holds a packet to every receiving host.
    let mut batch = Vec::new();
    for h in 0..args.hosts {
        frame::encode(&udp_packet(client_addr(0), client_addr(1 + h), 9, 9, args.packet - 28), &mut batch);
    }
    let batch = Arc::new(batch);
    let mut peak = before;
    let Some((stream, _)) = sender.into_iter().next() else { bail!("the sender did not connect") };
    let (_reader, mut writer) = stream.split();
    let written = Arc::new(AtomicU64::new(0));
    let feeder = {
        let written = Arc::clone(&written);
        tokio::spawn(async move {
            while writer.write_all(&batch).await.is_ok() {
                written.fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
        })
    };
    let fed = Instant::now();
    while fed.elapsed().as_secs_f64() < args.secs {
        tokio::time::sleep(Duration::from_millis(100)).await;
        peak = peak.max(rss_kib(pid).unwrap_or(0));
    }
    feeder.abort();
    let written = written.load(Ordering::Relaxed);
    drop(receivers);
    tokio::time::sleep(Duration::from_secs_f64(args.after)).await;
    let after = rss_kib(pid).context("read the server's RSS")?;
    let growth = after as f64 / before.max(1) as f64;
    eprintln!(
        "loadgen: memory {} hosts x {} connections that never read, {}-byte packets for {:.0} s ({:.0} MB written): \
         server RSS {before} KiB before, {peak} KiB at the peak, {after} KiB {:.0} s after closing ({:.2}x)",
        args.hosts,
        args.conns_per_host,
        args.packet,
        args.secs,
        written as f64 / 1e6,
        args.after,
        growth
    );
    println!(
        "RESULT mode=memory hosts={} conns_per_host={} packet={} rss_before_kib={before} rss_peak_kib={peak} \
         rss_after_kib={after} after_over_before={growth:.3}",
        args.hosts, args.conns_per_host, args.packet
    );
    Ok(())
}
