#!/usr/bin/env bash
# Where the idle round trip through rgost goes: ping h1 -> h2 over the bare
# network and through rgost (server in the middle namespace, a TUN client in
# h1 and h2), each in three machine states:
#   placed  - as the scheduler places the processes (what bench/run.sh measures);
#   one-cpu - every process of the path pinned to CPU 0 (no wake-up crosses CPUs);
#   busy    - one nice-19 spinner per CPU, so no CPU sits idle (halted) when a
#             packet arrives; the spinners yield to any other work.
# If `one-cpu` stays near `placed` and `busy` falls, the round trip pays for
# CPUs coming back from idle (on a VM: a halted vCPU, which the host may have
# given to others meanwhile), not for wake-ups that cross CPUs. Run as root; it
# builds the `profiling` profile (RGOST_BIN=PATH runs another build instead).
# Namespaces, processes and spinners are
# removed on exit; traffic stays inside the namespaces; every loop is bounded.
#
#     bash bench/rtt-floor.sh [PINGS]
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-200}
[ -n "${RGOST_BIN:-}" ] || cargo build --profile profiling -q -p rgost
bin=${RGOST_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/profiling/rgost}
[ -x "$bin" ] || { echo "no rgost binary at $bin" >&2; exit 1; }
cpus=$(nproc)

source scripts/three-namespaces.sh
three_namespaces "rgfloor$$" 10.34
rgost_tunnel "$bin"
tunnel=("$srv_pid" "$c1_pid" "$c2_pid")
ip netns exec "$srv" sysctl -qw net.ipv4.ip_forward=1
ip -n "$h1" route add 10.34.2.0/24 via 10.34.1.1
ip -n "$h2" route add 10.34.1.0/24 via 10.34.2.1

# Median and average of $count pings (ms), 10 ms apart, from h1 to $1;
# $2.. prefixes ping (e.g. taskset).
rtt() {
    local dst=$1; shift
    ip netns exec "$h1" timeout 30 "$@" ping -c "$count" -i 0.01 -W 1 "$dst" 2>/dev/null |
        sed -n 's/.*time=\([0-9.]*\) ms.*/\1/p' | sort -n |
        awk '{ v[NR] = $1; s += $1 } END { if (NR) printf "%.3f / %.3f", v[int((NR + 1) / 2)], s / NR; else printf "NA" }'
}

pin() { local p; for p in "${tunnel[@]}"; do taskset -a -p -c "$1" "$p" >/dev/null; done; }

spinners=()
stop_spinners() { local p; for p in "${spinners[@]}"; do kill "$p" 2>/dev/null || true; done; spinners=(); }
trap 'stop_spinners; three_namespaces_cleanup' EXIT

echo "idle round trip h1 -> h2, median / average of $count pings (ms); $cpus CPUs"
echo "cpuidle: $(cat /sys/devices/system/cpu/cpuidle/current_driver 2>/dev/null || echo NA)," \
    "guest_halt_poll_ns: $(cat /sys/module/haltpoll/parameters/guest_halt_poll_ns 2>/dev/null || echo NA)"
echo
printf '| %-8s | %-15s | %-15s | %s |\n' state bare rgost "rgost - bare (median)"
printf '|---|---:|---:|---:|\n'
for state in placed one-cpu busy; do
    prefix=()
    case $state in
        one-cpu) pin 0; prefix=(taskset -c 0) ;;
        busy)
            pin "0-$((cpus - 1))"
            for _ in $(seq "$cpus"); do
                timeout 60 nice -n 19 sh -c 'while :; do :; done' & spinners+=($!)
            done
            sleep 0.5
            ;;
    esac
    b=$(rtt 10.34.2.2 "${prefix[@]}")
    r=$(rtt 10.9.0.2 "${prefix[@]}")
    d=$(awk -v b="${b%% *}" -v r="${r%% *}" 'BEGIN { if (b == "NA" || r == "NA") print "NA"; else printf "%+.3f", r - b }')
    printf '| %-8s | %-15s | %-15s | %s |\n' "$state" "$b" "$r" "$d"
    stop_spinners
done
