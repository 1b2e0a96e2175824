"""Names and routes taken from Glance's own code, for test_object_model_invariants.

Not a test module: imported as ``object_model_names``. Nothing here is
written out by hand from reading Glance: the names are what Glance 33's
classes answer at import time (so a new attribute of the image proxies, a new
schema property or column shows up in the tests by itself), and the routes
are those of Glance's v2 router, built inside a started Glance.
"""

from __future__ import annotations

import datetime
import inspect
import unicodedata
from dataclasses import dataclass
from typing import Any


def proxy_attributes() -> frozenset[str]:
    """``dir()`` of the image object Glance's PATCH handlers ``setattr`` on.

    The chain ``glance.gateway.Gateway.get_repo`` builds (notifier, quota,
    location, db proxies around ``glance.domain.Image``), with Glance's own
    property protections off as behind propguard; dependencies are ``None``
    (the proxies store them, nothing is called).
    """
    import glance.db
    import glance.domain
    import glance.location
    import glance.notifier
    import glance.quota

    now = datetime.datetime.now(datetime.UTC)
    image: Any = glance.domain.Image(image_id="x", status="queued", created_at=now, updated_at=now)
    image = glance.db.ImageProxy(image, None, None)
    image = glance.location.ImageProxy(image, None, None, None)
    image = glance.quota.ImageProxy(image, None, None, None)
    image = glance.notifier.ImageProxy(image, None, None)
    return frozenset(dir(image))


def deserializer_names() -> dict[str, frozenset[str]]:
    """The name lists of Glance's v2 image request deserializer and image factory."""
    import glance.domain
    from glance.api.v2.images import RequestDeserializer, get_base_properties

    return {
        "read-only": frozenset(RequestDeserializer._readonly_properties),
        "reserved": frozenset(RequestDeserializer._reserved_properties),
        "base": frozenset(RequestDeserializer._base_properties),
        "disallowed": frozenset(RequestDeserializer._disallowed_properties),
        "schema": frozenset(get_base_properties()),
        "factory reserved": frozenset(glance.domain.ImageFactory._reserved_properties),
        "factory read-only": frozenset(glance.domain.ImageFactory._readonly_properties),
    }


def model_names() -> dict[str, frozenset[str]]:
    """Columns, relationships and every attribute of Glance's ``Image`` model class
    (what ``hasattr(models.Image, key)`` in its list filter sees)."""
    import sqlalchemy
    from glance.db.sqlalchemy import models

    image = models.Image
    return {
        "columns": frozenset(c.name for c in image.__table__.columns),
        "relationships": frozenset(sqlalchemy.inspect(image).relationships.keys()),
        "model attributes": frozenset(dir(image)) | frozenset(dir(type(image))),
    }


def object_model_names() -> dict[str, frozenset[str]]:
    """Every source of names above, by source."""
    return {
        "image proxies": proxy_attributes(),
        **deserializer_names(),
        **model_names(),
    }


# -- spellings that differ only by case, accent, width or normalisation ---------

_ACCENTED = {"a": "á", "e": "é", "i": "í", "o": "ö", "u": "ü", "c": "ç", "n": "ñ"}


def _accent(name: str, start: int) -> str | None:
    for i in range(start, len(name)):
        if name[i] in _ACCENTED:
            return name[:i] + _ACCENTED[name[i]] + name[i + 1 :]
    return None


def _fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def variants(name: str) -> list[str]:
    """Spellings of ``name`` a person reads as the same name, which some comparison
    (Python's ``re`` with ``(?i)``, a database collation, Unicode normalisation)
    takes as the same and another does not."""
    out = [name.upper(), name.lower(), name[:1].upper() + name[1:], name.swapcase()]
    middle = name.find("_") + 1
    for accented in (_accent(name, 0), _accent(name, middle)):
        if accented:
            out += [accented, unicodedata.normalize("NFD", accented)]
    out += [_fullwidth(name), _fullwidth(name[:1]) + name[1:]]
    out += [name + " ", " " + name, name + "\t", name + "\u200b"]
    out += [name.replace("ss", "ß"), name.replace("ß", "ss")]
    out += [name.replace("i", "ı", 1), name.replace("I", "İ", 1), name.upper().replace("I", "İ", 1)]
    out += [name.replace("s", "ſ", 1), name.replace("k", "\u212a", 1)]
    return list(dict.fromkeys(v for v in out if v != name))


# -- Glance's v2 router -------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """One entry of Glance's v2 router: path template (under ``/v2``), methods, action."""

    path: str
    methods: tuple[str, ...]
    controller: str
    action: str
    #: The action reads a request body (its deserializer parses one, or it takes ``body``).
    takes_body: bool = False

    def url(self, **values: str) -> str:
        path = self.path
        for key, value in values.items():
            path = path.replace("{" + key + "}", value)
        return "/v2" + path


def v2_routes() -> list[Route]:
    """Every route of Glance's v2 router; needs Glance's configuration parsed (a started Glance)."""
    import routes
    from glance.api.v2 import router

    mapper = router.API(routes.Mapper()).map
    found = []
    for entry in mapper.matchlist:
        if not entry.routepath:  # '' -> '/' redirect
            continue
        resource = entry.defaults.get("controller")
        inner = getattr(resource, "controller", resource)
        action = entry.defaults.get("action")
        handler = getattr(inner, action, None)
        takes_body = hasattr(getattr(resource, "deserializer", None), action) or (
            handler is not None and "body" in inspect.signature(handler).parameters
        )
        if action == "reject":
            methods = ("PUT", "POST", "PATCH", "DELETE", "GET")
            allowed = {m.strip() for m in entry.defaults["allowed_methods"].split(",")}
            methods = tuple(m for m in methods if m not in allowed)[:1]
        else:
            methods = tuple((entry.conditions or {}).get("method") or ("GET",))
        found.append(Route(entry.routepath, methods, type(inner).__name__, action, takes_body))
    return found
