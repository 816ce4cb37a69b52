#!/usr/bin/env bash
# Where the CPU goes on the rgost path under one saturating TCP stream: perf
# samples of the router server and of one TUN client while iperf3 runs h1 -> h2
# through the tunnel. Run as root after `cargo build --release -p rgost`.
# Namespaces and processes are removed on exit; traffic stays inside them.
#
#     bash bench/profile.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
bin=${CARGO_TARGET_DIR:-$PWD/target}/release/rgost
[ -x "$bin" ] || { echo "build first: cargo build --release -p rgost" >&2; exit 1; }
command -v perf >/dev/null || apt-get install -y -qq linux-perf >/dev/null
command -v iperf3 >/dev/null || apt-get install -y -qq iperf3 >/dev/null

tag=rgprof$$ work=$(mktemp -d)
srv=$tag-srv h1=$tag-h1 h2=$tag-h2
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    for ns in "$srv" "$h1" "$h2"; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
for ns in "$srv" "$h1" "$h2"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip -n "$srv" link add s1 type veth peer name e0 netns "$h1"
ip -n "$srv" link add s2 type veth peer name e0 netns "$h2"
ip -n "$srv" addr add 10.31.1.1/24 dev s1; ip -n "$h1" addr add 10.31.1.2/24 dev e0
ip -n "$srv" addr add 10.31.2.1/24 dev s2; ip -n "$h2" addr add 10.31.2.2/24 dev e0
ip -n "$srv" link set s1 up; ip -n "$srv" link set s2 up; ip -n "$h1" link set e0 up; ip -n "$h2" link set e0 up
cat > "$work/server.yaml" <<YAML
services:
- name: s
  addr: :8443
  handler: {type: router, metadata: {router: r}}
  listener: {type: tcp}
routers:
- name: r
  routes:
  - {dst: 10.9.0.1, gateway: h1}
  - {dst: 10.9.0.2, gateway: h2}
YAML
ip netns exec "$srv" "$bin" -C "$work/server.yaml" 2>"$work/srv.log" & pids+=($!); spid=$!
sleep 0.5
ip netns exec "$h1" "$bin" -L "tun:///h1?net=10.9.0.1/24" -F "router://10.31.1.1:8443" 2>"$work/h1.log" & pids+=($!); c1=$!
ip netns exec "$h2" "$bin" -L "tun:///h2?net=10.9.0.2/24" -F "router://10.31.2.1:8443" 2>"$work/h2.log" & pids+=($!)
for _ in $(seq 50); do ip netns exec "$h1" ping -c1 -W1 -q 10.9.0.2 >/dev/null 2>&1 && break; sleep 0.2; done
ip netns exec "$h2" iperf3 -s -1 -p 5301 >/dev/null 2>&1 & pids+=($!)
sleep 0.3
ip netns exec "$h1" timeout $((secs + 10)) iperf3 -c 10.9.0.2 -p 5301 -t $((secs + 2)) >"$work/iperf.txt" 2>&1 & pids+=($!)
sleep 1
perf record -q -F 999 -g -o "$work/srv.data" -p "$spid" -- sleep "$secs" 2>/dev/null & r1=$!
perf record -q -F 999 -g -o "$work/cli.data" -p "$c1" -- sleep "$secs" 2>/dev/null & r2=$!
wait "$r1" "$r2" || true
wait "${pids[-1]}" || true
grep -E "sender|receiver" "$work/iperf.txt" || true
for who in srv cli; do
    echo "== $who: top symbols (self time)"
    perf report -q -i "$work/$who.data" --no-children --sort symbol --stdio 2>/dev/null | grep -E "^ +[0-9]" | head -20
done
