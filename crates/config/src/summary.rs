//! One line per service saying what it would run (`rgost --check`).

use std::fmt::{self, Display, Formatter};

use crate::{
    ApiConfig, Config, Credentials, DialerKind, ListenAddr, ListenerKind, MetricsConfig, Node, PluginConfig,
    RouterService, SdBackend, Service, ServiceKind, Sources, Strategy, TlsServerSettings, TunService,
};

impl Config {
    /// One line per service, in order: what it would run (listen address and
    /// transport, routers, ingress, authentication; or device, routes and
    /// server). Used by `rgost --check`.
    /// The top-level `api` and `metrics` follow, named `@api` and `@metrics` as in GOST's logs.
    pub fn summary(&self) -> Vec<String> {
        let mut lines: Vec<String> = self.services.iter().map(|service| self.service_line(service)).collect();
        lines.extend(self.api.iter().map(|api| format!("@api: {}", api_line(api))));
        lines.extend(self.metrics.iter().map(|metrics| format!("@metrics: {}", metrics_line(metrics))));
        lines
    }

    fn service_line(&self, service: &Service) -> String {
        match &service.kind {
            ServiceKind::Router(router) => format!("{}: {}", service.name, self.router_line(router)),
            ServiceKind::Tun(tun) => format!("{}: {}", service.name, tun_line(tun)),
            ServiceKind::Api(api) => format!("{}: {}", service.name, api_line(api)),
            ServiceKind::Metrics(metrics) => format!("{}: {}", service.name, metrics_line(metrics)),
        }
    }

    fn router_line(&self, service: &RouterService) -> String {
        let default = match &service.default_router {
            Some(name) => {
                let contents = self.routers.iter().find(|r| &r.name == name).map_or_else(String::new, |r| {
                    format!(" ({})", entries(r.routes.len(), "route", &r.sources, r.plugin.as_ref()))
                });
                format!("default router {name}{contents}")
            }
            None => "no default router".to_owned(),
        };
        let namespaces = self.routers.iter().filter(|r| Some(&r.name) != service.default_router.as_ref()).count();
        let ingress = match &service.ingress {
            Some(name) => {
                let contents = self.ingresses.iter().find(|i| &i.name == name).map_or_else(String::new, |i| {
                    format!(" ({})", entries(i.rules.len(), "rule", &i.sources, i.plugin.as_ref()))
                });
                format!("ingress {name}{contents}")
            }
            None => "no ingress".to_owned(),
        };
        let auth = match (&service.auth, &service.auther) {
            (Some(credentials), _) => format!("user {}", credentials.username),
            (None, Some(name)) => {
                let contents = self.authers.iter().find(|a| &a.name == name).map_or_else(String::new, |a| {
                    format!(" ({})", entries(a.auths.len(), "user", &a.sources, a.plugin.as_ref()))
                });
                format!("auther {name}{contents}")
            }
            (None, None) => "no authentication".to_owned(),
        };
        let binding = match service.host_binding.len() {
            0 => String::new(),
            n => format!(", host names bound for {n} user{}", plural(n)),
        };
        let others = match namespaces {
            0 => String::new(),
            n => format!(", {n} other router{}", plural(n)),
        };
        let cluster = match &service.cluster {
            None => String::new(),
            Some(cluster) => {
                let sd = match &cluster.sd.backend {
                    SdBackend::Redis(redis) => match &redis.sentinel {
                        Some(master) => format!("redis master {master} via sentinels {}", redis.addrs.join(",")),
                        None => format!("redis {}", redis.addrs.join(",")),
                    },
                    SdBackend::Plugin(plugin) => format!("plugin {}", plugin.addr),
                };
                format!(
                    "; cluster node: links on {} (advertised as {}), sd {} ({sd})",
                    cluster.entrypoint, cluster.advertise, cluster.sd.name
                )
            }
        };
        format!(
            "router server on {} over {}; {default}{others}; {ingress}; {auth}{binding}{}{cluster}",
            service.listen,
            listener(&service.listener),
            self.shaping_text(service),
        )
    }

    /// `; limiter L per client (2 lines); rlimiter R (1 line); observer O every 5s`, or nothing.
    fn shaping_text(&self, service: &RouterService) -> String {
        let shaping = &service.shaping;
        let mut parts = Vec::new();
        let limiter = |name: &str| {
            self.limiters.iter().find(|l| l.name == name).map_or_else(String::new, |l| {
                format!(" ({})", entries(l.limits.len(), "line", &l.sources, l.plugin.as_ref()))
            })
        };
        if let Some(name) = &shaping.limiter {
            parts.push(format!("limiter {name} per client{}", limiter(name)));
        }
        if let Some(name) = &shaping.service_limiter {
            parts.push(format!("limiter {name} per connection{}", limiter(name)));
        }
        if let Some(name) = &shaping.rate_limiter {
            let contents = self
                .rlimiters
                .iter()
                .find(|l| &l.name == name)
                .map_or_else(String::new, |l| format!(" ({})", entries(l.limits.len(), "line", &l.sources, None)));
            parts.push(format!("rlimiter {name}{contents}"));
        }
        if let Some(name) = &shaping.observer {
            parts.push(format!("observer {name} every {:?}", shaping.observe.period));
        }
        parts.iter().map(|p| format!("; {p}")).collect()
    }
}

