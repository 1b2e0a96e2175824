"""Links that name the upstream are rewritten to name the proxy.

Glance builds absolute URLs from its own request (version discovery
``href``s) or from ``public_endpoint``; ``Location`` may be absolute too. A
client that follows them must come back through the proxy, never reach
Glance directly (it may not be reachable, and would skip the rules). Only
link-valued members are rewritten (``href``, ``next``, ``first``,
``schema``, ``self``, ``file``), never image data such as ``locations``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

LINK_KEYS = frozenset({"href", "next", "first", "schema", "self", "file", "location"})


def proxy_base_url(environ: Mapping[str, Any]) -> str:
    """The proxy's own URL as the client addressed it (scheme, host, mount point)."""
    scheme = environ.get("wsgi.url_scheme", "http")
    host = environ.get("HTTP_HOST")
    if not host:
        host = environ.get("SERVER_NAME", "localhost")
        port = str(environ.get("SERVER_PORT", ""))
        if port and port != {"http": "80", "https": "443"}.get(scheme):
            host = f"{host}:{port}"
    return f"{scheme}://{host}{environ.get('SCRIPT_NAME', '')}".rstrip("/")


def rewrite_url(value: str, upstream_bases: tuple[str, ...], proxy_base: str) -> str:
    """``value`` with a leading upstream base URL replaced by ``proxy_base``."""
    for base in upstream_bases:
        if value == base or value.startswith(base + "/") or value.startswith(base + "?"):
            return proxy_base + value[len(base) :]
    return value


def _rewrite(node: Any, bases: tuple[str, ...], proxy_base: str) -> tuple[Any, bool]:
    changed = False
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, str) and key.lower() in LINK_KEYS:
                new = rewrite_url(value, bases, proxy_base)
                if new != value:
                    node[key] = new
                    changed = True
            elif isinstance(value, (dict, list)):
                node[key], sub = _rewrite(value, bases, proxy_base)
                changed = changed or sub
    elif isinstance(node, list):
        for index, value in enumerate(node):
            if isinstance(value, (dict, list)):
                node[index], sub = _rewrite(value, bases, proxy_base)
                changed = changed or sub
    return node, changed


def rewrite_json(body: bytes, upstream_bases: tuple[str, ...], proxy_base: str) -> bytes | None:
    """The JSON ``body`` with upstream links rewritten, or None when nothing names the upstream."""
    if not any(base.encode() in body for base in upstream_bases):
        return None
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    document, changed = _rewrite(document, upstream_bases, proxy_base)
    return orjson.dumps(document) if changed else None
