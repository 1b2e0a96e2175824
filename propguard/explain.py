"""``propguard explain``: the decision for one property, the section and line that made it.

The rules are loaded through :func:`propguard.rules.open_rules`, exactly as
the filter loads them, and the compiled engine is asked; nothing here
re-implements a decision.
"""

from __future__ import annotations

from propguard.credentials import Credentials
from propguard.glance.collation import BINARY, NameFolding
from propguard.rules.engine import RuleEngine
from propguard.rules.loading import RulesOptions, open_rules
from propguard.rules.model import Problem, RulesDocument, Section, Severity
from propguard.rules.parser import OS_GLANCE_PREFIX


def load(path: str, options: RulesOptions) -> tuple[RulesDocument, RuleEngine]:
    """Parse and compile ``path`` as the filter would; raises ``RulesError`` naming file:line."""
    engine = open_rules(options.with_file(path)).current()
    return engine.document, engine


def policy_set_notes(engine: RuleEngine, options: RulesOptions) -> list[Problem]:
    """Errors lint finds in the policy set that the loader let pass (rules these rules never use).

    What the rules use is checked by the loader itself (a broken rule there
    stops the load); this reports the rest the way ``propguard lint`` does,
    so a broken policy file never goes unmentioned.
    """
    if engine.policies is None or not options.policy_file:
        return []
    from propguard.lint import LintOptions
    from propguard.lint.policy_file import PolicyTarget, lint_policy_files

    problems = lint_policy_files([PolicyTarget(options.policy_file)], LintOptions(rules=options))
    return list(dict.fromkeys(p for p in problems if p.severity is Severity.ERROR))


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
    doc: RulesDocument,
    engine: RuleEngine,
    name: str,
    ops: list[str],
    creds: Credentials,
    folding: NameFolding = BINARY,
) -> dict:
    """The decisions for ``name`` as the filter makes them: under a folding
    collation, for its folded spelling (``decided_as``), as the filter's view (:mod:`propguard.view`) does."""
    decided_as = folding.fold(name)
    decisions = []
    for op in ops:
        d = engine.decide(decided_as, op, creds)
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
    result = {
        "property": name,
        "roles": sorted(creds.roles),
        "service_roles": sorted(creds.service_roles),
        "mode": str(engine.mode),
        "format": str(doc.format),
        "name_collation": folding.name,
        "decided_as": decided_as,
        "decisions": decisions,
    }
    if name.startswith(OS_GLANCE_PREFIX):
        result["note"] = GLANCE_RESERVED_NOTE.format(name=name)
    return result


def with_shadow(result: dict, shadow: dict) -> dict:
    """``result`` with the shadow rules' decisions beside it (``shadow``), and for each
    operation whether the two differ: what switching to the shadow rules would change
    for this caller, as the filter's ``shadow_divergence`` records say."""
    by_op = {d["op"]: d for d in shadow["decisions"]}
    for decision in result["decisions"]:
        other = by_op[decision["op"]]
        decision["shadow"] = {k: other[k] for k in ("allowed", "section", "where", "reason")}
        decision["diverges"] = other["allowed"] != decision["allowed"]
    result["shadow_format"] = shadow["format"]
    return result


#: Glance refuses these itself, before and whatever any rule says.
GLANCE_RESERVED_NOTE = (
    "Glance reserves the os_glance namespace for itself: it refuses a create, update or "
    "delete of '{name}' through the API from any caller (403 \"Attribute '{name}' is "
    'reserved."), whatever the rules say; only Glance writes such properties (image '
    "import). What the rules decide here matters for read."
)


def render_explain_text(result: dict) -> str:
    who = ",".join(result["roles"]) or "(none)"
    svc = ",".join(result["service_roles"]) or "(none)"
    lines = [
        f"property {result['property']!r}: roles {who}; service roles {svc}; "
        f"{result['format']} format, service_role_mode {result['mode']}"
    ]
    if result.get("decided_as", result["property"]) != result["property"]:
        lines.append(
            f"  decided as {result['decided_as']!r}: name_collation {result['name_collation']} "
            "equates the two, and the filter decides every spelling as the folded one"
        )
    for d in result["decisions"]:
        verdict = "ALLOWED" if d["allowed"] else "DENIED "
        if d["section"] is None:
            lines.append(f"  {d['op']:<6} {verdict} no section matches: {d['reason']}")
        else:
            lines.append(
                f"  {d['op']:<6} {verdict} by [{d['section']}] ({d['where']}): {d['reason']}"
            )
        shadow = d.get("shadow")
        if shadow is not None:
            said = "ALLOWED" if shadow["allowed"] else "DENIED "
            mark = "DIVERGES" if d["diverges"] else "same"
            by = f"by [{shadow['section']}] ({shadow['where']})" if shadow["section"] else "no section"
            lines.append(f"  {'':<6} shadow {said} {by}: {mark}")
    if result.get("note"):
        lines.append(f"  note: {result['note']}")
    return "\n".join(lines) + "\n"
