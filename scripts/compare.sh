#!/usr/bin/env bash
# compare.sh: the thread-per-connection model against the event loop, with
# nginx beside them, from 1 to 10,000 concurrent keep-alive connections.
#
# Usage (from anywhere in a clone):
#   scripts/compare.sh
#   DURATION=3s scripts/compare.sh                 # a quick run
#   CONNECTIONS="1 100 1000" SERVERS="margay-reactor nginx" scripts/compare.sh
#
# Env:
#   DURATION     wrk run length per point (default 10s)
#   CONNECTIONS  concurrency levels (default "1 10 100 1000 10000")
#   SERVERS      which servers (default "margay-reactor margay-threads nginx")
#   WRK_TIMEOUT  wrk's per-request timeout (default 2s, wrk's own default)
#
# What it does: builds target/release/margay, installs wrk, nginx and
# python3-matplotlib from Debian if missing, then for each server and each
# concurrency N starts that server alone (fresh, so its peak memory belongs to
# this point), pinned to core 0, and runs `wrk -t1 -cN -d DURATION --latency`
# against /index.html of htdocs/, pinned to core 1, over 127.0.0.1.
#   margay-reactor  target/release/margay --model reactor (one event loop)
#   margay-threads  target/release/margay --model threads (a thread per connection)
#   nginx           one worker process, no master, sendfile on, access log off
# Per point it records requests/s, p50 and p99 latency, errors (wrk's socket
# errors connect/read/write/timeout plus non-2xx/3xx responses), the server's
# resident memory sampled in the middle of the run (VmRSS) and its peak
# (VmHWM), its thread count mid-run, and its CPU time (utime+stime from
# /proc/PID/stat) over the run divided by the requests served. A point where
# the server cannot keep up (10,000 threads refused, the server dies) is
# recorded with a note instead of stopping the script. wrk opens all its
# connections before it counts anything, so a server that accepts slowly (the
# thread model spawning 10,000 threads on a busy core) can leave a short run
# with no responses at all; the note says so, and a longer DURATION helps.
#
# Writes bench-results/reactor-vs-threads.csv, bench-results/reactor-vs-threads.md
# (Markdown table) and bench-results/reactor-vs-threads.svg (req/s and RSS against
# connections), and
# prints the table with the date, kernel, CPU model and core count.
set -euo pipefail
source "$(dirname "$0")/common.sh"   # also sets the cleanup traps

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-"1 10 100 1000 10000"}
SERVERS=${SERVERS:-"margay-reactor margay-threads nginx"}
WRK_TIMEOUT=${WRK_TIMEOUT:-2s}
DOCROOT=$(pwd)/htdocs
TARGET_PATH=/index.html

need_base_tools
case " $SERVERS " in *" nginx "*) need nginx nginx ;; esac
PYTHON=python3
if ! python3 -c 'import matplotlib' 2>/dev/null; then
    if ! /usr/bin/python3 -c 'import matplotlib' 2>/dev/null; then
        log "installing python3-matplotlib"
        apt_install python3-matplotlib
    fi
    PYTHON=/usr/bin/python3
fi
build_margay
raise_limits
raise_thread_limits
log "open files limit $NOFILE_LIMIT, processes limit $(ulimit -u)"

mkdir -p "$RESULTS_DIR"
CSV=$RESULTS_DIR/reactor-vs-threads.csv
MD=$RESULTS_DIR/reactor-vs-threads.md
SVG=$RESULTS_DIR/reactor-vs-threads.svg
echo "server,connections,requests,req_per_s,p50_ms,p99_ms,socket_errors,non2xx,errors,rss_mid_kib,hwm_kib,threads_mid,cpu_us_per_req,cpu_busy_pct,note" >"$CSV"

secs=$(duration_secs "$DURATION")
half=$(( secs / 2 > 0 ? secs / 2 : 1 ))

start_named() {
    local name=$1 dir=$SCRATCH/$1
    PORT=$(free_port)
    case $name in
        margay-reactor) margay_start "$dir" "$DOCROOT" --model reactor --max-connections 20000 ;;
        margay-threads) margay_start "$dir" "$DOCROOT" --model threads --max-connections 20000 ;;
        nginx) nginx_start "$dir" "$DOCROOT" ;;
        *) echo "unknown server $name" >&2; return 1 ;;
    esac
}

