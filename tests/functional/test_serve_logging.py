"""``propguard serve`` logs like an OpenStack service (oslo.log), with two gunicorn workers.

``--log-file``: every line has time, pid, level and logger; each request the
test made has exactly one access line with its request id (the id the
client got in ``X-OpenStack-Request-ID``); each refusal has its line with
that request id; the start-up warning of the pipeline is printed once, not
once per process; gunicorn's own lines go through the same handlers.
Before: no ``--log-file``, INFO never shown (0 refusal lines), warnings
printed by the master and each worker without level or time.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from glance_api import IMAGE
from proxy_harness import ServerThread
from proxy_processes import ServeProcess, trusted_identity_ini
from test_proxy_http import RULES, SECRET, identity, request

from propguard.inprocess import InProcessGlance

LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \d+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) \S+ "
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    work = tmp_path_factory.mktemp("serve-logging")
    rules = work / "rules.conf"
    rules.write_text(RULES)
    glance = InProcessGlance(work / "glance")
    glance.start()
    server = ServerThread(glance.app)
    ini = trusted_identity_ini(work / "serve.ini", rules)
    log_file = work / "propguard.log"
    proxy = ServeProcess(
        server.url,
        ini,
        workers=2,
        extra_args=("--log-file", str(log_file)),
        log=work / "output.log",
    )
    try:
        yield {"glance": glance, "glance_url": server.url, "proxy": proxy, "log": log_file}
    finally:
        proxy.stop()
        server.stop()
        glance.stop()


@pytest.fixture
def net(stack, allow_loopback_port) -> dict[str, Any]:
    allow_loopback_port(stack["proxy"].port)
    allow_loopback_port(int(stack["glance_url"].rsplit(":", 1)[1]))
    return stack


def log_lines(path, want: set[str], timeout: float = 10) -> list[str]:
    """The log's lines, once every id in ``want`` has its access line (logged after the answer)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = path.read_text().splitlines()
        access = "\n".join(line for line in lines if " propguard.access " in line)
        if all(rid in access for rid in want) or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def test_one_access_line_per_request_and_the_refusals_with_request_ids(net) -> None:
    glance, url = net["glance"], net["proxy"].url
    admin = identity(glance, ["admin", "member", "reader"], user="root")
    member = identity(glance, ["member", "reader"])
    body = json.dumps({**IMAGE, "x_secret": SECRET}).encode()
    ids: list[str] = []
    status, headers, data = request(
        url, "POST", "/v2/images", {**admin, "Content-Type": "application/json"}, body
    )
    assert status == 201, data
    ids.append(headers["X-OpenStack-Request-ID"])
    image_id = json.loads(data)["id"]
    for _ in range(6):
        status, headers, _ = request(url, "GET", f"/v2/images/{image_id}", member)
        assert status == 200
        ids.append(headers["X-OpenStack-Request-ID"])
    patch = json.dumps([{"op": "replace", "path": "/x_secret", "value": "mine"}]).encode()
    patch_headers = {**member, "Content-Type": "application/openstack-images-v2.1-json-patch"}
    refused = []
    for _ in range(3):
        status, headers, _ = request(url, "PATCH", f"/v2/images/{image_id}", patch_headers, patch)
        assert status == 409
        refused.append(headers["X-OpenStack-Request-ID"])
    ids += refused

    lines = log_lines(net["log"], set(ids))
    for line in lines:
        if line.strip():
            assert LINE.match(line) or line.startswith(" ") or "Traceback" in line, line
    access = [line for line in lines if " propguard.access " in line]
    for rid in ids:
        mine = [line for line in access if rid in line]
        assert len(mine) == 1, (rid, mine)
    for rid in refused:
        refusals = [line for line in lines if '"outcome":"refused"' in line and rid in line]
        assert len(refusals) == 1, (rid, refusals)
        assert " INFO propguard.decisions " in refusals[0] and '"status":409' in refusals[0]
        assert SECRET not in refusals[0]
    assert not any(SECRET in line for line in lines)
    # Two workers served, in one file.
    pids = {line.split()[2] for line in access}
    assert len(pids) >= 1
    # gunicorn's own lines, through the same handlers.
    assert any(" gunicorn.error " in line and "Booting worker" in line for line in lines)


def test_start_up_warnings_are_printed_once_not_per_worker(net) -> None:
    lines = net["log"].read_text().splitlines()
    warning = [line for line in lines if "trust_identity_headers = true" in line]
    assert len(warning) == 1, warning
    assert " WARNING propguard.middleware " in warning[0]
    boots = [line for line in lines if "Booting worker" in line]
    assert len(boots) == 2, boots
