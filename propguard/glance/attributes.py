"""Glance v2 image attributes: what is core, what is an extra property, what a list key is.

Mirrors Glance 33.0.0 (``glance/api/v2/images.py``, ``glance/db/sqlalchemy``);
``tests/unit/glance/test_attributes.py`` checks the tables against Glance's
own model where Glance is installed.
"""

from __future__ import annotations

import enum
import functools
import re

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
#: Query parameters of ``GET /v2/images`` that Glance consumes (``images.py``
#: ``RequestDeserializer.index``, ``db/sqlalchemy/api.py``): paging and sorting,
#: validated filters, and the columns it compares (``deleted``/``deleted_at``
#: and ``changes-since``, which Glance v2 ignores or answers 500 for, are not).
LIST_PARAMETERS = frozenset(
    {"limit", "marker", "member_status", "tag", "sort", "sort_key", "sort_dir"}
    | {"visibility", "os_hidden", "protected"}
    | {"name", "id", "status", "container_format", "disk_format"}  # also in:/eq:
    | {"created_at", "updated_at"}  # gt:/gte:/lt:/lte:/eq:/neq:
    | {"owner", "checksum", "os_hash_algo", "os_hash_value"}
    | {"size", "virtual_size", "min_disk", "min_ram"}
    | {
        f"{c}_{end}"
        for c in ("size", "virtual_size", "min_disk", "min_ram")
        for end in ("min", "max")
    }
)
#: Without Glance to ask: names of its ``Image`` model class that are no column
#: (with every ``_`` name, a superset of what ``hasattr(models.Image, key)`` sees).
_MODEL_ATTRIBUTES_FALLBACK = frozenset(
    {"delete", "get", "items", "iteritems", "keys", "metadata", "mro", "registry", "save"}
    | {"to_dict", "update", "values"}
)


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
    """Classify as Glance's ``index`` and ``_make_conditions_from_filters`` treat ``key``.

    Only the parameters Glance documents and consumes pass. Glance compares
    any other key that is an attribute of its ``Image`` model class
    (``hasattr(models.Image, key)``: columns, relationships, but also
    ``__tablename__``, ``metadata``, ``keys``...) as that attribute, not as a
    property: constant true or false, or a 500; and any key ending in
    ``_min``/``_max`` as a range on a column. Those are refused (400) rather
    than forwarded: an always-true one would make propguard's exact-name
    post-filter drop every image and scan ``list_scan_limit`` more.
    """
    if key in LIST_PARAMETERS:
        return ListFilter.PARAMETER
    if (
        key.endswith(("_min", "_max"))
        or key == "changes-since"
        or key in IMAGE_COLUMNS
        or key in IMAGE_RELATIONSHIPS
        or is_model_attribute(key)
    ):
        return ListFilter.INVALID
    if key in SCHEMA_ONLY_ATTRIBUTES:
        return ListFilter.NO_PROPERTY
    return ListFilter.PROPERTY


@functools.cache
def _model_attributes() -> frozenset[str] | None:
    """Every name ``hasattr(glance.db.sqlalchemy.models.Image, name)`` is true for, when
    Glance is importable (inside glance-api); it varies with Python and SQLAlchemy."""
    try:
        from glance.db.sqlalchemy import models
    except Exception:  # not installed; or a process (propguard serve) whose config
        # is already parsed, where importing glance.db fails to register its
        # command-line options (ArgsAlreadyParsedError): the fallback list.
        return None
    image = models.Image
    return frozenset(dir(image)) | frozenset(dir(type(image)))


def is_model_attribute(key: str) -> bool:
    """Would Glance's database layer compare ``key`` as an ``Image`` model attribute?"""
    names = _model_attributes()
    if names is None:
        return key.startswith("_") or key in _MODEL_ATTRIBUTES_FALLBACK
    return key in names


#: ``RequestDeserializer._readonly_properties``: a PATCH of one is Glance's 403
#: "Attribute 'x' is read-only.", before any change is applied.
READ_ONLY_ATTRIBUTES = frozenset(
    {
        "created_at",
        "updated_at",
        "status",
        "checksum",
        "size",
        "virtual_size",
        "direct_url",
        "self",
        "file",
        "schema",
        "id",
        "os_hash_algo",
        "os_hash_value",
    }
)
#: Read-only attributes that Glance's *create* stores as extra properties.
#: ``RequestDeserializer.create`` moves only ``_base_properties`` into the
#: image's attributes (where ``ImageFactory._check_readonly`` refuses
#: ``checksum``, ``size``...); every other body key becomes an extra property
#: unless it is ``_disallowed_properties`` or ``ImageFactory._reserved_properties``
#: (both 403). ``os_hash_algo`` and ``os_hash_value`` are none of these: a
#: member's create stores them, past any rule (they are core names), and the
#: image then shows a hash it never had. propguard refuses them on create with
#: the 403 Glance's PATCH gives them. ``tests/unit/glance/test_attributes.py``
#: derives the set from Glance's classes.
CREATE_READ_ONLY = frozenset({"os_hash_algo", "os_hash_value"})
#: ``_reserved_properties`` and ``_reserved_namespaces``: 403 "Attribute 'x' is reserved."
RESERVED_ATTRIBUTES = frozenset({"location", "deleted", "deleted_at"})
RESERVED_NAMESPACES = ("os_glance",)

#: Attributes of the image object Glance's PATCH handlers change (``_do_add`` and
#: ``_do_replace`` call ``setattr`` whenever ``hasattr(image, name)``) that are
#: not image attributes: methods and internals of ``glance.domain.Image`` and of
#: the proxies wrapped around it (notifier, quota, location, db; ``image`` and
#: ``property_rules`` with Glance's own protections on). ``image_id`` makes the
#: save overwrite *another* image; others are silently dropped, or crash Glance
#: (500). On create the same names would be stored as properties that no PATCH
#: can ever change or remove. ``tests/unit/glance/test_attributes.py`` derives
#: the set from Glance's classes.
OBJECT_ATTRIBUTES = frozenset(
    {
        "_abc_impl",
        "_format_image_send",
        "_format_import_properties",
        "_get_chunk_data_iterator",
        "base",
        "context",
        "deactivate",
        "delete",
        "extra_properties",
        "get_data",
        "get_payload",
        "get_super_class",
        "helper",
        "image",
        "image_id",
        "member",
        "notifier",
        "property_rules",
        "reactivate",
        "repo",
        "send_notification",
        "set_data",
    }
)
_DUNDER = re.compile(r"^__\w+__$")


def is_object_attribute(name: str) -> bool:
    """Is ``name`` an attribute of Glance's image objects that is no image attribute?"""
    return name in OBJECT_ATTRIBUTES or _DUNDER.match(name) is not None


def glance_refusal(name: str) -> str | None:
    """Glance's own 403 message for a PATCH path root its deserializer refuses, else None."""
    if name in READ_ONLY_ATTRIBUTES:
        return f"Attribute '{name}' is read-only."
    if name in RESERVED_ATTRIBUTES or name.startswith(RESERVED_NAMESPACES):
        return f"Attribute '{name}' is reserved."
    return None
