#!/usr/bin/env bash
# bench-handlers.sh: blocking handlers and event streams, the event loop against a thread per
# connection, in one run.
#
# Usage (from anywhere in a clone):
#   scripts/bench-handlers.sh
#   DURATION=5s HOLD=5 scripts/bench-handlers.sh        # a quick run
#
# Env:
#   DURATION          wrk run length per point (default 10s)
#   SLEEP_MS          how long the blocking route waits, as a database call would (default 20)
#   STATIC_CLIENTS    wrk connections fetching the static file (default 50)
#   BLOCKING_CLIENTS  wrk connections hammering the blocking route (default 200)
#   POOLS             pool sizes (--handler-threads) for the blocking route alone (default "4 16 64")
#   FULL_QUEUE        --handler-queue for the full-queue point, 16 threads (default 32)
#   STREAMS           event-stream clients held at once (default 10000)
#   HOLD              seconds the streams are held while CPU is counted (default 10)
#   MODELS            which models (default "reactor threads")
#
# The server is examples/bench_app.rs (release build): the static site, the built-in
# endpoints and GET /sleep, a blocking route that sleeps SLEEP_MS. It runs pinned to core 0,
# every load generator to core 1 (scripts/common.sh), one server start per point.
#   static        wrk -cSTATIC_CLIENTS on /index.html: req/s and p99 alone, then while a
#                 second wrk keeps BLOCKING_CLIENTS requests on /sleep (16 pool threads,
#                 queue 256: nothing is refused), then alone again; "alone" is the mean of
#                 the two. Also the blocking route's req/s meanwhile.
#   pool P        wrk -cBLOCKING_CLIENTS on /sleep alone with P pool threads: req/s against
#                 P / SLEEP_MS, the most P threads can do (event loop only).
#   full queue    the same with 16 threads and a queue of FULL_QUEUE: how many answers are
#                 503 (wrk's non-2xx), how many requests timed out (wrk's 2 s), and the
#                 server's RSS a third of the way in and at the end.
#   streams       scripts/event_clients.py holds STREAMS connections on /api/events (one event
#                 a second each) for HOLD seconds: RSS per stream (with them, minus before),
#                 threads, and server CPU per event received (utime+stime over the hold).
# In the thread model a blocking route runs on its connection's thread (no pool, no queue),
# so the pool points do not apply, and each stream is a thread (256 KiB stacks).
#
# Writes bench-results/handlers.md and bench-results/handlers.svg, and prints the table with
# the date, kernel, CPU model and core count.
set -euo pipefail
source "$(dirname "$0")/common.sh"   # also sets the cleanup traps

DURATION=${DURATION:-10s}
SLEEP_MS=${SLEEP_MS:-20}
STATIC_CLIENTS=${STATIC_CLIENTS:-50}
BLOCKING_CLIENTS=${BLOCKING_CLIENTS:-200}
POOLS=${POOLS:-"4 16 64"}
FULL_QUEUE=${FULL_QUEUE:-32}
STREAMS=${STREAMS:-10000}
HOLD=${HOLD:-10}
MODELS=${MODELS:-"reactor threads"}
DOCROOT=$(pwd)/htdocs
STATIC_PATH=/index.html

need_base_tools
log "cargo build --release --example bench_app"
cargo build --release --quiet --example bench_app
APP=$SCRATCH/bench_app   # a copy, so a rebuild during the run cannot swap it
cp target/release/examples/bench_app "$APP"
raise_limits
raise_thread_limits
log "open files limit $NOFILE_LIMIT, processes limit $(ulimit -u)"

secs=$(duration_secs "$DURATION")
ROWS=$SCRATCH/rows.tsv   # kind, model, label, value columns...
: >"$ROWS"

# start_app NAME ARGS...: bench_app on a free port, pinned to the server core.
start_app() {
    local name=$1; shift
    PORT=$(free_port)
    start_server "$SCRATCH/$name.log" "$APP" --listen "127.0.0.1:$PORT" --root "$DOCROOT" \
        --sleep-ms "$SLEEP_MS" --max-connections 30000 "$@"
}

# wrk_run OUT CONNS SECONDS PATH: wrk on the client core.
wrk_run() {
    wrk_load "$1" -t1 -c "$2" -d "$3s" --timeout 2s --latency "http://127.0.0.1:$PORT$4"
}

# static_alone MODEL OUT WHEN: one run of the static file with nothing else going on.
static_alone() {
    local req rps p99 err non2xx
    wrk_run "$2" "$STATIC_CLIENTS" "$secs" "$STATIC_PATH"
    read -r req rps _ p99 err non2xx _ < <(wrk_summary "$2")
    log "$1 static alone ($3): $rps req/s, p99 $p99 ms, errors $((err + non2xx))"
    printf 'static\t%s\talone\t%s\t%s\t%s\n' "$1" "$rps" "$p99" "$((err + non2xx))" >>"$ROWS"
}

