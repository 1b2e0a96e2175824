"""``propguard serve`` (gunicorn gthread, a subprocess) over HTTP: rules, headers, links, errors.

The upstreams are a real Glance served by a cheroot thread, or small
upstreams that misbehave on purpose (refuse, hang, reset, answer early).
The proxy's auth layer here is propguard's ``trust_identity_headers`` (a
gateway-validated identity) because the tokens live in this process's
AuthTokenFixture: Glance behind the proxy still validates the token itself.
The suites run through the shipped pipeline with auth_token in
``conftest.PROXY_SUITES``.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from glance_api import IMAGE
from proxy_harness import ServerThread
from proxy_processes import (
    RawServer,
    ServeProcess,
    read_head,
    reset,
    trusted_identity_ini,
    write_ini,
)

from propguard.inprocess import InProcessGlance

RULES = """\
[^x_secret$]
create = admin
read = admin
update = admin
delete = admin

[.*]
create = @
read = @
update = @
delete = @
"""
SECRET = "s3cr3t-value-7f1c"


def request(
    url: str,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> tuple[int, http.client.HTTPMessage, bytes]:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def identity(glance: InProcessGlance, roles: list[str], user: str = "demo-user-id") -> dict:
    """The token (for Glance) and the identity headers a validating gateway would set."""
    return {
        "X-Auth-Token": glance.user_token(roles, user_id=user),
        "X-Identity-Status": "Confirmed",
        "X-Roles": ",".join(roles),
        "X-User-Id": user,
        "X-Project-Id": "demo-project-id",
    }


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Glance on a cheroot thread; propguard serve (request_id propguard proxy) in front."""
    work = tmp_path_factory.mktemp("proxy-http")
    rules = work / "rules.conf"
    rules.write_text(RULES)
    glance = InProcessGlance(work / "glance")
    glance.start()
    server = ServerThread(glance.app)
    ini = trusted_identity_ini(work / "serve.ini", rules)
    proxy = ServeProcess(server.url, ini, log=work / "serve.log")
    try:
        yield {"glance": glance, "glance_url": server.url, "proxy": proxy, "work": work}
    finally:
        proxy.stop()
        server.stop()
        glance.stop()


@pytest.fixture
def net(stack, allow_loopback_port) -> dict[str, Any]:
    allow_loopback_port(stack["proxy"].port)
    allow_loopback_port(int(stack["glance_url"].rsplit(":", 1)[1]))
    return stack


def test_rules_apply_through_serve(net) -> None:
    glance, proxy = net["glance"], net["proxy"].url
    admin = identity(glance, ["admin", "member", "reader"], user="root")
    member = identity(glance, ["member", "reader"])
    body = json.dumps({**IMAGE, "x_secret": SECRET, "x_pub": "visible"}).encode()
    status, _, data = request(
        proxy, "POST", "/v2/images", {**admin, "Content-Type": "application/json"}, body
    )
    assert status == 201, data
    image_id = json.loads(data)["id"]
    for path in (f"/v2/images/{image_id}", f"/v2//images/{image_id}", "/v2/images"):
        status, _, data = request(proxy, "GET", path, member)
        assert status == 200, (path, data)
        assert SECRET.encode() not in data and b"x_secret" not in data, path
        assert b"visible" in data
    status, _, data = request(proxy, "GET", f"/v2/images/{image_id}", admin)
    assert json.loads(data)["x_secret"] == SECRET
    # gunicorn takes "//v2/..." as a path; the proxy matched and forwards it as Glance routes it.
    status, _, data = request(proxy, "GET", f"//v2/images/{image_id}", member)
    assert status == 200 and SECRET.encode() not in data and b"visible" in data, (status, data)
    # A member's PATCH of the hidden property: Glance's 409, nothing changed.
    patch = json.dumps([{"op": "replace", "path": "/x_secret", "value": "mine"}]).encode()
    headers = {**member, "Content-Type": "application/openstack-images-v2.1-json-patch"}
    status, _, data = request(proxy, "PATCH", f"/v2/images/{image_id}", headers, patch)
    assert status == 409, data
    assert SECRET.encode() not in data
    # Glance validates the token again: gateway headers without a valid token get nothing.
    forged = {**admin, "X-Auth-Token": "not-a-token"}
    status, _, data = request(proxy, "GET", f"/v2/images/{image_id}", forged)
    assert status == 401, data
    assert SECRET.encode() not in data


