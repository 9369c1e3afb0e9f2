#!/usr/bin/env bash
# bench-proxy.sh: margay as a reverse proxy against HAProxy, nginx, h2o and
# lighttpd, and against a relay that shows what the kernel alone costs. Each
# proxy runs with one worker on core 0 in front of the same tiny C backend
# (scripts/backend/backend.c, also on core 0); wrk runs on core 1.
#
# Usage (from anywhere in a clone):
#   scripts/bench-proxy.sh
#   DURATION=5s REPS=1 scripts/bench-proxy.sh                  # a quick run
#   WORKLOADS="a b" SERVERS="backend margay haproxy" scripts/bench-proxy.sh
#
# Env:
#   DURATION      wrk run length per measurement (default 10s)
#   REPS          repetitions; each figure is the median over them (default 3)
#   WORKLOADS     which of a b c d e to run (default all)
#   SERVERS       which of backend margay margay-threads margay-nopoll
#                 margay-copy relay haproxy haproxy-busy haproxy-splice nginx
#                 h2o lighttpd, run in that order (default all but
#                 margay-threads, margay-nopoll, margay-copy and the two
#                 HAProxy variants)
#   UPLOAD_BYTES  the body of each upload in e (default 10000000)
#   REPORT_NAME   the report's file name under bench-results/, without .md
#                 (default proxy-latest; the raw measurements go beside it as .raw)
#
# What is measured (each proxy alone in front of the backend, pinned to core 0;
# the backend started once for the whole run, also on core 0; wrk -t1 on core 1;
# all on 127.0.0.1):
#   backend         wrk against the backend alone: its own figures, and the
#                   base the latency in c is added to
#   margay          target/release/margay --proxy /=http://127.0.0.1:BACKEND
#                   --proxy-keepalive 128, one event loop, access log off, its
#                   default adaptive busy poll (up to 50 µs, only while events
#                   keep coming that soon)
#   margay-threads  the same with --model threads
#   margay-nopoll   the same with --busy-poll 0: the loop sleeps as soon as it
#                   has nothing to do, as nginx's and h2o's do
#   margay-copy     the same with --no-proxy-splice: response bodies copied
#                   through a buffer instead of spliced socket to socket
#   relay           scripts/floor/relay.c built with gcc -O2: one epoll loop
#                   that passes bytes between each client and its own upstream
#                   connection with one recv and one send, understanding no
#                   HTTP. Not a peer: the cost floor. Made for small messages,
#                   so run in a, b and c only
#   haproxy         nbthread 1, http-reuse always, no log
#   haproxy-busy    the same with HAProxy's own busy-polling (global option);
#                   c is also compared with margay's, busy against busy
#   haproxy-splice  the same as haproxy with option splice-request and
#                   splice-response: body bytes moved socket to pipe to socket
#                   with splice(2), never copied through user space
#   nginx           one worker, no master process, upstream keepalive 128
#                   (proxy_http_version 1.1 and an empty Connection field),
#                   request bodies streamed (proxy_request_buffering off),
#                   response buffering as it comes, access log off
#   h2o             num-threads 1, proxy.reverse.url (h2o keeps upstream
#                   connections open on its own)
#   lighttpd        mod_proxy, request and response bodies streamed
#                   (server.stream-*-body = 2); lighttpd 1.4 opens an upstream
#                   connection per request
# A peer that Debian cannot install here is skipped and the report says so.
#
# Workloads (wrk -t1; GET /json, answered with a 98-byte JSON body, unless said):
#   a  100 kept-alive clients: req/s and the proxy's CPU per request
#   b  50 clients sending Connection: close: req/s, the proxy's CPU per request,
#      and the backend's accepts per request (a proxy with an upstream
#      keep-alive pool makes close to none)
#   c  one client: time per request (1 / req/s) and what the proxy adds to the
#      backend's own time, against the backend alone in the same repetition
#   d  GET /big, a 1 MiB answer, 10 kept-alive clients: MiB/s and the proxy's
#      CPU per response
#   e  POST of UPLOAD_BYTES (scripts/upload.lua), 10 kept-alive clients: MiB/s
#      sent, the proxy's CPU per upload, and its peak resident memory (VmHWM)
#      over what it held before, per client connection
# CPU is the proxy process's own user + system time from /proc/PID/stat over
# the run, divided by the responses wrk counted (the backend's, for the backend
# row). "Core 0 busy" is the proxy's and the backend's CPU over the wall time:
# well below 100 %, wrk or the machine was the limit, not core 0.
#
# Writes a Markdown report (medians per server, then margay against the best
# peer for each target of the issue) to bench-results/proxy-latest.md, and
# every measurement to bench-results/proxy-latest.raw.
set -euo pipefail
source "$(dirname "$0")/common.sh"   # also sets the cleanup traps