# static_points MODEL: the static file alone, beside the blocking load, and alone again (the
# two runs alone are averaged, so a drift of the machine does not pass for the load's effect).
static_points() {
    local model=$1 out=$SCRATCH/static-$1 req rps p99 err non2xx
    start_app "static-$model" --model "$model" --handler-threads 16 --handler-queue 256
    static_alone "$model" "$out-alone1.txt" before

    # The blocking load starts first and ends last, so it covers the whole static run.
    wrk_run "$out-sleep.txt" "$BLOCKING_CLIENTS" $((secs + 3)) /sleep &
    local load=$!
    sleep 1.5
    wrk_run "$out-loaded.txt" "$STATIC_CLIENTS" "$secs" "$STATIC_PATH"
    wait "$load"
    read -r req rps _ p99 err non2xx _ < <(wrk_summary "$out-loaded.txt")
    log "$model static beside the blocking load: $rps req/s, p99 $p99 ms, errors $((err + non2xx))"
    printf 'static\t%s\tloaded\t%s\t%s\t%s\n' "$model" "$rps" "$p99" "$((err + non2xx))" >>"$ROWS"
    read -r req rps _ p99 err non2xx _ < <(wrk_summary "$out-sleep.txt")
    log "$model blocking route meanwhile: $rps req/s, p99 $p99 ms, non-2xx $non2xx, socket errors $err"
    printf 'blocking\t%s\tbeside static\t%s\t%s\t%s\t%s\n' "$model" "$rps" "$p99" "$non2xx" "$err" >>"$ROWS"

    sleep 1   # the blocking load's last requests drain
    static_alone "$model" "$out-alone2.txt" after
    stop_server
}

# pool_point THREADS QUEUE LABEL: the blocking route alone on the event loop.
pool_point() {
    local threads=$1 queue=$2 label=$3 out=$SCRATCH/pool-$1-$2.txt req rps p99 err non2xx rss_mid rss_end
    start_app "pool-$threads-$queue" --model reactor --handler-threads "$threads" --handler-queue "$queue"
    wrk_run "$out" "$BLOCKING_CLIENTS" "$secs" /sleep &
    local load=$!
    sleep $(( secs / 3 > 0 ? secs / 3 : 1 ))
    rss_mid=$(status_kb "$SERVER_PID" VmRSS)
    wait "$load"
    rss_end=$(status_kb "$SERVER_PID" VmRSS)
    stop_server
    read -r req rps _ p99 err non2xx _ < <(wrk_summary "$out")
    local ok_rps ceiling
    ok_rps=$(awk -v r="$req" -v n="$non2xx" -v x="$rps" 'BEGIN { printf "%.0f", (r > 0 ? x * (r - n) / r : 0) }')
    ceiling=$(( threads * 1000 / SLEEP_MS ))
    log "reactor /sleep, $threads threads, queue $queue: $rps req/s ($ok_rps 2xx/s, ceiling $ceiling), p99 $p99 ms, non-2xx $non2xx, socket errors $err, RSS $rss_mid -> $rss_end KiB"
    printf 'pool\treactor\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$rps" "$ok_rps" "$ceiling" "$p99" "$non2xx" "$err" "$rss_mid -> $rss_end" >>"$ROWS"
}

# stream_point MODEL: STREAMS event-stream clients held for HOLD seconds.
stream_point() {
    local model=$1 out=$SCRATCH/streams-$1.txt
    start_app "streams-$model" --model "$model"
    curl -s -o /dev/null "http://127.0.0.1:$PORT$STATIC_PATH"
    sleep 1
    local pid=$SERVER_PID rss0 rss1 threads t0 t1 open failed events held span
    rss0=$(status_kb "$pid" VmRSS)
    taskset -c "$CLIENT_CORE" python3 scripts/event_clients.py 127.0.0.1 "$PORT" "$STREAMS" "$HOLD" >"$out" 2>&1 &
    local client=$!
    # CPU is counted from "ready" to "held", the client's hold, not its closing 10,000 sockets.
    wait_line() { while ! grep -q "^$1" "$out" && kill -0 "$client" 2>/dev/null; do sleep 0.05; done; }
    wait_line ready
    t0=$(cpu_ticks "$pid")
    rss1=$(status_kb "$pid" VmRSS)
    threads=$(threads_of "$pid")
    wait_line held
    t1=$(cpu_ticks "$pid")
    wait "$client" || true
    stop_server
    read -r _ open failed < <(grep '^ready' "$out" || echo "ready 0 0")
    read -r _ events held span < <(grep '^held' "$out" || echo "held 0 0 0")
    local per_stream cpu_event busy
    per_stream=$(awk -v a="$rss0" -v b="$rss1" -v n="$open" 'BEGIN { if (n > 0) printf "%.0f", (b - a) * 1024 / n; else print "nan" }')
    cpu_event=$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v e="$events" 'BEGIN { if (e > 0) printf "%.1f", d / hz * 1e6 / e; else print "nan" }')
    busy=$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v s="$span" 'BEGIN { if (s > 0) printf "%.0f", d / hz / s * 100; else print "nan" }')
    log "$model $STREAMS streams: $open open, $failed failed, RSS $rss0 -> $rss1 KiB ($per_stream bytes per stream), $threads threads, $events events in ${span}s ($held still open), $cpu_event us CPU per event, core ${busy}% busy"
    printf 'streams\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$model" "$open" "$failed" "$rss0" "$rss1" "$per_stream" "$threads" "$events" "$held" "$cpu_event" "$busy" >>"$ROWS"
}

