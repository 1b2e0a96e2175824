"""What propguard knows about the Glance v2 image API: routes, core attributes, JSON-patch.

Everything here mirrors ``glance/api/v2/images.py`` (Glance 33.0.0) closely on
purpose: a JSON pointer that propguard decoded differently from Glance would
let a caller check one name and change another. Paths are therefore decoded
exactly as Glance's ``_decode_json_pointer`` does (``~1``, ``~0`` and the
``strip()`` of each part), and the patch propguard checked is the patch it
re-serialises and forwards.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any

#: Attributes of the image resource that are not "extra properties" (never
#: subject to property protections, except ``locations`` and ``direct_url``
#: when an operator opts in with ``protect_core_attributes``).
CORE_ATTRIBUTES = frozenset(
    {
        "checksum",
        "container_format",
        "created_at",
        "direct_url",
        "disk_format",
        "file",
        "id",
        "locations",
        "min_disk",
        "min_ram",
        "name",
        "os_hash_algo",
        "os_hash_value",
        "os_hidden",
        "owner",
        "protected",
        "schema",
        "self",
        "size",
        "status",
        "stores",
        "tags",
        "updated_at",
        "virtual_size",
        "visibility",
    }
)

#: Core attributes an operator may put under the rules.
PROTECTABLE_CORE_ATTRIBUTES = frozenset({"locations", "direct_url"})

#: Relationships of Glance's Image model: as a list filter Glance compares the
#: relationship itself with a string and answers 500.
IMAGE_RELATIONSHIPS = frozenset({"locations", "members", "properties", "tags"})
#: Image-schema attributes with no column: Glance runs a list filter on one as
#: a filter on a property of that name, which no property may have.
SCHEMA_ONLY_ATTRIBUTES = frozenset({"direct_url", "file", "schema", "self", "stores"})
#: Columns of Glance's ``images`` table (``glance.db.sqlalchemy.models.Image``):
#: a list filter of that name, or ``<column>_min`` / ``<column>_max``, compares
#: the column in SQL, never a property.
IMAGE_COLUMNS = (CORE_ATTRIBUTES - SCHEMA_ONLY_ATTRIBUTES - IMAGE_RELATIONSHIPS) | {
    "deleted",
    "deleted_at",
}

#: Query parameters of ``GET /v2/images`` that are not property filters.
LIST_PARAMETERS = IMAGE_COLUMNS | {
    "limit",
    "marker",
    "member_status",
    "tag",
    "sort",
    "sort_key",
    "sort_dir",
    "changes-since",
}


#: Parameters Glance's ``index`` takes only once (``params.pop``): a second
#: copy would reach the database as a filter on a *property* of that name.
SINGLE_LIST_PARAMETERS = ("limit", "marker", "member_status", "sort")


class ListFilter(enum.Enum):
    """What Glance's database layer makes of a ``GET /v2/images`` query key."""

    PARAMETER = "parameter"  # paging, sorting, a column or a column range
    PROPERTY = "property"  # compared with image properties of that name
    #: A property filter on a name no property may have (an image-schema
    #: attribute that is not a column: ``file``, ``self`` ...). Glance still
    #: runs it, and a case-insensitive collation matches e.g. ``File``.
    NO_PROPERTY = "no_property"
    INVALID = "invalid"  # Glance would answer 500


def classify_list_key(key: str) -> ListFilter:
    """Classify as ``glance.db.sqlalchemy.api._make_conditions_from_filters`` does.

    Any key ending in ``_min``/``_max`` is a range on the column named by the
    rest (``getattr(models.Image, ...)``: a 500 when there is no such column),
    so no property of such a name can be filtered on.
    """
    if key in LIST_PARAMETERS:
        return ListFilter.PARAMETER
    if key in IMAGE_RELATIONSHIPS:
        return ListFilter.INVALID
    if key.endswith(("_min", "_max")):
        return ListFilter.PARAMETER if key[:-4] in IMAGE_COLUMNS else ListFilter.INVALID
    if key in SCHEMA_ONLY_ATTRIBUTES:
        return ListFilter.NO_PROPERTY
    return ListFilter.PROPERTY


