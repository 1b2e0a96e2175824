"""Backup rotation answered from the relations (``relations_rotation``): the attack and the fix.

Nova's ``_rotate_backups`` lists ``GET /v2/images?image_type=backup&
backup_type=daily&instance_uuid=U&limit=200&sort_key=created_at&sort_dir=desc``
and deletes all but the newest ``rotation`` images it gets. The three
properties are user-editable, and an admin's rotation sees every project: a
user who tags two of her own images with someone else's ``instance_uuid``
gets that instance's real backups deleted. With ``relations_rotation`` the
list comes from the relations Nova's own requests recorded, and the tagged
images are never counted. Relations on SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
import relations_db
import sqlalchemy
from glance_api import database
from relations_db import OPEN_RULES, start

pytestmark = pytest.mark.glance

# fixtures
backend = relations_db.backend
fresh_database = relations_db.fresh_database
sqlite_backend = relations_db.sqlite_backend

INSTANCE = "33333333-3333-4333-8333-333333333333"
MALLORY_INSTANCE = "44444444-4444-4444-8444-444444444444"
OWNER, MALLORY, ADMIN = "victim-project", "mallory-project", "admin-project"
ROTATION_QUERY = (
    "/v2/images?image_type=backup&backup_type=daily&instance_uuid={}&limit=200"
    "&sort_key=created_at&sort_dir=desc"
)


class Nova:
    """What Nova sends for createBackup and its rotation (reference §1.1, §2, §5.4)."""

    def __init__(self, glance):
        self.glance = glance
        self.service = glance.service_token()

    def backup(self, token, user, instance_project, instance, name, metadata=None):
        """createBackup: nova-api's POST (+ member POST for another project's server), then
        nova-compute's PATCH and upload, all under one request id."""
        rid = f"req-{uuid.uuid4()}"
        headers = {**self.glance.headers(token, self.service), "X-OpenStack-Request-ID": rid}
        body = {
            "name": name,
            "instance_uuid": instance,
            "user_id": user,
            "image_type": "backup",
            "disk_format": "raw",
            "container_format": "bare",
            **(metadata or {}),
            "backup_type": "daily",
        }
        requester_project = self._project(token)
        if requester_project != instance_project:
            body["visibility"] = "shared"
        created = self.glance.request("POST", "/v2/images", headers=headers, json=body)
        assert created.status_int == 201, created.text
        image_id = created.json["id"]
        if requester_project != instance_project:
            member = self.glance.request(
                "POST",
                f"/v2/images/{image_id}/members",
                headers=headers,
                json={"member": instance_project},
            )
            assert member.status_int == 200, member.text
        patched = self.glance.request(
            "PATCH",
            f"/v2/images/{image_id}",
            headers=headers,
            body=(
                b'[{"op": "add", "path": "/image_location", "value": "snapshot"},'
                b' {"op": "add", "path": "/image_state", "value": "available"},'
                b' {"op": "add", "path": "/owner_id", "value": "'
                + instance_project.encode()
                + b'"}]'
            ),
            content_type="application/openstack-images-v2.1-json-patch",
        )
        assert patched.status_int == 200, patched.text
        uploaded = self.glance.request(
            "PUT",
            f"/v2/images/{image_id}/file",
            headers=headers,
            body=b"x" * 512,
            content_type="application/octet-stream",
        )
        assert uploaded.status_int == 204, uploaded.text
        return image_id, rid

    def rotate(self, token, instance, rotation, rid):
        """``_rotate_backups``: list, then delete the oldest beyond ``rotation``."""
        headers = {**self.glance.headers(token, self.service), "X-OpenStack-Request-ID": rid}
        listed = self.glance.request("GET", ROTATION_QUERY.format(instance), headers=headers)
        assert listed.status_int == 200, listed.text
        images = [image["id"] for image in listed.json["images"]]
        deleted = []
        for _ in range(len(images) - rotation):
            image_id = images.pop()
            response = self.glance.request("DELETE", f"/v2/images/{image_id}", headers=headers)
            assert response.status_int == 204
            deleted.append(image_id)
        return deleted

    def _project(self, token):
        return self.tokens[token]