for model in $MODELS; do
    static_points "$model"
done
if [[ " $MODELS " == *" reactor "* ]]; then
    for threads in $POOLS; do
        pool_point "$threads" 256 "$threads threads, queue 256"
    done
    pool_point 16 "$FULL_QUEUE" "16 threads, queue $FULL_QUEUE"
fi
for model in $MODELS; do
    stream_point "$model"
done

mkdir -p "$RESULTS_DIR"
MD=$RESULTS_DIR/handlers.md
SVG=$RESULTS_DIR/handlers.svg
{
    echo "# Blocking handlers and event streams: event loop against threads"
    echo
    echo "$(machine_line). \`examples/bench_app.rs\` pinned to core 0, load on core 1, loopback; $DURATION per wrk point (\`-t1 --timeout 2s\`), the blocking route sleeps $SLEEP_MS ms."
    echo
    echo "Static file ($STATIC_PATH, $(stat -c %s "$DOCROOT$STATIC_PATH") bytes, $STATIC_CLIENTS connections), alone and while $BLOCKING_CLIENTS connections hammer the blocking route:"
    echo
    echo "| model | static req/s alone (before, after) | with blocking load | ratio | p99 ms alone | with load | ratio | blocking route req/s meanwhile | its non-2xx |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    awk -F'\t' '
        # Two runs alone, before and after the loaded one: their mean.
        $1 == "static" && $3 == "alone" { rps[$2] += $4 / 2; p99[$2] += $5 / 2; runs[$2] = runs[$2] (runs[$2] == "" ? "" : ", ") sprintf("%.0f", $4) }
        $1 == "static" && $3 == "loaded" { lrps[$2] = $4; lp99[$2] = $5 }
        $1 == "blocking" { brps[$2] = $4; bnon[$2] = $6 }
        END {
            for (m in rps) printf "| %s | %.0f (%s) | %.0f | %.2f | %.3g | %s | %.2f | %.0f | %s |\n",
                m, rps[m], runs[m], lrps[m], (rps[m] > 0 ? lrps[m] / rps[m] : 0), p99[m], lp99[m],
                (p99[m] > 0 ? lp99[m] / p99[m] : 0), brps[m], bnon[m]
        }' "$ROWS" | sort
    if grep -q '^pool' "$ROWS"; then
        echo
        echo "The blocking route alone on the event loop, $BLOCKING_CLIENTS connections (ceiling: threads / $SLEEP_MS ms):"
        echo
        echo "| pool | req/s | 2xx/s | ceiling | 2xx / ceiling | p99 ms | non-2xx (503) | timeouts and socket errors | RSS KiB at 1/3 -> end |"
        echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
        awk -F'\t' '$1 == "pool" {
            printf "| %s | %.0f | %s | %s | %.2f | %s | %s | %s | %s |\n", $3, $4, $5, $6, $5 / $6, $7, $8, $9, $10 }' "$ROWS"
    fi
    echo
    echo "$STREAMS clients on /api/events (one event a second each), held ${HOLD} s:"
    echo
    echo "| model | streams open | failed | RSS before MiB | RSS with them MiB | bytes per stream | threads | events received | server CPU µs per event | core busy % |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    awk -F'\t' '$1 == "streams" {
        printf "| %s | %s | %s | %.1f | %.1f | %s | %s | %s | %s | %s |\n", $2, $3, $4, $5 / 1024, $6 / 1024, $7, $8, $9, $11, $12 }' "$ROWS"
} >"$MD"

python3 scripts/plot_handlers.py "$ROWS" "$SVG" || echo "warning: plotting failed; the table is written" >&2
echo
cat "$MD"
echo
echo "Wrote $MD and $SVG"
