"""Which headers cross the proxy, in each direction (RFC 9110 §7.6.1, RFC 7239).

Hop-by-hop headers belong to one connection: ``Connection`` and every header
it names, plus the fixed list below, are dropped both ways. On the way up a
``Connection`` header names only the *client's own* headers: what the layers
of the pipeline set (the identity and service-identity headers of
``auth_token`` or the JWT filter, the request id, the ``Accept`` the
canonical filter wrote) always reaches Glance, or a client could strip
``X-Project-Id`` and have Glance create an image with no owner.

Client-supplied ``Forwarded``/``X-Forwarded-*`` (and the scheme aliases
``X-Forwarded-Ssl``, ``X-Forwarded-Protocol``, ``X-Forwarded-Scheme``,
``X-Url-Scheme``, ``Front-End-Https``) are dropped and replaced by exactly one
hop of the proxy's own, because oslo.middleware's ``HTTPProxyToWSGI`` (in
Glance's pipeline) trusts the *first* entry: a client could otherwise choose
the address and host Glance believes. (oslo.middleware does not read the
aliases; other frameworks do, so they go too.) A configured trusted proxy in
front of propguard keeps its headers, and this hop is appended.

The proxy's own hop: ``Forwarded: for=...;proto=...`` (RFC 7239 tokens, a
``quoted-string`` where a value is no token, e.g. an IPv6 ``for``), and
``X-Forwarded-For/-Proto/-Host``. The host goes only in ``X-Forwarded-Host``,
from a ``Host`` checked to be a ``host[:port]`` (:func:`valid_host`, else
400): ``HTTPProxyToWSGI`` splits ``Forwarded`` on ``,`` and ``;`` and does
not unquote, so a quoted ``host="h:p"`` (the only RFC 7239 spelling of a
host with a port) would become Glance's ``HTTP_HOST`` with its quotes, and
with ``Forwarded`` present it never reads ``X-Forwarded-Host``. Glance then
names its own address in the version document, and :mod:`links` points
those links at the proxy.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

#: environ key: the client's ``HTTP_*`` headers as received (set by the canonical filter).
CLIENT_HEADERS = "propguard.client_headers"

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
        "x-forwarded-ssl",
        "x-forwarded-protocol",
        "x-forwarded-scheme",
        "x-url-scheme",
        "front-end-https",
    }
)
#: Headers a ``Connection`` header can never remove: identity and service
#: identity (keystonemiddleware's and the JWT filter's), tokens, request id.
PIPELINE_HEADERS = frozenset(
    {
        "x-identity-status",
        "x-service-identity-status",
        "x-roles",
        "x-role",
        "x-is-admin-project",
        "x-auth-token",
        "x-service-token",
        "x-openstack-request-id",
        "x-system-scope",
        "openstack-system-scope",
    }
)
PIPELINE_PREFIXES = ("x-user", "x-project", "x-tenant", "x-domain", "x-service-", "x-trust")

_HOST = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9._-]{0,252})|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?$"
)
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def valid_host(value: str | None) -> bool:
    """Is ``value`` a ``Host`` this proxy repeats: a DNS name, IPv4 or ``[IPv6]``, and a port?

    Stricter than RFC 3986's reg-name (which allows ``;``, ``=``, ``,``):
    those would split forwarding headers where a naive parser reads them.
    None (no ``Host``: HTTP/1.0) is valid, the server's name is used.
    """
    return value is None or bool(_HOST.match(value))


def forwarded_value(value: str) -> str:
    """RFC 7239 value: a token as it is, anything else as a ``quoted-string``."""
    if _TOKEN.match(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _pipeline_header(lower: str) -> bool:
    return lower in PIPELINE_HEADERS or lower.startswith(PIPELINE_PREFIXES)


def connection_named(value: str | None) -> set[str]:
    """The header names a ``Connection`` value lists (lower case)."""
    return {name.strip().lower() for name in (value or "").split(",") if name.strip()}


def _quoted_for(address: str) -> str:
    """RFC 7239 ``for=`` value: IPv6 addresses are bracketed and quoted."""
    return forwarded_value(f"[{address}]" if ":" in address else address)


class InvalidHost(ValueError):
    """The request's ``Host`` is not a ``host[:port]``: answered 400."""


def _droppable(key: str, lower: str, value: str, client: Mapping[str, str] | None) -> bool:
    """May a ``Connection`` header of the client remove this header?

    Only a header the client itself sent, unchanged: never one a layer of
    the pipeline set or replaced, never an identity header.
    """
    if _pipeline_header(lower):
        return False
    return client is None or client.get(key) == value


def request_headers(
    environ: Mapping[str, Any], trusted_proxies: Iterable[str] = ()
) -> dict[str, str]:
    """Headers to send upstream: end-to-end ones, then this proxy's one forwarding hop."""
    host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
    if host and not valid_host(host):
        raise InvalidHost(host)
    named = connection_named(environ.get("HTTP_CONNECTION"))
    client = environ.get(CLIENT_HEADERS)
    peer = environ.get("REMOTE_ADDR") or ""
    keep_forwarding = bool(peer) and peer in set(trusted_proxies)
    out: dict[str, str] = {}
    for key, value in environ.items():
        if key.startswith("HTTP_") and value is not None:  # auth_token may leave None
            name = key[5:].replace("_", "-").title()
            lower = name.lower()
            if lower in NOT_FORWARDED:
                continue
            if lower in named and _droppable(key, lower, value, client):
                continue
            if lower in FORWARDING and not keep_forwarding:
                continue
            out[name] = value
    if environ.get("CONTENT_TYPE"):
        out["Content-Type"] = environ["CONTENT_TYPE"]
    proto = environ.get("wsgi.url_scheme", "http")
    hop = f"for={_quoted_for(peer)};proto={forwarded_value(proto)}"
    _append(out, "Forwarded", hop if peer else f"proto={forwarded_value(proto)}")
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
