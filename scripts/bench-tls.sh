#!/usr/bin/env bash
# bench-tls.sh: HTTPS, margay against nginx, lighttpd and h2o, each serving the same
# ECDSA P-256 certificate with one worker, pinned to core 0; clients on core 1.
#
# Usage (from anywhere in a clone):
#   scripts/bench-tls.sh
#   DURATION=3s REPS=1 IDLE_CONNS=500 scripts/bench-tls.sh      # a quick run
#   WORKLOADS="a c" SERVERS="margay nginx" scripts/bench-tls.sh
#
# Env:
#   DURATION    run length per measurement (default 10s)
#   REPS        repetitions; each figure is the median over them (default 5)
#   WORKLOADS   which of a b c d e to run (default all)
#   SERVERS     which of margay nginx lighttpd h2o (default all)
#   IDLE_CONNS  connections held open in workload e (default 2000)
#   REPORT_NAME the report's file name under bench-results/, without .md (default tls-latest)
#
# Workloads, all over TLS (TLS 1.3; the peers are pinned to TLS_AES_256_GCM_SHA384 where
# they allow it, and every client lists it first, so all negotiate it: the report shows
# what each server negotiated with openssl s_client):
#   a  small file GET /index.html, wrk -t1 -c100 kept alive: req/s and server CPU per request
#   b  the same with Connection: close, wrk -c50; wrk resumes its TLS sessions when it
#      reconnects, so these are resumed handshakes: server CPU per request
#   c  every handshake a full one: `openssl s_time -new` (one connection at a time, no
#      session reuse, GET /index.html over HTTP/1.0): server CPU per handshake
#   d  a 1 MiB file, wrk -c10 kept alive: MiB/s and server CPU per response
#   e  idle kept-alive TLS connections: scripts/idle_conns.py --tls opens IDLE_CONNS, one
#      request each, and holds them; (server RSS with them - RSS before) / connections
# Server CPU is utime+stime from /proc/PID/stat over the run. Handshake workloads are
# judged on it, not on req/s: the client's handshakes use up its core first.
#
# Prints a Markdown report with the medians, margay / best peer for each figure and the
# issue's target for it, and writes it to bench-results/tls-latest.md (the raw
# measurements beside it as .raw).
set -euo pipefail
source "$(dirname "$0")/common.sh"   # also sets the cleanup traps

DURATION=${DURATION:-10s}
REPS=${REPS:-5}
WORKLOADS=${WORKLOADS:-"a b c d e"}
SERVERS=${SERVERS:-"margay nginx lighttpd h2o"}
IDLE_CONNS=${IDLE_CONNS:-2000}
secs=$(duration_secs "$DURATION")

need_base_tools
need openssl openssl

# want_file FILE PKG: installs PKG if FILE is missing; returns 1 if that does not help.
want_file() {
    [[ -e $1 ]] && return 0
    has_candidate "$2" || return 1
    log "installing $2"
    apt_install "$2" || return 1
    [[ -e $1 ]]
}

# lighttpd's TLS module, a Debian package of its own.
lighttpd_tls_module() {
    [[ -e /usr/lib/lighttpd/mod_openssl.so ]] && return 0
    has_candidate lighttpd-mod-openssl && apt_install lighttpd-mod-openssl &&
        [[ -e /usr/lib/lighttpd/mod_openssl.so ]]
}

SKIPPED=""
ACTIVE=""
for name in $SERVERS; do
    case $name in
        margay) ACTIVE+=" $name" ;;
        nginx | h2o) activate_peer "$name" "$name (with TLS)" ;;
        lighttpd) activate_peer "$name" "$name (with TLS)" lighttpd_tls_module ;;
        *) echo "unknown server $name" >&2; exit 2 ;;
    esac
done
build_margay
raise_limits

tls_bench_files

RAW=$SCRATCH/raw.txt   # lines: workload server metric value
: >"$RAW"
record() { echo "$1 $2 $3 $4" >>"$RAW"; }

