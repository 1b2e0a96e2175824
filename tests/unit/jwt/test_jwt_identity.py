"""What the JWT filter tells the layers below: keystonemiddleware's headers and ``propguard.identity``.

The expected shapes are keystonemiddleware 13.0.1's (``auth_token/_request.py``):
the same header names, ``None`` for what a token does not say, the same
stripping of client-sent identity headers, and the same service-token rules
(ksm's behaviour matrix, reference identity-and-policy §1.5), except that an
invalid service token never fails the user's request.
"""

from __future__ import annotations

import time

import pytest
import webob
from jwt_unit_constants import ISS

from propguard.identity import credentials_from_environ
from propguard.jwt.filter import STRIPPED

SPOOFED = {
    "X-Identity-Status": "Confirmed",
    "X-Roles": "admin",
    "X-Role": "admin",
    "X-Service-Identity-Status": "Confirmed",
    "X-Service-Roles": "service,admin",
    "X-Service-User-Id": "nova",
    "X-Project-Id": "evil",
    "X-Tenant-Id": "evil",
    "X-User-Id": "mallory",
    "X-Is-Admin-Project": "True",
    "X-Service-Catalog": "[]",
    "OpenStack-System-Scope": "all",
    "X-Domain-Id": "default",
}


def call(middleware, app, headers, method="GET"):
    before = len(app.seen)
    request = webob.Request.blank("/v2/images", headers=headers, method=method)
    response = request.get_response(middleware)
    return response, (app.seen[-1] if len(app.seen) > before else None)


def test_stripped_list_is_keystonemiddlewares_plus_system_scope():
    from keystonemiddleware.auth_token import _request

    request = _request._AuthTokenRequest.blank("/")
    ksm = {"HTTP_" + h.upper().replace("-", "_") for h in request._all_auth_headers()}
    assert set(STRIPPED) == ksm | {"HTTP_OPENSTACK_SYSTEM_SCOPE"}


def test_spoofed_identity_headers_are_stripped(build, app, rsa_options, token):
    middleware = build(rsa_options)
    response, env = call(
        middleware, app, {**SPOOFED, "X-Auth-Token": token(roles=["member"], project_id="p1")}
    )
    assert response.status_int == 200
    assert env["HTTP_X_ROLES"] == "member" and env["HTTP_X_ROLE"] == "member"
    assert env["HTTP_X_PROJECT_ID"] == env["HTTP_X_TENANT_ID"] == "p1"
    assert env["HTTP_X_USER_ID"] == "demo-user"
    assert env["HTTP_OPENSTACK_SYSTEM_SCOPE"] is None
    assert env["HTTP_X_DOMAIN_ID"] is None
    for name in (
        "HTTP_X_SERVICE_IDENTITY_STATUS",
        "HTTP_X_SERVICE_ROLES",
        "HTTP_X_SERVICE_USER_ID",
        "HTTP_X_SERVICE_CATALOG",
    ):
        assert name not in env, name
    credentials = credentials_from_environ(env)
    assert credentials.roles == {"member"} and not credentials.service_roles
    assert credentials.system_scope is None


def test_spoofed_headers_stripped_without_a_token_under_delay(build, app, rsa_options):
    """ksm leaves a spoofed OpenStack-System-Scope in place here (case I); this filter does not."""
    middleware = build({**rsa_options, "delay_auth_decision": "true"})
    response, env = call(middleware, app, dict(SPOOFED))
    assert response.status_int == 200
    assert env["HTTP_X_IDENTITY_STATUS"] == "Invalid"
    assert not any(k in env for k in STRIPPED if k != "HTTP_X_IDENTITY_STATUS")
    assert env["propguard.identity"] == {"identity_status": "Invalid"}
    assert not credentials_from_environ(env).authenticated


def test_no_token_is_401_without_delay(build, app, rsa_options):
    response, env = call(build(rsa_options), app, dict(SPOOFED))
    assert response.status_int == 401 and env is None
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_a_401_from_below_gets_the_challenge(build, app, rsa_options):
    app.status = "401 Unauthorized"
    response, env = call(build({**rsa_options, "delay_auth_decision": "true"}), app, {})
    assert env is not None and response.status_int == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_service_token_with_the_service_role(build, app, rsa_options, token):
    middleware = build(rsa_options)
    user = token(roles=["member"], project_id="p1")
    service = token(subject="nova", roles=["service", "admin"], project_id="svc")
    response, env = call(middleware, app, {"X-Auth-Token": user, "X-Service-Token": service})
    assert response.status_int == 200
    assert env["HTTP_X_SERVICE_IDENTITY_STATUS"] == "Confirmed"
    assert env["HTTP_X_SERVICE_ROLES"] == "service,admin"
    assert env["HTTP_X_SERVICE_USER_ID"] == "nova"
    assert env["HTTP_X_SERVICE_PROJECT_ID"] == "svc"
    assert env["HTTP_X_ROLES"] == "member"  # the user's roles are not mixed with the service's
    credentials = credentials_from_environ(env)
    assert credentials.roles == {"member"}
    assert credentials.service_roles == {"service", "admin"}
    assert credentials.service_user_id == "nova"


