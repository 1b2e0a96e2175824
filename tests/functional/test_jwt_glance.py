"""The JWT filter in auth_token's place in front of a real Glance 33 with propguard.

Pipeline: ``jwt propguard context rootapp`` (``InProcessGlance(auth_filter=...)``),
rules ``policies/production.conf``, Glance's own protections off. Tokens are
RS256 JWTs minted in the test (``propguard token``'s helpers); Nova is a
second JWT with the ``service`` role sent as ``X-Service-Token``. What is
shown: the same outcomes as behind keystonemiddleware (a member sees and
changes what the rules allow, Nova's service token adds what ``service:service``
grants), and a spoofed ``X-Roles``/``X-Service-Roles`` does nothing.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from glance_api import IMAGE, JSON_PATCH, propguard_filter

from propguard.jwt.token_cli import ensure_key_pair, mint

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "policies" / "production.conf"
ISS = "https://idp.example/realms/openstack"
PROJECT = "p-jwt"


@pytest.fixture
def jwt_glance(glance_factory, tmp_path):
    """A started Glance behind the JWT filter and propguard; returns (glance, app, tok)."""
    private, kid = ensure_key_pair(tmp_path / "keys", "RS256")
    options = {
        "iss": ISS,
        "audiences": "glance",
        "algorithms": "RS256",
        "public_key_files": f"RS256:{tmp_path / 'keys' / 'RS256-public.pem'}",
        "delay_auth_decision": "true",  # what Glance ships for auth_token
        "leeway": "0",
        "allowed_types": "JWT",  # PyJWT's typ; a list typ was then a TypeError (issue 20)
    }
    glance = glance_factory(
        auth_filter=("propguard.jwt.filter:filter_factory", options),
        extra_filters=[propguard_filter(RULES)],
        record_requests=True,
    )

    def tok(roles, *, subject="alice", project_id=PROJECT, **kwargs):
        return mint(
            key=private,
            alg="RS256",
            issuer=ISS,
            audience="glance",
            subject=subject,
            roles=list(roles),
            project_id=project_id,
            kid=kid,
            **kwargs,
        )

    return glance, glance.webtest_app(), tok


def _patch(app, image_id, ops, headers, **kw):
    return app.patch(
        f"/v2/images/{image_id}",
        json.dumps(ops),
        headers={**headers, "Content-Type": JSON_PATCH},
        **kw,
    )


def test_member_and_nova_jwts_see_and_change_what_the_rules_allow(jwt_glance):
    glance, app, tok = jwt_glance
    admin = {"X-Auth-Token": tok(["admin", "member", "reader"], subject="root")}
    member = {"X-Auth-Token": tok(["member", "reader"])}
    nova = tok(["service"], subject="nova", project_id="service")

    created = app.post_json(
        "/v2/images",
        {**IMAGE, "billing_code": "gold", "os_distro": "cirros"},
        headers=admin,
        status=201,
    ).json
    image_id = created["id"]
    assert created["billing_code"] == "gold"

    # The member sees the project's metadata, not the operator's billing key.
    shown = app.get(f"/v2/images/{image_id}", headers=member).json
    assert shown["os_distro"] == "cirros" and "billing_code" not in shown
    listed = app.get("/v2/images", headers=member).json["images"]
    assert [i["id"] for i in listed] == [image_id] and "billing_code" not in listed[0]

    # The member may change the project's own metadata, not the billing key.
    _patch(
        app, image_id, [{"op": "add", "path": "/os_version", "value": "0.6"}], member, status=200
    )
    _patch(
        app, image_id, [{"op": "add", "path": "/billing_plan", "value": "x"}], member, status=403
    )
    _patch(app, image_id, [{"op": "remove", "path": "/billing_code"}], member, status=409)

    # Nova, acting for the member with its service token, reads the billing key.
    relayed = {**member, "X-Service-Token": nova}
    assert app.get(f"/v2/images/{image_id}", headers=relayed).json["billing_code"] == "gold"

    # What reached Glance's context filter is keystonemiddleware's contract.
    seen = glance.seen[-1]["headers"]
    assert seen["X-Identity-Status"] == "Confirmed"
    assert seen["X-Service-Identity-Status"] == "Confirmed"
    assert seen["X-Roles"] == "member,reader"
    assert seen["X-Service-Roles"] == "service"
    assert seen["X-Project-Id"] == PROJECT


def test_spoofed_identity_headers_do_nothing(jwt_glance):
    glance, app, tok = jwt_glance
    admin = {"X-Auth-Token": tok(["admin", "member", "reader"], subject="root")}
    image_id = app.post_json(
        "/v2/images", {**IMAGE, "billing_code": "gold"}, headers=admin, status=201
    ).json["id"]
    spoofed = {
        "X-Auth-Token": tok(["member", "reader"]),
        "X-Roles": "admin",
        "X-Service-Roles": "service",
        "X-Service-Identity-Status": "Confirmed",
        "X-Project-Id": "someone-else",
    }
    shown = app.get(f"/v2/images/{image_id}", headers=spoofed).json
    assert "billing_code" not in shown
    _patch(
        app, image_id, [{"op": "add", "path": "/billing_plan", "value": "x"}], spoofed, status=403
    )
    seen = glance.seen[-1]["headers"]
    assert seen["X-Roles"] == "member,reader"
    assert seen["X-Project-Id"] == PROJECT
    assert "X-Service-Roles" not in seen and "X-Service-Identity-Status" not in seen

    # A service token without the service role adds nothing either.
    plain = tok(["member", "admin"], subject="mallory", project_id="other")
    relayed = {"X-Auth-Token": tok(["member", "reader"]), "X-Service-Token": plain}
    assert "billing_code" not in app.get(f"/v2/images/{image_id}", headers=relayed).json
    assert glance.seen[-1]["headers"]["X-Service-Identity-Status"] == "Invalid"


def test_anonymous_and_foreign_tokens_are_refused_by_glance(jwt_glance):
    glance, app, tok = jwt_glance
    # delay_auth_decision: the JWT filter passes the request on as Invalid, Glance's context 401s.
    response = app.get("/v2/images", headers={"X-Roles": "admin"}, status=401)
    assert response.headers["WWW-Authenticate"] == "Bearer"
    # A keystonemiddleware fixture token is not a JWT.
    ksm_token = glance.user_token(["admin"])
    app.get("/v2/images", headers={"X-Auth-Token": ksm_token}, status=401)


def test_expired_member_token_relayed_by_nova(jwt_glance):
    """A long upload: the member's token expired, Nova's service token carries the request."""
    glance, app, tok = jwt_glance
    expired = tok(["member", "reader"], now=time.time() - 7200, expires_in=3600)
    app.get("/v2/images", headers={"X-Auth-Token": expired}, status=401)
    nova = tok(["service"], subject="nova", project_id="service")
    images = app.get("/v2/images", headers={"X-Auth-Token": expired, "X-Service-Token": nova}).json[
        "images"
    ]
    assert images == []
    assert glance.seen[-1]["headers"]["X-User-Id"] == "alice"


def test_hostile_claims_through_glance(jwt_glance):
    """Issue 20: a comma or padding in one role name is no role in Glance; odd ids are a 401."""
    glance, app, tok = jwt_glance
    admin = {"X-Auth-Token": tok(["admin", "member", "reader"], subject="root")}
    image_id = app.post_json(
        "/v2/images", {**IMAGE, "billing_code": "gold"}, headers=admin, status=201
    ).json["id"]

    # One claim value, "member,admin", used to become two roles: admin.
    for name in ("member,admin", " admin", "admin\u00a0", "\u3000admin", "ad\u200bmin"):
        headers = {"X-Auth-Token": tok(["member", "reader", name])}
        assert "billing_code" not in app.get(f"/v2/images/{image_id}", headers=headers).json
        _patch(
            app,
            image_id,
            [{"op": "add", "path": "/billing_plan", "value": "x"}],
            headers,
            status=403,
        )
        assert glance.seen[-1]["headers"]["X-Roles"] == "member,reader"

    # A project id with a line break or outside Latin-1: refused (Glance's context 401s).
    for project in ("p-jwt\r\nX-Roles: admin", "\u5c71\u7530"):
        app.get(
            "/v2/images", headers={"X-Auth-Token": tok(["member"], project_id=project)}, status=401
        )

    # A name outside Latin-1 is dropped: the request works, Glance sees no user name.
    named = tok(["member", "reader"], extra={"preferred_username": "\u5c71\u7530"})
    app.get("/v2/images", headers={"X-Auth-Token": named}, status=200)
    assert glance.seen[-1]["headers"].get("X-User-Name") in (None, "None")


def test_a_list_typ_header_is_a_401_not_a_500(jwt_glance):
    """Issue 20: a list or object typ was a TypeError (500) before any signature check."""
    import base64

    glance, app, tok = jwt_glance

    def b64(data):
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    for typ in (["JWT"], {"a": 1}):
        forged = f"{b64({'alg': 'RS256', 'typ': typ})}.{b64({'iss': ISS})}.AAAA"
        app.get("/v2/images", headers={"X-Auth-Token": forged}, status=401)