DURATION=${DURATION:-10s}
REPS=${REPS:-3}
WORKLOADS=${WORKLOADS:-"a b c d e"}
SERVERS=${SERVERS:-"backend margay relay haproxy nginx h2o lighttpd"}
UPLOAD_BYTES=${UPLOAD_BYTES:-10000000}
export UPLOAD_BYTES
secs=$(duration_secs "$DURATION")

need_base_tools
need gcc gcc
SKIPPED=""
ACTIVE=""
for name in $SERVERS; do
    case $name in
        backend | margay | margay-threads | margay-nopoll | margay-copy | relay) ACTIVE+=" $name" ;;
        haproxy | nginx | lighttpd | h2o) activate_peer "$name" "$name package" ;;
        haproxy-busy | haproxy-splice)
            if want haproxy haproxy; then ACTIVE+=" $name"; else SKIPPED+=" $name"; fi ;;
        *) echo "unknown server $name" >&2; exit 2 ;;
    esac
done
build_margay
raise_limits

BACKEND=$SCRATCH/backend
gcc -O2 -Wall -o "$BACKEND" scripts/backend/backend.c
RELAY=$SCRATCH/relay
gcc -O2 -Wall -o "$RELAY" scripts/floor/relay.c
BACKEND_PORT=$(free_port)
BACKEND_LOG=$SCRATCH/backend.log
taskset -c "$SERVER_CORE" "$BACKEND" "$BACKEND_PORT" >"$BACKEND_LOG" 2>&1 &
BACKEND_PID=$!
disown "$BACKEND_PID"   # stopped by the cleanup, without a word from the shell
EXTRA_PIDS+=" $BACKEND_PID"
for ((i = 0; i < 50; i++)); do
    curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$BACKEND_PORT/json" && break
    sleep 0.1
done
kill -0 "$BACKEND_PID" || { echo "the backend did not start" >&2; exit 1; }

RAW=$SCRATCH/raw.txt   # lines: workload server metric value
: >"$RAW"
record() { echo "$1 $2 $3 $4" >>"$RAW"; }

# backend_counts: "accepts requests body_bytes" of the backend so far.
backend_counts() {
    local before i
    before=$(wc -l <"$BACKEND_LOG")
    kill -USR1 "$BACKEND_PID"
    for ((i = 0; i < 100; i++)); do
        (( $(wc -l <"$BACKEND_LOG") > before )) && break
        sleep 0.02
    done
    awk '$1 == "accepts" { a = $2; r = $4; b = $6 } END { print a + 0, r + 0, b + 0 }' "$BACKEND_LOG"
}

haproxy_start() {
    local dir=$1
    mkdir -p "$dir"
    cat >"$dir/haproxy.cfg" <<CONF
global
    nbthread 1
    ${HAPROXY_BUSY:+busy-polling}
    ${HAPROXY_SPLICE:+maxpipes 32}
    maxconn $((NOFILE_LIMIT / 2 - 100))
    pidfile $dir/haproxy.pid
defaults
    mode http
    option http-keep-alive
    http-reuse always
    ${HAPROXY_SPLICE:+option splice-request}
    ${HAPROXY_SPLICE:+option splice-response}
    timeout connect 5s
    timeout client 65s
    timeout server 65s
    timeout http-keep-alive 65s
frontend front
    bind 127.0.0.1:$PORT
    default_backend app
backend app
    server backend 127.0.0.1:$BACKEND_PORT
CONF
    start_server "$dir/stdout.log" "$(command -v haproxy || echo /usr/sbin/haproxy)" -db -f "$dir/haproxy.cfg"
}

# The peers forwarding everything on $PORT to the backend on $BACKEND_PORT, bodies
# streamed both ways and unlimited in size, kept-alive connections to the backend.
nginx_proxy_start() {
    nginx_start "$1" "$1/docroot" "client_max_body_size 0;
    upstream app {
        server 127.0.0.1:$BACKEND_PORT;
        keepalive 128;
        keepalive_requests 1000000000;
    }" "location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_request_buffering off;
        }"
}

