"""``propguard serve`` against slow and stalled clients (loopback, bounded counts and times).

64 clients trickling their request head or a small body, against a proxy
with 4 threads: other requests are still served, and the tricklers get a
408 after ``--head-timeout``; a client that stalls mid-upload frees its
thread after ``--idle-timeout``. On gunicorn's plain ``gthread`` worker each
trickler held a thread with no deadline.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from proxy_processes import RawServer, ServeProcess, read_head, write_ini

SLOW_CLIENTS = 64


@pytest.fixture
def upstream() -> Iterator[RawServer]:
    def answer(conn: socket.socket) -> None:
        read_head(conn)
        while conn.recv(65536):  # the whole body, until the proxy gives up
            pass
        conn.sendall(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")

    server = RawServer(answer)
    yield server
    server.stop()


def serve(tmp_path: Path, upstream: RawServer, allow, *extra: str) -> ServeProcess:
    allow(upstream.port)
    ini = write_ini(tmp_path / "serve.ini", pipeline="request_id proxy")
    return ServeProcess(
        upstream.url, ini, threads=4, extra_args=extra, allow=allow, log=tmp_path / "serve.log"
    )


class Tricklers:
    """``count`` connections, each sending ``head`` then one more piece every ``interval``."""

    def __init__(self, port: int, head: bytes, piece: bytes, count: int, interval: float) -> None:
        self.socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
        for sock in self.socks:
            sock.sendall(head)
        self.piece, self.interval = piece, interval
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(self.interval):
            for sock in self.socks:
                with contextlib.suppress(OSError):
                    sock.sendall(self.piece)

    def answers(self, within: float) -> list[bytes]:
        """What each connection received until it was closed, or ``within`` seconds passed."""
        deadline = time.monotonic() + within
        received = []
        for sock in self.socks:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            data = b""
            with contextlib.suppress(OSError):
                while chunk := sock.recv(4096):
                    data += chunk
            received.append(data)
        return received

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        for sock in self.socks:
            sock.close()


def quick_request(port: int, timeout: float = 3.0) -> bytes:
    """A normal request; raises if no whole answer head within ``timeout`` seconds."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(b"GET /healthcheck HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return read_head(sock)


SLOW_HEAD = (b"GET /v2/images HTTP/1.1\r\nHost: x\r\n", b"X-Slow: 1\r\n")
SLOW_BODY = (
    b"POST /v2/images HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: 1000\r\n\r\n{",
    b" ",
)


@pytest.mark.parametrize("slow", [SLOW_HEAD, SLOW_BODY], ids=["head", "body"])
def test_tricklers_do_not_take_the_threads(tmp_path, upstream, allow_loopback_port, slow) -> None:
    """Default options: 64 tricklers, then normal requests are answered at once."""
    proxy = serve(tmp_path, upstream, allow_loopback_port)
    tricklers = Tricklers(proxy.port, *slow, count=SLOW_CLIENTS, interval=0.5)
    try:
        time.sleep(1)  # every trickler has started; gthread gave each a thread
        for _ in range(3):
            assert quick_request(proxy.port).startswith(b"HTTP/1.1 200")
    finally:
        tricklers.close()
        proxy.stop()


def test_tricklers_get_408_after_the_head_timeout(tmp_path, upstream, allow_loopback_port) -> None:
    proxy = serve(tmp_path, upstream, allow_loopback_port, "--head-timeout", "2")
    tricklers = Tricklers(proxy.port, *SLOW_HEAD, count=SLOW_CLIENTS, interval=0.5)
    try:
        started = time.monotonic()
        answers = tricklers.answers(within=8)
        assert time.monotonic() - started < 8
        assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers), {a[:40] for a in answers}
        assert b'"code": 408' in answers[0]
    finally:
        tricklers.close()
        proxy.stop()


def test_a_stalled_upload_frees_its_thread(tmp_path, upstream, allow_loopback_port) -> None:
    """Past the pre-read, a body streams in a thread; a stall is cut after --idle-timeout."""
    proxy = serve(tmp_path, upstream, allow_loopback_port, "--idle-timeout", "2")
    stalled = []
    try:
        for _ in range(4):  # as many as the proxy has threads
            sock = socket.create_connection(("127.0.0.1", proxy.port))
            sock.sendall(
                b"PUT /v2/images/x/file HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/octet-stream\r\nContent-Length: 104857600\r\n\r\n"
            )
            sock.sendall(b"\0" * (512 * 1024))
            stalled.append(sock)
        started = time.monotonic()
        answers = []
        for sock in stalled:
            sock.settimeout(8)
            with contextlib.suppress(OSError):
                answers.append(read_head(sock))
        # The proxy gave up on each body after --idle-timeout (its app answers 400).
        assert time.monotonic() - started < 8
        assert all(a.startswith(b"HTTP/1.1 400 ") for a in answers) and len(answers) == 4
        assert quick_request(proxy.port, timeout=5).startswith(b"HTTP/1.1 200")
    finally:
        for sock in stalled:
            sock.close()
        proxy.stop()


def test_a_gzip_bomb_is_refused_before_the_proxy_grows_past_the_limit(
    tmp_path, allow_loopback_port
) -> None:
    """A 512 MiB gzip image document (512 KiB on the wire) at a 32 MiB limit: 502, and
    the worker's RSS grows by less than the limit and a quarter (one inflate call to
    the limit grew it by about twice the limit)."""
    import zlib

    from proxy_processes import RssSampler
    from test_proxy_http import RULES

    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [compressor.compress(b'{"id": "x", "name": "')]
    parts += [compressor.compress(b"x" * 1024 * 1024) for _ in range(512)]
    parts.append(compressor.compress(b'"}') + compressor.flush())
    bomb = b"".join(parts)

    def gzip_answer(conn: socket.socket) -> None:
        read_head(conn)
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(bomb), bomb)
        )

    upstream = RawServer(gzip_answer)
    allow_loopback_port(upstream.port)
    rules = tmp_path / "rules.conf"
    rules.write_text(RULES)
    limit = 32 * 1024 * 1024
    ini = write_ini(
        tmp_path / "serve.ini",
        pipeline="request_id propguard proxy",
        propguard_options={
            "rules_file": str(rules),
            "trust_identity_headers": "true",
            "reload_on_sighup": "false",
            "max_response_body_size": str(limit),
        },
    )
    proxy = ServeProcess(upstream.url, ini, threads=2, allow=allow_loopback_port)
    try:
        (worker,) = proxy.worker_pids()
        quick_request(proxy.port)  # warm-up
        sampler = RssSampler(worker)
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=30) as sock:
            sock.sendall(
                b"GET /v2/images/0b5a6c4e-0000-4000-8000-000000000001 HTTP/1.1\r\nHost: x\r\n"
                b"X-Identity-Status: Confirmed\r\nX-Roles: member\r\nX-User-Id: u\r\n"
                b"X-Project-Id: p\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n"
            )
            head = read_head(sock)
        growth = sampler.growth()
        assert head.startswith(b"HTTP/1.1 502 "), head[:80]
        print(f"RSS growth {growth / 1024 / 1024:.1f} MiB at a {limit // 1024 // 1024} MiB limit")
        assert growth < limit * 1.25, growth / 1024 / 1024
    finally:
        proxy.stop()
        upstream.stop()
