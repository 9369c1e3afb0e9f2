#!/usr/bin/env bash
# Headless-browser check of htdocs/status.html: start the release server on a free port,
# make some traffic, load the page in headless Chromium, and check that its table shows the
# counters of /api/status (not the placeholders) and that its charts were drawn. Saves a
# screenshot to target/status.png. Run from anywhere; installs Chromium with apt if missing.
set -euo pipefail

cd "$(dirname "$0")/../.."

fail() {
    echo "status_page: FAIL: $*" >&2
    exit 1
}

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
    echo "status_page: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

cargo build --release --quiet --bin margay

work=$(mktemp -d)
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# Port 0 lets the kernel pick a free port; the server logs the address it got.
target/release/margay --listen 127.0.0.1:0 --root htdocs --access-log off >"$work/server.log" 2>&1 &
server_pid=$!
base=""
for _ in $(seq 100); do
    base=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$work/server.log" | head -n 1 || true)
    [ -n "$base" ] && break
    kill -0 "$server_pid" 2>/dev/null || fail "the server exited at start: $(cat "$work/server.log")"
    sleep 0.1
done
[ -n "$base" ] || fail "the server did not report its address: $(cat "$work/server.log")"
echo "status_page: server at $base"

for _ in $(seq 25); do
    curl -sf -o /dev/null "$base/" || fail "GET $base/ failed"
done

# The requests counter as /api/status reports it now.
requests_now() {
    curl -sf "$base/api/status" | grep -o '"requests":[0-9]*' | cut -d: -f2
}

# Loads the page with a fresh profile and 5 s of virtual time (about five polls), then does $@.
chromium_run() {
    timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --disable-quic \
        --no-first-run --disable-background-networking --disable-component-update --disable-sync \
        --user-data-dir="$(mktemp -d -p "$work")" --virtual-time-budget=5000 "$@" \
        "$base/status.html" 2>>"$work/chromium.log"
}

before=$(requests_now) || fail "GET /api/status failed"
dom=$(chromium_run --dump-dom) ||
    fail "chromium --dump-dom failed: $(tail -n 20 "$work/chromium.log")"
after=$(requests_now) || fail "GET /api/status failed"

# The text of the element with id="$1".
cell() {
    grep -o "id=\"$1\">[^<]*<" <<<"$dom" | head -n 1 | sed -e 's/^[^>]*>//' -e 's/<$//'
}

shown=$(cell requests | tr -d ',')
[[ "$shown" =~ ^[0-9]+$ ]] || fail "the requests cell shows '$(cell requests)', not a number (page never read /api/status?)"
[ "$shown" -gt 0 ] || fail "the requests cell shows 0"
if [ "$shown" -lt "$before" ] || [ "$shown" -gt "$after" ]; then
    fail "the requests cell shows $shown, outside what /api/status said around the load ($before..$after)"
fi
for id in uptime accepted handled active reading writing idle requests_per_second bytes_per_second bytes_sent; do
    value=$(cell "$id")
    if [ -z "$value" ] || [ "$value" = "–" ]; then
        fail "the $id cell still shows its placeholder '$value'"
    fi
done
grep -q 'class="state live"' <<<"$dom" || fail "the page does not say it is live"
[ "$(grep -o '<path class="line" d="M' <<<"$dom" | wc -l)" -eq 2 ] || fail "the two charts were not drawn"
echo "status_page: the page shows requests=$shown (/api/status: $before before, $after after), accepted=$(cell accepted), uptime=$(cell uptime)"

mkdir -p target
rm -f target/status.png
chromium_run --hide-scrollbars --window-size=1200,900 --screenshot=target/status.png >/dev/null ||
    fail "chromium --screenshot failed: $(tail -n 20 "$work/chromium.log")"
[ -s target/status.png ] || fail "no screenshot was written"
echo "status_page: ok, screenshot in target/status.png"
