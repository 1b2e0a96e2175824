"""Verified claims -> the identity keystonemiddleware would have given.

Roles come from configured claim paths (Keycloak ``realm_access.roles``,
``resource_access.<client>.roles``, RFC 9068/Entra ``roles``, a
space-separated ``scope``), merged, lower-cased and de-duplicated. Anything
missing or malformed gives *no* role, never an error and never a guess: a
caller without roles is the least privileged one (fail closed).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

ClaimPath = tuple[str, ...]

_SPLIT = re.compile(r"(?<!\\)\.")
_WORDS = re.compile(r"[\s,]+")
MAX_ROLES = 256


def parse_path(text: str) -> ClaimPath:
    r"""``resource_access.my\.client.roles`` -> ``("resource_access", "my.client", "roles")``."""
    text = text.strip()
    if not text:
        raise ValueError("an empty claim path")
    parts = tuple(part.replace("\\.", ".") for part in _SPLIT.split(text))
    if any(not part for part in parts):
        raise ValueError(f"claim path {text!r} has an empty segment")
    return parts


def lookup(claims: Mapping[str, Any], path: ClaimPath) -> Any:
    """The value at ``path``, or None when any step is missing or not an object."""
    value: Any = claims
    for part in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
        if value is None:
            return None
    return value


def roles_at(claims: Mapping[str, Any], path: ClaimPath) -> list[str]:
    """Role names at ``path``: an array of strings, or a string split on spaces/commas."""
    value = lookup(claims, path)
    if isinstance(value, str):
        return [word for word in _WORDS.split(value) if word]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return [item.strip() for item in value if item.strip()]
    return []  # missing, or malformed (a number, an object, a list with non-strings)


def string_at(claims: Mapping[str, Any], path: ClaimPath | None) -> str | None:
    """A string claim, or None (numbers are not silently turned into ids)."""
    if path is None:
        return None
    value = lookup(claims, path)
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True, slots=True)
class ClaimMapping:
    """Where one issuer's tokens keep each part of the identity."""

    roles: tuple[ClaimPath, ...] = (("roles",),)
    user_id: ClaimPath = ("sub",)
    user_name: ClaimPath | None = ("preferred_username",)
    project_id: ClaimPath | None = ("project_id",)
    project_name: ClaimPath | None = ("project_name",)
    user_domain_id: ClaimPath | None = ("user_domain_id",)
    project_domain_id: ClaimPath | None = ("project_domain_id",)
    domain_id: str | None = None  # issuer -> domain mapping
    system_scope: ClaimPath | None = None


@dataclass(frozen=True, slots=True)
class Identity:
    """One validated token as keystonemiddleware's ``AccessInfo`` would describe it."""

    user_id: str | None
    user_name: str | None
    project_id: str | None
    project_name: str | None
    user_domain_id: str | None
    project_domain_id: str | None
    roles: tuple[str, ...]
    system_scope: str | None
    issuer: str


def map_identity(claims: Mapping[str, Any], mapping: ClaimMapping, issuer: str) -> Identity:
    roles: dict[str, None] = {}
    for path in mapping.roles:
        for role in roles_at(claims, path):
            if len(roles) >= MAX_ROLES:
                break
            roles.setdefault(role.lower(), None)
    project_id = string_at(claims, mapping.project_id)
    system = string_at(claims, mapping.system_scope)
    return Identity(
        user_id=string_at(claims, mapping.user_id),
        user_name=string_at(claims, mapping.user_name),
        project_id=project_id,
        project_name=string_at(claims, mapping.project_name) if project_id else None,
        user_domain_id=string_at(claims, mapping.user_domain_id) or mapping.domain_id,
        project_domain_id=(string_at(claims, mapping.project_domain_id) or mapping.domain_id)
        if project_id
        else None,
        roles=tuple(roles),
        system_scope="all" if system == "all" else None,
        issuer=issuer,
    )


def role_paths(texts: Iterable[str]) -> tuple[ClaimPath, ...]:
    return tuple(parse_path(text) for text in texts)
