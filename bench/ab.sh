#!/usr/bin/env bash
# A/B of two rgost builds on the tunnel benchmark: interleaved repetitions
# (A, B, A, B, ...) of bench/run.sh's rgost path, so that drift of a shared
# machine hits both alike; prints each repetition and the medians, with B/A.
#
#     bash bench/ab.sh BIN_A BIN_B [REPS] [SECS]
#
# Build the two binaries first (e.g. `git stash; cargo build --profile
# profiling -p rgost; cp target/profiling/rgost /tmp/rgost-a; git stash pop;
# ...`). Run as root. Everything bench/run.sh does stays inside the
# namespaces it creates and is bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: bash bench/ab.sh BIN_A BIN_B [REPS] [SECS]" >&2; exit 2; }
a=$1 b=$2 reps=${3:-3} secs=${4:-8}
for bin in "$a" "$b"; do [ -x "$bin" ] || { echo "not executable: $bin" >&2; exit 2; }; done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
metrics=(tcp1_gbps tcp4_gbps udp64_pps rtt_idle_med rtt_load_med srv_cpu_s_per_gb all_cpu_s_per_gb)
# One run of the rgost path; prints "metric value" lines from the report.
one() {
    local bin=$1 out=$2
    RGOST_BIN=$bin BENCH_PROFILE=${BENCH_PROFILE:-profiling} bash bench/run.sh --only tunnel --paths rgost \
        --reps 1 --secs "$secs" --out "$out.md" >"$out.log" 2>&1 || true
    # The report's results table: | rgost | tcp1 | tcp4 | udp (kpps) | rtt idle med / avg | rtt load med / avg | srv | all |
    awk -F'|' '$2 ~ /^ rgost / {
        split($6, idle, " / "); split($7, load, " / ");
        printf "tcp1_gbps %s\ntcp4_gbps %s\nudp64_pps %s\nrtt_idle_med %s\nrtt_load_med %s\nsrv_cpu_s_per_gb %s\nall_cpu_s_per_gb %s\n",
            $3+0, $4+0, ($5+0)*1000, idle[1]+0, load[1]+0, $8+0, $9+0; exit }' "$out.md"
}
for r in $(seq "$reps"); do
    for side in A B; do
        bin=$a; [ $side = B ] && bin=$b
        one "$bin" "$work/$side-$r" >"$work/$side-$r.txt"
        echo "rep $r $side: $(tr '\n' ' ' <"$work/$side-$r.txt")"
    done
done
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "NA" }'; }
echo
printf '| metric | A (median) | B (median) | B / A |\n|---|---:|---:|---:|\n'
for m in "${metrics[@]}"; do
    ma=$(cat "$work"/A-*.txt | awk -v m="$m" '$1 == m { print $2 }' | median)
    mb=$(cat "$work"/B-*.txt | awk -v m="$m" '$1 == m { print $2 }' | median)
    printf '| %s | %s | %s | %s |\n' "$m" "$ma" "$mb" \
        "$(awk -v a="$ma" -v b="$mb" 'BEGIN { if (a == "NA" || b == "NA" || a + 0 == 0) print "NA"; else printf "%.3f", b / a }')"
done
