"""Paths of the test data shared by the unit and functional tests (not a test module).

Glance's own rule files (``glance/tests/etc`` of glance 33.0.0 and its
``etc/*.conf.sample``, copied verbatim) are kept once, in
``tests/lint_fixtures/glance/``: the lint golden files name them there, and
the unit and functional tests read them from there too.

Importable as ``data_paths`` from every test module: ``tests/conftest.py``
puts ``tests/`` on ``sys.path`` (pytest's default ``prepend`` import mode).
"""

from __future__ import annotations

from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parent
LINT_FIXTURES_DIR = TESTS_DIR / "lint_fixtures"
#: Glance's rule files, verbatim (see the module docstring).
GLANCE_RULES_DIR = LINT_FIXTURES_DIR / "glance"
#: glance/tests/etc/property-protections.conf (roles format).
GLANCE_ROLES_FILE = GLANCE_RULES_DIR / "property-protections.conf"
#: glance/tests/etc/property-protections-policies.conf (policies format).
GLANCE_POLICIES_FILE = GLANCE_RULES_DIR / "property-protections-policies.conf"
#: glance/tests/etc/policy.yaml: ``"glance_creator": "role:admin or role:spl_role"``.
GLANCE_POLICY_YAML = GLANCE_RULES_DIR / "policy.yaml"
#: glance/etc/property-protections-roles.conf.sample.
GLANCE_ROLES_SAMPLE = GLANCE_RULES_DIR / "property-protections-roles.conf.sample"
#: glance/etc/property-protections-policies.conf.sample.
GLANCE_POLICIES_SAMPLE = GLANCE_RULES_DIR / "property-protections-policies.conf.sample"
