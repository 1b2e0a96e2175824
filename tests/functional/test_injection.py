"""Property injection on create, for upload and import alike (issue: property injection).

Through a real Glance 33 (sqlite) behind auth_token and propguard with
``inject_properties``: a member's image gets the operator's values whatever it
sent, an admin's does not, the rules keep the values from being changed, and a
legacy import task gets them too.
"""

from __future__ import annotations

import pytest
from functional_rules import ADMIN_CATCH_ALL
from glance_api import IMAGE, admin, member, patch, stored_properties

from propguard.inprocess import DEFAULT_PROJECT, DEFAULT_SERVICE_USER, DEFAULT_USER
from propguard.middleware import filter_factory

pytestmark = pytest.mark.glance

#: Injected names are readable by everyone and changed only by admins.
RULES = (
    """\
[^(created_by|created_in|relayed_by|licence)$]
create = admin
read = @
update = admin
delete = admin

[^x_owner_]
create = admin,member
read = admin,member
update = admin,member
delete = admin,member

"""
    + ADMIN_CATCH_ALL
)
INJECT = "created_by:{user_id},created_in:{project_id},relayed_by:{service_user_id},licence:gpl"
TASKS_POLICY = '"tasks_api_access": "role:admin or role:member"\n'


@pytest.fixture
def injecting(guarded_glance):
    def start(**options: str):
        glance = guarded_glance(RULES, inject_properties=INJECT, **options)
        return glance, glance.webtest_app()

    return start


def test_member_create_then_upload_gets_the_injected_values(injecting):
    glance, app = injecting()
    token = member(glance)
    body = {**IMAGE, "licence": "proprietary", "created_by": "someone-else", "x_owner_a": "a"}
    created = app.post_json("/v2/images", body, headers=glance.headers(token))
    assert created.status_int == 201
    image_id = created.json["id"]
    app.put(
        f"/v2/images/{image_id}/file",
        b"x" * 1024,
        headers={**glance.headers(token), "Content-Type": "application/octet-stream"},
    )
    shown = app.get(f"/v2/images/{image_id}", headers=glance.headers(token)).json
    assert shown["status"] == "active"
    expected = {
        "created_by": DEFAULT_USER,
        "created_in": DEFAULT_PROJECT,
        "relayed_by": "",
        "licence": "gpl",
        "x_owner_a": "a",
    }
    assert stored_properties(glance, image_id) == expected
    assert {k: shown[k] for k in expected} == expected


def test_admin_create_gets_nothing_injected(injecting):
    glance, app = injecting()
    body = {**IMAGE, "licence": "proprietary"}
    created = app.post_json("/v2/images", body, headers=glance.headers(admin(glance)))
    assert stored_properties(glance, created.json["id"]) == {"licence": "proprietary"}


def test_member_cannot_change_an_injected_value_afterwards(injecting):
    glance, app = injecting()
    token = member(glance)
    image_id = app.post_json("/v2/images", IMAGE, headers=glance.headers(token)).json["id"]
    for op in ("replace", "remove"):
        change = {"op": op, "path": "/licence"} | ({"value": "mit"} if op == "replace" else {})
        response = patch(app, glance, image_id, [change], token, status="*")
        assert response.status_int == 403
    assert stored_properties(glance, image_id)["licence"] == "gpl"


def test_service_relayed_request_follows_inject_service_roles(injecting):
    glance, app = injecting()
    relayed = glance.headers(member(glance), glance.service_token(["service"]))
    image_id = app.post_json("/v2/images", IMAGE, headers=relayed).json["id"]
    assert stored_properties(glance, image_id)["relayed_by"] == DEFAULT_SERVICE_USER
    glance.stop()
    glance, app = injecting(inject_service_roles="service")
    relayed = glance.headers(member(glance), glance.service_token(["service"]))
    image_id = app.post_json("/v2/images", IMAGE, headers=relayed).json["id"]
    assert stored_properties(glance, image_id) == {}


def test_import_task_gets_the_injected_values(injecting, tmp_path, monkeypatch):
    from glance.common.scripts import utils as script_utils

    # Glance's import-URI filter resolves the host name, which this network-less
    # test cannot; the task then fails to fetch (refused by the network guard).
    monkeypatch.setattr(script_utils.common_utils, "validate_uri", lambda uri: True)
    policy = tmp_path / "policy.yaml"
    policy.write_text(TASKS_POLICY)
    glance, app = injecting(glance_policy_file=str(policy))
    body = {
        "type": "import",
        "input": {
            "import_from": "http://127.0.0.1/x.img",
            "import_from_format": "raw",
            "image_properties": {**IMAGE, "licence": "proprietary"},
        },
    }
    task = app.post_json("/v2/tasks", body, headers=glance.headers(member(glance))).json
    shown = app.get(f"/v2/tasks/{task['id']}", headers=glance.headers(admin(glance))).json
    properties = shown["input"]["image_properties"]
    assert properties["licence"] == "gpl" and properties["created_by"] == DEFAULT_USER
    assert shown["input"]["image_properties"]["name"] == IMAGE["name"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("owner_tag:{username}", "unknown placeholder {username}"),
        ("owner_tag", "NAME:VALUE"),
        ("visibility:public", "'visibility' is not an extra property"),
        ("os_glance_x:1", "'os_glance_x' is not an extra property"),
        ("tag:{user_id!r}", "no format or conversion"),
        ("tag:{user_id", "inject_properties"),
    ],
)
def test_bad_inject_options_stop_the_filter(tmp_path, value, message):
    rules = tmp_path / "rules.conf"
    rules.write_text(RULES)
    with pytest.raises(ValueError, match="inject_properties") as error:
        filter_factory(
            {},
            rules_file=str(rules),
            inject_properties=value,
            reload_on_sighup="false",
            name_collation="binary",
        )(lambda environ, start_response: [])
    assert message in str(error.value)
