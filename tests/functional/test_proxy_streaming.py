"""Image data through ``propguard serve`` (gunicorn gthread) into and out of a real Glance.

``PUT /file`` and ``PUT /stage``, with ``Content-Length`` and with
``Transfer-Encoding: chunked``, then ``GET /file``: every byte arrives (sha256),
the proxy worker's resident memory grows by less than 32 MiB and it writes
no temporary file (its ``TMPDIR`` stays empty, its disk writes stay small).

Size: ``PROPGUARD_PROXY_STREAM_MIB`` (default 1024: 1 GiB per transfer;
about 10 s each on the project's 2-core machine). A buffering proxy would
grow by the whole size.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.client
import json
import os
import shutil
import time
from collections.abc import Iterator
from typing import Any

import psutil
import pytest
from glance_api import IMAGE
from proxy_harness import ServerThread
from proxy_processes import RssSampler, ServeProcess, trusted_identity_ini
from test_proxy_http import RULES, identity, request

from propguard.inprocess import InProcessGlance

MIB = 1024 * 1024
SIZE = int(os.environ.get("PROPGUARD_PROXY_STREAM_MIB", "1024")) * MIB
LIMIT = 32 * MIB
BLOCK = bytes(range(256)) * 4096  # 1 MiB


def blocks(size: int) -> Iterator[bytes]:
    for offset in range(0, size, len(BLOCK)):
        yield BLOCK[: min(len(BLOCK), size - offset)]


@functools.cache
def expected_digest(size: int) -> str:
    digest = hashlib.sha256()
    for block in blocks(size):
        digest.update(block)
    return digest.hexdigest()


def _spooled(tmpdir) -> list:
    """Files the proxy wrote to its TMPDIR, but for the metrics' multiprocess directory
    (``propguard-metrics-*``: counters in small mmapped files, never a body)."""
    return [
        p
        for p in tmpdir.rglob("*")
        if p.is_file() and not p.relative_to(tmpdir).parts[0].startswith("propguard-metrics-")
    ]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    work = tmp_path_factory.mktemp("proxy-stream")
    rules = work / "rules.conf"
    rules.write_text(RULES)
    tmpdir = work / "proxy-tmp"
    tmpdir.mkdir()
    glance = InProcessGlance(work / "glance")
    glance.start()
    server = ServerThread(glance.app)
    ini = trusted_identity_ini(work / "serve.ini", rules)
    proxy = ServeProcess(
        server.url, ini, env={"TMPDIR": str(tmpdir)}, log=work / "serve.log", threads=4
    )
    try:
        yield {"glance": glance, "glance_url": server.url, "proxy": proxy, "tmpdir": tmpdir}
    finally:
        proxy.stop()
        server.stop()
        glance.stop()
        # Several GiB of image data: not left for pytest's kept temporary directories.
        shutil.rmtree(glance.store_dir, ignore_errors=True)
        shutil.rmtree(glance.staging_dir, ignore_errors=True)


@pytest.fixture
def net(stack, allow_loopback_port) -> dict[str, Any]:
    allow_loopback_port(stack["proxy"].port)
    allow_loopback_port(int(stack["glance_url"].rsplit(":", 1)[1]))
    return stack


def new_image(net: dict[str, Any], headers: dict[str, str]) -> str:
    body = json.dumps({**IMAGE, "x_pub": "1"}).encode()
    status, _, data = request(
        net["proxy"].url,
        "POST",
        "/v2/images",
        {**headers, "Content-Type": "application/json"},
        body,
    )
    assert status == 201, data
    return json.loads(data)["id"]


def upload(port: int, path: str, headers: dict[str, str], size: int, chunked: bool) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    headers = {**headers, "Content-Type": "application/octet-stream"}
    if not chunked:
        headers["Content-Length"] = str(size)
    # Answered early (413) and closed: the answer is still there to read.
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        connection.request("PUT", path, blocks(size), headers, encode_chunked=chunked)
    response = connection.getresponse()
    response.read()
    connection.close()
    return response.status


def download(port: int, path: str, headers: dict[str, str]) -> tuple[int, int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    digest, size = hashlib.sha256(), 0
    while chunk := response.read(MIB):
        digest.update(chunk)
        size += len(chunk)
    connection.close()
    return response.status, size, digest.hexdigest()


def worker(net: dict[str, Any]) -> psutil.Process:
    (pid,) = net["proxy"].worker_pids()
    return psutil.Process(pid)


@pytest.mark.parametrize(
    "route,chunked",
    [("file", False), ("file", True), ("stage", False), ("stage", True)],
    ids=["file-content-length", "file-chunked", "stage-content-length", "stage-chunked"],
)
def test_upload_streams_without_buffering(net, route: str, chunked: bool) -> None:
    glance, port = net["glance"], net["proxy"].port
    member = identity(glance, ["member", "reader"])
    image_id = new_image(net, member)
    request(net["proxy"].url, "GET", f"/v2/images/{image_id}", member)  # warm the worker
    proc = worker(net)
    writes = proc.io_counters().write_bytes
    sampler = RssSampler(proc.pid)
    started = time.monotonic()
    status = upload(port, f"/v2/images/{image_id}/{route}", member, SIZE, chunked)
    elapsed = time.monotonic() - started
    growth = sampler.growth()
    assert status == 204
    print(
        f"\n{route} chunked={chunked}: {SIZE // MIB} MiB, {elapsed:.1f} s, +{growth / MIB:.1f} MiB"
    )
    assert growth < LIMIT, f"proxy worker grew {growth / MIB:.1f} MiB"
    assert proc.io_counters().write_bytes - writes < 4 * MIB  # no temporary file
    assert _spooled(net["tmpdir"]) == []
    # Every byte arrived, in order.
    if route == "file":
        path = os.path.join(glance.store_dir, image_id)
    else:
        path = os.path.join(glance.staging_dir, image_id)
    assert os.path.getsize(path) == SIZE
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(8 * MIB):
            digest.update(chunk)
    assert digest.hexdigest() == expected_digest(SIZE)


def test_download_streams_without_buffering(net) -> None:
    glance, port = net["glance"], net["proxy"].port
    member = identity(glance, ["member", "reader"])
    image_id = new_image(net, member)
    assert upload(port, f"/v2/images/{image_id}/file", member, SIZE, chunked=True) == 204
    proc = worker(net)
    writes = proc.io_counters().write_bytes
    sampler = RssSampler(proc.pid)
    status, size, digest = download(port, f"/v2/images/{image_id}/file", member)
    growth = sampler.growth()
    print(f"\ndownload: {SIZE // MIB} MiB, RSS +{growth / MIB:.1f} MiB")
    assert status == 200 and size == SIZE
    assert digest == expected_digest(SIZE)
    assert growth < LIMIT, f"proxy worker grew {growth / MIB:.1f} MiB"
    assert proc.io_counters().write_bytes - writes < 4 * MIB
    assert _spooled(net["tmpdir"]) == []


def test_glance_413_during_upload_reaches_the_client(net) -> None:
    """Glance's image_size_cap refuses the upload part-way: its 413 is relayed as it is."""
    from oslo_config import cfg

    glance, port = net["glance"], net["proxy"].port
    member = identity(glance, ["member", "reader"])
    image_id = new_image(net, member)
    cfg.CONF.set_override("image_size_cap", 4 * MIB)
    try:
        for chunked in (False, True):
            status = upload(port, f"/v2/images/{image_id}/file", member, 64 * MIB, chunked)
            assert status == 413, chunked
    finally:
        cfg.CONF.clear_override("image_size_cap")
    # The proxy still serves (its upstream connection was not reused half-sent).
    status, _, data = request(net["proxy"].url, "GET", f"/v2/images/{image_id}", member)
    assert status == 200 and json.loads(data)["status"] in ("queued", "saving")
