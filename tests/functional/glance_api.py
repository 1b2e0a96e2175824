"""Glance v2 API constants and small request helpers shared by the functional tests.

Not a test module: imported as ``glance_api`` (like ``functional_rules``).
The fixtures that start Glance (``glance_factory``, ``guarded_glance``,
``native_glance``) are in ``conftest.py``; :func:`propguard_filter` is the
one description of "propguard in Glance's pipeline" they and the
module-scoped starters use.
"""

from __future__ import annotations

import json
import os
from typing import Any

import sqlalchemy

from propguard.inprocess import InProcessGlance

#: The JSON-patch media types of Glance's image PATCH: draft 10 ...
JSON_PATCH = "application/openstack-images-v2.1-json-patch"
#: ... and draft 4 (``{"add": "/name", "value": ...}``).
JSON_PATCH_DRAFT4 = "application/openstack-images-v2.0-json-patch"

#: The formats of an image Glance accepts without data.
RAW = {"disk_format": "raw", "container_format": "bare"}
#: The body of a plain image create.
IMAGE = {"name": "cirros", **RAW}

#: The paste filter name and factory of propguard in the pipeline.
PROPGUARD = "propguard"
PROPGUARD_FACTORY = "propguard.middleware:filter_factory"


def propguard_filter(
    rules_file: str | os.PathLike[str], **options: str
) -> tuple[str, str, dict[str, str]]:
    """The ``extra_filters`` entry that puts propguard (``options``) in Glance's pipeline.

    ``reload_on_sighup`` defaults to ``"false"``: tests must not replace the
    process's SIGHUP handler unless they are about it.
    """
    conf = {"rules_file": os.fspath(rules_file), "reload_on_sighup": "false", **options}
    return (PROPGUARD, PROPGUARD_FACTORY, conf)


def propguard_conf(glance: InProcessGlance) -> dict[str, str]:
    """The options propguard was started with in ``glance``'s pipeline."""
    (conf,) = [conf for name, _factory, conf in glance.extra_filters if name == PROPGUARD]
    return conf


def member(glance: InProcessGlance) -> str:
    """A token of a plain member of the default project."""
    return glance.user_token(["member", "reader"])


def admin(glance: InProcessGlance) -> str:
    """A token of an admin of the member's project (so both see and may change the same images)."""
    return glance.user_token(["admin", "member", "reader"], user_id="root")


def patch(
    app: Any,
    glance: InProcessGlance,
    image_id: str,
    ops: list,
    token: str,
    service: str | None = None,
    *,
    media_type: str = JSON_PATCH,
    **kw: Any,
) -> Any:
    """``PATCH /v2/images/{image_id}`` with ``ops`` through a webtest ``app``; ``kw``: webtest's."""
    return app.patch(
        f"/v2/images/{image_id}",
        json.dumps(ops),
        headers={**glance.headers(token, service), "Content-Type": media_type},
        **kw,
    )


def database(glance: InProcessGlance) -> sqlalchemy.Engine:
    """An engine on Glance's database (its sqlite file, or ``database_url``)."""
    return sqlalchemy.create_engine(glance.database_url or f"sqlite:///{glance.db_file}")


def stored_properties(glance: InProcessGlance, image_id: str) -> dict[str, str]:
    """The image's (non-deleted) extra properties as in Glance's database, past every API check."""
    engine = database(glance)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sqlalchemy.text(
                    "SELECT name, value FROM image_properties WHERE image_id = :id AND deleted = 0"
                ),
                {"id": image_id},
            ).fetchall()
    finally:
        engine.dispose()
    return {name: value for name, value in rows}


def image_row(glance: InProcessGlance, image_id: str) -> dict[str, Any]:
    """The image's row of Glance's ``images`` table."""
    engine = database(glance)
    try:
        with engine.connect() as connection:
            row = connection.execute(
                sqlalchemy.text("SELECT * FROM images WHERE id = :id"), {"id": image_id}
            ).one()
    finally:
        engine.dispose()
    return dict(row._mapping)
