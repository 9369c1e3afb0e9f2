#!/usr/bin/env bash
# bench-rules.sh: what site rules cost the server. The small-file workload of
# bench-peers.sh (a: GET /index.html, 100 keep-alive connections, wrk -t1)
# against the release binary with no rules, and with 20 rules (10 header rules,
# 3 of which apply to /index.html, and 10 redirect rules), the two alternating
# so that the machine's drift falls on both alike. The figure is the server's
# CPU time per request (utime + stime from /proc over the run / responses).
#
# Usage (from anywhere in a clone):
#   scripts/bench-rules.sh
#   DURATION=5s REPS=3 scripts/bench-rules.sh       # a quick run
#
# Env:
#   DURATION      wrk run length per measurement (default 10s)
#   REPS          repetitions; figures are medians over them (default 5)
#   BASELINE_BIN  another margay binary (say, main's) measured too, with no
#                 configuration file: whether a site without rules pays anything
#   BASELINE_LABEL  what the report calls that binary (default "baseline")
#
# Server pinned to core 0, wrk to core 1 (see common.sh). Prints a Markdown
# report and writes it to bench-results/rules-latest.md.
set -euo pipefail
source "$(dirname "$0")/common.sh"   # also sets the cleanup traps

DURATION=${DURATION:-10s}
REPS=${REPS:-5}
secs=$(duration_secs "$DURATION")

need_base_tools
build_margay
raise_limits

DOCROOT=$SCRATCH/docroot
mkdir -p "$DOCROOT"
cp htdocs/index.html "$DOCROOT/index.html"

NONE=$SCRATCH/none.toml
: >"$NONE"
RULES=$SCRATCH/rules.toml
{
    # Header rules: the first, the third and the last apply to /index.html.
    printf '[[rule]]\npath = "/**"\nheaders = { "X-Content-Type-Options" = "nosniff", "Referrer-Policy" = "same-origin" }\n\n'
    printf '[[rule]]\npath = "/assets/**"\nheaders = { "Cache-Control" = "public, max-age=31536000, immutable" }\n\n'
    printf '[[rule]]\npath = "/*.html"\nheaders = { "Cache-Control" = "no-cache" }\n\n'
    for dir in css js img fonts media downloads; do
        printf '[[rule]]\npath = "/%s/**"\nheaders = { "Cache-Control" = "public, max-age=86400" }\n\n' "$dir"
    done
    printf '[[rule]]\npath = "/**/*.html"\nheaders = { "X-Frame-Options" = "DENY" }\n\n'
    for i in $(seq 10); do
        printf '[[rule]]\npath = "/old%d/*"\nredirect = { to = "/new%d/{1}", status = 301 }\n\n' "$i" "$i"
    done
} >"$RULES"
[[ $(grep -c '^\[\[rule\]\]' "$RULES") == 20 ]] || { echo "expected 20 rules" >&2; exit 1; }

RAW=$SCRATCH/raw.txt   # lines: rep variant metric value
: >"$RAW"

VARIANTS=(none rules)
if [[ -n ${BASELINE_BIN:-} ]]; then
    cp "$BASELINE_BIN" "$SCRATCH/baseline"
    VARIANTS=(baseline none rules)
fi

start_variant() {   # start_variant baseline|none|rules
    PORT=$(free_port)
    case $1 in
        baseline) MARGAY=$SCRATCH/baseline margay_start "$SCRATCH/run-$1" "$DOCROOT" --keep-alive-timeout 65 ;;
        none) margay_start "$SCRATCH/run-$1" "$DOCROOT" --config "$NONE" --keep-alive-timeout 65 ;;
        rules) margay_start "$SCRATCH/run-$1" "$DOCROOT" --config "$RULES" --keep-alive-timeout 65 ;;
    esac
}

check_rules_apply() {
    local url="http://127.0.0.1:$PORT" head
    head=$(curl -s -D - -o /dev/null "$url/index.html")
    grep -qi '^X-Frame-Options: DENY' <<<"$head" || { echo "the header rules do not apply:" >&2; echo "$head" >&2; exit 1; }
    [[ $(curl -s -o /dev/null -w '%{http_code}' "$url/old3/page") == 301 ]] || { echo "the redirect rules do not apply" >&2; exit 1; }
    RESPONSE_BYTES[rules]=$(curl -s -D - -o /dev/null "$url/index.html" | wc -c)
}

