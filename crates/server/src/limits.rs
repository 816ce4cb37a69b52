//! Bounds on connections at once: in total and per source address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Connection counters shared by a service's accept loop and its connections.
#[derive(Debug)]
pub struct Limits {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    total: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    max_total: usize,
    max_per_ip: usize,
}

/// A held connection slot; released on drop.
#[derive(Debug)]
pub struct Slot {
    inner: Arc<Inner>,
    ip: IpAddr,
}

impl Limits {
    /// Limits of `max_total` connections and `max_per_ip` per address.
    pub fn new(max_total: usize, max_per_ip: usize) -> Limits {
        Limits {
            inner: Arc::new(Inner { total: AtomicUsize::new(0), per_ip: Mutex::default(), max_total, max_per_ip }),
        }
    }

    /// A slot for a connection from `ip`, or `None` when a limit is reached.
    pub fn acquire(&self, ip: IpAddr) -> Option<Slot> {
        let inner = &self.inner;
        let ip = canonical(ip);
        let mut per_ip = inner.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        if inner.total.load(Ordering::Relaxed) >= inner.max_total {
            return None;
        }
        let count = per_ip.entry(ip).or_insert(0);
        if *count >= inner.max_per_ip {
            return None;
        }
        *count += 1;
        inner.total.fetch_add(1, Ordering::Relaxed);
        Some(Slot { inner: Arc::clone(inner), ip })
    }

    /// Connections held now.
    pub fn total(&self) -> usize {
        self.inner.total.load(Ordering::Relaxed)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut per_ip = self.inner.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = per_ip.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                per_ip.remove(&self.ip);
            }
        }
        self.inner.total.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An IPv4 peer on a dual-stack socket shows as `::ffff:a.b.c.d`; count it as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_ip_and_total_limits_hold_and_release() {
        let limits = Limits::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "::ffff:10.0.0.2".parse().unwrap();
        let a1 = limits.acquire(a).unwrap();
        let _a2 = limits.acquire(a).unwrap();
        assert!(limits.acquire(a).is_none(), "per-ip limit");
        let _b1 = limits.acquire(b).unwrap();
        assert!(limits.acquire("10.0.0.3".parse().unwrap()).is_none(), "total limit");
        drop(a1);
        assert_eq!(limits.total(), 2);
        assert!(limits.acquire(a).is_some());
    }
}
