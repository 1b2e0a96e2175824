"""``credentials_from_environ``: Credentials only from what a trusted auth layer validated.

Environ dicts are built by hand in the shape keystonemiddleware 13.0.1's ``auth_token``
leaves them (identity-and-policy reference §1.2-§1.7); ``keystone.token_auth`` is a tiny
stand-in with ``.user.system_scoped`` (and ``.service``), like ``UserAuthPlugin``.
"""

from __future__ import annotations

import copy

import pytest

from propguard.identity import (
    ANONYMOUS,
    Credentials,
    credentials_from_environ,
    parse_roles,
    trusted_auth_ran,
)

SPOOFED = {
    "HTTP_X_IDENTITY_STATUS": "Confirmed",
    "HTTP_X_ROLES": "admin",
    "HTTP_X_SERVICE_IDENTITY_STATUS": "Confirmed",
    "HTTP_X_SERVICE_ROLES": "service,admin",
    "HTTP_X_PROJECT_ID": "evil",
    "HTTP_X_USER_ID": "mallory",
    "HTTP_X_IS_ADMIN_PROJECT": "True",
    "HTTP_OPENSTACK_SYSTEM_SCOPE": "all",
}


class AccessInfo:
    """Stand-in for keystoneauth1's ``AccessInfoV3`` (only what propguard reads)."""

    def __init__(self, role_names=(), system_scoped=False):
        self.role_names = list(role_names)
        self.system_scoped = system_scoped


class TokenAuth:
    """Stand-in for keystonemiddleware's ``UserAuthPlugin`` (``keystone.token_auth``)."""

    def __init__(self, user=None, service=None):
        self.user = user
        self.service = service

    @property
    def has_user_token(self):
        return self.user is not None

    @property
    def has_service_token(self):
        return self.service is not None


def user_environ(roles="member,reader", system_scoped=False, **extra):
    """Matrix row A: a valid project-scoped user token (unset attributes are ``None``)."""
    environ = {
        "keystone.token_auth": TokenAuth(AccessInfo(roles.split(","), system_scoped)),
        "HTTP_X_IDENTITY_STATUS": "Confirmed",
        "HTTP_X_ROLES": roles,
        "HTTP_X_USER_ID": "u1",
        "HTTP_X_USER_NAME": "alice",
        "HTTP_X_PROJECT_ID": None if system_scoped else "p1",
        "HTTP_X_DOMAIN_ID": None,
        "HTTP_X_IS_ADMIN_PROJECT": "True",
        "HTTP_OPENSTACK_SYSTEM_SCOPE": "all" if system_scoped else None,
        "HTTP_X_AUTH_TOKEN": "usertok1",
    }
    environ.update(extra)
    return environ


def with_service(environ, roles="service,admin", status="Confirmed", system_scoped=False):
    """Matrix row B: plus an ``X-Service-Token`` (auth_token overwrites the system scope)."""
    environ = dict(environ)
    environ["keystone.token_auth"] = TokenAuth(
        environ["keystone.token_auth"].user, AccessInfo(roles.split(","), system_scoped)
    )
    environ.update(
        {
            "HTTP_X_SERVICE_IDENTITY_STATUS": status,
            "HTTP_X_SERVICE_ROLES": roles if status == "Confirmed" else None,
            "HTTP_X_SERVICE_USER_ID": "nova-uid",
            "HTTP_X_SERVICE_PROJECT_ID": "svcproj",
            "HTTP_X_SERVICE_TOKEN": "04c4a672",
            "HTTP_OPENSTACK_SYSTEM_SCOPE": "all" if system_scoped else None,
        }
    )
    return environ


# --- no trusted auth layer ------------------------------------------------------


def test_no_auth_layer_is_anonymous_even_with_spoofed_headers():
    environ = dict(SPOOFED)
    assert not trusted_auth_ran(environ)
    c = credentials_from_environ(environ)
    assert c is ANONYMOUS
    assert not c.authenticated and c.roles == frozenset() and c.service_roles == frozenset()
    assert c.system_scope is None and not c.is_admin_project
    assert c.describe() == "anonymous"


