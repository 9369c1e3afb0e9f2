# shellcheck shell=bash
# What the script checks (tests/browser/*.sh, tests/tls/real_clients.sh) share. Sourced, not
# run: `source "$(dirname "$0")/../common/checks.sh"; check_init NAME CMD...`.

# fail MESSAGE: says why the check failed and exits 1.
fail() {
    echo "$CHECK_NAME: FAIL: $*" >&2
    exit 1
}

# ok MESSAGE: one passed step.
ok() {
    echo "$CHECK_NAME: ok: $*"
}

# check_init NAME CMD...: names the check in its messages, moves to the repository's top,
# installs the commands it needs with apt where they are missing (each CMD is also its
# Debian package), builds the release binary, and makes the scratch directory $work, which
# goes on exit together with every server start_margay started.
check_init() {
    CHECK_NAME=$1
    shift
    cd "$(dirname "${BASH_SOURCE[0]}")/../.."
    local missing=() cmd
    for cmd in "$@"; do
        command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "$CHECK_NAME: installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
    fi
    cargo build --release --quiet --bin margay
    work=$(mktemp -d)
    pids=()
    trap check_cleanup EXIT
}

check_cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}

# start_margay NAME ARGS...: the release server with ARGS (listening on port 0: the kernel
# picks a port and the server logs it), its log in $work/NAME.log. Sets server_pid,
# server_log, base (its first http:// URL) and tls_base (its first https:// URL, if it
# serves HTTPS). Not for a subshell: the cleanup must know the pid.
start_margay() {
    local name=$1 expect_tls=""
    shift
    server_log="$work/$name.log"
    [[ " $* " == *" --tls-listen "* ]] && expect_tls=1
    target/release/margay "$@" >"$server_log" 2>&1 &
    server_pid=$!
    pids+=("$server_pid")
    base="" tls_base=""
    for _ in $(seq 100); do
        base=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$server_log" | head -n 1 || true)
        tls_base=$(grep -o 'https://127\.0\.0\.1:[0-9]*' "$server_log" | head -n 1 || true)
        [ -n "$base" ] && { [ -z "$expect_tls" ] || [ -n "$tls_base" ]; } && return 0
        kill -0 "$server_pid" 2>/dev/null || fail "the $name server exited at start: $(cat "$server_log")"
        sleep 0.1
    done
    fail "the $name server did not report its addresses: $(cat "$server_log")"
}