PATCH_MEDIA_TYPES = {
    "application/openstack-images-v2.1-json-patch": 10,
    "application/openstack-images-v2.0-json-patch": 4,
}
DRAFT4_PATCH_MEDIA_TYPE = "application/openstack-images-v2.0-json-patch"
PATCH_OPERATIONS = ("add", "remove", "replace")
#: Only ``locations`` takes a two-part path (``/locations/N``); Glance 400s the rest.
_PATH_DEPTH = {"locations": {"add": 2, "remove": 2, "replace": 1}}

_VERSION = r"/v2(?:\.\d+)?"
_IMAGE_ID = r"(?P<image_id>[^/]+)"
ROUTES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("images", re.compile(rf"^{_VERSION}/images/?$")),
    ("image", re.compile(rf"^{_VERSION}/images/{_IMAGE_ID}/?$")),
    ("image_locations", re.compile(rf"^{_VERSION}/images/{_IMAGE_ID}/locations/?$")),
    ("image_import", re.compile(rf"^{_VERSION}/images/{_IMAGE_ID}/import/?$")),
    ("tasks", re.compile(rf"^{_VERSION}/tasks/?$")),
    ("task", re.compile(rf"^{_VERSION}/tasks/[^/]+/?$")),
)

#: Glance's interoperable-import method that copies properties from another
#: region's image (``[glance_download_properties] extra_properties``), through
#: the caller's repository but past any filter in front of Glance.
GLANCE_DOWNLOAD = "glance-download"


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


class PatchError(ValueError):
    """A JSON-patch document Glance would reject with 400."""


@dataclass(frozen=True, slots=True)
class PatchOp:
    op: str
    path: tuple[str, ...]
    value: Any = None
    has_value: bool = False
    #: An ``add`` allowed only as a create (no update right): it must not land
    #: on a property that appeared since propguard read the image.
    absent_only: bool = False

    @property
    def root(self) -> str:
        return self.path[0]

    def to_json(self, draft: int) -> dict[str, Any]:
        pointer = "/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in self.path)
        if draft == 4:
            doc: dict[str, Any] = {self.op: pointer}
        else:
            doc = {"op": self.op, "path": pointer}
        if self.has_value:
            doc["value"] = self.value
        return doc


def decode_pointer(pointer: Any) -> tuple[str, ...]:
    """Decode a JSON pointer exactly as Glance does (validation included)."""
    if not isinstance(pointer, str):
        raise PatchError("Pointer must be a string.")
    if not pointer.startswith("/"):
        raise PatchError('Pointer does not start with "/".')
    if re.search(r"/\s*?/", pointer[1:]):
        raise PatchError('Pointer contains adjacent "/".')
    if len(pointer) > 1 and pointer.endswith("/"):
        raise PatchError('Pointer ends with "/".')
    if pointer[1:].strip() == "/":
        raise PatchError("Pointer does not contain a valid token.")
    if re.search("~[^01]", pointer) or pointer.endswith("~"):
        raise PatchError('Pointer contains "~" not part of a recognized escape sequence.')
    return tuple(
        part.replace("~1", "/").replace("~0", "~").strip()
        for part in pointer.lstrip("/").split("/")
    )


def parse_patch(document: Any, draft: int) -> list[PatchOp]:
    """Validate a JSON-patch body the way Glance's deserializer does."""
    if not isinstance(document, list):
        raise PatchError("Request body must be a JSON array of operation objects.")
    ops: list[PatchOp] = []
    for raw in document:
        if not isinstance(raw, dict):
            raise PatchError("Operations must be JSON objects.")
        if draft == 10:
            op = raw.get("op")
            if op not in PATCH_OPERATIONS:
                raise PatchError("Invalid operation: it must be one of add, remove, replace.")
            if "path" not in raw:
                raise PatchError("Unable to find 'path' in JSON Schema change.")
            pointer = raw["path"]
        else:
            present = [k for k in PATCH_OPERATIONS if k in raw]
            if len(present) != 1:
                raise PatchError(
                    'Operation objects must contain exactly one member named "add", '
                    '"remove", or "replace".'
                )
            op = present[0]
            pointer = raw[op]
        path = decode_pointer(pointer)
        if len(path) != _PATH_DEPTH.get(path[0], {}).get(op, 1):
            raise PatchError("Invalid JSON pointer for this resource.")
        has_value = op != "remove"
        if has_value and "value" not in raw:
            raise PatchError(f'Operation "{op}" requires a member named "value".')
        ops.append(PatchOp(op, path, raw.get("value"), has_value))
    return ops
