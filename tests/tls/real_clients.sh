#!/usr/bin/env bash
# HTTPS with real clients: make a CA and a certificate for localhost with openssl, start the
# release server with --tls-listen (and --redirect-https on its plain listener), then check
# curl with TLS 1.2 and 1.3 forced in turn, openssl s_client (protocol, ALPN, verification;
# an h2-only offer refused), curl following the redirect, and headless Chromium loading
# status.html over HTTPS and showing numbers from /api/status. Run from anywhere; needs
# curl, openssl and chromium (installed with apt if missing).
set -euo pipefail

# shellcheck source=tests/common/checks.sh
source "$(dirname "$0")/../common/checks.sh"
check_init real_clients chromium curl openssl

# A CA and a leaf for localhost and 127.0.0.1, both ECDSA P-256. The leaf's key is SEC1
# ("EC PRIVATE KEY", curve named inside), as `openssl ecparam -genkey` writes it.
openssl ecparam -name prime256v1 -genkey -noout -out "$work/ca.key" 2>/dev/null
openssl req -x509 -new -key "$work/ca.key" -sha256 -days 2 -subj "/CN=margay CI CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$work/ca.pem" 2>/dev/null || fail "openssl could not make the CA"
openssl ecparam -name prime256v1 -genkey -noout -out "$work/leaf.key" 2>/dev/null
openssl req -new -key "$work/leaf.key" -subj "/CN=localhost" -out "$work/leaf.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$work/leaf.ext"
openssl x509 -req -in "$work/leaf.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
    -days 2 -sha256 -extfile "$work/leaf.ext" -out "$work/leaf.pem" 2>/dev/null ||
    fail "openssl could not sign the certificate"
grep -q "BEGIN EC PRIVATE KEY" "$work/leaf.key" || fail "expected a SEC1 key from openssl ecparam"

start_margay server --listen 127.0.0.1:0 --tls-listen 127.0.0.1:0 \
    --tls-cert "$work/leaf.pem" --tls-key "$work/leaf.key" --redirect-https \
    --root htdocs --access-log off
