#!/usr/bin/env bash
# Set up everything the test suite needs and run it: a Python 3.11 virtualenv
# in .venv with propguard and its `test` extra (Glance 33.0.0,
# keystonemiddleware, WebTest, pytest, ruff, PyMySQL), then ruff and the whole
# suite (unit and functional; functional tests run a real in-process Glance v2,
# one of them on the machine's MariaDB). Extra arguments go to pytest, e.g.
# `./scripts/test.sh tests/unit -q`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup-venv.sh test
VENV=${VENV:-.venv}
"$VENV/bin/ruff" check propguard tests benchmarks
"$VENV/bin/python" -m pytest "$@"