h2o_proxy_start() {
    h2o_start "$1" "$1/docroot" "limit-request-body: 4294967295" \
        "proxy.reverse.url: http://127.0.0.1:$BACKEND_PORT/"
}

lighttpd_proxy_start() {
    mkdir -p "$1/docroot"
    lighttpd_start "$1" "$1/docroot" "server.modules += ( \"mod_proxy\" )
server.stream-request-body = 2
server.stream-response-body = 2
proxy.server = ( \"\" => ( ( \"host\" => \"127.0.0.1\", \"port\" => $BACKEND_PORT ) ) )"
}

# start_named SERVER: starts the proxy (nothing for "backend"); sets PORT and
# TARGET_PID, the process whose CPU and memory are measured.
start_named() {
    local name=$1 dir=$SCRATCH/run-$1
    rm -rf "$dir"
    PORT=$(free_port)
    case $name in
        backend) PORT=$BACKEND_PORT; SERVER_PID=""; TARGET_PID=$BACKEND_PID; return 0 ;;
        margay) margay_start "$dir" "$SCRATCH" --proxy "/=http://127.0.0.1:$BACKEND_PORT" \
            --proxy-keepalive 128 --keep-alive-timeout 65 --max-connections 20000 ;;
        margay-threads) margay_start "$dir" "$SCRATCH" --proxy "/=http://127.0.0.1:$BACKEND_PORT" \
            --proxy-keepalive 128 --keep-alive-timeout 65 --max-connections 20000 --model threads ;;
        margay-nopoll) margay_start "$dir" "$SCRATCH" --proxy "/=http://127.0.0.1:$BACKEND_PORT" \
            --proxy-keepalive 128 --keep-alive-timeout 65 --max-connections 20000 --busy-poll 0 ;;
        margay-copy) margay_start "$dir" "$SCRATCH" --proxy "/=http://127.0.0.1:$BACKEND_PORT" \
            --proxy-keepalive 128 --keep-alive-timeout 65 --max-connections 20000 --no-proxy-splice ;;
        relay) mkdir -p "$dir"; start_server "$dir/stdout.log" "$RELAY" "$PORT" "$BACKEND_PORT" ;;
        haproxy) haproxy_start "$dir" ;;
        haproxy-busy) HAPROXY_BUSY=1 haproxy_start "$dir" ;;
        haproxy-splice) HAPROXY_SPLICE=1 haproxy_start "$dir" ;;
        nginx) nginx_proxy_start "$dir" ;;
        h2o) h2o_proxy_start "$dir" ;;
        lighttpd) lighttpd_proxy_start "$dir" ;;
    esac || return 1
    TARGET_PID=$SERVER_PID
}

# workload_args WORKLOAD URL: wrk's connections, script and target (without -t, -d).
workload_args() {
    case $1 in
        a) WRK_ARGS=(-c100 "$2/json") ;;
        b) WRK_ARGS=(-c50 -H 'Connection: close' "$2/json") ;;
        c) WRK_ARGS=(-c1 "$2/json") ;;
        d) WRK_ARGS=(-c10 "$2/big") ;;
        e) WRK_ARGS=(-c10 --timeout 30s -s scripts/upload.lua "$2/upload") ;;
    esac
}

connections_of() { case $1 in a) echo 100 ;; b) echo 50 ;; c) echo 1 ;; *) echo 10 ;; esac; }

