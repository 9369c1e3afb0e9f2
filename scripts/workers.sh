#!/usr/bin/env bash
# workers.sh: how margay's req/s scales from one event loop to two (`--workers`),
# each loop a thread with its own listening socket on the same port (SO_REUSEPORT).
#
# Usage: scripts/workers.sh            (DURATION=10s REPS=3 by default)
#
# This machine has two cores and wrk needs one of them, so the comparison is:
#   1 worker  pinned to core 0,         wrk pinned to core 1;
#   2 workers pinned to cores 0 and 1,  wrk pinned to core 1 (sharing it).
# The second worker can only use what wrk leaves of core 1; the table shows
# what that buys. Writes bench-results/workers-one-vs-two.md.
set -euo pipefail
source "$(dirname "$0")/common.sh"   # also sets the cleanup traps

DURATION=${DURATION:-10s}
REPS=${REPS:-3}

need_base_tools
raise_limits
build_margay
PORT=$(free_port)

rows=""
for workers in 1 2; do
    if [[ $workers == 1 ]]; then SERVER_CORE=0; else SERVER_CORE=0,1; fi
    rps_runs="" cpu_runs=""
    for ((rep = 1; rep <= REPS; rep++)); do
        margay_start "$SCRATCH/w$workers" htdocs --workers "$workers"
        before=$(cpu_ticks "$SERVER_PID")
        wrk_load "$SCRATCH/wrk.txt" -t1 -c100 -d"$DURATION" "http://127.0.0.1:$PORT/index.html"
        after=$(cpu_ticks "$SERVER_PID")
        read -r requests rps _ <<<"$(wrk_summary "$SCRATCH/wrk.txt")"
        stop_server
        rps_runs+="$rps"$'\n'
        cpu_runs+="$(awk -v t=$((after - before)) -v r="$requests" -v hz="$CLK_TCK" \
            'BEGIN { printf "%.2f", r ? t / hz * 1e6 / r : 0 }')"$'\n'
    done
    rps=$(median <<<"$rps_runs")
    cpu=$(median <<<"$cpu_runs")
    log "workers=$workers: $rps req/s, $cpu us CPU/request"
    rows+="| $workers | $SERVER_CORE | $rps | $cpu |"$'\n'
done

report="# margay with one and two event loops

$(machine_line). wrk \`-t1 -c100\` on /index.html for $DURATION, pinned to core 1; median of $REPS runs.

| workers | server cores | req/s | server CPU µs per request |
| ---: | --- | ---: | ---: |
${rows}"
mkdir -p "$RESULTS_DIR"
printf '%s' "$report" >"$RESULTS_DIR/workers-one-vs-two.md"
printf '%s' "$report"
