#!/usr/bin/env bash
# bench-compression.sh: what serving a small text file compressed costs, margay against
# nginx, each on one core (server on core 0, wrk on core 1, 127.0.0.1 only).
#
# Usage (from anywhere in a clone):
#   scripts/bench-compression.sh
#   DURATION=3s REPS=1 scripts/bench-compression.sh      # a quick run
#
# Env:
#   DURATION  wrk run length per measurement (default 10s)
#   REPS      repetitions; each figure is the median over them (default 3)
#   CONNS     keep-alive connections (default 100)
#
# The file is htdocs/index.html (about 1.9 KiB of HTML), fetched with wrk -t1 over CONNS
# keep-alive connections, by each of these cases:
#   margay identity      no Accept-Encoding: the uncompressed baseline
#   margay gzip          Accept-Encoding: gzip, the copy compressed once and cached
#   margay br            Accept-Encoding: br, likewise
#   margay gzip sidecar  Accept-Encoding: gzip, index.html.gz beside the file
#   nginx identity       no Accept-Encoding
#   nginx gzip on        Accept-Encoding: gzip, compressed on every request (gzip on,
#                        nginx's default level 1)
#   nginx gzip_static    Accept-Encoding: gzip, index.html.gz beside the file
# Each case reports req/s and server CPU per request (utime+stime over the run divided by
# the responses wrk counted), and margay's compressed cases their CPU per request over
# margay's identity figure. The Markdown table goes to standard output and to
# bench-results/compression-latest.md.
set -euo pipefail
source "$(dirname "$0")/common.sh"   # also sets the cleanup traps

DURATION=${DURATION:-10s}
REPS=${REPS:-3}
CONNS=${CONNS:-100}
secs=$(duration_secs "$DURATION")

need_base_tools
need nginx nginx
build_margay
raise_limits

PLAIN=$SCRATCH/plain      # the file alone: compressed on the fly
SIDECAR=$SCRATCH/sidecar  # the file with a precompressed .gz beside it
mkdir -p "$PLAIN" "$SIDECAR"
cp htdocs/index.html "$PLAIN/index.html"
cp htdocs/index.html "$SIDECAR/index.html"
gzip -9 -k -c htdocs/index.html >"$SIDECAR/index.html.gz"
touch -r "$SIDECAR/index.html" "$SIDECAR/index.html.gz"

RAW=$SCRATCH/raw.txt   # lines: case metric value
: >"$RAW"

# measure CASE ACCEPT_ENCODING: one wrk run against the running server.
measure() {
    local name=$1 accept=$2 out=$SCRATCH/wrk.txt pid=$SERVER_PID t0 t1
    local -a header=()
    [[ -n $accept ]] && header=(-H "Accept-Encoding: $accept")
    # A probe first, so the copy is made before the clock starts, and to check the coding.
    local coding
    coding=$(curl -s -o /dev/null -D - "${header[@]}" "http://127.0.0.1:$PORT/index.html" |
        awk -F': ' 'tolower($1) == "content-encoding" { gsub("\r", "", $2); print $2 }')
    t0=$(cpu_ticks "$pid")
    taskset -c "$CLIENT_CORE" timeout -k 5 $((secs + 60)) \
        wrk -t1 -c"$CONNS" -d "$DURATION" "${header[@]}" "http://127.0.0.1:$PORT/index.html" >"$out" 2>&1 || true
    t1=$(cpu_ticks "$pid")
    local req rps
    read -r req rps _ < <(wrk_summary "$out")
    echo "$name rps $rps" >>"$RAW"
    if ((req > 0)); then
        echo "$name cpu $(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$req" 'BEGIN { printf "%.3f", d / hz * 1e6 / n }')" >>"$RAW"
    fi
    log "$name: $rps req/s, Content-Encoding ${coding:-none}"
}

for ((rep = 1; rep <= REPS; rep++)); do
    log "repetition $rep of $REPS"
    PORT=$(free_port)
    margay_start "$SCRATCH/run-margay" "$PLAIN" --keep-alive-timeout 65
    measure "margay identity" ""
    measure "margay gzip" "gzip"
    measure "margay br" "br"
    stop_server
    PORT=$(free_port)
    margay_start "$SCRATCH/run-margay-sidecar" "$SIDECAR" --keep-alive-timeout 65
    measure "margay gzip sidecar" "gzip"
    stop_server
    PORT=$(free_port)
    nginx_start "$SCRATCH/run-nginx" "$PLAIN" "gzip on; gzip_types text/plain text/css application/javascript;"
    measure "nginx identity" ""
    measure "nginx gzip on" "gzip"
    stop_server
    PORT=$(free_port)
    nginx_start "$SCRATCH/run-nginx-static" "$SIDECAR" "gzip_static on;"
    measure "nginx gzip_static" "gzip"
    stop_server
done

median_of() { awk -v c="$1" -v m="$2" '{ n = split($0, f, " "); if (f[n - 1] == m) { name = f[1]; for (i = 2; i <= n - 2; i++) name = name " " f[i]; if (name == c) print f[n] } }' "$RAW" | median; }

base=$(median_of "margay identity" cpu)
report=$RESULTS_DIR/compression-latest.md
mkdir -p "$RESULTS_DIR"
{
    echo "# What serving a small file compressed costs"
    echo
    echo "$(machine_line); margay $(git describe --always --dirty 2>/dev/null || echo unknown) and nginx, one worker each on core 0;"
    echo "wrk -t1 -c$CONNS -d $DURATION on core 1, GET /index.html, medians of $REPS."
    echo
    echo "| case | req/s | CPU µs/req | CPU / margay identity |"
    echo "| --- | ---: | ---: | ---: |"
    for name in "margay identity" "margay gzip" "margay br" "margay gzip sidecar" \
        "nginx identity" "nginx gzip on" "nginx gzip_static"; do
        rps=$(median_of "$name" rps)
        cpu=$(median_of "$name" cpu)
        ratio=$(awk -v a="$cpu" -v b="$base" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "nan" }')
        printf '| %s | %.0f | %s | %s |\n' "$name" "$rps" "$cpu" "$ratio"
    done
} | tee "$report"
cp "$RAW" "${report%.md}.raw"
log "report written to $report"
