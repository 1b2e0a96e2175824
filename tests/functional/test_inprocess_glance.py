"""The in-process Glance harness itself, with NO propguard filter in the pipeline.

Why: propguard's functional tests trust this harness to behave like a deployed
Glance behind keystonemiddleware; these tests pin that behaviour down.
"""

from __future__ import annotations

import json
import logging
import os

import pytest
from glance_api import IMAGE, admin, member, patch

from propguard import inprocess
from propguard.inprocess import DEFAULT_PROJECT, InProcessGlance

pytestmark = pytest.mark.glance


def _is_keystonemiddleware_401(res) -> bool:
    """auth_token's own rejection has a JSON body; Glance's context filter's is webob's text page."""
    try:
        return json.loads(res.body)["error"]["code"] == 401
    except (ValueError, KeyError, TypeError):
        return False


def test_member_create_get_patch_list(glance: InProcessGlance) -> None:
    tok = member(glance)
    app = glance.webtest_app()

    res = app.post_json(
        "/v2/images", {**IMAGE, "x_extra": "one"}, headers=glance.headers(tok), status=201
    )
    image = res.json
    assert image["x_extra"] == "one"
    assert image["owner"] == DEFAULT_PROJECT
    assert image["status"] == "queued"
    # Server-like environ: webob turns Glance's relative Location into our host.
    assert res.headers["Location"] == f"{glance.base_url}/v2/images/{image['id']}"
    assert image["self"] == f"/v2/images/{image['id']}"
    assert image["file"] == f"/v2/images/{image['id']}/file"

    got = app.get(f"/v2/images/{image['id']}", headers=glance.headers(tok), status=200).json
    assert got["x_extra"] == "one"
    assert got["name"] == "cirros"

    ops = [
        {"op": "replace", "path": "/x_extra", "value": "two"},
        {"op": "add", "path": "/x_added", "value": "three"},
    ]
    res = patch(app, glance, image["id"], ops, tok, status=200)
    assert res.json["x_extra"] == "two"
    assert res.json["x_added"] == "three"

    app.post_json(
        "/v2/images", {**IMAGE, "name": "second"}, headers=glance.headers(tok), status=201
    )
    listing = app.get("/v2/images?limit=1", headers=glance.headers(tok), status=200).json
    assert len(listing["images"]) == 1
    assert listing["next"].startswith("/v2/images?")  # pagination link built by Glance
    listing = app.get("/v2/images", headers=glance.headers(tok), status=200).json
    by_name = {i["name"]: i for i in listing["images"]}
    assert set(by_name) == {"cirros", "second"}
    assert by_name["cirros"]["x_added"] == "three"

    # What reached Glance's context filter: identity set by auth_token, no service token.
    seen = glance.seen[-1]["headers"]
    assert seen["X-Identity-Status"] == "Confirmed"
    assert seen["X-Project-Id"] == DEFAULT_PROJECT
    assert set(seen["X-Roles"].split(",")) == {"member", "reader"}
    assert "X-Service-Roles" not in seen


def test_upload_and_download_image_data(glance: InProcessGlance) -> None:
    tok = member(glance)
    app = glance.webtest_app()
    image_id = app.post_json("/v2/images", IMAGE, headers=glance.headers(tok), status=201).json[
        "id"
    ]
    data = os.urandom(64 * 1024) + b"propguard"

    app.put(
        f"/v2/images/{image_id}/file",
        data,
        headers={**glance.headers(tok), "Content-Type": "application/octet-stream"},
        status=204,
    )
    image = app.get(f"/v2/images/{image_id}", headers=glance.headers(tok), status=200).json
    assert image["status"] == "active"
    assert image["size"] == len(data)
    assert os.path.getsize(os.path.join(glance.store_dir, image_id)) == len(data)

    res = app.get(f"/v2/images/{image_id}/file", headers=glance.headers(tok), status=200)
    assert res.body == data
    assert res.headers["Content-Type"] == "application/octet-stream"