fn api_line(api: &ApiConfig) -> String {
    let prefix = if api.path_prefix.is_empty() { "/" } else { api.path_prefix.as_str() };
    format!(
        "web API on {} over {} at {prefix}; {}{}",
        api.listen,
        listener(&api.listener),
        web_auth(api.auth.as_ref(), api.auther.as_deref()),
        if api.access_log { "; access log" } else { "" }
    )
}

fn metrics_line(metrics: &MetricsConfig) -> String {
    format!(
        "Prometheus metrics on {} over {} at {}; {}; per-host series {}",
        metrics.listen,
        listener(&metrics.listener),
        metrics.path,
        web_auth(metrics.auth.as_ref(), metrics.auther.as_deref()),
        if metrics.host_labels { "on" } else { "off" }
    )
}

fn web_auth(auth: Option<&Credentials>, auther: Option<&str>) -> String {
    match (auth, auther) {
        (Some(credentials), _) => format!("user {}", credentials.username),
        (None, Some(name)) => format!("auther {name}"),
        (None, None) => "no authentication".to_owned(),
    }
}

fn tun_line(service: &TunService) -> String {
    let tun = &service.tun;
    let addrs: Vec<String> = tun.addrs.iter().map(ToString::to_string).collect();
    let routes: Vec<String> = tun
        .routes
        .iter()
        .map(|r| r.gateway.map_or_else(|| r.dst.to_string(), |gw| format!("{} via {gw}", r.dst)))
        .collect();
    let routes = if routes.is_empty() { "no routes".to_owned() } else { format!("routes {}", routes.join(", ")) };
    let nodes: Vec<String> = service.chain.nodes.iter().map(node).collect();
    let selector = if nodes.len() > 1 {
        let s = &service.chain.selector;
        let strategy = match s.strategy {
            Strategy::RoundRobin => "round",
            Strategy::Random => "random",
            Strategy::Fifo => "fifo",
            Strategy::Hash => "hash",
        };
        format!(
            ", strategy {strategy}, a node skipped for {:?} after {} failure{}",
            s.fail_timeout,
            s.max_fails,
            plural(s.max_fails as usize)
        )
    } else {
        String::new()
    };
    format!(
        "tun client {}: device {} {} mtu {}, offload {}, {routes}; to {} (chain {}{selector})",
        service.host,
        tun.name.as_deref().unwrap_or("(name chosen by the system)"),
        addrs.join(","),
        tun.mtu,
        if tun.offload { "on" } else { "off" },
        nodes.join(", or "),
        service.chain.name,
    )
}

fn node(node: &Node) -> String {
    let dialer = match &node.dialer {
        DialerKind::Tcp => "tcp".to_owned(),
        DialerKind::Tls(_) => "tls".to_owned(),
        DialerKind::Ws { path, .. } => format!("ws {path}"),
        DialerKind::Wss { path, .. } => format!("wss {path}"),
    };
    let id = node.connector.router_id.map_or_else(String::new, |id| format!(", router.id {id}"));
    let user = node.connector.auth.as_ref().map_or_else(String::new, |c| format!(", user {}", c.username));
    format!("{} over {dialer}{id}{user}", node.addr)
}

fn listener(kind: &ListenerKind) -> String {
    match kind {
        ListenerKind::Tcp => "tcp".to_owned(),
        ListenerKind::Tls(tls) => format!("tls ({})", certificate(tls)),
        ListenerKind::Ws { path } => format!("ws {path}"),
        ListenerKind::Wss { path, tls } => format!("wss {path} ({})", certificate(tls)),
    }
}

fn certificate(tls: &TlsServerSettings) -> String {
    let cert = tls
        .cert_file
        .as_ref()
        .map_or_else(|| "self-signed certificate".to_owned(), |c| format!("certificate {}", c.display()));
    match &tls.ca_file {
        Some(ca) => format!("{cert}, client certificates signed by {}", ca.display()),
        None => cert,
    }
}

/// `4 routes`, `2 routes + file /x, reload 30s`, or `plugin URL`.
fn entries(inline: usize, what: &str, sources: &Sources, plugin: Option<&PluginConfig>) -> String {
    if let Some(plugin) = plugin {
        return format!("plugin {}", plugin.addr);
    }
    let mut text = format!("{inline} {what}{}", plural(inline));
    let mut from = Vec::new();
    if let Some(file) = &sources.file {
        from.push(format!("file {}", file.path.display()));
    }
    if let Some(redis) = &sources.redis {
        from.push(format!("redis {} key {}", redis.addr, redis.key));
    }
    if let Some(http) = &sources.http {
        from.push(format!("http {}", http.url));
    }
    if !from.is_empty() {
        text.push_str(&format!(" + {}", from.join(", ")));
        if let Some(reload) = sources.reload {
            text.push_str(&format!(", reload every {reload:?}"));
        }
    }
    text
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

impl Display for ListenAddr {
    /// `:8443` (every address), `127.0.0.1:8443` or `[::1]:8443`.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self.ip {
            None => write!(f, ":{}", self.port),
            Some(ip) if ip.is_ipv6() => write!(f, "[{ip}]:{}", self.port),
            Some(ip) => write!(f, "{ip}:{}", self.port),
        }
    }
}
