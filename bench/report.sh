# Report generation for bench/run.sh (sourced, not run): turns the raw results
# ($RESULTS: path rep metric value; $LGRESULTS: scenario key value) into the
# Markdown of BENCHMARKS.md, with the ratios and the issue's targets.
# shellcheck shell=bash

# Median over the repetitions of one path's metric ("NA" when absent).
med() { awk -F'\t' -v p="$1" -v m="$2" '$1==p && $3==m && $4!="NA" && $4!="null" {print $4}' "$RESULTS" | stats | cut -d' ' -f1; }
# All repetitions' values of one path's metric, comma-separated.
reps_of() { awk -F'\t' -v p="$1" -v m="$2" '$1==p && $3==m {v=$4; if (v ~ /^[0-9.eE+-]+$/) v=sprintf("%.3f", v); printf "%s%s", (n++ ? ", " : ""), v}' "$RESULTS"; }
# A loadgen value.
lg() { awk -F'\t' -v s="$1" -v k="$2" '$1==s && $2==k {print $3; exit}' "$LGRESULTS"; }
# Per repetition of the stalled-receiver test: pairs' Gb/s with the extra
# client stalled / with it reading.
stall_ratios() {
    local r=1 out=()
    while [ -n "$(lg "stall-stalled-$r" gbps)" ]; do
        out+=("$(ratio "$(lg "stall-stalled-$r" gbps)" "$(lg "stall-reading-$r" gbps)")")
        r=$((r + 1))
    done
    echo "${out[*]}"
}
stall_ratio_median() { stall_ratios | tr ' ' '\n' | grep -v '^NA$' | grep . | stats | cut -d' ' -f1; }
# Number formatting; NA passes through.
fmt() { awk -v v="$1" -v f="${2:-%.2f}" 'BEGIN{if (v=="" || v=="NA") print "NA"; else printf f, v}'; }
# a / b, NA-safe.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{if (a=="" || b=="" || a=="NA" || b=="NA" || b+0==0) print "NA"; else printf "%.3f", a/b}'; }
# a - b, NA-safe.
diff_of() { awk -v a="$1" -v b="$2" 'BEGIN{if (a=="" || b=="" || a=="NA" || b=="NA") print "NA"; else printf "%.3f", a-b}'; }
# "yes"/"NO" for a comparison "a OP b" (OP: le or ge), "n/a" when unknown.
check() { awk -v a="$1" -v op="$2" -v b="$3" 'BEGIN{if (a=="" || a=="NA") {print "n/a"; exit} ok = (op=="le") ? (a+0 <= b+0) : (a+0 >= b+0); print ok ? "yes" : "**NO**"}'; }

# The best OpenVPN variant for a metric: "value variant". $2: max or min.
best_ovpn() {
    local metric=$1 want=$2 p v best="NA" which="-"
    for p in "${PATH_LIST[@]}"; do
        [[ "$p" == ovpn-* ]] || continue
        v=$(med "$p" "$metric")
        [ "$v" = NA ] && continue
        if [ "$best" = NA ] || awk -v v="$v" -v b="$best" -v w="$want" 'BEGIN{exit !((w=="max") ? v>b : v<b)}'; then
            best=$v which=$p
        fi
    done
    echo "$best $which"
}

