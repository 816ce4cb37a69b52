//! `rgost status`: a running rgost's state at a glance, read from its web
//! API (`GET {api}/status`), as tables; `rgost status lookup ROUTER IP`
//! answers "who gets a packet for IP in that namespace now"; `rgost status
//! close CONNECTOR` closes one connection. `--json` prints the API's answer.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::Value;

/// The API address when nothing says otherwise (GOST's documented API port).
const DEFAULT_API: &str = "http://127.0.0.1:18080";

/// `rgost status` options.
#[derive(Debug, clap::Args)]
pub(crate) struct StatusArgs {
    /// The web API's URL, with its path prefix (default: the api section of
    /// -C's config, else http://127.0.0.1:18080).
    #[arg(long = "api", value_name = "URL", env = "RGOST_API_URL")]
    api: Option<String>,
    /// Credentials for the API's HTTP Basic authentication.
    #[arg(long, value_name = "USER:PASS", env = "RGOST_API_USER")]
    user: Option<String>,
    /// Read the API's address, path prefix and credentials from this config file.
    #[arg(short = 'C', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print the API's JSON answer instead of tables.
    #[arg(long)]
    json: bool,
    #[command(subcommand)]
    what: Option<What>,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// Which route matches IP in namespace ROUTER (a router id) and which
    /// connection gets the packet right now.
    Lookup {
        /// The router id (UUID); 00000000-0000-0000-0000-000000000000 for clients that send none.
        router: String,
        /// The destination address.
        ip: String,
        /// The router service, when the process runs several.
        #[arg(long)]
        service: Option<String>,
    },
    /// Closes one connection, by its connector id (its host's standby, if any, takes over).
    Close {
        /// The connector id, as `rgost status` shows it.
        connector: String,
    },
}

/// Runs `rgost status` and prints what it found (or why it could not).
pub(crate) fn run(args: &StatusArgs) -> ExitCode {
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .and_then(|rt| rt.block_on(fetch_and_print(args)));
    match result {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rgost status: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The API's base URL and credentials.
fn target(args: &StatusArgs) -> anyhow::Result<(String, Option<(String, String)>)> {
    let mut user = args.user.as_deref().map(split_user);
    let mut base = args.api.clone();
    if base.is_none()
        && let Some(file) = &args.config
    {
        let loaded = rgost_config::load(Some(file), &[], &[]).with_context(|| format!("reading {}", file.display()))?;
        let api = loaded.config.api.or_else(|| {
            loaded.config.services.into_iter().find_map(|s| match s.kind {
                rgost_config::ServiceKind::Api(api) => Some(api),
                _ => None,
            })
        });
        let Some(api) = api else { bail!("{} has no api section and no api service", file.display()) };
        let host = match api.listen.ip {
            Some(ip) if !ip.is_unspecified() => std::net::SocketAddr::new(ip, api.listen.port).to_string(),
            _ => format!("127.0.0.1:{}", api.listen.port),
        };
        let scheme = if matches!(api.listener, rgost_config::ListenerKind::Tls(_)) { "https" } else { "http" };
        base = Some(format!("{scheme}://{host}{}", api.path_prefix));
        if user.is_none() {
            user = api.auth.map(|c| (c.username, c.password));
        }
    }
    let mut base = base.unwrap_or_else(|| DEFAULT_API.to_owned());
    if !base.contains("://") {
        base = format!("http://{base}");
    }
    // Credentials in the URL, as curl takes them.
    if let Some((scheme, rest)) = base.split_once("://")
        && let Some((userinfo, host)) = rest.split_once('@')
        && !userinfo.contains('/')
    {
        if user.is_none() {
            user = Some(split_user(userinfo));
        }
        base = format!("{scheme}://{host}");
    }
    Ok((base.trim_end_matches('/').to_owned(), user))
}

fn split_user(text: &str) -> (String, String) {
    let (user, pass) = text.split_once(':').unwrap_or((text, ""));
    (user.to_owned(), pass.to_owned())
}

async fn fetch_and_print(args: &StatusArgs) -> anyhow::Result<String> {
    let (base, user) = target(args)?;
    // The API may use a self-signed certificate (a tls listener without certFile).
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .tls_danger_accept_invalid_certs(true)
        .build()
        .context("cannot build the HTTP client")?;
    let request = match &args.what {
        None => client.get(format!("{base}/status")),
        Some(What::Lookup { router, ip, service }) => {
            let mut query = vec![("router", router.as_str()), ("ip", ip.as_str())];
            if let Some(service) = service {
                query.push(("service", service));
            }
            let url = reqwest::Url::parse_with_params(&format!("{base}/status/lookup"), &query)
                .with_context(|| format!("bad API URL {base}"))?;
            client.get(url)
        }
        Some(What::Close { connector }) => client.delete(format!("{base}/status/connections/{connector}")),
    };
    let request = match &user {
        Some((name, pass)) => request.basic_auth(name, Some(pass)),
        None => request,
    };
    let response = request.send().await.with_context(|| format!("cannot reach the web API at {base}"))?;
    let code = response.status();
    let text = response.text().await.context("reading the answer")?;
    let answer: Value = serde_json::from_str(&text).with_context(|| format!("{base}: HTTP {code}: {text}"))?;
    if !code.is_success() {
        let msg = answer.get("msg").and_then(Value::as_str).unwrap_or(&text);
        if code == reqwest::StatusCode::UNAUTHORIZED {
            bail!("{base}: unauthorized: give --user USER:PASS");
        }
        bail!("{base}: {msg} (HTTP {code})");
    }
    if args.json {
        return Ok(format!("{}\n", serde_json::to_string_pretty(&answer).unwrap_or(text)));
    }
    Ok(match &args.what {
        None => render_status(&answer, &base),
        Some(What::Lookup { .. }) => render_lookup(&answer),
        Some(What::Close { connector }) => format!("closed connection {connector}\n"),
    })
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("-")
}

fn n(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or(0)
}

fn f(v: &Value, key: &str) -> f64 {
    v.get(key).and_then(Value::as_f64).unwrap_or(0.0)
}

/// A table with a header row; columns as wide as their widest cell.
fn table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let padded: Vec<String> = cells.zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        padded.join("  ").trim_end().to_owned()
    };
    let _ = writeln!(out, "{}", line(&mut header.iter().copied()));
    for row in rows {
        let _ = writeln!(out, "{}", line(&mut row.iter().map(String::as_str)));
    }
}

