"""Property injection on create: operator-chosen properties on every image a non-exempt caller makes.

Glance injects (``[inject_metadata_properties] inject``) only through its
``inject_image_metadata`` import plugin, so an image created the traditional
way (``POST /v2/images``, then ``PUT /file``) gets nothing. Every image starts
with ``POST /v2/images`` (or a legacy ``import`` task), where propguard sees
the caller's validated identity: it injects there, for upload and import
alike, and the rules it enforces keep the values from being changed later.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from propguard.credentials import Credentials
from propguard.glance.attributes import (
    CORE_ATTRIBUTES,
    READ_ONLY_ATTRIBUTES,
    RESERVED_ATTRIBUTES,
    RESERVED_NAMESPACES,
    is_object_attribute,
)

#: Placeholders a value may use, all from the validated identity; the service
#: ones only from a confirmed service token (empty without one).
PLACEHOLDERS = frozenset(
    {
        "user_id",
        "project_id",
        "user_domain_id",
        "project_domain_id",
        "service_user_id",
        "service_project_id",
    }
)


@dataclass(frozen=True)
class Injection:
    """What to inject, and who is exempt."""

    properties: Mapping[str, str] = field(default_factory=dict)
    ignore_roles: frozenset[str] = frozenset({"admin"})
    service_roles: frozenset[str] = frozenset()

    @classmethod
    def from_options(
        cls,
        properties: Mapping[str, str],
        ignore_roles: Iterable[str],
        service_roles: Iterable[str],
    ) -> Injection:
        """Validate at load: a bad name or placeholder stops the filter, naming option and value."""
        for name, template in properties.items():
            _check_name(name, template)
            _check_template(name, template)
        return cls(
            dict(properties),
            frozenset(r.strip().lower() for r in ignore_roles if r.strip()),
            frozenset(r.strip().lower() for r in service_roles if r.strip()),
        )

    def applies_to(self, creds: Credentials) -> bool:
        """Not exempt: no ``ignore_roles`` role, no confirmed service token with a
        ``service_roles`` role."""
        if not self.properties:
            return False
        return not (creds.roles & self.ignore_roles or creds.service_roles & self.service_roles)

    def values_for(self, creds: Credentials) -> dict[str, str]:
        identity = {name: getattr(creds, name) or "" for name in PLACEHOLDERS}
        return {name: template.format_map(identity) for name, template in self.properties.items()}


def _setting(name: str, template: str) -> str:
    return f"propguard option inject_properties: '{name}:{template}'"


def _check_name(name: str, template: str) -> None:
    if (
        name in CORE_ATTRIBUTES
        or name in READ_ONLY_ATTRIBUTES
        or name in RESERVED_ATTRIBUTES
        or name.startswith(RESERVED_NAMESPACES)
        or is_object_attribute(name)
        or name != name.strip()
    ):
        raise ValueError(
            f"{_setting(name, template)}: '{name}' is not an extra property Glance stores"
        )


def _check_template(name: str, template: str) -> None:
    try:
        parsed = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(template)]
    except ValueError as exc:
        raise ValueError(f"{_setting(name, template)}: {exc}") from None
    fields = [(f, spec, conv) for f, spec, conv in parsed if f is not None]
    unknown = sorted({f for f, _, _ in fields if f not in PLACEHOLDERS})
    if unknown:
        raise ValueError(
            f"{_setting(name, template)}: unknown placeholder {{{unknown[0]}}} "
            f"(known: {', '.join('{' + p + '}' for p in sorted(PLACEHOLDERS))})"
        )
    if any(spec or conv for _, spec, conv in fields):
        raise ValueError(f"{_setting(name, template)}: placeholders take no format or conversion")