@pytest.mark.parametrize("delay", ["false", "true"])
def test_service_token_without_the_service_role_gives_no_service_roles(
    build, app, rsa_options, token, delay
):
    """ksm 13 would 401 here (case C); an invalid service token never fails the user's request."""
    middleware = build({**rsa_options, "delay_auth_decision": delay})
    user = token(roles=["member"])
    plain = token(subject="mallory", roles=["member", "admin"])
    response, env = call(
        middleware,
        app,
        {"X-Auth-Token": user, "X-Service-Token": plain, "X-Service-Roles": "service"},
    )
    assert response.status_int == 200
    assert env["HTTP_X_IDENTITY_STATUS"] == "Confirmed"
    assert env["HTTP_X_SERVICE_IDENTITY_STATUS"] == "Invalid"
    assert "HTTP_X_SERVICE_ROLES" not in env and "HTTP_X_SERVICE_USER_ID" not in env
    assert env["propguard.identity"]["service_identity_status"] == "Invalid"
    assert "service_roles" not in env["propguard.identity"]
    assert not credentials_from_environ(env).service_roles


def test_garbage_service_token_gives_no_service_roles(build, app, rsa_options, token):
    response, env = call(
        build(rsa_options), app, {"X-Auth-Token": token(), "X-Service-Token": "garbage"}
    )
    assert response.status_int == 200
    assert env["HTTP_X_SERVICE_IDENTITY_STATUS"] == "Invalid"


def test_custom_service_token_roles(build, app, rsa_options, token):
    middleware = build({**rsa_options, "service_token_roles": "nova-service"})
    service = token(subject="nova", roles=["service"])
    response, env = call(middleware, app, {"X-Auth-Token": token(), "X-Service-Token": service})
    assert env["HTTP_X_SERVICE_IDENTITY_STATUS"] == "Invalid"
    service = token(subject="nova", roles=["Nova-Service"])
    response, env = call(middleware, app, {"X-Auth-Token": token(), "X-Service-Token": service})
    assert env["HTTP_X_SERVICE_IDENTITY_STATUS"] == "Confirmed"


def test_issuer_token_use_restricts_service_tokens(build, app, keys, token):
    options = {
        "issuers": "users, services",
        "users.iss": ISS,
        "users.audiences": "glance",
        "users.algorithms": "RS256",
        "users.public_key_files": f"RS256:{keys.rsa_pem}",
        "users.token_use": "user",
        "services.iss": "https://services.example",
        "services.audiences": "glance",
        "services.algorithms": "ES256",
        "services.public_key_files": f"ES256:{keys.ec_pem}",
        "services.token_use": "service",
    }
    middleware = build(options)
    user = token(roles=["member"])
    nova_from_user_issuer = token(subject="nova", roles=["service"])
    response, env = call(
        middleware, app, {"X-Auth-Token": user, "X-Service-Token": nova_from_user_issuer}
    )
    assert env["HTTP_X_SERVICE_IDENTITY_STATUS"] == "Invalid"
    nova = token("ES256", issuer="https://services.example", subject="nova", roles=["service"])
    response, env = call(middleware, app, {"X-Auth-Token": user, "X-Service-Token": nova})
    assert env["HTTP_X_SERVICE_IDENTITY_STATUS"] == "Confirmed"
    # ...and a service issuer's token is no user token.
    response, env = call(middleware, app, {"X-Auth-Token": nova})
    assert response.status_int == 401


@pytest.mark.parametrize(
    ("expired_ago", "service_roles", "window", "status"),
    [
        (600, ["service"], "3600", 200),  # within the window, with a service role
        (7200, ["service"], "3600", 401),  # after the window
        (600, ["member"], "3600", 401),  # a service token without the service role
        (600, None, "3600", 401),  # no service token
        (600, ["service"], "0", 401),  # window 0: never
    ],
)
def test_expired_user_token_with_a_service_token(
    build, app, rsa_options, token, expired_ago, service_roles, window, status
):
    middleware = build({**rsa_options, "allow_expired_window": window, "leeway": "0"})
    now = time.time()
    user = token(roles=["member"], now=now - expired_ago - 3600, expires_in=3600)
    headers = {"X-Auth-Token": user}
    if service_roles is not None:
        headers["X-Service-Token"] = token(subject="nova", roles=service_roles)
    response, env = call(middleware, app, headers)
    assert response.status_int == status
    if status == 200:
        assert env["HTTP_X_IDENTITY_STATUS"] == "Confirmed"
        assert env["HTTP_X_SERVICE_IDENTITY_STATUS"] == "Confirmed"
        assert env["propguard.jwt"]["user_expired"] is True


