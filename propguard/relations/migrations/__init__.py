"""Alembic environment of the relations store (``propguard db upgrade``)."""
