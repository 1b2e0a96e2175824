#!/usr/bin/env bash
# Install the system packages benchmarks/ needs beyond Python:
# * memcached: `benchmarks/bench_proxy.py --fresh-tokens N` starts one on a free
#   loopback port and points the proxy's and Glance's auth_token at it (the
#   shared token cache, docs/proxy.md "A fresh token is validated twice").
# The Python side (python-memcached, which keystonemiddleware imports as
# `memcache`) is in propguard's `demo` and `test` extras. Does nothing when
# memcached is there; needs root (apt-get) otherwise.
set -euo pipefail
if command -v memcached >/dev/null 2>&1 || [ -x /usr/bin/memcached ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-bench-deps: no apt-get; install memcached by hand" >&2
    exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    sudo=(sudo)
fi
echo "install-bench-deps: installing memcached" >&2
"${sudo[@]}" apt-get update -qq
# --no-install-recommends; policy-rc.d keeps Debian's packaging from starting a
# system-wide memcached on 11211: the benchmark runs its own on a free port.
policy=/usr/sbin/policy-rc.d
placed=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod +x "$policy"
    placed=1
fi
status=0
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    memcached >/dev/null || status=$?
if [ "$placed" -eq 1 ]; then
    "${sudo[@]}" rm -f "$policy"
fi
[ "$status" -eq 0 ] || exit "$status"
/usr/bin/memcached -h >/dev/null
