"""Tokens minted and signed correctly by a trusted issuer, with hostile content (issue 20).

One claim value is at most one role, taken exactly or refused; identity
values a header cannot carry unchanged refuse the token (ids) or are dropped
(names); every header and claim type is checked before use; nothing in a
token, valid or not, makes the filter raise (which a server answers 500).
Every case goes through the whole filter with real RS256 signatures.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid

import pytest
import webob
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jwt.algorithms import RSAAlgorithm
from jwt_unit_constants import AUD, ISS

from propguard.identity import credentials_from_environ

#: Names that must never become a role (and above all not the role they pad or hide).
NOT_ROLES = [
    "member,admin",
    ",admin",
    " admin",
    "admin ",
    "admin\u00a0",  # no-break space (Latin-1)
    "\u3000admin",  # ideographic space
    "\u2003admin",  # em space
    "\tadmin",
    "admin\n",
    "admin\r\nX-Roles: admin",
    "ad\u200bmin",  # zero-width space (format)
    "\ufeffadmin",  # byte order mark (format)
    "ad\u00admin",  # soft hyphen (format, Latin-1)
    "admin\x00",
    "admin\x85",  # C1 control NEL
    "adm in",
    "\u0430dmin",  # Cyrillic a: outside Latin-1
    "\u0130",  # lower() gives 'i' + U+0307, outside Latin-1
    "",
    "a" * 256,
]


def call(middleware, app, headers):
    before = len(app.seen)
    response = webob.Request.blank("/v2/images", headers=headers).get_response(middleware)
    return response, (app.seen[-1] if len(app.seen) > before else None)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def raw_token(keys, header: str, payload: str) -> str:
    """An RS256 token from header and payload JSON texts, signed with the session's key."""
    signing_input = f"{_b64(header.encode())}.{_b64(payload.encode())}"
    signature = RSAAlgorithm(RSAAlgorithm.SHA256).sign(signing_input.encode(), keys.rsa)
    return f"{signing_input}.{_b64(signature)}"


def claims(**extra) -> dict:
    now = int(time.time())
    return {"iss": ISS, "aud": AUD, "sub": "u1", "iat": now, "exp": now + 600, **extra}


# -- 1. one claim value is one role, exactly or none ---------------------------------


@pytest.mark.parametrize("name", NOT_ROLES, ids=ascii)
@pytest.mark.parametrize("where", ["roles", "realm_access.roles"])
def test_a_name_that_is_not_exactly_one_role_gives_no_role(
    build, app, rsa_options, token, name, where
):
    middleware = build({**rsa_options, "roles_claims": where, "token_cache_size": "0"})
    value = ["member", name]
    kwargs = {"roles": value} if where == "roles" else {"extra": {"realm_access": {"roles": value}}}
    response, env = call(middleware, app, {"X-Auth-Token": token(**kwargs)})
    assert response.status_int == 200
    assert env["HTTP_X_ROLES"] == "member"
    assert credentials_from_environ(env).roles == frozenset({"member"})


def test_a_string_claim_is_split_on_spaces_only(build, app, rsa_options, token):
    middleware = build({**rsa_options, "roles_claims": "scope", "token_cache_size": "0"})
    response, env = call(
        middleware, app, {"X-Auth-Token": token(extra={"scope": "reader member,admin  Glance"})}
    )
    assert env["HTTP_X_ROLES"] == "reader,glance"  # 'member,admin' is one word: no role


def test_exact_names_are_kept_lower_cased(build, app, rsa_options, token):
    middleware = build({**rsa_options, "token_cache_size": "0"})
    names = ["Member", "glance:reader", "r\u00f4le", "x" * 255]
    response, env = call(middleware, app, {"X-Auth-Token": token(roles=names)})
    assert env["HTTP_X_ROLES"].split(",") == ["member", "glance:reader", "r\u00f4le", "x" * 255]