@pytest.mark.parametrize("status", ["Invalid", None, "confirmed", ""])
def test_user_not_confirmed_is_anonymous(status):
    """Matrix H/I: ``delay_auth_decision`` passes requests with ``X-Identity-Status: Invalid``
    downstream; spoofed ``OpenStack-System-Scope: all`` survives there, but counts for nothing."""
    environ = {**SPOOFED, "keystone.token_auth": TokenAuth(), "HTTP_X_IDENTITY_STATUS": status}
    assert trusted_auth_ran(environ)
    assert credentials_from_environ(environ) is ANONYMOUS


def test_auth_layer_keys_are_not_headers():
    """A client can only produce ``HTTP_*`` keys; the trusted markers are not headers."""
    assert not trusted_auth_ran({"HTTP_KEYSTONE.TOKEN_AUTH": "x", "HTTP_PROPGUARD.IDENTITY": "x"})
    assert trusted_auth_ran({"keystone.token_auth": TokenAuth()})
    assert trusted_auth_ran({"propguard.identity": {}})


# --- confirmed user -------------------------------------------------------------


def test_confirmed_user_roles_lower_cased():
    c = credentials_from_environ(user_environ(roles="Member, READER,,admin "))
    assert c.authenticated
    assert c.roles == frozenset({"member", "reader", "admin"})
    assert (c.user_id, c.project_id, c.domain_id) == ("u1", "p1", None)
    assert c.service_roles == frozenset() and not c.has_service_token
    assert c.is_admin_project is True
    assert c.describe() == "user=u1 project=p1 roles=admin,member,reader"


def test_none_values_from_auth_token_are_absent():
    """auth_token writes unset attributes as ``None`` values, not missing keys."""
    environ = user_environ(
        HTTP_X_PROJECT_ID=None,
        HTTP_X_ROLES=None,
        HTTP_X_DOMAIN_ID=None,
        HTTP_X_IS_ADMIN_PROJECT=None,
        HTTP_X_SERVICE_IDENTITY_STATUS=None,
        HTTP_X_SERVICE_ROLES=None,
        HTTP_X_TENANT_ID="p-legacy",
    )
    c = credentials_from_environ(environ)
    assert c.authenticated
    assert c.roles == frozenset()
    assert c.project_id == "p-legacy"  # None X-Project-Id falls through to X-Tenant-Id
    assert c.domain_id is None and c.is_admin_project is False
    assert c.service_roles == frozenset()
    environ["HTTP_X_TENANT_ID"] = None
    assert credentials_from_environ(environ).project_id is None


def test_is_admin_project_only_when_true():
    assert credentials_from_environ(user_environ(HTTP_X_IS_ADMIN_PROJECT="true")).is_admin_project
    assert not credentials_from_environ(
        user_environ(HTTP_X_IS_ADMIN_PROJECT="False")
    ).is_admin_project
    environ = user_environ()
    del environ["HTTP_X_IS_ADMIN_PROJECT"]
    # oslo.context defaults to True when absent; propguard fails closed.
    assert credentials_from_environ(environ).is_admin_project is False


# --- service tokens -------------------------------------------------------------


def test_confirmed_service_token_with_service_role():
    """Matrix B: user + valid service token with roles ``service,admin``."""
    c = credentials_from_environ(with_service(user_environ(), roles="Service,Admin"))
    assert c.roles == frozenset({"member", "reader"})
    assert c.service_roles == frozenset({"service", "admin"})
    assert (c.service_user_id, c.service_project_id) == ("nova-uid", "svcproj")
    assert c.has_service_token
    assert "service_roles=admin,service" in c.describe()
    assert "04c4a672" not in c.describe() and "usertok1" not in c.describe()


def test_confirmed_service_token_without_configured_role_has_no_service_roles():
    """Matrix L: ``service_token_roles_required=false`` lets a plain token through as
    ``Confirmed`` with ``X-Service-Roles: member``; propguard checks the roles itself."""
    c = credentials_from_environ(with_service(user_environ(), roles="member"))
    assert c.authenticated and c.roles == frozenset({"member", "reader"})
    assert c.service_roles == frozenset()
    assert c.service_user_id is None and c.service_project_id is None
    assert not c.has_service_token


@pytest.mark.parametrize("status", ["Invalid", None, "CONFIRMED"])
def test_service_status_not_confirmed_has_no_service_roles(status):
    """Matrix J/K: under ``delay_auth_decision`` a rejected service token gives
    ``X-Service-Identity-Status: Invalid`` while ``token_auth.has_service_token`` may still be
    True with the rejected token's roles: neither counts."""
    environ = with_service(user_environ(), status="Confirmed")
    environ["HTTP_X_SERVICE_IDENTITY_STATUS"] = status
    assert environ["keystone.token_auth"].has_service_token
    c = credentials_from_environ(environ)
    assert c.authenticated and c.service_roles == frozenset()
    assert c.service_user_id is None


