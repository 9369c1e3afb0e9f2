#!/usr/bin/env bash
# Lints margay's responses with REDbot and httplint (see lint.py).
#
# Usage: tests/conformance/run.sh
# Needs python3 with venv; installs REDbot (which brings httplint) from PyPI
# into target/conformance-venv on first use, builds margay in release mode,
# serves a copy of htdocs plus a 256 KiB file on a free port of 127.0.0.1 (with
# the benchmark scripts' helpers) and runs lint.py against it. Exits non-zero
# if the linters find a fault.
set -euo pipefail
source "$(dirname "$0")/../../scripts/common.sh"   # repo root, SCRATCH, cleanup traps

REDBOT_VERSION=2.7.1
VENV=target/conformance-venv
if ! "$VENV/bin/redbot" --help >/dev/null 2>&1; then
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "redbot==$REDBOT_VERSION"
fi

build_margay
cp -r htdocs "$SCRATCH/docroot"
head -c $((256 * 1024)) /dev/urandom >"$SCRATCH/docroot/big.bin"
PORT=$(free_port)
margay_start "$SCRATCH/run" "$SCRATCH/docroot"

PATH="$PWD/$VENV/bin:$PATH" "$VENV/bin/python" tests/conformance/lint.py "127.0.0.1:$PORT"
