//! Route lookup time with 10, 10k and 1M routes, IPv4 and IPv6 (issue 5's
//! target: <= 200 ns median at 1M routes, independent of the count).
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use rgost_routing::{Route, RouteTable};

const PROBES: usize = 4096;

fn table_v4(n: usize, rng: &mut fastrand::Rng) -> RouteTable {
    RouteTable::new((0..n).map(|i| {
        let len = rng.u8(8..=32);
        Route {
            dst: IpNet::V4(Ipv4Net::new(Ipv4Addr::from(rng.u32(..)), len).unwrap().trunc()),
            gateway: Arc::from(format!("host-{}", i % 1000)),
        }
    }))
}

fn table_v6(n: usize, rng: &mut fastrand::Rng) -> RouteTable {
    RouteTable::new((0..n).map(|i| {
        let len = rng.u8(16..=128);
        Route {
            dst: IpNet::V6(Ipv6Net::new(Ipv6Addr::from(rng.u128(..)), len).unwrap().trunc()),
            gateway: Arc::from(format!("host-{}", i % 1000)),
        }
    }))
}

fn lookup(c: &mut Criterion) {
    let mut group = c.benchmark_group("route_lookup");
    for &n in &[10usize, 10_000, 1_000_000] {
        let mut rng = fastrand::Rng::with_seed(n as u64);
        let v4 = table_v4(n, &mut rng);
        let probes4: Vec<IpAddr> = (0..PROBES).map(|_| IpAddr::V4(Ipv4Addr::from(rng.u32(..)))).collect();
        group.bench_with_input(BenchmarkId::new("ipv4", n), &n, |b, _| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % PROBES;
                black_box(v4.lookup(black_box(probes4[i])))
            })
        });
        drop(v4);
        let v6 = table_v6(n, &mut rng);
        let probes6: Vec<IpAddr> = (0..PROBES).map(|_| IpAddr::V6(Ipv6Addr::from(rng.u128(..)))).collect();
        group.bench_with_input(BenchmarkId::new("ipv6", n), &n, |b, _| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % PROBES;
                black_box(v6.lookup(black_box(probes6[i])))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, lookup);
criterion_main!(benches);
