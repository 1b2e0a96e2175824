"""The relations WSGI layer over a fake Glance: what it records, and that it never alters answers."""

from __future__ import annotations

import gzip
import io
import json
import logging

import pytest
import webob

from propguard.relations.filter import RelationsFilter, peek_json
from propguard.relations.outbox import Outbox
from propguard.relations.recorder import Recorder
from propguard.relations.store import RelationStore, StoreUnavailable, open_store
from propguard.rules import parse_rules_text
from propguard.rules.engine import compile_rules
from propguard.view import ImageView

#: Rules that let everyone read everything: the relations layer's own behaviour.
READ_ALL_RULES = compile_rules(
    parse_rules_text("all.conf", "[.*]\ncreate = @\nread = @\nupdate = @\ndelete = @\n", "roles")
)


def read_all(creds):
    return ImageView().reader(READ_ALL_RULES, creds)


INSTANCE = "f3e5b7a1-8c2d-4e6f-9a0b-1c2d3e4f5a6b"
IMAGE_ID = "938d90cd-756c-4155-ae1d-63e78b029928"
BODY = {"name": "s", "instance_uuid": INSTANCE, "image_type": "snapshot", "user_id": "alice"}


def identity(service: bool = True, **extra) -> dict:
    env = {
        "HTTP_X_IDENTITY_STATUS": "Confirmed",
        "HTTP_X_USER_ID": "alice",
        "HTTP_X_PROJECT_ID": "p1",
        "HTTP_X_ROLES": "member",
        "HTTP_X_OPENSTACK_REQUEST_ID": "req-1",
    }
    if service:
        env.update(
            HTTP_X_SERVICE_IDENTITY_STATUS="Confirmed",
            HTTP_X_SERVICE_ROLES="service",
            HTTP_X_SERVICE_USER_ID="nova",
            HTTP_X_SERVICE_PROJECT_ID="svc",
        )
    env.update(extra)
    return env


class FakeGlance:
    """Answers like Glance; remembers the bodies it read. Its images (``owners``: id ->
    owner, IMAGE_ID of p1 by default) are listed to their owner's project and admins."""

    def __init__(self, status=201, gzip_it=False, owners=None):
        self.status = status
        self.gzip_it = gzip_it
        self.bodies: list[bytes] = []
        self.owners = {IMAGE_ID: "p1"} if owners is None else owners
        self.lists: list[str] = []

    def __call__(self, environ, start_response):
        request = webob.Request(environ)
        self.bodies.append(request.body)
        if request.method == "GET" and request.path == "/v2/images":
            self.lists.append(request.query_string)
            ids = request.GET["id"].removeprefix("in:").split(",")
            admin = "admin" in request.headers.get("X-Roles", "").split(",")
            project = request.headers.get("X-Project-Id")
            images = [
                {"id": i, "owner": o, "name": "n", "visibility": "private"}
                for i, o in self.owners.items()
                if i in ids and (admin or o == project) and request.GET.get("os_hidden") == "false"
            ]
            body = json.dumps({"images": images}).encode()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
        if request.method == "POST" and request.path == "/v2/images":
            body = json.dumps(
                {"id": IMAGE_ID, "owner": "p1", "created_at": "2026-11-29T10:00:00Z"}
            ).encode()
        else:
            body = b""
        headers = [("Content-Type", "application/json")]
        if self.gzip_it:
            body = gzip.compress(body)
            headers.append(("Content-Encoding", "gzip"))
        start_response(f"{self.status} X", headers + [("Content-Length", str(len(body)))])
        return [body]


@pytest.fixture
def layer(tmp_path):
    store = open_store(str(tmp_path / "r.sqlite"))
    recorder = Recorder(store, Outbox(str(tmp_path / "outbox")), synchronous=True)

    def make(app, **kwargs):
        return RelationsFilter(
            app,
            recorder,
            origins={},
            relations_service_roles=["service"],
            service_token_roles=["service"],
            trust_identity_headers=True,
            **{"reader_for": read_all, **kwargs},
        )

    yield make, store, recorder
    recorder.close()
    store.dispose()


