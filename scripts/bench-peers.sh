#!/usr/bin/env bash
# bench-peers.sh: margay against nginx, lighttpd and h2o, each on one core,
# plus a floor server that shows what the kernel alone costs.
#
# Usage (from anywhere in a clone):
#   scripts/bench-peers.sh
#   DURATION=3s REPS=1 scripts/bench-peers.sh              # a quick run
#   WORKLOADS="a b" SERVERS="margay nginx floor" scripts/bench-peers.sh
#
# Env:
#   DURATION   wrk run length per measurement (default 10s)
#   REPS       repetitions; each figure is the median over them (default 3)
#   WORKLOADS  which of a b c d e f to run (default all)
#   SERVERS    which of margay floor nginx lighttpd h2o, run in that order (default
#              all; margay and the floor run back to back, so their CPU figures
#              are compared under the same machine conditions)
#   IDLE_CONNS connections held open in workload f (default 5000)
#   INTERLEAVE which workloads to measure interleaved as well (default "a c d e")
#   ROUNDS     rounds of each interleaved measurement (default 15; 0 skips them)
#   SLICE      wrk run length per server and round when interleaved (default 2s)
#   REPORT_NAME  the report's file name under bench-results/, without .md
#              (default peers-latest; the raw measurements go beside it as .raw)
#   BASELINE_BIN another margay binary (say, built from an earlier commit) to run as
#              the server "baseline" beside margay, with the same options; the report
#              then also gives margay / baseline for each workload. Add "baseline" to
#              SERVERS (it is added after margay when BASELINE_BIN is set and SERVERS
#              is not).
#   BASELINE_LABEL  what the report calls that binary (default "baseline")
#
# Servers (each alone while measured, pinned to core 0; clients on core 1;
# all on 127.0.0.1, serving the same generated docroot):
#   margay    target/release/margay, one event loop, access log off
#   nginx     one worker, no master process, sendfile on, access log off
#   lighttpd  its single process, sendfile backend, no access log
#   h2o       one thread, no access log (h2o has no sendfile switch)
#   floor     scripts/floor/floor.c built with gcc -O2: one epoll loop that
#             answers every "\r\n\r\n" with the canned bytes of index.html and
#             parses nothing. Not a peer: the cost floor. Left out of (c),
#             where it would ignore Connection: close, and (d), where it
#             would not send the large file.
# A peer that Debian cannot install here is skipped and the output says so.
#
# Workloads (wrk -t1):
#   a  small file GET /index.html, 100 keep-alive connections
#   b  the same with 16 requests pipelined per write (scripts/pipeline.lua)
#   c  Connection: close on every request, 50 connections
#   d  a 1 MiB file, 10 keep-alive connections; throughput in MiB/s
#   e  9,000 concurrent keep-alive connections: req/s, p99, errors
#   f  memory per idle kept-alive connection: scripts/idle_conns.py opens
#      IDLE_CONNS connections, one request each, and holds them; the figure
#      is (server RSS with them open - RSS before) / connections
# For a-e it also measures server CPU time per request (per 1 MiB response in
# d): utime+stime from /proc/PID/stat over the run divided by the responses wrk
# counted. Where wrk's one core is the limit (c, d and e here), this is the
# fairer figure: req/s then says more about the client than the server.
#
# The workloads in INTERLEAVE are then measured a second way, interleaved:
# every server is up at once on core 0 and wrk alternates between them, SLICE
# each, for ROUNDS rounds, each round starting with the next server. The
# machine's drift comes in phases of tens of seconds that move back-to-back
# 10 s figures by 5 to 20 % here; interleaved, it falls on every server alike.
# Each figure is a total over all of a server's slices (responses over wrk's
# run time, CPU time over responses).
#
# Prints a Markdown report (all medians, the interleaved totals, then margay /
# best peer for each workload both ways, and margay's CPU per request / the
# floor's for a) and writes it to bench-results/peers-latest.md with the date and
# machine. Back-to-back ratios come two ways: the ratio of the medians, and the
# median of the ratios within each repetition ("paired"); the second does not
# set a figure from a slow phase of the machine against one from a fast phase.
# Every measurement goes to bench-results/peers-latest.raw beside it.
set -euo pipefail
source "$(dirname "$0")/common.sh"   # also sets the cleanup traps