# The peers with HTTPS on $TLSPORT besides HTTP on $PORT, serving $DOCROOT (nginx's is in
# common.sh).
lighttpd_tls_start() {
    lighttpd_start "$1" "$DOCROOT" "server.modules += ( \"mod_openssl\" )
\$SERVER[\"socket\"] == \"127.0.0.1:$TLSPORT\" {
    ssl.engine = \"enable\"
    ssl.pemfile = \"$CERT\"
    ssl.privkey = \"$KEY\"
    ssl.openssl.ssl-conf-cmd = ( \"MinProtocol\" => \"TLSv1.2\", \"Ciphersuites\" => \"$SUITE\" )
}"
}

# h2o 2.2 has no TLS 1.3 cipher-suite setting: OpenSSL then follows the client's order,
# which puts AES-256-GCM first.
h2o_tls_start() {
    h2o_start "$1" "$DOCROOT" "listen:
  host: 127.0.0.1
  port: $TLSPORT
  ssl:
    certificate-file: $CERT
    key-file: $KEY
    minimum-version: TLSv1.2"
}

start_named() {
    local name=$1 dir=$SCRATCH/run-$1
    rm -rf "$dir"
    mkdir -p "$dir"
    PORT=$(free_port)
    TLSPORT=$(free_port)
    case $name in
        margay) margay_start "$dir" "$DOCROOT" --tls-listen "127.0.0.1:$TLSPORT" \
            --tls-cert "$CERT" --tls-key "$KEY" --keep-alive-timeout 65 --max-connections 20000 ;;
        nginx) nginx_tls_start "$dir" ;;
        lighttpd) lighttpd_tls_start "$dir" ;;
        h2o) h2o_tls_start "$dir" ;;
    esac || return 1
    local i
    for ((i = 0; i < 50; i++)); do
        curl -sk -o /dev/null --max-time 1 "https://127.0.0.1:$TLSPORT/index.html" && return 0
        sleep 0.1
    done
    echo "$name does not answer HTTPS on $TLSPORT" >&2
    stop_server
    return 1
}

# negotiated SERVER: what a TLS 1.3 client that offers the usual suites gets.
negotiated() {
    local out
    out=$(timeout 10 openssl s_client -connect "127.0.0.1:$TLSPORT" -servername localhost -tls1_3 </dev/null 2>&1 || true)
    grep -m1 -o 'TLSv1.3, Cipher is [A-Z0-9_]*' <<<"$out" || echo "no TLS 1.3 handshake"
}

wrk_args() {   # wrk_args WORKLOAD URL
    case $1 in
        a) WRK_ARGS=(-c100 "$2/index.html") ;;
        b) WRK_ARGS=(-c50 -H 'Connection: close' "$2/index.html") ;;
        d) WRK_ARGS=(-c10 "$2/big.bin") ;;
    esac
}

per_op() {   # per_op TICKS COUNT: CPU microseconds per operation
    awk -v d="$1" -v hz="$CLK_TCK" -v n="$2" 'BEGIN { printf "%.3f", d / hz * 1e6 / n }'
}

wrk_tls() {   # wrk_tls WORKLOAD SERVER
    local w=$1 name=$2 out=$SCRATCH/wrk-$1-$2.txt pid=$SERVER_PID t0 t1 req rps err non2xx mib
    wrk_args "$w" "https://127.0.0.1:$TLSPORT"
    t0=$(cpu_ticks "$pid")
    taskset -c "$CLIENT_CORE" timeout -k 5 $((secs + 60)) wrk -t1 -d "$DURATION" --latency "${WRK_ARGS[@]}" >"$out" 2>&1 || true
    t1=$(cpu_ticks "$pid")
    read -r req rps _ _ err non2xx mib < <(wrk_summary "$out")
    record "$w" "$name" rps "$rps"
    record "$w" "$name" mibps "$mib"
    record "$w" "$name" errors $((err + non2xx))
    if ((req > 0)); then
        record "$w" "$name" cpu "$(per_op $((t1 - t0)) "$req")"
    else
        echo "--- no responses from $name; wrk said:" >&2
        cat "$out" >&2
    fi
    log "$w $name: $rps req/s, $mib MiB/s, errors $((err + non2xx)), CPU ticks $((t1 - t0)) for $req responses"
}