# wrk_run WORKLOAD SERVER: one measurement against the running proxy.
wrk_run() {
    local w=$1 name=$2 out=$SCRATCH/wrk-$1-$2.txt pid=$TARGET_PID
    workload_args "$w" "http://127.0.0.1:$PORT"
    curl -s -o /dev/null "http://127.0.0.1:$PORT/json" || true
    local rss0 acc0 req0 acc1 req1 t0 t1 b0 b1 started=$EPOCHREALTIME
    rss0=$(status_kb "$pid" VmRSS)
    read -r acc0 req0 _ < <(backend_counts)
    t0=$(cpu_ticks "$pid"); b0=$(cpu_ticks "$BACKEND_PID")
    taskset -c "$CLIENT_CORE" timeout -k 5 $((secs + 60)) wrk -t1 -d "$DURATION" --latency "${WRK_ARGS[@]}" >"$out" 2>&1 || true
    t1=$(cpu_ticks "$pid"); b1=$(cpu_ticks "$BACKEND_PID")
    local wall hwm
    wall=$(awk -v a="$started" -v b="$EPOCHREALTIME" 'BEGIN { print b - a }')
    hwm=$(status_kb "$pid" VmHWM)
    read -r acc1 req1 _ < <(backend_counts)
    local req rps p50 p99 err non2xx mib
    read -r req rps p50 p99 err non2xx mib < <(wrk_summary "$out")
    record "$w" "$name" rps "$rps"
    record "$w" "$name" p50 "$p50"
    record "$w" "$name" p99 "$p99"
    record "$w" "$name" errors $((err + non2xx))
    if [[ $name == backend ]]; then
        record "$w" "$name" busy "$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v s="$wall" 'BEGIN { printf "%.0f", d / hz / s * 100 }')"
    else
        record "$w" "$name" busy "$(awk -v d=$((t1 - t0 + b1 - b0)) -v hz="$CLK_TCK" -v s="$wall" 'BEGIN { printf "%.0f", d / hz / s * 100 }')"
    fi
    case $w in
        d) record "$w" "$name" mibps "$mib" ;;
        e) record "$w" "$name" mibps "$(awk -v r="$rps" -v b="$UPLOAD_BYTES" 'BEGIN { printf "%.2f", r * b / 1048576 }')"
           record "$w" "$name" rss_per_conn_kib "$(awk -v h="$hwm" -v r="$rss0" -v n="$(connections_of e)" 'BEGIN { v = (h - r) / n; printf "%.0f", v < 0 ? 0 : v }')" ;;
        c) awk -v r="$rps" 'BEGIN { exit !(r > 0) }' && record "$w" "$name" us_per_req "$(awk -v r="$rps" 'BEGIN { printf "%.2f", 1e6 / r }')" ;;
    esac
    if ((req > 0)); then
        record "$w" "$name" cpu "$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$req" 'BEGIN { printf "%.3f", d / hz * 1e6 / n }')"
        record "$w" "$name" accepts_per_req "$(awk -v a=$((acc1 - acc0)) -v n="$req" 'BEGIN { printf "%.4f", a / n }')"
    else
        echo "--- no responses through $name; wrk said:" >&2
        cat "$out" >&2
    fi
    log "$w $name: $rps req/s, $mib MiB/s read, p50 $p50 ms, errors $((err + non2xx)), CPU ticks $((t1 - t0)), backend accepts $((acc1 - acc0)) for $((req1 - req0)) requests, RSS $rss0 KiB, peak $hwm KiB"
}

for ((rep = 1; rep <= REPS; rep++)); do
    for w in $WORKLOADS; do
        for name in $ACTIVE; do
            [[ $name == relay && $w != [abc] ]] && continue   # small messages only
            if ! start_named "$name"; then
                record "$w" "$name" start_failed 1
                continue
            fi
            wrk_run "$w" "$name"
            if [[ $name != backend ]] && ! server_alive; then
                log "$name died during workload $w; its last output:"
                tail -20 "$SCRATCH/run-$name/stdout.log" >&2 || true
                record "$w" "$name" died 1
                SERVER_PID=""
            fi
            stop_server
        done
        # c's latency added by each proxy, against the backend alone in the same repetition.
        if [[ $w == c ]]; then
            base=$(awk -v r="$rep" '$1 == "c" && $2 == "backend" && $3 == "us_per_req" { n++; if (n == r) print $4 }' "$RAW")
            for name in $ACTIVE; do
                [[ $name == backend || -z $base ]] && continue
                v=$(awk -v s="$name" -v r="$rep" '$1 == "c" && $2 == s && $3 == "us_per_req" { n++; if (n == r) print $4 }' "$RAW")
                [[ -n $v ]] && record c "$name" added_us "$(awk -v a="$v" -v b="$base" 'BEGIN { printf "%.2f", a - b }')"
            done
        fi
    done
    log "repetition $rep of $REPS done"
done

