"""The caller as the rules see it: :class:`Credentials`, propguard's core identity type.

Every adapter builds one: :mod:`propguard.identity` from a validated WSGI
environ (keystonemiddleware's ``auth_token`` or propguard's own token
filter), the tools (``explain``, ``matrix``, ``lint``) and the notification
views from a configured set of roles with :meth:`Credentials.for_roles`. The
rules engine reads nothing else about a caller.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(frozen=True, slots=True)
class Credentials:
    """The caller as rules see it. Hashable: it keys the decision cache."""

    authenticated: bool = False
    user_id: str | None = None
    project_id: str | None = None
    domain_id: str | None = None
    roles: frozenset[str] = frozenset()
    service_roles: frozenset[str] = frozenset()
    service_user_id: str | None = None
    service_project_id: str | None = None
    system_scope: str | None = None
    is_admin_project: bool = False
    user_domain_id: str | None = None
    project_domain_id: str | None = None
    service_user_domain_id: str | None = None
    service_project_domain_id: str | None = None
    _hash: int = field(default=0, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Keystone role names are case-insensitive: keep one spelling everywhere.
        object.__setattr__(self, "roles", frozenset(r.lower() for r in self.roles))
        object.__setattr__(self, "service_roles", frozenset(r.lower() for r in self.service_roles))
        # Every compared field is hashed, so two callers that differ in anything a
        # policy can read (a domain id included) never share a decision cache entry.
        object.__setattr__(
            self, "_hash", hash(tuple(getattr(self, name) for name in _COMPARED_FIELDS))
        )

    def __hash__(self) -> int:
        return self._hash

    @classmethod
    def for_roles(
        cls,
        roles: Iterable[str] = (),
        service_roles: Iterable[str] = (),
        *,
        user_id: str | None = None,
        project_id: str | None = None,
    ) -> Credentials:
        """An authenticated caller with these user roles and these service-token roles.

        ``service_roles`` are those of a *confirmed* service token that passed
        ``service_token_roles`` (what :mod:`propguard.identity` would give):
        the tools and the notification views ask "what may such a caller do",
        they do not re-check how the token was obtained. Role names are
        lower-cased, as everywhere.
        """
        return cls(
            authenticated=True,
            user_id=user_id,
            project_id=project_id,
            roles=frozenset(roles),
            service_roles=frozenset(service_roles),
        )

    @property
    def has_service_token(self) -> bool:
        """True when a confirmed service token with a service role came along."""
        return bool(self.service_roles)

    def policy_values(self, union: bool = False) -> dict[str, Any]:
        """Credentials for oslo.policy: the 13 keys of oslo.context's ``to_policy_values``.

        Glance 33 does not override ``to_policy_values``, so these are the keys
        a Glance policy file can read (plus ``system``, which oslo.policy adds
        for a system-scoped caller, as ``Enforcer.enforce`` does).
        """
        roles = self.roles | self.service_roles if union else self.roles
        values: dict[str, Any] = {
            "user_id": self.user_id,
            "user_domain_id": self.user_domain_id,
            "system_scope": self.system_scope,
            "domain_id": self.domain_id,
            "project_id": self.project_id,
            "project_domain_id": self.project_domain_id,
            "roles": sorted(roles),
            "is_admin_project": self.is_admin_project,
            "service_user_id": self.service_user_id,
            "service_user_domain_id": self.service_user_domain_id,
            "service_project_id": self.service_project_id,
            "service_project_domain_id": self.service_project_domain_id,
            "service_roles": sorted(self.service_roles),
        }
        if self.system_scope:
            values["system"] = self.system_scope
        return values

    def describe(self) -> str:
        """A log-safe summary (ids and role names only, never tokens)."""
        if not self.authenticated:
            return "anonymous"
        text = f"user={self.user_id} project={self.project_id} roles={','.join(sorted(self.roles))}"
        if self.service_roles:
            text += (
                f" service_user={self.service_user_id} "
                f"service_roles={','.join(sorted(self.service_roles))}"
            )
        return text


#: The fields that make two callers different (all but the cached hash).
_COMPARED_FIELDS = tuple(f.name for f in fields(Credentials) if f.compare)

ANONYMOUS = Credentials()
