#!/usr/bin/env bash
# Set up everything the test suite needs and run it: a Python 3.11 virtualenv
# in .venv with propguard and its `test` extra (Glance 33.0.0,
# keystonemiddleware, WebTest, pytest, ruff), then ruff and the whole suite
# (unit and functional; functional tests run a real in-process Glance v2).
# Extra arguments go to pytest, e.g. `./scripts/test.sh tests/unit -q`.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
VENV=${VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip setuptools wheel
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[test]"
"$VENV/bin/ruff" check propguard tests benchmarks
"$VENV/bin/python" -m pytest "$@"