def _age(glance, ages: dict[str, float]) -> None:
    """Set Glance's created_at (one-second resolution) so the order is not left to ties."""
    engine = database(glance)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    try:
        with engine.begin() as connection:
            for image_id, days in ages.items():
                connection.execute(
                    sqlalchemy.text("UPDATE images SET created_at = :t WHERE id = :id"),
                    {"t": now - dt.timedelta(days=days), "id": image_id},
                )
    finally:
        engine.dispose()


def _setup(guarded_glance, backend, rotation: bool, **options: str):
    glance = start(
        guarded_glance, backend, OPEN_RULES, relations_rotation=str(rotation).lower(), **options
    )
    nova = Nova(glance)
    owner = glance.user_token(["member", "reader"], user_id="victim", project_id=OWNER)
    mallory = glance.user_token(["member", "reader"], user_id="mallory", project_id=MALLORY)
    admin = glance.user_token(["admin", "member", "reader"], user_id="root", project_id=ADMIN)
    nova.tokens = {owner: OWNER, mallory: MALLORY, admin: ADMIN}
    return glance, nova, owner, mallory, admin


def _fake_backup(glance, mallory, name):
    """Mallory tags her own image as a daily backup of the victim's instance (no Nova)."""
    body = {
        "name": name,
        "instance_uuid": INSTANCE,
        "image_type": "backup",
        "backup_type": "daily",
        "disk_format": "raw",
        "container_format": "bare",
    }
    response = glance.request("POST", "/v2/images", headers=glance.headers(mallory), json=body)
    assert response.status_int == 201
    return response.json["id"]


@pytest.mark.parametrize("rotation", [False, True], ids=["glance-properties", "relations"])
def test_tagged_images_delete_real_backups_unless_rotation_uses_relations(
    guarded_glance, backend, rotation
):
    glance, nova, owner, mallory, admin = _setup(guarded_glance, backend, rotation)
    b0, _ = nova.backup(owner, "victim", OWNER, INSTANCE, "b0")
    b1, _ = nova.backup(owner, "victim", OWNER, INSTANCE, "b1")
    f1 = _fake_backup(glance, mallory, "fake-1")
    f2 = _fake_backup(glance, mallory, "fake-2")
    # an admin runs createBackup (rotation 2) on the victim's server
    b2, rid = nova.backup(admin, "root", OWNER, INSTANCE, "b2")
    _age(glance, {b0: 4, b1: 3, f1: 2, f2: 1, b2: 0})

    deleted = nova.rotate(admin, INSTANCE, rotation=2, rid=rid)

    if not rotation:
        # the attack: the fakes count, two real backups go, one fake goes too
        assert deleted == [b0, b1, f1]
    else:
        # the fix: only the three real backups are counted; the oldest goes
        assert deleted == [b0]
    remaining = {
        image["id"]
        for image in glance.request(
            "GET", "/v2/images?limit=100", headers=glance.headers(admin)
        ).json["images"]
    }
    assert {b1, b2} <= remaining if rotation else b1 not in remaining
    assert f2 in remaining


def test_instance_uuid_forged_through_novas_own_metadata_is_not_counted(guarded_glance, backend):
    """Mallory runs createBackup on *her* server with metadata instance_uuid=<victim's>.

    Nova relays it with its service token, so a relation claiming the
    victim's instance is recorded (its provenance says what the token does not
    prove); nova-compute's PATCH then names mallory's project as the
    instance's. The victim's rotation anchors on the backup it is rotating for
    (same request id), whose compute step named the victim's project, and
    leaves the forged relation out.
    """
    glance, nova, owner, mallory, admin = _setup(guarded_glance, backend, True)
    b0, _ = nova.backup(owner, "victim", OWNER, INSTANCE, "b0")
    forged, _ = nova.backup(
        mallory, "mallory", MALLORY, INSTANCE, "forged", metadata={"instance_uuid": INSTANCE}
    )
    b1, rid = nova.backup(admin, "root", OWNER, INSTANCE, "b1")
    _age(glance, {b0: 3, forged: 1, b1: 0})
    relations_db.settle(glance)
    relation = backend.store().get(forged)
    assert relation["instance_uuid"] == INSTANCE and relation["instance_project_id"] == MALLORY

    assert nova.rotate(admin, INSTANCE, rotation=1, rid=rid) == [b0]
    images = glance.request("GET", "/v2/images?limit=100", headers=glance.headers(admin)).json
    assert forged in {image["id"] for image in images["images"]}


