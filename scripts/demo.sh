#!/usr/bin/env bash
# README's main-job command. Sets up the Python 3.11 virtualenv in .venv with
# propguard and the `demo` extra (Glance 33, Keystone 30, uWSGI), then starts
# on 127.0.0.1 a real Keystone (sqlite, fernet keys), a real Glance (uWSGI,
# sqlite, file store, its own property protections off) and `propguard serve`
# in front of it with policies/production.conf, and walks a tour with real
# tokens: what each caller sees, what is refused and why, a Nova-style
# snapshot recorded as a relation, what the notification filter lets through
# to an indexer (RabbitMQ on 127.0.0.1:5672, if running). Every process it
# started is stopped at the end or on Ctrl-C.
#
#   ./scripts/demo.sh                 # Keystone, Glance, propguard serve: ports 5000, 9393, 9292
#   ./scripts/demo.sh --ports auto    # free ports chosen by the kernel
#   ./scripts/demo.sh --jwt           # no Keystone: tokens from `propguard token`
#   ./scripts/demo.sh --in-process    # the older tour: Glance in-process, no servers
#
# Extra arguments go to `propguard demo` (--help lists them); docs/demo.md.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup-venv.sh demo
VENV=${VENV:-.venv}
exec "$VENV/bin/propguard" demo "$@"
