"""Rules: parse Glance property-protection files, compile them, decide.

No WSGI, HTTP or messaging knowledge lives here: every adapter (the filter,
the linter, the CLI) goes through :func:`load_rules` / :func:`parse_rules_file`.
"""

from propguard.rules.engine import Decision, RuleEngine, ServiceRoleMode, compile_rules, load_rules
from propguard.rules.model import (
    OPERATIONS,
    Position,
    Problem,
    RuleFormat,
    RulesDocument,
    RulesError,
    Section,
    Severity,
)
from propguard.rules.parser import parse_rules_file, parse_rules_text
from propguard.rules.reloader import RulesHolder

__all__ = [
    "OPERATIONS",
    "Decision",
    "Position",
    "Problem",
    "RuleEngine",
    "RuleFormat",
    "RulesDocument",
    "RulesError",
    "RulesHolder",
    "Section",
    "ServiceRoleMode",
    "Severity",
    "compile_rules",
    "load_rules",
    "parse_rules_file",
    "parse_rules_text",
]