def test_configured_service_token_roles():
    environ = with_service(user_environ(), roles="nova")
    assert credentials_from_environ(environ).service_roles == frozenset()
    c = credentials_from_environ(environ, service_token_roles=["Nova", "cinder"])
    assert c.service_roles == frozenset({"nova"})
    assert credentials_from_environ(environ, service_token_roles=[]).service_roles == frozenset()
    assert credentials_from_environ(environ, service_token_roles=[" "]).service_roles == frozenset()


def test_service_roles_without_confirmed_user_are_ignored():
    environ = with_service(user_environ())
    environ["HTTP_X_IDENTITY_STATUS"] = "Invalid"
    assert credentials_from_environ(environ) is ANONYMOUS


# --- system scope ----------------------------------------------------------------


def test_system_scope_from_validated_user_token():
    """Matrix G: a system-scoped admin token."""
    c = credentials_from_environ(user_environ(roles="admin", system_scoped=True))
    assert c.system_scope == "all"
    assert c.policy_values()["system"] == "all"
    assert c.project_id is None


def test_spoofed_system_scope_header_is_ignored():
    """Matrix I: ``OpenStack-System-Scope`` is not stripped by auth_token."""
    c = credentials_from_environ(user_environ(HTTP_OPENSTACK_SYSTEM_SCOPE="all"))
    assert c.authenticated and c.system_scope is None
    assert "system" not in c.policy_values()


def test_service_token_system_scope_does_not_leak_to_user():
    """Matrix M: project user + system-scoped service token => header says ``all``."""
    environ = with_service(user_environ(), system_scoped=True)
    assert environ["HTTP_OPENSTACK_SYSTEM_SCOPE"] == "all"
    assert credentials_from_environ(environ).system_scope is None


def test_user_system_scope_survives_project_service_token():
    """Matrix N: system-scoped user + project service token => header ``None``."""
    environ = with_service(user_environ(roles="admin", system_scoped=True))
    assert environ["HTTP_OPENSTACK_SYSTEM_SCOPE"] is None
    assert credentials_from_environ(environ).system_scope == "all"


def test_token_auth_without_user_gives_no_system_scope():
    environ = user_environ(HTTP_OPENSTACK_SYSTEM_SCOPE="all")
    environ["keystone.token_auth"] = TokenAuth(user=None)
    assert credentials_from_environ(environ).system_scope is None


# --- propguard's own identity layer and the header opt-in ---------------------


def test_propguard_identity_marker():
    environ = {
        "propguard.identity": {"system_scope": "all"},
        "HTTP_X_IDENTITY_STATUS": "Confirmed",
        "HTTP_X_ROLES": "Reader",
        "HTTP_OPENSTACK_SYSTEM_SCOPE": "bogus",
    }
    c = credentials_from_environ(environ)
    assert c.authenticated and c.roles == frozenset({"reader"})
    assert c.system_scope == "all"


def test_trust_identity_headers_opt_in():
    environ = dict(SPOOFED)
    c = credentials_from_environ(environ, trust_identity_headers=True)
    assert c.authenticated
    assert c.roles == frozenset({"admin"})
    assert c.service_roles == frozenset({"service", "admin"})
    assert c.project_id == "evil" and c.system_scope == "all"
    # Still requires a confirmed user.
    environ["HTTP_X_IDENTITY_STATUS"] = "Invalid"
    assert credentials_from_environ(environ, trust_identity_headers=True) is ANONYMOUS


# --- Credentials ------------------------------------------------------------------


def test_credentials_are_hashable_values_and_environ_is_untouched():
    environ = with_service(user_environ())
    before = copy.copy(environ)
    a = credentials_from_environ(environ)
    b = credentials_from_environ(environ)
    assert environ == before
    # Equal callers share one interned, immutable object (the decision cache
    # then matches by identity); a fresh equal value still compares equal.
    assert a == b and hash(a) == hash(b) and a is b
    c = Credentials(**{f: getattr(a, f) for f in a.__dataclass_fields__ if f != "_hash"})
    assert c == a and hash(c) == hash(a) and c is not a
    assert len({a, b, c, ANONYMOUS}) == 2
    assert a != Credentials(authenticated=True, roles=a.roles)


