# Sourced by scripts/demo.sh and bench/profile.sh. `three_namespaces TAG NET`
# creates three network namespaces joined by veth pairs:
#
#     h1 e0 NET.1.2 -- s1 NET.1.1 [srv] s2 NET.2.1 -- e0 NET.2.2 h2
#
# named TAG-h1, TAG-srv, TAG-h2 (in $h1, $srv, $h2), plus a scratch directory
# ($work) and a list for background pids ($pids). On exit the pids are
# killed and the namespaces and the directory removed.
three_namespaces() {
    local tag=$1 net=$2 ns
    srv=$tag-srv h1=$tag-h1 h2=$tag-h2
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
