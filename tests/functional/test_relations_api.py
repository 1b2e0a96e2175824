"""``GET /v2/instances/{uuid}/images`` through Glance 33 + auth_token + propguard.

Visibility (service token, admin, owning project, another project,
anonymous), filters, paging and 400s, with the relations on SQLite,
PostgreSQL and MariaDB. Relations are made the way Nova makes them: a
``POST /v2/images`` with the instance metadata, the user's token and Nova's
service token.
"""

from __future__ import annotations

import uuid

import pytest
import relations_db
from relations_db import start

# fixtures
backend = relations_db.backend
fresh_database = relations_db.fresh_database
sqlite_backend = relations_db.sqlite_backend

pytestmark = pytest.mark.glance

I1 = "11111111-1111-4111-8111-111111111111"
I2 = "22222222-2222-4222-8222-222222222222"
P1, P2, PA = "project-one", "project-two", "admin-project"


class Cloud:
    """Tokens of alice (P1), bob (P2), an admin (PA) and Nova's service user."""

    def __init__(self, glance):
        self.glance = glance
        self.alice = glance.user_token(["member", "reader"], user_id="alice", project_id=P1)
        self.bob = glance.user_token(["member", "reader"], user_id="bob", project_id=P2)
        self.admin = glance.user_token(["admin", "member", "reader"], user_id="adm", project_id=PA)
        self.nova = glance.service_token()

    def nova_create(self, token, user_id, instance, name, image_type="snapshot", **extra):
        body = {
            "name": name,
            "instance_uuid": instance,
            "user_id": user_id,
            "image_type": image_type,
            "disk_format": "raw",
            "container_format": "bare",
            **extra,
        }
        headers = {
            **self.glance.headers(token, self.nova),
            "X-OpenStack-Request-ID": f"req-{uuid.uuid4()}",
        }
        response = self.glance.request("POST", "/v2/images", headers=headers, json=body)
        assert response.status_int == 201, response.text
        return response.json["id"]

    def get(self, path, token=None, service=None):
        return self.glance.request("GET", path, headers=self.glance.headers(token, service))


def scenario(guarded_glance, backend):
    """I1 (alice's): snapshot, 2 daily + 1 weekly backup, a shelve, one daily deleted by
    alice; an admin's snapshot of I1; I2 (bob's): one snapshot."""
    glance = start(guarded_glance, backend)
    cloud = Cloud(glance)
    ids = {}
    ids["snap"] = cloud.nova_create(cloud.alice, "alice", I1, "snap")
    ids["daily-old"] = cloud.nova_create(
        cloud.alice, "alice", I1, "d0", "backup", backup_type="daily"
    )
    ids["daily"] = cloud.nova_create(cloud.alice, "alice", I1, "d1", "backup", backup_type="daily")
    ids["weekly"] = cloud.nova_create(
        cloud.alice, "alice", I1, "w1", "backup", backup_type="weekly"
    )
    ids["shelve"] = cloud.nova_create(cloud.alice, "alice", I1, "vm-shelved")
    ids["admin"] = cloud.nova_create(cloud.admin, "adm", I1, "admin-snap", visibility="shared")
    ids["bob"] = cloud.nova_create(cloud.bob, "bob", I2, "bob-snap")
    deleted = glance.request(
        "DELETE", f"/v2/images/{ids['daily-old']}", headers=glance.headers(cloud.alice)
    )
    assert deleted.status_int == 204
    return cloud, ids


def _ids(response):
    return [image["image_id"] for image in response.json["images"]]


def test_visibility(guarded_glance, backend):
    cloud, ids = scenario(guarded_glance, backend)
    everything = [ids[k] for k in ("admin", "shelve", "weekly", "daily", "snap")]
    path = f"/v2/instances/{I1}/images"

    as_service = cloud.get(path, cloud.bob, cloud.nova)  # any user token + Nova's
    assert as_service.status_int == 200
    assert _ids(as_service) == everything  # newest first, deleted left out
    assert cloud.get(path, cloud.admin).json == as_service.json
    owner = cloud.get(path, cloud.alice)
    assert _ids(owner) == [i for i in everything if i != ids["admin"]]  # admin's image: PA's

    other = cloud.get(path, cloud.bob)
    unknown = cloud.get(f"/v2/instances/{uuid.uuid4()}/images", cloud.bob)
    assert other.status_int == unknown.status_int == 404
    assert other.json["error"]["message"].replace(I1, "X") == unknown.json["error"][
        "message"
    ].replace(unknown.json["error"]["message"].split()[-1].rstrip("."), "X")
    assert cloud.get(f"/v2/instances/{I2}/images", cloud.alice).status_int == 404
    assert _ids(cloud.get(f"/v2/instances/{I2}/images", cloud.bob)) == [ids["bob"]]

    for token in (None, "not-a-valid-token"):
        anonymous = cloud.get(path, token)
        assert anonymous.status_int == 401
        assert anonymous.json == cloud.get(f"/v2/instances/{uuid.uuid4()}/images", token).json


def test_document_and_provenance(guarded_glance, backend):
    cloud, ids = scenario(guarded_glance, backend)
    response = cloud.get(f"/v2/instances/{I1}/images?kind=backup", cloud.alice)
    assert response.content_type == "application/json"
    (weekly, daily) = response.json["images"]
    assert (weekly["kind"], weekly["backup_type"]) == ("backup", "weekly")
    assert daily["image_id"] == ids["daily"]
    assert daily["instance_uuid"] == I1
    assert daily["origin"] == "nova"  # not in relations_origins: its own id
    assert daily["image_owner"] == daily["requester_project_id"] == P1
    assert daily["requester_user_id"] == "alice"
    assert daily["created_at"].endswith("Z") and "." in daily["created_at"]
    assert daily["deleted"] is False and daily["deleted_at"] is None
    provenance = daily["provenance"]
    assert provenance["basis"] == "service_token_confirmed"
    assert provenance["service_user_id"] == "nova"
    assert "Nova merges the user's" in provenance["does_not_prove"]
    assert provenance["asserted"]["backup_type"] == "daily"
    assert provenance["mismatches"] == []
    assert response.json["first"] == f"/v2/instances/{I1}/images?kind=backup"
    assert "next" not in response.json