DURATION=${DURATION:-10s}
REPS=${REPS:-3}
WORKLOADS=${WORKLOADS:-"a b c d e f"}
if [[ -n ${BASELINE_BIN:-} ]]; then
    SERVERS=${SERVERS:-"margay baseline floor nginx lighttpd h2o"}
else
    SERVERS=${SERVERS:-"margay floor nginx lighttpd h2o"}
fi
IDLE_CONNS=${IDLE_CONNS:-5000}
ROUNDS=${ROUNDS:-15}
INTERLEAVE=${INTERLEAVE:-"a c d e"}
SLICE=${SLICE:-2s}
secs=$(duration_secs "$DURATION")
slice_secs=$(duration_secs "$SLICE")

need_base_tools
need gcc gcc
SKIPPED=""
ACTIVE=""
for name in $SERVERS; do
    case $name in
        margay | floor) ACTIVE+=" $name" ;;
        baseline)
            [[ -x ${BASELINE_BIN:-} ]] || { echo "baseline needs BASELINE_BIN, an executable" >&2; exit 2; }
            ACTIVE+=" $name" ;;
        nginx | lighttpd | h2o) activate_peer "$name" "$name package" ;;
        *) echo "unknown server $name" >&2; exit 2 ;;
    esac
done
build_margay
if [[ " $ACTIVE " == *" baseline "* ]]; then
    BASELINE_COPY=$SCRATCH/margay-baseline
    cp "$BASELINE_BIN" "$BASELINE_COPY"
fi
raise_limits
log "open files limit $NOFILE_LIMIT"

FLOOR=$SCRATCH/floor
gcc -O2 -Wall -o "$FLOOR" scripts/floor/floor.c

DOCROOT=$SCRATCH/bench-docroot
mkdir -p "$DOCROOT"
cp htdocs/index.html "$DOCROOT/index.html"
head -c $((1024 * 1024)) /dev/urandom >"$DOCROOT/big.bin"
SMALL_BYTES=$(stat -c %s "$DOCROOT/index.html")

RAW=$SCRATCH/raw.txt   # lines: workload server metric value
: >"$RAW"

start_named() {
    local name=$1 dir=$SCRATCH/run-$1
    rm -rf "$dir"
    PORT=$(free_port)
    case $name in
        margay) margay_start "$dir" "$DOCROOT" --keep-alive-timeout 65 --max-connections 20000 ;;
        baseline) MARGAY=$BASELINE_COPY margay_start "$dir" "$DOCROOT" --keep-alive-timeout 65 --max-connections 20000 ;;
        nginx) nginx_start "$dir" "$DOCROOT" ;;
        lighttpd) lighttpd_start "$dir" "$DOCROOT" ;;
        h2o) h2o_start "$dir" "$DOCROOT" ;;
        floor) mkdir -p "$dir"; start_server "$dir/stdout.log" "$FLOOR" "$PORT" "$DOCROOT/index.html" ;;
    esac
}

runs_on() {   # runs_on WORKLOAD SERVER: whether this pair is measured
    [[ $2 == floor && ($1 == c || $1 == d) ]] && return 1
    return 0
}

record() { echo "$1 $2 $3 $4" >>"$RAW"; }

# workload_args WORKLOAD URL: sets WRK_ARGS to wrk's connections, script and
# target for WORKLOAD (without -t and -d).
workload_args() {
    case $1 in
        a) WRK_ARGS=(-c100 "$2/index.html") ;;
        b) WRK_ARGS=(-c100 -s scripts/pipeline.lua "$2") ;;
        c) WRK_ARGS=(-c50 -H 'Connection: close' "$2/index.html") ;;
        d) WRK_ARGS=(-c10 "$2/big.bin") ;;
        e) WRK_ARGS=(-c9000 --timeout 5s "$2/index.html") ;;
    esac
}