tunnel_section() {
    local p
    echo "## 1. Tunnel benchmark: h1 -> h2 through the middle namespace"
    echo
    echo "Medians over $REPS interleaved repetition(s) of ${SECS}-second iperf3 tests. RTT idle: ping before any load"
    echo "on the path (200 pings, 10 ms apart); RTT under load: ping while one iperf3 TCP stream runs."
    echo "CPU s/GB: user+system CPU seconds of the tunnel processes during the one-stream TCP test, per GB delivered"
    echo "(server = OpenVPN server or rgost router server; all = server and both clients)."
    echo
    echo "| path | TCP 1 stream (Gb/s) | TCP 4 streams (Gb/s) | UDP 64 B (kpackets/s delivered) | RTT idle median / avg (ms) | RTT under load median / avg (ms) | server CPU (s/GB) | all tunnel CPU (s/GB) |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    for p in "${PATH_LIST[@]}"; do
        echo "| $p | $(fmt "$(med "$p" tcp1_gbps)" %.3f) | $(fmt "$(med "$p" tcp4_gbps)" %.3f) | $(fmt "$(med "$p" udp64_pps)" %.0f | awk '{print ($1=="NA") ? $1 : sprintf("%.1f", $1/1000)}') | $(fmt "$(med "$p" rtt_idle_med)" %.3f) / $(fmt "$(med "$p" rtt_idle_avg)" %.3f) | $(fmt "$(med "$p" rtt_load_med)" %.2f) / $(fmt "$(med "$p" rtt_load_avg)" %.2f) | $(fmt "$(med "$p" srv_cpu_s_per_gb)" %.2f) | $(fmt "$(med "$p" all_cpu_s_per_gb)" %.2f) |"
    done
    echo
    echo "### Ratios"
    echo
    echo "OpenVPN = its best variant for each metric (highest throughput, lowest RTT and CPU), named in brackets."
    echo
    echo "| metric | rgost | OpenVPN best | bare | rgost / OpenVPN | rgost / bare |"
    echo "|---|---:|---:|---:|---:|---:|"
    local metric label want r o ob b
    for spec in "tcp1_gbps:TCP 1 stream (Gb/s):max" "tcp4_gbps:TCP 4 streams (Gb/s):max" "udp64_pps:UDP 64 B (packets/s):max" \
        "rtt_idle_med:RTT idle, median (ms):min" "rtt_idle_avg:RTT idle, average (ms):min" \
        "rtt_load_med:RTT under load, median (ms):min" "rtt_load_avg:RTT under load, average (ms):min" \
        "srv_cpu_s_per_gb:server CPU (s/GB):min" "all_cpu_s_per_gb:all tunnel CPU (s/GB):min"; do
        IFS=: read -r metric label want <<<"$spec"
        r=$(med rgost "$metric"); read -r o ob <<<"$(best_ovpn "$metric" "$want")"; b=$(med bare "$metric")
        echo "| $label | $(fmt "$r" %.3f) | $(fmt "$o" %.3f) ($ob) | $(fmt "$b" %.3f) | $(fmt "$(ratio "$r" "$o")" %.3f) | $(fmt "$(ratio "$r" "$b")" %.3f) |"
    done
    echo
    echo "### Every repetition"
    echo
    echo "| path | metric | values (rep 1, 2, ...) |"
    echo "|---|---|---|"
    for p in "${PATH_LIST[@]}"; do
        for metric in tcp1_gbps tcp4_gbps udp64_pps udp64_loss_pct rtt_idle_med rtt_idle_avg rtt_load_med rtt_load_avg load_gbps srv_cpu_s_per_gb all_cpu_s_per_gb; do
            local vals; vals=$(reps_of "$p" "$metric")
            [ -n "$vals" ] && echo "| $p | $metric | $vals |"
        done
    done
    echo
    metrics_ab
    if [ -n "${RTT_FLOOR:-}" ]; then
        echo "### Idle round trip by machine state"
        echo
        echo "\`bench/rtt-floor.sh\` after the repetitions: bare and rgost with the processes as the scheduler places"
        echo "them (as above), all pinned to one CPU (no wake-up crosses CPUs), and with one nice-19 spinner per CPU"
        echo "(no CPU is idle when a packet arrives; the spinners yield to any other work)."
        echo
        echo "$RTT_FLOOR"
        echo
    fi
}

