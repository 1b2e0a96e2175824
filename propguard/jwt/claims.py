"""Verified claims -> the identity keystonemiddleware would have given.

Roles come from configured claim paths (Keycloak ``realm_access.roles``,
``resource_access.<client>.roles``, RFC 9068/Entra ``roles``, a
space-separated ``scope``), merged, lower-cased and de-duplicated. Anything
missing or malformed gives *no* role, never an error and never a guess: a
caller without roles is the least privileged one (fail closed).

One claim value is at most one role, taken exactly or refused. ``X-Roles``
is a comma list that Glance's context and propguard split again, and HTTP
strips what surrounds a header value, so a name with a comma, with
whitespace of any Unicode kind (around it or inside), a control or format
character, or a character a header cannot carry (outside Latin-1, PEP 3333)
would become another role downstream: it is no role at all (logged once per
issuer and name). A string claim is a space-separated list (RFC 6749's
``scope``): it is split on spaces only, and each word is judged the same way.

Identity values (ids, names) go into single headers: an id that a header
cannot carry unchanged (control or format characters, surrounding
whitespace, a character outside Latin-1, more than 255 characters) refuses
the whole token (:class:`ClaimRefused`), since an altered id could be
someone else's; such a *name* (informational, never used to authorize) is
dropped, so Glance sees ``None`` for it, as ``auth_token`` writes an unknown
name.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

ClaimPath = tuple[str, ...]

LOG = logging.getLogger(__name__)

_SPLIT = re.compile(r"(?<!\\)\.")
MAX_ROLES = 256
#: Longest role name, id or name taken (Keystone's and Glance's columns: 255).
MAX_VALUE_LENGTH = 255
#: Printable Latin-1 without comma (a role's header separator) or any space.
_ROLE_OK = re.compile(r"[\x21-\x2b\x2d-\x7e\xa1-\xac\xae-\xff]{1,255}")
#: Printable Latin-1 (spaces inside allowed), no whitespace at either end.
_EDGE = r"[\x21-\x7e\xa1-\xac\xae-\xff]"
_VALUE_OK = re.compile(f"{_EDGE}(?:[\\x20-\\x7e\\xa1-\\xac\\xae-\\xff]{{0,253}}{_EDGE})?")
REFUSED_LOG_SIZE = 4096


class ClaimRefused(ValueError):
    """An identity claim a header cannot carry unchanged: the token identifies no one."""

    def __init__(self, claim: str) -> None:
        super().__init__(claim)
        self.claim = claim


class _LogOnce:
    """Remembers (issuer, what, value) already logged; bounded, so names cannot fill memory."""

    def __init__(self, size: int = REFUSED_LOG_SIZE) -> None:
        self._seen: OrderedDict[tuple[str, str, str], None] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def first(self, key: tuple[str, str, str]) -> bool:
        with self._lock:
            if key in self._seen:
                return False
            self._seen[key] = None
            while len(self._seen) > self._size:
                self._seen.popitem(last=False)
            return True


_LOGGED = _LogOnce()


def _shown(value: str) -> str:
    """A value for a log line: escaped (no line breaks to forge entries), cut short."""
    return ascii(value[:80]) + ("..." if len(value) > 80 else "")


def _refused(issuer: str, what: str, value: str, why: str) -> None:
    if _LOGGED.first((issuer, what, value)):
        LOG.warning("JWT issuer %s: %s %s is %s: ignored", issuer, what, _shown(value), why)


def role_name(value: str) -> str | None:
    """``value`` as one role (lower-cased, as Keystone compares roles), or None if it is none.

    Taken exactly: nothing is stripped, since a stripped or split name would
    be another role than the one the issuer wrote.
    """
    role = value.lower()  # lower() can leave Latin-1 ('\u0130' -> 'i\u0307'): checked after
    return role if _ROLE_OK.fullmatch(role) else None


def header_value(value: str) -> bool:
    """Can a single identity header carry ``value`` unchanged, in process and over HTTP?"""
    return _VALUE_OK.fullmatch(value) is not None


def why_not(value: str) -> str:
    """Why ``value`` is not a role or a header value (for the log)."""
    if not value:
        return "empty"
    if len(value) > MAX_VALUE_LENGTH:
        return f"longer than {MAX_VALUE_LENGTH} characters"
    for char in value:
        if char == ",":
            return "not one role (it has a comma, the X-Roles separator)"
        if unicodedata.category(char) in ("Cc", "Cf", "Cs"):
            return "carrying a control or format character"
        if char.isspace() or unicodedata.category(char)[0] == "Z":
            return "padded or split by whitespace"
        if ord(char) > 0xFF:
            return "outside what a header carries (Latin-1)"
    return "not a header value"


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


def roles_at(claims: Mapping[str, Any], path: ClaimPath, issuer: str = "") -> list[str]:
    """Roles at ``path``: an array of strings, or a string split on spaces; each checked.

    A value that is not exactly one role (:func:`role_name`) is left out and
    logged once per issuer and value.
    """
    value = lookup(claims, path)
    if isinstance(value, str):
        names = [word for word in value.split(" ") if word]
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        names = value
    else:
        return []  # missing, or malformed (a number, an object, a list with non-strings)
    roles = []
    for name in names:
        role = role_name(name)
        if role is None:
            _refused(issuer, "role", name, why_not(name))
        else:
            roles.append(role)
    return roles


def string_at(claims: Mapping[str, Any], path: ClaimPath | None) -> str | None:
    """A string claim, or None (numbers are not silently turned into ids)."""
    if path is None:
        return None
    value = lookup(claims, path)
    return value if isinstance(value, str) and value else None


def id_at(claims: Mapping[str, Any], path: ClaimPath | None, what: str) -> str | None:
    """An id claim; one a header cannot carry unchanged raises :class:`ClaimRefused`."""
    value = string_at(claims, path)
    if value is not None and not header_value(value):
        raise ClaimRefused(what)
    return value


def name_at(
    claims: Mapping[str, Any], path: ClaimPath | None, what: str, issuer: str
) -> str | None:
    """A name claim; one a header cannot carry unchanged is dropped (None) and logged once."""
    value = string_at(claims, path)
    if value is not None and not header_value(value):
        _refused(issuer, what, value, why_not(value))
        return None
    return value


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
    """The identity of verified ``claims``; :class:`ClaimRefused` when an id is unusable."""
    roles: dict[str, None] = {}
    for path in mapping.roles:
        for role in roles_at(claims, path, issuer):
            if len(roles) >= MAX_ROLES:
                break
            roles.setdefault(role, None)
    project_id = id_at(claims, mapping.project_id, "project id")
    system = string_at(claims, mapping.system_scope)
    return Identity(
        user_id=id_at(claims, mapping.user_id, "user id"),
        user_name=name_at(claims, mapping.user_name, "user name", issuer),
        project_id=project_id,
        project_name=name_at(claims, mapping.project_name, "project name", issuer)
        if project_id
        else None,
        user_domain_id=id_at(claims, mapping.user_domain_id, "user domain id") or mapping.domain_id,
        project_domain_id=(
            id_at(claims, mapping.project_domain_id, "project domain id") or mapping.domain_id
        )
        if project_id
        else None,
        roles=tuple(roles),
        system_scope="all" if system == "all" else None,
        issuer=issuer,
    )


def role_paths(texts: Iterable[str]) -> tuple[ClaimPath, ...]:
    return tuple(parse_path(text) for text in texts)
