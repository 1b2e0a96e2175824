"""Who is calling: :class:`Credentials` built only from validated identity.

Trust model (see README, "What propguard trusts"):

* Identity headers (``X-Roles``, ``X-Service-Roles``, ...) count only when a
  trusted auth layer produced them: keystonemiddleware's ``auth_token`` (it
  always sets ``environ['keystone.token_auth']`` and strips client-supplied
  identity headers first) or propguard's own token filter
  (``environ['propguard.identity']``). A WSGI environ key without the
  ``HTTP_`` prefix cannot come from a client.
* The user counts only with ``X-Identity-Status: Confirmed``.
* Service roles count only when ``X-Service-Identity-Status: Confirmed`` *and*
  the service token carries one of ``service_token_roles`` (propguard's own
  check, independent of keystonemiddleware's ``service_token_roles_required``,
  whose default was ``False`` before 13.0.0). The service user and project
  ids, and their domain ids, are taken only then, too.
* Domain ids (``X-User-Domain-Id``, ``X-Project-Domain-Id``, ``X-Domain-Id``)
  come from the same validated headers as the user and project ids, under the
  same conditions, so a Glance policy reading ``user_domain_id`` (or any other
  key of oslo.context's ``to_policy_values()``) sees what Glance would see.
* System scope comes from the validated user token
  (``token_auth.user.system_scoped``), not from ``OpenStack-System-Scope``,
  which ``auth_token`` does not strip and overwrites with the service
  token's scope.
* Anything else is the anonymous caller: no roles at all.

``trust_identity_headers`` is an explicit opt-in for a gateway that validates
tokens itself and sets the same headers; it must also strip them from clients.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

from propguard.credentials import ANONYMOUS, Credentials

KEYSTONE_TOKEN_AUTH = "keystone.token_auth"
PROPGUARD_IDENTITY = "propguard.identity"
CONFIRMED = "Confirmed"




def parse_roles(value: str | None) -> frozenset[str]:
    """Split a comma list of role names, lower-cased (Keystone roles are case-insensitive)."""
    if not value:
        return frozenset()
    return frozenset(r.strip().lower() for r in value.split(",") if r.strip())


def _header(environ: Mapping[str, Any], name: str) -> str | None:
    value = environ.get(name)
    # auth_token writes unset attributes as None values, not absent keys.
    if value is None or value == "None":
        return None
    return str(value)


def trusted_auth_ran(environ: Mapping[str, Any]) -> bool:
    """Did a token-validating layer we trust run before us?"""
    return KEYSTONE_TOKEN_AUTH in environ or PROPGUARD_IDENTITY in environ


def credentials_from_environ(
    environ: Mapping[str, Any],
    *,
    service_token_roles: Iterable[str] = ("service",),
    trust_identity_headers: bool = False,
) -> Credentials:
    """Build :class:`Credentials` from what a trusted auth layer validated."""
    if not (trusted_auth_ran(environ) or trust_identity_headers):
        return ANONYMOUS
    if _header(environ, "HTTP_X_IDENTITY_STATUS") != CONFIRMED:
        return ANONYMOUS
    roles = parse_roles(_header(environ, "HTTP_X_ROLES"))
    service_roles: frozenset[str] = frozenset()
    service_user_id = service_project_id = None
    service_user_domain_id = service_project_domain_id = None
    if _header(environ, "HTTP_X_SERVICE_IDENTITY_STATUS") == CONFIRMED:
        offered = parse_roles(_header(environ, "HTTP_X_SERVICE_ROLES"))
        required = {r.strip().lower() for r in service_token_roles if r.strip()}
        if offered & required:
            service_roles = offered
            service_user_id = _header(environ, "HTTP_X_SERVICE_USER_ID")
            service_project_id = _header(environ, "HTTP_X_SERVICE_PROJECT_ID")
            service_user_domain_id = _header(environ, "HTTP_X_SERVICE_USER_DOMAIN_ID")
            service_project_domain_id = _header(environ, "HTTP_X_SERVICE_PROJECT_DOMAIN_ID")
    return _interned(
        True,
        _header(environ, "HTTP_X_USER_ID"),
        _header(environ, "HTTP_X_PROJECT_ID") or _header(environ, "HTTP_X_TENANT_ID"),
        _header(environ, "HTTP_X_DOMAIN_ID"),
        roles,
        service_roles,
        service_user_id,
        service_project_id,
        _system_scope(environ, trust_identity_headers),
        (_header(environ, "HTTP_X_IS_ADMIN_PROJECT") or "").lower() == "true",
        _header(environ, "HTTP_X_USER_DOMAIN_ID"),
        _header(environ, "HTTP_X_PROJECT_DOMAIN_ID"),
        service_user_domain_id,
        service_project_domain_id,
    )


@functools.lru_cache(maxsize=4096)
def _interned(*fields: Any) -> Credentials:
    """One shared, immutable :class:`Credentials` per distinct caller.

    Callers repeat across requests; handing the engine the *same* object lets
    its decision cache match keys by identity instead of comparing every field.
    """
    return Credentials(*fields)


def _system_scope(environ: Mapping[str, Any], trust_identity_headers: bool) -> str | None:
    token_auth = environ.get(KEYSTONE_TOKEN_AUTH)
    user = getattr(token_auth, "user", None)
    if user is not None:
        return "all" if getattr(user, "system_scoped", False) else None
    identity = environ.get(PROPGUARD_IDENTITY)
    if isinstance(identity, Mapping):
        return identity.get("system_scope")
    if trust_identity_headers:
        return _header(environ, "HTTP_OPENSTACK_SYSTEM_SCOPE")
    return None
