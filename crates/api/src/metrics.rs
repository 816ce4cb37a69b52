//! Prometheus metrics: GOST's series where the meaning matches, rgost's own
//! as `rgost_*`, and the usual `process_*` ones.
//!
//! Nothing is counted for metrics on the packet path: every value is read
//! when scraped, from the counters each connection keeps anyway (added to
//! once per batch of packets) and from the service-wide ones. Per-host
//! series are off unless `hostLabels` is set: a server with 20,000 clients
//! would otherwise emit hundreds of thousands of series.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use rgost_server::DropReason;
use rgost_server::stats::Totals;

use crate::Web;

type Labels = Vec<(&'static str, String)>;

/// The metrics of one endpoint (`hostLabels` is per endpoint).
#[derive(Debug)]
pub(crate) struct Metrics {
    web: Arc<Web>,
    host_labels: bool,
}

impl Metrics {
    pub(crate) fn new(web: Arc<Web>, host_labels: bool) -> Metrics {
        Metrics { web, host_labels }
    }

    /// The exposition: OpenMetrics text when the scraper asks for it,
    /// else Prometheus text format 0.0.4 (as GOST serves).
    pub(crate) fn render(self: &Arc<Self>, openmetrics: bool) -> Result<String, fmt::Error> {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Arc::clone(self)));
        let mut out = String::new();
        if openmetrics {
            prometheus_client::encoding::text::encode(&mut out, &registry)?;
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)?;
        }
        Ok(out)
    }
}

/// `GET {path}`.
pub(crate) async fn scrape(State(metrics): State<Arc<Metrics>>, headers: HeaderMap) -> Response {
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/openmetrics-text"));
    match metrics.render(openmetrics) {
        Ok(text) => {
            let content_type = if openmetrics {
                "application/openmetrics-text; version=1.0.0; charset=utf-8"
            } else {
                "text/plain; version=0.0.4; charset=utf-8"
            };
            ([(header::CONTENT_TYPE, HeaderValue::from_static(content_type))], text).into_response()
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// A family being written.
struct Family<'a> {
    encoder: prometheus_client::encoding::MetricEncoder<'a>,
}

fn family<'a>(
    encoder: &'a mut DescriptorEncoder<'_>,
    name: &'a str,
    help: &str,
    kind: MetricType,
) -> Result<Family<'a>, fmt::Error> {
    Ok(Family { encoder: encoder.encode_descriptor(name, help, None, kind)? })
}

impl Family<'_> {
    fn counter(&mut self, labels: &Labels, value: u64) -> fmt::Result {
        ConstCounter::new(value).encode(self.encoder.encode_family(labels)?)
    }

    fn gauge(&mut self, labels: &Labels, value: f64) -> fmt::Result {
        ConstGauge::new(value).encode(self.encoder.encode_family(labels)?)
    }
}

fn counters(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (Labels, u64)>,
) -> fmt::Result {
    let mut f = family(encoder, name, help, MetricType::Counter)?;
    rows.into_iter().try_for_each(|(labels, value)| f.counter(&labels, value))
}

fn gauges(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (Labels, f64)>,
) -> fmt::Result {
    let mut f = family(encoder, name, help, MetricType::Gauge)?;
    rows.into_iter().try_for_each(|(labels, value)| f.gauge(&labels, value))
}

// Counts as gauge values: exact far beyond what they reach.
#[allow(clippy::cast_precision_loss)]
fn float(n: impl Into<u64>) -> f64 {
    n.into() as f64
}

fn usize_f(n: usize) -> f64 {
    float(u64::try_from(n).unwrap_or(u64::MAX))
}