# The metrics A/B (paths rgost and rgost-metrics in the same run): each
# repetition's metrics-on / metrics-off ratio (the two ran back to back), and
# their median.
metrics_ab() {
    [[ " ${PATH_LIST[*]} " == *" rgost "* && " ${PATH_LIST[*]} " == *" rgost-metrics "* ]] || return 0
    echo "### Metrics on vs off"
    echo
    echo "rgost-metrics = rgost with \`-api\` and \`-metrics ...?hostLabels=true\`, scraped every second (metrics"
    echo "and \`/status\`) with an event-stream reader attached; rgost = the same build with neither. Each"
    echo "repetition runs the two back to back (in alternating order with \`--alternate\`); the ratio is on / off."
    echo
    echo "| metric | off (median) | on (median) | on / off per repetition | on / off (median of the ratios) |"
    echo "|---|---:|---:|---|---:|"
    local metric label r rs
    for spec in "tcp1_gbps:TCP 1 stream (Gb/s)" "udp64_pps:UDP 64 B (packets/s)" "tcp4_gbps:TCP 4 streams (Gb/s)" \
        "srv_cpu_s_per_gb:server CPU (s/GB)" "rtt_idle_med:RTT idle, median (ms)"; do
        IFS=: read -r metric label <<<"$spec"
        rs=()
        for r in $(seq 1 "$REPS"); do
            rs+=("$(ratio "$(awk -F'\t' -v m="$metric" -v r="$r" '$1=="rgost-metrics" && $2==r && $3==m {print $4}' "$RESULTS")" \
                "$(awk -F'\t' -v m="$metric" -v r="$r" '$1=="rgost" && $2==r && $3==m {print $4}' "$RESULTS")")")
        done
        local median; median=$( (printf '%s\n' "${rs[@]}" | grep -v '^NA$' | grep . || true) | stats | cut -d' ' -f1)
        echo "| $label | $(fmt "$(med rgost "$metric")" %.3f) | $(fmt "$(med rgost-metrics "$metric")" %.3f) | ${rs[*]} | $(fmt "$median" %.3f) |"
    done
    echo
}

loadgen_section() {
    local s
    echo "## 2. Loopback load generator (no TUN)"
    echo
    echo "\`rgost-loadgen\` (crates/loadgen) against an rgost router server on the loopback of its own namespace."
    echo "Clients pair up (h0 <-> h1, ...) and send framed IPv4/UDP packets to each other as fast as TCP allows for a"
    echo "bounded time; packets/s and Gb/s count IP packets delivered to the receivers (frame headers excluded)."
    echo "flow-* and stall-*: closed loop, each sender keeps at most 256 packets to its peer in flight (the server's"
    echo "default per-connection queue), i.e. the server's capacity without overload. open-*: open loop, senders write"
    echo "as fast as TCP allows, i.e. behaviour under overload (most packets dropped by the server)."
    echo "\"delivered %\" is delivered / written by the senders (the rest the server dropped, e.g. on full queues)."
    echo "Server CPU from /proc/PID/stat; loadgen and server share the machine's CPUs."
    echo
    echo "| scenario | clients | UDP payload (B) | window | packets/s | Gb/s | delivered % | server CPU (s) | server CPU (s/GB) | loadgen CPU (s) |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for s in $(cut -f1 "$LGRESULTS" | awk '!seen[$0]++'); do
        [ "$(lg "$s" mode)" = flow ] || continue
        echo "| $s | $(lg "$s" clients) | $(lg "$s" payload) | $(lg "$s" window) | $(lg "$s" pps) | $(lg "$s" gbps) | $(lg "$s" delivered_pct) | $(lg "$s" server_cpu_s) | $(lg "$s" server_cpu_s_per_gb) | $(lg "$s" loadgen_cpu_s) |"
    done
    echo
    if [ -n "$(lg idle mode)" ]; then
        echo "Idle connections: $(lg idle conns) connections (handshake done, then silent) took the server's RSS from"
        echo "$(lg idle rss_before_kib) KiB to $(lg idle rss_after_kib) KiB: **$(lg idle per_conn_bytes) bytes per connection**."
        echo
    fi
    if [ -n "$(lg stall-stalled-1 mode)" ]; then
        echo "Stalled receiver (stall-X-N: repetition N): $(lg stall-none-1 clients) clients in pairs; then one extra client"
        echo "that every sender also addresses (every 8th packet) and that reads (\`reading\`) or registers and never"
        echo "reads (\`stalled\`). Throughput of the pairs, stalled / reading, per repetition: $(stall_ratios | sed 's/ /, /g');"
        echo "median $(stall_ratio_median)."
        echo
    fi
}

