"""Glance policies that let a caller change an image it may not read.

propguard decides a PATCH against the image as the caller sees it (one GET
with the caller's own token). With a policy allowing ``modify_image`` but
denying ``get_image``, Glance alone would apply a PATCH of an extra property
(200); propguard answers with Glance's own 404 for the read and changes
nothing. Deliberate (docs/differences.md): deciding blind would
let a draft-4 ``add`` of a hidden name answer 409 "already present" exactly
when it exists.
"""

from __future__ import annotations

import pytest
from functional_rules import ADMIN_CATCH_ALL, REFERENCE_2_4_SECTIONS
from glance_api import IMAGE, admin, member, patch, stored_properties

pytestmark = pytest.mark.glance

POLICY = '"get_image": "role:admin"\n"modify_image": "role:member"\n'


def test_modify_without_get_is_glances_404_and_changes_nothing(guarded_glance, tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    glance = guarded_glance(
        REFERENCE_2_4_SECTIONS + ADMIN_CATCH_ALL, glance_policy_file=str(policy)
    )
    app = glance.webtest_app()
    image_id = app.post_json(
        "/v2/images", {**IMAGE, "x_owner_a": "a"}, headers=glance.headers(admin(glance))
    ).json["id"]
    for draft in (
        "application/openstack-images-v2.1-json-patch",
        "application/openstack-images-v2.0-json-patch",
    ):
        op = (
            {"op": "add", "path": "/x_owner_b", "value": "b"}
            if "2.1" in draft
            else {"add": "/x_owner_b", "value": "b"}
        )
        response = patch(app, glance, image_id, [op], member(glance), status="*", media_type=draft)
        assert response.status_int == 404
    assert stored_properties(glance, image_id) == {"x_owner_a": "a"}