/// One router service's numbers, read once per scrape.
struct ServiceRead {
    name: String,
    totals: Totals,
    accepted: u64,
    refused: u64,
    refusals: Vec<(&'static str, u64)>,
    connections: usize,
    queued_bytes: usize,
    /// Per namespace: (packets, bytes) forwarded, hosts.
    namespaces: BTreeMap<String, (u64, u64, usize)>,
    /// Per (namespace, host): totals of its live connections, connections, queued bytes.
    hosts: Vec<(String, String, Totals, usize, usize)>,
    routes: Vec<(String, usize)>,
    plugins: Vec<((&'static str, String), rgost_server::meters::PluginCounts)>,
    sources: Vec<((&'static str, String), Vec<rgost_sources::SourceCounts>)>,
}

impl Metrics {
    fn read(&self) -> Vec<ServiceRead> {
        self.web
            .control
            .routers()
            .iter()
            .map(|service| {
                let server = service.server();
                let (_, retired) = server.stats().retired();
                let mut namespaces: BTreeMap<String, (u64, u64, usize)> = retired
                    .iter()
                    .map(|(id, t)| (id.to_string(), (t.packets_forwarded, t.bytes_forwarded, 0)))
                    .collect();
                let mut hosts = Vec::new();
                for ns in server.fabric().namespaces() {
                    let id = ns.id().to_string();
                    let entry = namespaces.entry(id.clone()).or_default();
                    let mut by_host: BTreeMap<String, (Totals, usize, usize)> = BTreeMap::new();
                    ns.for_each_connection(|host, _, peer| {
                        let t = peer.stats.totals();
                        entry.0 += t.packets_forwarded;
                        entry.1 += t.bytes_forwarded;
                        if self.host_labels {
                            let h = by_host.entry(host.to_string()).or_default();
                            h.0.add(&t);
                            h.1 += 1;
                            h.2 += peer.queue.depth().1;
                        }
                    });
                    entry.2 = ns.hosts().len();
                    hosts.extend(by_host.into_iter().map(|(host, (t, n, q))| (id.clone(), host, t, n, q)));
                }
                let settings = server.settings();
                let mut routes: Vec<(String, usize)> =
                    settings.routers.iter().filter_map(|(name, r)| r.routes().map(|n| (name.clone(), n))).collect();
                routes.sort();
                drop(settings);
                let stats = server.stats();
                ServiceRead {
                    name: service.name().to_owned(),
                    totals: server.totals(),
                    accepted: stats.accepted_total(),
                    refused: stats.refused_total(),
                    refusals: server.refusals(),
                    connections: server.connections_now(),
                    queued_bytes: server.queued_bytes(),
                    namespaces,
                    hosts,
                    routes,
                    plugins: server.meters().plugins().into_iter().map(|(k, s)| (k, s.snapshot())).collect(),
                    sources: server.meters().sources().into_iter().map(|(k, s)| (k, s.snapshot())).collect(),
                }
            })
            .collect()
    }
}

fn svc(name: &str) -> Labels {
    vec![("service", name.to_owned())]
}

impl Collector for Metrics {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> fmt::Result {
        let web = &self.web;
        let reads = self.read();
        let machine = web.hostname.clone();
        let gost = |service: &str| vec![("host", machine.clone()), ("service", service.to_owned())];

        // GOST's series.
        gauges(
            &mut e,
            "gost_services",
            "Current number of services",
            [(vec![("host", machine.clone())], usize_f(web.service_count))],
        )?;
        counters(
            &mut e,
            "gost_service_requests",
            "Total number of requests (connections that reached the router handler)",
            reads.iter().map(|r| (gost(&r.name), r.accepted + r.refused)),
        )?;
        gauges(
            &mut e,
            "gost_service_requests_in_flight",
            "Current in-flight requests (connections held)",
            reads.iter().map(|r| (gost(&r.name), usize_f(r.connections))),
        )?;
        counters(
            &mut e,
            "gost_service_handler_errors",
            "Total service handler errors (connections refused or failed in their handshake)",
            reads.iter().map(|r| (gost(&r.name), r.refused)),
        )?;
        counters(
            &mut e,
            "gost_service_transfer_input_bytes",
            "Total service input data transfer size in bytes (frames read from clients, headers included)",
            reads.iter().map(|r| (gost(&r.name), r.totals.bytes_in + 2 * r.totals.packets_in)),
        )?;
        counters(
            &mut e,
            "gost_service_transfer_output_bytes",
            "Total service output data transfer size in bytes (frames written to clients, headers included)",
            reads.iter().map(|r| (gost(&r.name), r.totals.bytes_out + 2 * r.totals.packets_out)),
        )?;

        // rgost's: traffic.
        counters(
            &mut e,
            "rgost_packets_received",
            "IP packets read from clients",
            reads.iter().map(|r| (svc(&r.name), r.totals.packets_in)),
        )?;
        counters(
            &mut e,
            "rgost_bytes_received",
            "Bytes of IP packets read from clients",
            reads.iter().map(|r| (svc(&r.name), r.totals.bytes_in)),
        )?;
        counters(
            &mut e,
            "rgost_packets_sent",
            "IP packets written to clients",
            reads.iter().map(|r| (svc(&r.name), r.totals.packets_out)),
        )?;
        counters(
            &mut e,
            "rgost_bytes_sent",
            "Bytes of IP packets written to clients",
            reads.iter().map(|r| (svc(&r.name), r.totals.bytes_out)),
        )?;
        let ns_label =
            |service: &str, router: &str| vec![("service", service.to_owned()), ("router", router.to_owned())];
        counters(
            &mut e,
            "rgost_packets_forwarded",
            "IP packets forwarded (queued for another client) per namespace (router id)",
            reads.iter().flat_map(|r| r.namespaces.iter().map(|(ns, v)| (ns_label(&r.name, ns), v.0))),
        )?;
        counters(
            &mut e,
            "rgost_bytes_forwarded",
            "Bytes of IP packets forwarded per namespace (router id)",
            reads.iter().flat_map(|r| r.namespaces.iter().map(|(ns, v)| (ns_label(&r.name, ns), v.1))),
        )?;
        counters(
            &mut e,
            "rgost_packets_dropped",
            "IP packets dropped, by reason",
            reads.iter().flat_map(|r| {
                DropReason::ALL.iter().map(|reason| {
                    (vec![("service", r.name.clone()), ("reason", reason.name().to_owned())], r.totals.drops(*reason))
                })
            }),
        )?;
        gauges(
            &mut e,
            "rgost_queued_bytes",
            "Bytes queued for clients now (against serverQueueBytes)",
            reads.iter().map(|r| (svc(&r.name), usize_f(r.queued_bytes))),
        )?;

        // Connections and handshakes.
        gauges(
            &mut e,
            "rgost_connections",
            "Client connections now",
            reads.iter().map(|r| (svc(&r.name), usize_f(r.connections))),
        )?;
        counters(
            &mut e,
            "rgost_connections_accepted",
            "Client connections accepted (handshake done)",
            reads.iter().map(|r| (svc(&r.name), r.accepted)),
        )?;
        counters(
            &mut e,
            "rgost_handshakes",
            "Handshakes by result: ok, the error status answered, or failed (malformed or timed out: no answer)",
            reads.iter().flat_map(|r| {
                let answered: u64 = r.refusals.iter().map(|(_, n)| n).sum();
                let with = |result: &str, n: u64| (vec![("service", r.name.clone()), ("result", result.to_owned())], n);
                std::iter::once(with("ok", r.accepted))
                    .chain(r.refusals.iter().map(move |(status, n)| with(status, *n)))
                    .chain(std::iter::once(with("failed", r.refused.saturating_sub(answered))))
                    .collect::<Vec<_>>()
            }),
        )?;
        gauges(
            &mut e,
            "rgost_namespaces",
            "Namespaces (router ids) with at least one host",
            reads.iter().map(|r| (svc(&r.name), usize_f(r.namespaces.values().filter(|v| v.2 > 0).count()))),
        )?;
        gauges(
            &mut e,
            "rgost_hosts",
            "Host names registered, per namespace",
            reads.iter().flat_map(|r| {
                r.namespaces.iter().filter(|(_, v)| v.2 > 0).map(|(ns, v)| (ns_label(&r.name, ns), usize_f(v.2)))
            }),
        )?;

        // Routers, plugins, sources.
        gauges(
            &mut e,
            "rgost_routes",
            "Routes of each table router",
            reads.iter().flat_map(|r| r.routes.iter().map(|(router, n)| (ns_label(&r.name, router), usize_f(*n)))),
        )?;
        counters(
            &mut e,
            "rgost_plugin_cache_hits",
            "Plugin route answers found cached (no lookup needed)",
            reads.iter().map(|r| (svc(&r.name), r.totals.plugin_cache_hits)),
        )?;
        let component = |service: &str, (kind, name): &(&'static str, String)| {
            vec![("service", service.to_owned()), ("kind", (*kind).to_owned()), ("name", name.clone())]
        };
        counters(
            &mut e,
            "rgost_plugin_lookups",
            "HTTP plugin lookups by result (error: down, slow or a bad answer)",
            reads.iter().flat_map(|r| {
                r.plugins.iter().flat_map(|(key, counts)| {
                    let with = |result: &str, n: u64| {
                        let mut labels = component(&r.name, key);
                        labels.push(("result", result.to_owned()));
                        (labels, n)
                    };
                    [with("ok", counts.ok), with("error", counts.failed)]
                })
            }),
        )?;
        {
            let mut f = family(
                &mut e,
                "rgost_plugin_lookup_duration_seconds",
                "HTTP plugin lookup latency",
                MetricType::Histogram,
            )?;
            for r in &reads {
                for (key, counts) in &r.plugins {
                    let labels = component(&r.name, key);
                    f.encoder.encode_family(&labels)?.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                        counts.sum_seconds,
                        counts.ok + counts.failed,
                        &counts.buckets,
                        None,
                    )?;
                }
            }
        }
        counters(
            &mut e,
            "rgost_source_reloads",
            "Data source reads (at start and every reload period) by result",
            reads.iter().flat_map(|r| {
                r.sources.iter().flat_map(|(key, sources)| {
                    sources.iter().flat_map(|s| {
                        let with = |result: &str, n: u64| {
                            let mut labels = component(&r.name, key);
                            labels.push(("source", s.source.to_owned()));
                            labels.push(("result", result.to_owned()));
                            (labels, n)
                        };
                        [with("ok", s.ok), with("error", s.failed)]
                    })
                })
            }),
        )?;
        gauges(
            &mut e,
            "rgost_source_last_good_age_seconds",
            "Seconds since a data source last gave valid entries",
            reads.iter().flat_map(|r| {
                r.sources.iter().flat_map(|(key, sources)| {
                    sources.iter().filter_map(|s| {
                        let age = s.last_good_age?;
                        let mut labels = component(&r.name, key);
                        labels.push(("source", s.source.to_owned()));
                        Some((labels, age.as_secs_f64()))
                    })
                })
            }),
        )?;
        let (applied, refused) = web.control.reloads();
        counters(
            &mut e,
            "rgost_config_reloads",
            "Config changes (SIGHUP and API) by result",
            [(vec![("result", "applied".to_owned())], applied), (vec![("result", "refused".to_owned())], refused)],
        )?;

        // TUN clients of this process.
        let client = |name: &str| svc(name);
        gauges(
            &mut e,
            "rgost_client_connected",
            "Whether a TUN client is connected to its router server",
            web.clients.iter().map(|(name, s)| (client(name), if s.connected() { 1.0 } else { 0.0 })),
        )?;
        counters(
            &mut e,
            "rgost_client_reconnects",
            "Sessions a TUN client established after its first",
            web.clients.iter().map(|(name, s)| (client(name), s.reconnects())),
        )?;
        counters(
            &mut e,
            "rgost_client_connect_failures",
            "Connection attempts of a TUN client that failed",
            web.clients.iter().map(|(name, s)| (client(name), s.failed())),
        )?;

        if self.host_labels {
            self.encode_hosts(&mut e, &reads)?;
        }
        process(&mut e, web)
    }
}

impl Metrics {
    /// Per-host series (`hostLabels: true`): a host's live connections summed.
    fn encode_hosts(&self, e: &mut DescriptorEncoder<'_>, reads: &[ServiceRead]) -> fmt::Result {
        let rows = || {
            reads.iter().flat_map(|r| {
                r.hosts.iter().map(move |(ns, host, t, n, q)| {
                    let labels: Labels =
                        vec![("service", r.name.clone()), ("router", ns.clone()), ("client", host.clone())];
                    (labels, t, *n, *q)
                })
            })
        };
        counters(
            e,
            "rgost_host_packets_received",
            "IP packets read from a host (its live connections)",
            rows().map(|(l, t, _, _)| (l, t.packets_in)),
        )?;
        counters(
            e,
            "rgost_host_bytes_received",
            "Bytes read from a host (its live connections)",
            rows().map(|(l, t, _, _)| (l, t.bytes_in)),
        )?;
        counters(
            e,
            "rgost_host_packets_sent",
            "IP packets written to a host (its live connections)",
            rows().map(|(l, t, _, _)| (l, t.packets_out)),
        )?;
        counters(
            e,
            "rgost_host_bytes_sent",
            "Bytes written to a host (its live connections)",
            rows().map(|(l, t, _, _)| (l, t.bytes_out)),
        )?;
        counters(
            e,
            "rgost_host_packets_dropped",
            "IP packets a host sent that were dropped, and packets for it dropped at its queue",
            rows().map(|(l, t, _, _)| (l, t.drops.iter().sum::<u64>())),
        )?;
        gauges(e, "rgost_host_connections", "A host's connections", rows().map(|(l, _, n, _)| (l, usize_f(n))))?;
        gauges(e, "rgost_host_queued_bytes", "Bytes queued for a host now", rows().map(|(l, _, _, q)| (l, usize_f(q))))
    }
}

/// `process_*` from /proc/self, as Prometheus client libraries name them.
fn process(e: &mut DescriptorEncoder<'_>, web: &Web) -> fmt::Result {
    let none: Labels = Vec::new();
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command (which may hold spaces) in parentheses.
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime (fields 14 and 15, 11 and 12 after the command) in USER_HZ (100 on Linux).
    let cpu = float(ticks(11) + ticks(12)) / 100.0;
    counters_f(e, "process_cpu_seconds", "Total user and system CPU time spent in seconds", cpu)?;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    gauges(
        e,
        "process_resident_memory_bytes",
        "Resident memory size in bytes",
        [(none.clone(), float(kib("VmRSS:") * 1024))],
    )?;
    gauges(
        e,
        "process_virtual_memory_bytes",
        "Virtual memory size in bytes",
        [(none.clone(), float(kib("VmSize:") * 1024))],
    )?;
    gauges(e, "process_threads", "Number of OS threads", [(none.clone(), float(kib("Threads:")))])?;
    let fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count());
    gauges(e, "process_open_fds", "Number of open file descriptors", [(none.clone(), usize_f(fds))])?;
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let max_fds = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|n| n.parse::<u64>().ok());
    if let Some(max) = max_fds {
        gauges(e, "process_max_fds", "Maximum number of open file descriptors", [(none.clone(), float(max))])?;
    }
    let start = web.started.duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    gauges(e, "process_start_time_seconds", "Start time of the process since unix epoch in seconds", [(none, start)])
}

/// A counter without labels whose value is not an integer.
fn counters_f(e: &mut DescriptorEncoder<'_>, name: &str, help: &str, value: f64) -> fmt::Result {
    let mut f = family(e, name, help, MetricType::Counter)?;
    ConstCounter::new(value).encode(f.encoder.encode_family(&Vec::<(&str, String)>::new())?)
}
