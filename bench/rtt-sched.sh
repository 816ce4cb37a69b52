#!/usr/bin/env bash
# Where an idle round trip through rgost spends its time, per wake-up: pings
# h1 -> h2 through rgost (server in the middle namespace, TUN clients in h1
# and h2), `perf sched record` meanwhile, then for every process on the path
# how often it was woken, how long it waited from its wake-up until it ran
# (scheduling delay: on a VM, mostly a halted vCPU coming back) and how long
# it ran. Bare kernel forwarding wakes one process per round trip (ping);
# the tunnel wakes five (ping and four rgost hops), so the difference between
# the two round trips is about four wake-ups and four process runs.
#
# Needs perf (linux-perf) and root. Namespaces and processes are removed on
# exit; traffic stays inside the namespaces; every loop is bounded.
#
#     bash bench/rtt-sched.sh [PINGS]
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-100}
command -v perf >/dev/null || { echo "perf is needed (Debian: linux-perf)" >&2; exit 1; }
[ -n "${RGOST_BIN:-}" ] || cargo build --profile profiling -q -p rgost
bin=${RGOST_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/profiling/rgost}
[ -x "$bin" ] || { echo "no rgost binary at $bin" >&2; exit 1; }

source scripts/three-namespaces.sh
three_namespaces "rgsched$$" 10.35
rgost_tunnel "$bin"
ip netns exec "$srv" sysctl -qw net.ipv4.ip_forward=1
ip -n "$h1" route add 10.35.2.0/24 via 10.35.1.1
ip -n "$h2" route add 10.35.1.0/24 via 10.35.2.1

pings() { # DST INTERVAL COUNT -> "median average" (ms); a flood prints no per-ping times: "- average"
    if [ "$2" = flood ]; then
        ip netns exec "$h1" timeout 60 ping -n -q -f -c "$3" -W 1 "$1" 2>/dev/null |
            awk -F'[/ ]+' '/^rtt/ { printf "- %s", $8; found = 1 } END { if (!found) printf "NA NA" }'
        return
    fi
    ip netns exec "$h1" timeout 60 ping -n -c "$3" -i "$2" -W 1 "$1" 2>/dev/null |
        sed -n 's/.*time=\([0-9.]*\) ms.*/\1/p' | sort -n |
        awk '{ v[NR] = $1; s += $1 } END { if (NR) printf "%.3f %.3f", v[int((NR + 1) / 2)], s / NR; else printf "NA NA" }'
}
rtt() {
    local median average
    read -r median average <<<"$(pings "$1" 0.02 "$count")"
    echo "median $median ms, average $average ms"
}

echo "cpuidle: $(cat /sys/devices/system/cpu/cpuidle/current_driver 2>/dev/null || echo NA)," \
    "guest_halt_poll_ns: $(cat /sys/module/haltpoll/parameters/guest_halt_poll_ns 2>/dev/null || echo NA)"
echo "bare:  $(rtt 10.35.2.2)"
echo "rgost: $(rtt 10.9.0.2)"
echo
# CPU per round trip, user and kernel, of each rgost process (from
# /proc/PID/stat over ${count}0 pings, 10 ms apart, untraced).
ticks() { awk '{print $14, $15}' "/proc/$1/stat"; }
declare -A before
for p in "$srv_pid" "$c1_pid" "$c2_pid"; do before[$p]=$(ticks "$p"); done
ip netns exec "$h1" timeout 120 ping -c "$((count * 10))" -i 0.01 -W 1 -q 10.9.0.2 >/dev/null 2>&1 || true
hz=$(getconf CLK_TCK)
echo "| process | user CPU per round trip (us) | kernel CPU per round trip (us) |"
echo "|---|---:|---:|"
for p in "$srv_pid" "$c1_pid" "$c2_pid"; do
    name=server; [ "$p" = "$c1_pid" ] && name="client h1"; [ "$p" = "$c2_pid" ] && name="client h2"
    read -r u0 s0 <<<"${before[$p]}"; read -r u1 s1 <<<"$(ticks "$p")"
    awk -v n="$name" -v du=$((u1 - u0)) -v ds=$((s1 - s0)) -v hz="$hz" -v c=$((count * 10)) \
        'BEGIN { printf "| %s | %.1f | %.1f |\n", n, du / hz / c * 1e6, ds / hz / c * 1e6 }'
done
echo
# The same path at shorter intervals: how long each process slept before a
# packet decides what the packet costs. CPU per round trip from the
# scheduler's run time of every rgost thread (/proc/PID/task/TID/schedstat,
# nanoseconds), round trips from ping (`flood`: the next ping leaves when
# the reply is in).
runtime() {
    local t sum=0
    for p in "$srv_pid" "$c1_pid" "$c2_pid"; do
        for t in /proc/"$p"/task/*/schedstat; do sum=$((sum + $(cut -d' ' -f1 "$t"))); done
    done
    echo "$sum"
}
echo "| ping interval | bare median / average (ms) | rgost median / average (ms) | rgost CPU per round trip, all three processes (us) |"
echo "|---|---:|---:|---:|"
for interval in 0.01 0.002 0.0005 flood; do
    n=$((count * 5)); [ "$interval" = 0.01 ] && n=$((count * 2))
    read -r bm ba <<<"$(pings 10.35.2.2 "$interval" "$n")"
    r0=$(runtime)
    read -r rm ra <<<"$(pings 10.9.0.2 "$interval" "$n")"
    r1=$(runtime)
    label=$interval; [ "$interval" != flood ] && label="$(awk -v i="$interval" 'BEGIN { print i * 1000 }') ms"
    awk -v l="$label" -v bm="$bm" -v ba="$ba" -v rm="$rm" -v ra="$ra" -v d=$((r1 - r0)) -v n="$n" \
        'BEGIN { printf "| %s | %s / %s | %s / %s | %.0f |\n", l, bm, ba, rm, ra, d / n / 1000 }'
done
echo
# The same rgost pings, recorded (tracing adds its own cost to each step).
timeout 120 perf sched record -q -o "$work/sched.data" -- \
    ip netns exec "$h1" timeout 60 ping -c "$count" -i 0.02 -W 1 -q 10.9.0.2 >/dev/null 2>&1 || true
# Per task: wake-ups, scheduling delay (wake-up to running) and run time.
perf sched timehist -i "$work/sched.data" 2>/dev/null | tee "${SCHED_RAW:-/dev/null}" |
    awk -v s="$srv_pid" -v c1="$c1_pid" -v c2="$c2_pid" '
        # time cpu task[tid/pid] wait sch_delay run
        NF >= 6 && $1 ~ /^[0-9.]+$/ {
            split($3, t, /[\[\]\/]/); pid = t[3] != "" ? t[3] : t[2]
            who = (pid == s) ? "server" : (pid == c1) ? "client h1" : (pid == c2) ? "client h2" : ($3 ~ /^ping/) ? "ping" : ""
            if (who == "") next
            n[who]++; d[who] += $5; r[who] += $6
            if ($5 > 0.05) slow[who]++
        }
        END {
            printf "| process | runs | scheduling delay, average (ms) | runs delayed > 50 us | run time, average (ms) |\n|---|---:|---:|---:|---:|\n"
            for (w in n) printf "| %s | %d | %.3f | %d | %.3f |\n", w, n[w], d[w] / n[w], slow[w], r[w] / n[w]
        }'