def test_filters(guarded_glance, backend):
    cloud, ids = scenario(guarded_glance, backend)
    path = f"/v2/instances/{I1}/images"

    def listed(query):
        response = cloud.get(f"{path}?{query}", cloud.admin)
        assert response.status_int == 200, response.text
        return _ids(response)

    assert listed("kind=snapshot") == [ids["admin"], ids["snap"]]  # shelve is not a snapshot
    assert listed("kind=shelve") == [ids["shelve"]]
    assert listed("kind=backup&backup_type=daily") == [ids["daily"]]
    assert listed("kind=volume_snapshot") == []  # visible relations exist: 200, empty
    assert listed("origin=elsewhere") == []
    assert listed("origin=nova&kind=backup&backup_type=weekly") == [ids["weekly"]]
    with_deleted = cloud.get(f"{path}?kind=backup&include_deleted=true", cloud.admin).json
    assert [i["image_id"] for i in with_deleted["images"]] == [
        ids["weekly"],
        ids["daily"],
        ids["daily-old"],
    ]
    gone = with_deleted["images"][-1]
    assert gone["deleted"] is True and gone["deleted_at"].endswith("Z")
    assert gone["deleted_reason"] == "user"
    assert listed("include_deleted=false") == listed("")


def test_paging(guarded_glance, backend):
    cloud, ids = scenario(guarded_glance, backend)
    path = f"/v2/instances/{I1}/images"
    seen = []
    url = f"{path}?limit=2&include_deleted=true"
    pages = 0
    while url:
        page = cloud.get(url, cloud.bob, cloud.nova)
        assert page.status_int == 200, page.text
        assert len(page.json["images"]) <= 2
        seen += _ids(page)
        url = page.json.get("next")
        pages += 1
    assert pages == 3
    everything = [ids[k] for k in ("admin", "shelve", "weekly", "daily", "daily-old", "snap")]
    assert seen == everything
    first = cloud.get(f"{path}?limit=2&include_deleted=true", cloud.admin).json
    assert first["next"] == (f"{path}?limit=2&include_deleted=true&marker={ids['shelve']}")
    assert first["first"] == f"{path}?limit=2&include_deleted=true"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("kind=bogus", "Invalid kind"),
        ("limit=abc", "limit must be an integer"),
        ("limit=0", "limit must be at least 1"),
        ("limit=-5", "limit must be at least 1"),
        ("include_deleted=maybe", "include_deleted must be true or false"),
        ("marker=not-a-uuid", "is not a relation in this list"),
        (f"marker={uuid.uuid4()}", "is not a relation in this list"),
        ("sort_key=created_at", "Unknown query parameter(s): sort_key"),
        ("kind=backup&kind=snapshot", "given more than once"),
        ("backup_type=", "backup_type must be 1 to 255 characters"),
    ],
)
def test_bad_requests(guarded_glance, sqlite_backend, query, message):
    backend = sqlite_backend
    cloud, _unused = scenario(guarded_glance, backend)
    response = cloud.get(f"/v2/instances/{I1}/images?{query}", cloud.admin)
    assert response.status_int == 400, response.text
    assert message in response.json["error"]["message"]


def test_marker_of_an_invisible_or_filtered_out_relation_is_a_400(guarded_glance, backend):
    cloud, ids = scenario(guarded_glance, backend)
    path = f"/v2/instances/{I1}/images"
    # alice cannot see the admin's image: its id as a marker is unknown to her
    assert cloud.get(f"{path}?marker={ids['admin']}", cloud.alice).status_int == 400
    assert cloud.get(f"{path}?marker={ids['admin']}", cloud.admin).status_int == 200
    assert cloud.get(f"{path}?marker={ids['bob']}", cloud.admin).status_int == 400  # I2's
    assert cloud.get(f"{path}?marker={ids['daily-old']}", cloud.admin).status_int == 400
    deleted_ok = cloud.get(f"{path}?marker={ids['daily-old']}&include_deleted=true", cloud.admin)
    assert _ids(deleted_ok) == [ids["snap"]]
    assert cloud.get(f"{path}?kind=snapshot&marker={ids['daily']}", cloud.admin).status_int == 400


def test_malformed_instance_uuid_is_a_400(guarded_glance, sqlite_backend):
    backend = sqlite_backend
    cloud, _unused = scenario(guarded_glance, backend)
    response = cloud.get("/v2/instances/not-a-uuid/images", cloud.admin)
    assert response.status_int == 400
    assert "Invalid instance UUID" in response.json["error"]["message"]
    # a UUID in another spelling is the same instance
    assert _ids(cloud.get(f"/v2/instances/{I1.upper()}/images", cloud.admin))


def test_route_absent_when_relations_are_off(guarded_glance):
    from relations_db import OPEN_RULES

    glance = guarded_glance(OPEN_RULES)
    token = glance.user_token(["admin", "member", "reader"])
    response = glance.request("GET", f"/v2/instances/{I1}/images", headers=glance.headers(token))
    assert response.status_int == 404
    assert "error" not in (response.json if response.content_type == "application/json" else {})
