"""The systemd units, the sample configuration and the Containerfile (issue 23, point 5).

* ``systemd-analyze verify`` accepts both units (run on copies whose
  ExecStart names this environment's ``propguard``: verify insists that the
  binary exists), and ``systemd-analyze security --offline`` rates their
  sandbox. Both work here without systemd as PID 1.
* Each service is started from its unit's own ExecStart command line (the
  binary and the values of --upstream/--bind/--config-file swapped for test
  ones), reloaded with the unit's ExecReload signal and stopped with its
  KillSignal: it keeps serving after the reload and exits 0 on the stop,
  within TimeoutStopSec. ``propguard serve`` is ``Type=notify``: the test
  is the NOTIFY_SOCKET and waits for gunicorn's ``READY=1``.
* The sample ``propguard.conf`` is what oslo-config-generator writes today.
* The Containerfile cannot be built here (no container engine, no hadolint):
  it is parsed, its final USER is not root and its ENTRYPOINT is the
  ``propguard`` the wheel installs into the virtualenv it creates.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from proxy_processes import free_port
from test_notify_service import Bus

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "etc" / "systemd"
SERVE_UNIT = UNITS / "propguard-serve.service"
NOTIFY_UNIT = UNITS / "propguard-notify-filter.service"
#: Where the units expect the installation (a virtualenv at /opt/propguard).
UNIT_BINARY = "/opt/propguard/bin/propguard"
#: This environment's console script (runs the code on PYTHONPATH, i.e. this checkout).
PROPGUARD = Path(sys.executable).parent / "propguard"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"

SANDBOX = {
    "DynamicUser": "yes",
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "CapabilityBoundingSet": "",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "SystemCallFilter": "@system-service",
    "RestrictSUIDSGID": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectControlGroups": "yes",
}


def _unit(path: Path) -> dict[str, list[str]]:
    """``Key`` -> every value it is given in [Service] (systemd keys repeat)."""
    values: dict[str, list[str]] = {}
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]":
            key, _, value = line.partition("=")
            values.setdefault(key.strip(), []).append(value.strip())
    return values


def _copy_with_binary(unit: Path, directory: Path) -> Path:
    copy = directory / unit.name
    copy.write_text(unit.read_text().replace(UNIT_BINARY, str(PROPGUARD)))
    return copy


@pytest.mark.parametrize("unit", [SERVE_UNIT, NOTIFY_UNIT], ids=lambda p: p.stem)
def test_systemd_analyze_verify(unit: Path, tmp_path: Path) -> None:
    assert os.access(SYSTEMD_ANALYZE, os.X_OK), "systemd-analyze is needed (apt: systemd)"
    copy = _copy_with_binary(unit, tmp_path)
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", "--man=no", str(copy)], capture_output=True, text=True
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
    # The shipped file as it is: the only complaint is the absent /opt/propguard.
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", "--man=no", str(unit)], capture_output=True, text=True
    )
    complaints = [line for line in result.stderr.splitlines() if line.strip()]
    assert all(f"Command {UNIT_BINARY} is not executable" in c for c in complaints), complaints


@pytest.mark.parametrize("unit", [SERVE_UNIT, NOTIFY_UNIT], ids=lambda p: p.stem)
def test_sandbox(unit: Path, tmp_path: Path) -> None:
    values = _unit(unit)
    for key, expected in SANDBOX.items():
        assert expected in values.get(key, []), f"{unit.name}: {key}={expected} missing"
    assert values["KillSignal"] == ["SIGTERM"]
    assert values["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    copy = _copy_with_binary(unit, tmp_path)
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "security", "--offline=yes", "--no-pager", str(copy)],
        capture_output=True,
        text=True,
    )
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout + result.stderr)
    assert found, result.stdout + result.stderr
    print(f"{unit.name}: systemd-analyze security exposure {found.group(1)} (0 best, 10 worst)")
    assert float(found.group(1)) <= 2.0


# -- starting and stopping each service as its unit does ------------------------------


def _command(unit: Path, replace: dict[str, str]) -> list[str]:
    """The unit's ExecStart, this environment's binary, the given options' values replaced."""
    (exec_start,) = _unit(unit)["ExecStart"]
    argv = shlex.split(exec_start)
    assert argv[0] == UNIT_BINARY
    argv[0] = str(PROPGUARD)
    for index, arg in enumerate(argv[:-1]):
        if arg in replace:
            argv[index + 1] = replace[arg]
    return argv


