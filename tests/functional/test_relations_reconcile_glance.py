"""``propguard relations reconcile`` over HTTP against a real Glance, on every store database.

It asks Glance the way the command does (``GlanceImages``: ``visibility=all``,
``member_status=all``, then ``os_hidden=true``), so an image that exists but is
hidden from lists is never marked deleted; and a token that cannot be shown
every project's images is refused before anything is marked.
"""

from __future__ import annotations

import pytest
import relations_db
import sqlalchemy as sa
from glance_api import admin, patch
from proxy_harness import ServerThread
from relations_db import OPEN_RULES, captured_steps, replay, start

from propguard.relations import cli

pytestmark = pytest.mark.glance

backend = relations_db.backend
fresh_database = relations_db.fresh_database


def _delete_behind_the_filter(glance, image_id: str) -> None:
    """Another API node, or a purge: the image is gone and the filter never saw it."""
    engine = relations_db.database_engine(glance)
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.text("UPDATE images SET deleted = :t, status = 'deleted' WHERE id = :id"),
                {"t": True, "id": image_id},
            )
    finally:
        engine.dispose()


def test_reconcile_over_http_keeps_hidden_images_and_refuses_a_narrow_token(
    guarded_glance, backend, allow_loopback_port
):
    glance = start(guarded_glance, backend, OPEN_RULES)
    steps = captured_steps()
    state = replay(glance, steps["A1 createImage: compute API create_image (nova-api)"])
    replay(glance, steps["C shelve: create_image name=<display_name>-shelved (nova-api)"], state)
    snapshot, shelved = state.created
    app = glance.webtest_app()
    hide = [{"op": "replace", "path": "/os_hidden", "value": True}]
    patch(app, glance, snapshot, hide, admin(glance), status=200)  # out of every list
    _delete_behind_the_filter(glance, shelved)
    allow_loopback_port(0)  # cheroot resolves 127.0.0.1:0 to bind a free port
    server = ServerThread(glance.app, allow=allow_loopback_port)
    store = backend.store()
    try:
        member = glance.user_token(["member", "reader"])
        narrow = cli.glance_fetcher(server.url, member)
        result = cli.reconcile(store, narrow, sees_everything=narrow.sees_every_project)
        assert result["refused"] and result["marked"] == 0
        assert "private images of" in result["why"]
        assert store.get(shelved)["deleted_at"] is None  # nothing marked

        root = glance.user_token(["admin", "member", "reader"], project_id="admin-project")
        wide = cli.glance_fetcher(server.url, root)
        # every image here belongs to one project: the documented --force case
        result = cli.reconcile(store, wide, force=True, sees_everything=wide.sees_every_project)
        assert (result["checked"], result["missing"], result["marked"]) == (2, [shelved], 1)
        assert store.get(snapshot)["deleted_at"] is None  # hidden, not gone
        assert store.get(shelved)["deleted_reason"] == "reconciled"
    finally:
        store.dispose()
        server.stop()