run_point() {
    local name=$1 conns=$2 out=$SCRATCH/wrk-$1-$2.txt note=""
    if ! start_named "$name"; then
        echo "$name,$conns,0,0,nan,nan,0,0,0,0,0,0,nan,0,server did not start" >>"$CSV"
        return
    fi
    local pid=$SERVER_PID t0 t1 rss threads hwm started=$EPOCHREALTIME
    t0=$(cpu_ticks "$pid")
    taskset -c "$CLIENT_CORE" timeout -k 5 $((secs + 60)) \
        wrk -t1 -c "$conns" -d "$DURATION" --timeout "$WRK_TIMEOUT" --latency \
        "http://127.0.0.1:$PORT$TARGET_PATH" >"$out" 2>&1 &
    local wrk_pid=$!
    sleep "$half"
    rss=$(status_kb "$pid" VmRSS)
    threads=$(threads_of "$pid")
    wait "$wrk_pid" || note="wrk exited with status $?"
    t1=$(cpu_ticks "$pid")
    local busy
    busy=$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v a="$started" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", d / hz / (b - a) * 100 }')
    hwm=$(status_kb "$pid" VmHWM)
    if ! server_alive; then
        note="${note:+$note; }server died (see below)"
        echo "--- $name at $conns connections died; its last output:" >&2
        tail -20 "$SCRATCH/$name/stdout.log" >&2 || true
        SERVER_PID=""
    fi
    stop_server

    local req rps p50 p99 err non2xx errors cpu
    read -r req rps p50 p99 err non2xx _ < <(wrk_summary "$out")
    errors=$((err + non2xx))
    if ((req > 0)); then
        cpu=$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$req" 'BEGIN { printf "%.2f", d / hz * 1e6 / n }')
    else
        cpu=nan
        local elapsed
        elapsed=$(awk '/ requests in / { sub(/s,$/, "", $4); print $4 }' "$out")
        if awk -v e="${elapsed:-0}" -v d="$secs" 'BEGIN { exit !(e > d + 1) }'; then
            # wrk opens every connection before its clock starts counting
            # requests; a server that accepts slowly makes that outlast the run.
            note="${note:+$note; }no responses: wrk's connecting took the whole run (${elapsed}s for $DURATION); try a longer DURATION"
        else
            note="${note:+$note; }no responses"
        fi
        echo "--- no responses from $name; wrk said:" >&2
        cat "$out" >&2
    fi
    log "$name c=$conns: $rps req/s, p99 $p99 ms, errors $errors, RSS ${rss} KiB, peak ${hwm} KiB, threads $threads, ${cpu} us CPU/req, core ${busy}% busy${note:+ ($note)}"
    echo "$name,$conns,$req,$rps,$p50,$p99,$err,$non2xx,$errors,$rss,$hwm,$threads,$cpu,$busy,$note" >>"$CSV"
}

for name in $SERVERS; do
    for conns in $CONNECTIONS; do
        run_point "$name" "$conns"
    done
done

{
    echo "# Thread per connection vs event loop (and nginx)"
    echo
    echo "$(machine_line). Server pinned to core 0, wrk (\`-t1 --latency\`, $DURATION per point) to core 1, loopback; GET /index.html ($(stat -c %s "$DOCROOT$TARGET_PATH") bytes), keep-alive."
    echo "RSS is sampled mid-run with all connections open; peak is VmHWM. CPU/req is the server's utime+stime over the run divided by responses; busy is that CPU time over the run's wall time (below ~90 %, wrk or the machine was the limit, not the server). Errors are wrk's socket errors plus non-2xx/3xx responses."
    echo
    echo "| server | connections | req/s | p50 ms | p99 ms | errors | RSS MiB | peak RSS MiB | threads | CPU µs/req | busy % | note |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    tail -n +2 "$CSV" | awk -F, '{
        printf "| %s | %s | %.0f | %s | %s | %s | %.1f | %.1f | %s | %s | %s | %s |\n",
            $1, $2, $4, $5, $6, $9, $10 / 1024, $11 / 1024, $12, $13, $14, $15 }'
} >"$MD"

if ! "$PYTHON" scripts/plot_compare.py "$CSV" "$SVG"; then
    echo "warning: plotting failed; the CSV and Markdown are written" >&2
fi
echo
cat "$MD"
echo
echo "Wrote $CSV, $MD and $SVG"