plain=$base tls=$tls_base
port=${tls##*:}
plain_port=${plain##*:}
base="https://localhost:$port"
echo "real_clients: server at $plain and $tls"

# curl, pinned to 127.0.0.1 for localhost, trusting only the test CA.
tls_curl() {
    curl --silent --show-error --max-time 20 --resolve "localhost:$port:127.0.0.1" \
        --resolve "localhost:$plain_port:127.0.0.1" --cacert "$work/ca.pem" "$@"
}

for version in 1.2 1.3; do
    if [ "$version" = 1.2 ]; then flags=(--tlsv1.2 --tls-max 1.2); else flags=(--tlsv1.3); fi
    code=$(tls_curl "${flags[@]}" -v -o "$work/body" -w '%{http_code}' "$base/index.html" 2>"$work/curl.err") ||
        fail "curl over TLS $version failed: $(tail -n 5 "$work/curl.err")"
    [ "$code" = 200 ] || fail "curl over TLS $version: status $code, expected 200"
    cmp -s "$work/body" htdocs/index.html || fail "curl over TLS $version: the body is not htdocs/index.html"
    grep -q "SSL connection using TLSv$version" "$work/curl.err" ||
        fail "curl did not report TLSv$version: $(grep -i 'SSL connection' "$work/curl.err" || echo 'no SSL connection line')"
    grep -qi "ALPN.*http/1.1" "$work/curl.err" || fail "curl over TLS $version: no ALPN http/1.1 in its log"
    ok "curl --cacert over TLS $version: 200, body intact, $(grep -o 'SSL connection using [^ ]* / [^ ]*' "$work/curl.err")"
done

for version in 1.2 1.3; do
    out=$(timeout 20 openssl s_client -connect "127.0.0.1:$port" -servername localhost \
        -verify_hostname localhost -CAfile "$work/ca.pem" -verify_return_error \
        "-tls1_${version#1.}" -alpn http/1.1 </dev/null 2>&1) ||
        fail "openssl s_client over TLS $version failed: $(tail -n 5 <<<"$out")"
    # "New, TLSv1.3, Cipher is ...": the protocol of the session s_client set up.
    grep -q "New, TLSv$version, Cipher is" <<<"$out" ||
        fail "s_client asked for TLS $version and got: $(grep -m1 'New, ' <<<"$out" || echo 'no session line')"
    grep -q "ALPN protocol: http/1.1" <<<"$out" || fail "s_client over TLS $version: no 'ALPN protocol: http/1.1' line"
    grep -q "Verify return code: 0 (ok)" <<<"$out" || fail "s_client over TLS $version: $(grep 'Verify return code' <<<"$out")"
    ok "openssl s_client over TLS $version: $(grep -m1 -o 'Cipher is [^ ]*' <<<"$out"), ALPN http/1.1, verified"
done

out=$(timeout 20 openssl s_client -connect "127.0.0.1:$port" -servername localhost \
    -CAfile "$work/ca.pem" -alpn h2 </dev/null 2>&1) && fail "s_client offering only h2 completed a handshake"
grep -q "no application protocol" <<<"$out" ||
    fail "s_client offering only h2: no 'no application protocol' alert: $(grep -i alert <<<"$out" | head -n 3)"
ok "openssl s_client offering only h2: refused with the no_application_protocol alert"

headers=$(tls_curl -sI "http://localhost:$plain_port/index.html?x=1") || fail "plain GET failed"
grep -q "^HTTP/1.1 308" <<<"$headers" || fail "plain HTTP with --redirect-https: $(head -n 1 <<<"$headers")"
grep -qi "^location: $base/index.html?x=1" <<<"$headers" ||
    fail "the redirect's Location: $(grep -i '^location' <<<"$headers")"
code=$(tls_curl -L -o /dev/null -w '%{http_code} %{url_effective}' "http://localhost:$plain_port/index.html") ||
    fail "curl -L through the redirect failed"
[ "${code%% *}" = 200 ] || fail "curl -L through the redirect ended with $code"
ok "--redirect-https: 308 to $base/index.html?x=1, curl -L ends at ${code#* } with 200"

status() {
    tls_curl "$base/api/status"
}
handshakes_now() {
    status | grep -o '"handshakes":[0-9]*' | cut -d: -f2
}
requests_now() {
    status | grep -o '"requests":[0-9]*' | head -n 1 | cut -d: -f2
}

# Chromium trusts exactly the leaf's public key (its SPKI hash): the test CA is not in its
# store, and every other certificate error would still fail the page. The page polls
# (?source=polling): --dump-dom waits for the page to settle, which an open event stream
# never lets it do; the browser check over HTTP covers the stream.
spki=$(openssl x509 -in "$work/leaf.pem" -pubkey -noout | openssl pkey -pubin -outform der |
    openssl dgst -sha256 -binary | base64)
chromium_run() {
    timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --disable-quic \
        --no-first-run --disable-background-networking --disable-component-update --disable-sync \
        --ignore-certificate-errors-spki-list="$spki" \
        --host-resolver-rules="MAP localhost 127.0.0.1" \
        --user-data-dir="$(mktemp -d -p "$work")" --virtual-time-budget=5000 "$@" \
        "$base/status.html?source=polling" 2>>"$work/chromium.log"
}

before_handshakes=$(handshakes_now) || fail "GET /api/status over HTTPS failed"
before=$(requests_now)
dom=$(chromium_run --dump-dom) || fail "chromium --dump-dom failed: $(tail -n 20 "$work/chromium.log")"
after=$(requests_now)
after_handshakes=$(handshakes_now)

cell() {
    grep -o "id=\"$1\">[^<]*<" <<<"$dom" | head -n 1 | sed -e 's/^[^>]*>//' -e 's/<$//'
}
shown=$(cell requests | tr -d ',')
[[ "$shown" =~ ^[0-9]+$ ]] ||
    fail "over HTTPS the requests cell shows '$(cell requests)', not a number (did the page load? $(grep -m3 -i 'cert\|ssl\|err' "$work/chromium.log" || true))"
if [ "$shown" -lt "$before" ] || [ "$shown" -gt "$after" ]; then
    fail "over HTTPS the requests cell shows $shown, outside what /api/status said around the load ($before..$after)"
fi
for id in uptime accepted active requests_per_second bytes_sent; do
    value=$(cell "$id")
    { [ -n "$value" ] && [ "$value" != "–" ]; } || fail "over HTTPS the $id cell still shows its placeholder '$value'"
done
grep -q 'class="state live"' <<<"$dom" || fail "over HTTPS the page does not say it is live"
# One for the status read after; the rest are Chromium's.
[ $((after_handshakes - before_handshakes)) -ge 2 ] ||
    fail "Chromium made no TLS handshake with the server ($before_handshakes -> $after_handshakes)"
ok "Chromium over HTTPS: status.html shows requests=$shown (/api/status: $before..$after), live; TLS handshakes $before_handshakes -> $after_handshakes"

kill -0 "$server_pid" 2>/dev/null || fail "the server died: $(tail -n 20 "$server_log")"
echo "real_clients: all checks passed"
