"""Glance v2 image attributes: what is core, what is an extra property, what a list key is.

Mirrors Glance 33.0.0 (``glance/api/v2/images.py``, ``glance/db/sqlalchemy``);
``tests/unit/glance/test_attributes.py`` checks the tables against Glance's
own model where Glance is installed.
"""

from __future__ import annotations

import enum

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