# wrk_run WORKLOAD SERVER: one wrk measurement against the running server.
wrk_run() {
    local w=$1 name=$2 out=$SCRATCH/wrk-$1-$2.txt url="http://127.0.0.1:$PORT"
    workload_args "$w" "$url"
    local -a args=(-t1 -d "$DURATION" --latency "${WRK_ARGS[@]}")
    local pid=$SERVER_PID t0 t1 started=$EPOCHREALTIME
    t0=$(cpu_ticks "$pid")
    taskset -c "$CLIENT_CORE" timeout -k 5 $((secs + 60)) wrk "${args[@]}" >"$out" 2>&1 || true
    t1=$(cpu_ticks "$pid")
    # How busy the server kept its core: below ~90 %, the client (or the
    # machine) was the limit, not the server, and CPU per request is the
    # fairer figure.
    record "$w" "$name" busy "$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v a="$started" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", d / hz / (b - a) * 100 }')"
    local req rps p99 err non2xx mib
    read -r req rps _ p99 err non2xx mib < <(wrk_summary "$out")
    record "$w" "$name" rps "$rps"
    record "$w" "$name" p99 "$p99"
    record "$w" "$name" errors $((err + non2xx))
    record "$w" "$name" mibps "$mib"
    if ((req > 0)); then
        record "$w" "$name" cpu "$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$req" 'BEGIN { printf "%.3f", d / hz * 1e6 / n }')"
    else
        echo "--- no responses from $name; wrk said:" >&2
        cat "$out" >&2
    fi
    log "$w $name: $rps req/s, $mib MiB/s, p99 $p99 ms, errors $((err + non2xx)), CPU ticks $((t1 - t0))"
}

# idle_run SERVER: memory per idle kept-alive connection.
idle_run() {
    local name=$1 out=$SCRATCH/idle-$1.txt pid=$SERVER_PID rss0 rss1 client i
    curl -s -o /dev/null "http://127.0.0.1:$PORT/index.html" || true
    sleep 0.5
    rss0=$(status_kb "$pid" VmRSS)
    : >"$out"
    taskset -c "$CLIENT_CORE" python3 scripts/idle_conns.py 127.0.0.1 "$PORT" "$IDLE_CONNS" /index.html 180 >"$out" 2>&1 &
    client=$!
    for ((i = 0; i < 1500; i++)); do   # at most 150 s
        grep -q '^ready' "$out" && break
        kill -0 "$client" 2>/dev/null || break
        sleep 0.1
    done
    sleep 1
    rss1=$(status_kb "$pid" VmRSS)
    local opened failed
    read -r _ opened failed < <(grep '^ready' "$out" || echo "ready 0 $IDLE_CONNS")
    kill "$client" 2>/dev/null || true
    wait "$client" 2>/dev/null || true
    if ((opened > 0)); then
        record f "$name" bytes_per_conn "$(( (rss1 - rss0) * 1024 / opened ))"
    fi
    record f "$name" idle_failed "$failed"
    log "f $name: RSS $rss0 -> $rss1 KiB with $opened idle connections ($failed failed)"
}

