#!/usr/bin/env bash
# Create (or reuse) the Python 3.11 virtualenv in .venv and install propguard
# into it, editable, with the extra named as the first argument (`test` or
# `glance`). Used by test.sh and demo.sh; PYTHON and VENV override the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
extra=${1:?usage: setup-venv.sh EXTRA}
PYTHON=${PYTHON:-python3.11}
VENV=${VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip setuptools wheel
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[$extra]"
