"""Shared paths and option parsing for the lint tests (not a test module)."""

from __future__ import annotations

from pathlib import Path

from data_paths import GLANCE_RULES_DIR, LINT_FIXTURES_DIR

from propguard.injection import Injection
from propguard.lint import LintOptions
from propguard.rules.loading import RulesOptions

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = LINT_FIXTURES_DIR
CODES_DIR = FIXTURES / "codes"
GLANCE = GLANCE_RULES_DIR
GOLDEN = Path(__file__).parent / "golden"
SARIF_SCHEMA = Path(__file__).parent / "data" / "sarif-schema-2.1.0.json"


def fixture_options(path: Path) -> LintOptions:
    """Options for a code fixture: format from the name, the rest from a header comment.

    ``PG110.policies.conf`` is a policies-format file; a first line
    ``# lint-options: key=value; key=value`` sets LintOptions fields.
    """
    kw: dict = {}
    if ".policies." in path.name:
        kw["rule_format"] = "policies"
    elif path.suffix == ".conf":
        kw["rule_format"] = "roles"
    try:
        first = path.read_text(encoding="utf-8").splitlines()[0]
    except (UnicodeDecodeError, IndexError):
        first = ""
    if first.startswith("# lint-options:"):
        for part in first.split(":", 1)[1].split(";"):
            key, value = (x.strip() for x in part.split("=", 1))
            if key == "policy_namespaces":
                kw[key] = tuple(value.split(","))
            elif key == "known_roles":
                kw[key] = frozenset(value.split(","))
            elif key == "inject_properties":
                pairs = dict(pair.split(":", 1) for pair in value.split(","))
                kw["injection"] = Injection.from_options(pairs, ["admin"], [])
            else:
                kw[key] = value
    return lint_options(**kw)


def lint_options(**kw) -> LintOptions:
    """LintOptions from flat keywords: rules options (``rule_format``, ``policy_file``...)
    go to its ``rules``, the rest are the linter's own."""
    rules_keys = set(RulesOptions.__dataclass_fields__)
    rules = {k: kw.pop(k) for k in list(kw) if k in rules_keys}
    return LintOptions(rules=RulesOptions(**{"rule_format": "auto", **rules}), **kw)