def test_no_token_is_rejected_by_glance_context_filter(glance: InProcessGlance) -> None:
    app = glance.webtest_app()
    res = app.get("/v2/images", status=401)
    # delay_auth_decision=true: auth_token let it through marked Invalid, and
    # Glance's context filter refused it (not auth_token's JSON 401).
    assert not _is_keystonemiddleware_401(res)
    assert glance.seen[-1]["headers"]["X-Identity-Status"] == "Invalid"
    # auth_token still decorates every downstream 401 with WWW-Authenticate.
    assert res.headers["WWW-Authenticate"] == 'Keystone uri="http://keystone.invalid/v3"'

    res = app.get("/v2/images", headers=glance.headers("not-a-registered-token"), status=401)
    assert not _is_keystonemiddleware_401(res)


def test_no_token_without_delay_is_rejected_by_auth_token(glance_factory) -> None:
    glance = glance_factory(
        authtoken_options={"delay_auth_decision": "false"}, record_requests=True
    )
    res = glance.webtest_app().get("/v2/images", status=401)
    assert _is_keystonemiddleware_401(res)
    assert glance.seen == []  # never reached Glance


def test_plain_user_token_as_service_token(glance_factory) -> None:
    """service_token_roles_required: a token without the service role is not a service token.

    With Glance's shipped delay_auth_decision=true, auth_token does NOT reject:
    it marks the service identity Invalid, strips X-Service-* and Glance (which
    ignores X-Service-Identity-Status) serves the request as the user.  Only
    with delay_auth_decision=false is it a 401.
    """
    glance = glance_factory(record_requests=True)
    tok = member(glance)
    plain = glance.user_token(["member"], user_id="mallory")
    app = glance.webtest_app()
    spoof = {"X-Service-Roles": "service", "X-Service-Identity-Status": "Confirmed"}
    res = app.get("/v2/images", headers={**glance.headers(tok, plain), **spoof}, status=200)
    assert res.json["images"] == []
    seen = glance.seen[-1]["headers"]
    assert seen["X-Service-Identity-Status"] == "Invalid"
    assert "X-Service-Roles" not in seen  # spoofed header stripped, nothing re-added
    assert "X-Service-User-Id" not in seen
    glance.stop()

    strict = glance_factory(
        authtoken_options={"delay_auth_decision": "false"}, record_requests=True
    )
    tok = member(strict)
    plain = strict.user_token(["member"], user_id="mallory")
    res = strict.webtest_app().get("/v2/images", headers=strict.headers(tok, plain), status=401)
    assert _is_keystonemiddleware_401(res)
    assert strict.seen == []
    # The same user token alone is fine, so the 401 is about the service token.
    strict.webtest_app().get("/v2/images", headers=strict.headers(tok), status=200)


def test_user_plus_service_token_reaches_glance(glance: InProcessGlance) -> None:
    tok = member(glance)
    svc = glance.service_token()
    app = glance.webtest_app()
    res = app.post_json(
        "/v2/images", {**IMAGE, "x_from_nova": "snap"}, headers=glance.headers(tok, svc), status=201
    )
    # Glance acts for the user (owner = user's project), not the service.
    assert res.json["owner"] == DEFAULT_PROJECT
    assert res.json["x_from_nova"] == "snap"
    seen = glance.seen[-1]["headers"]
    assert seen["X-Service-Identity-Status"] == "Confirmed"
    assert seen["X-Service-Roles"] == "service"
    assert seen["X-Service-User-Id"] == "nova"
    assert seen["X-Service-Project-Id"] == "service-project"
    got = app.get(f"/v2/images/{res.json['id']}", headers=glance.headers(tok), status=200).json
    assert got["x_from_nova"] == "snap"


