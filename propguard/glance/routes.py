"""The Glance v2 routes propguard checks, matched as Glance's own routers match them."""

from __future__ import annotations

import re
from dataclasses import dataclass
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


@dataclass(frozen=True)
class GlanceRoute:
    """One path template of Glance 33's v2 router (``glance/api/v2/router.py``), under ``/v2``.

    ``checked``: the methods propguard's filter checks on it (as the route
    ``name`` of :data:`ROUTES`); every other method of ``methods`` carries no
    image property or task input, for the reason in ``note``. The functional
    test ``test_side_routes.py`` compares this table with Glance's router:
    a new Glance route fails it until it is classified here.
    """

    template: str
    methods: tuple[str, ...]
    checked: tuple[str, ...] = ()
    name: str | None = None
    note: str = ""


_NONE = "answers 204 or a document without image properties"
_META = "metadata definitions: catalogue documents, not image properties"
_CACHE = "image cache management: image ids and sizes only"
_INFO = "discovery: import methods, stores, quota usage"
_DATA = "image data, not metadata"
_MEMBERS = "member documents: image id, member id, status, dates"
GLANCE_V2_ROUTES: tuple[GlanceRoute, ...] = (
    GlanceRoute("", ("GET",), note="redirect to /v2/"),
    *(
        GlanceRoute(f"/schemas/{name}", ("GET",), note="JSON schemas: names, never values")
        for name in (
            "image",
            "images",
            "member",
            "members",
            "task",
            "tasks",
            "metadefs/namespace",
            "metadefs/namespaces",
            "metadefs/resource_type",
            "metadefs/resource_types",
            "metadefs/property",
            "metadefs/properties",
            "metadefs/object",
            "metadefs/objects",
            "metadefs/tag",
            "metadefs/tags",
        )
    ),  # fmt: skip
    GlanceRoute("/metadefs/resource_types", ("GET",), note=_META),
    GlanceRoute("/metadefs/namespaces/{namespace}/resource_types", ("GET", "POST"), note=_META),
    GlanceRoute(
        "/metadefs/namespaces/{namespace}/resource_types/{resource_type}", ("DELETE",), note=_META
    ),
    GlanceRoute("/metadefs/namespaces", ("GET", "POST"), note=_META),
    GlanceRoute("/metadefs/namespaces/{namespace}", ("GET", "PUT", "DELETE"), note=_META),
    GlanceRoute(
        "/metadefs/namespaces/{namespace}/properties", ("GET", "POST", "DELETE"), note=_META
    ),
    GlanceRoute(
        "/metadefs/namespaces/{namespace}/properties/{property_name}",
        ("GET", "PUT", "DELETE"),
        note=_META,
    ),
    GlanceRoute("/metadefs/namespaces/{namespace}/objects", ("GET", "POST", "DELETE"), note=_META),
    GlanceRoute(
        "/metadefs/namespaces/{namespace}/objects/{object_name}",
        ("GET", "PUT", "DELETE"),
        note=_META,
    ),
    GlanceRoute("/metadefs/namespaces/{namespace}/tags", ("GET", "POST", "DELETE"), note=_META),
    GlanceRoute(
        "/metadefs/namespaces/{namespace}/tags/{tag_name}",
        ("GET", "POST", "PUT", "DELETE"),
        note=_META,
    ),
    GlanceRoute("/images", ("GET", "POST"), ("GET", "POST"), "images"),
    GlanceRoute(
        "/images/{image_id}", ("GET", "PATCH", "DELETE"), ("GET", "PATCH"), "image", note=_NONE
    ),
    GlanceRoute("/images/{image_id}/tasks", ("GET",), ("GET",), "image_tasks"),
    GlanceRoute("/images/{image_id}/import", ("POST",), ("POST",), "image_import"),
    GlanceRoute("/stores/{store_id}/{image_id}", ("DELETE",), note=_NONE),
    GlanceRoute("/images/{image_id}/actions/deactivate", ("POST",), note=_NONE),
    GlanceRoute("/images/{image_id}/actions/reactivate", ("POST",), note=_NONE),
    GlanceRoute("/images/{image_id}/file", ("GET", "PUT"), note=_DATA),
    GlanceRoute("/images/{image_id}/stage", ("PUT",), note=_DATA),
    GlanceRoute(
        "/images/{image_id}/locations", ("GET", "POST"), ("GET", "POST"), "image_locations"
    ),
    GlanceRoute("/images/{image_id}/tags/{tag_value}", ("PUT", "DELETE"), note=_NONE),
    GlanceRoute("/images/{image_id}/members", ("GET", "POST"), note=_MEMBERS),
    GlanceRoute("/images/{image_id}/members/{member_id}", ("GET", "PUT", "DELETE"), note=_MEMBERS),
    GlanceRoute("/tasks", ("GET", "POST"), ("POST",), "tasks", note="the list omits task input"),
    GlanceRoute("/tasks/{task_id}", ("GET", "DELETE"), ("GET",), "task", note=_NONE),
    GlanceRoute("/info/import", ("GET",), note=_INFO),
    GlanceRoute("/info/stores", ("GET",), note=_INFO),
    GlanceRoute("/info/usage", ("GET",), note=_INFO),
    GlanceRoute("/info/stores/detail", ("GET",), note=_INFO),
    GlanceRoute("/cache", ("GET", "DELETE"), note=_CACHE),
    GlanceRoute("/cache/{image_id}", ("DELETE", "PUT"), note=_CACHE),
    GlanceRoute("/cache/nodes/{image_id}", ("GET",), note=_CACHE),
    GlanceRoute("/cache/clean", ("POST",), note=_CACHE),
    GlanceRoute("/cache/prune", ("POST",), note=_CACHE),
)


def _template_pattern(template: str) -> re.Pattern[str]:
    """The regex Routes builds for a template: each ``{name}`` is ``[^/]+?``, the whole path."""
    parts = re.split(r"\{[^}]+\}", template)
    return re.compile("^" + "[^/]+?".join(re.escape(p) for p in parts) + "$")


_GLANCE_PATTERNS = tuple(_template_pattern(route.template) for route in GLANCE_V2_ROUTES)


#: Routes under ``/v2`` that propguard serves itself (never Glance's): the relations API.
PROPGUARD_V2_ROUTES: tuple[GlanceRoute, ...] = (
    GlanceRoute(
        "/instances/{instance_uuid}/images",
        ("GET", "HEAD"),
        note="propguard's relations API: answered through the reader's view",
    ),
)
_PROPGUARD_PATTERNS = tuple(_template_pattern(route.template) for route in PROPGUARD_V2_ROUTES)


def glance_v2_route(path: str) -> GlanceRoute | None:
    """The Glance v2 route ``path`` (under ``/v2``, as Glance's router sees it) reaches, if any,
    or the propguard route (the relations API) that answers it."""
    for route, pattern in zip(GLANCE_V2_ROUTES, _GLANCE_PATTERNS, strict=True):
        if pattern.match(path):
            return route
    for route, pattern in zip(PROPGUARD_V2_ROUTES, _PROPGUARD_PATTERNS, strict=True):
        if pattern.match(path):
            return route
    return None


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