def test_rotation_rewrite_needs_the_exact_shape_and_the_service_token(
    guarded_glance, sqlite_backend
):
    backend = sqlite_backend
    glance, nova, owner, mallory, admin = _setup(guarded_glance, backend, True)
    nova.backup(owner, "victim", OWNER, INSTANCE, "b0")
    fake = _fake_backup(glance, mallory, "fake")
    query = ROTATION_QUERY.format(INSTANCE)

    def listed(path, service=True):
        headers = glance.headers(admin, nova.service if service else None)
        response = glance.request("GET", path, headers=headers)
        assert response.status_int == 200, response.text
        return {image["id"] for image in response.json["images"]}

    assert fake not in listed(query)  # Nova's rotation: from the relations
    assert fake in listed(query, service=False)  # a user's own listing: Glance's properties
    assert fake in listed(query + "&name=fake")  # not Nova's shape: untouched
    assert fake in listed(query.replace("sort_dir=desc", "sort_dir=asc"))
    empty = glance.request(
        "GET",
        ROTATION_QUERY.format(MALLORY_INSTANCE),
        headers=glance.headers(admin, nova.service),
    )
    assert empty.status_int == 200 and empty.json["images"] == []


@pytest.mark.parametrize("server", ["postgresql", "mariadb"])
def test_reads_fail_closed_when_the_store_connection_is_cut(
    guarded_glance, fresh_database, tmp_path, monkeypatch, request, server
):
    """The relations database's TCP connection is really cut (no stub): Nova's rotation GET and
    ``/v2/instances/{uuid}/images`` answer 503, never Glance's property-based list; the backup
    made meanwhile is queued, and once the connection is back nothing is lost: the rotation
    counts the three real backups and deletes the oldest."""
    backend, proxy, direct = relations_db.cuttable_backend(
        request, monkeypatch, fresh_database, server, tmp_path
    )
    glance, nova, owner, mallory, admin = _setup(
        guarded_glance, backend, True, relations_timeout="1", relations_retry_interval="0.2"
    )
    b0, _ = nova.backup(owner, "victim", OWNER, INSTANCE, "b0")
    b1, _ = nova.backup(owner, "victim", OWNER, INSTANCE, "b1")
    fake = _fake_backup(glance, mallory, "fake")
    relations_db.settle(glance)
    listing = f"/v2/instances/{INSTANCE}/images?include_deleted=true"

    proxy.cut()
    b2, rid = nova.backup(admin, "root", OWNER, INSTANCE, "b2")  # Glance answers; queued
    headers = {**glance.headers(admin, nova.service), "X-OpenStack-Request-ID": rid}
    rotation = glance.request("GET", ROTATION_QUERY.format(INSTANCE), headers=headers)
    assert rotation.status_int == 503, rotation.text
    assert rotation.json["error"]["message"].startswith("The relations store is unavailable")
    api = glance.request("GET", listing, headers=glance.headers(admin))
    assert api.status_int == 503, api.text
    assert relations_layer_outbox_events(glance) == [
        "created",
        "member_added",
        "patched",
        "uploaded",
    ]

    proxy.restore()
    assert relations_db.wait_drained(glance), "the outbox was not drained"
    _age(glance, {b0: 4, b1: 3, fake: 2, b2: 0})
    assert nova.rotate(admin, INSTANCE, rotation=2, rid=rid) == [b0]
    api = glance.request("GET", listing, headers=glance.headers(admin))
    assert api.status_int == 200, api.text
    relations = {r["image_id"]: r for r in api.json["images"]}
    assert set(relations) == {b0, b1, b2}
    assert relations[b2]["instance_project_id"] == OWNER and relations[b2]["upload_completed_at"]
    assert relations[b0]["deleted_reason"] == "rotation"
    assert relations[b0]["deleted_at"] and not relations[b1]["deleted_at"]


def relations_layer_outbox_events(glance) -> list[str]:
    return [e["event"] for e in relations_db.relations_layer(glance).recorder.outbox.read()]