def call(app, method, path, body=None, **environ):
    request = webob.Request.blank(path, method=method, environ=environ)
    if body is not None:
        request.body = body if isinstance(body, bytes) else json.dumps(body).encode()
    return request.get_response(app)


def test_create_is_recorded_and_the_body_reaches_glance_unchanged(layer):
    make, store, _ = layer
    glance = FakeGlance()
    response = call(make(glance), "POST", "/v2/images", BODY, **identity())
    assert response.status_int == 201 and response.json["id"] == IMAGE_ID
    assert json.loads(glance.bodies[0]) == BODY
    assert store.get(IMAGE_ID)["instance_uuid"] == INSTANCE


def test_chunked_body_is_peeked_and_restored(layer):
    make, store, _ = layer
    glance = FakeGlance()
    request = webob.Request.blank("/v2/images", method="POST", environ=identity())
    data = json.dumps(BODY).encode()
    request.environ["wsgi.input"] = io.BytesIO(data)
    request.environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    request.environ.pop("CONTENT_LENGTH", None)
    request.get_response(make(glance))
    assert glance.bodies == [data]
    assert store.get(IMAGE_ID) is not None


def test_oversized_body_passes_untouched_and_records_nothing(layer):
    make, store, _ = layer
    glance = FakeGlance()
    big = json.dumps({**BODY, "pad": "x" * 2000}).encode()
    call(make(glance, max_request_body=1024), "POST", "/v2/images", big, **identity())
    assert glance.bodies == [big]
    assert store.get(IMAGE_ID) is None
    environ = {"wsgi.input": io.BytesIO(big), "HTTP_TRANSFER_ENCODING": "chunked"}
    assert peek_json(environ, 1024) is None
    assert environ["wsgi.input"].read() == big


def test_gzip_answer_is_read(layer):
    make, store, _ = layer
    call(make(FakeGlance(gzip_it=True)), "POST", "/v2/images", BODY, **identity())
    assert store.get(IMAGE_ID) is not None


@pytest.mark.parametrize("status", [400, 403, 409, 413, 500])
def test_refused_create_records_nothing(layer, status):
    make, store, _ = layer
    response = call(make(FakeGlance(status)), "POST", "/v2/images", BODY, **identity())
    assert response.status_int == status
    assert store.get(IMAGE_ID) is None


def test_without_service_token_nothing_is_read_or_recorded(layer):
    make, store, _ = layer
    call(make(FakeGlance()), "POST", "/v2/images", BODY, **identity(service=False))
    unconfirmed = identity(HTTP_X_SERVICE_IDENTITY_STATUS="Invalid")
    call(make(FakeGlance()), "POST", "/v2/images", BODY, **unconfirmed)
    wrong_role = identity(HTTP_X_SERVICE_ROLES="reader")
    call(make(FakeGlance()), "POST", "/v2/images", BODY, **wrong_role)
    assert store.get(IMAGE_ID) is None


def test_a_failing_store_never_changes_the_answer(layer, monkeypatch, caplog):
    make, store, recorder = layer

    def broken(events):
        raise RuntimeError("boom")

    monkeypatch.setattr(store, "apply", broken)
    monkeypatch.setattr(recorder.outbox, "append", broken)
    with caplog.at_level(logging.ERROR):
        response = call(make(FakeGlance()), "POST", "/v2/images", BODY, **identity())
    assert response.status_int == 201 and response.json["id"] == IMAGE_ID
    assert recorder.lost == 1
    assert INSTANCE in caplog.text  # the whole event is in the log


