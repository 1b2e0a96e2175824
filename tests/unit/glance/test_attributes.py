"""propguard.glance.attributes against Glance 33's own model (Glance is a test dependency)."""

from __future__ import annotations


def test_list_key_tables_match_glances_image_model():
    """propguard.glance's column/relationship tables are Glance 33's, written out
    so that the filter does not import Glance; checked here where Glance is installed."""
    from glance.db.sqlalchemy import models  # a test dependency: never skipped
    from sqlalchemy import inspect

    from propguard.glance.attributes import CORE_ATTRIBUTES, IMAGE_COLUMNS, IMAGE_RELATIONSHIPS

    mapper = inspect(models.Image)
    assert {c.key for c in mapper.column_attrs} == IMAGE_COLUMNS
    assert {r.key for r in mapper.relationships} == IMAGE_RELATIONSHIPS
    assert IMAGE_RELATIONSHIPS - {"members", "properties"} <= CORE_ATTRIBUTES


def test_create_read_only_is_what_glances_create_would_store_as_extra_properties():
    """Every core name of the image resource that Glance's create neither takes as an
    attribute (``_base_properties``) nor refuses (``_disallowed_properties``,
    ``_reserved_properties``, ``ImageFactory._reserved_properties``) ends up an extra
    property; propguard refuses exactly those on create, as read-only."""
    from glance.api.v2.images import RequestDeserializer
    from glance.domain import ImageFactory

    from propguard.glance.attributes import CORE_ATTRIBUTES, CREATE_READ_ONLY

    refused = (
        set(RequestDeserializer._disallowed_properties)
        | set(RequestDeserializer._reserved_properties)
        | set(ImageFactory._reserved_properties)
    )
    stored_as_property = CORE_ATTRIBUTES - set(RequestDeserializer._base_properties) - refused
    assert stored_as_property == CREATE_READ_ONLY
    # ... and Glance's PATCH calls each of them read-only.
    assert set(RequestDeserializer._readonly_properties) >= CREATE_READ_ONLY
