"""The relations store on SQLite, PostgreSQL and MariaDB: migrations, start-up, writes, indexes.

Also ``propguard relations reconcile`` against the real Glance's
``GET /v2/images?id=in:...``.
"""

from __future__ import annotations

import pytest
import relations_db
import sqlalchemy as sa
from relations_db import OPEN_RULES, all_relations, captured_steps, replay, start

from propguard.middleware import filter_factory
from propguard.relations import cli
from propguard.relations.events import reconciled_event
from propguard.relations.models import TABLE
from propguard.relations.store import (
    StoreError,
    check_current,
    create_engine,
    current_revision,
    head_revision,
    open_store,
)

pytestmark = pytest.mark.glance

# fixtures
backend = relations_db.backend
fresh_database = relations_db.fresh_database

RULES = "[.*]\ncreate = @\nread = @\nupdate = @\ndelete = @\n"
INSTANCE = "f3e5b7a1-8c2d-4e6f-9a0b-1c2d3e4f5a6b"


def _created(n, **extra):
    return {
        "event": "created",
        "at": f"2026-11-29T10:00:00.{n:06d}",
        "image_id": f"00000000-0000-4000-8000-{n:012d}",
        "instance_uuid": INSTANCE,
        "kind": "backup",
        "backup_type": "daily",
        "origin": "nova",
        "request_id": f"req-{n}",
        "asserted": {"image_type": "backup"},
        "mismatches": [],
        **extra,
    }


def test_upgrade_from_empty_and_current(backend, capsys):
    assert cli.main(["db", "current", "--connection", backend.relations_url]) == 1
    engine = create_engine(backend.relations_url)
    try:
        assert current_revision(engine) is None
        with pytest.raises(StoreError, match=r"is empty .* run `propguard db upgrade"):
            check_current(engine)
    finally:
        engine.dispose()
    assert cli.main(["db", "upgrade", "--connection", backend.relations_url]) == 0
    assert cli.main(["db", "current", "--connection", backend.relations_url]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"{head_revision()} (head)"
    engine = create_engine(backend.relations_url)
    try:
        inspector = sa.inspect(engine)
        indexes = {i["name"]: i["column_names"] for i in inspector.get_indexes(TABLE.name)}
        assert indexes["ix_relations_instance_kind_type_recent"] == [
            "instance_uuid",
            "kind",
            "backup_type",
            "recorded_at",
            "id",
        ]
        assert indexes["ix_relations_instance_recent"] == ["instance_uuid", "recorded_at", "id"]
        unique = {
            u["name"]: u["column_names"] for u in inspector.get_unique_constraints(TABLE.name)
        }
        assert ["image_id"] in list(unique.values()) or "uq_relations_image_id" in indexes
    finally:
        engine.dispose()


def test_filter_start_upgrades_sqlite_and_refuses_a_server_not_current(backend, tmp_path):
    options = {
        "rules_file": str(_rules(tmp_path)),
        "reload_on_sighup": "false",
        "name_collation": "binary",
        "relations_connection": backend.relations_url,
        "relations_outbox": str(tmp_path / "outbox"),
    }
    app = lambda environ, start_response: []  # noqa: E731
    if backend.name == "sqlite":
        layer = filter_factory({}, **options)(app)
        assert current_revision(layer.store.engine) == head_revision()
        layer.recorder.close()
        layer.store.dispose()
        return
    with pytest.raises(StoreError, match="run `propguard db upgrade --connection URL`"):
        filter_factory({}, **options)(app)
    backend.upgrade()
    layer = filter_factory({}, **options)(app)
    assert layer.application.__class__.__name__ == "PropertyProtectionFilter"
    layer.recorder.close()
    layer.store.dispose()


def _rules(tmp_path):
    path = tmp_path / "rules.conf"
    path.write_text(RULES)
    return path


def test_events_are_idempotent_and_ordered(backend):
    backend.upgrade()
    store = backend.store()
    events = [_created(n) for n in (1, 2, 3)]
    store.apply(events)
    store.apply(events)  # replayed: nothing doubles
    store.apply([reconciled_event(events[0]["image_id"])] * 2)
    rows = all_relations(store)
    assert len(rows) == 3
    assert rows[0]["deleted_reason"] == "reconciled"
    newest = store.list_for_instance(INSTANCE, kind="backup", backup_type="daily", limit=10)
    assert [r["image_id"] for r in newest] == [events[2]["image_id"], events[1]["image_id"]]
    assert newest[0]["recorded_at"].microsecond == 3  # sub-second order kept on every backend
    assert store.rotation_ids(INSTANCE, "daily", "nova") == [e["image_id"] for e in events[:0:-1]]
    page = store.list_for_instance(INSTANCE, include_deleted=True, limit=1, after=newest[0])
    assert [r["image_id"] for r in page] == [events[1]["image_id"]]


def test_ties_on_recorded_at_are_broken_by_id(backend):
    backend.upgrade()
    store = backend.store()
    same = "2026-11-29T10:00:00.000000"
    store.apply([{**_created(n), "at": same} for n in (5, 6, 7)])
    rows = store.list_for_instance(INSTANCE, limit=10)
    assert [r["image_id"][-1] for r in rows] == ["7", "6", "5"]
    after = store.list_for_instance(INSTANCE, limit=10, after=rows[0])
    assert [r["image_id"][-1] for r in after] == ["6", "5"]


def test_long_and_unicode_values(backend):
    backend.upgrade()
    store = backend.store()
    store.apply([_created(1, backup_type="ü" * 255, asserted={"name": "snap ☃"})])
    (row,) = all_relations(store)
    assert row["backup_type"] == "ü" * 255 and row["asserted"]["name"] == "snap ☃"


def test_open_store_sqlite_auto_upgrades(tmp_path):
    store = open_store(str(tmp_path / "sub" / "r.sqlite"))
    try:
        assert current_revision(store.engine) == head_revision()
    finally:
        store.dispose()


def test_reconcile_against_glance(guarded_glance, backend):
    glance = start(guarded_glance, backend, OPEN_RULES)
    steps = captured_steps()
    state = replay(glance, steps["A1 createImage: compute API create_image (nova-api)"])
    replay(glance, steps["C shelve: create_image name=<display_name>-shelved (nova-api)"], state)
    snapshot, shelved = state.created
    # the shelved image is deleted behind the filter's back (another API node, a purge)
    engine = relations_db.database_engine(glance)
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.text("UPDATE images SET deleted = :t, status = 'deleted' WHERE id = :id"),
                {"t": True, "id": shelved},
            )
    finally:
        engine.dispose()
    admin = glance.user_token(["admin", "member", "reader"], project_id="admin-project")

    def fetch(ids):
        path = f"/v2/images?id=in:{','.join(ids)}&limit={len(ids)}"
        response = glance.request("GET", path, headers=glance.headers(admin))
        assert response.status_int == 200, response.text
        return {image["id"] for image in response.json["images"]}

    store = backend.store()
    result = cli.reconcile(store, fetch, batch=1)
    assert (result["checked"], result["missing"], result["marked"]) == (2, [shelved], 1)
    assert store.get(shelved)["deleted_reason"] == "reconciled"
    assert store.get(snapshot)["deleted_at"] is None
