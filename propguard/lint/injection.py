"""Checks of ``inject_properties`` against the rules (PG214, PG215).

Why: an injected property is the operator's value on every image a
non-exempt caller creates; the rules are what keeps it from being changed
afterwards. If a caller it is injected for may update or delete it, the
injection only sets a default; if no section matches it, the filter denies
everything on it to everyone, admins included (read too), so nobody sees
what was injected.
"""

from __future__ import annotations

from propguard.injection import Injection
from propguard.lint.rules import describe_credentials, principals
from propguard.rules.engine import RuleEngine
from propguard.rules.model import Position, Problem, RulesDocument, Severity

#: Where findings about the option itself point (no file holds it for sure).
OPTION_ORIGIN = "<inject_properties>"
CHANGE_OPS = ("update", "delete")


def injection_problems(
    doc: RulesDocument, engine: RuleEngine, injection: Injection
) -> list[Problem]:
    """PG214 for an injected name a non-exempt caller may change, PG215 for one no
    section matches."""
    problems: list[Problem] = []
    by_pattern = {s.pattern: s for s in reversed(doc.sections)}
    for name in injection.properties:
        section = engine.section_for(name)
        if section is None:
            problems.append(
                Problem(
                    "PG215",
                    Severity.WARNING,
                    Position(OPTION_ORIGIN, 1),
                    f"injected property '{name}' matches no section: the filter lets "
                    "nobody read, update or delete it, admins included",
                    "add a section for it (admin-only update and delete), above any catch-all",
                )
            )
            continue
        written = by_pattern.get(section.pattern)
        if written is None:  # a built-in section (^os_glance): refused at load already
            continue
        changers: dict[str, list[str]] = {}
        for creds in principals(written, engine.policies):
            if not injection.applies_to(creds):  # exempt: injection does not bind them
                continue
            ops = [op for op in CHANGE_OPS if engine.allowed(name, op, creds)]
            if ops:
                changers.setdefault("/".join(ops), []).append(describe_credentials(creds))
        if not changers:
            continue
        who = "; ".join(f"{', '.join(names)} may {ops}" for ops, names in changers.items())
        first = next(op for op in CHANGE_OPS if any(op in ops for ops in changers))
        problems.append(
            Problem(
                "PG214",
                Severity.WARNING,
                written.values[first].position if first in written.values else written.position,
                f"injected property '{name}' in [{written.pattern}] can be changed by callers "
                f"it is injected for: {who}",
                "give update and delete of this section only to roles in "
                "inject_ignore_roles (e.g. admin), or '!'",
            )
        )
    return problems
