#!/usr/bin/env bash
# profile-tls.sh: where margay's server-side time goes over HTTPS, by counting rather than
# timing: instructions per request or handshake under callgrind, split by where they run, and
# system calls per request or handshake under `strace -c -f`, for margay and nginx.
#
# Usage (from anywhere in a clone):
#   scripts/profile-tls.sh
#   WORKLOADS="c" DURATION=3 scripts/profile-tls.sh
#
# Env:
#   DURATION   seconds of load per measurement (default 5); the counts are per operation, so
#              the length only sets how many operations they average over
#   WORKLOADS  which of a b c d (default all), the workloads of bench-tls.sh:
#     a  GET /index.html (1,886 bytes), wrk -t1 -c100, kept alive: per request
#     b  the same with Connection: close, wrk -c50 (wrk resumes its sessions): per request,
#        that is per resumed handshake
#     c  full handshakes, `openssl s_time -new` (one connection at a time): per handshake
#     d  GET /big.bin (1 MiB), wrk -c10, kept alive: per response
#   SERVERS    margay and/or nginx (default both); nginx is only straced
#
# Same certificate (ECDSA P-256) and suite (TLS_AES_256_GCM_SHA384) as bench-tls.sh; servers
# on core 0, clients on core 1, 127.0.0.1 only. Operations are counted by the client (wrk's
# responses, s_time's connections). Callgrind runs on valgrind's own model of the CPU, which
# has no ADX/BMI2 or SHA extensions, so ring takes its generic code paths there: the crypto
# figures are what that code costs, not what the real CPU runs. strace slows the server down
# a lot; only the counts per operation are meant to be read, never its times.
set -euo pipefail
source "$(dirname "$0")/common.sh"   # also sets the cleanup traps

DURATION=${DURATION:-5}
WORKLOADS=${WORKLOADS:-"a b c d"}
SERVERS=${SERVERS:-"margay nginx"}

need_base_tools
need openssl openssl
need valgrind valgrind
need callgrind_control valgrind
need strace strace
[[ " $SERVERS " == *" nginx "* ]] && need nginx nginx
raise_limits

log "cargo build --release (with line tables, for callgrind)"
CARGO_PROFILE_RELEASE_DEBUG=line-tables-only CARGO_TARGET_DIR=target/profiling \
    cargo build --release --quiet
MARGAY=$SCRATCH/margay
cp target/profiling/release/margay "$MARGAY"

tls_bench_files

margay_args() {
    MARGAY_ARGS=(--listen "127.0.0.1:$PORT" --root "$DOCROOT" --access-log off --log-level warn
        --tls-listen "127.0.0.1:$TLSPORT" --tls-cert "$CERT" --tls-key "$KEY"
        --keep-alive-timeout 65 --max-connections 20000)
}


wait_https() {
    local i
    for ((i = 0; i < 150; i++)); do
        curl -sk -o /dev/null --max-time 2 "https://127.0.0.1:$TLSPORT/index.html" && return 0
        sleep 0.2
    done
    echo "no HTTPS answer on $TLSPORT" >&2
    return 1
}

# load WORKLOAD: runs the workload's client on the client core; prints the operations done.
load() {
    local out=$SCRATCH/client.txt url=https://127.0.0.1:$TLSPORT
    case $1 in
        a) taskset -c "$CLIENT_CORE" wrk -t1 -c100 -d "${DURATION}s" "$url/index.html" >"$out" 2>&1 ;;
        b) taskset -c "$CLIENT_CORE" wrk -t1 -c50 -d "${DURATION}s" -H 'Connection: close' "$url/index.html" >"$out" 2>&1 ;;
        c) taskset -c "$CLIENT_CORE" openssl s_time -connect "127.0.0.1:$TLSPORT" -new -tls1_3 \
            -ciphersuites "$SUITE" -time "$DURATION" -www /index.html >"$out" 2>&1 ;;
        d) taskset -c "$CLIENT_CORE" wrk -t1 -c10 -d "${DURATION}s" "$url/big.bin" >"$out" 2>&1 ;;
    esac || true
    case $1 in
        c) awk '/connections in .* real seconds/ { print $1; exit }' "$out" ;;
        *) awk '/requests in/ { print $1; exit }' "$out" ;;
    esac
}

# callgrind_margay WORKLOAD: instructions per operation, split, as "category<TAB>count" lines.
callgrind_margay() {
    local w=$1 dir=$SCRATCH/cg-$1 pid ops
    mkdir -p "$dir"
    PORT=$(free_port) TLSPORT=$(free_port)
    margay_args
    taskset -c "$SERVER_CORE" valgrind --tool=callgrind --separate-threads=no \
        --callgrind-out-file="$dir/callgrind.out" "$MARGAY" "${MARGAY_ARGS[@]}" >"$dir/log" 2>&1 &
    pid=$!
    wait_https
    # Warm up: the file cache, the allocator's arenas, a first session.
    curl -sk -o /dev/null -o /dev/null "https://127.0.0.1:$TLSPORT/big.bin" "https://127.0.0.1:$TLSPORT/index.html"
    callgrind_control --zero "$pid" >/dev/null
    ops=$(load "$w")
    callgrind_control --dump "$pid" >/dev/null
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    log "callgrind $w: $ops operations"
    python3 scripts/callgrind_split.py "$(ls -t "$dir"/callgrind.out* | grep -v '\.out$' | head -1)" "${ops:-0}"
}

