#!/usr/bin/env bash
# Checks margay's /metrics with the Prometheus client library's own text-format parser
# (prometheus_client.parser.text_string_to_metric_families), not a regular expression.
#
# Usage: tests/metrics/check.sh
# Needs python3 with venv; installs prometheus_client from PyPI into target/metrics-venv on
# first use, builds margay in release mode, serves a copy of htdocs on a free port with an
# admin listener on another (and a proxy rule back to itself), sends some traffic, scrapes the admin listener and runs
# check.py on the scrape. Exits non-zero on a parse error, a missing family or a count that
# does not follow the traffic.
set -euo pipefail
source "$(dirname "$0")/../../scripts/common.sh"   # repo root, SCRATCH, cleanup traps

PROMETHEUS_CLIENT_VERSION=0.26.0
VENV=target/metrics-venv
if ! "$VENV/bin/python" -c 'import prometheus_client' >/dev/null 2>&1; then
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check \
        "prometheus_client==$PROMETHEUS_CLIENT_VERSION"
fi

build_margay
cp -r htdocs "$SCRATCH/docroot"
# A script large enough to be compressed on the fly.
for i in $(seq 1 200); do echo "function f$i() { return $i * 2; }"; done >"$SCRATCH/docroot/app.js"
PORT=$(free_port)
ADMIN_PORT=$(free_port)
# The proxy forwards /up/ to this same server, so the upstream families have a member.
margay_start "$SCRATCH/run" "$SCRATCH/docroot" --admin-listen "127.0.0.1:$ADMIN_PORT" \
    --proxy "/up/=http://127.0.0.1:$PORT/"

public=http://127.0.0.1:$PORT
for _ in 1 2 3; do curl -fsS -o /dev/null "$public/"; done
curl -fsS -o /dev/null -H 'Accept-Encoding: gzip' "$public/app.js"
curl -fsS -o /dev/null -H 'Accept-Encoding: br' "$public/app.js"
curl -fsS -o /dev/null -I "$public/"
curl -sS -o /dev/null "$public/missing" || true
curl -fsS -o /dev/null -X POST --data 'x' "$public/api/echo"
curl -fsS -o /dev/null "$public/up/index.html"
public_metrics=$(curl -sS -o /dev/null -w '%{http_code}' "$public/metrics")
if [[ $public_metrics != 404 ]]; then
    echo "the public listener answered /metrics with $public_metrics, not 404" >&2
    exit 1
fi

curl -fsS "http://127.0.0.1:$ADMIN_PORT/metrics" >"$SCRATCH/metrics.txt"
"$VENV/bin/python" tests/metrics/check.py "$SCRATCH/metrics.txt"