def _signal(unit: Path, key: str) -> signal.Signals:
    if key == "ExecReload":
        (line,) = _unit(unit)["ExecReload"]
        return signal.Signals["SIG" + shlex.split(line)[1].removeprefix("-")]
    (name,) = _unit(unit)[key]
    return signal.Signals[name]


def _stop_timeout(unit: Path) -> float:
    (value,) = _unit(unit)["TimeoutStopSec"]
    return float(value)


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen]]:
    started: list[subprocess.Popen] = []
    yield started
    for child in started:
        if child.poll() is None:
            child.kill()
            child.wait()


def _healthcheck(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthcheck", timeout=5) as answer:
        return answer.status


def test_serve_started_reloaded_and_stopped_as_the_unit_does(
    tmp_path: Path, children: list, allow_loopback_port
) -> None:
    port = free_port()
    allow_loopback_port(port)  # the no_network fixture: our own proxy only
    config = tmp_path / "propguard.conf"
    config.write_text(
        "[keystone_authtoken]\nwww_authenticate_uri = http://127.0.0.1:1/identity\n"
        "auth_url = http://127.0.0.1:1/identity\n\n"
        f"[propguard]\nrules_file = {ROOT / 'policies' / 'production.conf'}\n"
        "name_collation = binary\n"
    )
    notify = tmp_path / "notify"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(notify))
    listener.settimeout(60)
    command = _command(
        SERVE_UNIT,
        {
            "--upstream": "http://127.0.0.1:1",
            "--bind": f"127.0.0.1:{port}",
            "--config-file": str(config),
        },
    )
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        child = subprocess.Popen(
            command, stdout=out, stderr=out, env={**os.environ, "NOTIFY_SOCKET": str(notify)}
        )
    children.append(child)
    try:
        ready = listener.recv(4096).decode()  # Type=notify: gunicorn's master says READY=1
    except TimeoutError:
        pytest.fail(f"no READY=1 from propguard serve:\n{log.read_text()}")
    finally:
        listener.close()
    assert "READY=1" in ready.split("\n")
    assert _healthcheck(port) == 200
    workers = {c.pid for c in psutil.Process(child.pid).children()}
    assert workers

    child.send_signal(_signal(SERVE_UNIT, "ExecReload"))  # new workers, the master stays
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        now = {c.pid for c in psutil.Process(child.pid).children()}
        if now and not now & workers:
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"no new workers after SIGHUP:\n{log.read_text()}")
    assert child.poll() is None
    assert _healthcheck(port) == 200

    started = time.monotonic()
    child.send_signal(_signal(SERVE_UNIT, "KillSignal"))
    assert child.wait(_stop_timeout(SERVE_UNIT)) == 0, log.read_text()
    print(f"propguard serve: stopped in {time.monotonic() - started:.2f} s, exit 0")
    assert "handling signal: hup" in log.read_text().lower()