def test_outage_queues_then_keeps_order_until_drained(layer, monkeypatch):
    make, store, recorder = layer
    app = make(FakeGlance())
    real_apply = store.apply

    def down(events):
        raise StoreUnavailable("down")

    monkeypatch.setattr(store, "apply", down)
    call(app, "POST", "/v2/images", BODY, **identity())
    monkeypatch.setattr(store, "apply", real_apply)
    # the store is back, but the outbox is not empty: the next event follows the first
    app.application = FakeGlance(204)
    call(app, "DELETE", f"/v2/images/{IMAGE_ID}", **identity())
    assert [e["event"] for e in recorder.outbox.read()] == ["created", "deleted"]
    assert store.get(IMAGE_ID) is None
    assert recorder.drain() == 2
    row = store.get(IMAGE_ID)
    assert row["deleted_at"] is not None and row["deleted_reason"] == "aborted"
    assert not recorder.outbox.pending()


def test_compute_steps_need_the_same_request_id(layer):
    make, store, _ = layer
    app = make(FakeGlance())
    call(app, "POST", "/v2/images", BODY, **identity())
    app.application = FakeGlance(204)
    call(
        app,
        "PUT",
        f"/v2/images/{IMAGE_ID}/file",
        b"data",
        **identity(HTTP_X_OPENSTACK_REQUEST_ID="req-2"),
    )
    assert store.get(IMAGE_ID)["upload_completed_at"] is None
    call(app, "PUT", f"/v2/images/{IMAGE_ID}/file", b"data", **identity())
    assert store.get(IMAGE_ID)["upload_method"] == "file"


def test_upload_body_is_not_read_by_the_layer(layer):
    make, _store, _ = layer

    class Stream(io.BytesIO):
        reads = 0

        def read(self, *args):
            Stream.reads += 1
            return super().read(*args)

    seen = []

    def glance(environ, start_response):
        seen.append(Stream.reads)
        start_response("204 No Content", [])
        return [b""]

    environ = identity()
    environ["wsgi.input"] = Stream(b"x" * 100)
    environ["CONTENT_LENGTH"] = "100"
    call(make(glance), "PUT", f"/v2/images/{IMAGE_ID}/file", **environ)
    assert seen == [0]


def test_location_add_and_member_add(layer):
    make, store, _ = layer
    app = make(FakeGlance())
    call(app, "POST", "/v2/images", BODY, **identity())
    app.application = FakeGlance(202)
    call(app, "POST", f"/v2/images/{IMAGE_ID}/locations", {"url": "rbd://x"}, **identity())
    app.application = FakeGlance(200)
    call(app, "POST", f"/v2/images/{IMAGE_ID}/members", {"member": "p9"}, **identity())
    row = store.get(IMAGE_ID)
    assert (row["upload_method"], row["instance_project_id"]) == ("location", "p9")


def test_delete_by_a_user(layer):
    make, store, _ = layer
    app = make(FakeGlance())
    call(app, "POST", "/v2/images", BODY, **identity())
    app.application = FakeGlance(404)
    call(app, "DELETE", f"/v2/images/{IMAGE_ID}", **identity(service=False))
    assert store.get(IMAGE_ID)["deleted_at"] is None
    app.application = FakeGlance(204)
    call(app, "DELETE", f"/v2/images/{IMAGE_ID}", **identity(service=False))
    row = store.get(IMAGE_ID)
    assert (row["deleted_via"], row["deleted_reason"], row["deleted_by_user_id"]) == (
        "user",
        "user",
        "alice",
    )


def test_other_routes_pass_straight_through(layer):
    make, _store, _ = layer
    calls = []

    def glance(environ, start_response):
        calls.append(environ["PATH_INFO"])
        start_response("200 OK", [])
        return [b"ok"]

    app = make(glance)
    for path in ("/v2/images/x/file", "/versions", "/healthcheck", "/v2/schemas/image"):
        assert call(app, "GET", path, **identity()).body == b"ok"
    assert len(calls) == 4


def test_store_unavailable_api_is_503(layer, monkeypatch):
    make, store, _ = layer

    def down(*args, **kwargs):
        raise StoreUnavailable("down")

    monkeypatch.setattr(RelationStore, "list_for_instance", down)
    response = call(make(FakeGlance()), "GET", f"/v2/instances/{INSTANCE}/images", **identity())
    assert response.status_int == 503
    response = call(make(FakeGlance()), "POST", f"/v2/instances/{INSTANCE}/images", **identity())
    assert response.status_int == 405


