"""The upstream leg: one pooled urllib3 client to the Glance endpoint behind the proxy.

Why urllib3 and these settings: it streams an iterator body (``chunked`` or
with the caller's ``Content-Length``) and a response (``preload_content=False``)
without buffering, keeps connections in a bounded pool, and separates the
connect timeout from the read timeout (a per-socket-operation idle timeout,
which is what a 1 GiB transfer needs, not a total). Redirects and retries are
off: the proxy relays what Glance answered, and a request with a body cannot
be replayed. ``decode_content=False``: the bytes go through as Glance sent
them (a compressed body stays compressed, with its ``Content-Encoding``).
"""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)

from propguard.proxy import response_head


class UpstreamError(Exception):
    """The upstream could not be reached or did not answer: ``status`` is 502 or 504."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class UpstreamOptions:
    url: str
    connect_timeout: float = 10.0
    read_timeout: float = 600.0
    pool_maxsize: int = 16
    ca_file: str | None = None
    insecure: bool = False


def classify(exc: BaseException) -> UpstreamError:
    """502 for refused/reset/protocol errors, 504 for timeouts (connect or read)."""
    reason = getattr(exc, "reason", None) or exc
    # urllib3's NewConnectionError (refused, unreachable) subclasses ConnectTimeoutError.
    if isinstance(exc, NewConnectionError) or isinstance(reason, NewConnectionError):
        return UpstreamError(502, f"unreachable: {type(reason).__name__}: {reason}")
    if isinstance(exc, (ConnectTimeoutError, ReadTimeoutError, TimeoutError)) or isinstance(
        reason, (ConnectTimeoutError, ReadTimeoutError, TimeoutError)
    ):
        return UpstreamError(504, f"timeout: {type(reason).__name__}")
    if isinstance(exc, (NewConnectionError, ProtocolError, HTTPError, OSError)):
        return UpstreamError(502, f"unreachable: {type(reason).__name__}: {reason}")
    return UpstreamError(502, f"failed: {type(exc).__name__}")


class Upstream:
    """A connection pool to one upstream origin, and the path prefix of its URL."""

    def __init__(self, options: UpstreamOptions) -> None:
        parts = urlsplit(options.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"upstream must be an http(s)://host[:port][/prefix] URL: {options.url!r}"
            )
        if parts.query or parts.fragment:
            raise ValueError(f"upstream URL must not have a query or fragment: {options.url!r}")
        self.options = options
        self.scheme = parts.scheme
        self.netloc = parts.netloc
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.prefix = parts.path.rstrip("/")
        #: What the upstream calls itself in absolute links (rewritten to the proxy's URL).
        self.base_url = self.origin + self.prefix
        self.timeout = urllib3.Timeout(connect=options.connect_timeout, read=options.read_timeout)
        kwargs: dict[str, Any] = {
            "maxsize": options.pool_maxsize,
            "block": False,
            "timeout": self.timeout,
            "retries": False,
        }
        if parts.scheme == "https":
            if options.insecure:
                kwargs.update(cert_reqs=ssl.CERT_NONE, assert_hostname=False)
            else:
                kwargs.update(cert_reqs=ssl.CERT_REQUIRED, ca_certs=options.ca_file)
        self.pool = urllib3.connectionpool.connection_from_url(options.url, **kwargs)
        # The same connections, reading response heads without email.parser.
        self.pool.ConnectionCls = (
            response_head.HTTPSConnection if parts.scheme == "https" else response_head.Connection
        )

    def open(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: Iterable[bytes] | None,
        chunked: bool,
    ) -> urllib3.BaseHTTPResponse:
        """Send the request (streaming ``body``) and return the response with its body unread.

        Raises :class:`UpstreamError` when no response came. An answer that
        the upstream gave before it read the whole body (401, 409, 413) is
        returned like any other: urllib3 stops sending and reads it.
        """
        try:
            return self.pool.urlopen(
                method,
                self.prefix + target,
                body=body,
                headers=dict(headers),
                chunked=chunked,
                redirect=False,
                retries=False,
                assert_same_host=False,
                preload_content=False,
                decode_content=False,
                release_conn=False,
                timeout=self.timeout,
            )
        except (HTTPError, OSError) as exc:
            raise classify(exc) from exc

    def close(self) -> None:
        self.pool.close()
