"""The head of ``propguard serve``'s pipeline: every request target in its canonical form, once.

paste: ``paste.filter_factory = propguard.proxy.canonical:filter_factory``,
first in ``[pipeline:api]`` (before the auth layer, so that nothing is
validated for a target that is refused anyway).

What it trusts and changes, as werkzeug's ``ProxyFix`` states it:

* ``PATH_INFO`` becomes :func:`propguard.glance.request.canonical`'s path,
  the client's value kept under ``propguard.orig.PATH_INFO``; the layers after
  it (auth, propguard's filter, the relations layer) match routes on it and
  the proxy forwards exactly it, re-quoted;
* an ``Accept`` naming Glance's version media type becomes
  ``application/json`` (the original under ``propguard.orig.HTTP_ACCEPT``), so
  Glance versions the forwarded path by its URL, as propguard did;
* a target it cannot place (undecodable, ``%2F``, ``..`` above the root, a
  ``/v2`` path that is no route of Glance's router) and a ``Host`` that is
  not an authority are answered 400/404 here, in the OpenStack JSON shape;
* the client's own headers are recorded (``propguard.client_headers``):
  the proxy honours a ``Connection`` header only for them, never for the
  identity headers the layers after this one set.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from propguard.errors import ApiError, error_response
from propguard.glance.request import canonical
from propguard.proxy.headers import CLIENT_HEADERS, valid_host

#: The canonical request (:class:`~propguard.glance.request.CanonicalRequest`).
CANONICAL_KEY = "propguard.canonical"
ORIGINAL_PATH_KEY = "propguard.orig.PATH_INFO"
ORIGINAL_ACCEPT_KEY = "propguard.orig.HTTP_ACCEPT"


class CanonicalTarget:
    """WSGI filter: rewrite the target to its canonical form, or refuse it."""

    def __init__(self, application: Callable) -> None:
        self.application = application

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Any:
        environ[CLIENT_HEADERS] = {k: v for k, v in environ.items() if k.startswith("HTTP_")}
        try:
            if not valid_host(environ.get("HTTP_HOST")):
                raise ApiError(400, "The Host header is not a valid host[:port].")
            request = canonical(environ)
        except ApiError as exc:
            return error_response(exc.status, exc.message)(environ, start_response)
        environ[ORIGINAL_PATH_KEY] = environ.get("PATH_INFO", "")
        environ["PATH_INFO"] = request.path
        if request.accept is not None:
            environ[ORIGINAL_ACCEPT_KEY] = environ.get("HTTP_ACCEPT")
            environ["HTTP_ACCEPT"] = request.accept
        environ[CANONICAL_KEY] = request
        return self.application(environ, start_response)


def filter_factory(global_conf: dict[str, Any] | None = None, **local_conf: Any) -> Callable:
    """paste.deploy entry point; no options."""
    return CanonicalTarget
