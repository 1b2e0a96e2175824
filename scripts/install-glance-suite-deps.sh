#!/usr/bin/env bash
# Install the system packages the test suite needs beyond Python:
# * qemu-img (qemu-utils): four of Glance 33.0.0's functional tests run it
#   (tests/glance_suite runs them through propguard; without it those four
#   are excluded and tests/glance_suite says so);
# * chromium: tests/unit/lint/test_matrix_layout.py renders the HTML matrix
#   headless and checks every column is visible at 1366 and 1400 px (skipped,
#   and reported as skipped, without it).
# The Python side (testtools, ddt, oslotest, pytest-xdist, ...) is propguard's
# `test` extra. Does nothing when both are there; needs root (apt-get) otherwise.
set -euo pipefail
missing=()
command -v qemu-img >/dev/null 2>&1 || missing+=(qemu-utils)
{ command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; } \
    || missing+=(chromium)
if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-glance-suite-deps: no apt-get; install ${missing[*]} by hand" >&2
    exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    sudo=(sudo)
fi
echo "install-glance-suite-deps: installing ${missing[*]}" >&2
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
command -v qemu-img >/dev/null