def test_parse_roles():
    assert parse_roles(None) == frozenset()
    assert parse_roles("") == frozenset()
    assert parse_roles(" A ,b,, ,B") == frozenset({"a", "b"})


def test_policy_values_shape():
    c = credentials_from_environ(with_service(user_environ()))
    values = c.policy_values()
    assert values["roles"] == ["member", "reader"]
    assert values["service_roles"] == ["admin", "service"]
    assert values["project_id"] == "p1" and values["service_user_id"] == "nova-uid"
    assert values["is_admin_project"] is True
    assert "system" not in values
    assert c.policy_values(union=True)["roles"] == ["admin", "member", "reader", "service"]


# --- domain ids and the full to_policy_values() shape ---------------------------------

DOMAINS = {
    "HTTP_X_USER_DOMAIN_ID": "ud1",
    "HTTP_X_PROJECT_DOMAIN_ID": "pd1",
}
SERVICE_DOMAINS = {
    "HTTP_X_SERVICE_USER_DOMAIN_ID": "sud1",
    "HTTP_X_SERVICE_PROJECT_DOMAIN_ID": "spd1",
}


def domain_environ(**extra):
    """A confirmed user relayed by a confirmed service, with every domain id auth_token sets."""
    environ = with_service(user_environ(**DOMAINS))
    environ.update(SERVICE_DOMAINS)
    environ.update(extra)
    return environ


def test_domain_ids_of_a_confirmed_user_and_service():
    c = credentials_from_environ(domain_environ())
    assert (c.user_domain_id, c.project_domain_id) == ("ud1", "pd1")
    assert (c.service_user_domain_id, c.service_project_domain_id) == ("sud1", "spd1")
    values = c.policy_values()
    assert values["user_domain_id"] == "ud1" and values["project_domain_id"] == "pd1"
    assert values["service_user_domain_id"] == "sud1"
    assert values["service_project_domain_id"] == "spd1"


@pytest.mark.parametrize(
    "change",
    [
        {"HTTP_X_SERVICE_IDENTITY_STATUS": "Invalid"},
        {"HTTP_X_SERVICE_IDENTITY_STATUS": None},
        {"HTTP_X_SERVICE_ROLES": "member"},  # no configured service token role
    ],
    ids=["invalid", "no-status", "no-service-role"],
)
def test_service_domain_ids_only_with_a_counted_service_token(change):
    """Like the service user/project ids: only from a service token whose roles count."""
    c = credentials_from_environ(domain_environ(**change))
    assert c.service_roles == frozenset()
    assert (c.service_user_id, c.service_project_id) == (None, None)
    assert (c.service_user_domain_id, c.service_project_domain_id) == (None, None)
    # The user's own domain ids are the user's: they stay.
    assert (c.user_domain_id, c.project_domain_id) == ("ud1", "pd1")


def test_domain_ids_need_a_trusted_confirmed_user():
    spoofed = dict(SPOOFED, **DOMAINS, **SERVICE_DOMAINS)
    assert credentials_from_environ(spoofed) is ANONYMOUS  # no auth layer ran
    assert credentials_from_environ(domain_environ(HTTP_X_IDENTITY_STATUS="Invalid")) is ANONYMOUS
    # auth_token's None values are absent values.
    c = credentials_from_environ(
        domain_environ(HTTP_X_USER_DOMAIN_ID=None, HTTP_X_SERVICE_PROJECT_DOMAIN_ID="None")
    )
    assert c.user_domain_id is None and c.service_project_domain_id is None
    # The gateway opt-in reads them from the same headers.
    gateway = {k: v for k, v in domain_environ().items() if k != "keystone.token_auth"}
    c = credentials_from_environ(gateway, trust_identity_headers=True)
    assert (c.user_domain_id, c.service_user_domain_id) == ("ud1", "sud1")