def echo_app(environ, start_response):
    """Answers with the request headers it received, hop-by-hop headers and links of its own."""
    received = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k[:5] == "HTTP_"}
    host = environ["HTTP_HOST"]
    body = json.dumps(
        {
            "headers": received,
            "path": environ["PATH_INFO"],
            "next": f"http://{host}/v2/images?marker=abc",
            "first": "/v2/images",
            # the shape of Glance's version discovery (absolute hrefs from the request's host)
            "versions": [{"id": "v2.17", "links": [{"rel": "self", "href": f"http://{host}/v2/"}]}],
            "locations": [{"url": f"http://{host}/not-a-link"}],
        }
    ).encode()
    start_response(
        "201 Created",
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("Location", f"http://{host}/v2/images/abc"),
            ("Connection", "X-Upstream-Private"),
            ("X-Upstream-Private", "internal"),
            ("Keep-Alive", "timeout=5"),
            ("X-End-To-End", "kept"),
        ],
    )
    return [body]


@pytest.fixture(scope="module")
def echo(tmp_path_factory) -> Iterator[dict[str, Any]]:
    work = tmp_path_factory.mktemp("proxy-echo")
    upstream = ServerThread(echo_app)
    ini = write_ini(work / "serve.ini", pipeline="request_id proxy")
    plain = ServeProcess(upstream.url, ini, log=work / "plain.log")
    trusting = ServeProcess(
        upstream.url, ini, extra_args=("--trusted-proxy", "127.0.0.1"), log=work / "t.log"
    )
    try:
        yield {"upstream": upstream, "plain": plain, "trusting": trusting}
    finally:
        trusting.stop()
        plain.stop()
        upstream.stop()


@pytest.fixture
def echo_net(echo, allow_loopback_port) -> dict[str, Any]:
    for port in (echo["upstream"].port, echo["plain"].port, echo["trusting"].port):
        allow_loopback_port(port)
    return echo


CLIENT_HEADERS = {
    "Connection": "X-Client-Private, keep-alive",
    "X-Client-Private": "secret",
    "Keep-Alive": "timeout=30",
    "TE": "trailers",
    "Upgrade": "websocket",
    "Proxy-Authorization": "Basic Zm9vOmJhcg==",
    "Forwarded": "for=6.6.6.6;host=evil.example;proto=https",
    "X-Forwarded-For": "6.6.6.6",
    "X-Forwarded-Host": "evil.example",
    "X-Forwarded-Proto": "https",
    "X-End-To-End": "kept",
    "Host": "images.example:9293",
}


def test_hop_by_hop_and_forwarding_headers_are_replaced(echo_net) -> None:
    status, headers, data = request(echo_net["plain"].url, "GET", "/v2/x", CLIENT_HEADERS)
    assert status == 201
    seen = json.loads(data)["headers"]
    for name in ("x-client-private", "keep-alive", "te", "upgrade", "proxy-authorization"):
        assert name not in seen, (name, seen)
    assert seen["x-end-to-end"] == "kept"
    # Exactly one hop, the proxy's own: what the client claimed is gone.
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert seen["x-forwarded-host"] == "images.example:9293"
    assert seen["x-forwarded-proto"] == "http"
    # No host= in Forwarded: oslo.middleware would take it with its quotes (docs/proxy.md).
    assert seen["forwarded"] == "for=127.0.0.1;proto=http"
    assert "6.6.6.6" not in data.decode() and "evil.example" not in data.decode()
    # Response side: the upstream's hop-by-hop headers stop at the proxy.
    assert headers["X-Upstream-Private"] is None
    assert headers["Keep-Alive"] is None
    assert headers["X-End-To-End"] == "kept"


