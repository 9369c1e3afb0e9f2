#!/usr/bin/env bash
# attack.sh: does margay stay up, and keep serving, under slow-client attacks?
#
# Usage (from anywhere in a clone):
#   scripts/attack.sh
#   DURATION=3s ATTACK_SECONDS=15 scripts/attack.sh        # a quick run
#   ATTACKS="slowloris range" scripts/attack.sh
#
# Env:
#   DURATION         length of each wrk measurement (default 10s)
#   ATTACKS          which of slowloris slow-body slow-read range (default all)
#   ATTACK_SECONDS   length of each attack, slowhttptest -l (default 30; raised
#                    if too short to hold the measurement inside it)
#   ATTACK_CONNS     connections each attack aims for, slowhttptest -c (default 1000)
#   MARGAY_ARGS      extra arguments for margay (e.g. "--model threads")
#   SERVER           margay (default), or nginx (one worker, as in
#                    bench-peers.sh) as a reference: an attack that also
#                    hurts nginx points at the kernel or the machine rather
#                    than at margay. nginx answers the slow-body POST with 405.
#
# What it does: builds target/release/margay and starts it with
# `--access-log off --log-level warn`, pinned to core 0, on a free port of
# 127.0.0.1, serving a temporary docroot (htdocs/index.html plus a 4 MiB
# file). It installs slowhttptest and wrk if missing. First an undisturbed
# baseline: wrk -t1 -c50 for DURATION on /index.html, pinned to core 1. Then,
# one after the other, each attack runs (slowhttptest on core 1 too, so the
# server's core is its own):
#   slowloris  slowhttptest -H: request heads that never end, a header line
#              every 10 s
#   slow-body  slowhttptest -B: POST /api/echo announcing 8 KiB of body and
#              sending 10 bytes every 10 s
#   slow-read  slowhttptest -X: GET the 4 MiB file three times per
#              connection, advertising a 512-1024 byte window and reading
#              32 bytes every 5 s
#   range      slowhttptest -R: GET the 4 MiB file with a Range header of
#              hundreds of overlapping ranges
# Once the attack's connections are up (5 s of ramp), wrk measures normal
# traffic for DURATION; then curl must get a 200 for /index.html within 2 s
# while the attack still runs. slowhttptest's own probe verdict ("service
# available", sampled each second in its -g CSV) is recorded too. The server
# is restarted if an attack killed it, and the death is reported.
#
# Prints a Markdown table (attack, baseline req/s, req/s under attack, ratio,
# available yes/no and why) and writes it to bench-results/attack-SERVER.md
# (attack-margay.md, or attack-nginx.md for SERVER=nginx).
set -euo pipefail
source "$(dirname "$0")/common.sh"   # also sets the cleanup traps

DURATION=${DURATION:-10s}
ATTACKS=${ATTACKS:-"slowloris slow-body slow-read range"}
ATTACK_CONNS=${ATTACK_CONNS:-1000}
RAMP=5
secs=$(duration_secs "$DURATION")
ATTACK_SECONDS=${ATTACK_SECONDS:-30}
if ((ATTACK_SECONDS < RAMP + secs + 8)); then ATTACK_SECONDS=$((RAMP + secs + 8)); fi
read -r -a EXTRA <<<"${MARGAY_ARGS:-}"

need_base_tools
need slowhttptest slowhttptest
SERVER=${SERVER:-margay}
case $SERVER in
    margay) ;;
    nginx) need nginx nginx ;;
    *) echo "SERVER must be margay or nginx" >&2; exit 2 ;;
esac
if [[ $SERVER == margay ]]; then build_margay; fi
raise_limits

DOCROOT=$SCRATCH/docroot
mkdir -p "$DOCROOT"
cp htdocs/index.html "$DOCROOT/index.html"
head -c $((4 * 1024 * 1024)) /dev/urandom >"$DOCROOT/big.bin"

PORT=$(free_port)
BASE=http://127.0.0.1:$PORT
start_target() {
    rm -rf "$SCRATCH/server-run"
    if [[ $SERVER == nginx ]]; then
        nginx_start "$SCRATCH/server-run" "$DOCROOT"
    else
        margay_start "$SCRATCH/server-run" "$DOCROOT" "${EXTRA[@]}"
    fi || { echo "$SERVER did not start" >&2; exit 1; }
}
start_target

# measure NAME: wrk -t1 -c50 on /index.html; prints "rps errors busy%", where
# busy% is how much of its core the server used meanwhile.
measure() {
    local out=$SCRATCH/wrk-$1.txt rps err non2xx t0 t1 started=$EPOCHREALTIME
    t0=$(cpu_ticks "$SERVER_PID")
    taskset -c "$CLIENT_CORE" timeout -k 5 $((secs + 60)) \
        wrk -t1 -c50 -d "$DURATION" --latency "$BASE/index.html" >"$out" 2>&1 || true
    t1=$(cpu_ticks "$SERVER_PID")
    read -r _ rps _ _ err non2xx _ < <(wrk_summary "$out")
    echo "$rps $((err + non2xx)) $(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v a="$started" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", d / hz / (b - a) * 100 }')"
}