def test_glance_native_property_protections(
    glance_factory, native_glance, glance_test_rules_file
) -> None:
    protected = native_glance(glance_test_rules_file)
    tok = member(protected)
    app = protected.webtest_app()
    res = app.post_json(
        "/v2/images", {**IMAGE, "foo": "bar"}, headers=protected.headers(tok), status=403
    )
    assert b"foo" in res.body
    ok = app.post_json(
        "/v2/images", {**IMAGE, "x_owner_foo": "v"}, headers=protected.headers(tok), status=201
    )
    assert ok.json["x_owner_foo"] == "v"
    root = admin(protected)
    app.post_json(
        "/v2/images", {**IMAGE, "foo": "bar"}, headers=protected.headers(root), status=201
    )
    protected.stop()
    assert inprocess.property_utils.CONFIG.sections() == []

    # The next instance in the same process must not inherit the protections.
    plain = glance_factory()
    tok = member(plain)
    res = plain.webtest_app().post_json(
        "/v2/images", {**IMAGE, "foo": "bar"}, headers=plain.headers(tok), status=201
    )
    assert res.json["foo"] == "bar"


def test_extra_filter_sits_between_authtoken_and_context(glance_factory) -> None:
    sink = "probe-test"
    glance = glance_factory(
        extra_filters=[("probe", "propguard.inprocess:recording_filter_factory", {"sink": sink})],
    )
    with open(glance.paste_file) as f:
        assert "pipeline = authtoken probe context rootapp" in f.read()
    tok = glance.user_token(["reader"])
    glance.webtest_app().get(
        "/v2/images", headers={**glance.headers(tok), "X-Roles": "admin"}, status=200
    )
    seen = inprocess.recorded_requests(sink)[-1]["headers"]
    assert seen["X-Roles"] == "reader"  # after auth_token: spoofed role replaced
    assert seen["X-Identity-Status"] == "Confirmed"


def test_instances_are_isolated_and_restartable(glance_factory) -> None:
    first = glance_factory()
    tok = member(first)
    first.request("POST", "/v2/images", headers=first.headers(tok), json=IMAGE)
    with pytest.raises(RuntimeError, match="another InProcessGlance"):
        InProcessGlance(first.workdir + "-other").start()
    first.stop()
    first.stop()  # idempotent
    assert first.app is None

    second = glance_factory()
    with pytest.raises(RuntimeError, match="not started"):
        first.user_token(["member"])
    tok2 = member(second)
    res = second.request("GET", "/v2/images", headers=second.headers(tok2))
    assert res.status_int == 200
    assert res.json["images"] == []  # fresh DB
    # first's token is gone with its AuthTokenFixture
    assert second.request("GET", "/v2/images", headers=second.headers(tok)).status_int == 401
    second.stop()

    # and the first instance can be started again on its (re-created) DB
    first.start()
    try:
        tok = member(first)
        assert first.request("GET", "/v2/images", headers=first.headers(tok)).json["images"] == []
    finally:
        first.stop()


def test_glance_policy_file_is_honoured(glance_factory, tmp_path) -> None:
    policy = tmp_path / "glance-policy.yaml"
    policy.write_text('"get_images": "role:admin"\n')
    glance = glance_factory(glance_policy_file=str(policy))
    app = glance.webtest_app()
    tok = member(glance)
    app.get("/v2/images", headers=glance.headers(tok), status=403)
    # everything else keeps Glance's (new) defaults
    app.post_json("/v2/images", IMAGE, headers=glance.headers(tok), status=201)
    root = admin(glance)
    assert len(app.get("/v2/images", headers=glance.headers(root), status=200).json["images"]) == 1


def test_logging_goes_through_pytest_capture(glance_factory, caplog) -> None:
    with caplog.at_level(logging.INFO):
        glance_factory()
    assert any(r.name.startswith("keystonemiddleware") for r in caplog.records)
    bare = [
        h
        for h in logging.getLogger().handlers
        if type(h) is logging.StreamHandler and h.formatter is None
    ]
    assert bare == []  # oslo.log's import-time stderr handler was removed
