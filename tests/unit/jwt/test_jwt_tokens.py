"""Which user tokens the JWT filter accepts, with real tokens minted by PyJWT.

Every case goes through the whole filter (``webob`` request -> filter ->
recording app) and asserts both the status and what reached the app, so a
refusal is a 401 *and* nothing below the filter ran.
"""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
import webob
from jwt_unit_constants import AUD, ISS

from propguard.jwt.validator import TokenRejected


def call(middleware, app, headers):
    before = len(app.seen)
    response = webob.Request.blank("/v2/images", headers=headers).get_response(middleware)
    reached = app.seen[-1] if len(app.seen) > before else None
    return response, reached


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_valid_rs256_token_confirms_the_user(build, app, rsa_options, token):
    middleware = build({**rsa_options, "token_cache_size": "0"})
    response, env = call(
        middleware,
        app,
        {"X-Auth-Token": token(roles=["member", "Reader"], project_id="p1", subject="u1")},
    )
    assert response.status_int == 200
    assert env["HTTP_X_IDENTITY_STATUS"] == "Confirmed"
    assert env["HTTP_X_ROLES"] == "member,reader"
    assert env["HTTP_X_USER_ID"] == "u1"
    assert env["HTTP_X_PROJECT_ID"] == "p1"
    assert env["HTTP_X_TENANT_ID"] == "p1"  # keystonemiddleware's deprecated copy
    assert "HTTP_X_SERVICE_IDENTITY_STATUS" not in env  # no service token sent
    assert env["propguard.identity"]["identity_status"] == "Confirmed"
    assert env["propguard.jwt"]["user"]["sub"] == "u1"


def test_bearer_authorization_header_is_read(build, app, rsa_options, token):
    response, env = call(build(rsa_options), app, {"Authorization": f"Bearer {token()}"})
    assert response.status_int == 200 and env["HTTP_X_IDENTITY_STATUS"] == "Confirmed"


def test_es256_and_hs256_issuers(build, app, keys, token):
    es = build({"iss": ISS, "audiences": AUD, "algorithms": "ES256", "jwks_file": str(keys.jwks)})
    assert call(es, app, {"X-Auth-Token": token("ES256")})[0].status_int == 200
    hs = build(
        {
            "iss": ISS,
            "audiences": AUD,
            "algorithms": "HS256",
            "hmac_secret_file": f"HS256:{keys.secret_file}",
        }
    )
    assert call(hs, app, {"X-Auth-Token": token("HS256")})[0].status_int == 200
    # An RS256 token is not an ES256 issuer's, whatever its signature.
    assert call(es, app, {"X-Auth-Token": token("RS256")})[0].status_int == 401


def test_refusal_is_keystonemiddlewares_json_with_bearer_challenge(build, app, rsa_options):
    response, env = call(build(rsa_options), app, {"X-Auth-Token": "not-a-jwt"})
    assert env is None
    assert response.status_int == 401
    assert response.json == {
        "error": {
            "code": 401,
            "title": "Unauthorized",
            "message": "The request you have made requires authentication.",
        }
    }
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    response, _ = call(build({**rsa_options, "www_authenticate_realm": "glance"}), app, {})
    assert response.status_int == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="glance"'


@pytest.mark.parametrize(
    ("offset", "leeway", "status"),
    [
        (-30, "0", 401),  # expired 30 s ago, no leeway
        (-30, "60", 200),  # ... within the leeway
        (-120, "60", 401),  # ... beyond it
    ],
)
def test_expired(build, app, rsa_options, token, offset, leeway, status):
    now = time.time()
    middleware = build({**rsa_options, "leeway": leeway})
    old = token(now=now + offset - 600, expires_in=600)  # exp = now + offset
    assert call(middleware, app, {"X-Auth-Token": old})[0].status_int == status


@pytest.mark.parametrize(
    ("claim", "ahead", "leeway", "status"),
    [
        ("nbf", 30, "0", 401),
        ("nbf", 30, "60", 200),
        ("nbf", 300, "60", 401),
        ("iat", 30, "0", 401),  # issued in the future
        ("iat", 30, "60", 200),
    ],
)
def test_not_yet_valid(build, app, rsa_options, token, claim, ahead, leeway, status):
    middleware = build({**rsa_options, "leeway": leeway})
    now = time.time()
    value = token(extra={"nbf": int(now + ahead)}) if claim == "nbf" else token(now=now + ahead)
    assert call(middleware, app, {"X-Auth-Token": value})[0].status_int == status