def test_expired_service_token_is_invalid(build, app, rsa_options, token):
    middleware = build({**rsa_options, "leeway": "0"})
    service = token(subject="nova", roles=["service"], now=time.time() - 7200, expires_in=3600)
    response, env = call(middleware, app, {"X-Auth-Token": token(), "X-Service-Token": service})
    assert response.status_int == 200
    assert env["HTTP_X_SERVICE_IDENTITY_STATUS"] == "Invalid"


def test_keycloak_shaped_token(build, app, rsa_options, token):
    """A Keycloak access token: realm and client roles, scope, azp, preferred_username."""
    middleware = build(
        {
            **rsa_options,
            "roles_claims": "realm_access.roles, resource_access.glance.roles",
            "project_id_claim": "openstack.project_id",
        }
    )
    claims = {
        "typ": "Bearer",
        "azp": "glance",
        "preferred_username": "alice",
        "scope": "openid profile email",
        "realm_access": {"roles": ["offline_access", "Member", "uma_authorization"]},
        "resource_access": {"glance": {"roles": ["reader"]}, "account": {"roles": ["admin"]}},
        "openstack": {"project_id": "p-kc"},
    }
    response, env = call(middleware, app, {"X-Auth-Token": token(extra=claims, roles=None)})
    assert response.status_int == 200
    assert env["HTTP_X_ROLES"] == "offline_access,member,uma_authorization,reader"
    assert env["HTTP_X_USER_NAME"] == "alice"
    assert env["HTTP_X_PROJECT_ID"] == "p-kc"
    assert "admin" not in credentials_from_environ(env).roles  # another client's role


def test_client_id_with_dots_and_scope(build, app, rsa_options, token):
    middleware = build({**rsa_options, "roles_claims": r"resource_access.my\.client.roles, scope"})
    claims = {"resource_access": {"my.client": {"roles": ["member"]}}, "scope": "reader  glance:x"}
    response, env = call(middleware, app, {"X-Auth-Token": token(extra=claims)})
    assert env["HTTP_X_ROLES"] == "member,reader,glance:x"


@pytest.mark.parametrize(
    "roles_claim",
    [
        {},  # missing
        {"roles": None},
        {"roles": 42},
        {"roles": {"admin": True}},
        {"roles": ["member", 7]},  # a list with a non-string
        {"realm_access": "admin"},  # a path through a non-object
    ],
)
def test_missing_or_malformed_roles_give_no_roles(build, app, rsa_options, token, roles_claim):
    middleware = build({**rsa_options, "roles_claims": "roles, realm_access.roles"})
    value = token(roles=None, extra={"roles": [], **roles_claim})
    if "roles" not in roles_claim:
        value = token(roles=None, extra=roles_claim)
    response, env = call(middleware, app, {"X-Auth-Token": value})
    assert response.status_int == 200  # a valid token, but nobody special
    assert env["HTTP_X_ROLES"] == ""
    assert credentials_from_environ(env).roles == frozenset()


def test_system_scope_claim_and_domain_mapping(build, app, rsa_options, token):
    middleware = build(
        {**rsa_options, "system_scope_claim": "openstack_system", "domain_id": "ldap"}
    )
    response, env = call(
        middleware, app, {"X-Auth-Token": token(roles=["admin"], extra={"openstack_system": "all"})}
    )
    assert env["HTTP_OPENSTACK_SYSTEM_SCOPE"] == "all"
    assert env["HTTP_X_USER_DOMAIN_ID"] == "ldap"
    assert env["HTTP_X_PROJECT_DOMAIN_ID"] is None  # no project, no project domain
    assert credentials_from_environ(env).system_scope == "all"
    # Without the option, the same claim does nothing.
    plain = build(rsa_options)
    response, env = call(
        plain, app, {"X-Auth-Token": token(roles=["admin"], extra={"openstack_system": "all"})}
    )
    assert env["HTTP_OPENSTACK_SYSTEM_SCOPE"] is None


def test_glance_context_reads_the_same_as_from_auth_token(build, app, rsa_options, token):
    """oslo.context (what Glance's context filter builds) sees the validated identity."""
    from oslo_context import context

    middleware = build(rsa_options)
    user = token(roles=["member", "reader"], project_id="p1", subject="u1")
    service = token(subject="nova", roles=["service"], project_id="svc")
    _, env = call(middleware, app, {"X-Auth-Token": user, "X-Service-Token": service})
    values = context.RequestContext.from_environ(env).to_policy_values()
    assert values["user_id"] == "u1" and values["project_id"] == "p1"
    assert sorted(values["roles"]) == ["member", "reader"]
    assert values["service_roles"] == ["service"] and values["service_user_id"] == "nova"
    assert values["system_scope"] is None
