#!/usr/bin/env bash
# bench-access-log.sh: what each access-log format costs the server. The
# small-file workload of bench-peers.sh (GET /index.html, 100 keep-alive
# connections, wrk -t1), with a browser's User-Agent and Referer so the lines
# are of a realistic length, against the release binary with the access log
# off, and written to a file as combined, combined_time and json, the variants
# alternating so that the machine's drift falls on all alike. The figure is the
# server's CPU time per request (utime + stime from /proc over the run /
# responses); every variant is also checked to have written one line per
# response.
#
# Usage (from anywhere in a clone):
#   scripts/bench-access-log.sh
#   DURATION=5s REPS=3 scripts/bench-access-log.sh       # a quick run
#
# Env:
#   DURATION  wrk run length per measurement (default 10s)
#   REPS      repetitions; figures are medians over them (default 5)
#
# Server pinned to core 0, wrk to core 1 (see common.sh). Prints a Markdown
# report and writes it to bench-results/access-log-latest.md.
set -euo pipefail
source "$(dirname "$0")/common.sh"   # also sets the cleanup traps

DURATION=${DURATION:-10s}
REPS=${REPS:-5}

need_base_tools
build_margay
raise_limits

DOCROOT=$SCRATCH/docroot
mkdir -p "$DOCROOT"
cp htdocs/index.html "$DOCROOT/index.html"

USER_AGENT="Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
REFERER="https://www.example.com/docs/index.html"
RAW=$SCRATCH/raw.txt   # lines: rep variant metric value
: >"$RAW"
VARIANTS=(off combined combined_time json)
declare -A LINE_BYTES

n=${#VARIANTS[@]}
for ((rep = 1; rep <= REPS; rep++)); do
    for ((j = 0; j < n; j++)); do
        variant=${VARIANTS[(rep + j) % n]}
        dir=$SCRATCH/run-$variant
        rm -rf "$dir"
        mkdir -p "$dir"
        PORT=$(free_port)
        if [[ $variant == off ]]; then
            margay_start "$dir" "$DOCROOT" --keep-alive-timeout 65 || exit 1
        else
            MARGAY_ACCESS_LOG=$dir/access.log margay_start "$dir" "$DOCROOT" --keep-alive-timeout 65 \
                --access-log-format "$variant" || exit 1
        fi
        out=$dir/wrk.txt
        t0=$(cpu_ticks "$SERVER_PID")
        wrk_load "$out" -t1 -c100 -d "$DURATION" -H "User-Agent: $USER_AGENT" -H "Referer: $REFERER" \
            "http://127.0.0.1:$PORT/index.html" || true
        t1=$(cpu_ticks "$SERVER_PID")
        read -r req rps _ _ err non2xx _ < <(wrk_summary "$out")
        ((req > 0)) || { echo "no responses from margay ($variant):" >&2; cat "$out" >&2; exit 1; }
        stop_server
        cpu=$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$req" 'BEGIN { printf "%.3f", d / hz * 1e6 / n }')
        if [[ $variant != off ]]; then
            # The probe of start_server is logged too; wrk's requests cut off at its end
            # are answered (and logged) but not counted by it.
            lines=$(wc -l <"$dir/access.log")
            ((lines >= req)) || { echo "$variant: $lines lines for $req responses" >&2; exit 1; }
            LINE_BYTES[$variant]=$(awk 'END { printf "%.0f", NR ? total / NR : 0 } { total += length($0) + 1 }' \
                "$dir/access.log")
        fi
        echo "$rep $variant cpu $cpu" >>"$RAW"
        echo "$rep $variant rps $rps" >>"$RAW"
        echo "$rep $variant errors $((err + non2xx))" >>"$RAW"
        log "rep $rep $variant: $rps req/s, $cpu µs CPU per request, errors $((err + non2xx))"
    done
done

variant_med() {   # variant_med VARIANT METRIC: the median over the repetitions
    awk -v v="$1" -v m="$2" '$2 == v && $3 == m { print $4 }' "$RAW" | median
}
paired() {   # paired METRIC A B: the median over repetitions of A / B within each
    awk -v m="$1" -v a="$2" -v b="$3" '$3 == m { x[$1 " " $2] = $4; reps[$1] = 1 }
        END { for (r in reps) if (x[r " " b] > 0) printf "%.3f\n", x[r " " a] / x[r " " b] }' "$RAW" | median
}

report=$RESULTS_DIR/access-log-latest.md
mkdir -p "$RESULTS_DIR"
{
    echo "# What each access-log format costs"
    echo
    echo "$(machine_line). Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo "margay $(git describe --always --dirty 2>/dev/null || echo unknown), one event loop pinned to core 0; wrk \`-t1 -c100\` on core 1,"
    echo "with a browser's User-Agent and Referer; GET /index.html, $DURATION per measurement, median of $REPS repetitions."
    echo "The log is a file in the scratch directory ($(df -T "$SCRATCH" | awk 'NR == 2 { print $2 }'))."
    echo
    echo "| access log | bytes per line | server CPU per request (µs) | / combined (paired) | requests per second | errors |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: |"
    for variant in "${VARIANTS[@]}"; do
        echo "| $variant | ${LINE_BYTES[$variant]:-—} | $(variant_med "$variant" cpu) | $(paired cpu "$variant" combined) | $(variant_med "$variant" rps) | $(variant_med "$variant" errors) |"
    done
} | tee "$report"
cp "$RAW" "${report%.md}.raw"
log "report written to $report"
