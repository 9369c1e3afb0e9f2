#!/usr/bin/env bash
# Headless-browser check of the single-page-app fallback: build a tiny app in a temporary
# root (index.html whose script renders the path it was loaded at, and asks a missing asset),
# serve it with --fallback /index.html on a free port, load a deep link in headless Chromium
# and check the DOM the script built. Also checks that the deep link is a 200 for a browser
# and a 404 for curl's */*. Run from anywhere; installs Chromium with apt if missing.
set -euo pipefail

# shellcheck source=tests/common/checks.sh
source "$(dirname "$0")/../common/checks.sh"
check_init spa_fallback chromium curl

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

start_margay server --listen 127.0.0.1:0 --root "$work/app" --fallback /index.html \
    --access-log off
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
