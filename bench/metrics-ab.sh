#!/usr/bin/env bash
# Metrics on vs off through the tunnel, with the scrapers as a third arm:
#   off       - router server without -api/-metrics, nothing scraping;
#   scrapers  - the same server, and the scraper loop of bench/run.sh's
#               rgost-metrics path pointed at a closed port (their CPU only);
#   on        - -api and -metrics ...?hostLabels=true, scraped every second,
#               an event-stream reader attached (as rgost-metrics).
# One iperf3 TCP stream h1 -> h2 for 8 s per arm, arms interleaved, REPS
# repetitions; prints Gb/s and the server's CPU per GB. Run as root; it builds
# the `profiling` profile (RGOST_BIN=PATH runs another build). Namespaces and
# processes are removed on exit; traffic stays inside the namespaces.
#
#     bash bench/metrics-ab.sh [REPS]
set -u
cd "$(dirname "$0")/.."
[ -n "${RGOST_BIN:-}" ] || cargo build --profile profiling -q -p rgost
bin=${RGOST_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/profiling/rgost}
source scripts/three-namespaces.sh
three_namespaces "mab3$$" 10.38
run() {
  local mode=$1 extra=() port=9
  [ "$mode" = on ] && extra=(-api 127.0.0.1:18080 -metrics "127.0.0.1:9000?hostLabels=true") && port=9000
  rgost_tunnel "$bin" "" "${extra[@]}"
  local sp=$srv_pid c1=$c1_pid c2=$c2_pid
  local cl="" sse=""
  if [ "$mode" != off ]; then
    ip netns exec "$srv" bash -c "for i in \$(seq 30); do curl -s -o /dev/null http://127.0.0.1:$port/metrics; curl -s -o /dev/null http://127.0.0.1:$((port == 9 ? 9 : 18080))/status; sleep 1; done" & cl=$!
    [ "$mode" = on ] && { ip netns exec "$srv" timeout 30 curl -sN -o /dev/null http://127.0.0.1:18080/events & sse=$!; }
  fi
  ip netns exec "$h2" timeout 20 iperf3 -s -1 >/dev/null 2>&1 & local is=$!
  sleep 0.3
  local t0=$(awk '{print $14+$15}' /proc/$sp/stat)
  local g=$(ip netns exec "$h1" timeout 20 iperf3 -c 10.9.0.2 -t 8 -J 2>/dev/null | jq '.end.sum_received.bits_per_second/1e9')
  local t1=$(awk '{print $14+$15}' /proc/$sp/stat)
  printf '%s: %.2f Gb/s, server CPU %.3f s/GB\n' "$mode" "$g" "$(awk -v a=$t0 -v b=$t1 -v g=$g 'BEGIN{print (b-a)/100/(g*8/8)}')"
  for p in $cl $sse; do kill $p 2>/dev/null; done
  kill $sp $c1 $c2 $is 2>/dev/null; wait $sp $c1 $c2 2>/dev/null; sleep 0.5
}
for r in $(seq "${1:-3}"); do run off; run scrapers; run on; done