def test_a_trusted_proxy_keeps_its_forwarding_headers(echo_net) -> None:
    status, _, data = request(echo_net["trusting"].url, "GET", "/v2/x", CLIENT_HEADERS)
    seen = json.loads(data)["headers"]
    assert seen["x-forwarded-for"] == "6.6.6.6, 127.0.0.1"
    assert seen["forwarded"].startswith("for=6.6.6.6;host=evil.example;proto=https, for=127.0.0.1")
    assert seen["x-forwarded-proto"] == "https"
    assert "x-client-private" not in seen


def test_location_and_links_point_at_the_proxy(echo_net) -> None:
    status, headers, data = request(
        echo_net["plain"].url, "POST", "/v2/images", {"Host": "images.example:9293"}, b"{}"
    )
    assert status == 201
    upstream = echo_net["upstream"].url.removeprefix("http://")
    assert headers["Location"] == "http://images.example:9293/v2/images/abc"
    document = json.loads(data)
    assert document["next"] == "http://images.example:9293/v2/images?marker=abc"
    assert document["first"] == "/v2/images"
    assert document["versions"][0]["links"][0]["href"] == "http://images.example:9293/v2/"
    # Not a link: image data keeps what the upstream said.
    assert document["locations"][0]["url"] == f"http://{upstream}/not-a-link"
    assert int(headers["Content-Length"]) == len(data)


# -- errors ---------------------------------------------------------------------


def assert_openstack_error(status: int, data: bytes, expected: int, *secrets: str) -> None:
    assert status == expected, data
    error = json.loads(data)["error"]
    assert set(error) == {"code", "title", "message"} and error["code"] == expected
    for secret in secrets:
        assert secret not in data.decode(), data


def test_upstream_refused_is_502_without_internals(tmp_path, allow_loopback_port) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    ini = write_ini(tmp_path / "serve.ini", pipeline="request_id proxy")
    proxy = ServeProcess(f"http://127.0.0.1:{dead}", ini, allow=allow_loopback_port)
    try:
        status, _, data = request(proxy.url, "GET", "/v2/images")
        assert_openstack_error(status, data, 502, str(dead), "refused", "Errno", "127.0.0.1")
    finally:
        proxy.stop()


def test_upstream_timeout_is_504(tmp_path, allow_loopback_port) -> None:
    def silent(conn: socket.socket) -> None:
        read_head(conn)
        time.sleep(10)

    upstream = RawServer(silent)
    ini = write_ini(
        tmp_path / "serve.ini", pipeline="request_id proxy", proxy_options={"read_timeout": "1"}
    )
    proxy = ServeProcess(upstream.url, ini, allow=allow_loopback_port)
    try:
        started = time.monotonic()
        status, _, data = request(proxy.url, "GET", "/v2/images")
        assert time.monotonic() - started < 8
        assert_openstack_error(status, data, 504, str(upstream.port), "TimeoutError", "timed out")
    finally:
        proxy.stop()
        upstream.stop()


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_upstream_reset_mid_response_aborts_the_client(tmp_path, allow_loopback_port, framing):
    """Body bytes were relayed already: the client's connection is aborted, not ended."""

    def half(conn: socket.socket) -> None:
        read_head(conn)
        if framing == "chunked":
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
            conn.sendall(head + b"Transfer-Encoding: chunked\r\n\r\n")
            for _ in range(16):
                conn.sendall(b"10000\r\n" + b"x" * 0x10000 + b"\r\n")
        else:
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
            conn.sendall(head + b"Content-Length: 10000000\r\n\r\n" + b"x" * 1_000_000)
        time.sleep(0.2)
        reset(conn)

    upstream = RawServer(half)
    ini = write_ini(tmp_path / "serve.ini", pipeline="request_id proxy")
    proxy = ServeProcess(upstream.url, ini, allow=allow_loopback_port)
    try:
        connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
        connection.request("GET", "/v2/images/x/file")
        response = connection.getresponse()
        assert response.status == 200
        with pytest.raises((http.client.IncompleteRead, ConnectionError)):
            response.read()  # never a clean end of a truncated body
        connection.close()
    finally:
        proxy.stop()
        upstream.stop()