def test_notify_filter_started_reloaded_and_stopped_as_the_unit_does(
    tmp_path: Path, children: list
) -> None:
    rules = tmp_path / "rules.conf"
    rules.write_text("[.*]\ncreate = @\nread = @\nupdate = @\ndelete = @\n")
    bus = Bus()
    try:
        config = bus.config_file(
            tmp_path / "propguard.conf", rules, "rabbit://guest:guest@127.0.0.1:5672/", sighup=True
        )
        with open(config, "a") as extra:
            extra.write("\n[propguard]\nname_collation = binary\n")
        command = _command(NOTIFY_UNIT, {"--config-file": str(config)})
        log = tmp_path / "notify-filter.log"
        with open(log, "wb") as out:
            child = subprocess.Popen(command, stdout=out, stderr=out)
        children.append(child)
        bus.wait_for(lambda: "consuming" in log.read_text(), what="the filter consuming")
        bus.wait_for(lambda: bus.consumers(bus.pool) == 1, what="its consumer")

        child.send_signal(_signal(NOTIFY_UNIT, "ExecReload"))  # rules reload, not an exit
        time.sleep(1)
        assert child.poll() is None, log.read_text()
        assert bus.consumers(bus.pool) == 1

        started = time.monotonic()
        child.send_signal(_signal(NOTIFY_UNIT, "KillSignal"))
        assert child.wait(_stop_timeout(NOTIFY_UNIT)) == 0, log.read_text()
        print(f"propguard notify-filter: stopped in {time.monotonic() - started:.2f} s, exit 0")
        assert "stopped" in log.read_text()
        assert bus.consumers(bus.pool) == 0
    finally:
        bus.close()


# -- the sample configuration and the container build file ---------------------------


def test_sample_config_is_what_the_generator_writes(tmp_path: Path) -> None:
    generator = ROOT / "etc" / "propguard" / "propguard-config-generator.conf"
    out = tmp_path / "propguard.conf.sample"
    subprocess.run(
        [
            sys.executable, "-m", "oslo_config.generator",
            "--config-file", str(generator), "--output-file", str(out),
        ],
        check=True,
        cwd=ROOT,
    )  # fmt: skip
    shipped = (ROOT / "etc" / "propguard" / "propguard.conf.sample").read_text()
    assert out.read_text() == shipped, (
        "etc/propguard/propguard.conf.sample is stale: run "
        "oslo-config-generator --config-file etc/propguard/propguard-config-generator.conf"
    )
    parser = configparser.RawConfigParser(strict=False)
    parser.read_string(shipped)
    assert {"keystone_authtoken", "propguard", "propguard_notify_filter"} <= set(parser.sections())


def _containerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Containerfile, continuation lines joined."""
    text = (ROOT / "Containerfile").read_text()
    logical = re.sub(r"\\\n", " ", text)
    instructions = []
    for line in logical.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            instructions.append((word.upper(), rest.strip()))
    return instructions


def test_containerfile_runs_propguard_as_a_non_root_user() -> None:
    instructions = _containerfile()
    assert instructions[0][0] in ("ARG", "FROM")
    assert sum(1 for word, _ in instructions if word == "FROM") == 1
    users = [rest for word, rest in instructions if word == "USER"]
    assert users, "no USER: the container would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), user
    # The user is created in the image with that uid.
    runs = " ".join(rest for word, rest in instructions if word == "RUN")
    assert re.search(rf"useradd [^&]*--uid {re.escape(user)}\b", runs), runs
    # The entrypoint is the console script the wheel installs into the venv made here.
    (entrypoint,) = [json.loads(rest) for word, rest in instructions if word == "ENTRYPOINT"]
    assert entrypoint == ["/opt/propguard/bin/propguard"]
    assert "python -m venv /opt/propguard" in runs
    assert re.search(r"/opt/propguard/bin/pip install [^&]*propguard-\*\.whl", runs)
    (cmd,) = [json.loads(rest) for word, rest in instructions if word == "CMD"]
    assert cmd[0] == "serve"
    # The default command parses with propguard's own CLI.
    from propguard.cli import build_parser

    args = build_parser().parse_args(cmd)
    assert args.command == "serve"
    (stop,) = [rest for word, rest in instructions if word == "STOPSIGNAL"]
    assert stop == "SIGTERM"
    # The image's user may read the configuration; nothing in /opt/propguard is its own.
    assert "chown" not in runs
