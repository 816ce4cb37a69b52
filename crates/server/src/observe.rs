//! The router handler's observer (`handler.observer`): every period, one
//! `stats` event per client whose counters changed, posted to an HTTP
//! plugin as GOST's handlers post them.
//!
//! The counters are the connections' own ([`crate::stats::ConnStats`]),
//! summed when the period comes; the [`Ledger`] adds what connections that
//! closed leave behind and counts connections as they come, so the packet
//! path does nothing for the observer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rgost_config::ObserverConfig;
use rgost_relay::TunnelId;
use rgost_sources::{ObserverEvent, ObserverPlugin, ObserverStats, PluginError};

use crate::stats::Totals;

/// Clients remembered without a connection before the ones already
/// reported are forgotten (a client can make up any host name).
const MAX_IDLE_CLIENTS: usize = 65_536;

/// An observer in force: its plugin and how it is fed.
#[derive(Debug)]
pub struct Observer {
    /// Its name (`observers[].name`).
    pub name: String,
    /// Where events go.
    pub plugin: ObserverPlugin,
    /// How often.
    pub period: Duration,
    /// Report bytes since the last event instead of totals.
    pub reset_traffic: bool,
}

impl Observer {
    /// Builds the observer of `config` (reads the plugin's TLS files).
    pub fn new(config: &ObserverConfig, period: Duration, reset_traffic: bool) -> Result<Observer, PluginError> {
        Ok(Observer { name: config.name.clone(), plugin: ObserverPlugin::new(&config.plugin)?, period, reset_traffic })
    }
}

/// A client: GOST's `host@router-id`.
pub type Client = (TunnelId, Arc<str>);

/// What is known of each client beyond its open connections.
#[derive(Debug, Default)]
pub struct Ledger {
    clients: Mutex<HashMap<Client, Entry>>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Entry {
    /// Connections made.
    total_conns: u64,
    /// Connections that ended with an error.
    errors: u64,
    /// Bytes of connections that closed.
    closed_in: u64,
    closed_out: u64,
    /// What the last event said (totals, also with `resetTraffic`).
    reported: Option<ObserverStats>,
}

/// The open connections of a client now: how many, bytes in and out.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Open {
    /// Connections open.
    pub conns: u64,
    /// Bytes read from them.
    pub bytes_in: u64,
    /// Bytes written to them.
    pub bytes_out: u64,
}

impl Ledger {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Client, Entry>> {
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A connection of `client` was accepted.
    pub fn connected(&self, client: Client) {
        self.lock().entry(client).or_default().total_conns += 1;
    }

    /// A connection of `client` closed with these counters.
    pub fn closed(&self, client: Client, totals: &Totals, error: bool) {
        let mut clients = self.lock();
        let entry = clients.entry(client).or_default();
        // Opened before the observer was there: it counts now.
        entry.total_conns = entry.total_conns.max(1);
        entry.errors += u64::from(error);
        entry.closed_in += totals.bytes_in;
        entry.closed_out += totals.bytes_out;
    }

