"""Spellings the database equates: second security review, class 7, on the machine's MariaDB.

Glance's ``image_properties.name`` is ``utf8mb3_general_ci`` on MariaDB (its
migrations say ``mysql_charset='utf8'``): ``secret_key``, ``SECRET_KEY``,
``sécret_key`` and ``ſecret_key`` are one key there. A member's ``add`` of
such a spelling on an image holding a hidden ``secret_key`` made Glance insert
a second row (500, duplicate key) where on another image it succeeded: an
existence oracle that a case-insensitive section (``(?i)``) did not close for
accents. propguard now decides every spelling as its canonical one and finds
stored names the way the database does (``name_collation = auto``).
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
from glance_api import IMAGE, admin, member, patch, stored_properties

from propguard.middleware import COLLIDING_DELETED_MESSAGE

pytestmark = pytest.mark.glance

RULES = """\
[^secret_]
create = admin
read = admin
update = admin
delete = admin

[^colour$]
create = admin,member
read = admin,member
update = admin,member
delete = admin,member

[.*]
create = admin,member
read = admin,member
update = admin,member
delete = admin,member
"""

VARIANTS = ["SECRET_KEY", "sécret_key", "Sécret_Kéy", "ſecret_key", "secret_kEY"]


@pytest.fixture
def on_mariadb(guarded_glance, mariadb_url):
    glance = guarded_glance(RULES, database_url=mariadb_url)
    app = glance.webtest_app()
    root = glance.headers(admin(glance))
    with_secret = app.post_json("/v2/images", {**IMAGE, "secret_key": "s3cr3t"}, headers=root).json[
        "id"
    ]
    without = app.post_json("/v2/images", IMAGE, headers=root).json["id"]
    return glance, app, with_secret, without


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("media", ["draft10", "draft4"])
def test_variant_of_a_hidden_name_gets_one_answer_and_never_a_500(on_mariadb, variant, media):
    glance, app, with_secret, without = on_mariadb
    token = member(glance)
    op = (
        {"op": "add", "path": f"/{variant}", "value": "mine"}
        if media == "draft10"
        else {"add": f"/{variant}", "value": "mine"}
    )
    kind = (
        {} if media == "draft10" else {"media_type": "application/openstack-images-v2.0-json-patch"}
    )
    answers = []
    for image_id in (with_secret, without):
        response = patch(app, glance, image_id, [op], token, status="*", **kind)
        answers.append((response.status_int, response.json["error"]["message"]))
    assert answers[0] == answers[1]
    assert answers[0][0] == 403
    assert stored_properties(glance, with_secret) == {"secret_key": "s3cr3t"}
    assert stored_properties(glance, without) == {}


def test_variant_list_filter_matches_nothing(on_mariadb):
    glance, app, _, _ = on_mariadb
    headers = glance.headers(member(glance))
    for value in ("s3cr3t", "wrong"):
        response = app.get(f"/v2/images?{quote('SÉCRET_key')}={value}", headers=headers)
        assert response.json["images"] == []


def test_variant_of_a_readable_name_updates_the_stored_one(on_mariadb):
    """Glance would insert ``Colour`` next to ``colour`` (500); it is one key: replaced."""
    glance, app, _, _ = on_mariadb
    token = member(glance)
    image_id = app.post_json(
        "/v2/images", {**IMAGE, "colour": "blue"}, headers=glance.headers(token)
    ).json["id"]
    response = patch(
        app, glance, image_id, [{"op": "add", "path": "/Cölour", "value": "red"}], token
    )
    assert response.json["colour"] == "red"
    assert stored_properties(glance, image_id) == {"colour": "red"}
    ops = [
        {"op": "add", "path": "/shade", "value": "1"},
        {"op": "add", "path": "/SHADE", "value": "2"},
    ]
    assert patch(app, glance, image_id, ops, token).status_int == 200
    assert stored_properties(glance, image_id) == {"colour": "red", "shade": "2"}


def test_two_spellings_of_one_key_in_a_create_body_are_a_400(on_mariadb):
    glance, app, _, _ = on_mariadb
    response = app.post_json(
        "/v2/images",
        {**IMAGE, "foo": "1", "föo": "2"},
        headers=glance.headers(member(glance)),
        status="*",
    )
    assert response.status_int == 400
    assert "foo" in response.json["error"]["message"]


def test_spelling_of_a_removed_name_is_a_409_and_changes_nothing(on_mariadb):
    """The residual docs/filter.md documents: Glance keeps a removed property's row
    (soft-deleted) and its key in the unique index, and shows it to nobody.
    Another spelling of it made Glance insert a duplicate key: 500. propguard
    answers 409 without naming anything; the same spelling reuses the row."""
    glance, app, _, _ = on_mariadb
    token = member(glance)
    image_id = app.post_json(
        "/v2/images", {**IMAGE, "colour": "blue"}, headers=glance.headers(token)
    ).json["id"]
    patch(app, glance, image_id, [{"op": "remove", "path": "/colour"}], token)
    ops = [
        {"op": "add", "path": "/shade", "value": "1"},
        {"op": "add", "path": "/Cölour", "value": "red"},
    ]
    response = patch(app, glance, image_id, ops, token, status="*")
    assert response.status_int == 409
    assert response.json["error"]["message"] == COLLIDING_DELETED_MESSAGE
    assert stored_properties(glance, image_id) == {}  # the whole patch rolled back
    ops = [{"op": "add", "path": "/colour", "value": "red"}]
    assert patch(app, glance, image_id, ops, token).json["colour"] == "red"
    assert stored_properties(glance, image_id) == {"colour": "red"}


def test_exact_databases_keep_exact_names(guarded_glance):
    """On sqlite ``Colour`` and ``colour`` are two properties, as before."""
    glance = guarded_glance(RULES)
    app = glance.webtest_app()
    token = member(glance)
    image_id = app.post_json(
        "/v2/images", {**IMAGE, "colour": "blue"}, headers=glance.headers(token)
    ).json["id"]
    patch(app, glance, image_id, [{"op": "add", "path": "/Colour", "value": "red"}], token)
    assert stored_properties(glance, image_id) == {"colour": "blue", "Colour": "red"}
