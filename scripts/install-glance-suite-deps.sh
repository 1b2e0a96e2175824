#!/usr/bin/env bash
# Install the system packages Glance 33.0.0's functional tests need beyond
# Python (tests/glance_suite runs them through propguard): qemu-img, which
# four of them run (qcow2 virtual size, image conversion). The Python side
# (testtools, ddt, oslotest, pytest-xdist, ...) is propguard's `test` extra.
# Does nothing when qemu-img is already there; needs root (apt-get) otherwise.
# Without it those four tests are excluded and tests/glance_suite says so.
set -euo pipefail
if command -v qemu-img >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-glance-suite-deps: no apt-get; install qemu-img (qemu-utils) by hand" >&2
    exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    sudo=(sudo)
fi
echo "install-glance-suite-deps: installing qemu-utils (qemu-img)" >&2
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends qemu-utils >/dev/null
command -v qemu-img >/dev/null
