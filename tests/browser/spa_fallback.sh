#!/usr/bin/env bash
# Headless-browser check of the single-page-app fallback: build a tiny app in a temporary
# root (index.html whose script renders the path it was loaded at, and asks a missing asset),
# serve it with --fallback /index.html on a free port, load a deep link in headless Chromium
# and check the DOM the script built. Also checks that the deep link is a 200 for a browser
# and a 404 for curl's */*. Run from anywhere; installs Chromium with apt if missing.
set -euo pipefail

cd "$(dirname "$0")/../.."

fail() {
    echo "spa_fallback: FAIL: $*" >&2
    exit 1
}

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
    echo "spa_fallback: installing ${missing[*]}"
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

# The app: a router in one script, as React Router or vue-router do it, reading
# location.pathname and fetching its data from a path the fallback must not answer.
mkdir -p "$work/app/assets"
cat >"$work/app/index.html" <<'HTML'
<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>tiny app</title>
<script src="/assets/app.js" defer></script></head>
<body><main id="view">loading</main></body></html>
HTML
cat >"$work/app/assets/app.js" <<'JS'
const view = document.getElementById('view');
const parts = location.pathname.split('/').filter(Boolean);
view.setAttribute('data-route', location.pathname);
view.textContent = 'route ' + parts.join(' > ');
fetch('/assets/missing.json').then(r => {
  view.setAttribute('data-missing-status', String(r.status));
});
JS

target/release/margay --listen 127.0.0.1:0 --root "$work/app" --fallback /index.html \
    --access-log off >"$work/server.log" 2>&1 &
server_pid=$!
base=""
for _ in $(seq 100); do
    base=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$work/server.log" | head -n 1 || true)
    [ -n "$base" ] && break
    kill -0 "$server_pid" 2>/dev/null || fail "the server exited at start: $(cat "$work/server.log")"
    sleep 0.1
done
[ -n "$base" ] || fail "the server did not report its address: $(cat "$work/server.log")"
echo "spa_fallback: server at $base"

deep="/users/42/settings"
status=$(curl -s -o /dev/null -w '%{http_code}' -H 'Accept: text/html' "$base$deep")
[ "$status" = 200 ] || fail "GET $deep as a browser: $status, not 200"
status=$(curl -s -o /dev/null -w '%{http_code}' "$base$deep")
[ "$status" = 404 ] || fail "GET $deep with curl's */*: $status, not 404"

dom=$(timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
    --disable-quic --no-first-run --disable-background-networking --disable-component-update \
    --disable-sync --user-data-dir="$(mktemp -d -p "$work")" --virtual-time-budget=5000 \
    --dump-dom "$base$deep" 2>"$work/chromium.log") ||
    fail "chromium --dump-dom failed: $(tail -n 20 "$work/chromium.log")"

grep -q 'data-route="/users/42/settings"' <<<"$dom" ||
    fail "the app did not see its deep link; the DOM was: $dom"
grep -q 'route users &gt; 42 &gt; settings' <<<"$dom" ||
    fail "the app did not render the route; the DOM was: $dom"
grep -q 'data-missing-status="404"' <<<"$dom" ||
    fail "a missing asset fetched by the app was not a 404; the DOM was: $dom"
echo "spa_fallback: ok, $deep loaded the app, which rendered its route and saw a 404 for a missing asset"
