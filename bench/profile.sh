#!/usr/bin/env bash
# Where the CPU goes on the rgost path under one saturating TCP stream: perf
# samples of the router server and of both TUN clients while iperf3 runs
# h1 -> h2 through the tunnel. Run as root; builds the `profiling` profile (release
# code with line tables, so perf resolves symbols) first.
# Namespaces and processes are removed on exit; traffic stays inside them.
#
#     bash bench/profile.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
cargo build --profile profiling -q -p rgost
bin=${CARGO_TARGET_DIR:-$PWD/target}/profiling/rgost
[ -x "$bin" ] || { echo "the build produced no $bin" >&2; exit 1; }
command -v perf >/dev/null || apt-get install -y -qq linux-perf >/dev/null
command -v iperf3 >/dev/null || apt-get install -y -qq iperf3 >/dev/null

source scripts/three-namespaces.sh
three_namespaces "rgprof$$" 10.31
rgost_tunnel "$bin"
ip netns exec "$h2" iperf3 -s -1 -p 5301 >/dev/null 2>&1 & pids+=($!)
sleep 0.3
ip netns exec "$h1" timeout $((3 * secs + 10)) iperf3 -c 10.9.0.2 -p 5301 -t $((3 * secs + 2)) >"$work/iperf.txt" 2>&1 & pids+=($!)
sleep 1
# One process after the other: two perf sessions at once lose one of them.
perf record -q -F 999 -g -o "$work/srv.data" -p "$srv_pid" -- sleep "$secs" 2>/dev/null || true
perf record -q -F 999 -g -o "$work/cli.data" -p "$c1_pid" -- sleep "$secs" 2>/dev/null || true
perf record -q -F 999 -g -o "$work/rcv.data" -p "$c2_pid" -- sleep "$secs" 2>/dev/null || true
wait "${pids[-1]}" || true
grep -E "sender|receiver" "$work/iperf.txt" || true
for who in "router server:srv" "sending client:cli" "receiving client:rcv"; do
    echo "== ${who%:*}: samples by binary (kernel, rgost, libc)"
    perf report -q -i "$work/${who#*:}.data" --no-children --sort dso --stdio 2>/dev/null |
        grep -E "^ +[0-9]" | head -4 || true
    echo "== ${who%:*}: top symbols (self time)"
    perf report -q -i "$work/${who#*:}.data" --no-children --sort symbol --stdio 2>/dev/null |
        grep -E "^ +[0-9]" | head -20 || true
done
