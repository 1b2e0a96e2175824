"""Names that are not properties to Glance, and requests Glance refuses after committing.

Second security review, classes 1, 2 and 8, through a real Glance 33 (sqlite and MariaDB)
behind auth_token and propguard. Glance's PATCH handlers (``_do_add``,
``_do_replace`` in ``glance/api/v2/images.py``) ``setattr`` any attribute the
image *object* has, and commit some changes before refusing the request.
Each test checks Glance's database, past every API check.
"""

from __future__ import annotations

import pytest
from functional_rules import ADMIN_CATCH_ALL, REFERENCE_2_4_SECTIONS
from glance_api import IMAGE, admin, image_row, member, patch, stored_properties

pytestmark = pytest.mark.glance

#: Reference §2.4 sections, plus a section members may write that matches names
#: of Glance's objects (``image_id``), as Nova's ``image_*`` properties need.
RULES = (
    REFERENCE_2_4_SECTIONS
    + """\
[^image_.*]
create = admin,member
read = admin,member
update = admin,member
delete = admin,member

[^(member|extra_properties|base|__.*__|stores)$]
create = admin,member
read = admin,member
update = admin,member
delete = admin,member

"""
    + ADMIN_CATCH_ALL
)


@pytest.fixture
def two_images(guarded_glance, database_url):
    glance = guarded_glance(RULES, database_url=database_url)
    app = glance.webtest_app()
    root = admin(glance)
    a = app.post_json(
        "/v2/images", {**IMAGE, "x_owner_a": "a"}, headers=glance.headers(member(glance))
    ).json["id"]
    b = app.post_json(
        "/v2/images",
        {**IMAGE, "x_owner_b": "b", "x_ro": "ro", "x_none_read": "hidden-B"},
        headers=glance.headers(root),
    ).json["id"]
    return glance, app, a, b


@pytest.mark.parametrize("who", ["member", "admin"])
@pytest.mark.parametrize("op", ["add", "replace"])
def test_image_id_cannot_save_one_image_over_another(two_images, who, op):
    """``add /image_id`` = B on image A made Glance write A's row and properties over B,
    purging B's protected and hidden properties, whoever the rules let write it."""
    glance, app, a, b = two_images
    token = member(glance) if who == "member" else admin(glance)
    before_b, props_b = image_row(glance, b), stored_properties(glance, b)
    response = patch(
        app, glance, a, [{"op": op, "path": "/image_id", "value": b}], token, status="*"
    )
    assert response.status_int == 403
    assert response.json["error"]["message"] == "Attribute 'image_id' is reserved."
    assert image_row(glance, b) == before_b
    assert stored_properties(glance, b) == props_b


@pytest.mark.parametrize(
    "name", ["extra_properties", "base", "__class__", "__dict__", "member", "delete"]
)
def test_object_attributes_are_reserved_never_a_500_or_a_silent_drop(two_images, name):
    glance, app, a, _ = two_images
    for token in (member(glance), admin(glance)):
        response = patch(
            app, glance, a, [{"op": "add", "path": f"/{name}", "value": "x"}], token, status="*"
        )
        assert response.status_int == 403, response.body
        assert name not in stored_properties(glance, a)


@pytest.mark.parametrize("name", ["image_id", "extra_properties", "__class__", "member"])
def test_object_attribute_names_cannot_be_created(guarded_glance, database_url, name):
    """Created, they would be properties no PATCH could ever replace or remove."""
    glance = guarded_glance(RULES, database_url=database_url)
    app = glance.webtest_app()
    response = app.post_json(
        "/v2/images", {**IMAGE, name: "x"}, headers=glance.headers(admin(glance)), status="*"
    )
    assert response.status_int == 403
    assert response.json["error"]["message"] == f"Attribute '{name}' is reserved."
    assert app.get("/v2/images", headers=glance.headers(admin(glance))).json["images"] == []


def test_stores_is_read_only_on_patch_as_on_create(two_images):
    """Glance refuses ``stores`` on create but stores it as a plain property on PATCH,
    where propguard took it for a core attribute and let anyone write it."""
    glance, app, a, _ = two_images
    response = patch(
        app, glance, a, [{"op": "add", "path": "/stores", "value": "s"}], member(glance), status="*"
    )
    assert response.status_int == 403
    assert response.json["error"]["message"] == "Attribute 'stores' is read-only."
    assert "stores" not in stored_properties(glance, a)


def test_add_owner_refused_and_nothing_committed(two_images):
    """Glance's ``_do_add`` lacks the non-admin owner check of ``_do_replace``: it saves
    the new owner (and the rest of the patch), then answers 403."""
    glance, app, a, _ = two_images
    before = image_row(glance, a)
    ops = [
        {"op": "add", "path": "/x_owner_new", "value": "n"},
        {"op": "add", "path": "/owner", "value": "another-project"},
    ]
    response = patch(app, glance, a, ops, member(glance), status="*")
    assert response.status_int == 403
    assert image_row(glance, a)["owner"] == before["owner"]
    assert "x_owner_new" not in stored_properties(glance, a)


def test_admin_add_owner_still_works(two_images):
    glance, app, a, _ = two_images
    ops = [{"op": "add", "path": "/owner", "value": "another-project"}]
    assert patch(app, glance, a, ops, admin(glance)).json["owner"] == "another-project"
    assert image_row(glance, a)["owner"] == "another-project"


def test_four_byte_tag_refused_before_anything_is_saved(two_images):
    glance, app, a, _ = two_images
    before = image_row(glance, a)
    ops = [
        {"op": "replace", "path": "/name", "value": "renamed"},
        {"op": "add", "path": "/x_owner_new", "value": "n"},
        {"op": "replace", "path": "/tags", "value": ["ok", "\U0001f600"]},
    ]
    response = patch(app, glance, a, ops, member(glance), status="*")
    assert response.status_int == 400
    assert image_row(glance, a)["name"] == before["name"]
    assert "x_owner_new" not in stored_properties(glance, a)
    created = app.post_json(
        "/v2/images",
        {**IMAGE, "tags": ["\U0001f600"]},
        headers=glance.headers(member(glance)),
        status="*",
    )
    assert created.status_int == 400
    assert len(app.get("/v2/images", headers=glance.headers(admin(glance))).json["images"]) == 2


@pytest.mark.parametrize(
    ("op", "name", "message"),
    [
        ("replace", "location", "Attribute 'location' is reserved."),
        ("remove", "deleted", "Attribute 'deleted' is reserved."),
        ("replace", "deleted_at", "Attribute 'deleted_at' is reserved."),
        ("replace", "os_glance_foo", "Attribute 'os_glance_foo' is reserved."),
        ("remove", "size", "Attribute 'size' is read-only."),
        ("replace", "self", "Attribute 'self' is read-only."),
    ],
)
def test_glance_reserved_names_get_glances_answer(two_images, op, name, message):
    """Glance's deserializer refuses these before any change (403); propguard said 409
    "does not exist" for an absent one. Now Glance's words, in Glance's order."""
    glance, app, a, _ = two_images
    change = {"op": op, "path": f"/{name}"} | ({"value": "v"} if op != "remove" else {})
    response = patch(
        app,
        glance,
        a,
        [{"op": "add", "path": "/x_none_read", "value": "v"}, change],
        member(glance),
        status="*",
    )
    assert response.status_int == 403
    assert response.json["error"]["message"] == message
