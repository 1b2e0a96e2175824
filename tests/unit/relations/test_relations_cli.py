"""``propguard db upgrade|current`` and ``propguard relations list|show|reconcile`` on SQLite."""

from __future__ import annotations

import json
import threading
import wsgiref.simple_server

import pytest

from propguard.credentials import Credentials
from propguard.relations import cli
from propguard.relations.events import created_event
from propguard.relations.store import RelationStore, create_engine, head_revision

INSTANCE = "f3e5b7a1-8c2d-4e6f-9a0b-1c2d3e4f5a6b"
NOVA = Credentials(
    authenticated=True,
    user_id="alice",
    project_id="p1",
    service_roles=frozenset({"service"}),
    service_user_id="nova",
    service_project_id="svc",
)


def image_id(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


@pytest.fixture
def db(tmp_path):
    path = str(tmp_path / "relations.sqlite")
    assert cli.main(["db", "upgrade", "--connection", path]) == 0
    store = RelationStore(create_engine(path))
    yield path, store
    store.dispose()


def add(store, n, **body):
    document = {"instance_uuid": INSTANCE, "user_id": "alice", "image_type": "snapshot", **body}
    event = created_event(
        document,
        {"id": image_id(n), "owner": "p1"},
        NOVA,
        origin="nova",
        request_id=f"req-{n}",
        global_request_id=None,
        at=f"2026-11-29T10:00:{n:02d}.000000",
    )
    store.apply([event])


def test_db_upgrade_and_current(tmp_path, capsys):
    path = str(tmp_path / "new" / "r.sqlite")
    assert cli.main(["db", "current", "--connection", path]) == 1
    assert "empty (no relations schema)" in capsys.readouterr().out
    assert cli.main(["db", "upgrade", "--connection", path]) == 0
    assert f"upgraded from empty to {head_revision()}" in capsys.readouterr().out
    assert cli.main(["db", "upgrade", "--connection", path]) == 0
    assert "already at" in capsys.readouterr().out
    assert cli.main(["db", "current", "--connection", path]) == 0
    assert capsys.readouterr().out.strip() == f"{head_revision()} (head)"


def test_connection_from_a_config_file(tmp_path, capsys):
    path = tmp_path / "r.sqlite"
    conf = tmp_path / "glance-api.conf"
    conf.write_text(f"[propguard]\nrelations_connection = {path}\n")
    assert cli.main(["db", "upgrade", "--config-file", str(conf)]) == 0
    assert path.exists()
    empty = tmp_path / "empty.conf"
    empty.write_text("[propguard]\n")
    assert cli.main(["db", "current", "--config-file", str(empty)]) == 2
    assert "no [propguard] relations_connection" in capsys.readouterr().err
    assert cli.main(["db", "current"]) == 2
    assert cli.main(["db", "current", "--connection", "oracle://x/y"]) == 1
    assert "unsupported database" in capsys.readouterr().err


def test_list_and_show(db, capsys):
    path, store = db
    add(store, 1)
    add(store, 2, image_type="backup", backup_type="daily", name="b")
    add(store, 3, user_id="mallory")
    assert cli.main(["relations", "list", "--connection", path, "--instance", INSTANCE]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "created",
        "image",
        "kind",
        "backup_type",
        "origin",
        "owner",
        "deleted",
    ]
    assert [line.split()[2] for line in lines[1:]] == [image_id(3), image_id(2), image_id(1)]
    argv = [
        "relations",
        "list",
        "--connection",
        path,
        "--instance",
        INSTANCE,
        "--kind",
        "backup",
        "--json",
    ]
    assert cli.main(argv) == 0
    document = json.loads(capsys.readouterr().out)
    assert [i["image_id"] for i in document["images"]] == [image_id(2)]
    assert cli.main(["relations", "show", "--connection", path, image_id(3)]) == 0
    out = capsys.readouterr().out
    assert "mismatch             user_id 'mallory' differs from the requester 'alice'" in out
    assert cli.main(["relations", "show", "--connection", path, image_id(3), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["provenance"]["asserted"]["user_id"] == "mallory"
    assert cli.main(["relations", "show", "--connection", path, image_id(9)]) == 1
    assert cli.main(["relations", "list", "--connection", path, "--instance", "nope"]) == 2


def test_reading_refuses_a_store_that_is_not_current(tmp_path, capsys):
    path = str(tmp_path / "empty.sqlite")
    assert cli.main(["relations", "list", "--connection", path, "--instance", INSTANCE]) == 1
    assert "run `propguard db upgrade" in capsys.readouterr().err


def test_reconcile_marks_only_images_gone_and_refuses_a_wholesale_wipe(db):
    _path, store = db
    for n in range(1, 11):
        add(store, n)
    gone = {image_id(3), image_id(7)}
    calls = []

    def fetch(ids):
        calls.append(len(ids))
        return {i for i in ids if i not in gone}

    dry = cli.reconcile(store, fetch, batch=4, dry_run=True)
    assert sorted(dry["missing"]) == sorted(gone) and dry["marked"] == 0
    assert calls == [4, 4, 2]
    assert store.count(include_deleted=False) == 10
    result = cli.reconcile(store, fetch, batch=4)
    assert result["marked"] == 2
    for i in gone:
        row = store.get(i)
        assert (row["deleted_via"], row["deleted_reason"]) == ("reconcile", "reconciled")
    assert store.count(include_deleted=False) == 8
    # a token that sees nothing (not an admin): refused, nothing marked
    refused = cli.reconcile(store, lambda ids: set(), batch=4)
    assert refused["refused"] and refused["marked"] == 0
    assert store.count(include_deleted=False) == 8


def _glance(requests, hidden=(), gone=(), owners=lambda i: f"p{int(i[-1]) % 2}"):
    """A Glance answering GET /v2/images?id=in:... as it does: hidden images only with
    os_hidden=true, private images of every project to an admin (``owners``)."""

    def app(environ, start_response):
        from urllib.parse import parse_qs

        query = parse_qs(environ["QUERY_STRING"])
        requests.append((environ["PATH_INFO"], query, environ.get("HTTP_X_AUTH_TOKEN")))
        ids = query["id"][0].removeprefix("in:").split(",")
        want_hidden = query.get("os_hidden") == ["true"]
        assert query["visibility"] == ["all"] and query["member_status"] == ["all"]
        images = [
            {"id": i, "owner": owners(i), "visibility": "private"}
            for i in ids
            if i not in gone and (i in hidden) == want_hidden and owners(i) is not None
        ]
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({"images": images}).encode()]

    return app


def _serve(app):
    server = wsgiref.simple_server.make_server("127.0.0.1", 0, app, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _argv(path, server, *more):
    return [
        "relations",
        "reconcile",
        "--connection",
        path,
        "--token",
        "admin-token",
        "--glance-url",
        f"http://127.0.0.1:{server.server_port}",
        *more,
    ]


def test_reconcile_command_over_http_with_progress(db, capsys):
    path, store = db
    for n in range(1, 6):
        add(store, n)
    requests = []
    # image 4 is hidden (os_hidden=true): it exists, and must not be judged gone
    server = _serve(_glance(requests, hidden={image_id(4)}, gone={image_id(2)}))
    try:
        assert cli.main(_argv(path, server, "--batch", "2", "--progress", "always")) == 0
    finally:
        server.shutdown()
    captured = capsys.readouterr()
    assert "checked 5 live relation(s); 1 image(s) gone from Glance" in captured.out
    assert "marked 1 deleted" in captured.out
    assert "[" in captured.err and "5/5 relations" in captured.err
    assert {r[0] for r in requests} == {"/v2/images"}
    assert {r[2] for r in requests} == {"admin-token"}
    assert store.get(image_id(2))["deleted_reason"] == "reconciled"
    assert store.get(image_id(4))["deleted_at"] is None


def test_reconcile_refuses_a_token_that_sees_one_project_only(db, capsys):
    """A member's token sees its own project's private images only: the others look gone
    but may not be. Refused, exit 1, nothing marked (before: exit 0, marked deleted)."""
    path, store = db
    for n in range(1, 7):
        add(store, n)
    requests = []
    member_view = _glance(requests, owners=lambda i: "p1" if int(i[-1]) % 2 else None)
    server = _serve(member_view)
    try:
        assert cli.main(_argv(path, server, "--max-missing", "0.9")) == 1
        assert store.count(include_deleted=False) == 6
        assert "refusing to mark 3 of 6" in capsys.readouterr().err
        assert cli.main(_argv(path, server, "--max-missing", "0.9", "--force")) == 0
    finally:
        server.shutdown()
    assert store.count(include_deleted=False) == 3


class _QuietHandler(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, *args):
        pass
