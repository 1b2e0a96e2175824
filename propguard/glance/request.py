"""The canonical request: the one form of a request target both the route match and Glance see.

Why: in front of Glance (``propguard serve``) the filter sees the client's
raw target, while uWSGI and Glance's ``versionnegotiation`` then resolve it
their own way: ``/v2/./images/{id}``, ``/v2/x/../images/{id}``,
``/v2/%2e/images/{id}`` and ``GET /images/{id}`` with ``Accept:
application/vnd.openstack.images-v2`` all reach the image route. Matched
on the raw spelling, none of them was checked. :func:`canonical` computes
what Glance would route, once; the sidecar rewrites ``PATH_INFO`` to it and
forwards exactly that path (re-quoted), so Glance has nothing left to
resolve and routes what propguard checked. What it cannot place with
certainty is refused (:class:`~propguard.errors.ApiError`), never guessed.

Steps, in Glance's order (``paste.urlmap``, then ``version_negotiation.py``):

1. ``PATH_INFO`` as the server decoded it; the raw target (``RAW_URI`` or
   ``REQUEST_URI``) must not hold an encoded ``/`` (``%2F``: one server splits
   on it, another does not) or NUL; the path must be UTF-8 without control
   characters.
2. An absolute-form target (``http://host/path``) keeps its path; runs of
   ``/`` become one (``URLMap.normalize_url``).
3. Dot segments are removed (RFC 3986 §5.2.4, after decoding, so ``%2e``
   counts); a ``..`` above the root is refused.
4. Version negotiation as Glance 33 does it: ``/versions...`` is the version
   list; an ``Accept`` that starts with ``application/vnd.openstack.images-``
   names the version and the path gets ``/v2`` in front; otherwise the first
   segment is the version. A known v2 version gives ``/v2`` + the rest; an
   unknown one is Glance's version list, whatever the rest (canonical path
   ``/``). ``/healthcheck...`` is Glance's health check (before negotiation).
5. Under ``/v2`` the rest must be a route of Glance's v2 router
   (:data:`~propguard.glance.routes.GLANCE_V2_ROUTES`), else 404.

The accepted version strings are every one Glance 33 accepts with some
configuration (``v2.8``-``v2.13`` need ``enabled_backends``, ``v2.14``,
``v2.16``, ``v2.18`` an image cache): a Glance configured without them
would answer such a path with its version list, propguard forwards it as
``/v2``. Either way the request is checked as the route it reaches.

Inside glance-api (``api.version`` in the environ) Glance's own server and
``versionnegotiation`` already did all this: the path is used as it is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from webob.acceptparse import create_accept_header

from propguard.errors import ApiError
from propguard.glance.routes import glance_v2_route, match_route, routing_path

#: Glance's media-type prefix (``VersionNegotiationFilter.vnd_mime_type``).
VND_MIME_TYPE = "application/vnd.openstack.images-"
#: Every version string Glance 33's ``_get_allowed_versions`` can answer as v2.
V2_VERSIONS = frozenset(["v2", *(f"v2.{minor}" for minor in range(19))])
#: What the sidecar sends instead of a version media type, so that Glance versions by the URL.
FORWARD_ACCEPT = "application/json"
#: Characters kept as they are when the decoded path is quoted again (RFC 3986 pchar + "/").
PATH_SAFE = "/:@!$&'()*+,;=-._~"

_ENCODED_SLASH = re.compile(r"%(?:2f|00)", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SLASHES = re.compile(r"//+")

NOT_FOUND = "The resource could not be found."


@dataclass(frozen=True, slots=True)
class CanonicalRequest:
    """A request target as Glance will route it.

    ``path``: the canonical ``PATH_INFO`` (decoded); ``kind``: ``v2`` (an
    image-API route), ``versions`` (Glance's version list), ``healthcheck``
    or ``glance`` (inside glance-api: not classified here); ``route``:
    propguard's route name and image id (:func:`match_route`), if checked;
    ``accept``: the ``Accept`` to forward instead of the client's, if any.
    """

    method: str
    path: str
    kind: str
    route: tuple[str, str | None] | None
    accept: str | None = None

    def target(self, query: str | None = None) -> str:
        """What the proxy sends: the canonical path, re-quoted, and the query as received."""
        target = quote(self.path.encode("latin-1"), safe=PATH_SAFE)
        return f"{target}?{query}" if query else target


def canonical(environ: Mapping[str, Any], require_route: bool = True) -> CanonicalRequest:
    """The canonical form of ``environ``'s target; :class:`ApiError` (400/404) when there is none.

    ``require_route=False``: a ``/v2`` path on no route of Glance's router is
    kept (Glance answers it 404) instead of refused.
    """
    method = environ.get("REQUEST_METHOD", "GET")
    path = environ.get("PATH_INFO", "")
    if "api.version" in environ:  # inside glance-api: Glance negotiated already
        path = routing_path(path)
        return CanonicalRequest(method, path, "glance", match_route(path))
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or ""
    if _ENCODED_SLASH.search(raw.split("?", 1)[0]):
        raise ApiError(400, "Encoded '/' or NUL in the request path is not supported.")
    path = _decoded_path(path)
    accept = _forward_accept(environ)
    first = path.lstrip("/").split("/", 1)[0]
    if first == "healthcheck":
        return CanonicalRequest(method, path, "healthcheck", None, accept)
    if first == "versions":
        return CanonicalRequest(method, "/versions", "versions", None, accept)
    version, rest = _negotiate(environ, path)
    if version not in V2_VERSIONS:
        return CanonicalRequest(method, "/", "versions", None, accept)
    if require_route and glance_v2_route(rest) is None:
        raise ApiError(404, NOT_FOUND)
    path = "/v2" + rest
    return CanonicalRequest(method, path, "v2", match_route(path), accept)


def _decoded_path(path: str) -> str:
    """Steps 1-3: checked, absolute form and slash runs removed, dot segments resolved."""
    try:
        path.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        raise ApiError(400, "The request path is not valid UTF-8.") from None
    if _CONTROL.search(path):
        raise ApiError(400, "The request path holds control characters.")
    path = routing_path(path)
    if path and not path.startswith("/"):
        raise ApiError(400, "The request target is not a path.")
    return _SLASHES.sub("/", remove_dot_segments(path))


def remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4 on an absolute path, except that ``..`` above the root is refused.

    RFC 3986 drops such a ``..``; servers differ (some answer 400), so the
    target is refused rather than resolved one way here and another there.
    """
    if "." not in path:
        return path
    segments = path.split("/")[1:]
    out: list[str] = []
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == ".":
            if last:
                out.append("")
        elif segment == "..":
            if not out:
                raise ApiError(400, "The request path leaves the root ('..').")
            out.pop()
            if last:
                out.append("")
        else:
            out.append(segment)
    return "/" + "/".join(out)


def _negotiate(environ: Mapping[str, Any], path: str) -> tuple[str | None, str]:
    """(version string, rest of the path) as ``VersionNegotiationFilter.process_request``."""
    header = environ.get("HTTP_ACCEPT") or ""
    # WebOb's parse (as Glance's str(req.accept)) only when it can start with the type.
    accept = str(create_accept_header(header)) if VND_MIME_TYPE in header else ""
    if accept.startswith(VND_MIME_TYPE):
        return accept[len(VND_MIME_TYPE) :], path
    if not path:
        return None, path
    stripped = path.lstrip("/")
    version, slash, rest = stripped.partition("/")
    return version, slash + rest


def _forward_accept(environ: Mapping[str, Any]) -> str | None:
    """``application/json`` in place of an ``Accept`` naming Glance's version media type.

    Glance must version the canonical path by its URL, whatever its WebOb
    makes of the client's header; any mention of the media type goes.
    """
    accept = environ.get("HTTP_ACCEPT") or ""
    return FORWARD_ACCEPT if "vnd.openstack.images" in accept.lower() else None


def is_canonical(environ: Mapping[str, Any]) -> bool:
    """Is ``environ``'s target already its own canonical form (what the proxy may forward)?"""
    try:
        request = canonical(environ)
    except ApiError:
        return False
    return request.accept is None and request.path == environ.get("PATH_INFO", "")