# spread WORKLOAD SERVER METRIC: "min to max" over the repetitions.
spread() {
    awk -v w="$1" -v s="$2" -v m="$3" '$1 == w && $2 == s && $3 == m {
        if (n++ == 0 || $4 < lo) lo = $4; if (n == 1 || $4 > hi) hi = $4 }
        END { if (n) printf "%.3g to %.3g", lo, hi }' "$RAW"
}
signed() { [[ -z $1 ]] && { echo "—"; return; }; awk -v v="$1" 'BEGIN { printf "%+.3g", v }'; }
kfmt() { [[ -z $1 ]] && { echo "—"; return; }; awk -v v="$1" 'BEGIN { if (v >= 10000) printf "%.1fk", v / 1000; else printf "%.0f", v }'; }
ms() { [[ -z $1 ]] && { echo "—"; return; }; awk -v v="$1" 'BEGIN { printf "%.2f ms", v / 1000 }'; }
# is_peer NAME WORKLOAD: whether NAME is a proxy margay is measured against.
# The HAProxy variants are shown beside it, not counted as peers (see the end of the report).
is_peer() { [[ $1 != backend && $1 != margay* && $1 != haproxy-* && $1 != relay ]]; }


# target_row WORKLOAD METRIC high|low LABEL TARGET_RATIO: margay against the
# best peer, the ratio, and whether it meets the target (ratio >= target for
# high, <= for low).
target_row() {
    local w=$1 m=$2 dir=$3 label=$4 target=$5 mv best="" bestv="" ratio="—" met="—"
    [[ " $WORKLOADS " == *" $w "* ]] || return 0
    mv=$(med "$w" margay "$m")
    read -r best bestv < <(best_peer "$w" "$m" "$dir") || true
    if [[ $m == added_us && -n $mv && -n $bestv ]]; then
        # Latencies added can be near zero or below (noise): compare them by difference.
        ratio=$(awk -v a="$mv" -v b="$bestv" 'BEGIN { printf "%+.1f µs", a - b }')
        met=$(awk -v a="$mv" -v b="$bestv" 'BEGIN { print (a <= b ? "yes" : "no") }')
        target="0 µs"
    elif [[ -n $mv && -n $bestv ]] && awk -v b="$bestv" 'BEGIN { exit !(b != 0) }'; then
        ratio=$(awk -v a="$mv" -v b="$bestv" 'BEGIN { printf "%.2f", a / b }')
        met=$(awk -v r="$ratio" -v t="$target" -v hi="$([[ $dir == high ]] && echo 1 || echo 0)" \
            'BEGIN { print ((hi ? r >= t : r <= t) ? "yes" : "no") }')
    fi
    echo "| $label | $(fmt "$mv") | ${best:-—} $(fmt "$bestv") | $ratio | $([[ $dir == high ]] && echo "≥" || echo "≤") $target | $met |"
}

# cell WORKLOAD SERVER: the figures of one server for one workload, as the issue's table has them.
cell() {
    local w=$1 s=$2 died
    died=$(awk -v w="$w" -v s="$s" '$1 == w && $2 == s && ($3 == "died" || $3 == "start_failed") { n++ } END { print n + 0 }' "$RAW")
    local text
    case $w in
        a) text="$(kfmt "$(med a "$s" rps)"), $(fmt "$(med a "$s" cpu)") µs" ;;
        b) text="$(kfmt "$(med b "$s" rps)"), $(fmt "$(med b "$s" cpu)") µs, $(fmt "$(med b "$s" accepts_per_req)") accepts/req" ;;
        c) if [[ $s == backend ]]; then text="($(fmt "$(med c "$s" us_per_req)") µs per request)"
           else text="$(fmt "$(med c "$s" us_per_req)") µs, $(signed "$(med c "$s" added_us)") µs ($(spread c "$s" added_us))"; fi ;;
        d) text="$(fmt "$(med d "$s" mibps)"), $(ms "$(med d "$s" cpu)")" ;;
        e) text="$(fmt "$(med e "$s" mibps)"), $(ms "$(med e "$s" cpu)"), $(fmt "$(med e "$s" rss_per_conn_kib)") KiB/conn" ;;
    esac
    ((died > 0)) && text+=" (failed $died×)"
    echo "$text"
}

label_of() {
    case $1 in
        a) echo "a. 100 kept-alive clients: req/s, CPU per request" ;;
        b) echo "b. \`Connection: close\` clients: req/s, CPU per request, backend accepts per request" ;;
        c) echo "c. one client: time per request, added to the backend's" ;;
        d) echo "d. 1 MiB answer: MiB/s, CPU per response" ;;
        e) echo "e. $((UPLOAD_BYTES / 1000000)) MB upload: MiB/s, CPU per upload, peak RSS growth per connection" ;;
    esac
}

