"""The JWT filter against a JWKS provider that misbehaves at the protocol level (issue 20).

The provider is a raw TCP server on loopback (a thread of this test) that
writes exactly the bytes a case needs: a malformed status line, a truncated
chunked body, 101 headers, JSON nested 100 000 deep, 2 MiB, a byte every
0.2 s forever. Each is a failed fetch: at load (the filter still starts,
tokens are 401, never an exception), on an unknown ``kid`` (401 at once, the
known keys kept), in the background. Times are bounded by events: a dripping
connection runs until the client closes it, so the fetch returns only
because its own deadline ended it; the test waits on a thread join far
longer than the deadline (never asserting a wall-clock figure), which the
original per-read timeout never met.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import webob
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from oslo_config import cfg

from propguard.jwt.filter import make_filter
from propguard.jwt.token_cli import mint, thumbprint

ISS = "https://idp.example/realms/openstack"
PRIVATE = rsa.generate_private_key(public_exponent=65537, key_size=2048)
JWK = json.loads(RSAAlgorithm.to_jwk(PRIVATE.public_key()))
JWK.update(kid=thumbprint(JWK), alg="RS256", use="sig")
GOOD = json.dumps({"keys": [JWK]}).encode()


def _ok(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body


def _drip(conn: socket.socket, stop: threading.Event, head: bytes, closed: threading.Event) -> None:
    try:
        conn.sendall(head)
        while not stop.wait(0.2):
            conn.sendall(b" ")
    except OSError:
        closed.set()  # the client hung up: its deadline ended the fetch


class RawProvider:
    """Answers each connection with ``behaviour(conn)``; ``good`` serves the real document."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.behaviour: Callable[[socket.socket], None] = lambda c: c.sendall(_ok(GOOD))
        self.connections = 0
        self.stop = threading.Event()
        self.client_closed = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/jwks"

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                self.behaviour(conn)
            except OSError:
                pass

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


MISBEHAVIOURS: dict[str, Callable[[RawProvider], Callable[[socket.socket], None]]] = {
    "malformed-status-line": lambda p: lambda c: c.sendall(b"HTTQ/9 two hundred\r\n\r\n"),
    "no-status-line": lambda p: lambda c: c.sendall(b"\x00\xff{garbage}\r\n\r\n"),
    "truncated-chunked": lambda p: (
        lambda c: c.sendall(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n400\r\n" + GOOD[:20]
        )
    ),
    "bad-chunk-size": lambda p: (
        lambda c: c.sendall(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"
        )
    ),
    "101-headers": lambda p: (
        lambda c: c.sendall(
            b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(101)) + b"\r\n"
        )
    ),
    "header-line-too-long": lambda p: (
        lambda c: c.sendall(b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 70000 + b"\r\n\r\n")
    ),
    "deeply-nested-json": lambda p: (
        lambda c: c.sendall(_ok(b'{"keys": ' + b"[" * 100000 + b"]" * 100000 + b"}"))
    ),
    "oversized-content-length": lambda p: (
        lambda c: c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2097152\r\n\r\n" + b" " * 65536)
    ),
    "oversized-chunked": lambda p: (
        lambda c: c.sendall(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            + (b"10000\r\n" + b" " * 65536 + b"\r\n") * 33
            + b"0\r\n\r\n"
        )
    ),
    "not-json": lambda p: lambda c: c.sendall(_ok(b"<html>hello</html>")),
    "redirect": lambda p: (
        lambda c: c.sendall(
            b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n"
        )
    ),
    "closed-at-once": lambda p: lambda c: None,
    "slow-drip-headers": lambda p: (
        lambda c: _drip(c, p.stop, b"HTTP/1.1 200 OK\r\nX-Slow: ", p.client_closed)
    ),
    "slow-drip-body": lambda p: (
        lambda c: _drip(
            c, p.stop, b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n", p.client_closed
        )
    ),
}


@pytest.fixture
def provider(allow_loopback_port) -> Iterator[RawProvider]:
    result = RawProvider()
    allow_loopback_port(result.port)
    yield result
    result.close()


@pytest.fixture
def built() -> Iterator[Callable[..., Any]]:
    made: list[Any] = []

    def make(url: str, **options: str) -> Any:
        conf = {
            "iss": ISS,
            "audiences": "glance",
            "algorithms": "RS256",
            "jwks_url": url,
            "jwks_timeout": "1",
            "jwks_refetch_cooldown": "1",
            "jwks_max_stale": "3600",
            **options,
        }
        middleware = make_filter(_app, conf, conf=cfg.ConfigOpts())
        made.append(middleware)
        return middleware

    yield make
    for middleware in made:
        middleware.stop()


def _app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [environ["HTTP_X_IDENTITY_STATUS"].encode()]


def status(middleware: Any, kid: str) -> int:
    token = mint(key=PRIVATE, alg="RS256", issuer=ISS, audience="glance", kid=kid)
    return (
        webob.Request.blank("/", headers={"X-Auth-Token": token})
        .get_response(middleware)
        .status_int
    )


def in_thread(target: Callable[[], Any], limit: float = 20.0) -> Any:
    """Run ``target`` and return its result; fail if it is still running after ``limit`` s."""
    box: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: box.update(value=target()), daemon=True)
    thread.start()
    thread.join(limit)
    assert not thread.is_alive(), f"still running after {limit} s (no overall deadline)"
    return box["value"]


@pytest.mark.parametrize("name", list(MISBEHAVIOURS))
def test_a_misbehaving_provider_at_load_is_not_fatal(provider, built, name):
    """Today: the first fetch raised (glance-api did not start), or dripped for ever."""
    provider.behaviour = MISBEHAVIOURS[name](provider)
    middleware = in_thread(lambda: built(provider.url))
    (remote,) = middleware.config.remotes
    assert remote.failures >= 1 and len(remote.current()) == 0
    assert in_thread(lambda: status(middleware, JWK["kid"])) == 401  # no keys: 401, not 500
    if name.startswith("slow-drip"):
        assert provider.client_closed.wait(10)  # the deadline hung up on the drip


@pytest.mark.parametrize("name", list(MISBEHAVIOURS))
def test_a_misbehaving_refetch_keeps_the_last_good_keys(provider, built, name):
    """Today: every token with an unknown kid was a 500 for these answers."""
    middleware = built(provider.url)
    (remote,) = middleware.config.remotes
    assert len(remote.current()) == 1
    provider.behaviour = MISBEHAVIOURS[name](provider)
    failures = remote.failures
    remote._last_attempt = time.monotonic() - 2  # past the 1 s cooldown, without waiting
    assert in_thread(lambda: status(middleware, "unknown-kid")) == 401
    assert remote.failures == failures + 1  # it fetched, and the fetch failed
    assert status(middleware, JWK["kid"]) == 200  # last good keys kept
    assert in_thread(remote.refresh) is False  # the background path too: no exception
    assert status(middleware, JWK["kid"]) == 200
    provider.behaviour = lambda c: c.sendall(_ok(GOOD))
    assert in_thread(remote.refresh) is True  # and it recovers


def test_one_deadline_bounds_the_whole_fetch(provider, built):
    """A byte every 0.2 s keeps a per-read timeout of 1 s from ever firing: the drip never ends.

    Only a deadline over the whole fetch returns. The refresh runs in a
    thread; it must be back well within 20 s (deadline: 1 s), and the
    provider must see its connection closed by the client.
    """
    middleware = built(provider.url)
    (remote,) = middleware.config.remotes
    provider.behaviour = MISBEHAVIOURS["slow-drip-body"](provider)
    assert in_thread(remote.refresh) is False
    assert provider.client_closed.wait(10)
