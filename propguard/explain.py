"""``propguard explain``: the decision for one property, the section and line that made it.

The rules are loaded through :func:`propguard.rules.open_rules`, exactly as
the filter loads them, and the compiled engine is asked; nothing here
re-implements a decision.
"""

from __future__ import annotations

from propguard.credentials import Credentials
from propguard.rules.engine import RuleEngine
from propguard.rules.loading import RulesOptions, open_rules
from propguard.rules.model import RulesDocument, Section


def load(path: str, options: RulesOptions) -> tuple[RulesDocument, RuleEngine]:
    """Parse and compile ``path`` as the filter would; raises ``RulesError`` naming file:line."""
    engine = open_rules(options.with_file(path)).current()
    return engine.document, engine


def credentials(roles: frozenset[str], service_roles: frozenset[str]) -> Credentials:
    """The caller ``explain`` and ``matrix`` ask about."""
    return Credentials.for_roles(
        roles, service_roles, user_id="propguard-explain", project_id="propguard-explain"
    )


def _where(doc: RulesDocument, section: Section | None) -> str:
    if section is None:
        return "-"
    if section.builtin:
        return "built in"
    return f"{doc.path}:{section.position.line}"


def explain(
    doc: RulesDocument, engine: RuleEngine, name: str, ops: list[str], creds: Credentials
) -> dict:
    decisions = []
    for op in ops:
        d = engine.decide(name, op, creds)
        decisions.append(
            {
                "op": op,
                "allowed": d.allowed,
                "section": d.section_name,
                "line": d.line,
                "where": _where(doc, d.section),
                "reason": d.reason,
            }
        )
    return {
        "property": name,
        "roles": sorted(creds.roles),
        "service_roles": sorted(creds.service_roles),
        "mode": str(engine.mode),
        "format": str(doc.format),
        "decisions": decisions,
    }


def render_explain_text(result: dict) -> str:
    who = ",".join(result["roles"]) or "(none)"
    svc = ",".join(result["service_roles"]) or "(none)"
    lines = [
        f"property {result['property']!r}: roles {who}; service roles {svc}; "
        f"{result['format']} format, service_role_mode {result['mode']}"
    ]
    for d in result["decisions"]:
        verdict = "ALLOWED" if d["allowed"] else "DENIED "
        if d["section"] is None:
            lines.append(f"  {d['op']:<6} {verdict} no section matches: {d['reason']}")
        else:
            lines.append(
                f"  {d['op']:<6} {verdict} by [{d['section']}] ({d['where']}): {d['reason']}"
            )
    return "\n".join(lines) + "\n"
