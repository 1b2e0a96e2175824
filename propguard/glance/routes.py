"""The Glance v2 routes propguard checks, matched as Glance's own routers match them."""

from __future__ import annotations

import re
from typing import Any

import webob

_VERSION = r"/v2(?:\.\d+)?"
_IMAGE_ID = r"(?P<image_id>[^/]+)"
ROUTES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("images", re.compile(rf"^{_VERSION}/images/?$")),
    ("image", re.compile(rf"^{_VERSION}/images/{_IMAGE_ID}/?$")),
    ("image_locations", re.compile(rf"^{_VERSION}/images/{_IMAGE_ID}/locations/?$")),
    ("image_import", re.compile(rf"^{_VERSION}/images/{_IMAGE_ID}/import/?$")),
    ("image_tasks", re.compile(rf"^{_VERSION}/images/{_IMAGE_ID}/tasks/?$")),
    ("tasks", re.compile(rf"^{_VERSION}/tasks/?$")),
    ("task", re.compile(rf"^{_VERSION}/tasks/[^/]+/?$")),
)

#: Glance's interoperable-import method that copies properties from another
#: region's image (``[glance_download_properties] extra_properties``), through
#: the caller's repository but past any filter in front of Glance.
GLANCE_DOWNLOAD = "glance-download"
#: The one task type the tasks API is for; Glance creates the others
#: (``api_image_import``, ``location_import``) itself, after the checks of
#: ``POST /v2/images/{id}/import`` and ``/locations`` that a task skips.
PUBLIC_TASK_TYPE = "import"


_DOMAIN_PREFIX = re.compile(r"^(http|https)://")
_SLASHES = re.compile(r"//+")


def routing_path(path: str) -> str:
    """``PATH_INFO`` as Glance's root ``paste.urlmap`` routes it.

    ``URLMap.normalize_url`` drops a leading ``http(s)://host`` (a request
    target in absolute form, which eventlet's server leaves in PATH_INFO) and
    collapses runs of ``/``: Glance serves ``/v2//images`` and
    ``//v2/images/{id}`` as ``/v2/images`` and ``/v2/images/{id}``, so
    propguard must recognise them too or they would bypass it.
    """
    match = _DOMAIN_PREFIX.search(path)
    if match:
        rest = path[match.end() :]
        path = "/" + rest.split("/", 1)[1] if "/" in rest else ""
    return _SLASHES.sub("/", path)


def match_route(path: str) -> tuple[str, str | None] | None:
    """``(route name, image id)`` for the routes propguard filters, else None."""
    path = routing_path(path)
    for name, pattern in ROUTES:
        match = pattern.match(path)
        if match:
            return name, match.groupdict().get("image_id")
    return None


_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def method_override(environ: dict[str, Any]) -> bool:
    """Could Glance's router see another method than ``REQUEST_METHOD``?

    Glance's ``wsgi.Router`` uses ``routes.RoutesMiddleware`` with
    ``use_method_override``: a ``_method`` query parameter (any method), or a
    ``_method`` field of a POSTed form, replaces the method used to pick the
    route. No Glance client uses it; on the routes propguard checks it is
    refused. Superset of Routes' test: any ``_method`` key in the query (or
    an undecodable query naming it), any form POST (Glance's image and task
    routes never take form bodies).
    """
    query = environ.get("QUERY_STRING") or ""
    if "_method" in query:
        try:
            return "_method" in webob.Request(environ).GET
        except UnicodeDecodeError:
            return True
    if environ.get("REQUEST_METHOD") == "POST":
        content_type = (environ.get("CONTENT_TYPE") or "").lower().split(";", 1)[0].strip()
        return content_type in _FORM_TYPES
    return False