/// 1234567 -> "1.2 MB".
fn bytes(value: u64) -> String {
    scaled(value as f64, "B")
}

/// Bits per second -> "12.3 Mb/s".
fn bits(value: f64) -> String {
    scaled(value, "b/s")
}

fn scaled(value: f64, unit: &str) -> String {
    let prefixes = ["", "k", "M", "G", "T", "P"];
    let mut v = value;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < prefixes.len() {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 { format!("{v:.0} {unit}") } else { format!("{v:.1} {}{unit}", prefixes[i]) }
}

/// Seconds -> "2h03m", "5m12s", "40s".
fn duration(secs: u64) -> String {
    match secs {
        s if s >= 86_400 => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600),
        s if s >= 3600 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        s if s >= 60 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

/// The first 8 characters of an id (enough to tell them apart at a glance).
fn short(id: &str) -> String {
    id.chars().take(8).collect()
}

fn drops_text(drops: Option<&Value>) -> String {
    let Some(map) = drops.and_then(Value::as_object) else { return "-".to_owned() };
    let total: u64 = map.values().filter_map(Value::as_u64).sum();
    if total == 0 { "-".to_owned() } else { total.to_string() }
}

fn render_status(status: &Value, base: &str) -> String {
    let mut out = String::new();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let reloads = status.get("reloads").cloned().unwrap_or_default();
    let _ = writeln!(
        out,
        "rgost {} at {base}: up {}, config changes {} applied, {} refused",
        s(status, "version"),
        duration(f(status, "uptime") as u64),
        n(&reloads, "applied"),
        n(&reloads, "refused"),
    );
    let services = status.get("services").and_then(Value::as_array).cloned().unwrap_or_default();
    let clients = status.get("clients").and_then(Value::as_array).cloned().unwrap_or_default();
    if !services.is_empty() {
        out.push('\n');
        let rows: Vec<Vec<String>> = services
            .iter()
            .map(|svc| {
                let t = svc.get("totals").cloned().unwrap_or_default();
                let h = svc.get("handshakes").cloned().unwrap_or_default();
                vec![
                    s(svc, "name").to_owned(),
                    s(svc, "addr").to_owned(),
                    n(svc, "connections").to_string(),
                    format!("{}/{}", n(&h, "accepted"), n(&h, "refused")),
                    bytes(n(&t, "bytes_in")),
                    bytes(n(&t, "bytes_out")),
                    drops_text(t.get("drops")),
                ]
            })
            .collect();
        table(&mut out, &["SERVICE", "ADDR", "CONNS", "HANDSHAKES OK/REFUSED", "IN", "OUT", "DROPPED"], &rows);
    }
    for svc in &services {
        let namespaces = svc.get("namespaces").and_then(Value::as_array).cloned().unwrap_or_default();
        let _ = writeln!(out, "\n{}: {} namespace(s)", s(svc, "name"), namespaces.len());
        if namespaces.is_empty() {
            continue;
        }
        let rows: Vec<Vec<String>> = namespaces
            .iter()
            .map(|ns| {
                let router = match (ns.get("router_name").and_then(Value::as_str), ns.get("default_router")) {
                    (Some(name), Some(Value::Bool(true))) => format!("{name} (default)"),
                    (Some(name), _) => name.to_owned(),
                    (None, _) => "(none: no route)".to_owned(),
                };
                let routes = ns.get("routes").and_then(Value::as_u64).map_or("plugin".to_owned(), |r| r.to_string());
                let hosts = ns.get("hosts").and_then(Value::as_array).map_or(0, Vec::len);
                vec![s(ns, "router").to_owned(), router, routes, hosts.to_string()]
            })
            .collect();
        table(&mut out, &["NAMESPACE (ROUTER ID)", "ROUTER", "ROUTES", "HOSTS"], &rows);
        out.push('\n');
        let mut rows = Vec::new();
        for ns in &namespaces {
            for host in ns.get("hosts").and_then(Value::as_array).into_iter().flatten() {
                for conn in host.get("connections").and_then(Value::as_array).into_iter().flatten() {
                    let rates = conn.get("rates").cloned().unwrap_or_default();
                    let queue = conn.get("queue").cloned().unwrap_or_default();
                    let role = if conn.get("receiving") == Some(&Value::Bool(true)) { "" } else { " (standby)" };
                    rows.push(vec![
                        format!("{}{role}", s(host, "host")),
                        short(s(ns, "router")),
                        short(s(conn, "connector")),
                        s(conn, "remote").to_owned(),
                        duration(now.saturating_sub(n(conn, "since"))),
                        bits(f(&rates, "bps_in")),
                        bits(f(&rates, "bps_out")),
                        format!("{:.0}/{:.0}", f(&rates, "pps_in"), f(&rates, "pps_out")),
                        format!("{}/{}", bytes(n(conn, "bytes_in")), bytes(n(conn, "bytes_out"))),
                        drops_text(conn.get("drops")),
                        format!("{}p {}", n(&queue, "packets"), bytes(n(&queue, "bytes"))),
                    ]);
                }
            }
        }
        table(
            &mut out,
            &[
                "HOST",
                "NAMESPACE",
                "CONNECTOR",
                "REMOTE",
                "UP",
                "RATE IN",
                "RATE OUT",
                "PKT/S IN/OUT",
                "TOTAL IN/OUT",
                "DROPS",
                "QUEUE",
            ],
            &rows,
        );
        let drops = svc.get("totals").and_then(|t| t.get("drops")).and_then(Value::as_object);
        if let Some(drops) = drops.filter(|d| !d.is_empty()) {
            let mut by_reason: Vec<(&String, u64)> = drops.iter().map(|(k, v)| (k, v.as_u64().unwrap_or(0))).collect();
            by_reason.sort_by_key(|b| std::cmp::Reverse(b.1));
            let text: Vec<String> = by_reason.iter().map(|(k, v)| format!("{k} {v}")).collect();
            let _ = writeln!(out, "\ndropped by reason: {}", text.join(", "));
        }
    }
    if !clients.is_empty() {
        out.push('\n');
        let rows: Vec<Vec<String>> = clients
            .iter()
            .map(|c| {
                vec![
                    s(c, "name").to_owned(),
                    if c.get("connected") == Some(&Value::Bool(true)) { "yes" } else { "no" }.to_owned(),
                    n(c, "reconnects").to_string(),
                    n(c, "failed").to_string(),
                ]
            })
            .collect();
        table(&mut out, &["TUN CLIENT", "CONNECTED", "RECONNECTS", "FAILED ATTEMPTS"], &rows);
    }
    out
}

fn render_lookup(answer: &Value) -> String {
    let mut out = String::new();
    let _ =
        writeln!(out, "{} in namespace {} (service {}):", s(answer, "ip"), s(answer, "router"), s(answer, "service"));
    let router = answer.get("router_name").and_then(Value::as_str).unwrap_or("(none)");
    let _ = writeln!(out, "  router:     {router} ({})", s(answer, "router_kind"));
    match answer.get("route").filter(|r| !r.is_null()) {
        Some(route) => {
            let dst = route.get("dst").and_then(Value::as_str).unwrap_or("(plugin answer)");
            let _ = writeln!(out, "  route:      {dst} -> {}", s(route, "gateway"));
        }
        None => out.push_str("  route:      none matches\n"),
    }
    if let Some(conn) = answer.get("connection").filter(|c| !c.is_null()) {
        let _ =
            writeln!(out, "  connection: {} from {} ({})", s(conn, "connector"), s(conn, "remote"), s(conn, "host"));
    }
    if let Some(node) = answer.get("node").and_then(Value::as_str) {
        let _ = writeln!(out, "  node:       {node}");
    }
    let _ = writeln!(out, "  verdict:    {}", s(answer, "verdict"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1_234_567), "1.2 MB");
        assert_eq!(bits(12_300_000.0), "12.3 Mb/s");
        assert_eq!(duration(7380), "2h03m");
        assert_eq!(duration(312), "5m12s");
    }

    #[test]
    fn targets() {
        let args = |api: Option<&str>, user: Option<&str>| StatusArgs {
            api: api.map(str::to_owned),
            user: user.map(str::to_owned),
            config: None,
            json: false,
            what: None,
        };
        assert_eq!(target(&args(None, None)).unwrap(), (DEFAULT_API.to_owned(), None));
        assert_eq!(
            target(&args(Some("u:p@10.0.0.1:18080/api/"), None)).unwrap(),
            ("http://10.0.0.1:18080/api".to_owned(), Some(("u".to_owned(), "p".to_owned())))
        );
        assert_eq!(
            target(&args(Some("https://h:1"), Some("a:b:c"))).unwrap(),
            ("https://h:1".to_owned(), Some(("a".to_owned(), "b:c".to_owned())))
        );
    }
}
