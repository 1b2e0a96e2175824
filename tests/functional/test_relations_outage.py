"""The relations database goes away during a snapshot: nothing is lost, nothing doubled.

The store is reached through a loopback TCP proxy this test controls (to the
machine's PostgreSQL or MariaDB). With the proxy cut, Nova's snapshot
sequence (POST, compute PATCH, upload) succeeds exactly as Glance answers
it and the relation's three events go to the outbox file; once the proxy is
back, the outbox is drained by the filter's own thread and the relation
appears once, complete. Draining again, or replaying the same events, does
not duplicate it.
"""

from __future__ import annotations

import time

import pytest
import relations_db
from relations_db import (
    INSTANCE,
    REQUEST_ID,
    Backend,
    TcpProxy,
    all_relations,
    allow_port,
    captured_steps,
    relations_layer,
    replay,
    start,
)

pytestmark = pytest.mark.glance

# fixtures
fresh_database = relations_db.fresh_database

SNAPSHOT = "A1 createImage: compute API create_image (nova-api)"
UPLOAD = "A2 createImage: libvirt snapshot upload (nova-compute, elevated ctx)"


def _wait_for(predicate, seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.mark.parametrize("server", ["postgresql", "mariadb"])
def test_snapshot_during_an_outage_is_recorded_once_after_recovery(
    guarded_glance, fresh_database, tmp_path, monkeypatch, request, server
):
    direct = fresh_database(server)
    port = 5432 if server == "postgresql" else 3306
    proxy = TcpProxy(port)
    request.addfinalizer(proxy.close)
    allow_port(monkeypatch, request.config, proxy.port)
    proxied = direct.replace(f"127.0.0.1:{port}", f"127.0.0.1:{proxy.port}")
    backend = Backend(server, None, proxied, tmp_path)
    request.addfinalizer(backend.close)
    glance = start(guarded_glance, backend, relations_timeout="1", relations_retry_interval="0.2")
    layer = relations_layer(glance)
    recorder, outbox = layer.recorder, layer.recorder.outbox
    steps = captured_steps()

    proxy.cut()
    state = replay(glance, steps[SNAPSHOT])
    replay(glance, steps[UPLOAD], state)
    assert state.status("POST", "/v2/images") == [201]
    assert state.status("PATCH", "/v2/images/") == [200]
    assert state.status("PUT", "/file") == [204]
    queued = outbox.read()
    assert [e["event"] for e in queued] == ["created", "patched", "uploaded"]
    assert recorder.written == 0 and recorder.lost == 0
    # (that requests never wait on the database is shown without a clock in
    # tests/unit/relations/test_relations_recorder.py: a store that blocks until released)

    direct_store = Backend(server, None, direct, tmp_path).store()
    try:
        assert all_relations(direct_store) == []
        proxy.restore()
        assert _wait_for(lambda: not outbox.pending()), "the outbox was not drained"
        (row,) = all_relations(direct_store)
        assert row["image_id"] == state.created[0]
        assert (row["instance_uuid"], row["kind"], row["request_id"]) == (
            INSTANCE,
            "snapshot",
            REQUEST_ID,
        )
        assert row["compute_patched_at"] is not None and row["upload_completed_at"] is not None

        # exactly once: the same events again (a drain cut short) change nothing
        recorder.store.apply(queued)
        recorder.store.apply(queued)
        assert recorder.drain() == 0
        assert all_relations(direct_store) == [row]

        # and recording goes straight to the database again
        replay(glance, steps["C shelve: create_image name=<display_name>-shelved (nova-api)"])
        assert [r["kind"] for r in all_relations(direct_store)] == ["snapshot", "shelve"]
        assert not outbox.pending()
    finally:
        direct_store.dispose()


def test_events_queued_before_a_restart_are_drained_at_start(
    guarded_glance, fresh_database, tmp_path, monkeypatch, request
):
    """A worker that queued events and stopped: the next filter start drains them."""
    direct = fresh_database("postgresql")
    proxy = TcpProxy(5432)
    request.addfinalizer(proxy.close)
    allow_port(monkeypatch, request.config, proxy.port)
    backend = Backend("postgresql", None, direct.replace(":5432/", f":{proxy.port}/"), tmp_path)
    request.addfinalizer(backend.close)
    outbox_file = str(tmp_path / "shared.outbox")
    glance = start(guarded_glance, backend, relations_outbox=outbox_file, relations_timeout="1")
    proxy.cut()
    state = replay(glance, captured_steps()[SNAPSHOT])
    assert state.status("POST", "/v2/images") == [201]
    layer = relations_layer(glance)
    assert layer.recorder.outbox.pending()
    layer.recorder.close()  # the worker stops: its events stay in the outbox
    glance.stop()

    proxy.restore()
    restarted = start(guarded_glance, backend, upgrade_first=False, relations_outbox=outbox_file)
    assert not relations_layer(restarted).recorder.outbox.pending()
    store = Backend("postgresql", None, direct, tmp_path).store()
    try:
        assert [r["image_name"] for r in all_relations(store)] == ["snap-1"]
    finally:
        store.dispose()


def test_store_down_at_start_queues_until_it_answers(
    guarded_glance, fresh_database, tmp_path, monkeypatch, request, caplog
):
    """The database's connection is cut before the filter starts (no stub): Glance starts and
    answers, the snapshot's events are queued, and the relation is written once it answers."""
    backend, proxy, direct = relations_db.cuttable_backend(
        request, monkeypatch, fresh_database, "mariadb", tmp_path
    )
    backend.upgrade()
    proxy.cut()
    with caplog.at_level("ERROR", logger="propguard"):
        glance = start(
            guarded_glance,
            backend,
            upgrade_first=False,
            relations_timeout="1",
            relations_retry_interval="0.2",
        )
    assert "unreachable at start" in caplog.text
    state = replay(glance, captured_steps()[SNAPSHOT])
    assert state.status("POST", "/v2/images") == [201]
    assert [e["event"] for e in relations_layer(glance).recorder.outbox.read()] == ["created"]
    proxy.restore()
    assert relations_db.wait_drained(glance), "the outbox was not drained"
    store = Backend("mariadb", None, direct, tmp_path).store()
    try:
        (row,) = all_relations(store)
        assert (row["image_id"], row["instance_uuid"]) == (state.created[0], INSTANCE)
    finally:
        store.dispose()
