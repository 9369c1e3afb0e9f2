# shellcheck shell=bash
# Helpers shared by compare.sh, bench-peers.sh, attack.sh and workers.sh. Sourced, not run.
#
# Conventions: every server runs pinned to core 0 (`taskset -c 0`), every load
# generator to core 1 (`taskset -c 1`), on 127.0.0.1 only. Sourcing it creates
# a scratch directory and sets the traps: on exit, `cleanup` stops whatever
# `start_server` started and removes the scratch directory; an interrupt exits
# with 130 (and so runs it too).

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1   # every path below is relative to the repo root

SERVER_CORE=${SERVER_CORE:-0}
CLIENT_CORE=${CLIENT_CORE:-1}
# shellcheck disable=SC2034   # used by the scripts that source this file
RESULTS_DIR=bench-results
# shellcheck disable=SC2034
CLK_TCK=$(getconf CLK_TCK)

SCRATCH=$(mktemp -d -t margay-bench.XXXXXX)
SERVER_PID=""
EXTRA_PIDS=""   # servers a script keeps running beside SERVER_PID
APT_UPDATED=0
POLICY_RC_CREATED=0

log() { printf '== %s\n' "$*" >&2; }

cleanup() {
    stop_server
    local pid
    for pid in $EXTRA_PIDS; do kill -KILL "$pid" 2>/dev/null || true; done
    if [[ $POLICY_RC_CREATED == 1 ]]; then rm -f /usr/sbin/policy-rc.d; fi
    rm -rf "$SCRATCH"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

as_root() {
    if [[ $(id -u) == 0 ]]; then "$@"; else sudo "$@"; fi
}

# apt_install PKG...: installs Debian packages without starting their services
# (nginx, lighttpd and h2o would otherwise start a daemon on port 80).
apt_install() {
    if [[ $APT_UPDATED == 0 ]]; then
        as_root apt-get update -qq
        APT_UPDATED=1
    fi
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
        as_root chmod +x /usr/sbin/policy-rc.d
        POLICY_RC_CREATED=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

have() { command -v "$1" >/dev/null 2>&1 || [[ -x /usr/sbin/$1 ]]; }

# need CMD PKG: installs PKG if CMD is missing; fails if that does not help.
need() {
    local cmd=$1 pkg=$2
    if ! have "$cmd"; then
        log "installing $pkg"
        apt_install "$pkg"
    fi
    have "$cmd" || { echo "error: $cmd still missing after installing $pkg" >&2; exit 1; }
}

has_candidate() {   # whether apt has a version of PKG to install
    local policy
    policy=$(apt-cache policy "$1" 2>/dev/null || true)
    [[ $policy =~ Candidate:\ [0-9] ]]
}

# want CMD PKG: like need, but returns 1 instead of failing (for optional peers).
want() {
    local cmd=$1 pkg=$2
    if have "$cmd"; then return 0; fi
    if ! has_candidate "$pkg"; then
        [[ $APT_UPDATED == 1 ]] || { as_root apt-get update -qq; APT_UPDATED=1; }
        has_candidate "$pkg" || return 1
    fi
    log "installing $pkg"
    apt_install "$pkg" || return 1
    have "$cmd"
}

need_base_tools() {
    need taskset util-linux
    need curl curl
    need python3 python3
    need wrk wrk
}

build_margay() {
    log "cargo build --release"
    cargo build --release --quiet
    # A copy, so a rebuild during the run cannot swap the binary under it.
    MARGAY=$SCRATCH/margay
    cp target/release/margay "$MARGAY"
}

# raise_limits: as many open files as allowed (wanted: 65536), and as many
# processes/threads, for the servers and wrk started from this shell.
raise_limits() {
    local want_files=${NOFILE:-65536} hard
    hard=$(ulimit -Hn)
    if [[ $hard != unlimited && $hard -lt $want_files ]]; then
        ulimit -Hn "$want_files" 2>/dev/null || true
        hard=$(ulimit -Hn)
    fi
    if [[ $hard == unlimited || $hard -ge $want_files ]]; then ulimit -n "$want_files"; else ulimit -n "$hard"; fi
    ulimit -u unlimited 2>/dev/null || ulimit -u "$(ulimit -Hu)" 2>/dev/null || true
    NOFILE_LIMIT=$(ulimit -n)
}

# raise_thread_limits: kernel-wide limits a process with 10,000 threads runs
# into, raised only where writable (a container may forbid it).
raise_thread_limits() {
    local key min file
    for key in kernel.threads-max:100000 vm.max_map_count:262144 kernel.pid_max:131072; do
        min=${key#*:}; key=${key%%:*}; file=/proc/sys/${key//./\/}
        if [[ -r $file && $(cat "$file") -lt $min ]]; then
            if [[ -w $file ]] && echo "$min" > "$file" 2>/dev/null; then
                log "raised $key to $min"
            else
                log "could not raise $key (is $(cat "$file"))"
            fi
        fi
    done
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_server LOGFILE CMD...: starts CMD pinned to the server core, waits up to
# 10 s for PORT to answer, sets SERVER_PID. Returns 1 if it never answered.
start_server() {
    local logfile=$1; shift
    taskset -c "$SERVER_CORE" "$@" >"$logfile" 2>&1 &
    SERVER_PID=$!
    local deadline=$((SECONDS + 10))
    while ((SECONDS < deadline)); do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "server exited at start: $*" >&2; tail -5 "$logfile" >&2; SERVER_PID=""; return 1
        fi
        if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/"; then return 0; fi
        sleep 0.1
    done
    echo "server did not answer within 10 s: $*" >&2
    stop_server
    return 1
}

# stop_server: SIGTERM, up to 15 s of grace, then SIGKILL.
stop_server() {
    [[ -n $SERVER_PID ]] || return 0
    local pid=$SERVER_PID i
    SERVER_PID=""
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

server_alive() { [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; }

# cpu_ticks PID: utime + stime of the whole process (all threads, live and exited).
cpu_ticks() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
    stat=${stat##*) }   # the command name may hold spaces; fields after it are fixed
    awk '{ print $12 + $13 }' <<<"$stat"
}

# status_kb PID FIELD: a "kB" field of /proc/PID/status (VmRSS, VmHWM), 0 if gone.
status_kb() {
    awk -v f="$2:" '$1 == f { print $2; found = 1 } END { if (!found) print 0 }' "/proc/$1/status" 2>/dev/null || echo 0
}

threads_of() { awk '$1 == "Threads:" { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# wrk_load OUT ARGS...: runs wrk pinned to the client core, output to OUT.
wrk_load() {
    local out=$1; shift
    taskset -c "$CLIENT_CORE" wrk "$@" >"$out" 2>&1 || true
}

# wrk_summary FILE: prints "requests rps p50_ms p99_ms socket_errors non2xx mib_per_s".
wrk_summary() {
    awk '
    function ms(v) {
        if (v ~ /us$/) return v / 1000
        if (v ~ /ms$/) return v + 0
        if (v ~ /m$/)  return v * 60000
        if (v ~ /h$/)  return v * 3600000
        if (v ~ /s$/)  return v * 1000
        return v + 0
    }
    function mib(v) {
        if (v ~ /TB$/) return v * 1048576
        if (v ~ /GB$/) return v * 1024
        if (v ~ /MB$/) return v + 0
        if (v ~ /KB$/) return v / 1024
        return v / 1048576
    }
    BEGIN { req = 0; rps = 0; p50 = "nan"; p99 = "nan"; err = 0; non2xx = 0; tput = 0 }
    / requests in / { req = $1 }
    /^Requests\/sec:/ { rps = $2 }
    /^Transfer\/sec:/ { tput = mib($2) }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    /Socket errors:/ { gsub(",", ""); err = $4 + $6 + $8 + $10 }
    /Non-2xx or 3xx responses:/ { non2xx = $NF }
    END { printf "%d %.2f %s %s %d %d %.2f\n", req, rps, p50, p99, err, non2xx, tput }
    ' "$1"
}

# median: the median of the numbers on standard input (one per line); "nan" if none.
median() {
    sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "nan"; exit }
        if (NR % 2) print v[(NR + 1) / 2]; else printf "%.6g\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# machine_line: date, kernel, CPU model and core count, for report headers.
machine_line() {
    local cpu
    cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
    printf '%s; Linux %s; %s; %s cores' "$(date -u '+%Y-%m-%d %H:%M UTC')" "$(uname -r)" "${cpu:-unknown CPU}" "$(nproc)"
}

# duration_secs 10s|500ms|1m: whole seconds (at least 1), for sleeps and sampling.
duration_secs() {
    local d=$1
    case $d in
        *ms) echo 1 ;;
        *m) echo $(( ${d%m} * 60 )) ;;
        *h) echo $(( ${d%h} * 3600 )) ;;
        *s) echo "${d%s}" ;;
        *) echo "$d" ;;
    esac
}

# activate_peer NAME [WHAT] [CHECK...]: adds NAME to ACTIVE when its Debian package is
# installed or installs (and the command CHECK, if given, succeeds), else to SKIPPED
# with a log line that calls it WHAT (default NAME).
activate_peer() {
    local name=$1 what=${2:-$1}
    shift $(($# < 2 ? $# : 2))
    if want "$name" "$name" && { (($# == 0)) || "$@"; }; then
        ACTIVE+=" $name"
    else
        log "skipping $name: Debian has no installable $what here"
        SKIPPED+=" $name"
    fi
}

# tls_bench_files: the HTTPS benchmarks' shared files in $SCRATCH: DOCROOT with
# htdocs/index.html and a 1 MiB big.bin, and one ECDSA P-256 certificate for every
# server, CERT and KEY (PKCS#8), in a directory of their own (margay watches the
# certificate's directory for renewals). Sets DOCROOT, CERT, KEY and SUITE, the TLS 1.3
# suite every server is held to.
tls_bench_files() {
    DOCROOT=$SCRATCH/docroot
    mkdir -p "$DOCROOT" "$SCRATCH/tls"
    cp htdocs/index.html "$DOCROOT/index.html"
    head -c $((1024 * 1024)) /dev/urandom >"$DOCROOT/big.bin"
    CERT=$SCRATCH/tls/cert.pem
    KEY=$SCRATCH/tls/key.pem
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$KEY" 2>/dev/null
    openssl req -x509 -new -key "$KEY" -sha256 -days 2 -subj "/CN=localhost" \
        -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -out "$CERT" 2>/dev/null
    SUITE=TLS_AES_256_GCM_SHA384
}

# nginx_tls_start NAME: nginx serving DOCROOT over HTTP on $PORT and HTTPS on $TLSPORT
# with CERT, KEY and SUITE (see tls_bench_files), session cache and tickets on.
nginx_tls_start() {
    nginx_start "$1" "$DOCROOT" "ssl_certificate $CERT;
    ssl_certificate_key $KEY;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_conf_command Ciphersuites $SUITE;
    ssl_session_cache shared:SSL:10m;
    ssl_session_tickets on;" "listen 127.0.0.1:$TLSPORT ssl backlog=4096;"
}

# nginx_start DIR DOCROOT [HTTP_DIRECTIVES] [SERVER_DIRECTIVES]: one worker, no
# master, in the foreground, access log off, sendfile on, everything it writes kept
# in DIR. HTTP_DIRECTIVES (e.g. "gzip on;") go into its http block,
# SERVER_DIRECTIVES (another listen, a location) into its server block.
nginx_start() {
    local dir=$1 docroot=$2 http_extra=${3:-} server_extra=${4:-} nginx
    nginx=$(command -v nginx || echo /usr/sbin/nginx)
    mkdir -p "$dir"
    cat >"$dir/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile $NOFILE_LIMIT;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events {
    worker_connections 20000;
    use epoll;
}
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65;
    keepalive_requests 1000000000;
    open_file_cache max=1000 inactive=60s;
    client_body_temp_path $dir/client_body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    $http_extra
    server {
        listen 127.0.0.1:$PORT backlog=4096;
        root $docroot;
        $server_extra
    }
}
CONF
    start_server "$dir/stdout.log" "$nginx" -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf"
}

# lighttpd_start DIR DOCROOT [CONFIG]: lighttpd's single process, no access log
# (mod_accesslog not loaded), sendfile network backend; CONFIG (more modules with
# `server.modules += (...)`, a TLS socket, a proxy) goes at the end.
lighttpd_start() {
    local dir=$1 docroot=$2 extra=${3:-} lighttpd
    lighttpd=$(command -v lighttpd || echo /usr/sbin/lighttpd)
    mkdir -p "$dir"
    cat >"$dir/lighttpd.conf" <<CONF
server.document-root = "$docroot"
server.bind = "127.0.0.1"
server.port = $PORT
server.pid-file = "$dir/lighttpd.pid"
server.errorlog = "$dir/error.log"
server.event-handler = "linux-sysepoll"
server.network-backend = "sendfile"
server.max-fds = $NOFILE_LIMIT
server.max-connections = $((NOFILE_LIMIT / 2))
server.listen-backlog = 4096
server.max-keep-alive-requests = 65535
server.max-keep-alive-idle = 65
server.stat-cache-engine = "simple"
index-file.names = ( "index.html" )
mimetype.assign = (
    ".html" => "text/html", ".css" => "text/css", ".svg" => "image/svg+xml",
    ".png" => "image/png", ".ico" => "image/x-icon", ".txt" => "text/plain",
    "" => "application/octet-stream"
)
$extra
CONF
    start_server "$dir/stdout.log" "$lighttpd" -D -f "$dir/lighttpd.conf"
}

# h2o_start DIR DOCROOT [TOP_LEVEL] [PATH_CONFIG]: one thread, no access log (none
# configured). TOP_LEVEL (another `listen:`, a body limit) goes before `hosts:`;
# PATH_CONFIG replaces serving DOCROOT at / (e.g. "proxy.reverse.url: URL"). h2o
# 2.2 has no sendfile switch: it always reads files into its own buffers.
h2o_start() {
    local dir=$1 docroot=$2 top=${3:-} path_config=${4:-"file.dir: $2"} h2o
    h2o=$(command -v h2o || echo /usr/sbin/h2o)
    mkdir -p "$dir"
    cat >"$dir/h2o.conf" <<CONF
user: $(id -un)
num-threads: 1
max-connections: 20000
pid-file: $dir/h2o.pid
error-log: $dir/error.log
http1-request-timeout: 65
listen:
  host: 127.0.0.1
  port: $PORT
$top
hosts:
  default:
    paths:
      /:
        $path_config
CONF
    start_server "$dir/stdout.log" "$h2o" -c "$dir/h2o.conf"
}

# med WORKLOAD SERVER METRIC: the median of that figure over the repetitions in
# $RAW (lines "workload server metric value"), "" if there is none.
med() {
    local v
    v=$(awk -v w="$1" -v s="$2" -v m="$3" '$1 == w && $2 == s && $3 == m { print $4 }' "$RAW" | median)
    [[ $v == nan ]] && v=""
    echo "$v"
}

# fmt NUMBER: three significant figures (whole numbers from 100 up), "—" if empty.
fmt() {
    [[ -z $1 ]] && { echo "—"; return; }
    awk -v v="$1" 'BEGIN { a = v < 0 ? -v : v; if (a >= 100) printf "%.0f", v; else printf "%.3g", v }'
}

# best_peer WORKLOAD METRIC high|low: "name median" of the peer with the best
# median (highest for high, lowest for low), nothing if none has one. Which
# servers in $ACTIVE count as peers for WORKLOAD the script says with
# `is_peer NAME WORKLOAD`.
best_peer() {
    local best="" bestv="" v name
    for name in $ACTIVE; do
        is_peer "$name" "$1" || continue
        v=$(med "$1" "$name" "$2")
        [[ -z $v ]] && continue
        if [[ -z $bestv ]] || awk -v a="$v" -v b="$bestv" -v hi="$([[ $3 == high ]] && echo 1 || echo 0)" \
            'BEGIN { exit !(hi ? a > b : a < b) }'; then
            best=$name; bestv=$v
        fi
    done
    [[ -n $best ]] && echo "$best $bestv"
    return 0
}

# margay_start DIR DOCROOT EXTRA_ARGS...: the release binary, access log off
# (or to MARGAY_ACCESS_LOG, if set).
margay_start() {
    local dir=$1 docroot=$2; shift 2
    mkdir -p "$dir"
    start_server "$dir/stdout.log" "$MARGAY" --listen "127.0.0.1:$PORT" --root "$docroot" \
        --access-log "${MARGAY_ACCESS_LOG:-off}" --log-level warn "$@"
}