# interleaved WORKLOAD: every server that runs WORKLOAD up at once, and wrk
# alternating between them, SLICE each, ROUNDS times, each round starting one
# server later than the one before (see above). Records each server's totals
# over its slices: req/s, MiB/s, CPU per request and errors.
interleaved() {
    local w=$1 name i j n t0 t1 req rps mib err non2xx out=$SCRATCH/wrk-interleaved.txt
    local -a names=()
    local -A port pid ticks reqs ran mibs errs
    for name in $ACTIVE; do
        runs_on "$w" "$name" || continue
        start_named "$name" || { record "$w" "$name" start_failed 1; continue; }
        names+=("$name"); port[$name]=$PORT; pid[$name]=$SERVER_PID
        ticks[$name]=0; reqs[$name]=0; ran[$name]=0; mibs[$name]=0; errs[$name]=0
        EXTRA_PIDS+=" $SERVER_PID"; SERVER_PID=""
    done
    n=${#names[@]}
    for ((i = 0; i < ROUNDS && n > 0; i++)); do
        for ((j = 0; j < n; j++)); do
            name=${names[(i + j) % n]}
            workload_args "$w" "http://127.0.0.1:${port[$name]}"
            t0=$(cpu_ticks "${pid[$name]}")
            taskset -c "$CLIENT_CORE" timeout -k 5 $((slice_secs + 60)) wrk -t1 -d "$SLICE" "${WRK_ARGS[@]}" >"$out" 2>&1 || true
            t1=$(cpu_ticks "${pid[$name]}")
            read -r req rps _ _ err non2xx mib < <(wrk_summary "$out")
            ((req > 0)) || continue
            # wrk's own run time, req / (req/s), weighs each slice by how long it ran.
            ticks[$name]=$((ticks[$name] + t1 - t0)); reqs[$name]=$((reqs[$name] + req))
            errs[$name]=$((errs[$name] + err + non2xx))
            read -r "ran[$name]" "mibs[$name]" < <(awk -v s="${ran[$name]}" -v m="${mibs[$name]}" -v q="$req" -v r="$rps" -v b="$mib" \
                'BEGIN { t = q / r; printf "%.6f %.6f\n", s + t, m + b * t }')
        done
    done
    for name in "${names[@]}"; do
        if ! kill -0 "${pid[$name]}" 2>/dev/null; then
            log "$name died during the interleaved workload $w"
            record "$w" "$name" died 1
        fi
        SERVER_PID=${pid[$name]}; stop_server
        ((reqs[$name] > 0)) || continue
        record "$w" "$name" irps "$(awk -v q="${reqs[$name]}" -v s="${ran[$name]}" 'BEGIN { printf "%.2f", q / s }')"
        record "$w" "$name" imibps "$(awk -v m="${mibs[$name]}" -v s="${ran[$name]}" 'BEGIN { printf "%.2f", m / s }')"
        record "$w" "$name" icpu "$(awk -v d="${ticks[$name]}" -v hz="$CLK_TCK" -v n="${reqs[$name]}" 'BEGIN { printf "%.3f", d / hz * 1e6 / n }')"
        record "$w" "$name" ierrors "${errs[$name]}"
        log "interleaved $w $name: ${reqs[$name]} responses in ${ran[$name]} s, ${ticks[$name]} CPU ticks, ${errs[$name]} errors"
    done
    EXTRA_PIDS=""
}

for ((rep = 1; rep <= REPS; rep++)); do
    for w in $WORKLOADS; do
        for name in $ACTIVE; do
            runs_on "$w" "$name" || continue
            if ! start_named "$name"; then
                record "$w" "$name" start_failed 1
                continue
            fi
            if [[ $w == f ]]; then idle_run "$name"; else wrk_run "$w" "$name"; fi
            if ! server_alive; then
                log "$name died during workload $w; its last output:"
                tail -20 "$SCRATCH/run-$name/stdout.log" >&2 || true
                record "$w" "$name" died 1
                SERVER_PID=""
            fi
            stop_server
        done
    done
    log "repetition $rep of $REPS done"
done

for w in $INTERLEAVE; do
    [[ " $WORKLOADS " == *" $w "* && $w != f ]] && ((ROUNDS > 0)) && interleaved "$w"
done

# paired_ratio WORKLOAD A B METRIC: the median over repetitions of A's figure
# divided by B's in the same repetition, "" if there is no pair.
paired_ratio() {
    local v
    v=$(awk -v w="$1" -v a="$2" -v b="$3" -v m="$4" '
        $1 == w && $3 == m && $2 == a { x[++na] = $4 }
        $1 == w && $3 == m && $2 == b { y[++nb] = $4 }
        END { for (i = 1; i <= na && i <= nb; i++) if (y[i] > 0) print x[i] / y[i] }' "$RAW" | median)
    [[ $v == nan ]] && v=""
    echo "$v"
}
count() { awk -v w="$1" -v s="$2" -v m="$3" '$1 == w && $2 == s && $3 == m { n++ } END { print n + 0 }' "$RAW"; }

# The figure each workload is judged by, and whether higher is better.
metric_of() { case $1 in d) echo mibps ;; f) echo bytes_per_conn ;; *) echo rps ;; esac; }
higher_better() { [[ $1 != f ]]; }
label_of() {
    case $1 in
        a) echo "a. small file, 100 keep-alive conns (req/s)" ;;
        b) echo "b. 16 pipelined requests per write (req/s)" ;;
        c) echo "c. Connection: close, 50 conns (req/s)" ;;
        d) echo "d. 1 MiB file, 10 conns (MiB/s)" ;;
        e) echo "e. 9,000 keep-alive conns (req/s)" ;;
        f) echo "f. memory per idle kept-alive conn (bytes, lower is better)" ;;
    esac
}

