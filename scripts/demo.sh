#!/usr/bin/env bash
# The main job: build rgost and run the seed's first example in three network
# namespaces (server, host-1, host-2), then show the pings. Run as root.
# Everything it creates is removed on exit. Traffic stays inside the namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then echo "run as root (network namespaces and TUN need it)" >&2; exit 1; fi
if command -v apt-get >/dev/null && ! command -v ping >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends iproute2 iputils-ping >/dev/null
fi
cargo build --release --locked -p rgost
bin=$PWD/target/release/rgost

source scripts/three-namespaces.sh
three_namespaces "rgdemo$$" 10.11
# A bridge with an address stands in for the LAN behind each host.
ip -n "$h1" link add lan0 type bridge; ip -n "$h1" addr add 192.168.100.1/24 dev lan0; ip -n "$h1" link set lan0 up
ip -n "$h2" link add lan0 type bridge; ip -n "$h2" addr add 192.168.200.1/24 dev lan0; ip -n "$h2" link set lan0 up

sed 's/server_ip/10.11.2.1/' examples/seed/client.yaml > "$work/client.yaml"

echo "== server:  rgost -C examples/seed/server.yaml"
ip netns exec "$srv" "$bin" -C examples/seed/server.yaml 2>"$work/server.log" & pids+=($!)
echo "== host-1:  rgost -L \"tun:///host-1?net=192.168.123.1/24&route=192.168.200.0/24\" -F \"router://10.11.1.1:8443\""
ip netns exec "$h1" "$bin" -L "tun:///host-1?net=192.168.123.1/24&route=192.168.200.0/24" -F "router://10.11.1.1:8443" 2>"$work/host-1.log" & pids+=($!)
echo "== host-2:  rgost -C client.yaml   (the seed's client YAML, server_ip = 10.11.2.1)"
ip netns exec "$h2" "$bin" -C "$work/client.yaml" 2>"$work/host-2.log" & pids+=($!)

for _ in $(seq 1 100); do
    ip netns exec "$h1" ping -c 1 -W 1 -q 192.168.123.2 >/dev/null 2>&1 && break
    sleep 0.2
done
status=0
run() { echo; echo "== [$1] ping $2"; ip netns exec "$1" ping -c 3 -i 0.3 -W 2 "$2" || status=1; }
run "$h1" 192.168.123.2
run "$h2" 192.168.123.1
run "$h1" 192.168.200.1
run "$h2" 192.168.100.1
echo; echo "== logs"
for f in server host-1 host-2; do echo "--- $f"; cat "$work/$f.log"; done
exit $status
