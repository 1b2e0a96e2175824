"""Inputs, timeouts and exact comparison of the relations store on PostgreSQL and MariaDB.

Behind a real in-process Glance 33 (auth_token, propguard, relations): a NUL in a
filter is a 400 (PostgreSQL: a DataError 500 before); with the relations table
locked by another session, the API and Nova's rotation query give up after
``relations_timeout`` with a 503 (before: they waited for the lock); ``Daily``,
``DAILY`` and ``daily `` are not ``daily`` (MariaDB matched them, in the listing
and in rotation); migration 0002 up and down on an existing store keeps its rows.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest
import relations_db
import sqlalchemy as sa
from relations_db import settle, start

from propguard.relations.store import create_engine, current_revision, upgrade

fresh_database = relations_db.fresh_database

pytestmark = pytest.mark.glance

INSTANCE = "44444444-4444-4444-8444-444444444444"
TABLE = "instance_image_relations"


@pytest.fixture(params=["postgresql", "mariadb"])
def server_backend(request, tmp_path, fresh_database):
    result = relations_db.Backend(request.param, None, fresh_database(request.param), tmp_path)
    yield result
    result.close()


def _cloud(glance):
    alice = glance.user_token(["member", "reader"], user_id="alice", project_id="p1")
    nova = glance.service_token()
    return alice, nova


def _backup(glance, alice, nova, backup_type, rid=None):
    body = {
        "name": f"b-{backup_type}",
        "instance_uuid": INSTANCE,
        "user_id": "alice",
        "image_type": "backup",
        "backup_type": backup_type,
        "disk_format": "raw",
        "container_format": "bare",
    }
    headers = {
        **glance.headers(alice, nova),
        "X-OpenStack-Request-ID": rid or f"req-{uuid.uuid4()}",
    }
    response = glance.request("POST", "/v2/images", headers=headers, json=body)
    assert response.status_int == 201, response.text
    return response.json["id"]


def _rotation(glance, alice, nova, backup_type):
    query = (
        f"image_type=backup&backup_type={backup_type}&instance_uuid={INSTANCE}"
        "&limit=200&sort_key=created_at&sort_dir=desc"
    )
    headers = {**glance.headers(alice, nova), "X-OpenStack-Request-ID": f"req-{uuid.uuid4()}"}
    return glance.request("GET", f"/v2/images?{query}", headers=headers)


def test_unstorable_filters_are_400_not_500(guarded_glance, server_backend):
    glance = start(guarded_glance, server_backend, relations_rotation="true")
    alice, nova = _cloud(glance)
    _backup(glance, alice, nova, "daily")
    settle(glance)
    path = f"/v2/instances/{INSTANCE}/images"
    for query in ("backup_type=%00", "origin=a%00b", "backup_type=daily%00"):
        response = glance.request("GET", f"{path}?{query}", headers=glance.headers(alice))
        assert response.status_int == 400, (query, response.status_int, response.text)
        assert "error" in response.json
    assert _rotation(glance, alice, nova, "%00").status_int == 400


def _lock(backend, held: threading.Event, release: threading.Event):
    """Hold the relations table locked from another session until ``release`` (or 12 s)."""
    engine = sa.create_engine(backend.relations_url, poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        if backend.name == "postgresql":
            connection.execute(sa.text(f"LOCK TABLE {TABLE} IN ACCESS EXCLUSIVE MODE"))
        else:
            connection.execute(sa.text(f"LOCK TABLES {TABLE} WRITE"))
        held.set()
        release.wait(12)
        if backend.name != "postgresql":
            connection.execute(sa.text("UNLOCK TABLES"))
        connection.rollback()
    engine.dispose()


def test_a_locked_table_is_a_503_within_the_timeout(guarded_glance, server_backend):
    glance = start(guarded_glance, server_backend, relations_rotation="true", relations_timeout="1")
    alice, nova = _cloud(glance)
    _backup(glance, alice, nova, "daily")
    settle(glance)
    held, release = threading.Event(), threading.Event()
    locker = threading.Thread(target=_lock, args=(server_backend, held, release), daemon=True)
    locker.start()
    assert held.wait(10)
    try:
        path = f"/v2/instances/{INSTANCE}/images"
        began = time.monotonic()
        listing = glance.request("GET", path, headers=glance.headers(alice, nova))
        listed_in = time.monotonic() - began
        began = time.monotonic()
        rotation = _rotation(glance, alice, nova, "daily")
        rotated_in = time.monotonic() - began
    finally:
        release.set()
        locker.join(15)
    assert listing.status_int == 503, listing.text
    assert rotation.status_int == 503, rotation.text
    # one statement timeout (1 s), plus the flush wait and Glance: far below the 12 s lock
    assert listed_in < 6 and rotated_in < 6, (listed_in, rotated_in)


def test_backup_type_and_kind_compared_exactly(guarded_glance, server_backend):
    glance = start(guarded_glance, server_backend, relations_rotation="true")
    alice, nova = _cloud(glance)
    daily = _backup(glance, alice, nova, "daily")
    settle(glance)
    path = f"/v2/instances/{INSTANCE}/images"
    for other in ("Daily", "DAILY", "daily%20"):
        listed = glance.request("GET", f"{path}?backup_type={other}", headers=glance.headers(alice))
        assert (listed.status_int, listed.json["images"]) == (200, []), other
        rotation = _rotation(glance, alice, nova, other)
        assert rotation.status_int == 200
        assert daily not in [i["id"] for i in rotation.json["images"]], other
    assert (
        glance.request("GET", f"{path}?kind=BACKUP", headers=glance.headers(alice)).status_int
        == 400
    )
    rotation = _rotation(glance, alice, nova, "daily")
    assert [i["id"] for i in rotation.json["images"]] == [daily]


def _rows(engine, backup_type):
    with engine.connect() as connection:
        return connection.execute(
            sa.text(f"SELECT image_id FROM {TABLE} WHERE backup_type = :t"), {"t": backup_type}
        ).all()


def test_migration_up_and_down_on_an_existing_store(server_backend):
    from propguard.relations.events import created_event
    from propguard.relations.store import RelationStore

    engine = create_engine(server_backend.relations_url, statement_timeout=False)
    try:
        upgrade(engine, "0001_relations")
        store = RelationStore(engine)
        from propguard.credentials import Credentials

        nova = Credentials(
            user_id="alice",
            project_id="p1",
            roles=frozenset({"member"}),
            service_user_id="nova",
            service_project_id="svc",
            service_roles=frozenset({"service"}),
            authenticated=True,
        )
        events = [
            created_event(
                {"instance_uuid": INSTANCE, "image_type": "backup", "backup_type": t},
                {"id": str(uuid.uuid4()), "owner": "p1"},
                nova,
                origin="nova",
                request_id=f"req-{n}",
                global_request_id=None,
            )
            for n, t in enumerate(["daily", "Daily", "daily "])
        ]
        store.apply(events)
        loose = server_backend.name == "mariadb"  # the server's default collation
        assert len(_rows(engine, "daily")) == (3 if loose else 1)
        upgrade(engine, "head")
        assert current_revision(engine) == "0002_exact_text"
        assert len(_rows(engine, "daily")) == 1
        assert len(store.list_for_instance(INSTANCE, limit=10)) == 3
        from alembic import command

        from propguard.relations.store import _alembic_config

        with engine.begin() as connection:
            command.downgrade(_alembic_config(connection), "0001_relations")
        assert current_revision(engine) == "0001_relations"
        assert len(_rows(engine, "daily")) == (3 if loose else 1)
        upgrade(engine, "head")
        assert len(_rows(engine, "daily")) == 1
        assert len(store.list_for_instance(INSTANCE, limit=10)) == 3
    finally:
        engine.dispose()
