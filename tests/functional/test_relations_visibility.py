"""The relations API shows what Glance shows, decided by Glance, on PostgreSQL and MariaDB.

Behind a real in-process Glance 33 with auth_token and propguard: a token Glance
refuses the image (``heat_stack_user`` only) sees no relation; after an admin
moves an image to another project (``PATCH /owner``) the new project sees its
relation and the old one does not; hidden images and pending shares are shown as
``GET /v2/images/{id}`` shows them; and, property-based, for any sequence of
owner/visibility/membership/hidden changes, no caller is ever shown a relation
of an image, or a property field, that ``GET /v2/images/{id}`` would not show.
"""

from __future__ import annotations

import uuid

import pytest
import relations_db
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from relations_db import settle, start

fresh_database = relations_db.fresh_database

pytestmark = pytest.mark.glance

INSTANCE = "33333333-3333-4333-8333-333333333333"
P1, P2 = "project-one", "project-two"

#: base_image_ref readable by admins only; everything else readable by every role, so
#: only Glance (its policy) refuses heat_stack_user the image.
RULES = """\
[^base_image_ref$]
create = admin,member,service:service
read = admin
update = admin,member,service:service
delete = admin,member,service:service

[.*]
create = admin,member,service:service
read = admin,member,reader,heat_stack_user,service:service
update = admin,member,service:service
delete = admin,member,service:service
"""

PROPERTY_FIELDS = {
    "instance_uuid": "instance_uuid",
    "kind": "image_type",
    "backup_type": "backup_type",
    "base_image_ref": "base_image_ref",
    "requester_user_id": "user_id",
}


@pytest.fixture(params=["postgresql", "mariadb"])
def server_backend(request, tmp_path, fresh_database):
    result = relations_db.Backend(request.param, None, fresh_database(request.param), tmp_path)
    yield result
    result.close()


class Cloud:
    def __init__(self, glance):
        self.glance = glance
        self.alice = glance.user_token(["member", "reader"], user_id="alice", project_id=P1)
        self.bob = glance.user_token(["member", "reader"], user_id="bob", project_id=P2)
        self.heat = glance.user_token(["heat_stack_user"], user_id="heat", project_id=P1)
        self.admin = glance.user_token(
            ["admin", "member", "reader"], user_id="adm", project_id="pa"
        )
        self.nova = glance.service_token()
        self.callers = {"alice": self.alice, "bob": self.bob, "heat": self.heat}

    def request(self, method, path, token, json=None, content_type=None):
        return self.glance.request(
            method,
            path,
            headers=self.glance.headers(token),
            json=json,
            content_type=content_type,
        )

    def backup(self, name, backup_type="daily"):
        body = {
            "name": name,
            "instance_uuid": INSTANCE,
            "user_id": "alice",
            "image_type": "backup",
            "backup_type": backup_type,
            "base_image_ref": "secret-base",
            "disk_format": "raw",
            "container_format": "bare",
        }
        headers = {
            **self.glance.headers(self.alice, self.nova),
            "X-OpenStack-Request-ID": f"req-{uuid.uuid4()}",
        }
        response = self.glance.request("POST", "/v2/images", headers=headers, json=body)
        assert response.status_int == 201, response.text
        return response.json["id"]

    def patch(self, image, ops, token=None):
        response = self.request(
            "PATCH",
            f"/v2/images/{image}",
            token or self.admin,
            json=ops,
            content_type="application/openstack-images-v2.1-json-patch",
        )
        assert response.status_int == 200, response.text

    def relations(self, token):
        return self.request("GET", f"/v2/instances/{INSTANCE}/images?limit=1000", token)


def _ids(response):
    return [i["image_id"] for i in response.json["images"]] if response.status_int == 200 else []


