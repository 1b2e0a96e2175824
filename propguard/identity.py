"""Who is calling: :class:`Credentials` built only from validated identity.

Trust model (see docs/filter.md, "What propguard trusts"):

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

The ``propguard.identity`` contract (for propguard's own token filters, e.g.
a JWT filter): a filter that validated the caller's tokens sets
``environ['propguard.identity']`` to a mapping with the keys of
:class:`IdentityClaims`. Its presence marks the request as authenticated by a
trusted layer; each key it carries is read from it, and only a key it leaves
out is read from the keystonemiddleware header of the same meaning
(``user_id`` <- ``X-User-Id``, ``service_roles`` <- ``X-Service-Roles``...), so
a filter may set the claims alone or the headers alone. ``system_scope`` is
never read from a header there. The same rules apply as to headers: the user
counts only with ``identity_status == "Confirmed"``, service claims only with
``service_identity_status == "Confirmed"`` and one of ``service_token_roles``
among ``service_roles``. Such a filter must still set keystonemiddleware's
headers for Glance (its ``context`` filter reads those) and strip the
client's.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any, TypedDict

from propguard.credentials import ANONYMOUS, Credentials


class IdentityClaims(TypedDict, total=False):
    """What a trusted token filter puts in ``environ['propguard.identity']``."""

    identity_status: str  # "Confirmed" for a validated user token
    user_id: str
    project_id: str
    domain_id: str
    user_domain_id: str
    project_domain_id: str
    roles: Iterable[str] | str  # names, or a comma list as in X-Roles
    is_admin_project: bool | str
    system_scope: str  # e.g. "all" for a system-scoped token
    service_identity_status: str  # "Confirmed" for a validated service token
    service_user_id: str
    service_project_id: str
    service_user_domain_id: str
    service_project_domain_id: str
    service_roles: Iterable[str] | str


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
    values = list(map(environ.get, _HEADER_NAMES))
    claims = environ.get(PROPGUARD_IDENTITY)
    if isinstance(claims, Mapping) and claims:
        for index, key in enumerate(_CLAIM_KEYS):
            if key in claims:
                value = claims[key]
                values[index] = (
                    value
                    if value is None or isinstance(value, str)
                    else (",".join(map(str, value)) if not isinstance(value, bool) else str(value))
                )
    return _credentials(
        tuple(values),
        tuple(service_token_roles),
        _system_scope(environ, trust_identity_headers),
    )


#: The claims of :class:`IdentityClaims` that keystonemiddleware carries in a
#: header of the same meaning (``user_id`` <- ``X-User-Id``), in one order.
_CLAIM_KEYS = tuple(k for k in IdentityClaims.__annotations__ if k != "system_scope")
_HEADER_NAMES = (*("HTTP_X_" + k.upper() for k in _CLAIM_KEYS), "HTTP_X_TENANT_ID")
_AT = {key: index for index, key in enumerate(_CLAIM_KEYS)}


@functools.lru_cache(maxsize=4096)
def _credentials(
    values: tuple[Any, ...], service_token_roles: tuple[str, ...], system_scope: str | None
) -> Credentials:
    """One shared, immutable :class:`Credentials` per distinct caller.

    Callers repeat across requests: keyed by the raw identity values, the
    work is done once per caller, and handing the engine the *same* object
    lets its decision cache match keys by identity instead of comparing every
    field.
    """

    def read(key: str) -> str | None:
        value = values[_AT[key]]
        # auth_token writes unset attributes as None values, not absent keys.
        return None if value is None or value == "None" else str(value)

    if read("identity_status") != CONFIRMED:
        return ANONYMOUS
    service: dict[str, Any] = {}
    if read("service_identity_status") == CONFIRMED:
        offered = parse_roles(read("service_roles"))
        required = {r.strip().lower() for r in service_token_roles if r.strip()}
        if offered & required:
            service = {
                "service_roles": offered,
                "service_user_id": read("service_user_id"),
                "service_project_id": read("service_project_id"),
                "service_user_domain_id": read("service_user_domain_id"),
                "service_project_domain_id": read("service_project_domain_id"),
            }
    tenant = values[-1]
    return Credentials(
        authenticated=True,
        user_id=read("user_id"),
        project_id=read("project_id") or (None if tenant in (None, "None") else str(tenant)),
        domain_id=read("domain_id"),
        roles=parse_roles(read("roles")),
        system_scope=system_scope,
        is_admin_project=(read("is_admin_project") or "").lower() == "true",
        user_domain_id=read("user_domain_id"),
        project_domain_id=read("project_domain_id"),
        **service,
    )


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