churn_memory_section() {
    local r s
    [ -n "$(lg churn-1 mode)" ] || [ -n "$(lg memory-1-50 mode)" ] || return 0
    echo "## 2b. Churn and memory (issue 10)"
    echo
    echo "Churn: \`loadgen churn\`: $(lg churn-1 hosts) hosts register at once (handshake, then silent; 250 per loopback source"
    echo "address) in one namespace, stay 2 s, then all close at once, while an honest pair in another namespace exchanges"
    echo "500 timestamped packets/s (one direction) and a fresh honest handshake is timed every 250 ms, both on a thread of"
    echo "their own in the load generator. Released = the server's open file descriptors back to the baseline. Delays are"
    echo "over the whole run; the worst delay is also shown for the registering and the releasing phases."
    echo
    echo "| run | registered in (s) | released in (s) | honest packets | lost | delay p50 / p99 / max (ms) | worst while registering / releasing (ms) | slowest honest handshake (s) |"
    echo "|---|---:|---:|---:|---:|---|---|---:|"
    for s in $(cut -f1 "$LGRESULTS" | awk '!seen[$0]++' | grep '^churn-'); do
        echo "| $s | $(lg "$s" open_secs) | $(lg "$s" release_secs) | $(lg "$s" sent) | $(lg "$s" lost) | $(lg "$s" p50_ms) / $(lg "$s" p99_ms) / $(lg "$s" max_ms) | $(lg "$s" worst_open_ms) / $(lg "$s" worst_close_ms) | $(lg "$s" slowest_handshake_s) |"
    done
    echo
    echo "Memory: \`loadgen memory\`: receiving hosts registered by connections that never read; one sender writes 65,535-byte"
    echo "packets to them as fast as TCP allows; the server's RSS before, at its peak (sampled every 100 ms) and some"
    echo "seconds after everything closed."
    echo
    echo "| run | hosts x connections | RSS before (KiB) | peak (KiB) | after (KiB) | after / before |"
    echo "|---|---|---:|---:|---:|---:|"
    for s in $(cut -f1 "$LGRESULTS" | awk '!seen[$0]++' | grep '^memory-'); do
        echo "| $s | $(lg "$s" hosts) x $(lg "$s" conns_per_host) | $(lg "$s" rss_before_kib) | $(lg "$s" rss_peak_kib) | $(lg "$s" rss_after_kib) | $(lg "$s" after_over_before) |"
    done
    echo
    echo "| target (issue 10) | measured (worse run) | met |"
    echo "|---|---|---|"
    local worst_p99 worst_lost worst_hs worst_release
    worst_p99=$(for s in $(cut -f1 "$LGRESULTS" | awk '!seen[$0]++' | grep '^churn-'); do lg "$s" p99_ms; done | sort -g | tail -1)
    worst_lost=$(for s in $(cut -f1 "$LGRESULTS" | awk '!seen[$0]++' | grep '^churn-'); do lg "$s" lost; done | sort -g | tail -1)
    worst_hs=$(for s in $(cut -f1 "$LGRESULTS" | awk '!seen[$0]++' | grep '^churn-'); do lg "$s" slowest_handshake_s; done | sort -g | tail -1)
    worst_release=$(for s in $(cut -f1 "$LGRESULTS" | awk '!seen[$0]++' | grep '^churn-'); do lg "$s" release_secs; done | sort -g | tail -1)
    echo "| another namespace's packets: p99 < 50 ms during churn | $(fmt "$worst_p99" %.2f) ms | $(check "$worst_p99" le 50) |"
    echo "| ... with no loss | $worst_lost lost | $(check "$worst_lost" le 0) |"
    echo "| an honest handshake completes in < 1 s | $(fmt "$worst_hs" %.3f) s | $(check "$worst_hs" le 1) |"
    echo "| all released within 5 s of closing | $worst_release s | $(check "$worst_release" le 5) |"
    for s in $(cut -f1 "$LGRESULTS" | awk '!seen[$0]++' | grep '^memory-'); do
        r=$(lg "$s" after_over_before)
        echo "| $s: RSS within 20% of the baseline 10 s after closing | $(fmt "$r" %.2f)x | $(check "$r" le 1.2) |"
    done
    echo
}