def test_wrong_audience_and_issuer(build, app, rsa_options, token):
    middleware = build({**rsa_options, "audiences": "glance,image"})
    assert call(middleware, app, {"X-Auth-Token": token(audience="image")})[0].status_int == 200
    assert call(middleware, app, {"X-Auth-Token": token(audience="nova")})[0].status_int == 401
    assert call(middleware, app, {"X-Auth-Token": token(issuer=ISS + "/")})[0].status_int == 401
    prefix = token(issuer=ISS[:-3])  # CVE-2024-53861: a substring is not the issuer
    assert call(middleware, app, {"X-Auth-Token": prefix})[0].status_int == 401


def test_missing_required_claims(build, app, rsa_options, keys):
    middleware = build(rsa_options)
    now = int(time.time())
    base = {"iss": ISS, "aud": AUD, "sub": "u", "iat": now, "exp": now + 60}
    for missing in ("exp", "iat", "sub", "aud"):
        claims = {k: v for k, v in base.items() if k != missing}
        value = jwt.encode(claims, keys.rsa, algorithm="RS256")
        assert call(middleware, app, {"X-Auth-Token": value})[0].status_int == 401, missing
    relaxed = build({**rsa_options, "required_claims": "exp,iat"})
    value = jwt.encode({k: v for k, v in base.items() if k != "sub"}, keys.rsa, algorithm="RS256")
    response, env = call(relaxed, app, {"X-Auth-Token": value})
    assert response.status_int == 200 and env["HTTP_X_USER_ID"] is None


def test_max_lifetime(build, app, rsa_options, token):
    middleware = build({**rsa_options, "max_lifetime": "3600", "leeway": "0"})
    assert call(middleware, app, {"X-Auth-Token": token(expires_in=3600)})[0].status_int == 200
    assert call(middleware, app, {"X-Auth-Token": token(expires_in=3601)})[0].status_int == 401


def test_alg_none_is_refused(build, app, rsa_options):
    now = int(time.time())
    claims = {"iss": ISS, "aud": AUD, "sub": "u", "iat": now, "exp": now + 60, "roles": ["admin"]}
    for alg in ("none", "None", "NONE"):
        value = f"{_b64({'alg': alg, 'typ': 'JWT'})}.{_b64(claims)}."
        assert call(build(rsa_options), app, {"X-Auth-Token": value})[0].status_int == 401


def test_hs256_signed_with_the_rsa_public_key_is_refused(build, app, keys, rsa_options):
    """RS->HS confusion (CVE-2015-9235, CVE-2017-11424): the public PEM used as an HMAC secret."""
    import hashlib
    import hmac

    pem = keys.rsa_pem.read_bytes()
    now = int(time.time())
    claims = {"iss": ISS, "aud": AUD, "sub": "u", "iat": now, "exp": now + 60, "roles": ["admin"]}
    signing_input = f"{_b64({'alg': 'HS256', 'typ': 'JWT'})}.{_b64(claims)}"
    signature = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    forged = signing_input + "." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()
    response, env = call(build(rsa_options), app, {"X-Auth-Token": forged})
    assert response.status_int == 401 and env is None
    # Even an issuer configured with both families cannot be built (no mixing).
    from propguard.jwt.config import ConfigError

    with pytest.raises(ConfigError, match="cannot be mixed"):
        build({**rsa_options, "algorithms": "RS256,HS256"})


@pytest.mark.parametrize("name", ["crit", "jku", "x5u", "x5c"])
def test_refused_header_parameters(build, app, rsa_options, keys, name):
    now = int(time.time())
    claims = {"iss": ISS, "aud": AUD, "sub": "u", "iat": now, "exp": now + 60}
    value = {
        "crit": ["exp"],
        "jku": "https://evil.example/jwks",
        "x5u": "https://evil.example/c",
        "x5c": ["MIIB"],
    }[name]
    signed = jwt.encode(claims, keys.rsa, algorithm="RS256", headers={name: value})
    assert call(build(rsa_options), app, {"X-Auth-Token": signed})[0].status_int == 401


def test_oversize_token_refused_before_parsing(build, app, rsa_options, token, monkeypatch):
    middleware = build({**rsa_options, "max_token_size": "2048"})
    big = token(extra={"groups": [f"/projects/{i:032x}" for i in range(60)]})
    assert len(big) > 2048

    def parsed(*args, **kwargs):
        raise AssertionError("an oversize token must not be parsed")

    monkeypatch.setattr("propguard.jwt.validator._b64json", parsed)
    response, env = call(middleware, app, {"X-Auth-Token": big})
    assert response.status_int == 401 and env is None
    with pytest.raises(TokenRejected) as caught:
        middleware.validator.validate(big, use="user")
    assert caught.value.reason == "oversize"


