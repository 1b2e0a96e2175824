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
