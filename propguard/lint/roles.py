"""The role names lint takes as existing: PG208 reports any other, by default.

Why: a misspelt role in a rules file (``membr``) silently takes a right away
from the role meant, so lint must catch it without being told every role.
The known roles are those no one has to list: Keystone's default roles
(``keystone-manage bootstrap`` creates admin, member, reader, manager and
service; keystone/cmd/bootstrap.py), every ``role:`` a policy file of the
deployment or a registered default of its ``policy_namespaces`` checks, the
roles the deployment's own options name (``service_token_roles``,
``inject_*_roles``, ``relations_service_roles``), and ``--known-roles``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from propguard.rules.policy_set import namespace_defaults
from propguard.rules.policy_source import policy_set_files, read_text

#: The roles ``keystone-manage bootstrap`` creates (Keystone 2023.2+, 30 included).
KEYSTONE_DEFAULT_ROLES = frozenset({"admin", "member", "reader", "manager", "service"})

#: The deployment's options whose values are role names.
ROLE_OPTIONS = (
    "service_token_roles",
    "inject_ignore_roles",
    "inject_service_roles",
    "relations_service_roles",
)

_ROLE_CHECK = re.compile(r"\brole:\s*([^\s()'\"]+)")


def known_roles(
    given: Iterable[str] | None,
    values: Mapping[str, Any],
    policy_files: Iterable[str] = (),
) -> frozenset[str]:
    """Every role lint takes as existing for this deployment (lowercase)."""
    roles = set(KEYSTONE_DEFAULT_ROLES)
    for option in ROLE_OPTIONS:
        roles.update(str(r) for r in values.get(option) or ())
    roles.update(given or ())
    files = list(policy_files)
    dirs = tuple(values.get("policy_dirs") or ())
    for policy_file in {values.get("policy_file"), *files} - {None}:
        files.extend(policy_set_files(policy_file, dirs))
    for path in dict.fromkeys(files):
        text, problem = read_text(path, "policy file")
        if problem is None and text:
            roles.update(_ROLE_CHECK.findall(text))
    for namespace in values.get("policy_namespaces") or ():
        try:
            defaults = namespace_defaults(namespace)
        except Exception:  # noqa: BLE001 - an unknown namespace is PG117 elsewhere
            continue
        for default in defaults:
            roles.update(_ROLE_CHECK.findall(default.check_str))
    return frozenset(r.strip().lower() for r in roles if r.strip() and "%(" not in r)
