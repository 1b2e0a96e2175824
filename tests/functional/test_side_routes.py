"""Side routes, task types and list keys: second security review, classes 3, 4 and 6.

Through a real Glance 33 (sqlite and MariaDB) behind auth_token and propguard:

* every Glance v2 route that returns task input is filtered
  (``GET /v2/images/{id}/tasks`` showed it raw to any reader of the image);
* the tasks API creates only ``import`` tasks (``api_image_import`` would
  reach ``glance-download`` past the import route's checks) and refuses
  ``os_glance_*`` image properties, which Glance refuses on create only;
* list keys Glance compares as attributes of its ``Image`` model, and keys it
  never consumes, get a 400 instead of a scan or a 500.
"""

from __future__ import annotations

import time

import pytest
from functional_rules import REFERENCE_2_4_SECTIONS
from glance_api import IMAGE, admin, member

from propguard.credentials import Credentials
from propguard.rules.loading import RulesOptions, open_rules
from propguard.view import ImageView, ViewConfig

pytestmark = pytest.mark.glance

#: §2.4 sections, then everything else readable by members (so that a list key
#: is a readable filter, the case in which Glance's answer is post-filtered).
RULES = (
    REFERENCE_2_4_SECTIONS
    + """\
[.*]
create = admin
read = admin,member
update = admin
delete = admin
"""
)
#: Tasks open to members too (Glance 33: admin only by default).
TASKS_POLICY = '"tasks_api_access": "role:admin or role:member"\n'


def import_task(image_id: str, **properties: str) -> dict:
    return {
        "type": "import",
        "input": {
            # Refused by the functional tests' network guard: the task fails,
            # its input stays.
            "import_from": "http://127.0.0.1/x.img",
            "import_from_format": "raw",
            "image_properties": {**IMAGE, **properties},
            "image_id": image_id,
        },
    }


