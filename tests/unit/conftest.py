"""Shared fixtures for the rules/identity unit tests.

The rule files are Glance's own, copied verbatim from ``glance/tests/etc``
(glance 33.0.0) and ``etc/*.conf.sample`` and kept once, in
``tests/lint_fixtures/glance/`` (:mod:`data_paths`), so these tests do not
need glance installed (the policies tests do need the ``glance``
``oslo.policy.policies`` entry point for ``context_is_admin`` and ``default``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from data_paths import GLANCE_POLICIES_FILE, GLANCE_POLICY_YAML, GLANCE_ROLES_FILE, GLANCE_RULES_DIR

from propguard.credentials import Credentials
from propguard.rules import RuleEngine, load_rules


def _creds(*roles: str, service: Iterable[str] = (), **kwargs) -> Credentials:
    """A caller as Glance's unit tests build it: ``RequestContext(roles=roles)``.

    Role names are taken as given (no lower-casing): this is the engine's
    input, after :func:`propguard.identity.credentials_from_environ`.
    """
    return Credentials(
        authenticated=True,
        roles=frozenset(roles),
        service_roles=frozenset(service),
        **kwargs,
    )


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Glance's rule files (``tests/lint_fixtures/glance/``)."""
    return GLANCE_RULES_DIR


@pytest.fixture(scope="session")
def creds() -> Callable[..., Credentials]:
    return _creds


@pytest.fixture(scope="session")
def roles_engine() -> RuleEngine:
    """Glance's ``property-protections.conf`` in the roles format."""
    return load_rules(str(GLANCE_ROLES_FILE), "roles")


@pytest.fixture(scope="session")
def policies_engine() -> RuleEngine:
    """Glance's policies test file with its ``policy.yaml`` and the glance defaults."""
    return load_rules(
        str(GLANCE_POLICIES_FILE),
        "policies",
        policy_file=str(GLANCE_POLICY_YAML),
        policy_namespaces=["glance"],
    )


@pytest.fixture
def write_rules(tmp_path: Path) -> Callable[[str, str], str]:
    """Write ``text`` to ``tmp_path/name`` and return the path as a string."""

    def write(text: str, name: str = "rules.conf") -> str:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return str(path)

    return write


def rules_text(sections: dict[str, dict[str, str]]) -> str:
    """Render ``{section: {op: value}}`` like Glance's ``set_property_protection_rules``."""
    out = []
    for name, ops in sections.items():
        out.append(f"[{name}]")
        out.extend(f"{op} = {value}" for op, value in ops.items())
        out.append("")
    return "\n".join(out)


@pytest.fixture(scope="session")
def render() -> Callable[[dict[str, dict[str, str]]], str]:
    return rules_text