def test_glance_decides_who_sees_a_relation(guarded_glance, server_backend):
    glance = start(guarded_glance, server_backend, RULES)
    cloud = Cloud(glance)
    image = cloud.backup("b0")
    settle(glance)
    assert _ids(cloud.relations(cloud.alice)) == [image]
    # heat_stack_user only: Glance refuses it the image, so no relation either (was: shown)
    assert cloud.request("GET", f"/v2/images/{image}", cloud.heat).status_int in (403, 404)
    assert cloud.relations(cloud.heat).status_int == 404
    # an admin moves the image to P2: P2 sees it, P1 no longer does (was: the reverse)
    cloud.patch(image, [{"op": "replace", "path": "/owner", "value": P2}])
    assert cloud.relations(cloud.alice).status_int == 404
    bob = cloud.relations(cloud.bob)
    assert _ids(bob) == [image]
    assert bob.json["images"][0]["image_owner"] == P2  # today's owner, as Glance shows it
    assert bob.json["images"][0]["base_image_ref"] is None  # hidden from members
    assert "secret-base" not in bob.text
    # hidden from lists (os_hidden) but shown by GET /v2/images/{id}: still shown
    cloud.patch(image, [{"op": "replace", "path": "/os_hidden", "value": True}])
    assert _ids(cloud.relations(cloud.bob)) == [image]
    # shared with P1, membership still pending: GET shows it to P1, and so do relations
    cloud.patch(image, [{"op": "replace", "path": "/visibility", "value": "shared"}])
    member = cloud.request("POST", f"/v2/images/{image}/members", cloud.admin, {"member": P1})
    assert member.status_int == 200, member.text
    assert cloud.request("GET", f"/v2/images/{image}", cloud.alice).status_int == 200
    assert _ids(cloud.relations(cloud.alice)) == [image]


def test_domain_and_system_scoped_tokens_are_answered_not_500(guarded_glance, server_backend):
    from keystoneauth1 import fixture as ks_fixture

    glance = start(guarded_glance, server_backend, RULES)
    cloud = Cloud(glance)
    cloud.backup("b0")
    settle(glance)
    domain = ks_fixture.V3Token(user_id="d", user_domain_id="default", domain_id="default")
    domain.add_role(name="admin")
    system = ks_fixture.V3Token(user_id="s", user_domain_id="default")
    system.system = {"all": True}
    system.add_role(name="reader")
    for body in (domain, system):
        token = glance.add_token(body)
        response = cloud.relations(token)
        assert response.status_int in (200, 404), response.text  # was 500


OPERATIONS = st.sampled_from(
    [
        ("owner", P1),
        ("owner", P2),
        ("visibility", "private"),
        ("visibility", "shared"),
        ("visibility", "community"),
        ("visibility", "public"),
        ("os_hidden", True),
        ("os_hidden", False),
        ("member", P1),
        ("member", P2),
        ("accept", None),
    ]
)


def test_never_shows_what_get_image_would_not(guarded_glance, server_backend):
    """Property: after any changes made by admins and owners, every relation a caller
    is shown is of an image GET /v2/images/{id} shows it, and every property field shown
    is one that GET shows it."""
    glance = start(guarded_glance, server_backend, RULES)
    cloud = Cloud(glance)
    images = [cloud.backup(f"b{n}", ("daily", "weekly")[n % 2]) for n in range(3)]
    settle(glance)

    @settings(
        max_examples=12,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(st.lists(st.tuples(st.sampled_from(range(3)), OPERATIONS), min_size=1, max_size=4))
    def check(changes):
        for index, (what, value) in changes:
            image = images[index]
            if what == "member":
                cloud.request("POST", f"/v2/images/{image}/members", cloud.admin, {"member": value})
            elif what == "accept":
                for token, project in ((cloud.alice, P1), (cloud.bob, P2)):
                    cloud.request(
                        "PUT",
                        f"/v2/images/{image}/members/{project}",
                        token,
                        {"status": "accepted"},
                    )
            else:
                value = value if what != "visibility" or value != "public" else "community"
                cloud.patch(image, [{"op": "replace", "path": f"/{what}", "value": value}])
        for name, token in cloud.callers.items():
            response = cloud.relations(token)
            assert response.status_int in (200, 404), response.text
            for relation in response.json.get("images", []) if response.status_int == 200 else []:
                got = cloud.request("GET", f"/v2/images/{relation['image_id']}", token)
                assert got.status_int == 200, (name, relation["image_id"], got.status_int)
                for field, prop in PROPERTY_FIELDS.items():
                    if relation[field] is not None:
                        assert prop in got.json, (name, field)
                for prop in relation["provenance"]["asserted"]:
                    assert prop in got.json or prop.endswith("_note") or prop == "kind_basis"

    check()