def test_a_refused_name_is_logged_once_per_issuer_and_name_without_the_token(
    build, app, rsa_options, token, caplog
):
    middleware = build({**rsa_options, "token_cache_size": "0"})
    caplog.set_level(logging.WARNING, logger="propguard.jwt.claims")
    unique = uuid.uuid4().hex[:8]  # the log-once memory is the process's
    names = [f"member,admin{unique}", f"x\ny{unique}"]
    tokens = [token(roles=names, subject=f"u{i}") for i in range(3)]
    for text in tokens:
        call(middleware, app, {"X-Auth-Token": text})
    lines = [r.getMessage() for r in caplog.records if r.name == "propguard.jwt.claims"]
    assert len(lines) == 2, lines
    assert any(f"'member,admin{unique}'" in line and "comma" in line for line in lines)
    assert any(f"'x\\ny{unique}'" in line for line in lines)  # escaped: no forged log line
    assert not any(text in line for line in lines for text in tokens)


# -- 1. identity claims a header cannot carry ----------------------------------------

BAD_IDS = [
    "p1\r\nX-Roles: admin",
    "p1\x00",
    "\u5c71\u7530",
    " p1",
    "p1\u00a0",
    "p\u200b1",
    "x" * 256,
]


@pytest.mark.parametrize("claim", ["sub", "project_id", "user_domain_id", "project_domain_id"])
@pytest.mark.parametrize("value", BAD_IDS, ids=ascii)
def test_an_id_a_header_cannot_carry_refuses_the_token(
    build, app, rsa_options, token, claim, value
):
    middleware = build({**rsa_options, "token_cache_size": "0"})
    extra = {claim: value}
    if claim == "sub":
        text = token(subject=value, project_id="p1")
    else:
        text = token(project_id="p1", extra=extra)
    response, env = call(middleware, app, {"X-Auth-Token": text})
    assert response.status_int == 401 and env is None
    delayed = build({**rsa_options, "token_cache_size": "0", "delay_auth_decision": "true"})
    response, env = call(delayed, app, {"X-Auth-Token": text})
    assert response.status_int == 200
    assert env["HTTP_X_IDENTITY_STATUS"] == "Invalid"
    assert not any(value in str(v) for v in env.values() if isinstance(v, str))


@pytest.mark.parametrize("value", ["\u5c71\u7530", "bob\r\n", "\tbob", "b\u200bob"], ids=ascii)
def test_a_name_a_header_cannot_carry_is_dropped(build, app, rsa_options, token, value):
    middleware = build({**rsa_options, "token_cache_size": "0"})
    text = token(project_id="p1", extra={"preferred_username": value, "project_name": value})
    response, env = call(middleware, app, {"X-Auth-Token": text})
    assert response.status_int == 200
    assert env["HTTP_X_USER_NAME"] is None and env["HTTP_X_PROJECT_NAME"] is None
    assert env["HTTP_X_USER_ID"] == "demo-user" and env["HTTP_X_PROJECT_ID"] == "p1"


def test_latin1_names_and_inner_spaces_are_kept(build, app, rsa_options, token):
    middleware = build({**rsa_options, "token_cache_size": "0"})
    text = token(project_id="p1", extra={"preferred_username": "Jos\u00e9 Mar\u00eda"})
    assert call(middleware, app, {"X-Auth-Token": text})[1]["HTTP_X_USER_NAME"] == (
        "Jos\u00e9 Mar\u00eda"
    )


def test_every_identity_header_value_is_latin1_and_unsplittable(build, app, rsa_options, token):
    """What urllib3 (propguard serve) and Glance's context need: one line, Latin-1."""
    middleware = build({**rsa_options, "token_cache_size": "0"})
    text = token(
        roles=["member", "a,b", "\u5c71"],
        project_id="p1",
        extra={"preferred_username": "\u5c71\u7530", "project_name": "ok"},
    )
    env = call(middleware, app, {"X-Auth-Token": text})[1]
    for key, value in env.items():
        if key.startswith("HTTP_X_") and isinstance(value, str):
            value.encode("latin-1")
            assert "\r" not in value and "\n" not in value


# -- 2. every header and claim type checked before use: never an exception -------------