handshakes_full() {   # handshakes_full SERVER: workload c
    local name=$1 out=$SCRATCH/stime-$1.txt pid=$SERVER_PID t0 t1 n bytes
    t0=$(cpu_ticks "$pid")
    taskset -c "$CLIENT_CORE" timeout -k 5 $((secs + 60)) openssl s_time -connect "127.0.0.1:$TLSPORT" \
        -new -tls1_3 -time "$secs" -www /index.html >"$out" 2>&1 || true
    t1=$(cpu_ticks "$pid")
    read -r n bytes < <(awk '/connections in .* real seconds/ { print $1, $(NF - 4); exit }' "$out")
    if [[ -n ${n:-} && $n -gt 0 ]]; then
        record c "$name" hps "$(awk -v n="$n" -v s="$secs" 'BEGIN { printf "%.1f", n / s }')"
        record c "$name" cpu "$(per_op $((t1 - t0)) "$n")"
        ((bytes > 0)) || record c "$name" errors "$n"
    else
        echo "--- no connections to $name; openssl s_time said:" >&2
        tail -5 "$out" >&2
    fi
    log "c $name: ${n:-0} full handshakes in $secs s, ${bytes:-0} bytes read per connection, CPU ticks $((t1 - t0))"
}

idle_tls() {   # idle_tls SERVER: workload e
    local name=$1 out=$SCRATCH/idle-$1.txt pid=$SERVER_PID rss0 rss1 client i opened failed
    curl -sk -o /dev/null "https://127.0.0.1:$TLSPORT/index.html" || true
    sleep 0.5
    rss0=$(status_kb "$pid" VmRSS)
    : >"$out"
    taskset -c "$CLIENT_CORE" python3 scripts/idle_conns.py --tls 127.0.0.1 "$TLSPORT" "$IDLE_CONNS" /index.html 180 >"$out" 2>&1 &
    client=$!
    for ((i = 0; i < 1500; i++)); do
        grep -q '^ready' "$out" && break
        kill -0 "$client" 2>/dev/null || break
        sleep 0.1
    done
    sleep 1
    rss1=$(status_kb "$pid" VmRSS)
    read -r _ opened failed < <(grep '^ready' "$out" || echo "ready 0 $IDLE_CONNS")
    kill "$client" 2>/dev/null || true
    wait "$client" 2>/dev/null || true
    ((opened > 0)) && record e "$name" bytes_per_conn "$(((rss1 - rss0) * 1024 / opened))"
    record e "$name" idle_failed "$failed"
    log "e $name: RSS $rss0 -> $rss1 KiB with $opened idle TLS connections ($failed failed)"
}

for ((rep = 1; rep <= REPS; rep++)); do
    for w in $WORKLOADS; do
        for name in $ACTIVE; do
            if ! start_named "$name"; then
                record "$w" "$name" start_failed 1
                continue
            fi
            ((rep == 1)) && [[ $w == "${WORKLOADS%% *}" ]] && record - "$name" suite "$(negotiated | awk '{ print $NF }')"
            case $w in
                a | b | d) wrk_tls "$w" "$name" ;;
                c) handshakes_full "$name" ;;
                e) idle_tls "$name" ;;
            esac
            if ! server_alive; then
                log "$name died during workload $w"
                record "$w" "$name" died 1
                SERVER_PID=""
            fi
            stop_server
        done
    done
    log "repetition $rep of $REPS done"
done


# The figures judged, as "workload metric high|low target label"; the target is margay /
# best peer as the issue sets it (at least, for high; at most, for low).
FIGURES=(
    "a rps high 1.0 a. small file, 100 kept-alive conns: req/s"
    "a cpu low 0.9 a. small file, 100 kept-alive conns: server CPU µs per request"
    "b cpu low 0.5 b. Connection: close, resumed handshakes (wrk): server CPU µs per request"
    "c cpu low 0.5 c. Connection: close, full handshakes (s_time -new): server CPU µs per handshake"
    "c hps high - c. full handshakes per second (one client connection at a time)"
    "d mibps high 1.0 d. 1 MiB file, 10 conns: MiB/s"
    "d cpu low 1.0 d. 1 MiB file: server CPU µs per response"
    "e bytes_per_conn low 0.5 e. memory per idle kept-alive TLS conn (bytes; target against nginx)"
)

