#!/usr/bin/env bash
# Create (or reuse) the Python 3.11 virtualenv in .venv and install propguard
# into it, editable, with the extra named as the first argument (`test`,
# `demo` or `glance`). Used by test.sh and demo.sh; PYTHON and VENV override the defaults.
#
# Quick when nothing changed: the install is recorded in $VENV/.propguard-setup-<extra>
# (a hash of setup.cfg, pyproject.toml and the Python version) and skipped while
# it matches; `test` includes everything `demo` needs, `demo` all of `glance`. The long
# first install shows one line per package; its full log is kept in
# $VENV/pip-install.log and printed if it fails.
set -euo pipefail
cd "$(dirname "$0")/.."
extra=${1:?usage: setup-venv.sh EXTRA}
PYTHON=${PYTHON:-python3.11}
VENV=${VENV:-.venv}

fingerprint() {
    { cat setup.cfg pyproject.toml; "$1" -c 'import sys; print(sys.version)'; } \
        | sha256sum | cut -d' ' -f1
}

up_to_date() {
    local python="$VENV/bin/python" want name
    [ -x "$python" ] || return 1
    want=$(fingerprint "$python") || return 1
    for name in "$@"; do
        if [ -f "$VENV/.propguard-setup-$name" ] \
            && [ "$(cat "$VENV/.propguard-setup-$name")" = "$want" ]; then
            return 0
        fi
    done
    return 1
}

accepted=("$extra")
case $extra in glance | demo) accepted+=(test) ;; esac  # test = demo + the test tools
[ "$extra" = glance ] && accepted+=(demo)  # demo = glance + Keystone and uWSGI
if up_to_date "${accepted[@]}"; then
    exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "setup-venv: creating $VENV with $PYTHON" >&2
    "$PYTHON" -m venv "$VENV"
fi
log="$VENV/pip-install.log"
echo "setup-venv: installing propguard[$extra] into $VENV (the first time takes a few minutes)" >&2
show_progress() {
    awk '/^(Collecting|Installing collected|Successfully installed|ERROR)/ {
            line = $0; if (length(line) > 110) line = substr(line, 1, 107) "...";
            print "  " line; fflush() }' >&2
}
set +e
{ "$VENV/bin/python" -m pip install --disable-pip-version-check --upgrade pip setuptools wheel \
    && "$VENV/bin/python" -m pip install --disable-pip-version-check -e ".[$extra]"; } 2>&1 \
    | tee "$log" | show_progress
status=${PIPESTATUS[0]}
set -e
if [ "$status" -ne 0 ]; then
    echo "setup-venv: pip failed ($status); the end of $log:" >&2
    tail -n 30 "$log" >&2
    exit "$status"
fi
rm -f "$VENV"/.propguard-setup-*
fingerprint "$VENV/bin/python" > "$VENV/.propguard-setup-$extra"
echo "setup-venv: $VENV is ready" >&2
