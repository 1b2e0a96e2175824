"""Alembic env for the relations store: always online, on the connection it is given.

:func:`propguard.relations.store.upgrade` passes an open connection in
``config.attributes["connection"]``; nothing here reads a URL or an ini file,
so the migrations run the same from the CLI, the filter and the tests.
"""

from __future__ import annotations

from alembic import context

from propguard.relations.models import Base
from propguard.relations.store import VERSION_TABLE

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
