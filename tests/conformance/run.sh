#!/usr/bin/env bash
# Lints margay's responses with REDbot and httplint (see lint.py).
#
# Usage: tests/conformance/run.sh
# Needs python3 with venv; installs REDbot (which brings httplint) from PyPI
# into target/conformance-venv on first use, builds margay in release mode,
# serves a copy of htdocs plus a 256 KiB file on a free port of 127.0.0.1 and
# runs lint.py against it. Exits non-zero if the linters find a fault.
set -euo pipefail
cd "$(dirname "$0")/../.."

REDBOT_VERSION=2.7.1
VENV=target/conformance-venv
if ! "$VENV/bin/redbot" --help >/dev/null 2>&1; then
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "redbot==$REDBOT_VERSION"
fi

cargo build --release --quiet

scratch=$(mktemp -d)
server=""
cleanup() {
    [[ -n $server ]] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
    rm -rf "$scratch"
}
trap cleanup EXIT

cp -r htdocs "$scratch/docroot"
head -c $((256 * 1024)) /dev/urandom >"$scratch/docroot/big.bin"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
target/release/margay --listen "127.0.0.1:$port" --root "$scratch/docroot" --access-log off \
    >"$scratch/server.log" 2>&1 &
server=$!
for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$port/" && break
    sleep 0.1
done

PATH="$PWD/$VENV/bin:$PATH" "$VENV/bin/python" tests/conformance/lint.py "127.0.0.1:$port"