@pytest.mark.parametrize(
    "field",
    [
        "user_domain_id",
        "project_domain_id",
        "service_user_domain_id",
        "service_project_domain_id",
        "domain_id",
    ],
)
def test_callers_differing_only_in_a_domain_id_are_different_keys(field):
    """Credentials key the decision cache: a policy reading a domain id must never get the
    answer cached for a caller in another domain."""
    base = credentials_from_environ(domain_environ(HTTP_X_DOMAIN_ID="d1"))
    other = Credentials(
        **{
            name: ("elsewhere" if name == field else getattr(base, name))
            for name in base.__dataclass_fields__
            if name != "_hash"
        }
    )
    assert other != base and hash(other) != hash(base)
    assert len({base, other}) == 2
    environ_field = {
        "user_domain_id": "HTTP_X_USER_DOMAIN_ID",
        "project_domain_id": "HTTP_X_PROJECT_DOMAIN_ID",
        "service_user_domain_id": "HTTP_X_SERVICE_USER_DOMAIN_ID",
        "service_project_domain_id": "HTTP_X_SERVICE_PROJECT_DOMAIN_ID",
        "domain_id": "HTTP_X_DOMAIN_ID",
    }[field]
    interned = credentials_from_environ(
        domain_environ(**{"HTTP_X_DOMAIN_ID": "d1", environ_field: "elsewhere"})
    )
    assert interned == other and interned is not base


def test_every_compared_field_is_hashed():
    """A field added to Credentials later is part of the cache key without more code."""
    base = Credentials(authenticated=True)
    for name, spec in Credentials.__dataclass_fields__.items():
        if not spec.compare:
            continue
        value = getattr(base, name)
        changed = (
            not value
            if isinstance(value, bool)
            else frozenset({"x"})
            if isinstance(value, frozenset)
            else "x"
        )
        other = Credentials(
            **{
                n: (changed if n == name else getattr(base, n))
                for n, s in Credentials.__dataclass_fields__.items()
                if s.compare
            }
        )
        assert other != base and hash(other) != hash(base), name


def test_policy_values_are_oslo_context_to_policy_values():
    """Same keys and values as glance-api's context (oslo.context ``RequestContext``, which
    Glance 33 does not override) for the same validated request, so a Glance policy file
    reads the same credentials under propguard."""
    from oslo_context.context import RequestContext

    environ = domain_environ(HTTP_X_DOMAIN_ID="d1", HTTP_X_SERVICE_ROLES="admin,service")
    ours = credentials_from_environ(environ).policy_values()
    theirs = dict(RequestContext.from_environ(environ).to_policy_values())
    assert set(ours) == set(theirs)
    for key in ("roles", "service_roles"):
        assert ours[key] == sorted(theirs[key]), key
    assert {k: v for k, v in ours.items() if k not in ("roles", "service_roles")} == {
        k: v for k, v in theirs.items() if k not in ("roles", "service_roles")
    }
    system = credentials_from_environ(user_environ(system_scoped=True)).policy_values()
    assert system["system"] == system["system_scope"] == "all"


# --- the propguard.identity contract (a JWT filter's claims) ------------------------


def test_claims_alone_give_the_whole_identity():
    """A token filter may hand over every claim in ``propguard.identity``, no header."""
    claims = {
        "identity_status": "Confirmed",
        "user_id": "u1",
        "project_id": "p1",
        "user_domain_id": "d1",
        "project_domain_id": "d2",
        "roles": ["Member", "reader"],
        "is_admin_project": True,
        "system_scope": None,
        "service_identity_status": "Confirmed",
        "service_user_id": "nova",
        "service_project_id": "service",
        "service_roles": "service,admin",
    }
    c = credentials_from_environ({"propguard.identity": claims})
    assert c.authenticated and c.user_id == "u1" and c.project_id == "p1"
    assert c.roles == frozenset({"member", "reader"})
    assert c.user_domain_id == "d1" and c.project_domain_id == "d2"
    assert c.is_admin_project
    assert c.service_roles == frozenset({"service", "admin"}) and c.service_user_id == "nova"


def test_claims_win_over_headers_and_follow_the_same_rules():
    environ = {
        "propguard.identity": {
            "identity_status": "Confirmed",
            "roles": ["reader"],
            "service_identity_status": "Confirmed",
            "service_roles": ["nova"],  # no service_token_roles role: not a service
        },
        "HTTP_X_IDENTITY_STATUS": "Confirmed",
        "HTTP_X_ROLES": "admin",
        "HTTP_X_SERVICE_ROLES": "service",
    }
    c = credentials_from_environ(environ)
    assert c.roles == frozenset({"reader"})
    assert c.service_roles == frozenset()
    unconfirmed = {"propguard.identity": {"identity_status": "Invalid", "roles": ["admin"]}}
    assert credentials_from_environ(unconfirmed) is ANONYMOUS