# metric_row WORKLOAD METRIC LABEL: a "↳ LABEL" row of each server's median.
metric_row() {
    local row="| ↳ $3 |" name
    for name in $ACTIVE; do
        if runs_on "$1" "$name"; then row+=" $(fmt "$(med "$1" "$name" "$2")") |"; else row+=" n/a |"; fi
    done
    echo "$row"
}


# is_peer NAME WORKLOAD: whether NAME is a server margay is measured against.
is_peer() { [[ $1 != margay && $1 != floor && $1 != baseline ]]; }

# paired_cell WORKLOAD PEER METRIC: margay / PEER paired over repetitions, to two
# decimals; "—" for an interleaved metric (one total, nothing to pair) or no pair.
paired_cell() {
    local r=""
    [[ $3 != i* ]] && r=$(paired_ratio "$1" margay "$2" "$3")
    if [[ -n $r ]]; then awk -v r="$r" 'BEGIN { printf "%.2f", r }'; else echo "—"; fi
}

# ratio_row WORKLOAD METRIC LABEL: margay's median METRIC against the best
# peer's, as a row of the ratios table.
ratio_row() {
    local w=$1 m=$2 mv best bestv ratio="—" paired="—"
    mv=$(med "$w" margay "$m")
    read -r best bestv < <(best_peer "$w" "$m" "$(higher_better "$w" && echo high || echo low)") || true
    if [[ -n $mv && -n $bestv ]]; then
        ratio=$(awk -v a="$mv" -v b="$bestv" 'BEGIN { if (b == 0) print "—"; else printf "%.2f", a / b }')
    fi
    [[ -n $best ]] && paired=$(paired_cell "$w" "$best" "$m")
    echo "| $3 | $(fmt "$mv") | ${best:-—} $(fmt "$bestv") | $ratio | $paired |"
}

# thrift_row WORKLOAD METRIC LABEL: margay's CPU per request (METRIC) against
# the peer that spent least, as a row of the ratios table; nothing if unmeasured.
thrift_row() {
    local mc best bestv
    mc=$(med "$1" margay "$2")
    read -r best bestv < <(best_peer "$1" "$2" low) || true
    if [[ -n $mc && -n $bestv ]]; then
        echo "| $3 | $(fmt "$mc") µs | $best $(fmt "$bestv") µs | $(awk -v a="$mc" -v b="$bestv" 'BEGIN { printf "%.2f", a / b }') | $(paired_cell "$1" "$best" "$2") |"
    fi
}

