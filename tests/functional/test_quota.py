"""The property quota counts what the caller can read: second security review, class 5.

Glance's ``image_property_quota`` counts every stored property, hidden ones
included, so whether a member's PATCH gets 413 told how many properties the
member cannot read (bisection: about 8 PATCHes). Behind propguard, Glance's
quota is off (``image_property_quota = -1``, as the README says) and
propguard's ``property_quota`` counts, before Glance, only what the caller
can read. Through a real Glance 33 (sqlite and MariaDB) behind auth_token and propguard.
"""

from __future__ import annotations

import logging

import pytest
from functional_rules import ADMIN_CATCH_ALL, REFERENCE_2_4_SECTIONS
from glance_api import IMAGE, admin, member, patch, stored_properties

pytestmark = pytest.mark.glance

QUOTA = 10
RULES = (
    REFERENCE_2_4_SECTIONS
    + """\
[^x_hidden_]
create = admin
read = admin
update = admin
delete = admin

[^wo_]
create = admin,member
read = admin
update = admin,member
delete = admin

"""
    + ADMIN_CATCH_ALL
)


@pytest.fixture
def quota_glance(guarded_glance, database_url):
    glance = guarded_glance(
        RULES,
        property_quota=str(QUOTA),
        glance_options={"image_property_quota": -1},
        database_url=database_url,
    )
    return glance, glance.webtest_app()


def image_with(glance, app, hidden: int, **extra: str) -> str:
    """An image of the member's project with two visible and ``hidden`` hidden properties."""
    body = {**IMAGE, "x_owner_1": "1", "x_owner_2": "2", **extra}
    body |= {f"x_hidden_{i}": "h" for i in range(hidden)}
    return app.post_json("/v2/images", body, headers=glance.headers(admin(glance))).json["id"]


def adds(count: int, prefix: str = "x_owner_new_") -> list[dict]:
    return [{"op": "add", "path": f"/{prefix}{i}", "value": "v"} for i in range(count)]


@pytest.mark.parametrize("hidden", [0, 1, 7])
def test_quota_answer_does_not_depend_on_hidden_properties(quota_glance, hidden):
    glance, app = quota_glance
    image_id = image_with(glance, app, hidden)
    token = member(glance)
    # 2 visible + 9 = 11 > 10: refused whatever the image hides; nothing saved.
    refused = patch(app, glance, image_id, adds(QUOTA - 1), token, status="*")
    assert refused.status_int == 413
    assert refused.json["error"]["message"] == "The request exceeds a limit of the image service."
    assert len(stored_properties(glance, image_id)) == 2 + hidden
    # 2 visible + 8 = 10: allowed whatever the image hides.
    assert patch(app, glance, image_id, adds(QUOTA - 2), token).status_int == 200
    assert len(stored_properties(glance, image_id)) == QUOTA + hidden


def test_write_only_add_at_the_boundary_does_not_tell_if_it_exists(quota_glance):
    """An add of a name the caller may write but not read is checked against the quota
    whether or not it is stored, and never counts: same answer either way."""
    glance, app = quota_glance
    with_it = image_with(glance, app, 0, wo_key="secret")
    without = image_with(glance, app, 0)
    token = member(glance)
    for image_id in (with_it, without):
        assert patch(app, glance, image_id, adds(QUOTA - 2), token).status_int == 200
    wo_key = [{"op": "add", "path": "/wo_key", "value": "v"}]
    answers = {
        patch(app, glance, image_id, wo_key, token, status="*").status_int
        for image_id in (with_it, without)
    }
    assert answers == {200}  # at the quota, not over it: it does not count
    answers = {
        patch(
            app, glance, image_id, adds(1, "x_owner_more_") + wo_key, token, status="*"
        ).status_int
        for image_id in (with_it, without)
    }
    assert answers == {413}


def test_create_over_quota_refused_before_glance(quota_glance):
    glance, app = quota_glance
    body = {**IMAGE, **{f"x_owner_{i}": "v" for i in range(QUOTA + 1)}}
    headers = glance.headers(member(glance))
    assert app.post_json("/v2/images", body, headers=headers, status="*").status_int == 413
    assert app.get("/v2/images", headers=headers).json["images"] == []


def test_glance_quota_left_on_is_warned_about_at_start(guarded_glance, caplog):
    caplog.set_level(logging.WARNING, logger="propguard")
    guarded_glance(RULES)  # Glance's default image_property_quota = 128
    assert any("image_property_quota = 128" in r.getMessage() for r in caplog.records)