targets_section() {
    local r o ob b d ratio_o ratio_b
    echo "## Targets (issue 5)"
    echo
    echo "| target | measured | met |"
    echo "|---|---|---|"
    if [ "$DO_TUNNEL" = 1 ]; then
        r=$(med rgost tcp1_gbps); read -r o ob <<<"$(best_ovpn tcp1_gbps max)"; b=$(med bare tcp1_gbps)
        ratio_o=$(ratio "$r" "$o"); ratio_b=$(ratio "$r" "$b")
        echo "| one TCP stream >= 10x OpenVPN-TCP's best | rgost $(fmt "$r" %.3f) Gb/s vs $ob $(fmt "$o" %.3f) Gb/s = $(fmt "$ratio_o" %.2f)x | $(check "$ratio_o" ge 10) |"
        echo "| one TCP stream >= 25% of bare | bare $(fmt "$b" %.3f) Gb/s: rgost = $(awk -v x="$ratio_b" 'BEGIN{print (x=="NA") ? x : sprintf("%.1f%%", 100*x)}') | $(check "$ratio_b" ge 0.25) |"
        r=$(med rgost udp64_pps); read -r o ob <<<"$(best_ovpn udp64_pps max)"; ratio_o=$(ratio "$r" "$o")
        echo "| 64-byte packets/s >= 3x OpenVPN-TCP | rgost $(fmt "$r" %.0f) vs $ob $(fmt "$o" %.0f) = $(fmt "$ratio_o" %.2f)x | $(check "$ratio_o" ge 3) |"
        r=$(med rgost rtt_idle_med); b=$(med bare rtt_idle_med); d=$(diff_of "$r" "$b")
        echo "| idle RTT <= bare + 0.15 ms (median) | rgost $(fmt "$r" %.3f) ms, bare $(fmt "$b" %.3f) ms: +$(fmt "$d" %.3f) ms (average: +$(fmt "$(diff_of "$(med rgost rtt_idle_avg)" "$(med bare rtt_idle_avg)")" %.3f) ms) | $(check "$d" le 0.15) |"
        r=$(med rgost rtt_load_med)
        echo "| RTT under a saturating TCP stream <= 2 ms (median) | rgost median $(fmt "$r" %.2f) ms, average $(fmt "$(med rgost rtt_load_avg)" %.2f) ms | $(check "$r" le 2) |"
        r=$(med rgost srv_cpu_s_per_gb); read -r o ob <<<"$(best_ovpn srv_cpu_s_per_gb min)"; ratio_o=$(ratio "$r" "$o")
        echo "| server CPU <= 1/5 of OpenVPN's per GB | rgost server $(fmt "$r" %.2f) s/GB vs $ob server $(fmt "$o" %.2f) s/GB = $(fmt "$ratio_o" %.3f) | $(check "$ratio_o" le 0.2) |"
    fi
    if [ "$DO_LOADGEN" = 1 ]; then
        r=$(lg idle per_conn_bytes)
        echo "| server RSS per idle connection <= 16 KiB at 10,000 | $(fmt "$r" %.0f) bytes at $(lg idle conns) connections | $(check "$r" le 16384) |"
        r=$(stall_ratio_median)
        echo "| a stalled receiver costs the other flows <= 5% | stalled / reading = $(fmt "$r" %.3f) (median of $(stall_ratios | wc -w) interleaved repetitions: $(stall_ratios | sed 's/ /, /g')) | $(check "$r" ge 0.95) |"
    fi
    if [ "$DO_LOOKUP" = 1 ] && [ -n "${LOOKUP_MEDIANS:-}" ]; then
        echo "| route lookup <= 200 ns median at 1M routes | $LOOKUP_MEDIANS | $LOOKUP_MET |"
    fi
    echo
}

# Like check, and "yes, at risk" when the target is met by less than 10%
# (measured within 10% of the limit). $4: the highest possible value (a
# percentage's 100), which counts as a safe margin when reached.
verdict() {
    awk -v a="$1" -v op="$2" -v b="$3" -v cap="${4:-}" 'BEGIN{
        if (a=="" || a=="NA") {print "n/a"; exit}
        ok = (op=="le") ? (a+0 <= b+0) : (a+0 >= b+0)
        if (!ok) {print "**NO**"; exit}
        # Near the cap (99.5 of 100) is as safe as a value can be.
        want = 1.1*(b+0); if (cap != "" && want > cap+0) want = 0.995*(cap+0)
        safe = (op=="le") ? (a+0 <= 0.9*(b+0)) : (a+0 >= want)
        print safe ? "yes" : "yes, **at risk** (< 10% margin)"}'
}