@pytest.mark.parametrize("chunked", [False, True])
def test_early_upstream_answer_during_upload_reaches_the_client(
    tmp_path, allow_loopback_port, chunked
) -> None:
    answer = json.dumps({"error": {"code": 401, "title": "Unauthorized", "message": "no"}})

    def early(conn: socket.socket) -> None:
        read_head(conn)
        conn.recv(65536)
        conn.sendall(
            b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n"
            b"WWW-Authenticate: Keystone uri='x'\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(answer), answer.encode())
        )
        conn.shutdown(socket.SHUT_WR)
        time.sleep(0.5)
        reset(conn)

    upstream = RawServer(early)
    ini = write_ini(tmp_path / "serve.ini", pipeline="request_id proxy")
    proxy = ServeProcess(upstream.url, ini, allow=allow_loopback_port)
    try:
        body = b"x" * (64 * 1024 * 1024)
        connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
        headers = {"Content-Type": "application/octet-stream"}
        pieces = (body[i : i + (1 << 20)] for i in range(0, len(body), 1 << 20))
        try:
            if chunked:
                connection.request("PUT", "/v2/images/x/file", pieces, headers, encode_chunked=True)
            else:
                connection.request("PUT", "/v2/images/x/file", body, headers)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the proxy answered and closed before the client finished
        response = connection.getresponse()
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == "Keystone uri='x'"
        assert json.loads(response.read()) == json.loads(answer)
    finally:
        proxy.stop()
        upstream.stop()


def test_serve_refuses_a_bad_upstream_and_a_missing_rules_file(tmp_path: Path) -> None:
    import subprocess
    import sys

    base = [sys.executable, "-m", "propguard.cli", "serve", "--bind", "127.0.0.1:1"]
    bad = subprocess.run([*base, "--upstream", "ftp://x"], capture_output=True, text=True)
    assert bad.returncode == 2 and "http://" in bad.stderr
    ini = write_ini(
        tmp_path / "serve.ini",
        pipeline="request_id propguard proxy",
        propguard_options={"rules_file": str(tmp_path / "missing.conf")},
    )
    missing = subprocess.run(
        [*base, "--upstream", "http://127.0.0.1:9", "--paste-ini", str(ini)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2, missing.stderr
    assert "PG101" in missing.stderr and "missing.conf" in missing.stderr


def test_upstream_reset_before_any_body_byte_is_502(tmp_path, allow_loopback_port) -> None:
    def headers_only(conn: socket.socket) -> None:
        read_head(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n")
        time.sleep(0.2)
        reset(conn)

    upstream = RawServer(headers_only)
    ini = write_ini(tmp_path / "serve.ini", pipeline="request_id proxy")
    proxy = ServeProcess(upstream.url, ini, allow=allow_loopback_port)
    try:
        status, _, data = request(proxy.url, "GET", "/v2/images/x/file")
        assert_openstack_error(status, data, 502, str(upstream.port), "reset", "Errno")
    finally:
        proxy.stop()
        upstream.stop()


def test_client_gone_mid_upload_aborts_the_upstream_request(tmp_path, allow_loopback_port) -> None:
    """Glance must not see a short body as complete: the upstream connection is dropped."""
    seen: dict[str, int | bool] = {}
    done = threading.Event()

    def counting(conn: socket.socket) -> None:
        head = read_head(conn)
        body_start = head.split(b"\r\n\r\n", 1)[1]
        received, ended_early = len(body_start), False
        conn.settimeout(20)
        while received < 64 * 1024 * 1024:
            chunk = conn.recv(1 << 20)
            if not chunk:
                ended_early = True
                break
            received += len(chunk)
        seen.update(received=received, ended_early=ended_early)
        done.set()

    upstream = RawServer(counting)
    ini = write_ini(tmp_path / "serve.ini", pipeline="request_id proxy")
    proxy = ServeProcess(upstream.url, ini, allow=allow_loopback_port)
    try:
        with socket.create_connection(("127.0.0.1", proxy.port)) as client:
            client.sendall(
                b"PUT /v2/images/x/file HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/octet-stream\r\n"
                b"Content-Length: %d\r\n\r\n" % (64 * 1024 * 1024)
            )
            client.sendall(b"x" * (8 * 1024 * 1024))
        assert done.wait(30), "the upstream request was left open"
        assert seen["ended_early"] is True
        assert seen["received"] < 64 * 1024 * 1024
    finally:
        proxy.stop()
        upstream.stop()
