#!/usr/bin/env bash
# Set up everything the test suite needs and run it: a Python 3.11 virtualenv
# in .venv with propguard and its `test` extra (Glance 33.0.0 and its test
# requirements, keystonemiddleware, WebTest, pytest, ruff, drivers), qemu-img
# and chromium for the tests (install-glance-suite-deps.sh), then ruff and the whole suite (unit and
# functional; functional tests run a real in-process Glance v2, on sqlite and
# on the machine's MariaDB, PostgreSQL and RabbitMQ). Extra arguments go to
# pytest, e.g. `./scripts/test.sh tests/unit -q`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup-venv.sh test
./scripts/install-glance-suite-deps.sh
VENV=${VENV:-.venv}
"$VENV/bin/ruff" check propguard tests benchmarks
"$VENV/bin/python" -m pytest "$@"