attack_args() {
    case $1 in
        slowloris) echo "-H -r 200 -i 10 -x 24 -t GET -u $BASE/index.html" ;;
        slow-body) echo "-B -r 200 -i 10 -s 8192 -x 10 -t POST -u $BASE/api/echo" ;;
        slow-read) echo "-X -r 200 -w 512 -y 1024 -n 5 -z 32 -k 3 -t GET -u $BASE/big.bin" ;;
        range) echo "-R -r 500 -a 10 -b 3000 -t GET -u $BASE/big.bin" ;;
        *) echo "unknown attack $1" >&2; exit 2 ;;
    esac
}

log "baseline: wrk -c50 for $DURATION"
read -r BASELINE BASELINE_ERR BASELINE_BUSY < <(measure baseline)
log "baseline $BASELINE req/s ($BASELINE_ERR errors, server core ${BASELINE_BUSY}% busy)"

ROWS=()
for attack in $ATTACKS; do
    read -r -a args <<<"$(attack_args "$attack")"
    prefix=$SCRATCH/slow-$attack
    log "$attack: slowhttptest -c $ATTACK_CONNS -l $ATTACK_SECONDS ${args[*]}"
    taskset -c "$CLIENT_CORE" timeout -k 5 $((ATTACK_SECONDS + 30)) \
        slowhttptest -c "$ATTACK_CONNS" -l "$ATTACK_SECONDS" -p 2 -g -o "$prefix" "${args[@]}" \
        >"$prefix.log" 2>&1 </dev/null &
    slow_pid=$!
    sleep "$RAMP"
    read -r rps errs busy < <(measure "$attack")
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$BASE/index.html" || true)
    wait "$slow_pid" || true

    # slowhttptest's probe: the CSV's last column ("Service Available") is
    # non-zero while its probe request was answered within -p seconds, 0
    # when it was not.
    probe_total=0 probe_down=0
    if [[ -s $prefix.csv ]]; then
        read -r probe_total probe_down < <(awk -F, 'NR > 1 && NF >= 5 { n++; if ($NF + 0 == 0) d++ } END { print n + 0, d + 0 }' "$prefix.csv")
    fi
    verdict=$(sed 's/\x1b\[[0-9;]*m//g' "$prefix.log" | grep -a 'service available' | tail -1 |
        awk -F: '{ gsub(/[ \t\r]/, "", $2); print $2 }' || true)
    alive=yes
    if ! server_alive; then
        alive=no
        log "$SERVER died during $attack; its last output:"
        tail -20 "$SCRATCH/server-run/stdout.log" "$SCRATCH/server-run/error.log" >&2 || true
        SERVER_PID=""
    fi

    why=()
    [[ $alive == yes ]] || why+=("server died")
    [[ $code == 200 ]] || why+=("curl got ${code:-nothing} (want 200 in 2 s)")
    ((probe_down == 0)) || why+=("slowhttptest probe unanswered ${probe_down}/${probe_total} s")
    [[ ${verdict^^} != NO ]] || why+=("slowhttptest's last verdict: NO")
    available=yes
    ((${#why[@]} == 0)) || available=no
    ratio=$(awk -v a="$rps" -v b="$BASELINE" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "—" }')
    connected=$(awk -F, 'NR > 1 && NF >= 5 { if ($4 + 0 > m) m = $4 + 0 } END { print m + 0 }' "$prefix.csv" 2>/dev/null || echo "?")
    note=$(printf '%s; ' "${why[@]}")
    note=${note%; }
    ROWS+=("| $attack | $connected | $(printf '%.0f' "$BASELINE") | $(printf '%.0f' "$rps") | $ratio | $errs | $busy | $available | ${note:-} |")
    log "$attack: $rps req/s under attack (ratio $ratio, server core ${busy}% busy), curl $code, probe down ${probe_down}/${probe_total} s, verdict ${verdict:-?}, server alive $alive"

    if [[ $alive == no ]]; then start_target; fi
    sleep 2   # let the attack's sockets drain before the next one
done

{
    echo "# $SERVER under slow-client attacks"
    echo
    echo "$(machine_line). Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo "$SERVER $([[ $SERVER == margay ]] && echo "${MARGAY_ARGS:+($MARGAY_ARGS) }")pinned to core 0; wrk and slowhttptest pinned to core 1; 127.0.0.1."
    echo "Each attack: slowhttptest aiming for $ATTACK_CONNS connections for $ATTACK_SECONDS s; after $RAMP s, wrk \`-t1 -c50\` for $DURATION on /index.html; then curl must get 200 within 2 s."
    echo "Baseline: the same wrk run with no attack."
    echo
    echo "Server core busy %: the server's CPU time during the measurement over its wall time (baseline: $BASELINE_BUSY %). With only two cores, slowhttptest shares core 1 with wrk, so part of a drop in req/s is the client's, not the server's: a server core far from 100 % busy says the server had time to spare."
    echo
    echo "| attack | attack connections held (peak) | baseline req/s | req/s under attack | ratio | wrk errors | server core busy % | available | notes |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"
    printf '%s\n' "${ROWS[@]}"
} >"$SCRATCH/attack.md"

mkdir -p "$RESULTS_DIR"
REPORT=$RESULTS_DIR/attack-$SERVER.md
cp "$SCRATCH/attack.md" "$REPORT"
echo
cat "$REPORT"
echo
echo "Wrote $REPORT"
