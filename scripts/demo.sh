#!/usr/bin/env bash
# Set up a Python 3.11 virtualenv in .venv with propguard and a real Glance
# (the `glance` extra), then run propguard's main job on its embedded default:
# a real Glance v2 API in-process behind keystonemiddleware's auth_token and
# propguard (rules: policies/production.conf), and a scripted tour of what a
# member, an admin and a member relayed by Nova with a service token can see
# and change. Extra arguments go to `propguard demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup-venv.sh glance
VENV=${VENV:-.venv}
exec "$VENV/bin/propguard" demo "$@"