declare -A RESPONSE_BYTES
n=${#VARIANTS[@]}
for ((rep = 1; rep <= REPS; rep++)); do
    # Each repetition starts with the next variant, so none always runs first.
    for ((j = 0; j < n; j++)); do
        variant=${VARIANTS[(rep + j) % n]}
        start_variant "$variant" || exit 1
        if [[ $variant == rules ]]; then check_rules_apply; else
            RESPONSE_BYTES[$variant]=$(curl -s -D - -o /dev/null "http://127.0.0.1:$PORT/index.html" | wc -c)
        fi
        out=$SCRATCH/wrk-$variant.txt
        t0=$(cpu_ticks "$SERVER_PID")
        taskset -c "$CLIENT_CORE" timeout -k 5 $((secs + 60)) wrk -t1 -c100 -d "$DURATION" \
            "http://127.0.0.1:$PORT/index.html" >"$out" 2>&1 || true
        t1=$(cpu_ticks "$SERVER_PID")
        read -r req rps _ _ err non2xx _ < <(wrk_summary "$out")
        ((req > 0)) || { echo "no responses from margay ($variant):" >&2; cat "$out" >&2; exit 1; }
        cpu=$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$req" 'BEGIN { printf "%.3f", d / hz * 1e6 / n }')
        echo "$rep $variant cpu $cpu" >>"$RAW"
        echo "$rep $variant rps $rps" >>"$RAW"
        echo "$rep $variant errors $((err + non2xx))" >>"$RAW"
        log "rep $rep $variant: $rps req/s, $cpu µs CPU per request, errors $((err + non2xx))"
        stop_server
    done
done

variant_med() {   # variant_med VARIANT METRIC: the median over the repetitions
    awk -v v="$1" -v m="$2" '$2 == v && $3 == m { print $4 }' "$RAW" | median
}
paired() {   # paired METRIC A B: the median over repetitions of A / B within each
    awk -v m="$1" -v a="$2" -v b="$3" '$3 == m { x[$1 " " $2] = $4; reps[$1] = 1 }
        END { for (r in reps) if (x[r " " b] > 0) printf "%.3f\n", x[r " " a] / x[r " " b] }' "$RAW" | median
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }

cpu_none=$(variant_med none cpu); cpu_rules=$(variant_med rules cpu)
rps_none=$(variant_med none rps); rps_rules=$(variant_med rules rps)
report=$RESULTS_DIR/rules-latest.md
mkdir -p "$RESULTS_DIR"
{
    echo "# What 20 site rules cost"
    echo
    echo "$(machine_line). Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo "margay $(git describe --always --dirty 2>/dev/null || echo unknown), one event loop pinned to core 0; wrk \`-t1 -c100\` on core 1;"
    echo "GET /index.html ($(stat -c %s "$DOCROOT/index.html") bytes), $DURATION per measurement, median of $REPS repetitions."
    echo "The rules add $((RESPONSE_BYTES[rules] - RESPONSE_BYTES[none])) bytes of header fields to each response (${RESPONSE_BYTES[none]} -> ${RESPONSE_BYTES[rules]} bytes of head)."
    echo
    echo "| | no rules | 20 rules | 20 rules / none (medians) | paired |"
    echo "| --- | ---: | ---: | ---: | ---: |"
    echo "| server CPU per request (µs) | $cpu_none | $cpu_rules | $(ratio "$cpu_rules" "$cpu_none") | $(paired cpu rules none) |"
    echo "| requests per second | $rps_none | $rps_rules | $(ratio "$rps_rules" "$rps_none") | $(paired rps rules none) |"
    echo "| errors | $(variant_med none errors) | $(variant_med rules errors) | | |"
    if [[ -n ${BASELINE_BIN:-} ]]; then
        base_cpu=$(variant_med baseline cpu)
        echo
        echo "Without rules against the baseline binary (${BASELINE_LABEL:-baseline}, no configuration file):"
        echo
        echo "| | baseline | no rules | no rules / baseline (medians) | paired |"
        echo "| --- | ---: | ---: | ---: | ---: |"
        echo "| server CPU per request (µs) | $base_cpu | $cpu_none | $(ratio "$cpu_none" "$base_cpu") | $(paired cpu none baseline) |"
        echo "| requests per second | $(variant_med baseline rps) | $rps_none | $(ratio "$rps_none" "$(variant_med baseline rps)") | $(paired rps none baseline) |"
    fi
} | tee "$report"
cp "$RAW" "${report%.md}.raw"
log "report written to $report"