    /// The events for the clients whose counters changed since the last
    /// call, given the clients' open connections now.
    pub fn events(&self, service: &str, open: &HashMap<Client, Open>, reset_traffic: bool) -> Vec<ObserverEvent> {
        let mut clients = self.lock();
        for client in open.keys() {
            if !clients.contains_key(client) {
                // Connected before the observer was there.
                clients.insert(client.clone(), Entry::default());
            }
        }
        let mut events = Vec::new();
        for (client, entry) in clients.iter_mut() {
            let now = open.get(client).copied().unwrap_or_default();
            let previous = entry.reported.unwrap_or_default();
            let totals = ObserverStats {
                total_conns: entry.total_conns.max(now.conns),
                current_conns: now.conns,
                // Never less than reported: a connection closing meanwhile
                // leaves the open sum before it joins the closed one.
                input_bytes: (entry.closed_in + now.bytes_in).max(previous.input_bytes),
                output_bytes: (entry.closed_out + now.bytes_out).max(previous.output_bytes),
                total_errs: entry.errors,
            };
            if entry.reported == Some(totals) {
                continue;
            }
            entry.reported = Some(totals);
            let mut stats = totals;
            if reset_traffic {
                stats.input_bytes -= previous.input_bytes;
                stats.output_bytes -= previous.output_bytes;
            }
            events.push(ObserverEvent {
                kind: "handler".to_owned(),
                service: service.to_owned(),
                client: format!("{}@{}", client.1, client.0),
                event_type: "stats".to_owned(),
                stats: Some(stats),
            });
        }
        if clients.len() > MAX_IDLE_CLIENTS {
            // Forget idle clients whose last state was reported.
            clients.retain(|client, entry| open.contains_key(client) || entry.reported.is_none());
        }
        events.sort_by(|a, b| a.client.cmp(&b.client));
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(host: &str) -> Client {
        (TunnelId::from_uuid([7; 16]), Arc::from(host))
    }

    fn open(entries: &[(&str, u64, u64, u64)]) -> HashMap<Client, Open> {
        entries
            .iter()
            .map(|(host, conns, bytes_in, bytes_out)| {
                (client(host), Open { conns: *conns, bytes_in: *bytes_in, bytes_out: *bytes_out })
            })
            .collect()
    }

    fn stats(events: &[ObserverEvent]) -> Vec<(String, ObserverStats)> {
        events.iter().map(|e| (e.client.clone(), e.stats.unwrap())).collect()
    }

    #[test]
    fn one_event_per_changed_client_with_gosts_fields() {
        let ledger = Ledger::default();
        ledger.connected(client("a"));
        ledger.connected(client("b"));
        let events = ledger.events("svc", &open(&[("a", 1, 100, 200), ("b", 1, 0, 0)]), false);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].client, "a@07070707-0707-0707-0707-070707070707");
        assert_eq!((events[0].kind.as_str(), events[0].event_type.as_str()), ("handler", "stats"));
        assert_eq!(events[0].service, "svc");
        assert_eq!(
            events[0].stats,
            Some(ObserverStats {
                total_conns: 1,
                current_conns: 1,
                input_bytes: 100,
                output_bytes: 200,
                total_errs: 0
            })
        );
        // Nothing changed for b: only a's event.
        let events = ledger.events("svc", &open(&[("a", 1, 150, 200), ("b", 1, 0, 0)]), false);
        assert_eq!(
            stats(&events).iter().map(|(c, s)| (c.chars().next(), s.input_bytes)).collect::<Vec<_>>(),
            [(Some('a'), 150)]
        );
        // a's connection closes with an error, and it reconnects.
        let totals = Totals { bytes_in: 160, bytes_out: 210, ..Totals::default() };
        ledger.closed(client("a"), &totals, true);
        ledger.connected(client("a"));
        let events = ledger.events("svc", &open(&[("a", 1, 5, 0), ("b", 1, 0, 0)]), false);
        assert_eq!(
            events[0].stats,
            Some(ObserverStats {
                total_conns: 2,
                current_conns: 1,
                input_bytes: 165,
                output_bytes: 210,
                total_errs: 1
            })
        );
        // b goes away: one last event says so, then nothing.
        ledger.closed(client("b"), &Totals::default(), false);
        let events = ledger.events("svc", &open(&[("a", 1, 5, 0)]), false);
        assert_eq!(stats(&events)[0].1.current_conns, 0);
        assert!(ledger.events("svc", &open(&[("a", 1, 5, 0)]), false).is_empty());
    }

    #[test]
    fn reset_traffic_reports_bytes_since_the_last_event() {
        let ledger = Ledger::default();
        ledger.connected(client("a"));
        let first = ledger.events("svc", &open(&[("a", 1, 100, 10)]), true);
        assert_eq!((first[0].stats.unwrap().input_bytes, first[0].stats.unwrap().output_bytes), (100, 10));
        let second = ledger.events("svc", &open(&[("a", 1, 250, 10)]), true);
        assert_eq!((second[0].stats.unwrap().input_bytes, second[0].stats.unwrap().output_bytes), (150, 0));
        assert_eq!(second[0].stats.unwrap().total_conns, 1, "connection counts stay totals");
    }

    #[test]
    fn counters_never_go_back_while_a_connection_closes() {
        let ledger = Ledger::default();
        ledger.connected(client("a"));
        ledger.events("svc", &open(&[("a", 1, 100, 100)]), true);
        // The connection has left the open ones and not yet joined the closed.
        let events = ledger.events("svc", &open(&[]), true);
        assert_eq!(stats(&events), [(client_name("a"), ObserverStats { total_conns: 1, ..ObserverStats::default() })]);
        ledger.closed(client("a"), &Totals { bytes_in: 130, bytes_out: 100, ..Totals::default() }, false);
        let events = ledger.events("svc", &open(&[]), true);
        assert_eq!(stats(&events)[0].1.input_bytes, 30, "counted once");
    }

    #[test]
    fn clients_connected_before_the_observer_count() {
        let ledger = Ledger::default();
        let events = ledger.events("svc", &open(&[("a", 2, 1, 1)]), false);
        assert_eq!((events[0].stats.unwrap().total_conns, events[0].stats.unwrap().current_conns), (2, 2));
    }

    fn client_name(host: &str) -> String {
        format!("{host}@07070707-0707-0707-0707-070707070707")
    }
}