@pytest.mark.parametrize(
    "typ", [["JWT"], {"a": 1}, 1, True], ids=["list", "object", "number", "bool"]
)
@pytest.mark.parametrize("allowed_types", ["", "at+jwt"])
@pytest.mark.parametrize("signed", [True, False])
def test_a_typ_that_is_not_a_string_is_a_401(
    build, app, rsa_options, keys, typ, allowed_types, signed
):
    """Today a list or object typ is a TypeError (a 500), before any signature check."""
    options = {**rsa_options, "token_cache_size": "0", "delay_auth_decision": "true"}
    if allowed_types:
        options["allowed_types"] = allowed_types
    middleware = build(options)
    header = json.dumps({"alg": "RS256", "typ": typ})
    text = raw_token(keys, header, json.dumps(claims()))
    if not signed:
        text = text.rsplit(".", 1)[0] + ".AAAA"
    response, env = call(middleware, app, {"X-Auth-Token": text})
    assert response.status_int == 200
    assert env["HTTP_X_IDENTITY_STATUS"] == "Invalid"


@pytest.mark.parametrize("where", ["header", "payload"])
@pytest.mark.parametrize("depth", [20, 995])
def test_deep_nesting_is_refused_before_pyjwt_parses_it(
    build, app, rsa_options, keys, where, depth
):
    """Depth 995 is within orjson's limit but a RecursionError in PyJWT's json: a 500 today."""
    middleware = build({**rsa_options, "token_cache_size": "0"})
    nested = "[" * depth + "]" * depth
    header = json.dumps({"alg": "RS256"})
    payload = json.dumps(claims())
    if where == "header":
        header = header[:-1] + f', "x": {nested}}}'
    else:
        payload = payload[:-1] + f', "x": {nested}}}'
    text = raw_token(keys, header, payload)
    assert call(middleware, app, {"X-Auth-Token": text})[0].status_int == 401
    if where == "header":  # unsigned: refused all the same
        unsigned = text.rsplit(".", 1)[0] + ".AAAA"
        assert call(middleware, app, {"X-Auth-Token": unsigned})[0].status_int == 401


@pytest.mark.parametrize("exp", ["1e400", "-1e400", "NaN", "true", '"soon"', "[1]"])
@pytest.mark.parametrize("max_lifetime", ["0", "86400"])
def test_exp_must_be_a_finite_number(build, app, rsa_options, keys, exp, max_lifetime):
    middleware = build({**rsa_options, "token_cache_size": "0", "max_lifetime": max_lifetime})
    payload = json.dumps({k: v for k, v in claims().items() if k != "exp"})
    text = raw_token(keys, json.dumps({"alg": "RS256"}), payload[:-1] + f', "exp": {exp}}}')
    assert call(middleware, app, {"X-Auth-Token": text})[0].status_int == 401


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
HEADER_KEYS = st.sampled_from(["typ", "kid", "cty", "alg", "x5t", "zip", "enc"])
CLAIM_KEYS = st.sampled_from(
    ["iss", "aud", "sub", "exp", "iat", "nbf", "jti", "roles", "project_id", "preferred_username"]
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    header_extra=st.dictionaries(HEADER_KEYS, JSON, max_size=3),
    claim_extra=st.dictionaries(CLAIM_KEYS, JSON, max_size=3),
)
def test_no_header_or_claim_value_makes_the_filter_raise(
    build, app, rsa_options, keys, header_extra, claim_extra
):
    """Signed by the trusted key, any JSON in any header or claim: 200 or 401, never a raise."""
    middleware = build({**rsa_options, "token_cache_size": "0", "allowed_types": "JWT,at+jwt"})
    header = {"alg": "RS256", "typ": "JWT", **header_extra}
    text = raw_token(keys, json.dumps(header), json.dumps({**claims(), **claim_extra}))
    response, env = call(middleware, app, {"X-Auth-Token": text})
    assert response.status_int in (200, 401)
    if env is not None:
        for key, value in env.items():
            if key.startswith("HTTP_X_") and isinstance(value, str):
                value.encode("latin-1")


def test_an_unforeseen_error_is_a_refusal_not_an_exception(
    build, app, rsa_options, token, monkeypatch, caplog
):
    middleware = build({**rsa_options, "token_cache_size": "0"})

    def boom(*args, **kwargs):
        raise AttributeError("a bug")

    monkeypatch.setattr(middleware.validator, "_verify", boom)
    text = token()
    response, env = call(middleware, app, {"X-Auth-Token": text})
    assert response.status_int == 401 and env is None
    assert "AttributeError" in caplog.text and text not in caplog.text