# strace_server NAME WORKLOAD: system calls per operation, "total N" then "name N" lines.
strace_server() {
    local name=$1 w=$2 dir=$SCRATCH/st-$1-$2 sp ops
    mkdir -p "$dir"
    PORT=$(free_port) TLSPORT=$(free_port)
    case $name in
        margay) margay_args; start_server "$dir/log" "$MARGAY" "${MARGAY_ARGS[@]}" ;;
        nginx) nginx_tls_start "$dir" ;;
    esac
    wait_https
    curl -sk -o /dev/null -o /dev/null "https://127.0.0.1:$TLSPORT/big.bin" "https://127.0.0.1:$TLSPORT/index.html"
    strace -c -f -p "$SERVER_PID" -o "$dir/strace.txt" 2>/dev/null &
    sp=$!
    sleep 1   # strace attaches to every thread
    ops=$(load "$w")
    kill -INT "$sp" 2>/dev/null || true
    wait "$sp" 2>/dev/null || true
    stop_server
    log "strace $name $w: $ops operations"
    awk -v n="${ops:-0}" '
        $NF == "total" { printf "total\t%.2f\n", $(NF - 2) / n; next }
        $1 ~ /^[0-9.]+$/ && NF >= 5 {
            calls = $4; errors = (NF == 6) ? $5 : 0
            printf "%s\t%.2f\t%.2f\n", $NF, calls / n, errors / n
        }' "$dir/strace.txt"
}

# per_syscall FILE: the system calls of at least 0.05 per operation, "name n (errors e)".
per_syscall() {
    awk -F'\t' '$1 != "total" && $2 >= 0.05 {
        s = s (s ? ", " : "") $1 " " $2 ($3 >= 0.05 ? " (" $3 " failed)" : "")
    } END { print s }' "$1"
}

declare -A LABEL=([a]="a. small file, kept alive (per request)"
    [b]="b. Connection: close, resumed (per request)"
    [c]="c. full handshake (per handshake)"
    [d]="d. 1 MiB file, kept alive (per response)")

for w in $WORKLOADS; do
    [[ " $SERVERS " == *" margay "* ]] && callgrind_margay "$w" >"$SCRATCH/cg-$w.tsv"
    for name in $SERVERS; do
        strace_server "$name" "$w" >"$SCRATCH/st-$name-$w.tsv"
    done
done

report() {
    echo "# Where margay's HTTPS time goes: counts per operation"
    echo
    echo "$(machine_line). margay $(git describe --always --dirty 2>/dev/null || echo unknown), $(valgrind --version), $(strace -V | head -1)."
    echo "${DURATION} s of load per measurement; servers on core $SERVER_CORE, clients on core $CLIENT_CORE."
    if [[ " $SERVERS " == *" margay "* ]]; then
        echo
        echo "## margay: instructions per operation (callgrind; valgrind's CPU model, no ADX/BMI2/SHA-NI)"
        echo
        local cats header rule w
        mapfile -t cats < <(cut -f1 "$SCRATCH/cg-${WORKLOADS%% *}.tsv")
        header="| workload |"; rule="| --- |"
        for c in "${cats[@]}"; do header+=" $c |"; rule+=" ---: |"; done
        echo "$header"; echo "$rule"
        for w in $WORKLOADS; do
            echo "| ${LABEL[$w]} | $(cut -f2 "$SCRATCH/cg-$w.tsv" | awk '{ printf "%s%d", (NR > 1 ? " | " : ""), $1 }') |"
        done
    fi
    echo
    echo "## System calls per operation (strace -c -f)"
    echo
    echo "| workload | server | total | the calls (failed ones in brackets) |"
    echo "| --- | --- | ---: | --- |"
    local name
    for w in $WORKLOADS; do
        for name in $SERVERS; do
            echo "| ${LABEL[$w]} | $name | $(awk -F'\t' '$1 == "total" { print $2 }' "$SCRATCH/st-$name-$w.tsv") | $(per_syscall "$SCRATCH/st-$name-$w.tsv") |"
        done
    done
}

mkdir -p "$RESULTS_DIR"
OUT=$RESULTS_DIR/${REPORT_NAME:-tls-profile}.md
report >"$SCRATCH/report.md"
mv "$SCRATCH/report.md" "$OUT"
echo
cat "$OUT"
echo
echo "Wrote $OUT"
