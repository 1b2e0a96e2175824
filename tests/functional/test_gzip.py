"""Glance's ``gzip`` filter after propguard (where Glance's own test pipelines put it).

Every requests-based client sends ``Accept-Encoding: gzip``; Glance's
``GzipMiddleware`` then compresses image JSON below propguard. propguard
answered 502 ("cannot check"); now it decompresses (bounded), filters and
compresses again. Through a real Glance 33 with its real gzip filter (requests
go through ``InProcessGlance.request``: webtest would decode the body itself).
"""

from __future__ import annotations

import gzip
import json

import pytest
from functional_rules import ADMIN_CATCH_ALL, REFERENCE_2_4_SECTIONS
from glance_api import IMAGE, JSON_PATCH, admin, member

pytestmark = pytest.mark.glance

GZIP_FILTER = ("gzip", "glance.api.middleware.gzip:GzipMiddleware.factory", {})


@pytest.fixture
def gzipped(guarded_glance):
    glance = guarded_glance(REFERENCE_2_4_SECTIONS + ADMIN_CATCH_ALL, filters_after=[GZIP_FILTER])
    app = glance.webtest_app()
    image_id = app.post_json(
        "/v2/images",
        {**IMAGE, "x_none_read": "HIDDEN", "x_owner_a": "a"},
        headers=glance.headers(admin(glance)),
    ).json["id"]
    return glance, app, image_id


def decoded(response) -> dict:
    assert response.headers.get("Content-Encoding") == "gzip"
    return json.loads(gzip.decompress(response.body))


@pytest.mark.parametrize("path", ["/v2/images/{id}", "/v2/images", "/v2/images?x_owner_a=a"])
def test_gzip_responses_are_filtered_not_refused(gzipped, path):
    glance, app, image_id = gzipped
    headers = {**glance.headers(member(glance)), "Accept-Encoding": "gzip"}
    response = glance.request("GET", path.format(id=image_id), headers=headers)
    assert response.status_int == 200
    document = decoded(response)
    images = document.get("images", [document])
    assert [image["x_owner_a"] for image in images] == ["a"]
    assert b"HIDDEN" not in gzip.decompress(response.body)
    assert "x_none_read" not in images[0]


def test_gzip_patch_response_is_filtered(gzipped):
    glance, app, image_id = gzipped
    response = glance.request(
        "PATCH",
        f"/v2/images/{image_id}",
        headers={**glance.headers(member(glance)), "Accept-Encoding": "gzip"},
        body=json.dumps([{"op": "add", "path": "/x_owner_b", "value": "b"}]).encode(),
        content_type=JSON_PATCH,
    )
    assert response.status_int == 200, response.body
    document = decoded(response)
    assert document["x_owner_b"] == "b" and "x_none_read" not in document


def test_without_accept_encoding_nothing_is_compressed(gzipped):
    glance, app, image_id = gzipped
    response = glance.request(
        "GET", f"/v2/images/{image_id}", headers=glance.headers(member(glance))
    )
    assert "Content-Encoding" not in response.headers
    assert "x_none_read" not in response.json
