"""A crash that tears the outbox's last line loses no other relation (behind a real Glance).

The store is cut (the TCP proxy of ``relations_db``); a snapshot's events are
queued; the worker then dies half-way through writing a record (a torn line,
no newline); the next snapshot's events are queued after it. At the next
start, with the store back, both relations are written and only the torn
fragment is set aside (today's outbox appended onto the fragment and lost
the next record with it).
"""

from __future__ import annotations

import pytest
import relations_db
from relations_db import Backend, TcpProxy, all_relations, allow_port, captured_steps, replay, start
from relations_db import relations_layer as layer_of

pytestmark = pytest.mark.glance

fresh_database = relations_db.fresh_database

SNAPSHOT = "A1 createImage: compute API create_image (nova-api)"
SHELVE = "C shelve: create_image name=<display_name>-shelved (nova-api)"


@pytest.mark.parametrize("server", ["postgresql", "mariadb"])
def test_a_torn_last_record_swallows_nothing_after_it(
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
    outbox_file = tmp_path / "shared.outbox"
    glance = start(guarded_glance, backend, relations_outbox=str(outbox_file), relations_timeout="1")
    steps = captured_steps()

    proxy.cut()
    assert replay(glance, steps[SNAPSHOT]).status("POST", "/v2/images") == [201]
    with outbox_file.open("ab") as handle:  # a crash in the middle of the next record
        handle.write(b'1a2b3c4d {"event": "created", "image_id": "torn-re')
    assert replay(glance, steps[SHELVE]).status("POST", "/v2/images") == [201]
    layer = layer_of(glance)
    layer.recorder.close()  # the worker stops with its events queued
    glance.stop()

    proxy.restore()
    restarted = start(
        guarded_glance, backend, upgrade_first=False, relations_outbox=str(outbox_file)
    )
    assert not layer_of(restarted).recorder.outbox.pending()
    store = Backend(server, None, direct, tmp_path).store()
    try:
        assert sorted(r["kind"] for r in all_relations(store)) == ["shelve", "snapshot"]
    finally:
        store.dispose()
