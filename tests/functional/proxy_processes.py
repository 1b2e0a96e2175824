"""``propguard serve`` as a subprocess (gunicorn gthread), and small raw upstreams.

Not a test module: imported by ``test_proxy_*.py`` and ``benchmarks/bench_proxy.py``.
"""

from __future__ import annotations

import configparser
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from propguard.proxy.server import shipped_ini


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_ini(
    path: Path,
    *,
    pipeline: str,
    propguard_options: Mapping[str, str] | None = None,
    proxy_options: Mapping[str, str] | None = None,
    base: Path | None = None,
) -> Path:
    """The shipped ``serve.ini`` (or ``base``) with another ``[pipeline:api]`` and more options.

    ``name_collation`` is ``binary`` unless given: ``propguard serve`` cannot
    read Glance's database and refuses ``auto`` (the upstreams here are
    raw servers or a Glance on sqlite).
    """
    propguard_options = {"name_collation": "binary", **(propguard_options or {})}
    parser = configparser.RawConfigParser()
    parser.optionxform = str  # type: ignore[assignment]
    parser.read(base or shipped_ini())
    parser.set("pipeline:api", "pipeline", pipeline)
    parser.set("app:healthcheck", "disable_by_file_path", str(path.parent / "hc-disable"))
    for key, value in propguard_options.items():
        parser.set("filter:propguard", key, str(value).replace("%", "%%"))
    for key, value in (proxy_options or {}).items():
        parser.set("app:proxy", key, str(value).replace("%", "%%"))
    with open(path, "w") as handle:
        parser.write(handle)
    return path


def trusted_identity_ini(path: Path, rules: Path, base: Path | None = None) -> Path:
    """``canonical request_id propguard proxy``: the caller's identity headers trusted
    (no ``auth_token`` in the proxy; the Glance behind it, if any, validates tokens).
    ``base``: another checkout's ``serve.ini`` (the benchmark's baseline)."""
    return write_ini(
        path,
        base=base,
        pipeline="canonical request_id propguard proxy",
        propguard_options={
            "rules_file": str(rules),
            "trust_identity_headers": "true",
            "reload_on_sighup": "false",
        },
    )


class RssSampler:
    """Peak resident memory of a process, sampled every 20 ms in a thread."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.process = psutil.Process(pid)
        self.baseline = self.process.memory_info().rss
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def growth(self) -> int:
        """Bytes above the baseline at the peak; stops sampling."""
        self._stop.set()
        self._thread.join()
        return self.peak - self.baseline


class ServeProcess:
    """``python -m propguard.cli serve`` on a free loopback port; :meth:`stop` ends it."""

    def __init__(
        self,
        upstream: str,
        paste_ini: Path | None,
        *,
        workers: int = 1,
        threads: int = 8,
        extra_args: tuple[str, ...] = (),
        env: Mapping[str, str] | None = None,
        log: Path | None = None,
        allow: Callable[[int], None] | None = None,
    ) -> None:
        self.port = free_port()
        if allow is not None:  # no_network: let the test reach its own proxy
            allow(self.port)
        self.url = f"http://127.0.0.1:{self.port}"
        command = [
            sys.executable, "-m", "propguard.cli", "serve", "--upstream", upstream,
            "--bind", f"127.0.0.1:{self.port}", "--workers", str(workers),
            "--threads", str(threads), *extra_args,
        ]  # fmt: skip
        if paste_ini is not None:
            command += ["--paste-ini", str(paste_ini)]
        self.log = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            command,
            stdout=self.log,
            stderr=self.log,
            env={**os.environ, **(env or {})},
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"propguard serve exited with {self.process.returncode}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock,
            ):
                sock.sendall(b"GET /healthcheck HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return
            time.sleep(0.1)
        raise RuntimeError("propguard serve did not start")

    def worker_pids(self) -> list[int]:
        import psutil

        return [child.pid for child in psutil.Process(self.process.pid).children()]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.log is not subprocess.DEVNULL:
            self.log.close()


class RawServer:
    """A TCP server on loopback whose every connection is handled by ``handler(sock)``."""

    def __init__(self, handler: Callable[[socket.socket], None]) -> None:
        self.handler = handler
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn:
            self.handler(conn)

    def stop(self) -> None:
        self._stopped = True
        self.sock.close()


def read_head(conn: socket.socket) -> bytes:
    """Read a request's head (up to the blank line)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def reset(conn: socket.socket) -> None:
    """Close with RST (SO_LINGER 0), as a crashed upstream does."""
    import struct

    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


@contextlib.contextmanager
def serving(*servers: object) -> Iterator[None]:
    try:
        yield
    finally:
        for server in servers:
            server.stop()  # type: ignore[attr-defined]
