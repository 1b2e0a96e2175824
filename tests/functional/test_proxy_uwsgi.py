"""The filter's own body reading under a real uWSGI (pyuwsgi), with chunked request bodies.

uWSGI's ``wsgi.input`` reads 0 bytes of a chunked body and does not set
``wsgi.input_terminated``; Glance reads such bodies with
``uwsgi.chunked_read()`` and so must propguard (``propguard.bodies.input_stream``),
or a chunked ``POST /v2/images`` would be refused as empty (or, worse, checked
as empty). Here propguard runs in a uWSGI worker in front of a small app that
answers with the JSON document it received, as Glance would store it.
"""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from proxy_processes import ServeProcess, free_port, write_ini

RULES = """\
[^x_admin_only$]
create = admin
read = @
update = admin
delete = admin

[.*]
create = @
read = @
update = @
delete = @
"""

APP = '''
import json
from propguard.middleware import filter_factory

def glance_like(environ, start_response):
    """Stores nothing: answers with the document it was given, as an image."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    document = json.loads(environ["wsgi.input"].read(length) or b"{}")
    document["id"] = "b2d2a0a4-0000-4000-8000-000000000001"
    document["x_seen_length"] = str(length)
    body = json.dumps(document).encode()
    start_response("201 Created", [("Content-Type", "application/json"),
                                   ("Content-Length", str(len(body)))])
    return [body]

application = filter_factory(
    {},
    rules_file=RULES_FILE,
    trust_identity_headers="true",
    reload_on_sighup="false",
    name_collation="binary",
)(glance_like)
'''


def uwsgi_binary() -> str:
    found = shutil.which("uwsgi", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail("uwsgi (pyuwsgi, test extra) is not installed in the project's virtualenv")
    return found


COUNTER = '''
import uwsgi

def application(environ, start_response):
    """Reads a chunked body as Glance does under uWSGI, answers with its size."""
    total = 0
    while chunk := uwsgi.chunked_read():
        total += len(chunk)
    start_response("204 No Content", [("X-Bytes", str(total))])
    return []
'''


def start_uwsgi(tmp_path: Path, source: str, allow_loopback_port) -> Iterator[int]:
    app = tmp_path / "uwsgi_app.py"
    app.write_text(source)
    port = free_port()
    allow_loopback_port(port)
    # Glance's recommended uWSGI options for chunked uploads (doc/source/admin/apache-httpd.rst).
    process = subprocess.Popen(
        [
            uwsgi_binary(),
            "--http-socket",
            f"127.0.0.1:{port}",
            "--http-chunked-input",
            "--http-raw-body",
            "--http-auto-chunked",
            "--wsgi-file",
            str(app),
            "--master",
            "--processes",
            "1",
            "--buffer-size",
            "65535",
            "--die-on-term",
            "--need-app",
        ],  # fmt: skip
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "uwsgi.log", "wb"),  # noqa: SIM115
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                http.client.HTTPConnection("127.0.0.1", port, timeout=1).connect()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail((tmp_path / "uwsgi.log").read_text())
                time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(15)


@pytest.fixture
def served(tmp_path: Path, allow_loopback_port) -> Iterator[int]:
    rules = tmp_path / "rules.conf"
    rules.write_text(RULES)
    yield from start_uwsgi(tmp_path, f"RULES_FILE = {str(rules)!r}\n" + APP, allow_loopback_port)


def test_proxy_streams_chunked_uploads_to_a_uwsgi_glance(tmp_path, allow_loopback_port) -> None:
    """Each upstream chunk stays under uWSGI's chunked-input-limit (1 MiB by default)."""
    for port in start_uwsgi(tmp_path, COUNTER, allow_loopback_port):
        ini = write_ini(tmp_path / "serve.ini", pipeline="request_id proxy")
        proxy = ServeProcess(f"http://127.0.0.1:{port}", ini, allow=allow_loopback_port)
        try:
            size = 8 * 1024 * 1024 + 5
            body = b"y" * size
            pieces = (body[i : i + (3 << 20)] for i in range(0, size, 3 << 20))
            connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=60)
            connection.request(
                "PUT", "/v2/images/x/file", pieces, {"Content-Type": "application/octet-stream"},
                encode_chunked=True,
            )  # fmt: skip
            response = connection.getresponse()
            response.read()
            assert response.status == 204
            assert int(response.headers["X-Bytes"]) == size
        finally:
            proxy.stop()


def post(port: int, document: dict, roles: str, chunked: bool) -> tuple[int, dict]:
    body = json.dumps(document).encode()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {
        "Content-Type": "application/json",
        "X-Identity-Status": "Confirmed",
        "X-Roles": roles,
        "X-Project-Id": "p",
        "X-User-Id": "u",
    }
    if chunked:
        pieces = iter([body[:7], body[7:20], body[20:]])
        connection.request("POST", "/v2/images", pieces, headers, encode_chunked=True)
    else:
        connection.request("POST", "/v2/images", body, headers)
    response = connection.getresponse()
    data = json.loads(response.read())
    connection.close()
    return response.status, data


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_filter_reads_chunked_bodies_under_uwsgi(served: int, chunked: bool) -> None:
    document = {"name": "x", "disk_format": "raw", "container_format": "bare", "x_pub": "v"}
    status, answer = post(served, document, "member", chunked)
    assert status == 201, answer
    # What reached the app is the body propguard read and checked, re-serialised
    # with a Content-Length (the app never calls chunked_read itself).
    assert answer["x_pub"] == "v" and int(answer["x_seen_length"]) > 0
    # And it was checked: the member may not create x_admin_only, chunked or not.
    status, answer = post(served, {**document, "x_admin_only": "1"}, "member", chunked)
    assert status == 403, answer
    assert answer["error"]["code"] == 403
    status, answer = post(served, {**document, "x_admin_only": "1"}, "admin", chunked)
    assert status == 201 and answer["x_admin_only"] == "1"