# interleaved_table: each server's totals over its interleaved slices.
interleaved_table() {
    local header="| workload |" rule="| --- |" name w m row
    for name in $ACTIVE; do header+=" $name |"; rule+=" ---: |"; done
    echo "$header"; echo "$rule"
    for w in $INTERLEAVE; do
        [[ " $WORKLOADS " == *" $w "* && $w != f ]] || continue
        m=i$(metric_of "$w")
        row="| $(label_of "$w") |"
        for name in $ACTIVE; do
            if runs_on "$w" "$name"; then row+=" $(fmt "$(med "$w" "$name" "$m")") |"; else row+=" n/a |"; fi
        done
        echo "$row"
        metric_row "$w" icpu "server CPU µs per request"
        metric_row "$w" ierrors "errors (socket + non-2xx/3xx)"
    done
}

report() {
    echo "# margay against its peers, one core each"
    echo
    echo "$(machine_line). Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo "Each server alone, pinned to core 0; wrk \`-t1\` (and the idle-connection client) pinned to core 1; 127.0.0.1."
    echo "$DURATION per measurement, median of $REPS repetitions. Small file: index.html, $SMALL_BYTES bytes."
    echo "Versions: margay $(git describe --always --dirty 2>/dev/null || echo unknown)$(for s in $ACTIVE; do case $s in
        nginx) printf ', %s' "$( (command -v nginx >/dev/null && nginx -v || /usr/sbin/nginx -v) 2>&1 | sed 's/.*: //')" ;;
        lighttpd) printf ', %s' "$( (command -v lighttpd >/dev/null && lighttpd -v || /usr/sbin/lighttpd -v) 2>&1 | head -1 | cut -d' ' -f1)" ;;
        h2o) printf ', h2o %s' "$( (command -v h2o >/dev/null && h2o -v || /usr/sbin/h2o -v) 2>&1 | head -1 | awk '{ print $3 }')" ;;
        esac; done)."
    [[ -n $SKIPPED ]] && echo "Skipped (could not be installed):$SKIPPED."
    echo
    echo "## Medians"
    echo
    local header="| workload |" rule="| --- |" name w
    for name in $ACTIVE; do header+=" $name |"; rule+=" ---: |"; done
    echo "$header"; echo "$rule"
    for w in $WORKLOADS; do
        local row m
        row="| $(label_of "$w") |"
        m=$(metric_of "$w")
        for name in $ACTIVE; do
            if ! runs_on "$w" "$name"; then row+=" n/a |"; continue; fi
            local v cell
            v=$(med "$w" "$name" "$m"); cell=$(fmt "$v")
            (( $(count "$w" "$name" died) > 0 )) && cell+=" (died $(count "$w" "$name" died)×)"
            (( $(count "$w" "$name" start_failed) > 0 )) && cell+=" (did not start)"
            row+=" $cell |"
        done
        echo "$row"
        if [[ $w != f ]]; then
            metric_row "$w" cpu "server CPU µs per request"
            metric_row "$w" busy "server core busy %"
        fi
        case $w in
            e)
                metric_row e p99 "p99 latency ms"
                metric_row e errors "errors (socket + non-2xx/3xx)" ;;
            f)
                metric_row f idle_failed "connections that failed to open (of $IDLE_CONNS)" ;;
            *)
                row="| ↳ errors |"
                local any=0
                for name in $ACTIVE; do
                    local e; e=$(med "$w" "$name" errors); [[ -n $e && $e != 0 ]] && any=1
                    runs_on "$w" "$name" && row+=" $(fmt "$e") |" || row+=" n/a |"
                done
                ((any)) && echo "$row" ;;
        esac
    done
    if [[ -n $(awk '$3 == "irps"' "$RAW") ]]; then
        echo
        echo "## Interleaved"
        echo
        echo "Every server up at once, wrk alternating between them, $SLICE each, $ROUNDS rounds, each round starting with the next server: totals over each server's slices."
        echo
        interleaved_table
    fi
    echo
    echo "## Ratios"
    echo
    echo "margay / best peer: above 1 means margay is ahead, except for memory (f), where below 1 is better."
    echo "Where a server kept its core less than ~90 % busy, wrk or the machine was the limit: read its CPU per request instead."
    echo
    echo "Paired: the median over repetitions of margay's figure over that peer's in the same repetition, which ran a minute or less apart."
    echo
    echo "| workload | margay | best peer | ratio | paired |"
    echo "| --- | ---: | --- | ---: | ---: |"
    for w in $WORKLOADS; do
        ratio_row "$w" "$(metric_of "$w")" "$(label_of "$w")"
    done
    for w in $INTERLEAVE; do
        [[ -n $(med "$w" margay "i$(metric_of "$w")") ]] || continue
        ratio_row "$w" "i$(metric_of "$w")" "$(label_of "$w"), interleaved"
    done
    if [[ " $WORKLOADS " == *" a "* && " $ACTIVE " == *" floor "* ]]; then
        local mc fc pr
        mc=$(med a margay cpu); fc=$(med a floor cpu); pr=$(paired_ratio a margay floor cpu)
        if [[ -n $mc && -n $fc && -n $pr ]]; then
            echo "| a. server CPU per request, margay / floor | $(fmt "$mc") µs | floor $(fmt "$fc") µs | $(awk -v a="$mc" -v b="$fc" 'BEGIN { printf "%.2f", a / b }') | $(awk -v r="$pr" 'BEGIN { printf "%.2f", r }') |"
        fi
        mc=$(med a margay icpu); fc=$(med a floor icpu)
        if [[ -n $mc && -n $fc ]]; then
            echo "| a. server CPU per request, margay / floor (interleaved, $ROUNDS × $SLICE each) | $(fmt "$mc") µs | floor $(fmt "$fc") µs | $(awk -v a="$mc" -v b="$fc" 'BEGIN { printf "%.2f", a / b }') | — |"
        fi
    fi
    if [[ " $ACTIVE " == *" baseline "* ]]; then
        echo
        echo "### margay against the baseline binary (${BASELINE_LABEL:-baseline})"
        echo
        echo "| workload | margay | baseline | ratio | paired |"
        echo "| --- | ---: | ---: | ---: | ---: |"
        local w m b pr
        for w in $WORKLOADS; do
            m=$(med "$w" margay "$(metric_of "$w")"); b=$(med "$w" baseline "$(metric_of "$w")")
            [[ -n $m && -n $b ]] || continue
            pr=$(paired_ratio "$w" margay baseline "$(metric_of "$w")")
            echo "| $(label_of "$w") | $(fmt "$m") | $(fmt "$b") | $(awk -v a="$m" -v b="$b" 'BEGIN { printf "%.2f", a / b }') | $(awk -v r="${pr:-0}" 'BEGIN { printf "%.2f", r }') |"
        done
        for w in $WORKLOADS; do
            [[ $w == f ]] && continue
            m=$(med "$w" margay cpu); b=$(med "$w" baseline cpu)
            [[ -n $m && -n $b ]] || continue
            pr=$(paired_ratio "$w" margay baseline cpu)
            echo "| $w. server CPU per request (lower is better) | $(fmt "$m") µs | $(fmt "$b") µs | $(awk -v a="$m" -v b="$b" 'BEGIN { printf "%.2f", a / b }') | $(awk -v r="${pr:-0}" 'BEGIN { printf "%.2f", r }') |"
        done
    fi
    if [[ " $WORKLOADS " == *" c "* ]]; then
        thrift_row c cpu "c. server CPU per request, margay / thriftiest peer (lower is better)"
        thrift_row c icpu "c. server CPU per request, margay / thriftiest peer, interleaved (lower is better)"
    fi
}

mkdir -p "$RESULTS_DIR"
OUT=$RESULTS_DIR/${REPORT_NAME:-peers-latest}.md
# Written aside first: opening the report for writing would make the tree look modified
# to the `git describe --dirty` in its header.
report >"$SCRATCH/report.md"
mv "$SCRATCH/report.md" "$OUT"
# Every measurement behind the report, one per line: workload server metric value.
cp "$RAW" "${OUT%.md}.raw"
echo
cat "$OUT"
echo
echo "Wrote $OUT"
