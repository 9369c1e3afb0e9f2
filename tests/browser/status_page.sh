#!/usr/bin/env bash
# Headless-browser check of htdocs/status.html: start the release server on a free port,
# make some traffic, load the page in headless Chromium, and check
#  1. that the page follows the event stream /api/events: through the DevTools protocol
#     (tests/browser/status_events.py), it says it is fed by the stream, shows at least two
#     more pushed reports a few seconds later, and its requests counter grows with traffic;
#  2. polling (status.html?source=polling): the table shows the counters of /api/status
#     (not the placeholders) and the charts were drawn;
#  3. the fallback: against a server without the built-in endpoints the stream fails, and
#     the page turns to polling /api/status by itself.
# Saves a screenshot of the live page to target/status.png. Run from anywhere; installs
# Chromium with apt if missing (and needs python3).
set -euo pipefail

# shellcheck source=tests/common/checks.sh
source "$(dirname "$0")/../common/checks.sh"
check_init status_page chromium curl python3

# start_server NAME ARGS...: the release server over htdocs with ARGS; sets base.
start_server() {
    local name=$1
    shift
    start_margay "$name" --listen 127.0.0.1:0 --root htdocs --access-log off "$@"
}

start_server main
echo "status_page: server at $base"

for _ in $(seq 25); do
    curl -sf -o /dev/null "$base/" || fail "GET $base/ failed"
done

# The requests counter as /api/status reports it now.
requests_now() {
    curl -sf "$base/api/status" | grep -o '"requests":[0-9]*' | cut -d: -f2
}

chromium_flags=(--headless --no-sandbox --disable-gpu --disable-dev-shm-usage --disable-quic
    --no-first-run --disable-background-networking --disable-component-update --disable-sync)

# 1. The event stream, watched live through the DevTools protocol. (--dump-dom cannot wait
# for it: virtual time never advances while a response is still arriving.)
profile=$(mktemp -d -p "$work")
chromium "${chromium_flags[@]}" --user-data-dir="$profile" --remote-debugging-port=0 \
    --hide-scrollbars --window-size=1200,900 "$base/status.html" 2>>"$work/chromium.log" &
pids+=($!)
mkdir -p target
rm -f target/status.png
timeout 120 python3 tests/browser/status_events.py "$profile" "$base" target/status.png ||
    fail "the page did not follow /api/events; chromium said: $(tail -n 5 "$work/chromium.log")"
[ -s target/status.png ] || fail "no screenshot was written"

# Loads status.html$1 from $base with a fresh profile and 5 s of virtual time (about five
# polls), and prints its DOM.
dump_dom() {
    timeout 120 chromium "${chromium_flags[@]}" --user-data-dir="$(mktemp -d -p "$work")" \
        --virtual-time-budget=5000 --dump-dom "$base/status.html$1" 2>>"$work/chromium.log"
}

# 2. Polling.
before=$(requests_now) || fail "GET /api/status failed"
dom=$(dump_dom "?source=polling") ||
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
grep -q 'data-source="polling"' <<<"$dom" || fail "?source=polling did not poll"
[ "$(grep -o '<path class="line" d="M' <<<"$dom" | wc -l)" -eq 2 ] || fail "the two charts were not drawn"
echo "status_page: polling shows requests=$shown (/api/status: $before before, $after after), accepted=$(cell accepted), uptime=$(cell uptime)"

# 3. The fallback: no /api/events (nor /api/status) on this server, so the stream fails and
# the page must turn to polling by itself, and say what it cannot read.
start_server bare --no-builtin-endpoints
dom=$(dump_dom "") || fail "chromium --dump-dom failed: $(tail -n 20 "$work/chromium.log")"
grep -q 'data-source="polling"' <<<"$dom" ||
    fail "with no event stream the page did not fall back to polling: $(grep -o '<p id="state"[^<]*' <<<"$dom")"
grep -q 'Cannot read /api/status (HTTP 404)' <<<"$dom" ||
    fail "the fallback does not say /api/status is missing: $(grep -o '<p id="state"[^<]*' <<<"$dom")"
echo "status_page: without the stream the page fell back to polling /api/status"
echo "status_page: ok, screenshot in target/status.png"
