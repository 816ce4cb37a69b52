# Sourced by scripts/demo.sh, bench/profile.sh and bench/rtt-floor.sh.
# `three_namespaces TAG NET` creates three network namespaces joined by veth
# pairs:
#
#     h1 e0 NET.1.2 -- s1 NET.1.1 [srv] s2 NET.2.1 -- e0 NET.2.2 h2
#
# named TAG-h1, TAG-srv, TAG-h2 (in $h1, $srv, $h2; NET in $net), plus a scratch directory
# ($work) and a list for background pids ($pids). On exit the pids are
# killed and the namespaces and the directory removed.
three_namespaces() {
    local tag=$1 ns
    net=$2 srv=$tag-srv h1=$tag-h1 h2=$tag-h2
    work=$(mktemp -d)
    pids=()
    trap three_namespaces_cleanup EXIT
    for ns in "$srv" "$h1" "$h2"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
    ip -n "$srv" link add s1 type veth peer name e0 netns "$h1"
    ip -n "$srv" link add s2 type veth peer name e0 netns "$h2"
    ip -n "$srv" addr add "$net.1.1/24" dev s1; ip -n "$h1" addr add "$net.1.2/24" dev e0
    ip -n "$srv" addr add "$net.2.1/24" dev s2; ip -n "$h2" addr add "$net.2.2/24" dev e0
    ip -n "$srv" link set s1 up; ip -n "$srv" link set s2 up
    ip -n "$h1" link set e0 up; ip -n "$h2" link set e0 up
}

three_namespaces_cleanup() {
    local p ns
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    for ns in "$srv" "$h1" "$h2"; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "$work"
}

# `rgost_tunnel BIN [METADATA [SERVER_ARG...]]` (after `three_namespaces`):
# a router server in $srv (METADATA: more of its handler's metadata, e.g.
# "queueBytes: 262144"; SERVER_ARGs: more of its command line) and TUN
# clients 10.9.0.1 in $h1 and 10.9.0.2 in $h2, their pids in $srv_pid,
# $c1_pid and $c2_pid (and in $pids); waits until h1 reaches h2 through the
# tunnel (at most 10 s). Logs go to $work/srv.log, h1.log and h2.log.
rgost_tunnel() {
    local bin=$1 metadata=${2:-}
    shift $(($# < 2 ? $# : 2))
    cat >"$work/server.yaml" <<YAML
services:
- name: s
  addr: :8443
  handler: {type: router, metadata: {router: r${metadata:+, $metadata}}}
  listener: {type: tcp}
routers:
- name: r
  routes:
  - {dst: 10.9.0.1, gateway: h1}
  - {dst: 10.9.0.2, gateway: h2}
YAML
    ip netns exec "$srv" "$bin" -C "$work/server.yaml" "$@" 2>"$work/srv.log" & pids+=($!); srv_pid=$!
    sleep 0.5
    ip netns exec "$h1" "$bin" -L "tun:///h1?net=10.9.0.1/24" -F "router://$net.1.1:8443" 2>"$work/h1.log" &
    pids+=($!); c1_pid=$!
    ip netns exec "$h2" "$bin" -L "tun:///h2?net=10.9.0.2/24" -F "router://$net.2.1:8443" 2>"$work/h2.log" &
    pids+=($!); c2_pid=$!
    for _ in $(seq 50); do ip netns exec "$h1" ping -c1 -W1 -q 10.9.0.2 >/dev/null 2>&1 && break; sleep 0.2; done
}