report() {
    local w name
    echo "# margay as a reverse proxy, against HAProxy, nginx, h2o and lighttpd"
    echo
    echo "$(machine_line). Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo "Each proxy alone with one worker on core 0, in front of scripts/backend/backend.c (also on core 0); wrk \`-t1\` on core 1; 127.0.0.1."
    echo "$DURATION per measurement, median of $REPS repetitions. CPU is the proxy process's alone (the backend's on the backend row)."
    echo "Versions: margay $(git describe --always --dirty 2>/dev/null || echo unknown)$(for s in $ACTIVE; do case $s in
        haproxy) printf ', HAProxy %s' "$( (command -v haproxy >/dev/null && haproxy -v || /usr/sbin/haproxy -v) 2>&1 | head -1 | awk '{ print $3 }')" ;;
        nginx) printf ', %s' "$( (command -v nginx >/dev/null && nginx -v || /usr/sbin/nginx -v) 2>&1 | sed 's/.*: //')" ;;
        lighttpd) printf ', %s' "$( (command -v lighttpd >/dev/null && lighttpd -v || /usr/sbin/lighttpd -v) 2>&1 | head -1 | cut -d' ' -f1)" ;;
        h2o) printf ', h2o %s' "$( (command -v h2o >/dev/null && h2o -v || /usr/sbin/h2o -v) 2>&1 | head -1 | awk '{ print $3 }')" ;;
        esac; done)."
    [[ -n $SKIPPED ]] && echo "Skipped (could not be installed):$SKIPPED."
    echo
    echo "## Medians"
    echo
    local header="| proxy |" rule="| --- |"
    for w in $WORKLOADS; do header+=" $(label_of "$w") |"; rule+=" --- |"; done
    echo "$header"; echo "$rule"
    for name in $ACTIVE; do
        local row="| $name |"
        for w in $WORKLOADS; do row+=" $(cell "$w" "$name") |"; done
        echo "$row"
    done
    echo
    echo "Core 0 busy (proxy + backend CPU over wall time, %; below ~90 the client or the machine was the limit):"
    echo
    header="| proxy |"; rule="| --- |"
    for w in $WORKLOADS; do header+=" $w |"; rule+=" ---: |"; done
    echo "$header"; echo "$rule"
    for name in $ACTIVE; do
        local row="| $name |"
        for w in $WORKLOADS; do row+=" $(fmt "$(med "$w" "$name" busy)") |"; done
        echo "$row"
    done
    local any_errors
    any_errors=$(awk '$3 == "errors" && $4 > 0' "$RAW")
    if [[ -n $any_errors ]]; then
        echo
        echo "Errors (socket errors + non-2xx/3xx answers, workload server count):"
        echo
        awk '$3 == "errors" && $4 > 0 { printf "- %s %s: %s\n", $1, $2, $4 }' "$RAW"
    fi
    echo
    echo "## margay against the best peer"
    echo
    echo "| target | margay | best peer | ratio | target ratio | met |"
    echo "| --- | ---: | --- | ---: | ---: | --- |"
    target_row a rps high "a. req/s, 100 kept-alive clients" 1
    target_row a cpu low "a. proxy CPU µs per request" 0.8
    target_row b rps high "b. req/s, \`Connection: close\` clients" 1
    target_row b cpu low "b. proxy CPU µs per request" 1
    target_row c added_us low "c. µs added to the backend's time, one client (margay - best peer)" 1
    target_row d mibps high "d. MiB/s, 1 MiB answers" 1
    target_row d cpu low "d. proxy CPU µs per 1 MiB response" 1
    target_row e mibps high "e. MiB/s uploaded" 1
    target_row e cpu low "e. proxy CPU µs per upload" 1
    if [[ " $WORKLOADS " == *" a "* && " $ACTIVE " == *" relay "* ]]; then
        local rc best bestv name v
        rc=$(med a relay cpu)
        read -r best bestv < <(best_peer a cpu low) || true
        if [[ -n $rc && -n $bestv ]]; then
            echo
            echo "## Above the floor (a. 100 kept-alive clients)"
            echo
            echo "The relay passes bytes with no HTTP work; what a proxy costs above it is its own work."
            echo "The CPU target, 0.8 × the best peer's $(fmt "$bestv") µs, is $(awk -v b="$bestv" 'BEGIN { printf "%.3g", 0.8 * b }') µs per request; the relay alone takes $(fmt "$rc") µs."
            echo
            echo "| proxy | CPU per request | above the relay | relay's share |"
            echo "| --- | ---: | ---: | ---: |"
            for name in $ACTIVE; do
                [[ $name == backend || $name == relay ]] && continue
                v=$(med a "$name" cpu)
                [[ -z $v ]] && continue
                echo "| $name | $(fmt "$v") µs | $(awk -v a="$v" -v b="$rc" 'BEGIN { printf "%+.2f µs", a - b }') | $(awk -v a="$v" -v b="$rc" 'BEGIN { printf "%.0f %%", b / a * 100 }') |"
            done
        fi
    fi
    if [[ " $WORKLOADS " == *" c "* && " $ACTIVE " == *" haproxy-busy "* ]]; then
        local mb hb
        mb=$(med c margay added_us)
        hb=$(med c haproxy-busy added_us)
        if [[ -n $mb && -n $hb ]]; then
            echo
            echo "Both busy polling (margay by default, HAProxy with \`busy-polling\`), c. µs added, one client: margay $(fmt "$mb"), HAProxy $(fmt "$hb"), difference $(awk -v a="$mb" -v b="$hb" 'BEGIN { printf "%+.1f µs", a - b }')."
        fi
    fi
    local w label
    for w in d e; do
        [[ " $WORKLOADS " == *" $w "* ]] || continue
        case $w in d) label="1 MiB answers" ;; e) label="10 MB uploads" ;; esac
        if [[ " $ACTIVE " == *" haproxy-splice "* ]]; then
            echo
            echo "splice(2), $label: HAProxy with splice-request/splice-response $(fmt "$(med "$w" haproxy-splice mibps)") MiB/s on $(ms "$(med "$w" haproxy-splice cpu)") of CPU each, without $(fmt "$(med "$w" haproxy mibps)") MiB/s on $(ms "$(med "$w" haproxy cpu)"); margay $(fmt "$(med "$w" margay mibps)") MiB/s on $(ms "$(med "$w" margay cpu)")."
        fi
        if [[ " $ACTIVE " == *" margay-copy "* ]]; then
            echo
            echo "margay splicing or copying, $label: by default $(fmt "$(med "$w" margay mibps)") MiB/s on $(ms "$(med "$w" margay cpu)") of CPU each, with \`--no-proxy-splice\` $(fmt "$(med "$w" margay-copy mibps)") MiB/s on $(ms "$(med "$w" margay-copy cpu)")."
        fi
    done
    if [[ " $WORKLOADS " == *" c "* && " $ACTIVE " == *" margay-nopoll "* ]]; then
        local mn
        mn=$(med c margay-nopoll added_us)
        if [[ -n $mn ]]; then
            echo
            echo "margay with \`--busy-poll 0\` (sleeping as soon as it is idle), c. µs added, one client: $(fmt "$mn"); CPU per request, one client: $(fmt "$(med c margay-nopoll cpu)") µs against $(fmt "$(med c margay cpu)") µs by default."
        fi
    fi
    if [[ " $WORKLOADS " == *" c "* ]]; then
        echo
        echo "c: the latency a proxy adds is its one-client time per request less the backend's alone, in the same repetition (the spread over repetitions is in the medians table). Where it is a few µs, the machine's noise between two runs is as large."
    fi
    if [[ " $WORKLOADS " == *" b "* ]]; then
        echo
        echo "Backend accepts per \`Connection: close\` request through margay: $(fmt "$(med b margay accepts_per_req)") (one upstream connection per request would be 1)."
    fi
    if [[ " $WORKLOADS " == *" e "* ]]; then
        echo "Peak resident memory growth per uploading connection through margay: $(fmt "$(med e margay rss_per_conn_kib)") KiB."
    fi
}

mkdir -p "$RESULTS_DIR"
OUT=$RESULTS_DIR/${REPORT_NAME:-proxy-latest}.md
report >"$SCRATCH/report.md"
mv "$SCRATCH/report.md" "$OUT"
cp "$RAW" "${OUT%.md}.raw"
echo
cat "$OUT"
echo
echo "Wrote $OUT"