def test_a_12k_token_under_the_default_cap_is_accepted(build, app, rsa_options, token):
    big = token(extra={"groups": [f"/projects/{i:032x}" for i in range(200)]})
    assert 9000 < len(big) < 16384
    assert call(build(rsa_options), app, {"X-Auth-Token": big})[0].status_int == 200


def test_kidless_token_is_tried_against_the_issuers_keys_of_its_algorithm(build, app, keys, token):
    """Keystone JWS tokens carry no kid; the JWKS keys of the same algorithm are tried."""
    middleware = build(
        {"iss": ISS, "audiences": AUD, "algorithms": "RS256,ES256", "jwks_file": str(keys.jwks)}
    )
    for alg in ("RS256", "ES256"):
        assert call(middleware, app, {"X-Auth-Token": token(alg, kid=None)})[0].status_int == 200


def test_unknown_kid_with_static_keys(build, app, keys, token):
    jwks = build({"iss": ISS, "audiences": AUD, "algorithms": "RS256", "jwks_file": str(keys.jwks)})
    assert call(jwks, app, {"X-Auth-Token": token(kid="nope")})[0].status_int == 401
    # A PEM key has no kid: it verifies tokens whatever kid they name.
    pem = build(
        {
            "iss": ISS,
            "audiences": AUD,
            "algorithms": "RS256",
            "public_key_files": f"RS256:{keys.rsa_pem}",
        }
    )
    assert call(pem, app, {"X-Auth-Token": token(kid="any")})[0].status_int == 200


def test_tampered_signature_and_payload(build, app, rsa_options, token):
    header, payload, signature = token(roles=["member"]).split(".")
    forged_payload = json.loads(base64.urlsafe_b64decode(payload + "=="))
    forged_payload["roles"] = ["admin"]
    forged = f"{header}.{_b64(forged_payload)}.{signature}"
    assert call(build(rsa_options), app, {"X-Auth-Token": forged})[0].status_int == 401
    flipped = f"{header}.{payload}.{signature[:-4]}AAAA"
    assert call(build(rsa_options), app, {"X-Auth-Token": flipped})[0].status_int == 401


def test_several_issuers(build, app, keys, token):
    options = {
        "issuers": "kc, dev",
        "kc.iss": ISS,
        "kc.audiences": AUD,
        "kc.algorithms": "RS256",
        "kc.public_key_files": f"RS256:{keys.rsa_pem}",
        "kc.roles_claims": "realm_access.roles",
        "kc.domain_id": "kc-domain",
        "dev.iss": "https://dev.example",
        "dev.audiences": "glance-dev",
        "dev.algorithms": "HS256",
        "dev.hmac_secret_file": f"HS256:{keys.secret_file}",
    }
    middleware = build(options)
    kc = token(extra={"realm_access": {"roles": ["member"]}}, project_id="p")
    response, env = call(middleware, app, {"X-Auth-Token": kc})
    assert response.status_int == 200
    assert env["HTTP_X_ROLES"] == "member"
    assert env["HTTP_X_USER_DOMAIN_ID"] == env["HTTP_X_PROJECT_DOMAIN_ID"] == "kc-domain"
    dev = token("HS256", issuer="https://dev.example", audience="glance-dev", roles=["reader"])
    response, env = call(middleware, app, {"X-Auth-Token": dev})
    assert response.status_int == 200 and env["HTTP_X_ROLES"] == "reader"
    assert env["HTTP_X_USER_DOMAIN_ID"] is None
    # One issuer's audience is not another's.
    cross = token("HS256", issuer="https://dev.example", audience=AUD)
    assert call(middleware, app, {"X-Auth-Token": cross})[0].status_int == 401


def test_typ_restriction(build, app, rsa_options, keys):
    middleware = build({**rsa_options, "allowed_types": "at+jwt"})
    now = int(time.time())
    claims = {"iss": ISS, "aud": AUD, "sub": "u", "iat": now, "exp": now + 60}
    ok = jwt.encode(claims, keys.rsa, algorithm="RS256", headers={"typ": "at+jwt"})
    assert call(middleware, app, {"X-Auth-Token": ok})[0].status_int == 200
    plain = jwt.encode(claims, keys.rsa, algorithm="RS256")  # typ JWT
    assert call(middleware, app, {"X-Auth-Token": plain})[0].status_int == 401


def test_cached_token_still_expires(build, app, rsa_options, token):
    """The verified-token cache skips the signature, never the time checks."""
    middleware = build({**rsa_options, "leeway": "0"})
    value = token(expires_in=60)
    assert call(middleware, app, {"X-Auth-Token": value})[0].status_int == 200
    middleware.validator._clock = lambda: time.time() + 120
    assert call(middleware, app, {"X-Auth-Token": value})[0].status_int == 401