# is_peer NAME WORKLOAD: whether NAME is a server margay is measured against (the
# memory target is set against nginx alone).
is_peer() { [[ $1 != margay && ( $2 != e || $1 == nginx ) ]]; }

report() {
    echo "# HTTPS: margay against its peers, one core each"
    echo
    echo "$(machine_line). Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo "Servers pinned to core $SERVER_CORE, clients (wrk -t1, openssl s_time, idle_conns.py) to core $CLIENT_CORE; 127.0.0.1."
    echo "$DURATION per measurement, median of $REPS repetitions. One ECDSA P-256 certificate for all."
    echo "Versions: margay $(git describe --always --dirty 2>/dev/null || echo unknown), $(openssl version)$(for s in $ACTIVE; do case $s in
        nginx) printf ', %s' "$( (command -v nginx >/dev/null && nginx -v || /usr/sbin/nginx -v) 2>&1 | sed 's/.*: //')" ;;
        lighttpd) printf ', %s' "$( (command -v lighttpd >/dev/null && lighttpd -v || /usr/sbin/lighttpd -v) 2>&1 | head -1 | cut -d' ' -f1)" ;;
        h2o) printf ', h2o %s' "$( (command -v h2o >/dev/null && h2o -v || /usr/sbin/h2o -v) 2>&1 | head -1 | awk '{ print $3 }')" ;;
        esac; done)."
    [[ -n $SKIPPED ]] && echo "Skipped (could not be installed):$SKIPPED."
    echo -n "Negotiated with a TLS 1.3 client:"
    for name in $ACTIVE; do echo -n " $name $(awk -v s="$name" '$1 == "-" && $2 == s && $3 == "suite" { print $4; exit }' "$RAW");"; done
    echo
    echo
    echo "## Medians"
    echo
    local header="| figure |" rule="| --- |" name spec w m dir target label row errs
    for name in $ACTIVE; do header+=" $name |"; rule+=" ---: |"; done
    echo "$header"; echo "$rule"
    for spec in "${FIGURES[@]}"; do
        read -r w m dir target label <<<"$spec"
        [[ " $WORKLOADS " == *" $w "* ]] || continue
        row="| $label |"
        for name in $ACTIVE; do
            local cell
            cell=$(fmt "$(med "$w" "$name" "$m")")
            [[ -n $(med "$w" "$name" died) ]] && cell+=" (died)"
            [[ -n $(med "$w" "$name" start_failed) ]] && cell+=" (did not start)"
            errs=$(med "$w" "$name" errors); [[ -n $errs && $errs != 0 ]] && cell+=" ($errs errors)"
            row+=" $cell |"
        done
        echo "$row"
    done
    echo
    echo "## margay against the best peer"
    echo
    echo "| figure | margay | best peer | margay / best | target | met |"
    echo "| --- | ---: | --- | ---: | ---: | --- |"
    for spec in "${FIGURES[@]}"; do
        read -r w m dir target label <<<"$spec"
        [[ " $WORKLOADS " == *" $w "* && $target != - ]] || continue
        local mv best bestv ratio="—" met="—"
        mv=$(med "$w" margay "$m")
        read -r best bestv < <(best_peer "$w" "$m" "$dir") || true
        if [[ -n $mv && -n ${bestv:-} ]]; then
            ratio=$(awk -v a="$mv" -v b="$bestv" 'BEGIN { if (b == 0) print "—"; else printf "%.2f", a / b }')
            met=$(awk -v r="$ratio" -v t="$target" -v hi="$([[ $dir == high ]] && echo 1 || echo 0)" \
                'BEGIN { if (r == "—") print "—"; else if (hi ? r >= t : r <= t) print "yes"; else print "no" }')
        fi
        echo "| $label | $(fmt "$mv") | ${best:-—} $(fmt "${bestv:-}") | $ratio | $([[ $dir == high ]] && echo "≥" || echo "≤") $target | $met |"
    done
}

mkdir -p "$RESULTS_DIR"
OUT=$RESULTS_DIR/${REPORT_NAME:-tls-latest}.md
report >"$SCRATCH/report.md"
mv "$SCRATCH/report.md" "$OUT"
cp "$RAW" "${OUT%.md}.raw"
echo
cat "$OUT"
echo
echo "Wrote $OUT"
