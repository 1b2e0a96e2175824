"""Which headers cross the proxy, in each direction (RFC 9110 §7.6.1, RFC 7239).

Hop-by-hop headers belong to one connection: ``Connection`` and every header
it names, plus the fixed list below, are dropped both ways. Client-supplied
``Forwarded``/``X-Forwarded-*`` are dropped and replaced by exactly one hop
of the proxy's own, because oslo.middleware's ``HTTPProxyToWSGI`` (in
Glance's pipeline) trusts the *first* entry: a client could otherwise choose
the address and host Glance believes. A configured trusted proxy in front of
propguard keeps its headers, and this hop is appended.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

#: RFC 9110 §7.6.1 (plus ``Proxy-Connection``, still sent by some clients).
#: ``Expect`` is answered by the WSGI server itself (100-continue) and
#: ``Host`` is the upstream's: neither is forwarded as received.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "proxy-connection",
        "keep-alive",
        "te",
        "transfer-encoding",
        "upgrade",
        "trailer",
        "proxy-authorization",
        "proxy-authenticate",
    }
)
NOT_FORWARDED = HOP_BY_HOP | {"expect", "host", "content-length"}
FORWARDING = frozenset(
    {
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-forwarded-port",
        "x-forwarded-prefix",
        "x-forwarded-server",
    }
)


def connection_named(value: str | None) -> set[str]:
    """The header names a ``Connection`` value lists (lower case)."""
    return {name.strip().lower() for name in (value or "").split(",") if name.strip()}


def environ_headers(environ: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The request's headers as received (``HTTP_*``, ``CONTENT_TYPE``), WSGI-cased."""
    headers: list[tuple[str, str]] = []
    for key, value in environ.items():
        if key.startswith("HTTP_") and value is not None:  # auth_token may leave None
            headers.append((key[5:].replace("_", "-").title(), value))
    if environ.get("CONTENT_TYPE"):
        headers.append(("Content-Type", environ["CONTENT_TYPE"]))
    return headers


def _quoted_for(address: str) -> str:
    """RFC 7239 ``for=`` value: IPv6 addresses are bracketed and quoted."""
    return f'"[{address}]"' if ":" in address else address


def request_headers(
    environ: Mapping[str, Any], trusted_proxies: Iterable[str] = ()
) -> dict[str, str]:
    """Headers to send upstream: end-to-end ones, then this proxy's one forwarding hop."""
    received = environ_headers(environ)
    named = connection_named(environ.get("HTTP_CONNECTION"))
    peer = environ.get("REMOTE_ADDR") or ""
    keep_forwarding = bool(peer) and peer in set(trusted_proxies)
    out: dict[str, str] = {}
    for name, value in received:
        lower = name.lower()
        if lower in NOT_FORWARDED or lower in named:
            continue
        if lower in FORWARDING and not keep_forwarding:
            continue
        out[name] = value
    proto = environ.get("wsgi.url_scheme", "http")
    host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
    hop = f"for={_quoted_for(peer)};proto={proto}" if peer else f"proto={proto}"
    if host:
        hop += f';host="{host}"'
    _append(out, "Forwarded", hop)
    if peer:
        _append(out, "X-Forwarded-For", peer)
    if not (keep_forwarding and "X-Forwarded-Proto" in out):
        out["X-Forwarded-Proto"] = proto
    if host and not (keep_forwarding and "X-Forwarded-Host" in out):
        out["X-Forwarded-Host"] = host
    prefix = environ.get("SCRIPT_NAME") or ""
    if prefix and not (keep_forwarding and "X-Forwarded-Prefix" in out):
        out["X-Forwarded-Prefix"] = prefix
    return out


def _append(headers: dict[str, str], name: str, value: str) -> None:
    headers[name] = f"{headers[name]}, {value}" if headers.get(name) else value


def response_headers(items: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Upstream response headers minus hop-by-hop ones (those named in ``Connection`` too)."""
    items = list(items)
    named: set[str] = set()
    for name, value in items:
        if name.lower() == "connection":
            named |= connection_named(value)
    return [
        (name, value)
        for name, value in items
        if name.lower() not in HOP_BY_HOP and name.lower() not in named
    ]