@pytest.fixture
def guarded(guarded_glance, database_url, tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(TASKS_POLICY)
    glance = guarded_glance(
        RULES, glance_policy_file=str(policy), record_requests=True, database_url=database_url
    )
    return glance, glance.webtest_app()


def test_image_tasks_route_hides_task_input(guarded, monkeypatch):
    # Glance's import-URI filter resolves the host name, which this network-less
    # test cannot; the task itself then fails to fetch (refused by the guard).
    from glance.common.scripts import utils as script_utils

    monkeypatch.setattr(script_utils.common_utils, "validate_uri", lambda uri: True)
    glance, app = guarded
    root = glance.headers(admin(glance))
    image_id = app.post_json("/v2/images", IMAGE, headers=root).json["id"]
    app.post_json("/v2/tasks", import_task(image_id, x_none_read="TASK-SECRET"), headers=root)
    deadline = time.monotonic() + 20
    while not app.get(f"/v2/images/{image_id}/tasks", headers=root).json["tasks"]:
        assert time.monotonic() < deadline, "the import task never reached the image"
        time.sleep(0.2)
    for path in (f"/v2/images/{image_id}/tasks", f"//v2/images/{image_id}/tasks"):
        for headers in (glance.headers(member(glance)), root):
            response = app.get(path, headers=headers)
            assert "TASK-SECRET" not in response.text
            assert "x_none_read" not in response.text
            (task,) = response.json["tasks"]
            assert task["input"]["image_properties"]["name"] == IMAGE["name"]


def test_task_input_location_is_hidden_when_locations_are_protected(tmp_path):
    """A ``location_import`` task's ``input.loc_url`` is a location: hidden with them."""
    rules = tmp_path / "rules.conf"
    rules.write_text(
        RULES.replace("[.*]", "[^(?!locations$).*]")
        + "\n[^locations$]\ncreate = admin\nread = admin\nupdate = admin\ndelete = admin\n"
    )
    engine = open_rules(RulesOptions(rules_file=str(rules))).current()
    view = ImageView(ViewConfig(frozenset({"locations"})))
    task = {"input": {"loc_url": "rbd://x", "image_properties": {"x_none_read": "s", "a": "1"}}}
    view.reader(engine, Credentials.for_roles(["member"])).task(task)
    assert task == {"input": {"image_properties": {"a": "1"}}}
    task = {"input": {"loc_url": "rbd://x"}}
    view.reader(engine, Credentials.for_roles(["admin"])).task(task)
    assert task == {"input": {"loc_url": "rbd://x"}}


@pytest.mark.parametrize("task_type", ["api_image_import", "location_import", "other"])
def test_tasks_api_creates_only_import_tasks(guarded, task_type):
    glance, app = guarded
    root = glance.headers(admin(glance))
    image_id = app.post_json("/v2/images", IMAGE, headers=root).json["id"]
    body = {
        "type": task_type,
        "input": {
            "image_id": image_id,
            "import_req": {"method": {"name": "glance-download", "glance_image_id": image_id}},
        },
    }
    response = app.post_json("/v2/tasks", body, headers=root, status="*")
    assert response.status_int == 403
    assert app.get("/v2/tasks", headers=root).json["tasks"] == []


def test_os_glance_properties_cannot_be_set_through_a_task(guarded):
    """Glance refuses ``os_glance_*`` on image create, not in a task's image_properties:
    ``os_glance_stage_host`` set there makes a later DELETE follow it with the token."""
    glance, app = guarded
    image_id = app.post_json("/v2/images", IMAGE, headers=glance.headers(member(glance))).json["id"]
    body = import_task(image_id, os_glance_stage_host="http://attacker.example")
    for token in (member(glance), admin(glance)):
        response = app.post_json("/v2/tasks", body, headers=glance.headers(token), status="*")
        assert response.status_int == 403
        assert response.json["error"]["message"] == "Attribute 'os_glance_stage_host' is reserved."
    created = app.post_json(
        "/v2/images",
        {**IMAGE, "os_glance_stage_host": "x"},
        headers=glance.headers(member(glance)),
        status="*",
    )
    assert created.status_int == 403


@pytest.mark.parametrize(
    "query",
    [
        "__tablename__=images",
        "__module__=glance.db.sqlalchemy.models",
        "metadata=x",
        "keys=x",
        "changes-since=",
        "deleted=1",
        "deleted_at=x",
        "name_min=1",
        "created_at_max=1",
    ],
)
def test_list_keys_glance_does_not_take_as_property_filters_are_refused(guarded, query):
    """``?__tablename__=images`` is true for every image in Glance's SQL: with a
    readable key propguard dropped them all and read on, up to list_scan_limit images."""
    glance, app = guarded
    headers = glance.headers(member(glance))
    for _ in range(3):
        app.post_json("/v2/images", IMAGE, headers=headers)
    seen = len(glance.seen)
    response = app.get(f"/v2/images?{query}&limit=1", headers=headers, status="*")
    assert response.status_int == 400
    assert response.json["error"]["message"].startswith("Unsupported filter")
    assert len(glance.seen) == seen  # nothing reached Glance


def test_documented_column_filters_still_work(guarded):
    glance, app = guarded
    headers = glance.headers(member(glance))
    app.post_json("/v2/images", {**IMAGE, "min_ram": 512}, headers=headers)
    for query, count in [("min_ram_min=256", 1), ("min_ram_max=256", 0), ("name=cirros", 1)]:
        assert len(app.get(f"/v2/images?{query}", headers=headers).json["images"]) == count


def test_every_glance_route_is_checked_or_shown_to_carry_no_property(guarded, tmp_path):
    """propguard's table of Glance's v2 routes is Glance's router, route for route and
    method for method; each is checked by the filter or says why it carries no property.

    Fails on a Glance that adds a route: ``propguard serve`` refuses (404) a
    target that is not in the table, and the table is what must then be updated.
    """
    from object_model_names import v2_routes

    from propguard.glance.routes import GLANCE_V2_ROUTES, match_route
    from propguard.middleware import filter_factory

    glance_routes = {
        (route.path, method) for route in v2_routes() if route.action != "reject"
        for method in route.methods
    }  # fmt: skip
    glance_routes.add(("", "GET"))  # the router's redirect of /v2 to /v2/
    table = {(route.template, method) for route in GLANCE_V2_ROUTES for method in route.methods}
    assert table == glance_routes, (table - glance_routes, glance_routes - table)
    rules = tmp_path / "rules.conf"
    rules.write_text(RULES)
    handlers = filter_factory({}, rules_file=str(rules), reload_on_sighup="false")(None)._handlers
    values = {"image_id": "i", "task_id": "t", "member_id": "m", "tag_value": "v"}
    for route in GLANCE_V2_ROUTES:
        path = "/v2" + route.template.format_map(KeepUnknown(values))
        for method in route.methods:
            if method in route.checked:
                assert match_route(path) == (
                    route.name,
                    values["image_id"] if "{image_id}" in route.template else None,
                )
                assert (route.name, method) in handlers, (route, method)
            else:
                assert route.note, f"{method} {route.template}: neither checked nor explained"
                assert (match_route(path) or ("", ""))[0] + method not in {
                    name + m for name, m in handlers
                }, (route, method)


class KeepUnknown(dict):
    def __missing__(self, key: str) -> str:
        return "x"
