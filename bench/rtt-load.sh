#!/usr/bin/env bash
# The round trip beside a saturating stream, by the router server's
# per-connection queue (`queueBytes`): the benchmark's topology (server in
# the middle namespace, TUN clients in h1 and h2), one iperf3 TCP stream
# h1 -> h2 for 8 s, and 500 pings h1 -> h2 10 ms apart from 1.5 s into it.
# Prints throughput and the pings' median and 90th percentile per setting.
#
# Needs iperf3 and root. Namespaces and processes are removed on exit;
# traffic stays inside the namespaces; every step is bounded in time.
#
#     bash bench/rtt-load.sh [QUEUE_BYTES ...]     (default: 1048576 262144)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${RGOST_BIN:-}" ] || cargo build --profile profiling -q -p rgost
bin=${RGOST_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/profiling/rgost}
[ -x "$bin" ] || { echo "no rgost binary at $bin" >&2; exit 1; }
[ $# -gt 0 ] || set -- 1048576 262144

one() {
    local qb=$1
    (
        source scripts/three-namespaces.sh
        three_namespaces "rgrl$$" 10.43
        rgost_tunnel "$bin" "queueBytes: $qb"
        ip netns exec "$h2" timeout 30 iperf3 -s -1 >/dev/null 2>&1 & pids+=($!)
        sleep 0.3
        ip netns exec "$h1" timeout 20 iperf3 -c 10.9.0.2 -t 8 -J >"$work/iperf.json" 2>/dev/null & local load=$!
        sleep 1.5
        local r
        r=$(ip netns exec "$h1" timeout 20 ping -n -c 500 -i 0.01 -W 1 10.9.0.2 2>/dev/null |
            sed -n 's/.*time=\([0-9.]*\) ms.*/\1/p' | sort -n |
            awk '{ v[NR] = $1 } END { if (NR) printf "%.3f / %.3f", v[int((NR + 1) / 2)], v[int(NR * 0.9)]; else printf "NA" }')
        wait "$load" || true
        local g
        g=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("%.2f" % (d["end"]["sum_received"]["bits_per_second"] / 1e9))' \
            "$work/iperf.json" 2>/dev/null || echo NA)
        echo "| $qb | $g | $r |"
    )
}

echo "| queueBytes | one stream (Gb/s) | round trip under load, median / p90 (ms) |"
echo "|---:|---:|---|"
for qb in "$@"; do one "$qb"; done
