"""One GET of a JWKS document, bounded as a whole: one deadline, one size cap, any failure a ``FetchFailed``.

Why not ``urllib.request`` (what this replaced): its timeout is per socket
operation, so a provider dripping a byte every 0.3 s held a fetch (and the
request waiting on an unknown ``kid``, and the filter's start) for as long
as it liked; and ``http.client``'s protocol errors (a malformed status line,
a truncated chunked body, more than 100 headers) are not ``OSError``, so
they escaped the refresher's handling (a 500, or a glance-api that did not
start). Here:

* the whole exchange (DNS, connect, TLS, status, headers, body) runs in a
  worker thread; the caller waits at most ``timeout`` seconds, then shuts the
  socket down (which ends any read under way) and reports a failure;
* the body is read up to :data:`MAX_DOCUMENT_BYTES` (a ``Content-Length``
  above it is refused before reading); JSON is parsed by orjson, which
  refuses nesting deeper than 1024 (``json`` raises ``RecursionError``);
* only status 200 is a document; redirects are failures; TLS is verified
  (``cafile`` or the system's CAs); an ``https_proxy`` from the environment
  is used through a CONNECT tunnel (no proxy authentication), as urllib did;
* every exception is turned into :class:`FetchFailed` with a short reason.
"""

from __future__ import annotations

import contextlib
import http.client
import re
import socket
import ssl
import threading
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import orjson

MAX_DOCUMENT_BYTES = 1024 * 1024
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*(\d{1,9})\b", re.IGNORECASE)

Fetch = Callable[[], tuple[Any, float | None]]


class FetchFailed(Exception):
    """A JWKS fetch that gave no usable document (the message says why, briefly)."""


def check_url(url: str) -> None:
    """Refuse a JWKS URL that is not https (http is allowed on loopback only)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS:
        return
    raise ValueError(f"{url!r}: must be an https URL (http only on loopback)")


def http_fetcher(url: str, timeout: float, cafile: str | None = None) -> Fetch:
    """``fetch() -> (document, max_age)``, raising :class:`FetchFailed`; see the module docstring."""
    check_url(url)
    parts = urlsplit(url)
    https = parts.scheme == "https"
    context = ssl.create_default_context(cafile=cafile) if https else None
    host = parts.hostname or ""
    port = parts.port or (443 if https else 80)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    proxy = _proxy_for(host) if https else None

    def connection() -> http.client.HTTPConnection:
        if not https:
            return http.client.HTTPConnection(host, port, timeout=timeout)
        if proxy is None:
            return http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
        conn = http.client.HTTPSConnection(proxy[0], proxy[1], timeout=timeout, context=context)
        conn.set_tunnel(host, port)
        return conn

    def exchange(conn: http.client.HTTPConnection) -> tuple[Any, float | None]:
        conn.request(
            "GET", target, headers={"Accept": "application/jwk-set+json, application/json"}
        )
        response = conn.getresponse()
        if response.status != 200:
            raise FetchFailed(f"HTTP {response.status}")
        length = response.getheader("Content-Length")
        if length is not None and length.strip().isdigit() and int(length) > MAX_DOCUMENT_BYTES:
            raise FetchFailed(f"document larger than {MAX_DOCUMENT_BYTES} bytes")
        body = response.read(MAX_DOCUMENT_BYTES + 1)
        if len(body) > MAX_DOCUMENT_BYTES:
            raise FetchFailed(f"document larger than {MAX_DOCUMENT_BYTES} bytes")
        match = _MAX_AGE.search(response.getheader("Cache-Control") or "")
        return orjson.loads(body), float(match.group(1)) if match else None

    def fetch() -> tuple[Any, float | None]:
        return bounded(connection, exchange, timeout)

    return fetch


def bounded(
    connection: Callable[[], http.client.HTTPConnection],
    exchange: Callable[[http.client.HTTPConnection], tuple[Any, float | None]],
    timeout: float,
) -> tuple[Any, float | None]:
    """Run ``exchange`` on a new connection in a worker thread, for at most ``timeout`` seconds."""
    outcome: dict[str, Any] = {}
    done = threading.Event()
    conn = connection()

    def work() -> None:
        try:
            outcome["value"] = exchange(conn)
        except BaseException as exc:  # noqa: BLE001 - reported to the caller below
            outcome["error"] = exc
        finally:
            conn.close()
            done.set()

    threading.Thread(target=work, name="propguard-jwks-fetch", daemon=True).start()
    if not done.wait(timeout):
        _abort(conn)
        raise FetchFailed(f"no complete answer within {timeout:g} s")
    error = outcome.get("error")
    if error is None:
        return outcome["value"]
    if isinstance(error, FetchFailed):
        raise error
    raise FetchFailed(describe(error)) from None


def _abort(conn: http.client.HTTPConnection) -> None:
    """End the worker's exchange: a shutdown wakes a read blocked on the socket (TLS too)."""
    sock = conn.sock
    if sock is None:
        return  # still connecting: bounded by the connection's own timeout
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def describe(exc: BaseException) -> str:
    """A short reason for the log (no document content)."""
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(exc, orjson.JSONDecodeError):
        return f"not JSON ({str(exc)[:80]})"
    text = str(exc)
    return f"{type(exc).__name__}: {text[:120]}" if text else type(exc).__name__


def _proxy_for(host: str) -> tuple[str, int] | None:
    """The environment's https proxy for ``host`` (as urllib would pick it), or None."""
    proxy = urllib.request.getproxies().get("https")
    if not proxy or urllib.request.proxy_bypass(host):
        return None
    parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    if not parts.hostname:
        return None
    return parts.hostname, parts.port or 3128