def test_chunked_body_under_uwsgi_is_peeked_and_put_back(monkeypatch):
    """uWSGI's wsgi.input reads 0 bytes of a chunked body: read it with
    uwsgi.chunked_read(), as propguard's filter and Glance do."""
    import sys
    import types

    small, big = json.dumps(BODY).encode(), json.dumps({**BODY, "pad": "x" * 2000}).encode()
    for body, expected in ((small, BODY), (big, None)):
        chunks = [body[:7], body[7:]]
        fake = types.ModuleType("uwsgi")
        fake.chunked_read = lambda chunks=chunks: chunks.pop(0) if chunks else b""
        monkeypatch.setitem(sys.modules, "uwsgi", fake)
        environ = {"wsgi.input": io.BytesIO(b""), "HTTP_TRANSFER_ENCODING": "chunked"}
        assert peek_json(environ, 1024) == expected
        # Whatever was peeked is there again, whole, for the app below.
        assert environ["wsgi.input"].read() == body
        assert "HTTP_TRANSFER_ENCODING" not in environ


HIDING_RULES = compile_rules(
    parse_rules_text(
        "hiding.conf",
        "[^base_image_ref$]\ncreate = @\nread = admin\nupdate = @\ndelete = @\n"
        "[^backup_type$]\ncreate = @\nread = admin\nupdate = @\ndelete = @\n"
        "[.*]\ncreate = @\nread = @\nupdate = @\ndelete = @\n",
        "roles",
    )
)


def test_relations_show_what_the_image_api_would(layer):
    """``base_image_ref`` hidden from members by the rules is hidden in the relation and
    in its asserted provenance; a filter on a hidden property matches nothing (no oracle);
    admins see it all. Fails where the relations API answers without the view."""
    make, store, _ = layer
    body = {**BODY, "base_image_ref": "secret-base-ref"}
    call(make(FakeGlance()), "POST", "/v2/images", body, **identity())
    path = f"/v2/instances/{INSTANCE}/images"

    def hiding(creds):
        return ImageView().reader(HIDING_RULES, creds)

    app = make(FakeGlance(), reader_for=hiding)
    member = call(app, "GET", path, **identity(service=False))
    assert member.status_int == 200
    (relation,) = member.json["images"]
    assert relation["base_image_ref"] is None
    assert "base_image_ref" not in relation["provenance"]["asserted"]
    assert "secret-base-ref" not in member.text
    assert relation["instance_uuid"] == INSTANCE and relation["kind"] == "snapshot"
    # The same answer whatever the hidden value asked: matches nothing, as a list filter.
    for value in ("daily", "weekly"):
        answer = call(app, "GET", f"{path}?backup_type={value}", **identity(service=False))
        assert (answer.status_int, answer.json["images"]) == (200, [])
    admin = call(app, "GET", path, **identity(service=False, HTTP_X_ROLES="admin"))
    assert admin.json["images"][0]["base_image_ref"] == "secret-base-ref"


def test_a_caller_who_may_not_read_instance_uuid_sees_no_relation(layer):
    make, store, _ = layer
    call(make(FakeGlance()), "POST", "/v2/images", BODY, **identity())
    rules = compile_rules(
        parse_rules_text(
            "r.conf",
            "[^instance_uuid$]\ncreate = @\nread = admin\nupdate = @\ndelete = @\n"
            "[.*]\ncreate = @\nread = @\nupdate = @\ndelete = @\n",
            "roles",
        )
    )
    app = make(FakeGlance(), reader_for=lambda creds: ImageView().reader(rules, creds))
    path = f"/v2/instances/{INSTANCE}/images"
    assert call(app, "GET", path, **identity(service=False)).status_int == 404
    assert call(app, "GET", path, **identity(service=False, HTTP_X_ROLES="admin")).status_int == 200