# Issue 14's targets ("close to the limit"), from the same run.
targets14_section() {
    local r b o ob x d
    echo "## Targets (issue 14: close to the machine's limit)"
    echo
    echo "| target | measured | met |"
    echo "|---|---|---|"
    if [ "$DO_TUNNEL" = 1 ]; then
        r=$(med rgost tcp1_gbps); b=$(med bare tcp1_gbps); x=$(ratio "$r" "$b")
        echo "| one TCP stream >= 50% of bare | rgost $(fmt "$r" %.2f) of bare $(fmt "$b" %.2f) Gb/s = $(awk -v x="$x" 'BEGIN{print (x=="NA") ? x : sprintf("%.1f%%", 100*x)}') | $(verdict "$x" ge 0.5) |"
        r=$(med rgost udp64_pps); b=$(med bare udp64_pps); x=$(ratio "$r" "$b")
        echo "| 64-byte UDP packets/s >= 85% of bare | rgost $(fmt "$r" %.0f) vs bare $(fmt "$b" %.0f) = $(awk -v x="$x" 'BEGIN{print (x=="NA") ? x : sprintf("%.1f%%", 100*x)}') | $(verdict "$x" ge 0.85) |"
        read -r o ob <<<"$(best_ovpn udp64_pps max)"; x=$(ratio "$r" "$o")
        echo "| ... and >= 3x OpenVPN's best | vs $ob $(fmt "$o" %.0f) = $(fmt "$x" %.2f)x | $(verdict "$x" ge 3) |"
        r=$(med rgost rtt_idle_med); b=$(med bare rtt_idle_med); d=$(diff_of "$r" "$b")
        echo "| idle round trip <= bare + 0.15 ms | rgost $(fmt "$r" %.3f), bare $(fmt "$b" %.3f) ms: +$(fmt "$d" %.3f) ms | $(verdict "$d" le 0.15) |"
        r=$(med rgost rtt_load_med)
        echo "| round trip under a saturating stream <= 1 ms | $(fmt "$r" %.2f) ms | $(verdict "$r" le 1) |"
        r=$(med rgost srv_cpu_s_per_gb)
        echo "| server CPU per GB <= 0.5 s/GB | $(fmt "$r" %.2f) s/GB | $(verdict "$r" le 0.5) |"
    fi
    if [ "$DO_LOADGEN" = 1 ]; then
        r=$(lg tls-20-1372 gbps)
        echo "| relay-only over TLS, 20 clients, 1372-byte payloads >= 3.7 Gb/s | $(fmt "$r" %.2f) Gb/s (plain TCP: $(fmt "$(lg flow-20-1372 gbps)" %.2f) Gb/s) | $(verdict "$r" ge 3.7) |"
        r=$(lg flow-1000-64 delivered_pct)
        echo "| 1,000 clients at 64 bytes deliver >= 95% of what is written (closed loop) | $(fmt "$r" %.1f)% | $(verdict "$r" ge 95 100) |"
        r=$(lg idle per_conn_bytes)
        echo "| RSS per idle connection at 10,000 <= 8 KiB | $(fmt "$r" %.0f) bytes at $(lg idle conns) connections | $(verdict "$r" le 8192) |"
    fi
    echo
}

lookup_section() {
    echo "## 3. Route lookup micro-benchmark"
    echo
    echo "\`cargo bench -p rgost-routing --bench lookup -- --noplot\` (criterion; random prefixes of length 8-32 / 16-128,"
    echo "random probe addresses). Medians from criterion's estimates."
    echo
    echo "$LOOKUP_TABLE"
    echo
}

# Fills LOOKUP_MEDIANS / LOOKUP_MET from the criterion table.
lookup_targets() {
    local v4 v6
    v4=$(awk -F'|' '$2 ~ /ipv4\/1000000 / {gsub(/ /,"",$3); print $3}' <<<"$LOOKUP_TABLE")
    v6=$(awk -F'|' '$2 ~ /ipv6\/1000000 / {gsub(/ /,"",$3); print $3}' <<<"$LOOKUP_TABLE")
    [ -n "$v4$v6" ] || return 0
    LOOKUP_MEDIANS="IPv4 ${v4:-NA} ns, IPv6 ${v6:-NA} ns (10 routes: IPv4 $(awk -F'|' '$2 ~ /ipv4\/10 / {gsub(/ /,"",$3); print $3}' <<<"$LOOKUP_TABLE") ns, IPv6 $(awk -F'|' '$2 ~ /ipv6\/10 / {gsub(/ /,"",$3); print $3}' <<<"$LOOKUP_TABLE") ns)"
    if [ "$(check "${v4:-NA}" le 200)" = yes ] && [ "$(check "${v6:-NA}" le 200)" = yes ]; then LOOKUP_MET=yes; else LOOKUP_MET="**NO**"; fi
}

# What a smoke run checked, without numbers: each part that ran, and whether
# everything passed traffic.
smoke_summary() {
    local names
    echo
    if [ ${#FAILURES[@]} -gt 0 ]; then
        echo "Smoke run: ${#FAILURES[@]} failure(s); the report (numbers mean nothing) is kept."
        return 0
    fi
    echo "Smoke run (measures nothing): every benchmark path passed traffic."
    if [ "$DO_TUNNEL" = 1 ]; then
        echo "- tunnel paths: $(IFS=,; echo "${PATH_LIST[*]}" | sed 's/,/, /g') (ping, TCP 1 and 4 streams, UDP, ping under load)"
        echo "- idle round trip by machine state (bench/rtt-floor.sh)"
    fi
    if [ "$DO_LOADGEN" = 1 ]; then
        names=$(cut -f1 "$LGRESULTS" | uniq | paste -sd, - | sed 's/,/, /g')
        echo "- loopback load generator: ${names:-none}"
    fi
    if [ "$DO_LOOKUP" = 1 ]; then
        if [ -n "${SMOKE_LOOKUP:-}" ]; then echo "- route lookup micro-benchmark"; else echo "- route lookup micro-benchmark: not run in smoke mode"; fi
    fi
    [ "${DO_CLUSTER:-0}" = 1 ] && echo "- cluster: same node and two nodes (ping, TCP, UDP), registry churn (bench/cluster.sh --smoke)"
    echo
}

write_report() {
    lookup_targets
    echo "# rgost benchmarks"
    echo
    if [ "$SMOKE" = 1 ]; then echo "**Smoke run** (checks that everything works; the numbers mean nothing)."; echo; fi
    echo "- date: $DATE"
    echo "- command: \`$CMDLINE\` (as root)"
    echo "- machine: $NPROC CPUs ($CPU_MODEL), $MEM RAM, Linux $KERNEL"
    echo "- software: rgost $GIT_REV (profiling build: release code with line tables), $OVPN_VERSION, $IPERF_VERSION"
    echo "- busyness before the run: $BUSY_BEFORE; busiest processes: $TOP_BEFORE"
    echo "- wake-up cost: $WAKE_COST"
    for b in "${BUSY_REPS[@]}"; do echo "- busyness before $b"; done
    [ -n "${BUSY_RUN:-}" ] && echo "- $BUSY_RUN"
    echo
    echo "Paths: bare = kernel forwarding; ovpn-* = OpenVPN in TCP mode with \`--client-to-client --disable-dco\`"
    echo "(default = AES-256-GCM, nodelay = \`--tcp-nodelay\`, none = \`--data-ciphers none --cipher none --auth none --reneg-bytes 0\`);"
    echo "rgost = router server in the middle namespace over plain TCP, TUN clients in h1 and h2. Each tool with its"
    echo "default MTU (OpenVPN 1500, rgost 1420)."
    echo
    if [ ${#FAILURES[@]} -gt 0 ]; then
        echo "**Failures in this run:**"
        echo
        printf -- '- %s\n' "${FAILURES[@]}"
        echo
    fi
    if [ ${#RETRIES[@]} -gt 0 ]; then
        echo "Retried measurements (a failed iperf3 test is run once more):"
        echo
        printf -- '- %s\n' "${RETRIES[@]}"
        echo
    fi
    targets14_section
    targets_section
    [ "$DO_TUNNEL" = 1 ] && tunnel_section
    [ "$DO_LOADGEN" = 1 ] && loadgen_section
    [ "$DO_LOADGEN" = 1 ] && churn_memory_section
    [ "$DO_LOOKUP" = 1 ] && lookup_section
    # Written by bench/cluster.sh (`--only cluster`); a full run keeps it.
    if [ "$SMOKE" != 1 ] && [ -n "${CLUSTER_SECTION:-}" ]; then echo; echo "$CLUSTER_SECTION"; fi
    return 0
}
